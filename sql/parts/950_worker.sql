-- 950_worker.sql: the background worker's tables, functions and status view.
-- See docs/worker.md.

-- Roles (cluster-wide; also created at 390 with the same idempotent pattern).
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'subbilling_operator') THEN
        CREATE ROLE subbilling_operator NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'subbilling_reader') THEN
        CREATE ROLE subbilling_reader NOLOGIN;
    END IF;
END
$roles$;

GRANT USAGE ON SCHEMA subbilling TO subbilling_reader, subbilling_operator;

-------------------------------------------------------------------------------
-- Runs of the worker (and of run_worker_cycle): a global operational table.
-------------------------------------------------------------------------------
CREATE TABLE subbilling.worker_runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    origin        text NOT NULL DEFAULT 'worker' CHECK (origin IN ('worker', 'sql')),
    pid           int NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    as_of         timestamptz NOT NULL,
    finished_at   timestamptz,
    batch_size    int NOT NULL CHECK (batch_size > 0),
    batches       int NOT NULL DEFAULT 0,
    invoices      int NOT NULL DEFAULT 0,
    errors        int NOT NULL DEFAULT 0,
    dunning_steps int NOT NULL DEFAULT 0,
    transitions   int NOT NULL DEFAULT 0,
    status        text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'error')),
    sqlstate      text CHECK (sqlstate ~ '^[0-9A-Z]{5}$'),
    message       text,
    detail        text,
    CHECK ((status = 'running') = (finished_at IS NULL)),
    CHECK (status <> 'error' OR message IS NOT NULL)
);
CREATE INDEX worker_runs_running_idx ON subbilling.worker_runs (id) WHERE status = 'running';
SELECT pg_catalog.pg_extension_config_dump('subbilling.worker_runs', '');

COMMENT ON TABLE subbilling.worker_runs IS
    'one row per billing cycle of the background worker (origin worker) or of run_worker_cycle() (origin sql)';
COMMENT ON COLUMN subbilling.worker_runs.origin IS 'worker: the background worker; sql: subbilling.run_worker_cycle()';
COMMENT ON COLUMN subbilling.worker_runs.pid IS 'process id of the worker or session that ran the cycle';
COMMENT ON COLUMN subbilling.worker_runs.as_of IS 'billing time passed to every batch of the cycle';
COMMENT ON COLUMN subbilling.worker_runs.batch_size IS 'subbilling.batch_size when the cycle started';
COMMENT ON COLUMN subbilling.worker_runs.batches IS 'billing plus dunning batches completed (one transaction each for the worker)';
COMMENT ON COLUMN subbilling.worker_runs.invoices IS 'invoices made by the billing batches';
COMMENT ON COLUMN subbilling.worker_runs.errors IS 'items that failed and were recorded in billing_errors';
COMMENT ON COLUMN subbilling.worker_runs.dunning_steps IS 'dunning steps taken by the dunning batches';
COMMENT ON COLUMN subbilling.worker_runs.transitions IS 'dated subscription transitions applied by advance_subscriptions()';
COMMENT ON COLUMN subbilling.worker_runs.status IS 'running, ok, or error (the cycle stopped on an error that escaped a batch)';
COMMENT ON COLUMN subbilling.worker_runs.sqlstate IS 'SQLSTATE of the error that stopped the cycle';
COMMENT ON COLUMN subbilling.worker_runs.message IS 'error message, or why an ok cycle ended early';
COMMENT ON COLUMN subbilling.worker_runs.detail IS 'DETAIL of the error that stopped the cycle';

-------------------------------------------------------------------------------
-- Per-item billing failures, written by the batch functions; customer-owned.
-------------------------------------------------------------------------------
CREATE TABLE subbilling.billing_errors (
    account_id      bigint NOT NULL,
    id              bigint GENERATED ALWAYS AS IDENTITY,
    subscription_id bigint,
    run_id          bigint,
    as_of           timestamptz,
    sqlstate        text,
    message         text,
    detail          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    invoice_id      bigint,
    PRIMARY KEY (account_id, id)
);
CREATE INDEX billing_errors_open_idx ON subbilling.billing_errors (created_at) WHERE resolved_at IS NULL;
CREATE INDEX billing_errors_subscription_idx ON subbilling.billing_errors (account_id, subscription_id);
-- Dunning failures share billing_errors with billing; they name the invoice (invoice_id).
CREATE INDEX billing_errors_invoice_idx ON subbilling.billing_errors (account_id, invoice_id)
    WHERE invoice_id IS NOT NULL;
COMMENT ON COLUMN subbilling.billing_errors.invoice_id IS 'dunning: the invoice whose dunning failed (subscription_id is then NULL, as_of is the dunning date at 00:00 UTC; resolved when a later run dunns it); NULL for billing failures';
SELECT pg_catalog.pg_extension_config_dump('subbilling.billing_errors', '');

COMMENT ON TABLE subbilling.billing_errors IS
    'billing or dunning failures of single subscriptions, recorded and skipped by the batch functions';
COMMENT ON COLUMN subbilling.billing_errors.run_id IS 'worker_runs.id of the run that met the failure (subbilling.current_run_id())';
COMMENT ON COLUMN subbilling.billing_errors.as_of IS 'billing time of the failed attempt';
COMMENT ON COLUMN subbilling.billing_errors.resolved_at IS 'set when the failure is dealt with; NULL = open';

-------------------------------------------------------------------------------
-- Settings and the id of the run in progress
-------------------------------------------------------------------------------
CREATE FUNCTION subbilling.worker_config(
    OUT preloaded boolean, OUT enabled boolean, OUT database text,
    OUT naptime integer, OUT batch_size integer, OUT notify boolean)
RETURNS record
AS 'MODULE_PATHNAME', 'subbilling_worker_config'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.worker_config() IS
    'this session''s subbilling.* worker settings (naptime in seconds) and whether the library was preloaded';

CREATE FUNCTION subbilling.current_run_id() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = subbilling, pg_catalog, pg_temp
AS $$ SELECT NULLIF(pg_catalog.current_setting('subbilling.current_run_id', true), '')::bigint $$;
COMMENT ON FUNCTION subbilling.current_run_id() IS
    'worker_runs.id of the worker cycle in progress in this session, NULL outside one (for billing_errors.run_id)';

-------------------------------------------------------------------------------
-- One worker cycle in the caller's transaction (pg_cron, tests, no preload):
-- the worker's own cycle (src/worker.c), each step in the caller's transaction
-- instead of its own.  The batch functions it calls, run_billing_batch() and
-- run_dunning_batch(), are defined with billing and dunning.
-------------------------------------------------------------------------------
CREATE FUNCTION subbilling.run_worker_cycle(as_of timestamptz DEFAULT now())
RETURNS TABLE (invoices int, errors int, dunning_steps int)
AS 'MODULE_PATHNAME', 'subbilling_run_worker_cycle'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION subbilling.run_worker_cycle(timestamptz) IS
    'one worker cycle (transitions, billing batches, dunning batches) in the caller''s transaction, recorded in worker_runs; for pg_cron';

-------------------------------------------------------------------------------
-- Waking the worker
-------------------------------------------------------------------------------
CREATE FUNCTION subbilling.wake_worker() RETURNS boolean
AS 'MODULE_PATHNAME', 'subbilling_wake_worker'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION subbilling.wake_worker() IS
    'asks the background worker serving this database for a cycle now; false (with a NOTICE) when none will';

-------------------------------------------------------------------------------
-- Status: one row
-------------------------------------------------------------------------------
CREATE VIEW subbilling.worker_status AS
SELECT w.pid                  AS worker_pid,
       w.datname::text        AS worker_database,
       c.preloaded,
       c.enabled,
       c.naptime,
       c.batch_size,
       c.database,
       r.id                   AS last_run_id,
       r.origin               AS last_run_origin,
       r.started_at           AS last_run_started_at,
       r.finished_at          AS last_run_finished_at,
       r.status               AS last_run_status,
       r.batches              AS last_run_batches,
       r.invoices             AS last_run_invoices,
       r.errors               AS last_run_errors,
       r.dunning_steps        AS last_run_dunning_steps,
       r.transitions          AS last_run_transitions,
       r.sqlstate             AS last_run_sqlstate,
       r.message              AS last_run_message,
       (SELECT ok.finished_at FROM subbilling.worker_runs AS ok
         WHERE ok.status = 'ok' ORDER BY ok.id DESC LIMIT 1) AS last_ok_finished_at,
       (SELECT pg_catalog.count(*) FROM subbilling.billing_errors AS e
         WHERE e.resolved_at IS NULL) AS open_errors,
       (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'account_id', e.account_id, 'id', e.id, 'subscription_id', e.subscription_id,
                   'run_id', e.run_id, 'sqlstate', e.sqlstate, 'message', e.message,
                   'created_at', e.created_at)
                   ORDER BY e.created_at DESC, e.account_id, e.id), '[]'::jsonb)
          FROM (SELECT * FROM subbilling.billing_errors AS be
                 WHERE be.resolved_at IS NULL
                 ORDER BY be.created_at DESC, be.account_id, be.id LIMIT 5) AS e) AS recent_errors,
       (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'country', k.country, 'rates_end', k.rates_end,
                   'message', pg_catalog.format('the reference rates of %s end %s: add the next with set_reference_rate()',
                                                k.country, coalesce(k.rates_end::text, '(none)')))
                   ORDER BY k.country), '[]'::jsonb)
          FROM (SELECT cs.country, (SELECT pg_catalog.max(upper(rr.valid)) - 1 FROM subbilling.reference_rates AS rr
                                      WHERE rr.country = cs.country) AS rates_end
                  FROM subbilling.country_settings AS cs
                 WHERE cs.late_interest_margin IS NOT NULL) AS k
         WHERE k.rates_end IS NULL OR k.rates_end < CURRENT_DATE + 30) AS rate_warnings
  FROM subbilling.worker_config() AS c
  LEFT JOIN LATERAL (SELECT a.pid, a.datname FROM pg_catalog.pg_stat_activity AS a
                      WHERE a.backend_type = 'subbilling worker' LIMIT 1) AS w ON true
  LEFT JOIN LATERAL (SELECT * FROM subbilling.worker_runs AS lr ORDER BY lr.id DESC LIMIT 1) AS r ON true;
COMMENT ON VIEW subbilling.worker_status IS
    'one row: the running worker, its settings, the last run with its counts, open billing errors (the latest five as jsonb), and rate_warnings: the countries charging late-payment interest whose reference rates end within 30 days';

-------------------------------------------------------------------------------
-- Privileges
-------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION subbilling.wake_worker() FROM PUBLIC;
REVOKE ALL ON FUNCTION subbilling.run_worker_cycle(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.wake_worker() TO subbilling_operator;
GRANT EXECUTE ON FUNCTION subbilling.run_worker_cycle(timestamptz) TO subbilling_operator;

-- operators watch the worker; readers (BI tools) get the reporting views only: these carry
-- error messages with customer data
GRANT SELECT ON subbilling.worker_status, subbilling.worker_runs, subbilling.billing_errors
    TO subbilling_operator;
-- run_worker_cycle() records its run; operators mark billing errors resolved.
GRANT INSERT, UPDATE ON subbilling.worker_runs TO subbilling_operator;
GRANT UPDATE (resolved_at) ON subbilling.billing_errors TO subbilling_operator;
