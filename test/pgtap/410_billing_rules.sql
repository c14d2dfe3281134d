-- Billing rules beyond the billing scenarios: idempotency, preview =
-- billing, backdated changes, catching up, voiding, events, due dates,
-- time zones, pricing models, add-ons, discounts, batches.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 400_fixture.psql

SELECT plan(46);

-- ------------------------------------------------------------ batches
SELECT pg_temp.account('batch');
SELECT subscribe(pg_temp.acct('batch'), 'b_m300', 1, '2024-06-01') FROM generate_series(1, 7);
SELECT results_eq($$ SELECT * FROM run_billing_batch(3, '2024-06-01') $$, $$ VALUES (3, 0, true) $$,
    'run_billing_batch: a full batch says more');
SELECT results_eq($$ SELECT * FROM run_billing_batch(3, '2024-06-01') $$, $$ VALUES (3, 0, true) $$,
    'run_billing_batch: the next batch takes the next three');
SELECT results_eq($$ SELECT * FROM run_billing_batch(3, '2024-06-01') $$, $$ VALUES (1, 0, false) $$,
    'run_billing_batch: the last one, no more');
SELECT results_eq($$ SELECT * FROM run_billing_batch(3, '2024-06-01') $$, $$ VALUES (0, 0, false) $$,
    'run_billing_batch: nothing left');
SELECT is((SELECT count(DISTINCT subscription_id) FROM invoices WHERE account_id = pg_temp.acct('batch')), 7::bigint,
          'batches: every subscription billed once');
SELECT pg_temp.account('future');
SELECT subscribe(pg_temp.acct('future'), 'b_m300', 1, '2024-07-01') FROM generate_series(1, 5);
SELECT results_eq($$ SELECT * FROM run_billing_batch(2, '2024-06-01') $$, $$ VALUES (0, 0, false) $$,
    'run_billing_batch: full batches with nothing to invoice are passed over in the same call (no "more" without progress)');
SELECT is((SELECT count(*) FROM subscriptions WHERE account_id = pg_temp.acct('future') AND next_bill_on = '2024-07-01'),
          5::bigint, 'batches: subscriptions starting later are due on their start date');
-- a second run with the same as_of in the same session: rows behind the
-- claim cursor (changed since) and ahead of it (new) are both billed
SELECT change_quantity((SELECT min(id) FROM subscriptions WHERE account_id = pg_temp.acct('batch')), 2, '2024-06-15');
SELECT pg_temp.account('batch2');
SELECT subscribe(pg_temp.acct('batch2'), 'b_m300', 1, '2024-06-01');
SELECT is(run_billing('2024-06-01'), 1, 'same as_of again: the new subscription ahead of the cursor is billed');
SELECT is((SELECT next_bill_on FROM subscriptions WHERE id = (SELECT min(id) FROM subscriptions WHERE account_id = pg_temp.acct('batch'))),
          '2024-06-15'::date, 'and the changed one behind it is claimed too (its change is due on 2024-06-15)');
SELECT throws_ok($$ SELECT * FROM run_billing_batch(0, now()) $$, '22023', 'batch_size must be a positive number of subscriptions',
                 'run_billing_batch: batch_size must be positive');

-- ------------------------------------------------------------ idempotency and catching up
SELECT pg_temp.account('late');
SELECT subscribe(pg_temp.acct('late'), 'b_m300', 1, '2024-01-01');
SELECT is((SELECT next_bill_on FROM subscriptions WHERE id = pg_temp.sub('late')), '-infinity'::date,
          'a new subscription is due at once');
SELECT is(run_billing('2024-03-15'), 1, 'catching up: one invoice');
SELECT results_eq($$ SELECT * FROM pg_temp.lines(pg_temp.sub('late')) $$,
    $$ VALUES (1::bigint, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-01-01,2024-02-01)'),
              (1, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-02-01,2024-03-01)'),
              (1, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-03-01,2024-04-01)') $$,
    'catching up: every period due up to as_of, on one invoice');
SELECT is(run_billing('2024-03-15'), 0, 'idempotent: billing again bills nothing');
SELECT is(run_billing('2024-03-31'), 0, 'nothing is due before the next period');
SELECT is((SELECT (next_bill_on, bill_from, billed_as_of)::text FROM subscriptions WHERE id = pg_temp.sub('late')),
          '(2024-04-01,2024-04-01,2024-03-15)', 'bookkeeping: next due 2024-04-01, settled before it');
SELECT is((SELECT count(*) FROM preview_invoice(pg_temp.sub('late'), '2024-03-31')), 0::bigint,
          'preview: nothing before the next period');

-- ------------------------------------------------------------ preview = billing
SELECT change_quantity(pg_temp.sub('late'), 3, '2024-03-16');
SELECT is((SELECT next_bill_on FROM subscriptions WHERE id = pg_temp.sub('late')), '-infinity'::date,
          'a change makes the subscription due at once');
CREATE TEMP TABLE pv AS SELECT * FROM preview_invoice(pg_temp.sub('late'), '2024-04-01');
SELECT is((SELECT count(*) FROM invoices WHERE subscription_id = pg_temp.sub('late')), 1::bigint,
          'preview writes nothing');
SELECT is(run_billing('2024-04-01'), 1, 'billed after the preview');
SELECT results_eq(
    $$ SELECT kind, description, period, quantity, unit_price, net, tax_rate, tax FROM pv ORDER BY kind, net $$,
    $$ SELECT l.kind, l.description, l.period, l.quantity, l.unit_price, l.net, l.tax_rate, l.tax
         FROM invoice_lines l JOIN invoices i ON i.account_id = l.account_id AND i.id = l.invoice_id
        WHERE i.subscription_id = pg_temp.sub('late') AND i.issue_date = '2024-04-01' ORDER BY l.kind, l.net $$,
    'preview = the lines that billing then creates');
SELECT results_eq($$ SELECT kind, net FROM pg_temp.lines(pg_temp.sub('late')) WHERE inv = 2 $$,
    $$ VALUES ('proration', '309.68 SEK'), ('recurring', '900.00 SEK') $$,
    'quantity 1 -> 3 on 2024-03-16: 300 x (15 + 3 x 16) / 31 = 609.68, 309.68 more; April at 3 x 300');

-- ------------------------------------------------------------ backdated changes
SELECT pg_temp.account('back');
SELECT subscribe(pg_temp.acct('back'), 'b_m600', 1, '2024-01-01');
SELECT run_billing('2024-01-01');
SELECT run_billing('2024-02-01');
SELECT run_billing('2024-03-01');
SELECT change_plan(pg_temp.sub('back'), 'b_m300', '2024-02-01');
SELECT is(run_billing('2024-03-10'), 1, 'backdated downgrade: corrected on the next run');
SELECT results_eq($$ SELECT kind, net, period FROM pg_temp.lines(pg_temp.sub('back')) WHERE inv = 4 $$,
    $$ VALUES ('credit', '-600.00 SEK', '[2024-02-01,2024-03-01)'),
              ('recurring', '300.00 SEK', '[2024-02-01,2024-03-01)'),
              ('credit', '-600.00 SEK', '[2024-03-01,2024-04-01)'),
              ('recurring', '300.00 SEK', '[2024-03-01,2024-04-01)') $$,
    'backdated downgrade from 2024-02-01: February and March on the old plan credited, charged on the new');
SELECT cancel(pg_temp.sub('back'), '2024-02-15', true);
SELECT run_billing('2024-03-10');
SELECT results_eq($$ SELECT kind, net, period FROM pg_temp.lines(pg_temp.sub('back')) WHERE inv = 5 $$,
    $$ VALUES ('credit', '-155.17 SEK', '[2024-02-01,2024-03-01)'),
              ('credit', '-300.00 SEK', '[2024-03-01,2024-04-01)') $$,
    'backdated cancel with credit on 2024-02-15: 15 of 29 February days credited (300 - round(300 x 14 / 29)), March in full');
SELECT is((SELECT sum(l.net)::text FROM invoice_lines l WHERE l.subscription_id = pg_temp.sub('back')),
          '744.83 SEK', 'backdated: in all 600 for January and 14/29 of 300 for February');

-- ------------------------------------------------------------ void
SELECT pg_temp.account('void');
SELECT subscribe(pg_temp.acct('void'), 'b_m300', 2, '2024-01-01');
SELECT run_billing('2024-01-01');
SELECT void_invoice((SELECT id FROM invoices WHERE subscription_id = pg_temp.sub('void')), 'wrong address');
SELECT is((SELECT (status, number IS NOT NULL, voided_at IS NOT NULL)::text FROM invoices WHERE subscription_id = pg_temp.sub('void')),
          '(void,t,t)', 'void: the invoice keeps its number and is void');
SELECT is(run_billing('2024-01-02'), 1, 'void: what it invoiced counts as not invoiced and is billed again');
SELECT results_eq($$ SELECT * FROM pg_temp.lines(pg_temp.sub('void')) $$,
    $$ VALUES (1::bigint, 'recurring', '600.00 SEK', '150.00 SEK', '[2024-01-01,2024-02-01)'),
              (2, 'recurring', '600.00 SEK', '150.00 SEK', '[2024-01-01,2024-02-01)') $$,
    'void: the new invoice has the same lines');
SELECT throws_ok($$ SELECT void_invoice((SELECT min(id) FROM invoices WHERE subscription_id = pg_temp.sub('void'))) $$,
    '55000', NULL, 'void: only open invoices');

-- ------------------------------------------------------------ events
SELECT is((SELECT count(*) FROM invoices i
            WHERE (SELECT count(*) FROM events e WHERE e.account_id = i.account_id AND e.invoice_id = i.id
                      AND e.type = 'invoice.created') <> 1
               OR (SELECT count(*) FROM events e WHERE e.account_id = i.account_id AND e.invoice_id = i.id
                      AND e.type = 'invoice.finalized') <> 1), 0::bigint,
          'events: every invoice has one invoice.created and one invoice.finalized');
SELECT is((SELECT count(*) FROM invoices i JOIN events e ON e.account_id = i.account_id AND e.invoice_id = i.id
            WHERE e.type = 'invoice.finalized'
              AND (e.payload->>'number' IS DISTINCT FROM i.number OR e.payload->>'total' IS DISTINCT FROM i.total::text
                   OR e.payload->>'currency' IS DISTINCT FROM i.currency
                   OR (e.payload->>'due_date')::date IS DISTINCT FROM i.due_date
                   OR e.payload->>'reference' IS DISTINCT FROM i.reference
                   OR e.subscription_id IS DISTINCT FROM i.subscription_id)), 0::bigint,
          'events: invoice.finalized carries number, total, currency, due date and reference');
SELECT is((SELECT count(*) FROM events c JOIN events f ON f.account_id = c.account_id AND f.invoice_id = c.invoice_id
            WHERE c.type = 'invoice.created' AND f.type = 'invoice.finalized' AND f.id < c.id), 0::bigint,
          'events: invoice.created comes before invoice.finalized');
SELECT is((SELECT count(*) FROM events WHERE type = 'invoice.voided'), 1::bigint, 'events: invoice.voided');

-- ------------------------------------------------------------ due dates and time zones
SELECT pg_temp.account('tokyo');
UPDATE accounts SET time_zone = 'Asia/Tokyo' WHERE external_id = 'tokyo';
SELECT subscribe(pg_temp.acct('tokyo'), 'b_m300', 1, '2024-02-01');
SELECT run_billing('2024-01-31 14:59+00');
SELECT is((SELECT count(*) FROM invoices WHERE subscription_id = pg_temp.sub('tokyo')), 0::bigint,
          'time zone: at 23:59 on 2024-01-31 in Tokyo nothing is due');
SELECT run_billing('2024-01-31 15:00+00');
SELECT is((SELECT issue_date FROM invoices WHERE subscription_id = pg_temp.sub('tokyo')), '2024-02-01'::date,
          'time zone: at midnight in Tokyo (15:00 UTC) February is due, issued on the local date');

-- ------------------------------------------------------------ scheduled cancellation with credit
SELECT pg_temp.account('sched');
SELECT subscribe(pg_temp.acct('sched'), 'b_m300', 1, '2024-01-01');
SELECT run_billing('2024-01-01');
SELECT cancel(pg_temp.sub('sched'), '2024-01-21', true);
SELECT run_billing('2024-01-11');
SELECT is((SELECT count(*) FROM invoices WHERE subscription_id = pg_temp.sub('sched')), 1::bigint,
          'scheduled cancellation: no credit before it takes effect');
SELECT is((SELECT next_bill_on FROM subscriptions WHERE id = pg_temp.sub('sched')), '2024-01-21'::date,
          'scheduled cancellation: due again on its date');
SELECT run_billing('2024-01-21');
SELECT results_eq($$ SELECT kind, net FROM pg_temp.lines(pg_temp.sub('sched')) WHERE inv = 2 $$,
    $$ VALUES ('credit', '-106.45 SEK') $$, 'scheduled cancellation: 11 of 31 days credited on its date');

-- ------------------------------------------------------------ add-ons mid-period, amount-off campaign
SELECT pg_temp.account('addon');
SELECT subscribe(pg_temp.acct('addon'), 'b_m300', 1, '2024-01-01', 'b_50off');
SELECT run_billing('2024-01-01');
SELECT add_addon(pg_temp.sub('addon'), 'b_book', 1, '2024-01-16');
SELECT run_billing('2024-01-16');
SELECT run_billing('2024-02-01');
SELECT remove_addon(pg_temp.sub('addon'), 'b_book', '2024-02-11');
SELECT run_billing('2024-02-11');
SELECT results_eq($$ SELECT * FROM pg_temp.lines(pg_temp.sub('addon')) $$,
    $$ VALUES (1::bigint, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-01-01,2024-02-01)'),
              (1, 'discount', '-50.00 SEK', '-12.50 SEK', '[2024-01-01,2024-02-01)'),
              (2, 'proration', '25.81 SEK', '1.55 SEK', '[2024-01-01,2024-02-01)'),
              (3, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-02-01,2024-03-01)'),
              (3, 'addon', '50.00 SEK', '3.00 SEK', '[2024-02-01,2024-03-01)'),
              (4, 'credit', '-32.76 SEK', '-1.97 SEK', '[2024-02-01,2024-03-01)') $$,
    'add-on from 2024-01-16: 16/31 of 50.00 at 6% VAT; removed 2024-02-11: 19/29 credited; 50.00 off once');

-- ------------------------------------------------------------ pricing models on seats, billing in arrears
INSERT INTO plans (code, product_id, name, billing_period, pricing_model, tiers, package_size, price, billing_timing)
SELECT v.code, (SELECT id FROM products WHERE code = 'b_saas'), v.code, '1 month', v.model, v.tiers, v.size, v.price, v.timing
  FROM (VALUES
    ('b_vol', 'volume', ARRAY[ROW(10, '10.00 SEK', NULL)::tier, ROW(NULL, '8.00 SEK', '20.00 SEK')::tier], NULL::numeric, NULL::price, 'in_advance'),
    ('b_grad', 'graduated', ARRAY[ROW(10, '10.00 SEK', NULL)::tier, ROW(NULL, '8.00 SEK', NULL)::tier], NULL, NULL, 'in_advance'),
    ('b_pack', 'package', NULL, 10, '100.00 SEK', 'in_advance'),
    ('b_arrears', 'per_unit', NULL, NULL, '300.00 SEK', 'in_arrears')) v(code, model, tiers, size, price, timing);
SELECT pg_temp.account('models');
SELECT subscribe(pg_temp.acct('models'), 'b_vol', 15, '2024-01-01');
SELECT subscribe(pg_temp.acct('models'), 'b_grad', 15, '2024-01-01');
SELECT subscribe(pg_temp.acct('models'), 'b_pack', 25, '2024-01-01');
SELECT subscribe(pg_temp.acct('models'), 'b_arrears', 1, '2024-01-01');
SELECT run_billing('2024-01-01');
SELECT results_eq(
    $$ SELECT p.code, l.quantity, l.unit_price::text, l.net::text FROM invoice_lines l JOIN plans p ON p.id = l.plan_id
        WHERE l.account_id = pg_temp.acct('models') ORDER BY p.code $$,
    $$ VALUES ('b_grad', 15::numeric, NULL, '140.00 SEK'), ('b_pack', 25, NULL, '300.00 SEK'), ('b_vol', 15, NULL, '140.00 SEK') $$,
    'seats: volume 15 x 8.00 + 20.00 flat, graduated 10 x 10.00 + 5 x 8.00, packages of 10 at 100.00; in arrears nothing yet');
SELECT run_billing('2024-02-01');
SELECT is((SELECT l.net::text || ' ' || l.period::text FROM invoice_lines l JOIN plans p ON p.id = l.plan_id
            WHERE l.account_id = pg_temp.acct('models') AND p.code = 'b_arrears'),
          '300.00 SEK [2024-01-01,2024-02-01)', 'in arrears: January billed on 2024-02-01');

-- ------------------------------------------------------------ migration at a period boundary
INSERT INTO plans (code, product_id, name, billing_period, price)
VALUES ('b_old', (SELECT id FROM products WHERE code = 'b_saas'), 'Old', '1 month', '300.00 SEK'),
       ('b_new', (SELECT id FROM products WHERE code = 'b_saas'), 'New', '1 month', '600.00 SEK');
SELECT pg_temp.account('mig');
SELECT subscribe(pg_temp.acct('mig'), 'b_old', 1, '2024-01-01');
SELECT run_billing('2024-01-01');
SELECT migrate_subscriptions('b_old', 'b_new', '2024-02-01');
SELECT run_billing('2024-02-01');
SELECT results_eq($$ SELECT kind, net FROM pg_temp.lines(pg_temp.sub('mig')) WHERE inv = 2 $$,
    $$ VALUES ('recurring', '600.00 SEK') $$, 'migration at a period boundary: the new price from the next period');

-- ------------------------------------------------------------ an anchor after the start: a stub period
SELECT pg_temp.account('stub');
SELECT subscribe(pg_temp.acct('stub'), 'b_m300', 1, '2024-01-10');
UPDATE subscriptions SET billing_anchor = '2024-02-01' WHERE id = pg_temp.sub('stub');
SELECT run_billing('2024-01-10');
SELECT run_billing('2024-02-01');
SELECT results_eq($$ SELECT * FROM pg_temp.lines(pg_temp.sub('stub')) $$,
    $$ VALUES (1::bigint, 'proration', '212.90 SEK', '53.23 SEK', '[2024-01-01,2024-02-01)'),
              (2, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-02-01,2024-03-01)') $$,
    'billing anchor 2024-02-01 after a start on 2024-01-10: a stub of 22/31, then whole months from the anchor');

-- ------------------------------------------------------------ all invoices of this file
SELECT is((SELECT count(*) FROM invoices i
            WHERE i.net <> (SELECT sum(l.net) FROM invoice_lines l WHERE l.account_id = i.account_id AND l.invoice_id = i.id)
               OR i.tax <> (SELECT sum(l.tax) FROM invoice_lines l WHERE l.account_id = i.account_id AND l.invoice_id = i.id)),
          0::bigint, 'every invoice: totals are the sums of its lines');
SELECT is((SELECT count(*) FROM (SELECT series_id FROM invoices GROUP BY series_id
                                  HAVING max(number_seq) - min(number_seq) + 1 <> count(*)) g), 0::bigint,
          'every series: gapless');

SELECT * FROM finish();
ROLLBACK;
