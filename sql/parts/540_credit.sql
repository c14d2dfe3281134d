
-- ============================================================================
-- Issued invoices after the fact: credit notes, voiding,
-- and finalising drafts.  An issued invoice is never deleted or altered;
-- these functions add documents or move the status forward.
-- ============================================================================

-- Numbers one invoice in the series of its issue date: locks the series
-- row until commit (gapless) and returns the number as (series_id, seq, text).
CREATE FUNCTION subbilling_internal.take_invoice_number(issue_date date,
                                               OUT series_id bigint, OUT number_seq bigint, OUT number text)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    sid bigint := subbilling_internal.series_for(issue_date);
    nxt text;
BEGIN
    IF subbilling_internal.on_citus() AND current_setting('subbilling_internal.number_block', true) = 'on' THEN
        -- Citus, in a dunning batch: the counter row (a reference table, on every node) is
        -- locked once and read, the numbers counted in a transaction-local setting (undone
        -- with a rolled-back subtransaction, so the numbers stay gapless) and the counter
        -- moved once at the end of the batch (number_block_flush)
        nxt := current_setting('subbilling_internal.number_next_' || sid, true);
        IF coalesce(nxt, '') = '' THEN
            SELECT ct.next_number::text INTO nxt FROM subbilling.invoice_counters ct WHERE ct.series_id = sid FOR UPDATE;
            PERFORM set_config('subbilling_internal.number_block_series',
                               concat_ws(',', nullif(current_setting('subbilling_internal.number_block_series', true), ''), sid), true);
        END IF;
        PERFORM set_config('subbilling_internal.number_next_' || sid, (nxt::bigint + 1)::text, true);
        SELECT sr.id, nxt::bigint, subbilling_internal.format_invoice_number(sr.prefix, sr.digits, nxt::bigint)
          INTO series_id, number_seq, number
          FROM subbilling.invoice_series sr WHERE sr.id = sid;
        RETURN;
    END IF;
    UPDATE subbilling.invoice_counters ct SET next_number = ct.next_number + 1
      FROM subbilling.invoice_series sr
     WHERE ct.series_id = sid AND sr.id = sid
    RETURNING sr.id, ct.next_number - 1, subbilling_internal.format_invoice_number(sr.prefix, sr.digits, ct.next_number - 1)
      INTO series_id, number_seq, number;
END
$$;
COMMENT ON FUNCTION subbilling_internal.take_invoice_number(date) IS 'internal: the next number of the issue date''s series, under the series row lock (held until commit)';

-- Citus: the end of a block of numbers taken by take_invoice_number (a dunning batch):
-- each series' counter moved once to after the last number taken, and the block closed.
CREATE FUNCTION subbilling_internal.number_block_flush() RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    sid     bigint;
BEGIN
    FOR sid IN SELECT x::bigint FROM unnest(string_to_array(nullif(current_setting('subbilling_internal.number_block_series', true), ''), ',')) x
                ORDER BY 1 LOOP
        UPDATE subbilling.invoice_counters ct
           SET next_number = current_setting('subbilling_internal.number_next_' || sid)::bigint
         WHERE ct.series_id = sid;
        PERFORM set_config('subbilling_internal.number_next_' || sid, '', true);
    END LOOP;
    PERFORM set_config('subbilling_internal.number_block_series', '', true);
    PERFORM set_config('subbilling_internal.number_block', 'off', true);
END
$$;
COMMENT ON FUNCTION subbilling_internal.number_block_flush() IS 'internal (Citus): close a block of invoice numbers (subbilling_internal.number_block): each series'' counter moved once to after the last number taken';
REVOKE ALL ON FUNCTION subbilling_internal.number_block_flush() FROM PUBLIC;

-- The account of the invoice with this id (NULL if none).  On Citus the look-up by id
-- alone reads every shard: it goes over one connection per node, so that the invoice
-- series (reference tables) may still be written in the same transaction.
CREATE FUNCTION subbilling_internal.invoice_account(invoice_id bigint) RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF subbilling_internal.on_citus() THEN
        PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);
    END IF;
    RETURN (SELECT x.account_id FROM subbilling.invoices x WHERE x.id = invoice_account.invoice_id);
END
$$;
COMMENT ON FUNCTION subbilling_internal.invoice_account(bigint) IS 'internal: the account of an invoice id (NULL if none); on Citus read over one connection per node';
REVOKE ALL ON FUNCTION subbilling_internal.invoice_account(bigint) FROM PUBLIC;

-- The invoice with this id, locked; 42704 if none.
CREATE FUNCTION subbilling_internal.invoice_for_update(invoice_id bigint) RETURNS subbilling.invoices
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    i   subbilling.invoices;
    acc bigint;
BEGIN
    -- the account first, then the row locked by (account_id, id): on Citus a row is locked
    -- on its account's shard only
    acc := subbilling_internal.invoice_account(invoice_for_update.invoice_id);
    SELECT * INTO i FROM subbilling.invoices x
     WHERE x.account_id = acc AND x.id = invoice_for_update.invoice_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'invoice % does not exist', coalesce(invoice_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN i;
END
$$;
COMMENT ON FUNCTION subbilling_internal.invoice_for_update(bigint) IS 'internal: the invoice row locked FOR UPDATE, or SQLSTATE 42704';

-- The amount of an invoice not yet credited: its total less the totals of
-- its non-void credit notes.
CREATE FUNCTION subbilling_internal.invoice_uncredited(i subbilling.invoices) RETURNS subbilling.price
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT i.total + coalesce((SELECT sum(c.total) FROM subbilling.invoices c
                                WHERE c.account_id = i.account_id AND c.credits_invoice_id = i.id
                                  AND c.status <> 'void'), price_minor(0, i.currency))
$$;
COMMENT ON FUNCTION subbilling_internal.invoice_uncredited(subbilling.invoices) IS 'internal: an invoice''s total less its credit notes';

-- ---------------------------------------------------------------- credit notes

CREATE FUNCTION subbilling.credit_invoice(invoice_id bigint, amount subbilling.price DEFAULT NULL,
                                          reason text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    i       subbilling.invoices;
    a       subbilling.accounts;
    left_   subbilling.price;
    amt     subbilling.price;
    zero    subbilling.price;
    whole   boolean;
    today   date;
    num     record;
    cid     bigint;
    cn      subbilling.invoices;
BEGIN
    -- the account's money, then the invoice, both read again under the locks
    PERFORM subbilling_internal.lock_account_credit(subbilling_internal.invoice_account(credit_invoice.invoice_id));
    i := subbilling_internal.invoice_for_update(credit_invoice.invoice_id);
    IF i.kind <> 'invoice' OR i.status NOT IN ('open', 'paid', 'uncollectible') THEN
        RAISE EXCEPTION 'invoice % cannot be credited', coalesce(i.number, i.id::text)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('It is a %s with status %s; only issued invoices (open, paid, uncollectible) are credited.',
                                  replace(i.kind, '_', ' '), i.status);
    END IF;
    zero := price_minor(0, i.currency);
    left_ := subbilling_internal.invoice_uncredited(i);
    IF left_ <= zero THEN
        RAISE EXCEPTION 'invoice % is fully credited', i.number
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Its total %s has been credited.', i.total);
    END IF;
    amt := coalesce(credit_invoice.amount, left_);
    IF currency(amt) <> i.currency THEN
        RAISE EXCEPTION 'credit amount % is not in the invoice''s currency %', amt, i.currency
            USING ERRCODE = 'data_exception';
    END IF;
    IF amt <= zero OR amt > left_ THEN
        RAISE EXCEPTION 'credit amount % is not between 0 and the uncredited %', amt, left_
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Invoice %s totals %s, of which %s is not yet credited.', i.number, i.total, left_);
    END IF;
    SELECT * INTO a FROM subbilling.accounts x WHERE x.id = i.account_id;
    today := (now() AT TIME ZONE a.time_zone)::date;
    whole := amt = i.total;     -- nothing credited before: mirror every line
    cid := nextval('subbilling.invoices_id_seq'::regclass);
    num := subbilling_internal.take_invoice_number(today);

    WITH g AS (
        SELECT l.tax_rate, l.tax_treatment, greatest(minor_units(sum(l.net) + sum(l.tax)), 0)::numeric AS w,
               row_number() OVER (ORDER BY l.tax_rate DESC, l.tax_treatment) AS ord
          FROM subbilling.invoice_lines l
          JOIN subbilling.invoices x ON x.account_id = l.account_id AND x.id = l.invoice_id
         WHERE l.account_id = i.account_id AND x.status <> 'void'
           AND (x.id = i.id OR x.credits_invoice_id = i.id)
         GROUP BY l.tax_rate, l.tax_treatment
    ),
    -- the gross amount split over the VAT rates in proportion to what is
    -- not yet credited of each, exactly (largest remainder)
    parts AS (
        SELECT g.tax_rate, g.tax_treatment, g.ord, (allocate(amt, (SELECT array_agg(g2.w ORDER BY g2.ord) FROM g g2)))[g.ord] AS part
          FROM g
         WHERE NOT whole
    ),
    cl AS (
        SELECT 'Credit: ' || l.description AS description, l.period, l.quantity, -l.unit_price AS unit_price,
               -l.net AS net, l.tax_rate, -l.tax AS tax, l.id AS ord, l.tax_treatment
          FROM subbilling.invoice_lines l
         WHERE whole AND l.account_id = i.account_id AND l.invoice_id = i.id
        UNION ALL
        SELECT format('%s (VAT %s%%)', coalesce(credit_invoice.reason, 'Credit'), trim_scale(r.tax_rate)),
               NULL, 1, -net_of(r.part, r.tax_rate), -net_of(r.part, r.tax_rate), r.tax_rate,
               -(r.part - net_of(r.part, r.tax_rate)), r.ord, r.tax_treatment
          FROM parts r
         WHERE r.part <> zero
    ),
    h AS (
        INSERT INTO subbilling.invoices AS x
               (account_id, id, subscription_id, kind, status, series_id, number_seq, number, currency, net, tax,
                total, issue_date, due_date, reference, credits_invoice_id, reason, finalized_at,
                tax_notes, buyer_vat_number, seller_currency, exchange_rate, tax_seller_currency)
        SELECT i.account_id, cid, i.subscription_id, 'credit_note', 'open', num.series_id, num.number_seq,
               num.number, i.currency, sum(c.net), sum(c.tax), sum(c.net) + sum(c.tax), today, today,
               payment_reference(a.country, cid), i.id, credit_invoice.reason, now(),
               -- the credit note states what the invoice stated, at its exchange rate
               i.tax_notes, i.buyer_vat_number, i.seller_currency, i.exchange_rate,
               CASE WHEN i.seller_currency IS NOT NULL
                    THEN subbilling_internal.convert_price(sum(c.tax), coalesce(i.exchange_rate, 1), i.seller_currency) END
          FROM cl c
        RETURNING x.*
    ),
    ln AS (
        INSERT INTO subbilling.invoice_lines
               (account_id, invoice_id, subscription_id, kind, description, period, quantity, unit_price, net,
                tax_rate, tax, tax_treatment)
        SELECT i.account_id, cid, i.subscription_id, 'credit', c.description, c.period, c.quantity, c.unit_price,
               c.net, c.tax_rate, c.tax, c.tax_treatment
          FROM cl c
         ORDER BY c.ord
    )
    SELECT * INTO cn FROM h;

    PERFORM subbilling_internal.emit_event(cn.account_id, 'invoice.created', cn.subscription_id,
        jsonb_build_object('invoice_id', cn.id, 'kind', cn.kind, 'currency', cn.currency, 'net', cn.net::text,
                           'tax', cn.tax::text, 'total', cn.total::text, 'credits_invoice_id', i.id), cn.id);
    PERFORM subbilling_internal.emit_event(cn.account_id, 'invoice.finalized', cn.subscription_id,
        jsonb_build_object('invoice_id', cn.id, 'kind', cn.kind, 'status', cn.status, 'number', cn.number,
                           'series', (SELECT sr.code FROM subbilling.invoice_series sr WHERE sr.id = cn.series_id),
                           'currency', cn.currency, 'net', cn.net::text, 'tax', cn.tax::text, 'total', cn.total::text,
                           'total_minor', minor_units(cn.total), 'issue_date', cn.issue_date,
                           'due_date', cn.due_date, 'reference', cn.reference, 'credits_invoice_id', i.id), cn.id);
    PERFORM subbilling_internal.emit_event(i.account_id, 'invoice.credited', i.subscription_id,
        jsonb_build_object('invoice_id', i.id, 'number', i.number, 'credit_note_id', cn.id,
                           'credit_note_number', cn.number, 'amount', amt::text, 'currency', i.currency,
                           'uncredited', (left_ - amt)::text, 'reason', credit_invoice.reason), i.id);
    PERFORM subbilling_internal.book_invoices(ARRAY[i.account_id], ARRAY[cid]);   -- the receivables ledger
    RETURN cid;
END
$$;
COMMENT ON FUNCTION subbilling.credit_invoice(bigint, subbilling.price, text) IS 'issue a credit note for an invoice: the whole uncredited amount (NULL) mirrors its lines, a part is split over its VAT rates; numbered and announced at once; returns the credit note id; events invoice.created, invoice.finalized (note) and invoice.credited';

-- ---------------------------------------------------------------- void

CREATE FUNCTION subbilling.void_invoice(invoice_id bigint, reason text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    i   subbilling.invoices;
BEGIN
    i := subbilling_internal.invoice_for_update(void_invoice.invoice_id);
    IF i.status <> 'open' THEN
        RAISE EXCEPTION 'invoice % is %, not open', coalesce(i.number, i.id::text), i.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only an open invoice is voided; credit_invoice() corrects a paid one.';
    END IF;
    IF EXISTS (SELECT 1 FROM subbilling.invoices c
                WHERE c.account_id = i.account_id AND c.credits_invoice_id = i.id AND c.status <> 'void') THEN
        RAISE EXCEPTION 'invoice % has credit notes', i.number
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Credit the rest with credit_invoice() instead.';
    END IF;
    UPDATE subbilling.invoices x SET status = 'void', voided_at = now()
     WHERE x.account_id = i.account_id AND x.id = i.id;
    -- what it invoiced counts as not invoiced: recompute the subscription
    UPDATE subbilling.subscriptions s SET next_bill_on = '-infinity', bill_from = NULL
     WHERE s.account_id = i.account_id AND s.id = i.subscription_id;
    PERFORM subbilling_internal.emit_event(i.account_id, 'invoice.voided', i.subscription_id,
        jsonb_build_object('invoice_id', i.id, 'number', i.number, 'total', i.total::text,
                           'currency', i.currency, 'reason', void_invoice.reason), i.id);
    PERFORM subbilling_internal.book_invoices(ARRAY[i.account_id], ARRAY[i.id]);   -- the receivables ledger
    RETURN i.id;
END
$$;
COMMENT ON FUNCTION subbilling.void_invoice(bigint, text) IS 'void an open invoice without credit notes (it keeps its number); its charges count as not invoiced, so the next billing run bills what is still due; returns the invoice id; event invoice.voided';

-- ---------------------------------------------------------------- drafts

-- Finalises a draft invoice locked by the caller (finalize_invoice; dunning's fee invoices,
-- which know the account: on Citus nothing here looks an invoice up by its id alone).
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

CREATE FUNCTION subbilling.finalize_invoice(invoice_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    RETURN subbilling_internal.finalize_draft(subbilling_internal.invoice_for_update(finalize_invoice.invoice_id));
END
$$;
COMMENT ON FUNCTION subbilling.finalize_invoice(bigint) IS 'finalise a draft invoice: totals from its lines, the next number of its issue year''s series, due date from the payment terms, payment reference; returns its id; event invoice.finalized';
