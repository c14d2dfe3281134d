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
-- whole group and whether its booking is plain (re-created with its new arguments by
-- 999_refresh.sql)
DROP FUNCTION subbilling_internal.bill_account_citus(bigint, bigint[], date[], timestamptz, bigint[], bigint[]);
