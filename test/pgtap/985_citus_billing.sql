-- Billing account by account (the path bill_batch takes on Citus), run here on a single
-- server: it writes exactly what the set-based batch writes (invoices, numbers, lines,
-- journal, events, each subscription's bookkeeping), ids aside.  The Citus tier
-- (test/citus.sh) runs the same path on a real cluster.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;

SELECT plan(14);

SELECT is(subbilling_internal.on_citus(), false, 'no citus extension: not on Citus');
SELECT is(current_setting('subbilling_internal.on_citus'), 'false', 'decided once: kept in the session setting');

INSERT INTO products (code, name, tax_rate) VALUES ('cb', 'CB service', 25), ('cb_food', 'CB food', 12);
INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price)
SELECT 'cb-monthly', id, 'CB monthly', '1 month', 'flat', '100.00 SEK' FROM products WHERE code = 'cb';
INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price)
SELECT 'cb-seat', id, 'CB seats', '1 month', 'per_unit', '30.00 SEK' FROM products WHERE code = 'cb_food';
INSERT INTO campaigns (code, name, percent_off, duration, duration_periods)
VALUES ('cb10', 'Ten off', 10, 'repeating', 2), ('cbfree', 'Free month', 100, 'repeating', 1);
INSERT INTO accounts (name, country, currency) SELECT 'CB ' || g, 'SE', 'SEK' FROM generate_series(1, 5) g;
SELECT subscribe((SELECT id FROM accounts WHERE name = 'CB 1'), 'cb-monthly', 1, current_date - 40);
SELECT subscribe((SELECT id FROM accounts WHERE name = 'CB 2'), 'cb-seat', 3, current_date - 75);
SELECT subscribe((SELECT id FROM accounts WHERE name = 'CB 2'), 'cb-monthly', 1, current_date - 10, 'cb10');
SELECT subscribe((SELECT id FROM accounts WHERE name = 'CB 3'), 'cb-monthly', 1, current_date, 'cbfree');
SELECT subscribe((SELECT id FROM accounts WHERE name = 'CB 4'), 'cb-seat', 2, current_date + 5);
SELECT subscribe((SELECT id FROM accounts WHERE name = 'CB 5'), 'cb-monthly', 2, current_date - 100);

-- what a billing run leaves behind, ids aside
CREATE FUNCTION pg_temp.digest() RETURNS text LANGUAGE sql AS $$
    SELECT concat_ws(E'\n',
        (SELECT string_agg(concat_ws(' ', i.number, a.name, s.start_date, i.kind, i.status, i.net, i.tax, i.total,
                                     i.issue_date, i.due_date, i.paid_at IS NOT NULL,
                                     (SELECT string_agg(concat_ws(' ', l.kind, l.charge_type, l.key_start, l.description,
                                                                  l.quantity, l.unit_price, l.net, l.tax_rate, l.tax,
                                                                  l.tax_treatment), '; ' ORDER BY l.id)
                                        FROM invoice_lines l WHERE l.account_id = i.account_id AND l.invoice_id = i.id),
                                     (SELECT string_agg(concat_ws(' ', e.kind, e.booked_on, e.memo, jl.ledger_code, jl.amount, jl.subledger,
                                                                  jl.invoice_id IS NOT NULL), '; ' ORDER BY e.id, jl.id)
                                        FROM journal_entries e JOIN journal_lines jl ON jl.account_id = e.account_id AND jl.entry_id = e.id
                                       WHERE e.account_id = i.account_id AND e.invoice_id = i.id)),
                           E'\n' ORDER BY i.number)
           FROM invoices i JOIN accounts a ON a.id = i.account_id
           JOIN subscriptions s ON s.account_id = i.account_id AND s.id = i.subscription_id),
        (SELECT string_agg(concat_ws(' ', a.name, s.start_date, s.next_bill_on, s.bill_from, s.billed_as_of), E'\n'
                           ORDER BY a.name, s.start_date)
           FROM subscriptions s JOIN accounts a ON a.id = s.account_id),
        (SELECT string_agg(t.type || ' ' || t.n, ', ' ORDER BY t.type)
           FROM (SELECT e.type, count(*) AS n FROM events e WHERE e.type LIKE 'invoice.%' GROUP BY e.type) t),
        (SELECT string_agg(ct.next_number::text, ',') FROM invoice_counters ct),
        (SELECT count(*) FROM billing_errors)::text)
$$;

SAVEPOINT before_billing;
SELECT is(b.invoices || '/' || b.errors, '5/0', 'set-based: five invoices (one of total zero), no errors')
  FROM subbilling_internal.bill_batch(100, now()) b;
SELECT pg_temp.digest() AS single \gset
SELECT ok(:'single' LIKE '%invoice.paid 1%', 'set-based: the zero-total invoice is paid at once');
ROLLBACK TO SAVEPOINT before_billing;

-- the same batch account by account, as on Citus
SELECT set_config('subbilling_internal.on_citus', 'true', true);
SELECT is(subbilling_internal.on_citus(), true, 'the session setting decides');
SELECT is(b.invoices || '/' || b.errors || '/' || b.more, '5/0/false', 'account by account: the same five invoices')
  FROM subbilling_internal.bill_batch(100, now()) b;
SELECT is(pg_temp.digest(), :'single',
          'account by account: the same invoices, numbers, lines, journal, events and bookkeeping');
SELECT is(b.invoices || '/' || b.errors || '/' || b.more, '0/0/false', 'a second batch bills nothing')
  FROM subbilling_internal.bill_batch(100, now()) b;
SELECT is((SELECT count(*) || '/' || count(DISTINCT invoice_id) FROM journal_entries WHERE kind = 'invoice'), '4/4',
          'each invoice booked once (the zero-total one needs no entry)');

-- the next month with an automatic payment method (CB 5) and customer credit (CB 1): booked
-- through the same path as credit_invoice (book_account_citus), as the set-based batch books it
SELECT lives_ok($$ INSERT INTO payment_methods (account_id, kind, is_default, automatic)
                   SELECT id, 'autogiro', true, true FROM accounts WHERE name = 'CB 5' $$, 'an automatic payment method');
SELECT lives_ok($$ SELECT register_payment(i.total, i.reference, current_date, 'bankgiro', 'cb-pay-1'),
                          credit_invoice(i.id, '50.00 SEK', 'cb check')
                     FROM invoices i JOIN accounts a ON a.id = i.account_id WHERE a.name = 'CB 1' $$,
                'customer credit: an invoice paid, then credited');
CREATE FUNCTION pg_temp.digest2() RETURNS text LANGUAGE sql AS $$
    SELECT concat_ws(E'\n', pg_temp.digest(),
        (SELECT string_agg(concat_ws(' ', a.name, r.amount, r.status, r.requested_on, i.number), E'\n' ORDER BY i.number)
           FROM payment_requests r JOIN accounts a ON a.id = r.account_id
           JOIN invoices i ON i.account_id = r.account_id AND i.id = r.invoice_id),
        (SELECT string_agg(t.type || ' ' || t.n, ', ' ORDER BY t.type)
           FROM (SELECT e.type, count(*) AS n FROM events e GROUP BY e.type) t),
        (SELECT string_agg(a.name || ' ' || customer_credit(a.id)::text, ', ' ORDER BY a.name) FROM accounts a))
$$;
SAVEPOINT before_next;
SELECT set_config('subbilling_internal.on_citus', 'false', true);
SELECT subbilling.run_billing(now() + interval '1 month');
SELECT pg_temp.digest2() AS single_next \gset
ROLLBACK TO SAVEPOINT before_next;
SELECT set_config('subbilling_internal.on_citus', 'true', true);
SELECT subbilling.run_billing(now() + interval '1 month');
SELECT is((SELECT count(*) FROM billing_errors), 0::bigint,
          'customer credit and an automatic payment method: billed, no billing errors');
SELECT ok(:'single_next' ~ 'credit.applied 1' AND :'single_next' ~ 'payment.requested 1' AND :'single_next' ~ 'CB 5 [0-9.]+ SEK requested',
          'set-based: the credit applied and a payment requested');
SELECT is(pg_temp.digest2(), :'single_next',
          'account by account: the same invoices, journal, credit applied, payment requests and events as set-based');

SELECT * FROM finish();
ROLLBACK;
