
-- ============================================================================
-- The worker's billing batch: one batch of the invoicing engine.  The worker
-- calls it in one transaction per batch; run_worker_cycle(), run_billing()
-- and pg_cron call it in a loop.
-- ============================================================================

CREATE FUNCTION subbilling.run_billing_batch(batch_size int, as_of timestamptz)
RETURNS TABLE (invoices int, errors int, more boolean)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = subbilling, pg_catalog, pg_temp
AS $$ SELECT b.invoices, b.errors, b.more FROM subbilling_internal.bill_batch(batch_size, as_of) AS b $$;
COMMENT ON FUNCTION subbilling.run_billing_batch(int, timestamptz) IS
    'bills up to batch_size due subscriptions as of as_of in the caller''s transaction; failures of one subscription go to billing_errors; more = due work remains';
REVOKE ALL ON FUNCTION subbilling.run_billing_batch(int, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.run_billing_batch(int, timestamptz) TO subbilling_operator;
