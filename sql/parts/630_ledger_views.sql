
-- ============================================================================
-- Ledger views: each customer's ledger with a running
-- balance, open items, and balances per account.  All from the journal's
-- receivables and customer-credit lines (the customer's side of the books).
-- ============================================================================

CREATE VIEW subbilling.customer_ledger AS
SELECT q.account_id, q.entry_id, q.booked_on, q.kind, q.document, q.invoice_id, q.payment_id,
       q.debit, q.credit,
       sum(q.debit - q.credit) OVER (PARTITION BY q.account_id ORDER BY q.booked_on, q.entry_id) AS balance,
       q.memo
  FROM (SELECT e.account_id, e.id AS entry_id, e.booked_on, e.kind, i.number AS document, e.invoice_id,
               e.payment_id, e.memo,
               sum(CASE WHEN subbilling.minor_units(l.amount) > 0 THEN l.amount
                        ELSE subbilling.price_minor(0, subbilling.currency(l.amount)) END) AS debit,
               subbilling.price_minor(0, min(subbilling.currency(l.amount)))
               - sum(CASE WHEN subbilling.minor_units(l.amount) < 0 THEN l.amount
                          ELSE subbilling.price_minor(0, subbilling.currency(l.amount)) END) AS credit
          FROM subbilling.journal_entries e
          JOIN subbilling.journal_lines l ON l.account_id = e.account_id AND l.entry_id = e.id
                                         AND l.subledger IS NOT NULL
          LEFT JOIN subbilling.invoices i ON i.account_id = e.account_id AND i.id = e.invoice_id
         GROUP BY e.account_id, e.id, i.number) q;
COMMENT ON VIEW subbilling.customer_ledger IS 'each customer''s ledger (kundreskontra): per journal entry its date, kind, document (invoice number), debit (more owed) and credit (less owed) on receivables and customer credit, and the running balance (what the customer owes; negative = in credit)';

CREATE VIEW subbilling.open_items AS
SELECT i.account_id, i.id AS invoice_id, i.kind, i.number, i.status, i.reference, i.issue_date, i.due_date,
       i.currency, i.total, o.open_amount,
       greatest((pg_catalog.now() AT TIME ZONE a.time_zone)::date - i.due_date, 0) AS days_overdue
  FROM (SELECT l.account_id, l.invoice_id, sum(l.amount) AS open_amount
          FROM subbilling.journal_lines l
         WHERE l.invoice_id IS NOT NULL
         GROUP BY l.account_id, l.invoice_id
        HAVING subbilling.minor_units(sum(l.amount)) <> 0) o
  JOIN subbilling.invoices i ON i.account_id = o.account_id AND i.id = o.invoice_id
  JOIN subbilling.accounts a ON a.id = i.account_id;
COMMENT ON VIEW subbilling.open_items IS 'open items: issued invoices with a non-zero open amount (from the journal), their due date and days overdue (account-local today)';

CREATE VIEW subbilling.account_balances AS
SELECT a.id AS account_id, a.currency,
       coalesce(sum(l.amount) FILTER (WHERE l.subledger = 'receivables'), subbilling.price_minor(0, a.currency)) AS receivables,
       subbilling.price_minor(0, a.currency)
       - coalesce(sum(l.amount) FILTER (WHERE l.subledger = 'customer_credit'), subbilling.price_minor(0, a.currency)) AS customer_credit,
       coalesce(sum(l.amount), subbilling.price_minor(0, a.currency)) AS balance
  FROM subbilling.accounts a
  LEFT JOIN subbilling.journal_lines l ON l.account_id = a.id AND l.subledger IS NOT NULL
 GROUP BY a.id, a.currency;
COMMENT ON VIEW subbilling.account_balances IS 'per account: receivables (open invoice amounts), customer credit and balance = receivables - credit, from the journal';
