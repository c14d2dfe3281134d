
-- ============================================================================
-- Booking issued documents, set-based for billing batches:
--
--   book_invoices(account_ids, invoice_ids)
--     1. every issued invoice / credit note not yet booked: one entry
--        (receivables = total; revenue per account code, VAT per rate)
--     2. every void invoice booked and not yet reversed: a reversing entry
--        (what had been paid on it becomes customer credit)
--     3. credit notes: applied to the invoice they credit (up to its open
--        amount), the rest becomes customer credit
--     4. customer credit of the accounts: applied to their open invoices,
--        oldest due first
--     5. invoices whose open amount reached zero: paid (invoice.paid,
--        after_invoice_paid)
--     6. payment requests (payment.requested) for the new invoices of
--        accounts whose default payment method is automatic
--
-- The billing engine's finalize paths call it with the documents they
-- issue; calling it again books nothing twice.
-- ============================================================================

-- The revenue account of an invoice line: fees by the fees mapping; else
-- the product's own revenue row, else by the line's VAT rate, else any
-- revenue row; 42704 when nothing maps.
CREATE FUNCTION subbilling_internal.revenue_code(currency text, product_code text, rate numeric, is_fee boolean)
    RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN is_fee THEN ledger_code('fees', currency)
                ELSE coalesce(subbilling_internal.ledger_mapping('revenue', currency, product_code, true),
                              subbilling_internal.ledger_mapping('revenue_rate', currency, subbilling_internal.rate_detail(rate), true),
                              subbilling_internal.ledger_mapping('revenue', currency, NULL),
                              ledger_code('revenue_rate', currency, subbilling_internal.rate_detail(rate))) END
$$;
COMMENT ON FUNCTION subbilling_internal.revenue_code(text, text, numeric, boolean) IS 'internal: the revenue account of an invoice line (fees; product row; VAT-rate row; any revenue row), 42704 if unmapped';


-- The six steps of book_invoices, each a helper called by it alone (the
-- documents are the pairs (account_ids[i], invoice_ids[i])).

-- 1. issued documents not yet booked: one entry each (receivables = total;
--    revenue per account code, VAT per rate); returns the entries booked and
--    the booked invoices whose total is zero (paid at once)
CREATE FUNCTION subbilling_internal.book_issued_documents(account_ids bigint[], invoice_ids bigint[], OUT booked integer, OUT zero_acc bigint[], OUT zero_inv bigint[])
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    WITH d AS MATERIALIZED (
        SELECT i.account_id, i.id, i.kind, i.currency, i.total, i.issue_date, i.number,
               nextval('subbilling.journal_entries_id_seq'::regclass) AS eid
          FROM (SELECT DISTINCT k.account_id, k.invoice_id
                  FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)) k
          JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
         WHERE i.status IN ('open', 'paid', 'uncollectible')
           AND NOT EXISTS (SELECT 1 FROM subbilling.journal_entries e
                            WHERE e.account_id = i.account_id AND e.invoice_id = i.id
                              AND e.kind IN ('invoice', 'credit_note'))
    ),
    cur AS MATERIALIZED (
        SELECT c.currency, ledger_code('receivables', c.currency) AS rc
          FROM (SELECT DISTINCT d.currency FROM d) c
    ),
    -- the lines summed per plan, fee or not, and VAT rate first (an invoice
    -- bills several periods of the same plan): every later step, the plan
    -- and product lookups and the joins to the account codes, works on
    -- these few sums instead of every line
    dp AS MATERIALIZED (
        SELECT d.account_id, d.eid, d.kind, d.issue_date, d.id, d.number, d.currency, l.plan_id,
               l.kind = 'fee' AS is_fee, l.tax_rate, l.tax_treatment, sum(l.net) AS net, sum(l.tax) AS tax
          FROM d
          JOIN subbilling.invoice_lines l ON l.account_id = d.account_id AND l.invoice_id = d.id
         GROUP BY d.account_id, d.eid, d.kind, d.issue_date, d.id, d.number, d.currency, l.plan_id,
                  l.kind = 'fee', l.tax_rate, l.tax_treatment
    ),
    dl AS MATERIALIZED (
        SELECT dp.account_id, dp.eid, dp.kind, dp.issue_date, dp.id, dp.number, dp.currency, dp.is_fee,
               p.code AS product, dp.tax_rate, dp.tax_treatment, dp.net, dp.tax
          FROM dp
          LEFT JOIN subbilling.plans pl ON pl.id = dp.plan_id
          LEFT JOIN subbilling.products p ON p.id = pl.product_id
    ),
    -- sales that are not domestic book to their treatment's revenue account
    -- (revenue_rate rows for reverse_charge, oss, outside_scope: the VAT
    -- return's boxes), OSS VAT to the vat row for oss
    rev AS MATERIALIZED (
        SELECT k.currency, k.is_fee, k.product, k.tax_rate, k.tax_treatment,
               CASE WHEN NOT k.is_fee AND k.tax_treatment IN ('reverse_charge', 'oss', 'outside_scope')
                    THEN ledger_code('revenue_rate', k.currency, k.tax_treatment)
                    ELSE subbilling_internal.revenue_code(k.currency, k.product, k.tax_rate, k.is_fee) END AS code
          FROM (SELECT DISTINCT dl.currency, dl.is_fee, dl.product, dl.tax_rate, dl.tax_treatment FROM dl) k
    ),
    vat AS MATERIALIZED (
        SELECT k.currency, k.tax_rate, k.tax_treatment,
               ledger_code('vat', k.currency, CASE WHEN k.tax_treatment = 'oss' THEN 'oss'
                                                   ELSE subbilling_internal.rate_detail(k.tax_rate) END) AS code
          FROM (SELECT DISTINCT dl.currency, dl.tax_rate, dl.tax_treatment FROM dl WHERE minor_units(dl.tax) <> 0) k
    ),
    -- every line carries its document, and entries and lines come from the
    -- lines alone: no join between the batch-sized intermediate results,
    -- whose row estimates are poor while a batch is being written
    ln AS MATERIALIZED (
        SELECT d.account_id, d.eid, d.kind, d.issue_date, d.id, d.number, cur.rc AS code, d.total AS amount,
               'receivables'::text AS subledger, d.id AS invoice_id, 0 AS ord
          FROM d JOIN cur ON cur.currency = d.currency
        UNION ALL
        SELECT dl.account_id, dl.eid, dl.kind, dl.issue_date, dl.id, dl.number, rev.code, -sum(dl.net), NULL, NULL, 1
          FROM dl JOIN rev ON rev.currency = dl.currency AND rev.is_fee = dl.is_fee
                          AND rev.product IS NOT DISTINCT FROM dl.product AND rev.tax_rate = dl.tax_rate
                          AND rev.tax_treatment = dl.tax_treatment
         GROUP BY dl.account_id, dl.eid, dl.kind, dl.issue_date, dl.id, dl.number, rev.code
        UNION ALL
        SELECT dl.account_id, dl.eid, dl.kind, dl.issue_date, dl.id, dl.number, vat.code, -sum(dl.tax), NULL, NULL, 2
          FROM dl JOIN vat ON vat.currency = dl.currency AND vat.tax_rate = dl.tax_rate
                          AND vat.tax_treatment = dl.tax_treatment
         GROUP BY dl.account_id, dl.eid, dl.kind, dl.issue_date, dl.id, dl.number, vat.code
    ),
    nz AS MATERIALIZED (
        SELECT q.* FROM (SELECT ln.*, count(*) OVER (PARTITION BY ln.account_id, ln.eid) AS n
                           FROM ln WHERE minor_units(ln.amount) <> 0) q
         WHERE q.n >= 2
    ),
    ent AS (
        INSERT INTO subbilling.journal_entries AS e (account_id, id, kind, booked_on, invoice_id, memo)
        SELECT DISTINCT ON (nz.account_id, nz.eid) nz.account_id, nz.eid, nz.kind, nz.issue_date, nz.id,
               replace(nz.kind, '_', ' ') || ' ' || nz.number
          FROM nz
         ORDER BY nz.account_id, nz.eid
        RETURNING e.id
    ),
    lin AS (
        INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id)
        SELECT nz.account_id, nz.eid, nz.code, nz.amount, nz.subledger, nz.invoice_id
          FROM nz
         ORDER BY nz.account_id, nz.eid, nz.ord, nz.code
    )
    SELECT (SELECT count(*) FROM ent),
           coalesce(array_agg(d.account_id) FILTER (WHERE d.kind = 'invoice' AND minor_units(d.total) = 0), '{}'),
           coalesce(array_agg(d.id) FILTER (WHERE d.kind = 'invoice' AND minor_units(d.total) = 0), '{}')
      INTO booked, zero_acc, zero_inv
      FROM d;
END
$$;
COMMENT ON FUNCTION subbilling_internal.book_issued_documents(bigint[], bigint[]) IS 'book_invoices step 1: book every issued invoice and credit note not yet booked; returns the number of entries and the zero-total invoices';
REVOKE EXECUTE ON FUNCTION subbilling_internal.book_issued_documents(bigint[], bigint[]) FROM PUBLIC;

-- 2. void invoices: reverse their booking once; what was paid on them
--    becomes customer credit.  A booked credit note is final (55000).
CREATE FUNCTION subbilling_internal.book_void_invoices(account_ids bigint[], invoice_ids bigint[])
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    bad     text;
    n       integer;
BEGIN
    SELECT c.number INTO bad
      FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)
      JOIN subbilling.invoices c ON c.account_id = k.account_id AND c.id = k.invoice_id
     WHERE c.kind = 'credit_note' AND c.status = 'void'
       AND EXISTS (SELECT 1 FROM subbilling.journal_entries e
                    WHERE e.account_id = c.account_id AND e.invoice_id = c.id AND e.kind = 'credit_note')
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'credit note % cannot be voided', bad
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'A credit note is booked and applied when it is issued.',
                  HINT = 'Issue a new invoice for what the credit note should not have credited.';
    END IF;
    WITH v AS MATERIALIZED (
        SELECT i.account_id, i.id, i.currency, i.total, i.number, e.id AS booking,
               invoice_open_amount(i.account_id, i.id) AS open_amount,
               coalesce((i.voided_at AT TIME ZONE a.time_zone)::date, i.issue_date) AS booked_on,
               nextval('subbilling.journal_entries_id_seq'::regclass) AS eid
          FROM (SELECT DISTINCT k.account_id, k.invoice_id
                  FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)) k
          JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
          JOIN subbilling.accounts a ON a.id = i.account_id
          JOIN subbilling.journal_entries e ON e.account_id = i.account_id AND e.invoice_id = i.id AND e.kind = 'invoice'
         WHERE i.status = 'void'
           AND NOT EXISTS (SELECT 1 FROM subbilling.journal_entries r
                            WHERE r.account_id = i.account_id AND r.invoice_id = i.id AND r.kind = 'void')
    ),
    ln AS MATERIALIZED (
        SELECT v.account_id, v.eid, l.ledger_code AS code, -l.amount AS amount, l.subledger, NULL::bigint AS invoice_id,
               1 AS ord, l.id AS lid
          FROM v JOIN subbilling.journal_lines l ON l.account_id = v.account_id AND l.entry_id = v.booking
         WHERE l.subledger IS DISTINCT FROM 'receivables'
        UNION ALL
        SELECT v.account_id, v.eid, ledger_code('receivables', v.currency), -v.open_amount, 'receivables', v.id, 0, 0
          FROM v WHERE minor_units(v.open_amount) <> 0
        UNION ALL
        SELECT v.account_id, v.eid, ledger_code('customer_credit', v.currency), v.open_amount - v.total,
               'customer_credit', NULL, 2, 0
          FROM v WHERE v.open_amount <> v.total
    ),
    ent AS (
        INSERT INTO subbilling.journal_entries AS e (account_id, id, kind, booked_on, invoice_id, memo)
        SELECT v.account_id, v.eid, 'void', v.booked_on, v.id, 'void invoice ' || v.number FROM v
        RETURNING e.id
    ),
    lin AS (
        INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id)
        SELECT ln.account_id, ln.eid, ln.code, ln.amount, ln.subledger, ln.invoice_id
          FROM ln ORDER BY ln.account_id, ln.eid, ln.ord, ln.lid
    ),
    rq AS (
        UPDATE subbilling.payment_requests r
           SET status = 'canceled', next_attempt_on = NULL, updated_at = now()
          FROM v
         WHERE r.account_id = v.account_id AND r.invoice_id = v.id
           AND (r.status = 'requested' OR r.next_attempt_on IS NOT NULL)
        RETURNING r.id
    )
    SELECT count(*) INTO n FROM v;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling_internal.book_void_invoices(bigint[], bigint[]) IS 'book_invoices step 2: reverse the booking of every booked void invoice once (paid amounts become customer credit); refuses a booked credit note (55000); returns the number of reversals';
REVOKE EXECUTE ON FUNCTION subbilling_internal.book_void_invoices(bigint[], bigint[]) FROM PUBLIC;

-- 3. credit notes: onto the invoice they credit, the rest to customer credit;
--    returns the invoices the credit notes reached
CREATE FUNCTION subbilling_internal.apply_credit_notes(account_ids bigint[], invoice_ids bigint[], OUT covered_acc bigint[], OUT covered_inv bigint[])
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM 1
       FROM subbilling.invoices o
      WHERE (o.account_id, o.id) IN (SELECT c.account_id, c.credits_invoice_id
                                       FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)
                                       JOIN subbilling.invoices c ON c.account_id = k.account_id AND c.id = k.invoice_id
                                      WHERE c.kind = 'credit_note' AND c.credits_invoice_id IS NOT NULL)
      ORDER BY o.account_id, o.id
        FOR UPDATE OF o;
    WITH c AS MATERIALIZED (
        SELECT c.account_id, c.id, c.number, c.currency, c.credits_invoice_id AS original, c.issue_date,
               -invoice_open_amount(c.account_id, c.id) AS amount
          FROM (SELECT DISTINCT k.account_id, k.invoice_id
                  FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)) k
          JOIN subbilling.invoices c ON c.account_id = k.account_id AND c.id = k.invoice_id
         WHERE c.kind = 'credit_note' AND c.status <> 'void'
    ),
    c2 AS MATERIALIZED (
        SELECT c.*, o.number AS original_number,
               CASE WHEN o.kind = 'invoice' AND o.status IN ('open', 'uncollectible')
                    THEN greatest(invoice_open_amount(o.account_id, o.id), price_minor(0, c.currency))
                    ELSE price_minor(0, c.currency) END AS original_open,
               sum(c.amount) OVER (PARTITION BY c.account_id, c.original ORDER BY c.id) AS cum,
               nextval('subbilling.journal_entries_id_seq'::regclass) AS eid
          FROM c
          LEFT JOIN subbilling.invoices o ON o.account_id = c.account_id AND o.id = c.original
         WHERE minor_units(c.amount) > 0
    ),
    c3 AS MATERIALIZED (
        SELECT c2.*,
               least(c2.amount, greatest(c2.original_open - (c2.cum - c2.amount), price_minor(0, c2.currency))) AS onto
          FROM c2
    ),
    ln AS MATERIALIZED (
        SELECT c3.account_id, c3.eid, ledger_code('receivables', c3.currency) AS code, c3.amount,
               'receivables'::text AS subledger, c3.id AS invoice_id, 0 AS ord
          FROM c3
        UNION ALL
        SELECT c3.account_id, c3.eid, ledger_code('receivables', c3.currency), -c3.onto, 'receivables', c3.original, 1
          FROM c3 WHERE minor_units(c3.onto) <> 0
        UNION ALL
        SELECT c3.account_id, c3.eid, ledger_code('customer_credit', c3.currency), c3.onto - c3.amount,
               'customer_credit', NULL, 2
          FROM c3 WHERE c3.onto <> c3.amount
    ),
    ent AS (
        INSERT INTO subbilling.journal_entries AS e (account_id, id, kind, booked_on, invoice_id, memo)
        SELECT c3.account_id, c3.eid, 'allocation', c3.issue_date, c3.id,
               'credit note ' || c3.number || coalesce(' on invoice ' || c3.original_number, '')
          FROM c3
        RETURNING e.id
    ),
    lin AS (
        INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id)
        SELECT ln.account_id, ln.eid, ln.code, ln.amount, ln.subledger, ln.invoice_id
          FROM ln ORDER BY ln.account_id, ln.eid, ln.ord
    )
    SELECT coalesce(array_agg(c3.account_id) FILTER (WHERE minor_units(c3.onto) > 0), '{}'),
           coalesce(array_agg(c3.original) FILTER (WHERE minor_units(c3.onto) > 0), '{}')
      INTO covered_acc, covered_inv
      FROM c3
     WHERE (SELECT count(*) FROM ent) >= 0;
END
$$;
COMMENT ON FUNCTION subbilling_internal.apply_credit_notes(bigint[], bigint[]) IS 'book_invoices step 3: apply issued credit notes to the invoice they credit (up to its open amount), the rest to customer credit; returns the invoices reached';
REVOKE EXECUTE ON FUNCTION subbilling_internal.apply_credit_notes(bigint[], bigint[]) FROM PUBLIC;

-- 4. customer credit onto open invoices, oldest due first; an account
--    whose credit another transaction is using is left for next time;
--    returns the invoices the credit covered in full
CREATE FUNCTION subbilling_internal.apply_customer_credit(account_ids bigint[], invoice_ids bigint[], notify boolean, OUT covered_acc bigint[], OUT covered_inv bigint[])
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    c_acc   bigint[];               -- accounts whose credit is applied
    l_acc   bigint[];               -- open invoices locked for credit application
    l_inv   bigint[];
BEGIN
    SELECT array_agg(q.account_id) INTO c_acc
      FROM (SELECT l.account_id FROM subbilling.journal_lines l
             WHERE l.subledger = 'customer_credit'
               AND l.account_id IN (SELECT DISTINCT k FROM unnest(account_ids) k)
             GROUP BY l.account_id
            HAVING minor_units(sum(l.amount)) < 0
             ORDER BY l.account_id) q
     WHERE subbilling_internal.lock_account_credit(q.account_id, false);
    IF c_acc IS NOT NULL THEN
        -- lock the open invoices that the credit reaches (oldest due first);
        -- their open amounts are read again under the lock below
        WITH o AS MATERIALIZED (
            SELECT i.account_id, i.id, i.due_date, s.open_amount
              FROM subbilling.invoices i
              JOIN (SELECT l.account_id, l.invoice_id, sum(l.amount) AS open_amount
                      FROM subbilling.journal_lines l
                     WHERE l.account_id = ANY (c_acc) AND l.invoice_id IS NOT NULL
                     GROUP BY l.account_id, l.invoice_id
                    HAVING minor_units(sum(l.amount)) > 0) s ON s.account_id = i.account_id AND s.invoice_id = i.id
             WHERE i.account_id = ANY (c_acc) AND i.kind = 'invoice' AND i.status IN ('open', 'uncollectible')
        ),
        cr AS MATERIALIZED (
            SELECT x.account_id, customer_credit(x.account_id) AS credit FROM unnest(c_acc) AS x(account_id)
        ),
        w AS MATERIALIZED (
            SELECT o.account_id, o.id, cr.credit,
                   sum(o.open_amount) OVER (PARTITION BY o.account_id ORDER BY o.due_date, o.id) - o.open_amount AS before
              FROM o JOIN cr ON cr.account_id = o.account_id
        )
        SELECT array_agg(q.account_id), array_agg(q.id) INTO l_acc, l_inv
          FROM (SELECT i.account_id, i.id FROM subbilling.invoices i
                 WHERE (i.account_id, i.id) IN (SELECT w.account_id, w.id FROM w WHERE w.before < w.credit)
                 ORDER BY i.account_id, i.id
                   FOR UPDATE SKIP LOCKED) q;
    END IF;
    IF l_inv IS NOT NULL THEN
        WITH o AS MATERIALIZED (
            SELECT i.account_id, i.id, i.number, i.subscription_id, i.currency, i.due_date, s.open_amount
              FROM unnest(l_acc, l_inv) AS k(account_id, invoice_id)
              JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
              JOIN (SELECT l.account_id, l.invoice_id, sum(l.amount) AS open_amount
                      FROM subbilling.journal_lines l
                     WHERE l.account_id = ANY (c_acc) AND l.invoice_id = ANY (l_inv)
                     GROUP BY l.account_id, l.invoice_id) s ON s.account_id = i.account_id AND s.invoice_id = i.id
        ),
        cr AS MATERIALIZED (
            SELECT x.account_id, customer_credit(x.account_id) AS credit,
                   coalesce((SELECT max(i.issue_date)
                               FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)
                               JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
                              WHERE k.account_id = x.account_id), subbilling_internal.account_today(x.account_id)) AS booked_on
              FROM unnest(c_acc) AS x(account_id)
        ),
        w AS MATERIALIZED (
            SELECT o.*, cr.credit, cr.booked_on,
                   sum(o.open_amount) OVER (PARTITION BY o.account_id ORDER BY o.due_date, o.id) AS cum
              FROM o JOIN cr ON cr.account_id = o.account_id
             WHERE minor_units(o.open_amount) > 0
        ),
        al AS MATERIALIZED (
            SELECT q.*, nextval('subbilling.journal_entries_id_seq'::regclass) AS eid
              FROM (SELECT w.*, least(w.open_amount, w.credit - (w.cum - w.open_amount)) AS amount
                      FROM w
                     WHERE w.credit > w.cum - w.open_amount
                     ORDER BY w.account_id, w.due_date, w.id) q
        ),
        ent AS (
            INSERT INTO subbilling.journal_entries AS e (account_id, id, kind, booked_on, invoice_id, memo)
            SELECT al.account_id, al.eid, 'credit_applied', al.booked_on, al.id, 'customer credit on invoice ' || al.number
              FROM al
            RETURNING e.id
        ),
        lin AS (
            INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id)
            SELECT al.account_id, al.eid, x.code, x.amount, x.subledger, x.invoice_id
              FROM al
             CROSS JOIN LATERAL (VALUES (0, ledger_code('customer_credit', al.currency), al.amount, 'customer_credit', NULL::bigint),
                                        (1, ledger_code('receivables', al.currency), -al.amount, 'receivables', al.id))
                   AS x(ord, code, amount, subledger, invoice_id)
             ORDER BY al.account_id, al.eid, x.ord
        ),
        ev AS (
            INSERT INTO subbilling.events AS e (account_id, type, subscription_id, invoice_id, payload)
            SELECT al.account_id, 'credit.applied', al.subscription_id, al.id,
                   jsonb_build_object('invoice_id', al.id, 'number', al.number, 'currency', al.currency,
                                      'amount', al.amount::text, 'open_amount', (al.open_amount - al.amount)::text,
                                      'credit_left', (al.credit - al.cum + al.open_amount - al.amount)::text)
              FROM al
             ORDER BY al.account_id, al.eid
            RETURNING e.*
        ),
        nt AS (
            SELECT count(subbilling_internal.outbox_notify(ev.id, ev.type, ev.account_id, ev.subscription_id, ev.invoice_id)) AS n FROM ev WHERE notify
        )
        SELECT coalesce(array_agg(al.account_id), '{}'), coalesce(array_agg(al.id), '{}') INTO covered_acc, covered_inv
          FROM al
         WHERE (SELECT count(*) FROM ent) + (SELECT nt.n FROM nt) >= 0 AND al.amount = al.open_amount;
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling_internal.apply_customer_credit(bigint[], bigint[], boolean) IS 'book_invoices step 4: apply the customer credit of the accounts to their open invoices, oldest due first (event credit.applied); returns the invoices covered in full';
REVOKE EXECUTE ON FUNCTION subbilling_internal.apply_customer_credit(bigint[], bigint[], boolean) FROM PUBLIC;

-- 5. invoices whose open amount reached zero are paid
CREATE FUNCTION subbilling_internal.settle_paid_invoices(paid_acc bigint[], paid_inv bigint[], notify boolean)
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    p_acc   bigint[];
    p_inv   bigint[];
BEGIN
    WITH k AS MATERIALIZED (
        SELECT q.account_id, q.invoice_id
          FROM (SELECT DISTINCT t.account_id, t.invoice_id FROM unnest(paid_acc, paid_inv) AS t(account_id, invoice_id)) q
         WHERE minor_units(invoice_open_amount(q.account_id, q.invoice_id)) = 0
    ),
    p AS (
        UPDATE subbilling.invoices x
           SET status = 'paid', paid_at = now()
          FROM k
         WHERE x.account_id = k.account_id AND x.id = k.invoice_id
           AND x.kind = 'invoice' AND x.status IN ('open', 'uncollectible')
        RETURNING x.*
    ),
    rq AS (
        UPDATE subbilling.payment_requests r
           SET status = 'canceled', next_attempt_on = NULL, updated_at = now()
          FROM p
         WHERE r.account_id = p.account_id AND r.invoice_id = p.id
           AND (r.status = 'requested' OR r.next_attempt_on IS NOT NULL)
        RETURNING r.id
    ),
    ev AS (
        INSERT INTO subbilling.events AS e (account_id, type, subscription_id, invoice_id, payload)
        SELECT p.account_id, 'invoice.paid', p.subscription_id, p.id,
               jsonb_build_object('invoice_id', p.id, 'number', p.number, 'currency', p.currency,
                                  'total', p.total::text, 'paid_at', p.paid_at,
                                  'via', CASE WHEN minor_units(p.total) = 0 THEN 'zero total' ELSE 'credit' END,
                                  'payment_id', NULL)
          FROM p
         ORDER BY p.account_id, p.id
        RETURNING e.*
    ),
    nt AS (
        SELECT count(subbilling_internal.outbox_notify(ev.id, ev.type, ev.account_id, ev.subscription_id, ev.invoice_id)) AS n FROM ev WHERE notify
    )
    SELECT array_agg(p.account_id ORDER BY p.account_id, p.id), array_agg(p.id ORDER BY p.account_id, p.id)
      INTO p_acc, p_inv
      FROM p
     WHERE (SELECT count(*) FROM rq) + (SELECT nt.n FROM nt) >= 0;
    IF p_inv IS NOT NULL THEN
        PERFORM subbilling_internal.after_invoice_paid(k.account_id, k.invoice_id)
           FROM unnest(p_acc, p_inv) WITH ORDINALITY AS k(account_id, invoice_id, ord)
          ORDER BY k.ord;
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling_internal.settle_paid_invoices(bigint[], bigint[], boolean) IS 'book_invoices step 5: the given open invoices whose open amount is zero become paid (requests canceled, event invoice.paid, after_invoice_paid)';
REVOKE EXECUTE ON FUNCTION subbilling_internal.settle_paid_invoices(bigint[], bigint[], boolean) FROM PUBLIC;

-- 6. payment requests for new open invoices of accounts that pay automatically
CREATE FUNCTION subbilling_internal.request_automatic_payments(account_ids bigint[], invoice_ids bigint[], notify boolean)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    n       integer;
BEGIN
    WITH c AS MATERIALIZED (
        SELECT i.account_id, i.id, pm.id AS pm_id, i.issue_date
          FROM (SELECT DISTINCT k.account_id, k.invoice_id
                  FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)) k
          JOIN subbilling.payment_methods pm ON pm.account_id = k.account_id AND pm.is_default
                                            AND pm.active AND pm.automatic
          JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
         WHERE i.kind = 'invoice' AND i.status = 'open'
           AND NOT EXISTS (SELECT 1 FROM subbilling.payment_requests x
                            WHERE x.account_id = i.account_id AND x.invoice_id = i.id)
    ),
    q AS MATERIALIZED (
        SELECT c.*, invoice_open_amount(c.account_id, c.id) AS open_amount FROM c
    ),
    r AS (
        INSERT INTO subbilling.payment_requests AS r (account_id, invoice_id, payment_method_id, amount, requested_on)
        SELECT q.account_id, q.id, q.pm_id, q.open_amount, q.issue_date
          FROM q
         WHERE minor_units(q.open_amount) > 0
         ORDER BY q.account_id, q.id
        RETURNING r.*
    ),
    ev AS (
        INSERT INTO subbilling.events AS e (account_id, type, subscription_id, invoice_id, payload)
        SELECT r.account_id, 'payment.requested', i.subscription_id, r.invoice_id,
               jsonb_build_object('payment_request_id', r.id, 'invoice_id', r.invoice_id, 'number', i.number,
                                  'reference', i.reference, 'due_date', i.due_date, 'currency', i.currency,
                                  'amount', r.amount::text, 'amount_minor', minor_units(r.amount),
                                  'payment_method_id', r.payment_method_id, 'method', pm.kind,
                                  'attempt', r.attempt, 'requested_on', r.requested_on)
          FROM r
          JOIN subbilling.invoices i ON i.account_id = r.account_id AND i.id = r.invoice_id
          JOIN subbilling.payment_methods pm ON pm.account_id = r.account_id AND pm.id = r.payment_method_id
         ORDER BY r.account_id, r.id
        RETURNING e.*
    )
    SELECT count(subbilling_internal.outbox_notify(ev.id, ev.type, ev.account_id, ev.subscription_id, ev.invoice_id)) INTO n FROM ev WHERE notify;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling_internal.request_automatic_payments(bigint[], bigint[], boolean) IS 'book_invoices step 6: a payment request (event payment.requested) for every new open invoice whose account''s default payment method is automatic; returns how many';
REVOKE EXECUTE ON FUNCTION subbilling_internal.request_automatic_payments(bigint[], bigint[], boolean) FROM PUBLIC;

CREATE FUNCTION subbilling_internal.book_invoices(account_ids bigint[], invoice_ids bigint[])
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    notify  boolean := subbilling_internal.notify_enabled();
    booked  integer := 0;
    t_acc   bigint[] := '{}';       -- invoices whose open amount may have reached zero
    t_inv   bigint[] := '{}';
    has_void boolean;
    has_cn  boolean;
BEGIN
    IF coalesce(cardinality(account_ids), 0) <> coalesce(cardinality(invoice_ids), 0) THEN
        RAISE EXCEPTION 'book_invoices needs one account id per invoice id'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s account ids and %s invoice ids.',
                                  coalesce(cardinality(account_ids), 0), coalesce(cardinality(invoice_ids), 0));
    END IF;
    IF coalesce(cardinality(invoice_ids), 0) = 0 THEN
        RETURN 0;
    END IF;
    IF subbilling_internal.on_citus() THEN
        -- Citus: account by account, each on the account's shard (sql/parts/976_citus_booking.sql)
        SELECT coalesce(sum(subbilling_internal.book_account_citus(
                   k.account_id, ARRAY(SELECT invoice_ids[j] FROM generate_subscripts(account_ids, 1) j
                                        WHERE account_ids[j] = k.account_id))), 0)
          INTO booked
          FROM (SELECT DISTINCT u AS account_id FROM unnest(account_ids) u ORDER BY 1) k;
        RETURN booked;
    END IF;
    PERFORM subbilling_internal.outbox_reserve();
    SELECT coalesce(bool_or(i.status = 'void'), false), coalesce(bool_or(i.kind = 'credit_note'), false)
      INTO has_void, has_cn
      FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)
      JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id;

    -- 1. issued documents not yet booked
    SELECT b.booked, b.zero_acc, b.zero_inv INTO booked, t_acc, t_inv
      FROM subbilling_internal.book_issued_documents(account_ids, invoice_ids) b;
    -- 2. void invoices: reverse their booking once
    IF has_void THEN
        booked := booked + subbilling_internal.book_void_invoices(account_ids, invoice_ids);
    END IF;
    -- 3. credit notes: onto the invoice they credit, the rest to customer credit
    IF has_cn THEN
        SELECT t_acc || c.covered_acc, t_inv || c.covered_inv INTO t_acc, t_inv
          FROM subbilling_internal.apply_credit_notes(account_ids, invoice_ids) c;
    END IF;
    -- 4. customer credit onto open invoices, oldest due first
    SELECT t_acc || coalesce(c.covered_acc, '{}'), t_inv || coalesce(c.covered_inv, '{}') INTO t_acc, t_inv
      FROM subbilling_internal.apply_customer_credit(account_ids, invoice_ids, notify) c;
    -- 5. invoices whose open amount reached zero are paid
    IF cardinality(t_inv) > 0 THEN
        PERFORM subbilling_internal.settle_paid_invoices(t_acc, t_inv, notify);
    END IF;
    -- 6. payment requests for new open invoices of accounts that pay automatically
    PERFORM subbilling_internal.request_automatic_payments(account_ids, invoice_ids, notify);

    RETURN booked;
END
$$;
COMMENT ON FUNCTION subbilling_internal.book_invoices(bigint[], bigint[]) IS 'book issued invoices and credit notes (receivables, revenue per account, VAT per rate) and reverse void ones, once each; apply credit notes and customer credit to open invoices (paid when covered); create payment requests for accounts paying automatically; set-based; returns the number of entries booked or reversed';
