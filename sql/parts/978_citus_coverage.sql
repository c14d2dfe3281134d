
-- ============================================================================
-- The rest of the API on Citus: direct debit, the usage fold, the worker.
-- docs/citus.md
--
-- A query over every shard cannot take row locks on Citus ("could not run
-- distributed query with FOR UPDATE/SHARE commands").  The functions that
-- claim rows of many accounts at once on one server (the claim files) lock
-- them one by one by (account_id, id) on Citus, each lock a statement routed
-- to the row's shard, and then read them again.
-- ============================================================================

-- Locks the payment requests (accts[k], ids[k]) still requested, in the order
-- given (the callers pass them ordered by account and id), and returns the ids
-- locked.
CREATE FUNCTION subbilling_internal.lock_payment_requests_citus(accts bigint[], ids bigint[]) RETURNS bigint[]
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    k       integer;
    locked  bigint[] := '{}';
BEGIN
    FOR k IN 1 .. coalesce(pg_catalog.cardinality(ids), 0) LOOP
        PERFORM FROM subbilling.payment_requests r
         WHERE r.account_id = accts[k] AND r.id = ids[k] AND r.status = 'requested'
           FOR UPDATE;
        IF FOUND THEN
            locked := locked || ids[k];
        END IF;
    END LOOP;
    RETURN locked;
END
$$;
COMMENT ON FUNCTION subbilling_internal.lock_payment_requests_citus(bigint[], bigint[]) IS 'internal (Citus): locks the payment requests (account_id, id) still requested, one statement on each one''s shard; returns the ids locked';
REVOKE ALL ON FUNCTION subbilling_internal.lock_payment_requests_citus(bigint[], bigint[]) FROM PUBLIC;

-- ---------------------------------------------------------------- the usage fold (Citus)
-- kpi_usage_fold of one account: the same statement with every table read and written on
-- that account's rows, so that Citus routes it, as one statement, to the account's shard.
CREATE FUNCTION subbilling_internal.kpi_usage_fold_account(acct bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = subbilling, pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    WITH q AS (
        DELETE FROM subbilling_internal.kpi_usage_queue q
         WHERE q.account_id = acct
        RETURNING q.account_id, q.subscription_id, q.usage_date, q.quantity
    ),
    d AS (
        SELECT q.account_id, q.subscription_id, q.usage_date AS day, sum(q.quantity) AS q, count(*) AS n
          FROM q GROUP BY q.account_id, q.subscription_id, q.usage_date
    ),
    k0 AS (
        SELECT w.account_id, w.subscription_id, w.starts, w.used, w.billing_anchor AS kept_anchor,
               w.billing_period AS kept_period, s.billing_anchor,
               (SELECT p.billing_period FROM subbilling.subscription_items i JOIN subbilling.plans p ON p.id = i.plan_id
                 WHERE i.account_id = acct AND i.subscription_id = w.subscription_id AND i.kind = 'base'
                   AND i.voided_at IS NULL AND i.validity @> current_date
                 ORDER BY i.id LIMIT 1) AS billing_period
          FROM subbilling_internal.kpi_usage_periods w
          JOIN subbilling.subscriptions s ON s.account_id = w.account_id AND s.id = w.subscription_id
         WHERE w.account_id = acct AND s.account_id = acct
           AND w.subscription_id IN (SELECT d.subscription_id FROM d)
    ),
    k AS (
        SELECT k0.*, coalesce(k0.kept_anchor = k0.billing_anchor AND k0.kept_period = k0.billing_period, false) AS same
          FROM k0
    ),
    t AS (
        -- the same key: the kept totals and the changes
        SELECT k.account_id, k.subscription_id, x.ps, x.q
          FROM k CROSS JOIN LATERAL unnest(k.starts, k.used) AS x(ps, q)
         WHERE k.same
        UNION ALL
        SELECT k.account_id, k.subscription_id,
               subbilling.period_start(k.billing_anchor, k.billing_period,
                                       subbilling.period_index(k.billing_anchor, k.billing_period, d.day)), d.q
          FROM k JOIN d ON d.account_id = k.account_id AND d.subscription_id = k.subscription_id
         WHERE k.same
        UNION ALL
        -- unkeyed or a new key: all the usage (which includes the changes claimed)
        SELECT k.account_id, k.subscription_id,
               subbilling.period_start(k.billing_anchor, k.billing_period,
                                       subbilling.period_index(k.billing_anchor, k.billing_period, u.usage_date)), u.quantity
          FROM k JOIN subbilling.usage u ON u.account_id = k.account_id AND u.subscription_id = k.subscription_id
         WHERE NOT k.same AND k.billing_period IS NOT NULL AND u.account_id = acct
    ),
    tot AS (
        SELECT t.account_id, t.subscription_id, t.ps, sum(t.q) AS q
          FROM t GROUP BY t.account_id, t.subscription_id, t.ps
        HAVING sum(t.q) <> 0
    ),
    r AS (
        SELECT k.account_id, k.subscription_id,
               CASE WHEN k.billing_period IS NOT NULL THEN k.billing_anchor END AS billing_anchor, k.billing_period,
               coalesce(array_agg(tot.ps ORDER BY tot.ps) FILTER (WHERE tot.ps IS NOT NULL), '{}') AS starts,
               coalesce(array_agg(tot.q ORDER BY tot.ps) FILTER (WHERE tot.ps IS NOT NULL), '{}') AS used
          FROM k LEFT JOIN tot ON tot.account_id = k.account_id AND tot.subscription_id = k.subscription_id
         GROUP BY k.account_id, k.subscription_id, k.billing_anchor, k.billing_period
    ),
    up AS (
        UPDATE subbilling_internal.kpi_usage_periods w
           SET billing_anchor = r.billing_anchor, billing_period = r.billing_period, starts = r.starts, used = r.used
          FROM r
         WHERE w.account_id = acct AND w.account_id = r.account_id AND w.subscription_id = r.subscription_id
    )
    SELECT coalesce(sum(d.n), 0) INTO n FROM d;
    RETURN n;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_usage_fold_account(bigint) IS 'internal (Citus): kpi_usage_fold of one account''s queued usage, one statement on the account''s shard; returns the queue rows folded';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_usage_fold_account(bigint) FROM PUBLIC;

-- The fold on Citus: the accounts with queued usage (read over every shard, without locks),
-- then kpi_usage_fold_account for each, under the fold's advisory lock on the coordinator
-- (folds take turns there, as on one server).  In READ COMMITTED only, like kpi_usage_fold.
CREATE FUNCTION subbilling_internal.kpi_usage_fold_citus() RETURNS bigint
LANGUAGE plpgsql SET search_path = subbilling, pg_catalog, pg_temp AS $$
DECLARE
    n    bigint := 0;
    acct bigint;
BEGIN
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'kpi_usage_fold runs in a read committed transaction'
            USING ERRCODE = 'active_sql_transaction',
                  DETAIL = 'The fold reads the usage and the queue as committed after it takes its lock.';
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock('subbilling_internal.kpi_usage_queue'::pg_catalog.regclass::oid::bigint);
    FOR acct IN SELECT DISTINCT q.account_id FROM subbilling_internal.kpi_usage_queue q ORDER BY 1 LOOP
        n := n + subbilling_internal.kpi_usage_fold_account(acct);
    END LOOP;
    RETURN n;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_usage_fold_citus() IS 'internal (Citus): kpi_usage_fold account by account (kpi_usage_fold_account, each on its shard), under the fold''s lock; returns the queue rows folded';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_usage_fold_citus() FROM PUBLIC;

-- ---------------------------------------------------------------- the worker's events relay
-- The background worker calls this after each cycle on Citus (src/worker.c): with
-- subbilling.notify off (as Citus needs), every committed event not yet announced is
-- announced from the coordinator by relay_events, a thousand at a time.  Elsewhere, or with
-- subbilling.notify on, nothing: the functions announce their own events.
CREATE FUNCTION subbilling_internal.worker_relay_events() RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    n   integer := 0;
    k   integer;
BEGIN
    IF NOT subbilling_internal.on_citus() OR subbilling_internal.notify_enabled() THEN
        RETURN 0;
    END IF;
    LOOP
        k := subbilling.relay_events(1000);
        n := n + k;
        EXIT WHEN k < 1000;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling_internal.worker_relay_events() IS 'internal (Citus): the background worker''s events relay after each cycle: relay_events until every committed event is announced, when subbilling.notify is off; 0 otherwise';
REVOKE ALL ON FUNCTION subbilling_internal.worker_relay_events() FROM PUBLIC;
