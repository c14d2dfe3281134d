-- Citus billing: one booking path for billing and the booking through the coordinator
-- (book_invoice_entry_citus, shared by book_new_invoices_citus and book_account_citus, which
-- billing's delegated call now uses: customer credit and automatic payment methods are
-- billed), and a cheaper delegated call per shard (docs/citus.md); new in 0.3.

-- The entry of one issued document (invoice or credit note) on Citus, the step that
-- billing's booking (book_new_invoices_citus) and the account-by-account booking
-- (book_account_citus) share: receivables = total, revenue per account code, VAT per
-- rate, one entry, once, every statement on the account's shard.  The entry's id is
-- taken with citus_take_id: from the coordinator's pool in a delegated billing call,
-- else from the sequence.  Returns true when it wrote the entry, false when there was
-- nothing to book (a zero total), NULL when the document was already booked.
CREATE FUNCTION subbilling_internal.book_invoice_entry_citus(acct bigint, inv subbilling.invoices)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
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
BEGIN
    -- booked once
    IF EXISTS (SELECT 1 FROM subbilling.journal_entries e
                WHERE e.account_id = acct AND e.invoice_id = inv.id AND e.kind IN ('invoice', 'credit_note')) THEN
        RETURN NULL;
    END IF;
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
    IF coalesce(cardinality(codes), 0) < 2 THEN
        RETURN false;
    END IF;
    PERFORM subbilling_internal.post_entry_citus(acct, subbilling_internal.citus_take_id('journal_entries'),
                inv.kind, inv.issue_date, inv.id, replace(inv.kind, '_', ' ') || ' ' || inv.number,
                codes, amounts, subs, oitems);
    RETURN true;
END
$$;
COMMENT ON FUNCTION subbilling_internal.book_invoice_entry_citus(bigint, subbilling.invoices) IS 'internal (Citus): the journal entry of one issued document on the account''s shard (once; the id from the coordinator''s pool in a delegated billing call); true when written, false when nothing to book, NULL when already booked';
REVOKE ALL ON FUNCTION subbilling_internal.book_invoice_entry_citus(bigint, subbilling.invoices) FROM PUBLIC;

-- bill_account_citus takes the charges that bill_accounts_citus computed for the shard's
-- whole group and whether its booking is plain (new arguments: created anew)
DROP FUNCTION subbilling_internal.bill_account_citus(bigint, bigint[], date[], timestamptz, bigint[], bigint[]);
CREATE FUNCTION subbilling_internal.bill_account_citus(acct bigint, subscription_ids bigint[], as_of_dates date[],
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
        -- the one booking path on Citus (book_account_citus): the new invoices alone
        -- (book_new_invoices_citus), or with customer credit applied and payment requests
        -- made for an automatic method.  plain_booking: the caller found for the whole group
        -- that the account has neither customer credit nor an automatic payment method, so
        -- that only a credit note among the new invoices needs book_account_citus's tests.
        IF plain_booking AND NOT EXISTS (SELECT FROM subbilling.invoices i
                                          WHERE i.account_id = acct AND i.id = ANY (invoice_ids) AND i.kind = 'credit_note') THEN
            PERFORM subbilling_internal.book_new_invoices_citus(acct, invoice_ids);
        ELSE
            PERFORM subbilling_internal.book_account_citus(acct, invoice_ids);
        END IF;
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling_internal.bill_account_citus(bigint, bigint[], date[], timestamptz, bigint[], bigint[], subbilling_internal.citus_charge[], boolean) IS 'internal (Citus): bill claimed subscriptions of one account as of their account-local dates, one account''s rows per statement, with the charges handed in (else computed), booked by book_account_citus (plain_booking: no credit or automatic payment method, so book_new_invoices_citus unless a credit note); numbers from the batch''s blocks (next_numbers moved on); returns the invoice ids';
REVOKE ALL ON FUNCTION subbilling_internal.bill_account_citus(bigint, bigint[], date[], timestamptz, bigint[], bigint[], subbilling_internal.citus_charge[], boolean) FROM PUBLIC;
