-- The detector's least privilege: a NOLOGIN group role holding exactly what a detector worker
-- touches, so a compromised or buggy worker cannot read the review queue, change a verdict,
-- delete evidence or alter the schema. Login roles are made members of it by
-- `fraudstream db grant-detector` (passwords never live in migrations).
--
-- Roles are cluster-wide while this migration runs once per database: the role may already
-- exist (another database, a concurrent migrate), hence the guarded creation.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fraudstream_detector') THEN
        CREATE ROLE fraudstream_detector NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- created concurrently by a migration of another database
END
$$;

-- The rows the detector stages before inserting them: the columns it writes, as a type
-- (a temporary table LIKE the real table would need SELECT on all of it).
DO $$
BEGIN
    CREATE TYPE fraudulent_transactions_incoming AS (
        transaction_id     text,
        tx_datetime        timestamptz,
        customer_id        text,
        terminal_id        text,
        tx_amount          numeric(18, 2),
        currency           char(3),
        channel            text,
        merchant_category  text,
        country            text,
        lat                double precision,
        lon                double precision,
        score              double precision,
        decision           text,
        reasons            jsonb,
        features           jsonb,
        model_version      text,
        rules_version      text,
        detected_at        timestamptz,
        source_partition   integer,
        source_offset      bigint
    );
EXCEPTION WHEN duplicate_object THEN
    NULL;
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO fraudstream_detector',
                   current_database());
END
$$;
-- Nobody but the owner creates objects in the schema (PostgreSQL 15's default, made explicit
-- for older servers): the detector runs no DDL.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO fraudstream_detector;
GRANT USAGE ON TYPE fraudulent_transactions_incoming TO fraudstream_detector;

-- Rule sets and models: the active version and the item itself (watchers), nothing else.
GRANT SELECT (version, active, body) ON rule_sets TO fraudstream_detector;
GRANT SELECT (version, active, kind, features, params, artifact) ON models TO fraudstream_detector;

-- Suspicious transactions: insert only. SELECT on the key alone is what
-- `ON CONFLICT (transaction_id) DO NOTHING` needs; no UPDATE, DELETE or other column.
GRANT INSERT (transaction_id, tx_datetime, customer_id, terminal_id, tx_amount, currency, channel,
              merchant_category, country, lat, lon, score, decision, reasons, features,
              model_version, rules_version, detected_at, source_partition, source_offset)
    ON fraudulent_transactions TO fraudstream_detector;
GRANT SELECT (transaction_id) ON fraudulent_transactions TO fraudstream_detector;
