-- Dunning on Citus delegated by shard (docs/citus.md "Dunning on Citus"): the due invoices
-- grouped by the shard of their account, each group dunned by one call of
-- dunning_accounts_citus on its worker (registered by distribute()), ids drawn on the
-- coordinator; finalize_draft and set_subscription_status_row take rows locked by the caller
-- (no look-up by id alone on a worker); new in 0.3.  The changed functions (dunning_batch,
-- dunning_fee_invoice, dunning_take_step, finalize_invoice, set_subscription_status_on,
-- emit_event, book_entry, distribute) are re-created by 999_refresh.sql.

CREATE FUNCTION subbilling_internal.finalize_draft(i subbilling.invoices)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    a       subbilling.accounts;
    today   date;
    t       record;
    num     record;
    ref     text;
BEGIN
    IF i.status <> 'draft' THEN
        RAISE EXCEPTION 'invoice % is %, not a draft', coalesce(i.number, i.id::text), i.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT sum(l.net) AS net, sum(l.tax) AS tax, count(*) AS n INTO t
      FROM subbilling.invoice_lines l WHERE l.account_id = i.account_id AND l.invoice_id = i.id;
    IF t.n = 0 THEN
        RAISE EXCEPTION 'draft invoice % has no lines', i.id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF currency(t.net) <> i.currency THEN
        RAISE EXCEPTION 'the lines of draft invoice % are not in its currency %', i.id, i.currency
            USING ERRCODE = 'data_exception';
    END IF;
    SELECT * INTO a FROM subbilling.accounts x WHERE x.id = i.account_id;
    today := coalesce(i.issue_date, (now() AT TIME ZONE a.time_zone)::date);
    num := subbilling_internal.take_invoice_number(today);
    -- computed here: Citus refuses a STABLE function of the row's columns in an UPDATE
    ref := payment_reference(a.country, i.id);
    UPDATE subbilling.invoices x
       SET status = 'open', series_id = num.series_id, number_seq = num.number_seq, number = num.number,
           net = t.net, tax = t.tax, total = t.net + t.tax,
           kind = CASE WHEN x.credits_invoice_id IS NULL AND t.net + t.tax < price_minor(0, x.currency)
                       THEN 'credit_note' ELSE x.kind END,
           issue_date = today, due_date = coalesce(x.due_date, today + a.payment_terms_days),
           reference = ref, finalized_at = now()
     WHERE x.account_id = i.account_id AND x.id = i.id
    RETURNING x.* INTO i;
    PERFORM subbilling_internal.emit_event(i.account_id, 'invoice.finalized', i.subscription_id,
        jsonb_build_object('invoice_id', i.id, 'kind', i.kind, 'status', i.status, 'number', i.number,
                           'series', (SELECT sr.code FROM subbilling.invoice_series sr WHERE sr.id = i.series_id),
                           'currency', i.currency, 'net', i.net::text, 'tax', i.tax::text, 'total', i.total::text,
                           'total_minor', minor_units(i.total), 'issue_date', i.issue_date,
                           'due_date', i.due_date, 'reference', i.reference), i.id);
    PERFORM subbilling_internal.book_invoices(ARRAY[i.account_id], ARRAY[i.id]);   -- the receivables ledger
    RETURN i.id;
END
$$;

COMMENT ON FUNCTION subbilling_internal.finalize_draft(subbilling.invoices) IS 'internal: finalize_invoice of a draft invoice row locked by the caller; returns its id';

REVOKE ALL ON FUNCTION subbilling_internal.finalize_draft(subbilling.invoices) FROM PUBLIC;

CREATE FUNCTION subbilling_internal.set_subscription_status_row(s subbilling.subscriptions, status text, reason text,
                                                                on_date date)
    RETURNS text
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    st  text;
BEGIN
    IF set_subscription_status_row.status IS NULL
       OR set_subscription_status_row.status NOT IN ('past_due', 'suspended', 'active') THEN
        RAISE EXCEPTION 'set_subscription_status sets past_due, suspended or active, not %',
                        coalesce(set_subscription_status_row.status, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Trials, pauses and cancellations follow from subscribe, pause, resume and cancel.';
    END IF;
    IF set_subscription_status_row.status = 'active' AND s.status NOT IN ('past_due', 'suspended') THEN
        RAISE EXCEPTION 'subscription % is %, not past_due or suspended', s.id, s.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF set_subscription_status_row.status = s.status THEN
        RAISE EXCEPTION 'subscription % is already %', s.id, s.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    PERFORM subbilling_internal.transition(s, set_subscription_status_row.status);
    PERFORM subbilling_internal.record_suspension(s.account_id, s.id, s.status, set_subscription_status_row.status,
                                                  on_date, reason);
    IF set_subscription_status_row.status = 'active' THEN
        -- back from a payment state to what the dates say (active, or canceled)
        st := subbilling_internal.refresh_status(s.id, s.account_id);
    ELSE
        st := set_subscription_status_row.status;
    END IF;
    PERFORM subbilling_internal.emit_event(s.account_id,
                       CASE set_subscription_status_row.status WHEN 'active' THEN 'subscription.reactivated'
                            ELSE 'subscription.' || set_subscription_status_row.status END,
                       s.id,
                       jsonb_build_object('previous_status', s.status, 'status', st, 'reason', reason));
    RETURN st;
END
$$;

COMMENT ON FUNCTION subbilling_internal.set_subscription_status_row(subbilling.subscriptions, text, text, date) IS 'internal: set_subscription_status_on of a subscription row locked by the caller';

REVOKE ALL ON FUNCTION subbilling_internal.set_subscription_status_row(subbilling.subscriptions, text, text, date) FROM PUBLIC;

CREATE FUNCTION subbilling_internal.dunning_accounts_citus(acct bigint, account_ids bigint[], invoice_ids bigint[],
                                                           as_of date, run_id bigint,
                                                           series_ids bigint[], next_numbers bigint[],
                                                           invoice_pool text, entry_pool text, event_pool text)
    RETURNS bigint[]
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
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
