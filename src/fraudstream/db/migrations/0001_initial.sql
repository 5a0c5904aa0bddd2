-- Suspicious transactions, the rule set registry and the model registry.

CREATE TABLE IF NOT EXISTS fraudulent_transactions (
    transaction_id     text PRIMARY KEY,
    tx_datetime        timestamptz NOT NULL,
    customer_id        text NOT NULL,
    terminal_id        text NOT NULL,
    tx_amount          numeric(18, 2) NOT NULL CHECK (tx_amount > 0),
    currency           char(3) NOT NULL DEFAULT 'EUR',
    channel            text,
    merchant_category  text,
    country            text,
    lat                double precision,
    lon                double precision,
    score              double precision NOT NULL CHECK (score >= 0 AND score <= 1),
    decision           text NOT NULL CHECK (decision IN ('review', 'decline')),
    reasons            jsonb NOT NULL DEFAULT '[]'::jsonb,
    features           jsonb NOT NULL DEFAULT '{}'::jsonb,
    model_version      text,
    rules_version      text,
    detected_at        timestamptz NOT NULL DEFAULT now(),
    review_status      text NOT NULL DEFAULT 'open'
                       CHECK (review_status IN ('open', 'confirmed_fraud', 'legitimate')),
    reviewed_by        text,
    reviewed_at        timestamptz,
    review_comment     text,
    source_partition   integer,
    source_offset      bigint
);

CREATE INDEX IF NOT EXISTS fraudulent_transactions_queue_idx
    ON fraudulent_transactions (review_status, score DESC);
CREATE INDEX IF NOT EXISTS fraudulent_transactions_customer_idx
    ON fraudulent_transactions (customer_id, tx_datetime);
CREATE INDEX IF NOT EXISTS fraudulent_transactions_terminal_idx
    ON fraudulent_transactions (terminal_id, tx_datetime);
CREATE INDEX IF NOT EXISTS fraudulent_transactions_time_idx
    ON fraudulent_transactions (tx_datetime);

CREATE TABLE IF NOT EXISTS rule_sets (
    version      serial PRIMARY KEY,
    name         text NOT NULL,
    body         jsonb NOT NULL,
    checksum     text NOT NULL,
    active       boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text
);
CREATE UNIQUE INDEX IF NOT EXISTS rule_sets_one_active ON rule_sets (active) WHERE active;

CREATE TABLE IF NOT EXISTS models (
    version      serial PRIMARY KEY,
    kind         text NOT NULL,
    features     jsonb NOT NULL,
    params       jsonb NOT NULL DEFAULT '{}'::jsonb,
    metrics      jsonb NOT NULL DEFAULT '{}'::jsonb,
    artifact     bytea NOT NULL,
    trained_from timestamptz,
    trained_to   timestamptz,
    active       boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    promoted_at  timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS models_one_active ON models (active) WHERE active;
