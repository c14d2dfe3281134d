
-- ============================================================================
-- Billing on Citus (docs/citus.md): the billing batch bills one account at a
-- time, every statement on that account's rows alone, so that Citus routes
-- it to the one shard that holds the account.  Used by bill_batch only when
-- the citus extension is installed; a single server bills set-based in
-- bill_subscriptions.
--
-- bill_account_citus computes the account's charges with the engine
-- (billing_charges, routed to the account's shard), keeps them in a
-- temporary table of the coordinator's session, and writes the account's
-- subscriptions, invoices, lines and events from there: nothing volatile is
-- evaluated on a shard (ids, clock) and no statement joins two accounts.
-- Invoice numbers come from the batch's block of each series: the caller
-- locks the series counters once per batch, hands in the next number of
-- each, and moves the counters once at the end of the batch (gapless: only
-- invoices written use numbers).
-- ============================================================================

-- Whether this database runs on Citus (the citus extension is installed):
-- decided once per session and kept in a session setting, so the billing
-- batch, the booking, dunning and the line triggers ask a setting, not the
-- catalog, each time (a session that asked before citus was installed keeps
-- its answer: connect again after distribute()).
CREATE FUNCTION subbilling_internal.on_citus() RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    v   text := current_setting('subbilling_internal.on_citus', true);
BEGIN
    IF v IS NULL OR v = '' THEN
        v := EXISTS (SELECT FROM pg_catalog.pg_extension x WHERE x.extname = 'citus')::text;
        PERFORM set_config('subbilling_internal.on_citus', v, false);
    END IF;
    RETURN v::boolean;
END
$$;
COMMENT ON FUNCTION subbilling_internal.on_citus() IS 'internal: true when the citus extension is installed, decided once per session (setting subbilling_internal.on_citus)';
REVOKE ALL ON FUNCTION subbilling_internal.on_citus() FROM PUBLIC;

-- book_invoices on Citus, for one account: books issued invoices as
-- book_invoices does (one entry each, receivables = total, revenue per
-- account code, VAT per rate, once; a zero total is paid at once), every
-- statement on the account's rows.  What it does not do yet on Citus (void
-- invoices, credit notes, customer credit, automatic payments) is refused
-- with 0A000: the caller records it (billing_errors) instead of booking
-- half of it.
CREATE FUNCTION subbilling_internal.book_new_invoices_citus(acct bigint, invoice_ids bigint[])
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    inv     subbilling.invoices;
    eid     bigint;
    codes   text[];
    amounts subbilling.price[];
    subs    text[];
    oitems  bigint[];
    l_kind  text[];
    l_plan  bigint[];
    l_rate  numeric[];
    l_treat text[];
    l_net   subbilling.price[];
    l_tax   subbilling.price[];
    booked  integer := 0;
    unsupported boolean;
BEGIN
    -- what this does not do on Citus yet: refused, so that the caller records it
    -- (each test its own statement: one query per shard, the credit summed on the coordinator)
    IF EXISTS (SELECT FROM subbilling.invoices i
                WHERE i.account_id = acct AND i.id = ANY (invoice_ids) AND (i.status = 'void' OR i.kind = 'credit_note')) THEN
        unsupported := true;
    ELSIF EXISTS (SELECT FROM subbilling.payment_methods pm
                   WHERE pm.account_id = acct AND pm.is_default AND pm.active AND pm.automatic) THEN
        unsupported := true;
    ELSE
        unsupported := coalesce(minor_units(customer_credit(acct)), 0) > 0;
    END IF;
    IF unsupported THEN
        RAISE EXCEPTION 'on Citus, booking does not yet handle void invoices, credit notes, customer credit or automatic payments'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = format('Account %s has one of them.', acct);
    END IF;

    FOR inv IN SELECT * FROM subbilling.invoices i
                WHERE i.account_id = acct AND i.id = ANY (invoice_ids)
                  AND i.status IN ('open', 'paid', 'uncollectible')
                ORDER BY i.id LOOP
        -- booked once
        CONTINUE WHEN EXISTS (SELECT 1 FROM subbilling.journal_entries e
                               WHERE e.account_id = acct AND e.invoice_id = inv.id
                                 AND e.kind IN ('invoice', 'credit_note'));
        -- the lines, read on the account's shard
        SELECT array_agg(l.kind), array_agg(l.plan_id), array_agg(l.tax_rate), array_agg(l.tax_treatment),
               array_agg(l.net), array_agg(l.tax)
          INTO l_kind, l_plan, l_rate, l_treat, l_net, l_tax
          FROM subbilling.invoice_lines l WHERE l.account_id = acct AND l.invoice_id = inv.id;
        SELECT array_agg(q.code ORDER BY q.ord, q.code), array_agg(q.amount ORDER BY q.ord, q.code),
               array_agg(q.subledger ORDER BY q.ord, q.code), array_agg(q.invoice_id ORDER BY q.ord, q.code)
          INTO codes, amounts, subs, oitems
          FROM (SELECT ledger_code('receivables', inv.currency) AS code, inv.total AS amount,
                       'receivables'::text AS subledger, inv.id AS invoice_id, 0 AS ord
                UNION ALL
                SELECT k.code, -sum(k.net), NULL, NULL, 1
                  FROM (SELECT CASE WHEN NOT g.is_fee AND g.tax_treatment IN ('reverse_charge', 'oss', 'outside_scope')
                                    THEN ledger_code('revenue_rate', inv.currency, g.tax_treatment)
                                    ELSE subbilling_internal.revenue_code(inv.currency, g.product, g.tax_rate, g.is_fee) END AS code,
                               g.net
                          FROM (SELECT c.kind = 'fee' AS is_fee, c.tax_rate, c.tax_treatment, p.code AS product, sum(c.net) AS net
                                  FROM unnest(l_kind, l_plan, l_rate, l_treat, l_net) AS c(kind, plan_id, tax_rate, tax_treatment, net)
                                  LEFT JOIN subbilling.plans pl ON pl.id = c.plan_id
                                  LEFT JOIN subbilling.products p ON p.id = pl.product_id
                                 GROUP BY 1, 2, 3, 4) g) k
                 GROUP BY k.code
                UNION ALL
                SELECT k.code, -sum(k.tax), NULL, NULL, 2
                  FROM (SELECT ledger_code('vat', inv.currency, CASE WHEN c.tax_treatment = 'oss' THEN 'oss'
                                                                     ELSE subbilling_internal.rate_detail(c.tax_rate) END) AS code,
                               c.tax
                          FROM unnest(l_rate, l_treat, l_tax) AS c(tax_rate, tax_treatment, tax)
                         WHERE minor_units(c.tax) <> 0) k
                 GROUP BY k.code) q
         WHERE minor_units(q.amount) <> 0;
        IF cardinality(codes) >= 2 THEN
            booked := booked + 1;
            eid := nextval('subbilling.journal_entries_id_seq'::regclass);
            INSERT INTO subbilling.journal_entries (account_id, id, kind, booked_on, invoice_id, memo)
            VALUES (acct, eid, inv.kind, inv.issue_date, inv.id, replace(inv.kind, '_', ' ') || ' ' || inv.number);
            -- the entry's lines in one statement (the balance is checked per statement), as
            -- a multi-row VALUES: Citus routes it to the account's shard
            EXECUTE 'INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id) VALUES '
                    || (SELECT string_agg(format('(%s, %s, %L, %L::subbilling.price, %L, %s)', acct, eid, u.code, u.amount,
                                                 u.subledger, coalesce(u.invoice_id::text, 'NULL')), ', ' ORDER BY u.ord)
                          FROM unnest(codes, amounts, subs, oitems) WITH ORDINALITY AS u(code, amount, subledger, invoice_id, ord));
        END IF;
        IF inv.kind = 'invoice' AND minor_units(inv.total) = 0 THEN
            UPDATE subbilling.invoices x SET status = 'paid', paid_at = now()
             WHERE x.account_id = acct AND x.id = inv.id;
            PERFORM subbilling_internal.emit_event(acct, 'invoice.paid', inv.subscription_id,
                        jsonb_build_object('invoice_id', inv.id, 'number', inv.number, 'currency', inv.currency,
                                           'total', inv.total::text, 'paid_at', now(), 'via', 'zero total',
                                           'payment_id', NULL), inv.id);
            PERFORM subbilling_internal.after_invoice_paid(acct, inv.id);
        END IF;
    END LOOP;
    RETURN booked;
END
$$;
COMMENT ON FUNCTION subbilling_internal.book_new_invoices_citus(bigint, bigint[]) IS 'internal (Citus): book_invoices for one account''s issued invoices (one entry each, once; a zero total is paid at once), one account''s rows per statement; returns the entries booked';
REVOKE ALL ON FUNCTION subbilling_internal.book_new_invoices_citus(bigint, bigint[]) FROM PUBLIC;

CREATE FUNCTION subbilling_internal.bill_account_citus(acct bigint, subscription_ids bigint[], as_of_dates date[],
                                                       as_of timestamptz, series_ids bigint[],
                                                       INOUT next_numbers bigint[],
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
    notify  boolean := subbilling_internal.notify_enabled();
    ev      record;
BEGIN
    invoice_ids := '{}';
    SELECT * INTO a FROM subbilling.accounts x WHERE x.id = acct;
    SELECT cs.reference_kind INTO ref_kind FROM subbilling.country_settings cs WHERE cs.country = a.country;
    SELECT ss.currency INTO s_cur FROM subbilling.seller_settings ss;

    IF to_regclass('pg_temp.subbilling_citus_charges') IS NULL THEN
        CREATE TEMP TABLE subbilling_citus_charges ON COMMIT DELETE ROWS AS
            SELECT * FROM subbilling_internal.billing_charges('{}', '{}', '{}') WITH NO DATA;
    ELSE
        DELETE FROM pg_temp.subbilling_citus_charges;
    END IF;
    INSERT INTO pg_temp.subbilling_citus_charges
    SELECT * FROM subbilling_internal.billing_charges(array_fill(acct, ARRAY[cardinality(subscription_ids)]),
                                                      subscription_ids, as_of_dates);

    -- each subscription's bookkeeping
    UPDATE subbilling.subscriptions x
       SET next_bill_on = st.next_on,
           bill_from = coalesce(st.from_d, greatest(st.as_of, x.billed_as_of) + 1),
           billed_as_of = greatest(st.as_of, x.billed_as_of),
           billed_at = stamp
      FROM (SELECT b.subscription_id, b.as_of,
                   (SELECT min(c.due_date) FROM pg_temp.subbilling_citus_charges c
                     WHERE c.subscription_id = b.subscription_id AND c.pending) AS next_on,
                   (SELECT min(c.key_start) FROM pg_temp.subbilling_citus_charges c
                     WHERE c.subscription_id = b.subscription_id AND c.pending) AS from_d
              FROM unnest(subscription_ids, as_of_dates) AS b(subscription_id, as_of)) st
     WHERE x.account_id = acct AND x.id = st.subscription_id;

    -- one invoice per subscription with lines due, in subscription order
    FOR h IN
        SELECT c.subscription_id, b.as_of AS issue_date, min(c.currency) AS currency,
               sum(c.net) AS net, sum(c.tax) AS tax, array_agg(DISTINCT c.tax_treatment) AS treatments
          FROM pg_temp.subbilling_citus_charges c
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
        inv.id := nextval('subbilling.invoices_id_seq'::regclass);
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
          FROM pg_temp.subbilling_citus_charges c
         WHERE c.subscription_id = h.subscription_id AND c.emit
         ORDER BY c.key_start, c.charge_type = 'discount', c.charge_type, minor_units(c.net) >= 0, c.plan_id;
        PERFORM subbilling_internal.emit_event(acct, 'invoice.created', inv.subscription_id,
                    jsonb_build_object('invoice_id', inv.id, 'kind', inv.kind,
                                       'currency', inv.currency, 'net', inv.net::text, 'tax', inv.tax::text,
                                       'total', inv.total::text, 'as_of', inv.as_of), inv.id);
        PERFORM subbilling_internal.emit_event(acct, 'invoice.finalized', inv.subscription_id,
                    jsonb_build_object('invoice_id', inv.id, 'kind', inv.kind, 'status', inv.status,
                                       'number', inv.number, 'series', ev.code,
                                       'currency', inv.currency, 'net', inv.net::text, 'tax', inv.tax::text,
                                       'total', inv.total::text, 'total_minor', minor_units(inv.total),
                                       'issue_date', inv.issue_date, 'due_date', inv.due_date,
                                       'reference', inv.reference), inv.id);
        invoice_ids := invoice_ids || inv.id;
    END LOOP;
    IF cardinality(invoice_ids) > 0 THEN
        PERFORM subbilling_internal.book_new_invoices_citus(acct, invoice_ids);
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling_internal.bill_account_citus(bigint, bigint[], date[], timestamptz, bigint[], bigint[]) IS 'internal (Citus): bill claimed subscriptions of one account as of their account-local dates, one account''s rows per statement; numbers from the batch''s blocks (next_numbers moved on); returns the invoice ids';
REVOKE ALL ON FUNCTION subbilling_internal.bill_account_citus(bigint, bigint[], date[], timestamptz, bigint[], bigint[]) FROM PUBLIC;

-- The billing batch on Citus: the due subscriptions are read without locks
-- (Citus locks rows only by their account), then claimed account by account
-- by (account_id, id) with SKIP LOCKED, skipping the ones held elsewhere or
-- billed meanwhile; each account is billed in its own subtransaction, and a
-- failure falls back to one subscription at a time (billing_errors), as on a
-- single server.  The counters of the batch's series are locked once and
-- moved once, at the end.
CREATE FUNCTION subbilling_internal.bill_batch_citus(batch_size integer, as_of timestamptz,
                                                     OUT invoices integer, OUT errors integer, OUT more boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    acc     bigint[];
    sid     bigint[];
    ad      date[];
    nbo     date[];
    a_sid   bigint[];
    a_ad    date[];
    ser     bigint[];
    nxt     bigint[];
    nxt_try bigint[];
    first_  bigint[];
    got     bigint[];
    k       bigint;
    claimed integer := 0;
    st      text;
    msg     text;
    det     text;
BEGIN
    invoices := 0;
    errors := 0;
    -- one connection per node: the batch writes reference tables (invoice series and
    -- counters) after reading the distributed ones
    PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    SELECT array_agg(c.account_id ORDER BY c.next_bill_on, c.account_id, c.id),
           array_agg(c.id ORDER BY c.next_bill_on, c.account_id, c.id),
           array_agg(c.local_date ORDER BY c.next_bill_on, c.account_id, c.id),
           array_agg(c.next_bill_on ORDER BY c.next_bill_on, c.account_id, c.id)
      INTO acc, sid, ad, nbo
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
    FOR k IN SELECT DISTINCT x FROM unnest(acc) x ORDER BY x LOOP
        -- claim the account's due subscriptions of the batch
        -- (each statement either local or on the account's shard alone)
        a_sid := ARRAY(SELECT u.sid FROM unnest(acc, sid) AS u(acc, sid) WHERE u.acc = k);
        SELECT array_agg(x.id ORDER BY x.id) INTO a_sid
          FROM (SELECT x.id FROM subbilling.subscriptions x
                 WHERE x.account_id = k AND x.id = ANY (a_sid)
                   AND x.next_bill_on <= (bill_batch_citus.as_of AT TIME ZONE 'UTC')::date + 1
                   FOR UPDATE SKIP LOCKED) x;
        CONTINUE WHEN a_sid IS NULL;
        a_ad := ARRAY(SELECT b.ad FROM unnest(acc, sid, ad) AS b(acc, sid, ad)
                       WHERE b.acc = k AND b.sid = ANY (a_sid) ORDER BY b.sid);
        claimed := claimed + cardinality(a_sid);
        BEGIN
            SELECT r.next_numbers, r.invoice_ids INTO STRICT nxt_try, got
              FROM subbilling_internal.bill_account_citus(k, a_sid, a_ad, bill_batch_citus.as_of, ser, nxt) r;
            UPDATE subbilling.billing_errors e SET resolved_at = now()
             WHERE e.account_id = k AND e.subscription_id = ANY (a_sid) AND e.resolved_at IS NULL;
            nxt := nxt_try;
            invoices := invoices + cardinality(got);
        EXCEPTION WHEN OTHERS THEN
            -- one subscription at a time, each in its own subtransaction
            FOR j IN 1 .. cardinality(a_sid) LOOP
                BEGIN
                    SELECT r.next_numbers, r.invoice_ids INTO STRICT nxt_try, got
                      FROM subbilling_internal.bill_account_citus(k, ARRAY[a_sid[j]], ARRAY[a_ad[j]], bill_batch_citus.as_of, ser, nxt) r;
                    UPDATE subbilling.billing_errors e SET resolved_at = now()
                     WHERE e.account_id = k AND e.subscription_id = a_sid[j] AND e.resolved_at IS NULL;
                    nxt := nxt_try;
                    invoices := invoices + cardinality(got);
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
                    INSERT INTO subbilling.billing_errors (account_id, subscription_id, run_id, as_of, sqlstate, message, detail)
                    VALUES (k, a_sid[j], current_run_id(), bill_batch_citus.as_of, st, msg, nullif(det, ''));
                    UPDATE subbilling.subscriptions x SET next_bill_on = a_ad[j] + 1
                     WHERE x.account_id = k AND x.id = a_sid[j];
                    errors := errors + 1;
                END;
            END LOOP;
        END;
    END LOOP;
    -- a full batch that claimed nothing (all held elsewhere) ends the run
    more := more AND claimed > 0;
    -- the counters moved once, by what the batch numbered
    UPDATE subbilling.invoice_counters ct SET next_number = u.nxt
      FROM unnest(ser, nxt, first_) AS u(series_id, nxt, first_)
     WHERE ct.series_id = u.series_id AND u.nxt <> u.first_;
END
$$;
COMMENT ON FUNCTION subbilling_internal.bill_batch_citus(integer, timestamptz) IS 'internal (Citus): bill_batch account by account: claim by (account_id, id) with SKIP LOCKED, bill each account in its own subtransaction, number from one block per series, move the counters once';
REVOKE ALL ON FUNCTION subbilling_internal.bill_batch_citus(integer, timestamptz) FROM PUBLIC;
