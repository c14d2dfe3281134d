
-- The worker cycle and the "batches until done" loop are written once, in C (src/worker.c):
-- run_worker_cycle(), run_billing() and run_dunning() run it in the caller's transaction.
CREATE OR REPLACE FUNCTION subbilling.run_worker_cycle(as_of timestamptz DEFAULT now())
RETURNS TABLE (invoices int, errors int, dunning_steps int)
AS 'MODULE_PATHNAME', 'subbilling_run_worker_cycle'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION subbilling.run_worker_cycle(timestamptz) IS
    'one worker cycle (transitions, billing batches, dunning batches) in the caller''s transaction, recorded in worker_runs; for pg_cron';

CREATE OR REPLACE FUNCTION subbilling.run_billing(as_of timestamptz DEFAULT now())
    RETURNS integer
    AS 'MODULE_PATHNAME', 'subbilling_run_billing'
    LANGUAGE C VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp;
COMMENT ON FUNCTION subbilling.run_billing(timestamptz) IS 'invoice everything due up to as_of (in batches of subbilling.batch_size, in the caller''s transaction); returns the number of invoices; failures of single subscriptions go to billing_errors';

CREATE OR REPLACE FUNCTION subbilling.run_dunning(as_of date DEFAULT CURRENT_DATE)
    RETURNS integer
    AS 'MODULE_PATHNAME', 'subbilling_run_dunning'
    LANGUAGE C VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp;
COMMENT ON FUNCTION subbilling.run_dunning(date) IS 'take every dunning step due as of as_of (in batches of subbilling.batch_size, in the caller''s transaction): overdue notices, reminders with fees and interest, payment stops, collection, write-offs; returns the number of steps taken; failures of single invoices go to billing_errors';
