-- Payments, the receivables ledger and dunning for the demo business: payments
-- matched by reference (full, partial, over, unmatched), the double-entry
-- ledger they book, and dunning of what stays unpaid.
SET search_path = subbilling, public;

\echo
\echo '== payments: matched by the invoice''s payment reference'
SELECT i.reference AS cafe_ref, (SELECT open_amount FROM open_items o WHERE o.account_id = i.account_id AND o.invoice_id = i.id) AS cafe_open
  FROM invoices i JOIN accounts a ON a.id = i.account_id
 WHERE a.external_id = 'cust-1003' AND i.kind = 'invoice' \gset
SELECT i.reference AS anna_ref FROM invoices i JOIN accounts a ON a.id = i.account_id WHERE a.external_id = 'cust-1001' \gset
SELECT i.reference AS ola_ref FROM invoices i JOIN accounts a ON a.id = i.account_id WHERE a.external_id = 'cust-1002' \gset

-- Café Lyktan pays what is open after the goodwill credit note; Anna pays part;
-- Ola pays 100 NOK too much; somebody pays with a reference that matches nothing.
SELECT register_payment(:'cafe_open', :'cafe_ref', current_date, 'bankgiro', 'bg-0001') AS cafe_payment \gset
SELECT register_payment('500.00 SEK', :'anna_ref', current_date, 'bankgiro', 'bg-0002') AS anna_payment \gset
SELECT register_payment('836.36 NOK', :'ola_ref', current_date, 'ocr_giro', 'nets-0001') AS ola_payment \gset
SELECT register_payment('250.00 SEK', '99999999999', current_date, 'bankgiro', 'bg-0003') AS stray_payment \gset
SELECT register_payment('500.00 SEK', :'anna_ref', current_date, 'bankgiro', 'bg-0002') = :anna_payment AS same_bank_message_again_is_idempotent;

SELECT a.name AS account, o.number, o.status, o.total, o.open_amount, o.due_date
  FROM open_items o JOIN accounts a ON a.id = o.account_id ORDER BY o.number;

\echo
\echo '-- the exception queue: a payment that matched no invoice'
SELECT amount, reference, received_on, method, status FROM unmatched_payments;

\echo
\echo '-- balances from the journal: receivables minus customer credit (Ola''s 100 NOK wait for his next invoice)'
SELECT a.name AS account, b.receivables, b.customer_credit, b.balance, account_balance(a.id) AS account_balance
  FROM account_balances b JOIN accounts a ON a.id = b.account_id ORDER BY a.external_id;

\echo
\echo '-- Anna''s customer ledger: every document booked, with a running balance'
SELECT booked_on, kind, document, debit, credit, balance
  FROM customer_ledger WHERE account_id = (SELECT id FROM accounts WHERE external_id = 'cust-1001')
 ORDER BY booked_on, entry_id;

\echo
\echo '-- every journal entry balances (debits = credits), per currency'
SELECT count(DISTINCT entry_id) AS entries,
       count(*) FILTER (WHERE NOT balanced) AS unbalanced
  FROM (SELECT l.entry_id, sum(minor_units(l.amount)) = 0 AS balanced
          FROM journal_lines l GROUP BY l.account_id, l.entry_id, currency(l.amount)) e;

\echo
\echo '== dunning: what stays unpaid is reminded, then stopped (default policy: +10 reminder, +20 reminder, +30 payment stop, +45 collection)'
-- Late-payment interest needs the reference rate of the period.  Where the shipped table has
-- no rate yet for the coming months, the demo assumes one (a DBA sets the published ones with
-- set_reference_rate).
SELECT v.country, set_reference_rate(v.country, v.valid_from, v.rate) AS assumed_for
  FROM (VALUES ('SE', date '2026-07-01', 2.00), ('SE', date '2027-01-01', 2.00),
               ('NO', date '2026-01-01', 12.00), ('NO', date '2026-07-01', 12.00),
               ('NO', date '2027-01-01', 12.00)) v(country, valid_from, rate)
 WHERE NOT EXISTS (SELECT 1 FROM reference_rates r
                    WHERE r.country = v.country AND r.valid @> v.valid_from);
SELECT d AS run_dunning_as_of, run_dunning(d) AS steps
  FROM (SELECT current_date + n AS d FROM unnest(ARRAY[30, 40, 50, 60, 75]) AS n) s;

SELECT a.name AS account, i.number, x.action, x.executed_on, x.open_amount, x.fee
  FROM dunning_actions x JOIN invoices i ON i.account_id = x.account_id AND i.id = x.invoice_id
  JOIN accounts a ON a.id = x.account_id
 ORDER BY a.name, x.step_no;

SELECT a.name AS account, s.status AS subscription_status
  FROM subscriptions s JOIN accounts a ON a.id = s.account_id
 WHERE a.external_id IN ('cust-1001', 'cust-2001') ORDER BY a.name;

\echo
\echo '-- the dunning and payment events a LISTEN subbilling client received'
SELECT e.id, e.type, a.external_id AS account, e.payload->>'number' AS number
  FROM events e JOIN accounts a ON a.id = e.account_id
 WHERE e.type LIKE 'dunning.%' OR e.type LIKE 'payment.%' OR e.type IN ('invoice.paid', 'invoice.overdue')
 ORDER BY e.id;
