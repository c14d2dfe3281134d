-- The billing scenarios with exact amounts: each on an account of
-- its own, billed with run_billing() at the scenario's dates.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 400_fixture.psql

SELECT plan(47);

-- ------------------------------------------------------------ month-end anchor through a leap February
SELECT pg_temp.account('me');
SELECT subscribe(pg_temp.acct('me'), 'b_coffee', 1, '2024-01-31');
SELECT run_billing('2024-01-31');
SELECT run_billing('2024-02-28');
SELECT is((SELECT count(*) FROM invoices WHERE subscription_id = pg_temp.sub('me')), 1::bigint,
          'month-end: nothing is due on 2024-02-28');
SELECT run_billing('2024-02-29');
SELECT run_billing('2024-03-31');
SELECT run_billing('2024-04-30');
SELECT results_eq($$ SELECT * FROM pg_temp.lines(pg_temp.sub('me')) $$,
    $$ VALUES (1::bigint, 'recurring', '149.00 SEK', '17.88 SEK', '[2024-01-31,2024-02-29)'),
              (2, 'recurring', '149.00 SEK', '17.88 SEK', '[2024-02-29,2024-03-31)'),
              (3, 'recurring', '149.00 SEK', '17.88 SEK', '[2024-03-31,2024-04-30)'),
              (4, 'recurring', '149.00 SEK', '17.88 SEK', '[2024-04-30,2024-05-31)') $$,
    'month-end anchor 2024-01-31: whole months, the anchor day kept through a leap February');

-- ------------------------------------------------------------ yearly on February 29
SELECT pg_temp.account('leap');
SELECT subscribe(pg_temp.acct('leap'), 'b_year', 1, '2024-02-29');
SELECT run_billing('2024-02-29');
SELECT run_billing('2025-02-27');
SELECT is((SELECT count(*) FROM invoices WHERE subscription_id = pg_temp.sub('leap')), 1::bigint,
          'yearly: nothing is due on 2025-02-27');
SELECT run_billing('2025-02-28');
SELECT run_billing('2026-02-28');
SELECT run_billing('2027-02-28');
SELECT run_billing('2028-02-29');
SELECT results_eq($$ SELECT * FROM pg_temp.lines(pg_temp.sub('leap')) $$,
    $$ VALUES (1::bigint, 'recurring', '1200.00 SEK', '300.00 SEK', '[2024-02-29,2025-02-28)'),
              (2, 'recurring', '1200.00 SEK', '300.00 SEK', '[2025-02-28,2026-02-28)'),
              (3, 'recurring', '1200.00 SEK', '300.00 SEK', '[2026-02-28,2027-02-28)'),
              (4, 'recurring', '1200.00 SEK', '300.00 SEK', '[2027-02-28,2028-02-29)'),
              (5, 'recurring', '1200.00 SEK', '300.00 SEK', '[2028-02-29,2029-02-28)') $$,
    'yearly from 2024-02-29: February 28 in common years, back to the 29th in 2028');

-- ------------------------------------------------------------ upgrade on day 11 of a 30-day period
SELECT pg_temp.account('up');
SELECT subscribe(pg_temp.acct('up'), 'b_d300', 1, '2024-01-01');
SELECT is(run_billing('2024-01-01'), 1, 'upgrade: the first period is billed on its first day');
SELECT change_plan(pg_temp.sub('up'), 'b_d600', '2024-01-11');
SELECT results_eq(
    $$ SELECT kind, net::text, tax::text, plan_code FROM preview_invoice(pg_temp.sub('up'), '2024-01-11') $$,
    $$ VALUES ('credit', '-200.00 SEK', '-50.00 SEK', 'b_d300'), ('proration', '400.00 SEK', '100.00 SEK', 'b_d600') $$,
    'upgrade: the preview shows the credit and the charge');
SELECT is(run_billing('2024-01-11'), 1, 'upgrade: billed at once');
SELECT run_billing('2024-01-31');
SELECT results_eq($$ SELECT * FROM pg_temp.lines(pg_temp.sub('up')) $$,
    $$ VALUES (1::bigint, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-01-01,2024-01-31)'),
              (2, 'credit', '-200.00 SEK', '-50.00 SEK', '[2024-01-01,2024-01-31)'),
              (2, 'proration', '400.00 SEK', '100.00 SEK', '[2024-01-01,2024-01-31)'),
              (3, 'recurring', '600.00 SEK', '150.00 SEK', '[2024-01-31,2024-03-01)') $$,
    'upgrade 300 -> 600 on day 11 of 30: credit 200.00 for the unused 20 days, charge 400.00 for them on the new plan');
SELECT results_eq($$ SELECT * FROM pg_temp.invoices(pg_temp.sub('up')) $$,
    $$ VALUES ('invoice', '300.00 SEK', '75.00 SEK', '375.00 SEK', '2024-01-01'::date, '2024-01-31'::date),
              ('invoice', '200.00 SEK', '50.00 SEK', '250.00 SEK', '2024-01-11', '2024-02-10'),
              ('invoice', '600.00 SEK', '150.00 SEK', '750.00 SEK', '2024-01-31', '2024-03-01') $$,
    'upgrade: invoice totals and due dates (30 days payment terms)');

-- ------------------------------------------------------------ downgrade at the end of the period
SELECT pg_temp.account('down');
SELECT subscribe(pg_temp.acct('down'), 'b_m600', 1, '2024-01-01');
SELECT run_billing('2024-01-01');
SELECT change_plan(pg_temp.sub('down'), 'b_m300', '2024-01-11', 'end_of_period');
SELECT run_billing('2024-01-11');
SELECT is((SELECT count(*) FROM invoices WHERE subscription_id = pg_temp.sub('down')), 1::bigint,
          'downgrade at period end: nothing to invoice when it is requested');
SELECT run_billing('2024-02-01');
SELECT results_eq($$ SELECT * FROM pg_temp.lines(pg_temp.sub('down')) $$,
    $$ VALUES (1::bigint, 'recurring', '600.00 SEK', '150.00 SEK', '[2024-01-01,2024-02-01)'),
              (2, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-02-01,2024-03-01)') $$,
    'downgrade at period end: the period runs out on the old plan, the next is on the new one');

-- ------------------------------------------------------------ quantity change mid-period
SELECT pg_temp.account('qty');
SELECT subscribe(pg_temp.acct('qty'), 'b_seat', 2, '2024-01-01');
SELECT run_billing('2024-01-01');
SELECT change_quantity(pg_temp.sub('qty'), 5, '2024-01-11');
SELECT run_billing('2024-01-11');
SELECT run_billing('2024-01-31');
SELECT results_eq($$ SELECT * FROM pg_temp.lines(pg_temp.sub('qty')) $$,
    $$ VALUES (1::bigint, 'recurring', '200.00 SEK', '50.00 SEK', '[2024-01-01,2024-01-31)'),
              (2, 'proration', '200.00 SEK', '50.00 SEK', '[2024-01-01,2024-01-31)'),
              (3, 'recurring', '500.00 SEK', '125.00 SEK', '[2024-01-31,2024-03-01)') $$,
    'quantity 2 -> 5 on day 11 of 30 at 100.00: 100 x (2 x 10 + 5 x 20) / 30 = 400.00, 200.00 more');
SELECT is((SELECT quantity FROM invoice_lines l WHERE l.subscription_id = pg_temp.sub('qty') ORDER BY id DESC LIMIT 1),
          5::numeric, 'quantity change: the next period''s line has quantity 5');

-- ------------------------------------------------------------ a month's pause, then resume
SELECT pg_temp.account('pause');
SELECT subscribe(pg_temp.acct('pause'), 'b_m300', 1, '2024-01-01');
SELECT run_billing('2024-01-01');
SELECT pause(pg_temp.sub('pause'), '2024-02-01');
SELECT run_billing('2024-02-01');
SELECT is((SELECT count(*) FROM invoices WHERE subscription_id = pg_temp.sub('pause')), 1::bigint,
          'pause: nothing is charged for February while paused');
SELECT resume(pg_temp.sub('pause'), '2024-03-01');
SELECT run_billing('2024-03-01');
SELECT run_billing('2024-04-01');
-- a ten-day pause inside a period that was billed in advance
SELECT pause(pg_temp.sub('pause'), '2024-04-11', '2024-04-21');
SELECT run_billing('2024-04-15');
SELECT is((SELECT count(*) FROM invoices WHERE subscription_id = pg_temp.sub('pause')), 3::bigint,
          'pause: the credit for paused days is not given before the pause ends');
SELECT run_billing('2024-04-21');
SELECT results_eq($$ SELECT * FROM pg_temp.lines(pg_temp.sub('pause')) $$,
    $$ VALUES (1::bigint, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-01-01,2024-02-01)'),
              (2, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-03-01,2024-04-01)'),
              (3, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-04-01,2024-05-01)'),
              (4, 'credit', '-100.00 SEK', '-25.00 SEK', '[2024-04-01,2024-05-01)') $$,
    'pause: February not charged; 10 paused days of 30 in April credited 100.00');
SELECT is((SELECT kind FROM invoices WHERE subscription_id = pg_temp.sub('pause') ORDER BY id DESC LIMIT 1),
          'credit_note', 'pause: an invoice with a negative total is a credit note');

-- ------------------------------------------------------------ cancel with and without credit
SELECT pg_temp.account('cancel');
SELECT subscribe(pg_temp.acct('cancel'), 'b_m300', 1, '2024-01-01');
SELECT pg_temp.account('cancel2');
SELECT subscribe(pg_temp.acct('cancel2'), 'b_m300', 1, '2024-01-01');
SELECT run_billing('2024-01-01');
SELECT cancel(pg_temp.sub('cancel'), '2024-01-11', true);
SELECT cancel(pg_temp.sub('cancel2'), '2024-01-11', false);
SELECT run_billing('2024-01-11');
SELECT run_billing('2024-02-01');
SELECT results_eq($$ SELECT * FROM pg_temp.lines(pg_temp.sub('cancel')) $$,
    $$ VALUES (1::bigint, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-01-01,2024-02-01)'),
              (2, 'credit', '-203.23 SEK', '-50.81 SEK', '[2024-01-01,2024-02-01)') $$,
    'cancel on 2024-01-11 with credit_unused: 21 of 31 days credited, 300.00 - round(300 x 10 / 31) = 203.23');
SELECT results_eq($$ SELECT * FROM pg_temp.lines(pg_temp.sub('cancel2')) $$,
    $$ VALUES (1::bigint, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-01-01,2024-02-01)') $$,
    'cancel without credit_unused: the period billed in advance stays charged, nothing after it');
SELECT is((SELECT next_bill_on FROM subscriptions WHERE id = pg_temp.sub('cancel')), NULL::date,
          'cancel: an ended subscription is never due again');

-- ------------------------------------------------------------ campaign 20 % for 3 periods
SELECT pg_temp.account('camp');
SELECT subscribe(pg_temp.acct('camp'), 'b_m300', 1, '2024-01-01', 'b_20x3');
SELECT run_billing('2024-01-01');
SELECT run_billing('2024-02-01');
SELECT run_billing('2024-03-01');
SELECT run_billing('2024-04-01');
SELECT results_eq($$ SELECT * FROM pg_temp.lines(pg_temp.sub('camp')) $$,
    $$ VALUES (1::bigint, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-01-01,2024-02-01)'),
              (1, 'discount', '-60.00 SEK', '-15.00 SEK', '[2024-01-01,2024-02-01)'),
              (2, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-02-01,2024-03-01)'),
              (2, 'discount', '-60.00 SEK', '-15.00 SEK', '[2024-02-01,2024-03-01)'),
              (3, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-03-01,2024-04-01)'),
              (3, 'discount', '-60.00 SEK', '-15.00 SEK', '[2024-03-01,2024-04-01)'),
              (4, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-04-01,2024-05-01)') $$,
    'campaign 20% for 3 periods: 60.00 off each of the first three months, none in the fourth');
SELECT is((SELECT total::text FROM invoices WHERE subscription_id = pg_temp.sub('camp') ORDER BY id LIMIT 1),
          '300.00 SEK', 'campaign: 240.00 net + 60.00 VAT');

-- ------------------------------------------------------------ 14-day trial, then paid
SELECT pg_temp.account('trial');
SELECT subscribe(pg_temp.acct('trial'), 'b_trial', 1, '2024-01-01');
SELECT run_billing('2024-01-01');
SELECT run_billing('2024-01-14');
SELECT is((SELECT count(*) FROM invoices WHERE subscription_id = pg_temp.sub('trial')), 0::bigint,
          'trial: nothing is charged during the 14 days');
SELECT run_billing('2024-01-15');
SELECT results_eq($$ SELECT * FROM pg_temp.lines(pg_temp.sub('trial')) $$,
    $$ VALUES (1::bigint, 'recurring', '99.00 SEK', '24.75 SEK', '[2024-01-15,2024-02-15)') $$,
    'trial: the first paid month starts at the trial end, the billing anchor');

-- ------------------------------------------------------------ graduated usage in arrears
SELECT pg_temp.account('usage');
SELECT subscribe(pg_temp.acct('usage'), 'b_m300', 1, '2024-01-01');
SELECT add_addon(pg_temp.sub('usage'), 'b_api', 1, '2024-01-01');
SELECT add_addon(pg_temp.sub('usage'), 'b_gb', 1, '2024-01-01');
SELECT record_usage(pg_temp.sub('usage'), 'b_api', 600, '2024-01-05 10:00+00', 'u1');
SELECT record_usage(pg_temp.sub('usage'), 'b_api', 900, '2024-01-20 10:00+00', 'u2');
SELECT record_usage(pg_temp.sub('usage'), 'b_gb', 20, '2024-01-20 10:00+00', 'g1');
SELECT record_usage(pg_temp.sub('usage'), 'b_gb', 5, '2024-01-31 23:00+00', 'g2');
SELECT record_usage(pg_temp.sub('usage'), 'b_api', 50, '2024-02-03 10:00+00', 'u3');
SELECT run_billing('2024-01-01');
SELECT run_billing('2024-01-31');
SELECT is((SELECT count(*) FROM invoices WHERE subscription_id = pg_temp.sub('usage')), 1::bigint,
          'usage: not billed before the period ends');
SELECT run_billing('2024-02-01');
SELECT results_eq($$ SELECT * FROM pg_temp.lines(pg_temp.sub('usage')) $$,
    $$ VALUES (1::bigint, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-01-01,2024-02-01)'),
              (2, 'usage', '675.00 SEK', '168.75 SEK', '[2024-01-01,2024-02-01)'),
              (2, 'usage', '30.00 SEK', '7.50 SEK', '[2024-01-01,2024-02-01)'),
              (2, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-02-01,2024-03-01)') $$,
    'usage in arrears: 1500 calls graduated = 100 x 1.00 + 900 x 0.50 + 500 x 0.25 = 675.00; 25 GB less 10 included at 2.00 = 30.00');
SELECT is((SELECT quantity FROM invoice_lines WHERE subscription_id = pg_temp.sub('usage') AND kind = 'usage' ORDER BY id LIMIT 1),
          1500::numeric, 'usage: the line''s quantity is the billable usage');
-- usage of January that arrives after January was invoiced
SELECT record_usage(pg_temp.sub('usage'), 'b_api', 100, '2024-01-25 10:00+00', 'u4');
SELECT run_billing('2024-03-01');
SELECT results_eq($$ SELECT kind, net, tax, period FROM pg_temp.lines(pg_temp.sub('usage')) WHERE inv = 3 $$,
    $$ VALUES ('proration', '25.00 SEK', '6.25 SEK', '[2024-01-01,2024-02-01)'),
              ('usage', '50.00 SEK', '12.50 SEK', '[2024-02-01,2024-03-01)'),
              ('recurring', '300.00 SEK', '75.00 SEK', '[2024-03-01,2024-04-01)') $$,
    'usage: late January usage is billed next time as an adjustment (1600 calls = 700.00), February''s 50 calls = 50.00');

-- ------------------------------------------------------------ setup fee once
SELECT pg_temp.account('setup');
SELECT subscribe(pg_temp.acct('setup'), 'b_setup', 1, '2024-01-01');
SELECT run_billing('2024-01-01');
SELECT change_plan(pg_temp.sub('setup'), 'b_m300', '2024-02-01');
SELECT run_billing('2024-02-01');
SELECT change_plan(pg_temp.sub('setup'), 'b_setup', '2024-02-15', 'end_of_period');
SELECT run_billing('2024-03-01');
SELECT results_eq($$ SELECT * FROM pg_temp.lines(pg_temp.sub('setup')) $$,
    $$ VALUES (1::bigint, 'recurring', '200.00 SEK', '50.00 SEK', '[2024-01-01,2024-02-01)'),
              (1, 'setup', '500.00 SEK', '125.00 SEK', '[2024-01-01,2024-01-02)'),
              (2, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-02-01,2024-03-01)'),
              (3, 'recurring', '200.00 SEK', '50.00 SEK', '[2024-03-01,2024-04-01)') $$,
    'setup fee: charged once with the first period, not again when the plan comes back');

-- ------------------------------------------------------------ tax-exempt account
SELECT pg_temp.account('exempt', tax_exempt => true);
SELECT subscribe(pg_temp.acct('exempt'), 'b_m300', 1, '2024-01-01');
SELECT run_billing('2024-01-01');
SELECT results_eq($$ SELECT * FROM pg_temp.invoices(pg_temp.sub('exempt')) $$,
    $$ VALUES ('invoice', '300.00 SEK', '0.00 SEK', '300.00 SEK', '2024-01-01'::date, '2024-01-31'::date) $$,
    'tax-exempt account: no VAT');
SELECT is((SELECT tax_rate FROM invoice_lines WHERE subscription_id = pg_temp.sub('exempt')), 0::numeric,
          'tax-exempt account: the line''s VAT rate is 0');

-- ------------------------------------------------------------ SEK, NOK and EUR side by side
SELECT pg_temp.account('sek', 'SE', 'SEK', terms => 20);
SELECT pg_temp.account('nok', 'NO', 'NOK', terms => 14);
SELECT pg_temp.account('eur', 'FI', 'EUR', terms => 0);
SELECT pg_temp.account('dkk', 'DK', 'DKK');
INSERT INTO plans (code, product_id, name, billing_period, price)
VALUES ('b_dkk', (SELECT id FROM products WHERE code = 'b_books'), 'Dansk', '1 month', '100.00 DKK');
SELECT subscribe(pg_temp.acct('sek'), 'b_m300', 1, '2024-01-01');
SELECT subscribe(pg_temp.acct('nok'), 'b_nok', 1, '2024-01-01');
SELECT subscribe(pg_temp.acct('eur'), 'b_eur', 3, '2024-01-01');
SELECT subscribe(pg_temp.acct('dkk'), 'b_dkk', 1, '2024-01-01');
SELECT is(run_billing('2024-01-01'), 4, 'currencies: one invoice each');
SELECT results_eq(
    $$ SELECT a.external_id, i.currency, i.net::text, i.tax::text, i.total::text, i.due_date
         FROM invoices i JOIN accounts a ON a.id = i.account_id
        WHERE a.external_id IN ('sek', 'nok', 'eur', 'dkk') ORDER BY a.external_id $$,
    $$ VALUES ('dkk', 'DKK', '100.00 DKK', '6.00 DKK', '106.00 DKK', '2024-01-31'::date),
              ('eur', 'EUR', '60.00 EUR', '15.00 EUR', '75.00 EUR', '2024-01-01'),
              ('nok', 'NOK', '250.00 NOK', '62.50 NOK', '312.50 NOK', '2024-01-15'),
              ('sek', 'SEK', '300.00 SEK', '75.00 SEK', '375.00 SEK', '2024-01-21') $$,
    'currencies: SEK, NOK, EUR and DKK invoices side by side, each in its own currency, due per its terms');
SELECT ok((SELECT ocr_valid(reference, true) FROM invoices WHERE account_id = pg_temp.acct('sek')),
          'references: an SE invoice carries an OCR reference with length digit');
SELECT ok((SELECT kid_valid(reference) FROM invoices WHERE account_id = pg_temp.acct('nok')),
          'references: an NO invoice carries a KID (mod 10)');
SELECT ok((SELECT reference = fi_reference(left(reference, -1)) FROM invoices WHERE account_id = pg_temp.acct('eur')),
          'references: an FI invoice carries a Finnish reference number');
SELECT ok((SELECT length(reference) = 15 AND ocr_valid(reference) FROM invoices WHERE account_id = pg_temp.acct('dkk')),
          'references: a DK invoice carries a 15-digit FIK payment id');
SELECT is((SELECT count(DISTINCT reference) FROM invoices), (SELECT count(*) FROM invoices),
          'references: every invoice has its own reference');

-- ------------------------------------------------------------ every invoice of this file
SELECT is((SELECT count(*) FROM invoices i
            WHERE i.net <> (SELECT sum(l.net) FROM invoice_lines l WHERE l.account_id = i.account_id AND l.invoice_id = i.id)
               OR i.tax <> (SELECT sum(l.tax) FROM invoice_lines l WHERE l.account_id = i.account_id AND l.invoice_id = i.id)
               OR i.total <> i.net + i.tax), 0::bigint,
          'every invoice: net and VAT are the sums of its lines, total = net + VAT');
SELECT is((SELECT count(*) FROM invoice_lines WHERE tax <> tax(net, tax_rate)), 0::bigint,
          'every line: VAT = tax(net, rate)');
SELECT results_eq(
    $$ SELECT s.code, max(i.number_seq) - min(i.number_seq) + 1, count(*)
         FROM invoices i JOIN invoice_series s ON s.id = i.series_id GROUP BY s.code ORDER BY s.code $$,
    $$ SELECT s.code, count(*), count(*)
         FROM invoices i JOIN invoice_series s ON s.id = i.series_id GROUP BY s.code ORDER BY s.code $$,
    'every series: numbers are gapless (max - min + 1 = count)');
SELECT is((SELECT count(*) FROM invoices i JOIN invoice_series s ON s.id = i.series_id
            WHERE i.number <> s.code || '-' || lpad(i.number_seq::text, 6, '0')
               OR s.code <> to_char(i.issue_date, 'YYYY')), 0::bigint,
          'every invoice: numbered YYYY-NNNNNN in the series of its issue year');
SELECT ok(run_billing('2028-03-01') > 0, 'billing every subscription up to 2028-03-01');
SELECT is(run_billing('2028-03-01'), 0, 'billing again as of the same date bills nothing');
SELECT is((SELECT count(*) FROM (SELECT l.subscription_id, l.plan_id, l.charge_type, l.key_start
                                   FROM invoice_lines l WHERE l.kind IN ('recurring', 'addon', 'usage', 'setup')
                                  GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d), 0::bigint,
          'no charge key was charged twice');

-- ------------------------------------------------------------ migration in the middle of a period
-- migrate_subscriptions is a plan change for every subscriber: billed like change_plan.
SELECT pg_temp.account('mig');
SELECT subscribe(pg_temp.acct('mig'), 'b_d300', 1, '2024-01-01');
SELECT run_billing('2024-01-01');
SELECT ok(migrate_subscriptions('b_d300', 'b_d600', '2024-01-11') >= 1, 'migration: the subscriber is moved');
SELECT run_billing('2024-01-11');
SELECT results_eq($$ SELECT * FROM pg_temp.lines(pg_temp.sub('mig')) $$,
    $$ VALUES (1::bigint, 'recurring', '300.00 SEK', '75.00 SEK', '[2024-01-01,2024-01-31)'),
              (2, 'credit', '-200.00 SEK', '-50.00 SEK', '[2024-01-01,2024-01-31)'),
              (2, 'proration', '400.00 SEK', '100.00 SEK', '[2024-01-01,2024-01-31)') $$,
    'migration 300 -> 600 on day 11 of 30: credit 200.00 and charge 400.00, as for change_plan');

SELECT * FROM finish();
ROLLBACK;
