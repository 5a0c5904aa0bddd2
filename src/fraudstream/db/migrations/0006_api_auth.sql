-- Who may use the API and the dashboard: users (browser sessions) and API keys (scripts),
-- each with a role ('analyst': read and label; 'admin': also rules and models). Only hashes
-- of secrets are stored: argon2id for passwords, SHA-256 for the high-entropy key secrets.

CREATE TABLE IF NOT EXISTS api_users (
    name           text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    role           text NOT NULL CHECK (role IN ('analyst', 'admin')),
    password_hash  text NOT NULL,
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS api_keys (
    key_id         text PRIMARY KEY,
    name           text NOT NULL,
    role           text NOT NULL CHECK (role IN ('analyst', 'admin')),
    secret_sha256  text NOT NULL,
    revoked        boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz
);

-- Server-side secrets shared by every API process (the session-signing key).
CREATE TABLE IF NOT EXISTS api_secrets (
    name        text PRIMARY KEY,
    value       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The alert queue's "newest first" and the stats' recent windows.
CREATE INDEX IF NOT EXISTS fraudulent_transactions_detected_idx
    ON fraudulent_transactions (detected_at);

-- An alert's "customer's usual values": the customer's recent decisions in the feature store.
CREATE INDEX IF NOT EXISTS labelled_features_customer_idx
    ON labelled_features (customer_id, tx_datetime);
