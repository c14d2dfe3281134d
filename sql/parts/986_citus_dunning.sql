
-- ============================================================================
-- Dunning on Citus (docs/citus.md), delegated by shard like billing
-- (985_citus_billing.sql): a dunning batch reads the due invoices without
-- locks, groups them by the shard of their account and makes one call of
-- dunning_accounts_citus per group, routed to the worker that holds the
-- shard.  Used by dunning_batch only when the citus extension is installed;
-- a single server dunns set-based in dunning_batch.
-- ============================================================================

-- The dunning of a group of accounts that live in one shard, run on the worker that holds
-- the shard (dunning_batch_citus calls it in a query routed to that shard; distribute()
-- registers it for delegation by account, colocated with accounts): the group's invoices
-- are claimed by (account_id, id) with SKIP LOCKED in one statement, skipping the ones a
-- payment or another batch holds or that are no longer open, and their steps taken as on a
-- single server (dunning_invoice): the whole group in one subtransaction, falling back to
-- one invoice at a time, each failure recorded in billing_errors.  Every statement works on
-- the group's shard alone and runs there locally.  The fee invoices' numbers continue the
-- batch's blocks (next_numbers, one per series_ids; take_invoice_number counts them in
-- transaction-local settings, which a rolled-back subtransaction undoes); fee-invoice,
-- journal-entry and event ids come from the pools the coordinator drew (emit_event,
-- book_entry and dunning_fee_invoice take them from there when set).  Returns steps,
-- errors, invoices claimed, then the next number of each series.  Planned at each execution
-- (plan_cache_mode), as bill_accounts_citus is: Citus 13.2's local plan cache grows by a plan
-- per execution of a cached generic plan on the shard's node.
CREATE FUNCTION subbilling_internal.dunning_accounts_citus(acct bigint, account_ids bigint[], invoice_ids bigint[],
                                                           as_of date, run_id bigint,
                                                           series_ids bigint[], next_numbers bigint[],
                                                           invoice_pool text, entry_pool text, event_pool text)
    RETURNS bigint[]
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
    SET plan_cache_mode = force_custom_plan
AS $$
#variable_conflict use_variable
DECLARE
    err_at  timestamptz := as_of::timestamp AT TIME ZONE 'UTC';
    accs    bigint[] := ARRAY(SELECT DISTINCT x FROM unnest(account_ids) x ORDER BY x);
    nxt     bigint[] := next_numbers;
    c_acc   bigint[];
    c_inv   bigint[];
    ok_acc  bigint[] := '{}';
    ok_inv  bigint[] := '{}';
    steps   integer := 0;
    errors  integer := 0;
    n       integer;
    k       integer;
    e_acc   bigint;
    e_inv   bigint;
    st      text;
    msg     text;
    det     text;
BEGIN
    PERFORM set_config('subbilling_internal.ids_invoices', invoice_pool, true),
            set_config('subbilling_internal.ids_journal_entries', entry_pool, true),
            set_config('subbilling_internal.ids_events', event_pool, true),
            set_config('subbilling_internal.number_block', 'on', true);
    FOR k IN 1 .. coalesce(cardinality(series_ids), 0) LOOP
        PERFORM set_config('subbilling_internal.number_next_' || series_ids[k], nxt[k]::text, true);
    END LOOP;
    -- claim the group's invoices of the batch, in one statement on the shard
    SELECT coalesce(array_agg(x.account_id ORDER BY x.account_id, x.id), '{}'),
           coalesce(array_agg(x.id ORDER BY x.account_id, x.id), '{}')
      INTO c_acc, c_inv
      FROM (SELECT x.account_id, x.id FROM subbilling.invoices x
             WHERE x.account_id = ANY (accs) AND x.id = ANY (invoice_ids) AND x.status = 'open'
               FOR UPDATE SKIP LOCKED) x;
    n := cardinality(c_inv);
    IF n > 0 THEN
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
                    -- (no subscripts in a distributed statement: Citus's deparser cannot take them)
                    e_acc := c_acc[k];
                    e_inv := c_inv[k];
                    INSERT INTO subbilling.billing_errors (account_id, invoice_id, run_id, as_of, sqlstate, message, detail)
                    VALUES (e_acc, e_inv, run_id, err_at, st, msg, nullif(det, ''));
                    errors := errors + 1;
                END;
            END LOOP;
        END;
        -- open dunning errors of the invoices dunned now are resolved, in one statement on the shard
        IF cardinality(ok_inv) > 0 THEN
            UPDATE subbilling.billing_errors e SET resolved_at = now()
             WHERE e.account_id = ANY (accs) AND e.invoice_id = ANY (ok_inv) AND e.resolved_at IS NULL;
        END IF;
    END IF;
    -- where the blocks got to
    FOR k IN 1 .. coalesce(cardinality(series_ids), 0) LOOP
        nxt[k] := current_setting('subbilling_internal.number_next_' || series_ids[k])::bigint;
        PERFORM set_config('subbilling_internal.number_next_' || series_ids[k], '', true);
    END LOOP;
    PERFORM set_config('subbilling_internal.ids_invoices', '', true),
            set_config('subbilling_internal.ids_journal_entries', '', true),
            set_config('subbilling_internal.ids_events', '', true),
            set_config('subbilling_internal.number_block', 'off', true);
    RETURN ARRAY[steps, errors, n]::bigint[] || nxt;
END
$$;
COMMENT ON FUNCTION subbilling_internal.dunning_accounts_citus(bigint, bigint[], bigint[], date, bigint, bigint[], bigint[], text, text, text) IS 'internal (Citus): take the due dunning steps of a group of invoices of one shard, on the shard''s worker (delegated by account): claim by (account_id, id) with SKIP LOCKED, one subtransaction, falling back to one per invoice (billing_errors); ids from the coordinator''s pools, numbers from the batch''s blocks; returns steps, errors, claimed, next numbers';
REVOKE ALL ON FUNCTION subbilling_internal.dunning_accounts_citus(bigint, bigint[], bigint[], date, bigint, bigint[], bigint[], text, text, text) FROM PUBLIC;

-- The dunning batch on Citus (dunning_batch calls it when the citus extension is installed):
-- the due invoices are read without locks (dunning_due, one query over the shards; the
-- invoices with an open dunning error on this date left out) and grouped by the shard of
-- their account; each group is dunned by one call of dunning_accounts_citus, routed to the
-- worker that holds the shard (a query on the group's first account).  Before the groups
-- the coordinator locks the counter of the as_of year's series (fee invoices are dated
-- as_of) and holds the outbox slot; before each group it draws the group's fee-invoice,
-- journal-entry and event ids (enough for every step of the longest policy on each invoice;
-- unused ids are left unused), and after it announces the group's events.  The counter is
-- moved once, at the end: the numbers stay gapless and follow the order of the groups.
-- Whether an invoice still owes anything is checked on its worker, under its row lock.
CREATE FUNCTION subbilling_internal.dunning_batch_citus(batch_size integer, as_of date,
                                                        OUT steps integer, OUT errors integer, OUT more boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    err_at  timestamptz := as_of::timestamp AT TIME ZONE 'UTC';
    b_acc   bigint[];
    b_inv   bigint[];
    acc     bigint[];
    inv     bigint[];
    shard   bigint[];
    sid     bigint;
    ser     bigint[];
    nxt     bigint[];
    first_  bigint;
    res     bigint[];
    grp     record;
    ev      record;
    n       integer;
    s       integer;
    ids_i   bigint[];
    ids_j   bigint[];
    ids_e   bigint[];
    claimed integer := 0;
    run     bigint := current_run_id();
    notify  boolean := subbilling_internal.notify_enabled();
BEGIN
    steps := 0;
    errors := 0;
    more := false;
    -- one connection per node: the batch writes reference tables (the invoice counter, the
    -- outbox slot) besides the groups' shards
    PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    -- the invoices whose dunning failed on this date (rarely any), then the due ones
    SELECT coalesce(array_agg(e.account_id), '{}'), coalesce(array_agg(e.invoice_id), '{}')
      INTO b_acc, b_inv
      FROM subbilling.billing_errors e
     WHERE e.invoice_id IS NOT NULL AND e.resolved_at IS NULL AND e.as_of >= err_at;
    SELECT array_agg(q.account_id ORDER BY q.next_on, q.account_id, q.invoice_id),
           array_agg(q.invoice_id ORDER BY q.next_on, q.account_id, q.invoice_id)
      INTO acc, inv
      FROM (SELECT d.account_id, d.invoice_id, d.next_on
              FROM subbilling.dunning_due(as_of) d
             WHERE NOT EXISTS (SELECT FROM unnest(b_acc, b_inv) AS b(a, i)
                                WHERE b.a = d.account_id AND b.i = d.invoice_id)
             ORDER BY d.next_on, d.account_id, d.invoice_id
             LIMIT batch_size) q;
    IF inv IS NULL THEN
        RETURN;
    END IF;
    n := cardinality(inv);
    -- the fee invoices' series (dated as_of), created if missing, its counter locked for the batch
    -- (scalars, not subscripts, in the distributed statements: Citus's deparser cannot take them)
    sid := subbilling_internal.series_for(as_of);
    SELECT ct.next_number INTO first_ FROM subbilling.invoice_counters ct WHERE ct.series_id = sid FOR UPDATE;
    ser := ARRAY[sid];
    nxt := ARRAY[first_];
    -- the most steps an invoice can take at once: the overdue notice and every step of the
    -- longest policy
    s := 1 + coalesce((SELECT max(c) FROM (SELECT count(*) AS c FROM subbilling.dunning_steps x GROUP BY x.policy_id) q), 0);
    -- the shard of each account (one group for all without the citus extension)
    IF EXISTS (SELECT FROM pg_catalog.pg_extension x WHERE x.extname = 'citus') THEN
        EXECUTE $q$SELECT array_agg(pg_catalog.get_shard_id_for_distribution_column('subbilling.accounts', u.a) ORDER BY u.o)
                     FROM unnest($1) WITH ORDINALITY AS u(a, o)$q$ INTO shard USING acc;
    ELSE
        shard := array_fill(0::bigint, ARRAY[n]);
    END IF;
    -- the outbox slot, held before the event ids are drawn (events_after's watermark)
    PERFORM subbilling_internal.outbox_reserve();
    FOR grp IN
        SELECT min(u.acc) AS first_acc, array_agg(u.acc ORDER BY u.acc, u.inv) AS accs,
               array_agg(u.inv ORDER BY u.acc, u.inv) AS invs
          FROM unnest(shard, acc, inv) AS u(shard, acc, inv)
         GROUP BY u.shard
         ORDER BY min(u.acc)
    LOOP
        n := cardinality(grp.invs);
        -- per step at most one fee invoice; its entry, the interest's, a credit applied or a
        -- payment requested, and the write-off of the invoice and each fee invoice; its event,
        -- the fee invoice's, the booking's and a suspension's
        ids_i := ARRAY(SELECT nextval('subbilling.invoices_id_seq'::regclass) FROM generate_series(1, n * s));
        ids_j := ARRAY(SELECT nextval('subbilling.journal_entries_id_seq'::regclass) FROM generate_series(1, n * s * (s + 4) + 4));
        ids_e := ARRAY(SELECT nextval('subbilling.events_id_seq'::regclass) FROM generate_series(1, n * s * 6 + 8));
        -- routed to the worker that holds the group's shard, and run there
        SELECT subbilling_internal.dunning_accounts_citus(a.id, grp.accs, grp.invs, as_of, run, ser, nxt,
                                                          subbilling_internal.citus_id_pool(ids_i),
                                                          subbilling_internal.citus_id_pool(ids_j),
                                                          subbilling_internal.citus_id_pool(ids_e))
          INTO res
          FROM subbilling.accounts a
         WHERE a.id = grp.first_acc;
        CONTINUE WHEN res IS NULL;
        steps := steps + res[1];
        errors := errors + res[2];
        claimed := claimed + res[3];
        nxt := res[4:];
        IF notify AND res[1] + res[2] > 0 THEN
            FOR ev IN SELECT e.id, e.type, e.account_id, e.subscription_id, e.invoice_id
                        FROM subbilling.events e
                       WHERE e.account_id = ANY (grp.accs) AND e.id = ANY (ids_e)
                       ORDER BY e.id LOOP
                PERFORM subbilling_internal.outbox_notify(ev.id, ev.type, ev.account_id, ev.subscription_id, ev.invoice_id);
            END LOOP;
        END IF;
    END LOOP;
    -- a full batch of which nothing could be done (all claimed elsewhere) is not progress
    more := cardinality(inv) = batch_size AND steps + errors > 0;
    -- the counter moved once, by what the batch numbered
    IF nxt[1] <> first_ THEN
        first_ := nxt[1];
        UPDATE subbilling.invoice_counters ct SET next_number = first_ WHERE ct.series_id = sid;
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling_internal.dunning_batch_citus(integer, date) IS 'internal (Citus): dunning_batch by shard: the due invoices grouped by the shard of their account, each group dunned by one call of dunning_accounts_citus on its worker (claims by (account_id, id) with SKIP LOCKED, per-invoice fallback into billing_errors), ids drawn on the coordinator, fee-invoice numbers from one block, the counter moved once';
REVOKE ALL ON FUNCTION subbilling_internal.dunning_batch_citus(integer, date) FROM PUBLIC;
