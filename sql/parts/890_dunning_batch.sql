
-- ============================================================================
-- The dunning batch and run_dunning.
-- The worker calls run_dunning_batch in one transaction per batch;
-- run_worker_cycle(), pg_cron and run_dunning() call it in a loop.
-- ============================================================================

-- Claims up to batch_size invoices on which a step is due (per account,
-- FOR UPDATE SKIP LOCKED on the invoice rows) and takes their steps.  A
-- failure in the pass over the whole batch falls back to one invoice at a
-- time, each in its own subtransaction; each failure is recorded in
-- billing_errors (invoice_id set, subscription_id NULL: billing resolves
-- the errors of the subscriptions it bills, dunning those of the invoices
-- it dunns) and that invoice is left alone until the next dunning date.
-- more = a full batch was claimed and something was done.
CREATE FUNCTION subbilling_internal.dunning_batch(batch_size integer, as_of date,
                                         OUT steps integer, OUT errors integer, OUT more boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    err_at  timestamptz;
    acc     bigint;
    ids     bigint[];
    a_inv   bigint[];
    c_acc   bigint[] := '{}';
    c_inv   bigint[] := '{}';
    ok_acc  bigint[] := '{}';
    ok_inv  bigint[] := '{}';
    n       integer;
    k       integer;
    st      text;
    msg     text;
    det     text;
BEGIN
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be a positive number of invoices'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', coalesce(batch_size::text, 'NULL'));
    END IF;
    -- a finite date from 2000-01-01 to 10 years ahead (22023), like billing
    PERFORM subbilling_internal.check_date('as_of', as_of);
    -- fees, interest and write-offs are computed from open amounts read under
    -- the invoice's row lock: only right when each statement sees what
    -- payments committed meanwhile
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'dunning needs READ COMMITTED isolation'
            USING ERRCODE = 'invalid_transaction_state',
                  DETAIL = format('The transaction runs at %s; a payment committed after its snapshot would be missed and written off or charged interest.',
                                  upper(current_setting('transaction_isolation'))),
                  HINT = 'Run dunning in a transaction at the default isolation level.';
    END IF;
    steps := 0;
    errors := 0;
    err_at := as_of::timestamp AT TIME ZONE 'UTC';

    -- Citus: by shard, each group on its worker (986_citus_dunning.sql)
    IF subbilling_internal.on_citus() THEN
        SELECT b.steps, b.errors, b.more INTO steps, errors, more
          FROM subbilling_internal.dunning_batch_citus(batch_size, as_of) b;
        RETURN;
    END IF;

    -- due invoices that still owe something and did not fail on this date
    SELECT array_agg(q.account_id ORDER BY q.account_id, q.invoice_id), array_agg(q.invoice_id ORDER BY q.account_id, q.invoice_id),
           count(*)
      INTO c_acc, c_inv, n
      FROM (SELECT d.account_id, d.invoice_id
              FROM dunning_due(as_of) d
             WHERE NOT EXISTS (SELECT 1 FROM subbilling.billing_errors e
                                WHERE e.account_id = d.account_id AND e.invoice_id = d.invoice_id
                                  AND e.resolved_at IS NULL AND e.as_of >= err_at)
               AND invoice_open_amount(d.account_id, d.invoice_id) > price_minor(0, (SELECT x.currency FROM subbilling.invoices x
                                                                                    WHERE x.account_id = d.account_id AND x.id = d.invoice_id))
             ORDER BY d.next_on, d.account_id, d.invoice_id
             LIMIT batch_size) q;
    more := n = batch_size;
    IF n = 0 THEN
        RETURN;
    END IF;

    -- claim per account; a row locked by a payment or another batch is skipped
    ids := '{}';
    FOR acc IN SELECT DISTINCT u FROM unnest(c_acc) u ORDER BY u LOOP
        -- (the account's invoices first, then one query on the account's rows)
        a_inv := ARRAY(SELECT c_inv[j] FROM generate_subscripts(c_acc, 1) j WHERE c_acc[j] = acc);
        ids := ids || ARRAY(SELECT x.id FROM subbilling.invoices x
                             WHERE x.account_id = acc
                               AND x.id = ANY (a_inv)
                               AND x.status = 'open'
                             ORDER BY x.id
                               FOR UPDATE SKIP LOCKED);
    END LOOP;
    -- keep the claimed pairs in order
    SELECT coalesce(array_agg(c_acc[j] ORDER BY j), '{}'), coalesce(array_agg(c_inv[j] ORDER BY j), '{}')
      INTO c_acc, c_inv
      FROM generate_subscripts(c_inv, 1) j WHERE c_inv[j] = ANY (ids);
    n := cardinality(c_inv);

    BEGIN
        FOR k IN 1 .. n LOOP
            steps := steps + subbilling_internal.dunning_invoice(c_acc[k], c_inv[k], as_of);
        END LOOP;
        ok_acc := c_acc;
        ok_inv := c_inv;
    EXCEPTION WHEN OTHERS THEN
        steps := 0;
        FOR k IN 1 .. n LOOP
            BEGIN
                steps := steps + subbilling_internal.dunning_invoice(c_acc[k], c_inv[k], as_of);
                ok_acc := ok_acc || c_acc[k];
                ok_inv := ok_inv || c_inv[k];
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
                INSERT INTO subbilling.billing_errors (account_id, invoice_id, run_id, as_of, sqlstate, message, detail)
                VALUES (c_acc[k], c_inv[k], current_run_id(), err_at, st, msg, nullif(det, ''));
                errors := errors + 1;
            END;
        END LOOP;
    END;
    -- open dunning errors of invoices dunned successfully now are resolved
    -- (a cheap test first: there are rarely any open errors)
    IF EXISTS (SELECT FROM subbilling.billing_errors e WHERE e.resolved_at IS NULL AND e.invoice_id IS NOT NULL) THEN
        UPDATE subbilling.billing_errors e SET resolved_at = now()
          FROM unnest(ok_acc, ok_inv) AS x(account_id, invoice_id)
         WHERE e.account_id = x.account_id AND e.invoice_id = x.invoice_id AND e.resolved_at IS NULL;
    END IF;
    -- a full batch of which nothing could be done (all claimed elsewhere) is not progress
    more := more AND steps + errors > 0;
END
$$;
COMMENT ON FUNCTION subbilling_internal.dunning_batch(integer, date) IS 'internal: claim up to batch_size invoices with a due dunning step (per account, FOR UPDATE SKIP LOCKED) and take their steps as of as_of; failures are recorded in billing_errors and retried on a later date; more = a full batch was claimed and progressed';

CREATE FUNCTION subbilling.run_dunning_batch(batch_size int, as_of date)
RETURNS TABLE (steps int, errors int, more boolean)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = subbilling, pg_catalog, pg_temp
AS $$ SELECT b.steps, b.errors, b.more FROM subbilling_internal.dunning_batch(batch_size, as_of) AS b $$;
COMMENT ON FUNCTION subbilling.run_dunning_batch(int, date) IS
    'takes up to batch_size due dunning steps as of as_of in the caller''s transaction; failures go to billing_errors; more = due work remains';
REVOKE ALL ON FUNCTION subbilling.run_dunning_batch(int, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.run_dunning_batch(int, date) TO subbilling_operator;

-- run_dunning_batch() until done: the worker's batch loop (src/worker.c).
CREATE FUNCTION subbilling.run_dunning(as_of date DEFAULT CURRENT_DATE)
    RETURNS integer
    AS 'MODULE_PATHNAME', 'subbilling_run_dunning'
    LANGUAGE C VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp;
COMMENT ON FUNCTION subbilling.run_dunning(date) IS 'take every dunning step due as of as_of (in batches of subbilling.batch_size, in the caller''s transaction): overdue notices, reminders with fees and interest, payment stops, collection, write-offs; returns the number of steps taken; failures of single invoices go to billing_errors';

-- ---------------------------------------------------------------- privileges

GRANT SELECT ON subbilling.dunning_steps, subbilling.dunning_actions, subbilling.reference_rates
    TO subbilling_operator;
-- settings are maintained with plain SQL; actions are written by dunning only
GRANT INSERT, UPDATE, DELETE ON subbilling.dunning_steps, subbilling.reference_rates TO subbilling_operator;

REVOKE ALL ON FUNCTION
    subbilling.run_dunning(date),
    subbilling.late_payment_interest(text, subbilling.price, date, date),
    subbilling.dunning_due(date)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    subbilling.run_dunning(date),
    subbilling.late_payment_interest(text, subbilling.price, date, date),
    subbilling.dunning_due(date)
    TO subbilling_operator;

-- internal: called by the functions above (as their owner), by nobody else
REVOKE ALL ON FUNCTION
    subbilling_internal.dunning_batch(integer, date),
    subbilling_internal.dunning_invoice(bigint, bigint, date),
    subbilling_internal.dunning_take_step(subbilling.invoices, subbilling.dunning_steps, subbilling.price, date),
    subbilling_internal.dunning_fee_invoice(subbilling.invoices, integer, text, date, integer, subbilling.price,
                                   subbilling.price, daterange, text),
    subbilling_internal.dunning_fee(text, subbilling.price[], text, text, integer, integer),
    subbilling_internal.dunning_policy_of(bigint),
    subbilling_internal.after_invoice_paid(bigint, bigint),
    subbilling_internal.dunning_steps_validate(),
    subbilling_internal.dunning_steps_check_order(),
    subbilling_internal.country_settings_validate_dunning(),
    subbilling_internal.dunning_actions_guard()
    FROM PUBLIC;
