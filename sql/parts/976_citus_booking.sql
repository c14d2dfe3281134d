
-- ============================================================================
-- Booking on Citus: what book_invoices does on one server, for one account,
-- every statement on that account's rows (its shard).  docs/citus.md
--
-- On one server book_invoices runs its six steps set-based over a batch of
-- accounts (sql/parts/610_book_invoices.sql).  On Citus a statement that
-- joins the batch's arrays with the customer tables has no account to route
-- by, so book_invoices books account by account there: the issued invoices of
-- an account with nothing more to do take the short way (their entries,
-- book_issued_citus in sql/parts/985_citus_billing.sql); an account with a void invoice or a
-- credit note among them, customer credit or an automatic payment method goes
-- through the six steps one document at a time.  Both book an issued document
-- with book_invoice_entry_citus.  Billing on Citus books through
-- book_account_citus too, inside its delegated call on the worker: the entry
-- and event ids then come from the coordinator's pools (citus_take_id,
-- citus_emit_event), elsewhere from the sequences.  Nothing here runs on a
-- single server.
-- ============================================================================

-- One journal entry with its lines, on the account's shard: the lines in one
-- statement (the balance is checked per statement), as a multi-row VALUES,
-- which Citus routes to the account's shard.
CREATE FUNCTION subbilling_internal.post_entry_citus(acct bigint, eid bigint, kind text, booked_on date,
                                                     invoice_id bigint, memo text, codes text[],
                                                     amounts subbilling.price[], subledgers text[], line_invoices bigint[])
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO subbilling.journal_entries (account_id, id, kind, booked_on, invoice_id, memo)
    VALUES (acct, eid, post_entry_citus.kind, post_entry_citus.booked_on, post_entry_citus.invoice_id, post_entry_citus.memo);
    EXECUTE 'INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id) VALUES '
            || (SELECT string_agg(format('(%s, %s, %L, %L::subbilling.price, %L, %s)', acct, eid, u.code, u.amount,
                                         u.subledger, coalesce(u.invoice_id::text, 'NULL')), ', ' ORDER BY u.ord)
                  FROM unnest(codes, amounts, subledgers, line_invoices) WITH ORDINALITY AS u(code, amount, subledger, invoice_id, ord));
END
$$;
COMMENT ON FUNCTION subbilling_internal.post_entry_citus(bigint, bigint, text, date, bigint, text, text[], subbilling.price[], text[], bigint[]) IS 'internal (Citus): write one journal entry and its lines (in order, one statement) on the account''s shard';
REVOKE ALL ON FUNCTION subbilling_internal.post_entry_citus(bigint, bigint, text, date, bigint, text, text[], subbilling.price[], text[], bigint[]) FROM PUBLIC;

-- book_invoices for one account's documents on Citus: the six steps of
-- sql/parts/610_book_invoices.sql with the same entries, events and results,
-- one document per statement; the short way when they are issued invoices alone
-- and the account has neither customer credit nor an automatic payment method
-- (plain: billing found that for the account's whole group).  Returns the
-- entries booked and reversed.
CREATE FUNCTION subbilling_internal.book_account_citus(acct bigint, invoice_ids bigint[], plain boolean DEFAULT false)
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
