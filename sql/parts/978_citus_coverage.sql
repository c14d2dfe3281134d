
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

-- The claim files' candidates on Citus: the payment requests still requested of the
-- accounts that pay by `method` ('autogiro' with an active mandate, 'avtalegiro' with an
-- active agreement), read over every shard without locks, then locked one by one by
-- (account_id, id), in account and id order, each lock a statement on the row's shard;
-- returns the ids locked, which the caller reads again.  The reads over every shard go one
-- shard at a time (citus.multi_shard_modify_mode), so that the transaction may then write
-- the claims (reference tables).
CREATE FUNCTION subbilling_internal.lock_payment_requests_citus(method text) RETURNS bigint[]
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    accts   bigint[];
    ids     bigint[];
    k       integer;
    locked  bigint[] := '{}';
BEGIN
    PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);
    EXECUTE format($q$SELECT array_agg(r.account_id ORDER BY r.account_id, r.id), array_agg(r.id ORDER BY r.account_id, r.id)
                        FROM subbilling.payment_requests r
                        JOIN subbilling.payment_methods pm ON pm.account_id = r.account_id AND pm.id = r.payment_method_id
                        JOIN subbilling.%I m ON m.account_id = r.account_id AND m.status = 'active'
                       WHERE pm.kind = $1 AND r.status = 'requested'$q$,
                   CASE method WHEN 'autogiro' THEN 'autogiro_mandates' ELSE 'avtalegiro_agreements' END)
       INTO accts, ids USING method;
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
COMMENT ON FUNCTION subbilling_internal.lock_payment_requests_citus(text) IS 'internal (Citus): the requested payment requests of the accounts paying by autogiro (active mandate) or avtalegiro (active agreement), read over every shard, then locked one by one by (account_id, id) on their shards; returns the ids locked';
REVOKE ALL ON FUNCTION subbilling_internal.lock_payment_requests_citus(text) FROM PUBLIC;

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
