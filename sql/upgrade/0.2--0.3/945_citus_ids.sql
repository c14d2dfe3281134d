-- Citus ids and pools (issue #18): every event and journal entry written inside the
-- delegated billing call takes its id from the coordinator's pools, whatever the path
-- (emit_event and book_entry take them from the pools when the call set them: a payment
-- stop lifted by customer credit, a subscription's status, a fee invoice voided); a pool
-- used up inside the call sends the account back to the coordinator, which bills it again
-- with pools sized by its open invoices (citus_take_id, bill_accounts_citus,
-- bill_batch_citus).  One code path where there were two: the claim files' candidates read
-- and locked by lock_payment_requests_citus(method); the usage fold's one statement
-- (kpi_usage_fold_account: every account with NULL, for kpi_usage_fold on one server; one
-- account on Citus, where kpi_usage_fold now runs it account by account and
-- kpi_usage_fold_citus is gone); Citus booking in book_account_citus alone, its short way
-- (book_new_invoices_citus before) and its first step sharing book_issued_citus.  New in 0.3.

DROP FUNCTION subbilling_internal.lock_payment_requests_citus(bigint[], bigint[]);
DROP FUNCTION subbilling_internal.kpi_usage_fold_citus();
DROP FUNCTION subbilling_internal.book_new_invoices_citus(bigint, bigint[]);
DROP FUNCTION subbilling_internal.book_account_citus(bigint, bigint[]);

CREATE OR REPLACE FUNCTION subbilling_internal.emit_event(account_id bigint, type text, subscription_id bigint,
                                      payload jsonb, invoice_id bigint DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    ev      subbilling.events;
BEGIN
    IF coalesce(current_setting('subbilling_internal.ids_events', true), '') <> '' THEN
        -- inside a delegated billing call on a Citus worker (bill_accounts_citus): the id
        -- from the pool the coordinator drew (events_after's order), the coordinator holds
        -- the outbox slot and announces the call's events; whatever path writes the event
        -- (the booking, a payment stop lifted, a subscription's status) takes it from there
        ev.id := subbilling_internal.citus_take_id('events');
        INSERT INTO subbilling.events (account_id, id, type, subscription_id, invoice_id, payload)
        VALUES (emit_event.account_id, ev.id, emit_event.type, emit_event.subscription_id,
                emit_event.invoice_id, coalesce(emit_event.payload, '{}'));
        RETURN ev.id;
    END IF;
    PERFORM subbilling_internal.outbox_reserve();
    INSERT INTO subbilling.events AS e (account_id, type, subscription_id, invoice_id, payload)
    VALUES (emit_event.account_id, emit_event.type, emit_event.subscription_id,
            emit_event.invoice_id, coalesce(emit_event.payload, '{}'))
    RETURNING e.* INTO ev;
    PERFORM subbilling_internal.outbox_notify(ev.id, ev.type, ev.account_id, ev.subscription_id, ev.invoice_id);
    RETURN ev.id;
END
$$;
COMMENT ON FUNCTION subbilling_internal.emit_event(bigint, text, bigint, jsonb, bigint) IS 'internal: write an event row and pg_notify(''subbilling'') its identifiers in the current transaction; inside a delegated billing call on Citus the id comes from the coordinator''s pool (citus_take_id), announced by the coordinator';

CREATE OR REPLACE FUNCTION subbilling_internal.book_entry(account_id bigint, kind text, booked_on date, codes text[],
                                      amounts subbilling.price[], invoice_id bigint DEFAULT NULL,
                                      payment_id bigint DEFAULT NULL, memo text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    cur     text;
    n       integer := coalesce(cardinality(codes), 0);
    eid     bigint;
    bad     text;
    diff    subbilling.price;
    rc      text;
    cc      text;
BEGIN
    IF account_id IS NULL OR kind IS NULL OR booked_on IS NULL THEN
        RAISE EXCEPTION 'book_entry needs an account, a kind and a booking date'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT a.currency INTO cur FROM subbilling.accounts a WHERE a.id = book_entry.account_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account % does not exist', book_entry.account_id
            USING ERRCODE = 'undefined_object';
    END IF;
    IF n < 2 OR n <> coalesce(cardinality(amounts), 0) THEN
        RAISE EXCEPTION 'a journal entry needs at least two lines, one code per amount'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s codes and %s amounts.', n, coalesce(cardinality(amounts), 0));
    END IF;
    IF array_position(codes, NULL) IS NOT NULL OR array_position(amounts, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'journal line codes and amounts must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c INTO bad FROM unnest(codes) c
     WHERE NOT EXISTS (SELECT 1 FROM subbilling.ledger_accounts la WHERE la.code = c) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unknown ledger account "%"', bad
            USING ERRCODE = 'foreign_key_violation', HINT = 'See subbilling.ledger_accounts.';
    END IF;
    SELECT x::text INTO bad FROM unnest(amounts) x WHERE currency(x) <> cur LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'amount % is not in the account''s currency %', bad, cur
            USING ERRCODE = 'data_exception';
    END IF;
    diff := (SELECT sum(x) FROM unnest(amounts) x);
    IF minor_units(diff) <> 0 THEN
        RAISE EXCEPTION 'journal entry does not balance'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Its lines sum to %s, not zero.', diff),
                  HINT = 'Debits (positive amounts) must equal credits (negative amounts).';
    END IF;
    rc := subbilling_internal.ledger_mapping('receivables', cur, NULL);
    cc := subbilling_internal.ledger_mapping('customer_credit', cur, NULL);
    IF rc = ANY (codes) AND invoice_id IS NULL THEN
        RAISE EXCEPTION 'a receivables line needs the invoice it belongs to'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Lines on the receivables account change an open item: pass invoice_id.';
    END IF;
    IF invoice_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM subbilling.invoices i
                                               WHERE i.account_id = book_entry.account_id AND i.id = book_entry.invoice_id
                                                 AND i.status <> 'draft') THEN
        RAISE EXCEPTION 'invoice % is not an issued invoice of account %', invoice_id, account_id
            USING ERRCODE = 'undefined_object';
    END IF;

    -- one statement: the entry and its lines are checked together even
    -- under SET CONSTRAINTS ALL IMMEDIATE
    -- (inside a delegated billing call on a Citus worker: from the coordinator's pool)
    IF coalesce(current_setting('subbilling_internal.ids_journal_entries', true), '') = '' THEN
        eid := nextval('subbilling.journal_entries_id_seq'::regclass);
    ELSE
        eid := subbilling_internal.citus_take_id('journal_entries');
    END IF;
    WITH e AS (
        INSERT INTO subbilling.journal_entries (account_id, id, kind, booked_on, invoice_id, payment_id, memo)
        VALUES (book_entry.account_id, eid, book_entry.kind, book_entry.booked_on, book_entry.invoice_id,
                book_entry.payment_id, book_entry.memo)
    )
    INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id)
    SELECT book_entry.account_id, eid, x.code, x.amount,
           CASE x.code WHEN rc THEN 'receivables' WHEN cc THEN 'customer_credit' END,
           CASE WHEN x.code = rc THEN book_entry.invoice_id END
      FROM unnest(codes, amounts) WITH ORDINALITY AS x(code, amount, ord)
     WHERE minor_units(x.amount) <> 0
     ORDER BY x.ord;
    RETURN eid;
END
$$;
COMMENT ON FUNCTION subbilling_internal.book_entry(bigint, text, date, text[], subbilling.price[], bigint, bigint, text) IS 'book one balanced journal entry for an account: codes[i] gets amounts[i] (debit > 0, credit < 0, zero amounts skipped); receivables lines belong to invoice_id; returns the entry id';

CREATE OR REPLACE FUNCTION subbilling_internal.kpi_usage_fold_account(acct bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = subbilling, pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE regexp_replace($f$
    WITH q AS (
        DELETE FROM subbilling_internal.kpi_usage_queue q
         WHERE true {q}
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
                 WHERE i.account_id = w.account_id {i} AND i.subscription_id = w.subscription_id
                   AND i.kind = 'base' AND i.voided_at IS NULL AND i.validity @> current_date
                 ORDER BY i.id LIMIT 1) AS billing_period
          FROM subbilling_internal.kpi_usage_periods w
          JOIN subbilling.subscriptions s ON s.account_id = w.account_id AND s.id = w.subscription_id
         WHERE (w.account_id, w.subscription_id) IN (SELECT d.account_id, d.subscription_id FROM d) {w} {s}
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
         WHERE NOT k.same AND k.billing_period IS NOT NULL {u}
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
         WHERE w.account_id = r.account_id AND w.subscription_id = r.subscription_id {w}
    )
    SELECT coalesce(sum(d.n), 0) FROM d
    $f$, '\{([a-z])\}', CASE WHEN acct IS NULL THEN '' ELSE 'AND \1.account_id = ' || acct END, 'g') INTO n;
    RETURN n;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_usage_fold_account(bigint) IS 'internal: the usage fold''s one statement: every account''s queued usage (NULL, kpi_usage_fold) or one account''s, every table read on its rows (Citus: on the account''s shard); returns the queue rows folded';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_usage_fold_account(bigint) FROM PUBLIC;

CREATE OR REPLACE FUNCTION subbilling_internal.kpi_usage_fold() RETURNS bigint
LANGUAGE plpgsql SET search_path = subbilling, pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
    acct bigint;
BEGIN
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'kpi_usage_fold runs in a read committed transaction'
            USING ERRCODE = 'active_sql_transaction',
                  DETAIL = 'The fold reads the usage and the queue as committed after it takes its lock.';
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock('subbilling_internal.kpi_usage_queue'::pg_catalog.regclass::oid::bigint);
    IF subbilling_internal.on_citus() THEN
        -- on Citus account by account, each account's fold one statement routed to its shard
        -- (the accounts with queued usage read over every shard, without locks; the lock is
        -- the coordinator's: folds take turns there, as on one server)
        n := 0;
        FOR acct IN SELECT DISTINCT q.account_id FROM subbilling_internal.kpi_usage_queue q ORDER BY 1 LOOP
            n := n + subbilling_internal.kpi_usage_fold_account(acct);
        END LOOP;
        RETURN n;
    END IF;
    -- the fold's one statement over every queued account
    RETURN subbilling_internal.kpi_usage_fold_account(NULL);
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_usage_fold() IS 'internal: folds the queued usage changes into the kept per-period usage of their subscriptions (keying unkeyed and re-keyed subscriptions from all their usage; on Citus account by account, each on its shard); one fold at a time, safe to repeat; returns the queue rows folded';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_usage_fold() FROM PUBLIC;

CREATE OR REPLACE FUNCTION subbilling_internal.lock_payment_requests_citus(method text) RETURNS bigint[]
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

CREATE OR REPLACE FUNCTION subbilling.autogiro_claim_file(run_date date, customer_number text, bankgiro text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    fid     bigint;
    body    text;
    ids     bigint[];
    attempts integer[];
    accts   bigint[];
    payers  text[];
    dues    date[];
    amounts subbilling.price[];
    refs    text[];
    out_ids bigint[];
    outs    record;
    locked  bigint[];
BEGIN
    PERFORM subbilling_internal.check_date('run_date', run_date);
    PERFORM subbilling_internal.lock_row('autogiro_claims');
    SELECT f.content INTO body FROM subbilling.autogiro_files f WHERE f.kind = 'claims' AND f.run_date = autogiro_claim_file.run_date;
    IF FOUND THEN
        RETURN body;        -- rebuilt for the same day: the same claims
    END IF;
    IF subbilling_internal.on_citus() THEN
        -- on Citus a query over every shard cannot lock: the candidates are locked one by one
        -- by (account_id, id), then read again (docs/citus.md)
        locked := subbilling_internal.lock_payment_requests_citus('autogiro');
        SELECT coalesce(array_agg(d.id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.attempt ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.account_id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.payer_number ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.due ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.amount ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(coalesce(d.reference, '') ORDER BY d.account_id, d.id), '{}')
          INTO ids, attempts, accts, payers, dues, amounts, refs
          FROM (SELECT r.id, r.attempt, r.account_id, m.payer_number, greatest(i.due_date, run_date) AS due, r.amount, i.reference
                  FROM subbilling.payment_requests r
                  JOIN subbilling.payment_methods pm ON pm.account_id = r.account_id AND pm.id = r.payment_method_id
                  JOIN subbilling.invoices i ON i.account_id = r.account_id AND i.id = r.invoice_id
                  JOIN subbilling.autogiro_mandates m ON m.account_id = r.account_id AND m.status = 'active'
                 WHERE pm.kind = 'autogiro' AND r.status = 'requested' AND i.currency = 'SEK'
                   AND NOT EXISTS (SELECT 1 FROM subbilling.autogiro_claims c
                                    WHERE c.payment_request_id = r.id AND c.attempt = r.attempt)
                   AND r.id = ANY (locked)) d;
    ELSE
        SELECT coalesce(array_agg(d.id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.attempt ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.account_id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.payer_number ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.due ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.amount ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(coalesce(d.reference, '') ORDER BY d.account_id, d.id), '{}')
          INTO ids, attempts, accts, payers, dues, amounts, refs
          FROM (SELECT r.id, r.attempt, r.account_id, m.payer_number, greatest(i.due_date, run_date) AS due, r.amount, i.reference
                  FROM subbilling.payment_requests r
                  JOIN subbilling.payment_methods pm ON pm.account_id = r.account_id AND pm.id = r.payment_method_id
                  JOIN subbilling.invoices i ON i.account_id = r.account_id AND i.id = r.invoice_id
                  JOIN subbilling.autogiro_mandates m ON m.account_id = r.account_id AND m.status = 'active'
                 WHERE pm.kind = 'autogiro' AND r.status = 'requested' AND i.currency = 'SEK'
                   AND NOT EXISTS (SELECT 1 FROM subbilling.autogiro_claims c
                                    WHERE c.payment_request_id = r.id AND c.attempt = r.attempt)
                   FOR UPDATE OF r) d;
    END IF;
    -- refunds to pay back (autogiro_refund): outgoing payments (32), written as negative amounts
    SELECT coalesce(array_agg(o.id ORDER BY o.id), '{}') AS ids,
           coalesce(array_agg(o.payer_number ORDER BY o.id), '{}') AS payers,
           coalesce(array_agg(greatest(o.pay_date, run_date) ORDER BY o.id), '{}') AS dates,
           coalesce(array_agg(-minor_units(o.amount) ORDER BY o.id), '{}') AS minor,
           coalesce(array_agg(o.reference ORDER BY o.id), '{}') AS refs
      INTO outs
      FROM (SELECT x.* FROM subbilling.autogiro_payouts x WHERE x.file_id IS NULL AND x.outcome = 'sent'
               FOR UPDATE) o;
    body := subbilling_internal.autogiro_claims_text(
        run_date, customer_number, bankgiro, dues || outs.dates, payers || outs.payers,
        (SELECT coalesce(array_agg(minor_units(a) ORDER BY k), '{}') FROM unnest(amounts) WITH ORDINALITY AS u(a, k))
            || outs.minor,
        refs || outs.refs);
    INSERT INTO subbilling.autogiro_files AS f (kind, run_date, sha256, content)
    VALUES ('claims', run_date, sha256(convert_to(body, 'LATIN1')), body)
    RETURNING f.id INTO fid;
    out_ids := outs.ids;
    UPDATE subbilling.autogiro_payouts x SET file_id = fid, pay_date = greatest(x.pay_date, run_date)
     WHERE x.id = ANY (out_ids);
    INSERT INTO subbilling.autogiro_claims (payment_request_id, attempt, account_id, file_id, payer_number, due_date,
                                            amount, reference)
    SELECT u.id, u.attempt, u.account_id, fid, u.payer_number, u.due, u.amount, u.reference
      FROM unnest(ids, attempts, accts, payers, dues, amounts, refs)
           AS u(id, attempt, account_id, payer_number, due, amount, reference);
    RETURN body;
END
$$;
COMMENT ON FUNCTION subbilling.autogiro_claim_file(date, text, text) IS
    'the Autogiro payment-claim file of a run date (payee''s customer number at Bankgirot and bankgiro number): a claim (82) for every requested payment of an account paying by Autogiro with an active mandate, not claimed before, due on the invoice''s due date (or the run date if later), amount the request''s, reference the invoice''s; an outgoing payment (32) for every refund of autogiro_refund not sent before; the same run date again returns the same file';

CREATE OR REPLACE FUNCTION subbilling.avtalegiro_claim_file(run_date date, data_transmitter text, agreement_id text,
                                                 assignment_account text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    fid     bigint;
    body    text;
    ids     bigint[];
    attempts integer[];
    accts   bigint[];
    kids    text[];
    notes   boolean[];
    dues    date[];
    amounts subbilling.price[];
    names   text[];
    specs   text[];
    locked  bigint[];
BEGIN
    PERFORM subbilling_internal.check_date('run_date', run_date);
    PERFORM subbilling_internal.lock_row('avtalegiro_claims');
    SELECT f.content INTO body FROM subbilling.avtalegiro_files f
     WHERE f.kind = 'claims' AND f.run_date = avtalegiro_claim_file.run_date;
    IF FOUND THEN
        RETURN body;        -- rebuilt for the same day: the same claims
    END IF;
    IF subbilling_internal.on_citus() THEN
        -- on Citus a query over every shard cannot lock: the candidates are locked one by one
        -- by (account_id, id), then read again (docs/citus.md)
        locked := subbilling_internal.lock_payment_requests_citus('avtalegiro');
        SELECT coalesce(array_agg(d.id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.attempt ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.account_id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.kid ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.notify ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.due ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.amount ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.name ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.spec ORDER BY d.account_id, d.id), '{}')
          INTO ids, attempts, accts, kids, notes, dues, amounts, names, specs
          FROM (SELECT r.id, r.attempt, r.account_id, g.kid, g.notify, greatest(i.due_date, run_date) AS due, r.amount,
                       left(ac.name, 10) AS name,
                       'Faktura ' || coalesce(i.number, i.id::text) AS spec
                  FROM subbilling.payment_requests r
                  JOIN subbilling.payment_methods pm ON pm.account_id = r.account_id AND pm.id = r.payment_method_id
                  JOIN subbilling.invoices i ON i.account_id = r.account_id AND i.id = r.invoice_id
                  JOIN subbilling.accounts ac ON ac.id = r.account_id
                  JOIN subbilling.avtalegiro_agreements g ON g.account_id = r.account_id AND g.status = 'active'
                 WHERE pm.kind = 'avtalegiro' AND r.status = 'requested' AND i.currency = 'NOK'
                   AND NOT EXISTS (SELECT 1 FROM subbilling.avtalegiro_claims c
                                    WHERE c.payment_request_id = r.id AND c.attempt = r.attempt)
                   AND r.id = ANY (locked)) d;
    ELSE
        SELECT coalesce(array_agg(d.id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.attempt ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.account_id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.kid ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.notify ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.due ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.amount ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.name ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.spec ORDER BY d.account_id, d.id), '{}')
          INTO ids, attempts, accts, kids, notes, dues, amounts, names, specs
          FROM (SELECT r.id, r.attempt, r.account_id, g.kid, g.notify, greatest(i.due_date, run_date) AS due, r.amount,
                       left(ac.name, 10) AS name,
                       'Faktura ' || coalesce(i.number, i.id::text) AS spec
                  FROM subbilling.payment_requests r
                  JOIN subbilling.payment_methods pm ON pm.account_id = r.account_id AND pm.id = r.payment_method_id
                  JOIN subbilling.invoices i ON i.account_id = r.account_id AND i.id = r.invoice_id
                  JOIN subbilling.accounts ac ON ac.id = r.account_id
                  JOIN subbilling.avtalegiro_agreements g ON g.account_id = r.account_id AND g.status = 'active'
                 WHERE pm.kind = 'avtalegiro' AND r.status = 'requested' AND i.currency = 'NOK'
                   AND NOT EXISTS (SELECT 1 FROM subbilling.avtalegiro_claims c
                                    WHERE c.payment_request_id = r.id AND c.attempt = r.attempt)
                   FOR UPDATE OF r) d;
    END IF;
    INSERT INTO subbilling.avtalegiro_files AS f (kind, run_date, sha256, content)
    VALUES ('claims', run_date, '\x'::bytea, '')
    RETURNING f.id INTO fid;
    body := subbilling_internal.avtalegiro_claims_text(
        ARRAY[data_transmitter, lpad(fid::text, 7, '0'), '00008080', agreement_id, lpad(fid::text, 7, '0'),
              assignment_account],
        dues, (SELECT coalesce(array_agg(minor_units(a) ORDER BY k), '{}') FROM unnest(amounts) WITH ORDINALITY AS u(a, k)),
        kids, notes, names, specs);
    UPDATE subbilling.avtalegiro_files f SET sha256 = sha256(convert_to(body, 'LATIN1')), content = body WHERE f.id = fid;
    INSERT INTO subbilling.avtalegiro_claims (payment_request_id, attempt, account_id, file_id, kid, notify, due_date, amount)
    SELECT u.id, u.attempt, u.account_id, fid, u.kid, u.notify, u.due, u.amount
      FROM unnest(ids, attempts, accts, kids, notes, dues, amounts) AS u(id, attempt, account_id, kid, notify, due, amount);
    RETURN body;
END
$$;
COMMENT ON FUNCTION subbilling.avtalegiro_claim_file(date, text, text, text) IS
    'the AvtaleGiro payment-claim transmission of a run date (the payee''s data transmitter number, agreement ID and account at Nets): a claim for every requested payment of an account paying by AvtaleGiro with an active agreement, in NOK, not claimed before, with the agreement''s KID, type 21 if the bank notifies the payer else 02, due on the invoice''s due date (or the run date if later), the invoice number as specification; transmission and assignment number are the file''s id; the same run date again returns the same file';

CREATE OR REPLACE FUNCTION subbilling_internal.citus_take_id(pool text) RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    name    text := 'subbilling_internal.ids_' || pool;
    p       text := current_setting(name, true);
    k       integer;
    head    text;
    rest    text;
    lo      bigint;
    hi      bigint;
    mark    text;
BEGIN
    IF p IS NULL OR p = '' THEN
        RETURN nextval(format('subbilling.%I', pool || '_id_seq')::regclass);
    END IF;
    mark := left(p, 1);
    p := substr(p, 2);
    IF p = '' THEN
        IF mark = '=' THEN
            RAISE EXCEPTION 'the % ids handed to this billing call are used up', pool
                USING ERRCODE = 'internal_error';
        END IF;
        RAISE EXCEPTION 'the % ids handed to this billing call are used up', pool
            USING ERRCODE = 'SBID0', HINT = 'The coordinator bills the account again with more ids.';
    END IF;
    k := position(',' IN p);
    head := CASE WHEN k = 0 THEN p ELSE left(p, k - 1) END;
    rest := CASE WHEN k = 0 THEN '' ELSE substr(p, k + 1) END;
    lo := split_part(head, '-', 1)::bigint;
    hi := split_part(head, '-', 2)::bigint;
    IF lo < hi THEN
        rest := (lo + 1) || '-' || hi || CASE WHEN rest = '' THEN '' ELSE ',' || rest END;
    END IF;
    PERFORM set_config(name, mark || rest, true);
    RETURN lo;
END
$$;
COMMENT ON FUNCTION subbilling_internal.citus_take_id(text) IS 'internal (Citus): the next id of a pool handed down by the coordinator (setting subbilling_internal.ids_<pool>), else nextval of subbilling.<pool>_id_seq';
REVOKE ALL ON FUNCTION subbilling_internal.citus_take_id(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION subbilling_internal.citus_emit_event(account_id bigint, type text, subscription_id bigint,
                                                     payload jsonb, invoice_id bigint DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    RETURN subbilling_internal.emit_event(account_id, type, subscription_id, payload, invoice_id);
END
$$;
COMMENT ON FUNCTION subbilling_internal.citus_emit_event(bigint, text, bigint, jsonb, bigint) IS 'internal (Citus): emit_event for the Citus booking (emit_event takes the id from the events pool in a delegated billing call; the coordinator announces those events)';
REVOKE ALL ON FUNCTION subbilling_internal.citus_emit_event(bigint, text, bigint, jsonb, bigint) FROM PUBLIC;

CREATE OR REPLACE FUNCTION subbilling_internal.book_issued_citus(acct bigint, invoice_ids bigint[],
                                                      OUT booked integer, OUT zero_total bigint[])
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    inv     subbilling.invoices;
    b       boolean;
BEGIN
    booked := 0;
    zero_total := '{}';
    FOR inv IN SELECT * FROM subbilling.invoices i
                WHERE i.account_id = acct AND i.id = ANY (invoice_ids) AND i.status IN ('open', 'paid', 'uncollectible')
                ORDER BY i.id LOOP
        b := subbilling_internal.book_invoice_entry_citus(acct, inv);
        CONTINUE WHEN b IS NULL;
        IF b THEN
            booked := booked + 1;
        END IF;
        IF inv.kind = 'invoice' AND minor_units(inv.total) = 0 THEN
            zero_total := zero_total || inv.id;
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION subbilling_internal.book_issued_citus(bigint, bigint[]) IS 'internal (Citus): the entries of an account''s issued documents not yet booked (book_invoice_entry_citus), in id order; returns the entries written and the zero-total invoices among them (to be paid by the caller)';
REVOKE ALL ON FUNCTION subbilling_internal.book_issued_citus(bigint, bigint[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION subbilling_internal.book_account_citus(acct bigint, invoice_ids bigint[], plain boolean DEFAULT false)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    inv     subbilling.invoices;
    o       subbilling.invoices;
    pm      subbilling.payment_methods;
    rq      subbilling.payment_requests;
    a_tz    text;
    booked  integer := 0;
    bk      bigint;
    zero    subbilling.price;
    open_   subbilling.price;
    amt     subbilling.price;
    onto    subbilling.price;
    credit  subbilling.price;
    on_day  date;
    codes   text[];
    amounts subbilling.price[];
    subs    text[];
    oitems  bigint[];
    t_inv   bigint[] := '{}';       -- invoices whose open amount may have reached zero
    paid    bigint[] := '{}';
    k       bigint;
    issued  record;
BEGIN
    -- nothing but issued invoices to book, nothing more to do: the short way (billing's own
    -- booking): one entry each, a zero total paid at once
    IF NOT EXISTS (SELECT FROM subbilling.invoices i
                    WHERE i.account_id = acct AND i.id = ANY (invoice_ids) AND (i.status = 'void' OR i.kind = 'credit_note'))
       AND (plain OR (NOT EXISTS (SELECT FROM subbilling.payment_methods x
                                   WHERE x.account_id = acct AND x.is_default AND x.active AND x.automatic)
                      AND coalesce(minor_units(customer_credit(acct)), 0) <= 0)) THEN
        SELECT * INTO issued FROM subbilling_internal.book_issued_citus(acct, invoice_ids);
        FOREACH k IN ARRAY issued.zero_total LOOP
            UPDATE subbilling.invoices x SET status = 'paid', paid_at = now()
             WHERE x.account_id = acct AND x.id = k
            RETURNING x.* INTO inv;
            PERFORM subbilling_internal.citus_emit_event(acct, 'invoice.paid', inv.subscription_id,
                        jsonb_build_object('invoice_id', inv.id, 'number', inv.number, 'currency', inv.currency,
                                           'total', inv.total::text, 'paid_at', now(), 'via', 'zero total',
                                           'payment_id', NULL), inv.id);
            PERFORM subbilling_internal.after_invoice_paid(acct, inv.id);
        END LOOP;
        RETURN issued.booked;
    END IF;
    -- the outbox slot (in a delegated billing call the coordinator holds it and hands down
    -- the event ids: citus_emit_event)
    IF coalesce(current_setting('subbilling_internal.ids_events', true), '') = '' THEN
        PERFORM subbilling_internal.outbox_reserve();
    END IF;
    SELECT a.time_zone INTO a_tz FROM subbilling.accounts a WHERE a.id = acct;

    -- a booked credit note is final (as book_void_invoices)
    SELECT * INTO inv FROM subbilling.invoices c
     WHERE c.account_id = acct AND c.id = ANY (invoice_ids) AND c.kind = 'credit_note' AND c.status = 'void'
       AND EXISTS (SELECT 1 FROM subbilling.journal_entries e
                    WHERE e.account_id = acct AND e.invoice_id = c.id AND e.kind = 'credit_note')
     ORDER BY c.id LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'credit note % cannot be voided', inv.number
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'A credit note is booked and applied when it is issued.',
                  HINT = 'Issue a new invoice for what the credit note should not have credited.';
    END IF;

    -- 1. issued documents not yet booked: one entry each (shared with billing's booking);
    --    a zero total is paid in step 5
    SELECT x.booked, x.zero_total INTO booked, t_inv FROM subbilling_internal.book_issued_citus(acct, invoice_ids) x;

    -- 2. void invoices: their booking reversed once; what was paid on them becomes customer credit
    FOR inv IN SELECT * FROM subbilling.invoices i
                WHERE i.account_id = acct AND i.id = ANY (invoice_ids) AND i.status = 'void'
                ORDER BY i.id LOOP
        SELECT e.id INTO bk FROM subbilling.journal_entries e
         WHERE e.account_id = acct AND e.invoice_id = inv.id AND e.kind = 'invoice' ORDER BY e.id LIMIT 1;
        CONTINUE WHEN bk IS NULL OR EXISTS (SELECT 1 FROM subbilling.journal_entries r
                                             WHERE r.account_id = acct AND r.invoice_id = inv.id AND r.kind = 'void');
        open_ := invoice_open_amount(acct, inv.id);
        SELECT array_agg(q.code ORDER BY q.ord, q.lid), array_agg(q.amount ORDER BY q.ord, q.lid),
               array_agg(q.subledger ORDER BY q.ord, q.lid), array_agg(q.invoice_id ORDER BY q.ord, q.lid)
          INTO codes, amounts, subs, oitems
          FROM (SELECT ledger_code('receivables', inv.currency) AS code, -open_ AS amount, 'receivables'::text AS subledger,
                       inv.id AS invoice_id, 0 AS ord, 0::bigint AS lid
                 WHERE minor_units(open_) <> 0
                UNION ALL
                SELECT x.code, x.amount, x.subledger, NULL, 1, x.lid
                  FROM unnest(ARRAY(SELECT l.ledger_code FROM subbilling.journal_lines l
                                     WHERE l.account_id = acct AND l.entry_id = bk AND l.subledger IS DISTINCT FROM 'receivables' ORDER BY l.id),
                              ARRAY(SELECT -l.amount FROM subbilling.journal_lines l
                                     WHERE l.account_id = acct AND l.entry_id = bk AND l.subledger IS DISTINCT FROM 'receivables' ORDER BY l.id),
                              ARRAY(SELECT l.subledger FROM subbilling.journal_lines l
                                     WHERE l.account_id = acct AND l.entry_id = bk AND l.subledger IS DISTINCT FROM 'receivables' ORDER BY l.id))
                       WITH ORDINALITY AS x(code, amount, subledger, lid)
                UNION ALL
                SELECT ledger_code('customer_credit', inv.currency), open_ - inv.total, 'customer_credit', NULL, 2, 0
                 WHERE open_ <> inv.total) q;
        booked := booked + 1;
        PERFORM subbilling_internal.post_entry_citus(acct, subbilling_internal.citus_take_id('journal_entries'),
                    'void', coalesce((inv.voided_at AT TIME ZONE a_tz)::date, inv.issue_date), inv.id,
                    'void invoice ' || inv.number, codes, amounts, subs, oitems);
        UPDATE subbilling.payment_requests r
           SET status = 'canceled', next_attempt_on = NULL, updated_at = now()
         WHERE r.account_id = acct AND r.invoice_id = inv.id
           AND (r.status = 'requested' OR r.next_attempt_on IS NOT NULL);
    END LOOP;

    -- 3. credit notes: onto the invoice they credit (up to its open amount), the rest to customer credit
    FOR inv IN SELECT * FROM subbilling.invoices c
                WHERE c.account_id = acct AND c.id = ANY (invoice_ids) AND c.kind = 'credit_note' AND c.status <> 'void'
                ORDER BY c.id LOOP
        o := NULL;
        IF inv.credits_invoice_id IS NOT NULL THEN
            SELECT * INTO o FROM subbilling.invoices x
             WHERE x.account_id = acct AND x.id = inv.credits_invoice_id FOR UPDATE;
        END IF;
        amt := -invoice_open_amount(acct, inv.id);
        CONTINUE WHEN minor_units(amt) <= 0;
        zero := price_minor(0, inv.currency);
        IF o.kind = 'invoice' AND o.status IN ('open', 'uncollectible') THEN
            onto := least(amt, greatest(invoice_open_amount(acct, o.id), zero));
        ELSE
            onto := zero;
        END IF;
        codes := ARRAY[ledger_code('receivables', inv.currency)];
        amounts := ARRAY[amt];
        subs := ARRAY['receivables'];
        oitems := ARRAY[inv.id];
        IF minor_units(onto) <> 0 THEN
            codes := codes || ledger_code('receivables', inv.currency);
            amounts := amounts || -onto;
            subs := subs || 'receivables'::text;
            oitems := oitems || o.id;
            t_inv := t_inv || o.id;
        END IF;
        IF onto <> amt THEN
            codes := codes || ledger_code('customer_credit', inv.currency);
            amounts := amounts || (onto - amt);
            subs := subs || 'customer_credit'::text;
            oitems := oitems || NULL::bigint;
        END IF;
        PERFORM subbilling_internal.post_entry_citus(acct, subbilling_internal.citus_take_id('journal_entries'),
                    'allocation', inv.issue_date, inv.id,
                    'credit note ' || inv.number || coalesce(' on invoice ' || o.number, ''), codes, amounts, subs, oitems);
    END LOOP;

    -- 4. customer credit onto open invoices, oldest due first (left for next time when
    --    another transaction is using the account's credit)
    credit := customer_credit(acct);
    IF coalesce(minor_units(credit), 0) > 0 AND subbilling_internal.lock_account_credit(acct, false) THEN
        credit := customer_credit(acct);
        SELECT max(i.issue_date) INTO on_day FROM subbilling.invoices i WHERE i.account_id = acct AND i.id = ANY (invoice_ids);
        on_day := coalesce(on_day, subbilling_internal.account_today(acct));
        FOR o IN SELECT * FROM subbilling.invoices i
                  WHERE i.account_id = acct AND i.kind = 'invoice' AND i.status IN ('open', 'uncollectible')
                  ORDER BY i.due_date, i.id LOOP
            EXIT WHEN minor_units(credit) <= 0;
            open_ := invoice_open_amount(acct, o.id);
            CONTINUE WHEN minor_units(open_) <= 0;
            PERFORM FROM subbilling.invoices x WHERE x.account_id = acct AND x.id = o.id FOR UPDATE SKIP LOCKED;
            CONTINUE WHEN NOT FOUND;
            open_ := invoice_open_amount(acct, o.id);
            CONTINUE WHEN minor_units(open_) <= 0;
            amt := least(open_, credit);
            PERFORM subbilling_internal.post_entry_citus(acct, subbilling_internal.citus_take_id('journal_entries'),
                        'credit_applied', on_day, o.id, 'customer credit on invoice ' || o.number,
                        ARRAY[ledger_code('customer_credit', o.currency), ledger_code('receivables', o.currency)],
                        ARRAY[amt, -amt], ARRAY['customer_credit', 'receivables'], ARRAY[NULL, o.id]::bigint[]);
            PERFORM subbilling_internal.citus_emit_event(acct, 'credit.applied', o.subscription_id,
                jsonb_build_object('invoice_id', o.id, 'number', o.number, 'currency', o.currency,
                                   'amount', amt::text, 'open_amount', (open_ - amt)::text,
                                   'credit_left', (credit - amt)::text), o.id);
            credit := credit - amt;
            IF amt = open_ THEN
                t_inv := t_inv || o.id;
            END IF;
        END LOOP;
    END IF;

    -- 5. invoices whose open amount reached zero are paid
    FOREACH k IN ARRAY ARRAY(SELECT DISTINCT u FROM unnest(t_inv) u ORDER BY 1) LOOP
        CONTINUE WHEN minor_units(invoice_open_amount(acct, k)) <> 0;
        UPDATE subbilling.invoices x SET status = 'paid', paid_at = now()
         WHERE x.account_id = acct AND x.id = k AND x.kind = 'invoice' AND x.status IN ('open', 'uncollectible')
        RETURNING x.* INTO o;
        CONTINUE WHEN NOT FOUND;
        UPDATE subbilling.payment_requests r
           SET status = 'canceled', next_attempt_on = NULL, updated_at = now()
         WHERE r.account_id = acct AND r.invoice_id = k
           AND (r.status = 'requested' OR r.next_attempt_on IS NOT NULL);
        PERFORM subbilling_internal.citus_emit_event(acct, 'invoice.paid', o.subscription_id,
            jsonb_build_object('invoice_id', o.id, 'number', o.number, 'currency', o.currency,
                               'total', o.total::text, 'paid_at', o.paid_at,
                               'via', CASE WHEN minor_units(o.total) = 0 THEN 'zero total' ELSE 'credit' END,
                               'payment_id', NULL), o.id);
        paid := paid || k;
    END LOOP;
    FOREACH k IN ARRAY paid LOOP
        PERFORM subbilling_internal.after_invoice_paid(acct, k);
    END LOOP;

    -- 6. payment requests for the new open invoices when the account pays automatically
    SELECT * INTO pm FROM subbilling.payment_methods x
     WHERE x.account_id = acct AND x.is_default AND x.active AND x.automatic ORDER BY x.id LIMIT 1;
    IF FOUND THEN
        FOR inv IN SELECT * FROM subbilling.invoices i
                    WHERE i.account_id = acct AND i.id = ANY (invoice_ids) AND i.kind = 'invoice' AND i.status = 'open'
                      AND NOT EXISTS (SELECT 1 FROM subbilling.payment_requests x
                                       WHERE x.account_id = acct AND x.invoice_id = i.id)
                    ORDER BY i.id LOOP
            open_ := invoice_open_amount(acct, inv.id);
            CONTINUE WHEN minor_units(open_) <= 0;
            INSERT INTO subbilling.payment_requests AS r (account_id, invoice_id, payment_method_id, amount, requested_on)
            VALUES (acct, inv.id, pm.id, open_, inv.issue_date)
            RETURNING r.* INTO rq;
            PERFORM subbilling_internal.citus_emit_event(acct, 'payment.requested', inv.subscription_id,
                jsonb_build_object('payment_request_id', rq.id, 'invoice_id', rq.invoice_id, 'number', inv.number,
                                   'reference', inv.reference, 'due_date', inv.due_date, 'currency', inv.currency,
                                   'amount', rq.amount::text, 'amount_minor', minor_units(rq.amount),
                                   'payment_method_id', rq.payment_method_id, 'method', pm.kind,
                                   'attempt', rq.attempt, 'requested_on', rq.requested_on), inv.id);
        END LOOP;
    END IF;
    RETURN booked;
END
$$;
COMMENT ON FUNCTION subbilling_internal.book_account_citus(bigint, bigint[], boolean) IS 'internal (Citus): book_invoices for one account''s documents, one document per statement on the account''s shard (the short way, entries alone, for issued invoices of an account without credit or automatic payment method; plain: known so by the caller): issued documents, void invoices (reversed, payment requests canceled), credit notes (applied, the rest customer credit), customer credit onto open invoices, settled invoices paid, payment requests for automatic payment methods; returns the entries booked or reversed';
REVOKE ALL ON FUNCTION subbilling_internal.book_account_citus(bigint, bigint[], boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION subbilling_internal.bill_account_citus(acct bigint, subscription_ids bigint[], as_of_dates date[],
                                                       as_of timestamptz, series_ids bigint[],
                                                       INOUT next_numbers bigint[],
                                                       charges subbilling_internal.citus_charge[] DEFAULT NULL,
                                                       plain_booking boolean DEFAULT false,
                                                       OUT invoice_ids bigint[])
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    a       subbilling.accounts;
    ref_kind text;
    s_cur   text;
    stamp   timestamptz := clock_timestamp();
    h       record;
    k       integer;
    num     bigint;
    inv     subbilling.invoices;
    ev      record;
    ch      subbilling_internal.citus_charge[];
BEGIN
    invoice_ids := '{}';
    SELECT * INTO a FROM subbilling.accounts x WHERE x.id = acct;
    SELECT cs.reference_kind INTO ref_kind FROM subbilling.country_settings cs WHERE cs.country = a.country;
    SELECT ss.currency INTO s_cur FROM subbilling.seller_settings ss;

    -- the charges kept in a variable, not a temporary table: on a worker this runs inside
    -- the coordinator's transaction, which is prepared (two-phase commit), and PostgreSQL
    -- cannot prepare a transaction that touched a temporary table
    -- (computed for the shard's whole group by bill_accounts_citus and handed in, else here)
    IF charges IS NOT NULL THEN
        ch := charges;
    ELSE
        ch := ARRAY(SELECT ROW(c.*)::subbilling_internal.citus_charge
                      FROM subbilling_internal.billing_charges_citus(array_fill(acct, ARRAY[cardinality(subscription_ids)]),
                                                                     subscription_ids, as_of_dates) c);
    END IF;

    -- each subscription's bookkeeping
    UPDATE subbilling.subscriptions x
       SET next_bill_on = st.next_on,
           bill_from = coalesce(st.from_d, greatest(st.as_of, x.billed_as_of) + 1),
           billed_as_of = greatest(st.as_of, x.billed_as_of),
           billed_at = stamp
      FROM (SELECT b.subscription_id, b.as_of,
                   (SELECT min(c.due_date) FROM unnest(ch) c
                     WHERE c.subscription_id = b.subscription_id AND c.pending) AS next_on,
                   (SELECT min(c.key_start) FROM unnest(ch) c
                     WHERE c.subscription_id = b.subscription_id AND c.pending) AS from_d
              FROM unnest(subscription_ids, as_of_dates) AS b(subscription_id, as_of)) st
     WHERE x.account_id = acct AND x.id = st.subscription_id;

    -- one invoice per subscription with lines due, in subscription order
    FOR h IN
        SELECT c.subscription_id, b.as_of AS issue_date, min(c.currency) AS currency,
               sum(c.net) AS net, sum(c.tax) AS tax, array_agg(DISTINCT c.tax_treatment) AS treatments
          FROM unnest(ch) c
          JOIN unnest(subscription_ids, as_of_dates) AS b(subscription_id, as_of) ON b.subscription_id = c.subscription_id
         WHERE c.emit
         GROUP BY c.subscription_id, b.as_of
         ORDER BY c.subscription_id
    LOOP
        SELECT sr.id, sr.prefix, sr.digits, sr.code INTO ev
          FROM subbilling.invoice_series sr WHERE sr.code = to_char(h.issue_date, 'FMYYYY');
        k := array_position(series_ids, ev.id);
        IF k IS NULL THEN
            RAISE EXCEPTION 'invoice series % is not held by this billing batch', ev.code
                USING ERRCODE = 'internal_error';
        END IF;
        num := next_numbers[k];
        next_numbers[k] := num + 1;
        inv.id := subbilling_internal.citus_take_id('invoices');
        inv.seller_currency := s_cur;
        -- every value computed here, on the coordinator: the INSERT carries constants only
        inv.exchange_rate := CASE WHEN s_cur <> h.currency THEN subbilling_internal.exchange_rate_for(h.currency, h.issue_date) END;
        inv.kind := CASE WHEN h.net + h.tax < price_minor(0, h.currency) THEN 'credit_note' ELSE 'invoice' END;
        inv.number := subbilling_internal.format_invoice_number(ev.prefix, ev.digits, num);
        inv.reference := reference_of(coalesce(ref_kind, 'luhn'), inv.id);
        inv.tax_notes := subbilling_internal.tax_notes_for(h.treatments);
        inv.total := h.net + h.tax;
        inv.due_date := h.issue_date + a.payment_terms_days;
        inv.tax_seller_currency := CASE WHEN s_cur IS NOT NULL
                                        THEN subbilling_internal.convert_price(h.tax, coalesce(inv.exchange_rate, 1), s_cur) END;
        inv.finalized_at := now();
        INSERT INTO subbilling.invoices AS i
               (account_id, id, subscription_id, kind, status, series_id, number_seq, number, currency,
                net, tax, total, issue_date, due_date, reference, as_of, finalized_at,
                tax_notes, buyer_vat_number, seller_currency, exchange_rate, tax_seller_currency)
        VALUES (acct, inv.id, h.subscription_id, inv.kind, 'open', ev.id, num, inv.number, h.currency,
                h.net, h.tax, inv.total, h.issue_date, inv.due_date, inv.reference, bill_account_citus.as_of,
                inv.finalized_at, inv.tax_notes, a.vat_number, s_cur, inv.exchange_rate, inv.tax_seller_currency)
        RETURNING i.* INTO inv;
        INSERT INTO subbilling.invoice_lines
               (account_id, invoice_id, subscription_id, plan_id, kind, charge_type, key_start, description,
                period, quantity, unit_price, net, tax_rate, tax, tax_treatment)
        SELECT acct, inv.id, c.subscription_id, c.plan_id, c.kind, c.charge_type, c.key_start,
               c.description, c.period, c.quantity, c.unit_price, c.net, c.tax_rate, c.tax, c.tax_treatment
          FROM unnest(ch) c
         WHERE c.subscription_id = h.subscription_id AND c.emit
         ORDER BY c.key_start, c.charge_type = 'discount', c.charge_type, minor_units(c.net) >= 0, c.plan_id;
        PERFORM subbilling_internal.citus_emit_event(acct, 'invoice.created', inv.subscription_id,
                    jsonb_build_object('invoice_id', inv.id, 'kind', inv.kind,
                                       'currency', inv.currency, 'net', inv.net::text, 'tax', inv.tax::text,
                                       'total', inv.total::text, 'as_of', inv.as_of), inv.id);
        PERFORM subbilling_internal.citus_emit_event(acct, 'invoice.finalized', inv.subscription_id,
                    jsonb_build_object('invoice_id', inv.id, 'kind', inv.kind, 'status', inv.status,
                                       'number', inv.number, 'series', ev.code,
                                       'currency', inv.currency, 'net', inv.net::text, 'tax', inv.tax::text,
                                       'total', inv.total::text, 'total_minor', minor_units(inv.total),
                                       'issue_date', inv.issue_date, 'due_date', inv.due_date,
                                       'reference', inv.reference), inv.id);
        invoice_ids := invoice_ids || inv.id;
    END LOOP;
    IF cardinality(invoice_ids) > 0 THEN
        -- the one booking path on Citus (book_account_citus): the new invoices alone (its
        -- short way), or with customer credit applied and payment requests made for an
        -- automatic method.  plain_booking: the caller found for the whole group that the
        -- account has neither customer credit nor an automatic payment method, so that only
        -- a credit note among the new invoices needs book_account_citus's tests.
        PERFORM subbilling_internal.book_account_citus(acct, invoice_ids, plain_booking);
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling_internal.bill_account_citus(bigint, bigint[], date[], timestamptz, bigint[], bigint[], subbilling_internal.citus_charge[], boolean) IS 'internal (Citus): bill claimed subscriptions of one account as of their account-local dates, one account''s rows per statement, with the charges handed in (else computed), booked by book_account_citus (plain_booking: no credit or automatic payment method, so its short way unless a credit note); numbers from the batch''s blocks (next_numbers moved on); returns the invoice ids';
REVOKE ALL ON FUNCTION subbilling_internal.bill_account_citus(bigint, bigint[], date[], timestamptz, bigint[], bigint[], subbilling_internal.citus_charge[], boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION subbilling_internal.bill_accounts_citus(acct bigint, account_ids bigint[], subscription_ids bigint[],
                                                        as_of_dates date[], as_of timestamptz, run_id bigint,
                                                        series_ids bigint[], next_numbers bigint[],
                                                        invoice_pool text, entry_pool text, event_pool text)
    RETURNS bigint[]
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    nxt     bigint[] := next_numbers;
    nxt_try bigint[];
    got     bigint[];
    accs    bigint[] := ARRAY(SELECT DISTINCT x FROM unnest(account_ids) x ORDER BY x);
    c_acc   bigint[];
    c_sid   bigint[];
    c_ad    date[];
    all_ch  subbilling_internal.citus_charge[];
    a_ch    subbilling_internal.citus_charge[];
    a_sid   bigint[];
    a_ad    date[];
    ok_sid  bigint[] := '{}';
    full_accs bigint[];
    k       bigint;
    invoices integer := 0;
    errors  integer := 0;
    claimed integer := 0;
    st      text;
    msg     text;
    det     text;
    again   bigint[] := '{}';     -- subscriptions to bill again with more ids
    need    bigint := 0;          -- their accounts' open invoices
BEGIN
    PERFORM set_config('subbilling_internal.ids_invoices', invoice_pool, true),
            set_config('subbilling_internal.ids_journal_entries', entry_pool, true),
            set_config('subbilling_internal.ids_events', event_pool, true);
    -- claim the group's due subscriptions of the batch, in one statement on the shard
    SELECT array_agg(x.account_id ORDER BY x.account_id, x.id), array_agg(x.id ORDER BY x.account_id, x.id)
      INTO c_acc, c_sid
      FROM (SELECT x.account_id, x.id FROM subbilling.subscriptions x
             WHERE x.account_id = ANY (accs) AND x.id = ANY (subscription_ids)
               AND x.next_bill_on <= (bill_accounts_citus.as_of AT TIME ZONE 'UTC')::date + 1
               FOR UPDATE SKIP LOCKED) x;
    IF c_sid IS NULL THEN
        RETURN ARRAY[0, 0, 0]::bigint[] || nxt;
    END IF;
    c_ad := ARRAY(SELECT b.ad FROM unnest(c_acc, c_sid) WITH ORDINALITY AS c(acc, sid, o)
                    JOIN unnest(account_ids, subscription_ids, as_of_dates) AS b(acc, sid, ad)
                      ON b.acc = c.acc AND b.sid = c.sid
                   ORDER BY c.o);
    claimed := cardinality(c_sid);
    -- the accounts whose booking has more to do than the new invoices (customer credit, an
    -- automatic payment method), found for the whole group in one statement on the shard
    full_accs := ARRAY(SELECT pm.account_id FROM subbilling.payment_methods pm
                        WHERE pm.account_id = ANY (accs) AND pm.is_default AND pm.active AND pm.automatic)
                 || ARRAY(SELECT l.account_id FROM subbilling.journal_lines l
                           WHERE l.account_id = ANY (accs) AND l.subledger = 'customer_credit'
                           GROUP BY l.account_id
                          HAVING minor_units(-sum(l.amount)) > 0);
    -- the engine once for the whole group (one query on the shard); if it fails, each
    -- account computes its own below, so that the failing one is found and recorded
    BEGIN
        all_ch := ARRAY(SELECT ROW(c.*)::subbilling_internal.citus_charge
                          FROM subbilling_internal.billing_charges_citus(c_acc, c_sid, c_ad) c
                         ORDER BY c.account_id);
    EXCEPTION WHEN OTHERS THEN
        all_ch := NULL;
    END;
    FOR k IN SELECT DISTINCT x FROM unnest(c_acc) x ORDER BY x LOOP
        a_sid := ARRAY(SELECT u.sid FROM unnest(c_acc, c_sid) AS u(acc, sid) WHERE u.acc = k ORDER BY u.sid);
        a_ad := ARRAY(SELECT u.ad FROM unnest(c_acc, c_sid, c_ad) AS u(acc, sid, ad) WHERE u.acc = k ORDER BY u.sid);
        a_ch := CASE WHEN all_ch IS NOT NULL THEN ARRAY(SELECT c FROM unnest(all_ch) c WHERE c.account_id = k) END;
        BEGIN
            SELECT r.next_numbers, r.invoice_ids INTO STRICT nxt_try, got
              FROM subbilling_internal.bill_account_citus(k, a_sid, a_ad, bill_accounts_citus.as_of, series_ids, nxt, a_ch,
                                                          NOT (k = ANY (full_accs))) r;
            nxt := nxt_try;
            invoices := invoices + cardinality(got);
            ok_sid := ok_sid || a_sid;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
            IF st = 'SBID0' THEN
                -- the ids ran out (customer credit settling many open invoices, each an entry
                -- and events): the account is billed again by the coordinator, with pools
                -- sized by its open invoices (its work here rolled back, ids given back)
                again := again || a_sid;
                need := need + (SELECT count(*) FROM subbilling.invoices i
                                 WHERE i.account_id = k AND i.status IN ('open', 'uncollectible'));
                CONTINUE;
            END IF;
            -- one subscription at a time, each in its own subtransaction
            FOR j IN 1 .. cardinality(a_sid) LOOP
                BEGIN
                    SELECT r.next_numbers, r.invoice_ids INTO STRICT nxt_try, got
                      FROM subbilling_internal.bill_account_citus(k, ARRAY[a_sid[j]], ARRAY[a_ad[j]], bill_accounts_citus.as_of,
                                                                  series_ids, nxt) r;
                    nxt := nxt_try;
                    invoices := invoices + cardinality(got);
                    ok_sid := ok_sid || a_sid[j];
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
                    IF st = 'SBID0' THEN
                        -- this and the account's remaining subscriptions billed again, as above
                        again := again || a_sid[j:];
                        need := need + (SELECT count(*) FROM subbilling.invoices i
                                         WHERE i.account_id = k AND i.status IN ('open', 'uncollectible'));
                        EXIT;
                    END IF;
                    INSERT INTO subbilling.billing_errors (account_id, subscription_id, run_id, as_of, sqlstate, message, detail)
                    VALUES (k, a_sid[j], bill_accounts_citus.run_id, bill_accounts_citus.as_of, st, msg, nullif(det, ''));
                    UPDATE subbilling.subscriptions x SET next_bill_on = a_ad[j] + 1
                     WHERE x.account_id = k AND x.id = a_sid[j];
                    errors := errors + 1;
                END;
            END LOOP;
        END;
    END LOOP;
    -- the billed subscriptions' earlier errors resolved, in one statement on the shard
    IF cardinality(ok_sid) > 0 THEN
        UPDATE subbilling.billing_errors e SET resolved_at = now()
         WHERE e.account_id = ANY (accs) AND e.subscription_id = ANY (ok_sid) AND e.resolved_at IS NULL;
    END IF;
    PERFORM set_config('subbilling_internal.ids_invoices', '', true),
            set_config('subbilling_internal.ids_journal_entries', '', true),
            set_config('subbilling_internal.ids_events', '', true);
    -- the subscriptions billed again are claimed again by the coordinator's next call
    RETURN ARRAY[invoices, errors, claimed - cardinality(again)]::bigint[] || nxt
           || CASE WHEN cardinality(again) > 0 THEN need || again ELSE '{}'::bigint[] END;
END
$$;
COMMENT ON FUNCTION subbilling_internal.bill_accounts_citus(bigint, bigint[], bigint[], date[], timestamptz, bigint, bigint[], bigint[], text, text, text) IS 'internal (Citus): bill the claimed due subscriptions of a group of accounts of one shard, on the shard''s worker (delegated by account): claim by (account_id, id) with SKIP LOCKED, a subtransaction per account; ids from the coordinator''s pools; returns invoices, errors, claimed, next numbers, then (when a pool ran out) the accounts'' open invoices and the subscriptions to bill again';
REVOKE ALL ON FUNCTION subbilling_internal.bill_accounts_citus(bigint, bigint[], bigint[], date[], timestamptz, bigint, bigint[], bigint[], text, text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION subbilling_internal.bill_batch_citus(batch_size integer, as_of timestamptz,
                                                     OUT invoices integer, OUT errors integer, OUT more boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    acc     bigint[];
    sid     bigint[];
    ad      date[];
    shard   bigint[];
    ser     bigint[];
    nxt     bigint[];
    first_  bigint[];
    res     bigint[];
    grp     record;
    ev      record;
    n       integer;
    ids_i   bigint[];
    ids_j   bigint[];
    ids_e   bigint[];
    c_acc   bigint[];
    c_sid   bigint[];
    c_ad    date[];
    try     integer;
    extra   bigint;
    need    bigint;
    nser    integer;
    mark    text;
    claimed integer := 0;
    run     bigint := current_run_id();
    notify  boolean := subbilling_internal.notify_enabled();
BEGIN
    invoices := 0;
    errors := 0;
    -- one connection per node: the batch writes reference tables (invoice series and
    -- counters, the outbox slot) besides the groups' shards
    PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    SELECT array_agg(c.account_id ORDER BY c.next_bill_on, c.account_id, c.id),
           array_agg(c.id ORDER BY c.next_bill_on, c.account_id, c.id),
           array_agg(c.local_date ORDER BY c.next_bill_on, c.account_id, c.id)
      INTO acc, sid, ad
      FROM (SELECT s.account_id, s.id, s.next_bill_on,
                   (bill_batch_citus.as_of AT TIME ZONE a.time_zone)::date AS local_date
              FROM subbilling.subscriptions s
              JOIN subbilling.accounts a ON a.id = s.account_id
             WHERE s.next_bill_on <= (bill_batch_citus.as_of AT TIME ZONE 'UTC')::date + 1
               AND s.next_bill_on <= (bill_batch_citus.as_of AT TIME ZONE a.time_zone)::date
             ORDER BY s.next_bill_on, s.account_id, s.id
             LIMIT bill_batch_citus.batch_size) c;
    more := coalesce(cardinality(sid), 0) = bill_batch_citus.batch_size;
    IF sid IS NULL THEN
        RETURN;
    END IF;
    -- the series of the issue dates, created if missing, their counters locked for the batch
    PERFORM subbilling_internal.series_for(y) FROM (SELECT DISTINCT d FROM unnest(ad) d) q(y);
    SELECT array_agg(c.series_id ORDER BY c.series_id), array_agg(c.next_number ORDER BY c.series_id)
      INTO ser, nxt
      FROM (SELECT ct.series_id, ct.next_number
              FROM subbilling.invoice_counters ct
             WHERE ct.series_id IN (SELECT sr.id FROM subbilling.invoice_series sr
                                     WHERE sr.code IN (SELECT DISTINCT to_char(d, 'FMYYYY') FROM unnest(ad) d))
               FOR UPDATE) c;
    first_ := nxt;
    -- the shard of each account (one group for all without the citus extension)
    IF EXISTS (SELECT FROM pg_catalog.pg_extension x WHERE x.extname = 'citus') THEN
        EXECUTE $q$SELECT array_agg(pg_catalog.get_shard_id_for_distribution_column('subbilling.accounts', u.a) ORDER BY u.o)
                     FROM unnest($1) WITH ORDINALITY AS u(a, o)$q$ INTO shard USING acc;
    ELSE
        shard := array_fill(0::bigint, ARRAY[cardinality(acc)]);
    END IF;
    -- the outbox slot, held before the event ids are drawn (events_after's watermark)
    PERFORM subbilling_internal.outbox_reserve();
    FOR grp IN
        SELECT min(u.acc) AS first_acc, array_agg(u.acc ORDER BY u.acc, u.sid) AS accs,
               array_agg(u.sid ORDER BY u.acc, u.sid) AS sids, array_agg(u.ad ORDER BY u.acc, u.sid) AS ads
          FROM unnest(shard, acc, sid, ad) AS u(shard, acc, sid, ad)
         GROUP BY u.shard
         ORDER BY min(u.acc)
    LOOP
        c_acc := grp.accs;
        c_sid := grp.sids;
        c_ad := grp.ads;
        try := 1;
        LOOP
            n := cardinality(c_sid);
            -- the pools: one invoice, two entries and five events per subscription and four
            -- entries and eight events more per call; when the call said its accounts need
            -- more (customer credit settling many open invoices), their subscriptions are billed
            -- again with four entries and eight events more per open invoice, doubled on the
            -- third and last try (whose pools, marked '=', make running out an account's error)
            extra := CASE WHEN try = 1 THEN 0 ELSE greatest(need, n) * (1 << (try - 2)) END;
            mark := CASE WHEN try >= 3 THEN '=' ELSE '+' END;
            ids_i := ARRAY(SELECT nextval('subbilling.invoices_id_seq'::regclass) FROM generate_series(1, n));
            ids_j := ARRAY(SELECT nextval('subbilling.journal_entries_id_seq'::regclass) FROM generate_series(1, 2 * n + 4 + 4 * extra));
            ids_e := ARRAY(SELECT nextval('subbilling.events_id_seq'::regclass) FROM generate_series(1, 5 * n + 8 + 8 * extra));
            -- routed to the worker that holds the group's shard, and run there
            SELECT subbilling_internal.bill_accounts_citus(a.id, c_acc, c_sid, c_ad, bill_batch_citus.as_of, run,
                                                           ser, nxt, mark || substr(subbilling_internal.citus_id_pool(ids_i), 2),
                                                           mark || substr(subbilling_internal.citus_id_pool(ids_j), 2),
                                                           mark || substr(subbilling_internal.citus_id_pool(ids_e), 2))
              INTO res
              FROM subbilling.accounts a
             WHERE a.id = c_acc[1];
            EXIT WHEN res IS NULL;
            invoices := invoices + res[1];
            errors := errors + res[2];
            claimed := claimed + res[3];
            nser := coalesce(cardinality(ser), 0);
            nxt := res[4:3 + nser];
            IF notify AND res[1] > 0 THEN
                FOR ev IN SELECT e.id, e.type, e.account_id, e.subscription_id, e.invoice_id
                            FROM subbilling.events e
                           WHERE e.account_id = ANY (c_acc) AND e.id = ANY (ids_e)
                           ORDER BY e.id LOOP
                    PERFORM subbilling_internal.outbox_notify(ev.id, ev.type, ev.account_id, ev.subscription_id, ev.invoice_id);
                END LOOP;
            END IF;
            EXIT WHEN cardinality(res) <= 3 + nser;
            -- the subscriptions to bill again, with pools sized by their accounts' open invoices
            need := res[4 + nser];
            SELECT array_agg(u.acc ORDER BY u.acc, u.sid), array_agg(u.sid ORDER BY u.acc, u.sid),
                   array_agg(u.ad ORDER BY u.acc, u.sid)
              INTO c_acc, c_sid, c_ad
              FROM unnest(c_acc, c_sid, c_ad) AS u(acc, sid, ad)
             WHERE u.sid = ANY (res[5 + nser:]);
            EXIT WHEN c_sid IS NULL;
            try := try + 1;
        END LOOP;
    END LOOP;
    -- a full batch that claimed nothing (all held elsewhere) ends the run
    more := more AND claimed > 0;
    -- the counters moved once, by what the batch numbered
    UPDATE subbilling.invoice_counters ct SET next_number = u.nxt
      FROM unnest(ser, nxt, first_) AS u(series_id, nxt, first_)
     WHERE ct.series_id = u.series_id AND u.nxt <> u.first_;
END
$$;
COMMENT ON FUNCTION subbilling_internal.bill_batch_citus(integer, timestamptz) IS 'internal (Citus): bill_batch by shard: the due accounts grouped by shard, each group billed by one call of bill_accounts_citus on its worker (claims by (account_id, id) with SKIP LOCKED, a subtransaction per account), ids drawn on the coordinator, numbers from one block per series, counters moved once';
REVOKE ALL ON FUNCTION subbilling_internal.bill_batch_citus(integer, timestamptz) FROM PUBLIC;
