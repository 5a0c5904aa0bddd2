-- The labelled feature store: features as computed at decision time, joined with the labels
-- that arrive later (chargebacks, analyst verdicts). Either side may arrive first, so every
-- column but the key is nullable and each side upserts only its own columns. Training reads
-- rows that have both (see fraudstream.learning.feature_store).

CREATE TABLE IF NOT EXISTS labelled_features (
    transaction_id  text PRIMARY KEY,
    tx_datetime     timestamptz,
    customer_id     text,
    terminal_id     text,
    features        jsonb,
    score           double precision,
    decision        text CHECK (decision IN ('approve', 'review', 'decline')),
    model_version   text,
    is_fraud        boolean,
    labeled_at      timestamptz,
    label_source    text
);

-- Training windows are event-time ranges over complete rows only.
CREATE INDEX IF NOT EXISTS labelled_features_training_idx
    ON labelled_features (tx_datetime)
    WHERE features IS NOT NULL AND is_fraud IS NOT NULL;
