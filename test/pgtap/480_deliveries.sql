-- Deliveries: a schedule worked by hand across an address change, a skip,
-- a quantity change, a pause and a cancellation; a payment stop; a
-- cancellation at the end of the period; the pick list; skip charges of a
-- plan that bills per delivery (held when in the future, credited when
-- invoiced) and of one that does not; delivery.scheduled once per delivery;
-- privileges; bad input.  Dates are relative to today (D = current_date):
-- skips and addresses take effect from today on.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL TimeZone = 'UTC';
SELECT plan(92);

CREATE FUNCTION pg_temp.d(n integer) RETURNS date LANGUAGE sql STABLE RETURN current_date + n;
CREATE FUNCTION pg_temp.acct(ext text) RETURNS bigint
    LANGUAGE sql STABLE RETURN (SELECT id FROM subbilling.accounts WHERE external_id = ext);
CREATE FUNCTION pg_temp.sub(ext text) RETURNS bigint
    LANGUAGE sql STABLE
    RETURN (SELECT max(s.id) FROM subbilling.subscriptions s
             WHERE s.account_id = (SELECT id FROM subbilling.accounts WHERE external_id = ext));
-- a subscription's deliveries in the view: (day offset, quantity, city, status)
CREATE FUNCTION pg_temp.sched(ext text) RETURNS TABLE (day integer, quantity bigint, city text, status text)
    LANGUAGE sql STABLE
AS $$
    SELECT d.delivery_date - current_date, d.quantity, d.address ->> 'city', d.status
      FROM subbilling.deliveries d WHERE d.subscription_id = pg_temp.sub(ext) ORDER BY d.delivery_date
$$;
CREATE FUNCTION pg_temp.events(ext text, t text) RETURNS bigint
    LANGUAGE sql STABLE
    RETURN (SELECT count(*) FROM subbilling.events e WHERE e.subscription_id = pg_temp.sub(ext) AND e.type = t);

-- ---------------------------------------------------------------- catalog
SELECT has_column('subbilling', 'plans', 'delivery_period', 'plans.delivery_period');
SELECT has_view('subbilling', 'deliveries', 'view deliveries');
SELECT has_function('subbilling', 'deliveries_due', ARRAY['date', 'date'], 'deliveries_due(date, date)');
SELECT has_function('subbilling', 'skip_delivery', ARRAY['bigint', 'date'], 'skip_delivery(bigint, date)');
SELECT has_function('subbilling', 'schedule_deliveries', ARRAY['date'], 'schedule_deliveries(date)');

INSERT INTO products (code, name, tax_rate) VALUES ('dv_coffee', 'Coffee by mail', 12);
INSERT INTO plans (code, product_id, name, currency, billing_period, pricing_model, price, delivery_period) VALUES
    ('dv_2w', (SELECT id FROM products WHERE code = 'dv_coffee'), 'Coffee every 2 weeks', 'SEK', '2 weeks', 'per_unit', '149.00 SEK', '2 weeks'),
    ('dv_m', (SELECT id FROM products WHERE code = 'dv_coffee'), 'Coffee monthly, 2 deliveries', 'SEK', '1 month', 'flat', '279.00 SEK', '2 weeks'),
    ('dv_unused', (SELECT id FROM products WHERE code = 'dv_coffee'), 'Unused', 'SEK', '1 month', 'flat', '99.00 SEK', '1 month');
INSERT INTO plans (code, product_id, name, currency, billing_period, pricing_model, price, kind) VALUES
    ('dv_mug', (SELECT id FROM products WHERE code = 'dv_coffee'), 'Mug add-on', 'SEK', '2 weeks', 'flat', '10.00 SEK', 'addon');
INSERT INTO plan_delivery_items (plan_id, sku, description, quantity)
SELECT p.id, v.sku, v.descr, v.q FROM plans p
  JOIN (VALUES ('dv_2w', 'BEANS-250', 'Coffee beans 250 g', 2),
               ('dv_m', 'BEANS-500', 'Coffee beans 500 g', 1),
               ('dv_mug', 'MUG', 'Mug', 1)) v(plan, sku, descr, q) ON v.plan = p.code;

INSERT INTO accounts (external_id, name, country, currency) VALUES
    ('dv_a', 'Anna', 'SE', 'SEK'), ('dv_b', 'Bo', 'SE', 'SEK'), ('dv_c', 'Cia', 'SE', 'SEK'),
    ('dv_s', 'Sara', 'SE', 'SEK'), ('dv_m', 'Maja', 'SE', 'SEK');
SELECT set_shipping_address(id, 'Customer ' || name, 'Storgatan 1', '111 22', 'Stockholm', 'SE')
  FROM accounts WHERE external_id LIKE 'dv\_%';

-- ---------------------------------------------------------------- A: the schedule worked by hand
-- dv_2w from D (anchor D): deliveries D, D+14, D+28, ..., 2 bags per unit.
SELECT isnt(subscribe(pg_temp.acct('dv_a'), 'dv_2w', 1, pg_temp.d(0)), NULL, 'A: dv_2w from D');
SELECT results_eq($$SELECT day, quantity, city, status FROM pg_temp.sched('dv_a')$$,
                  $$VALUES (0, 2::bigint, 'Stockholm', 'planned'), (14, 2, 'Stockholm', 'planned'),
                           (28, 2, 'Stockholm', 'planned'), (42, 2, 'Stockholm', 'planned'),
                           (56, 2, 'Stockholm', 'planned'), (70, 2, 'Stockholm', 'planned'),
                           (84, 2, 'Stockholm', 'planned')$$,
                  'A: every 2 weeks from D to the horizon (90 days), 2 bags each');
SELECT is((SELECT items FROM deliveries WHERE subscription_id = pg_temp.sub('dv_a') AND delivery_date = pg_temp.d(0)),
          '[{"sku": "BEANS-250", "quantity": 2, "description": "Coffee beans 250 g"}]'::jsonb, 'A: items of a delivery');
SELECT is((SELECT bool_and(bills_per_delivery) FROM deliveries WHERE subscription_id = pg_temp.sub('dv_a')), true,
          'A: dv_2w bills per delivery (billing period = delivery period)');
SELECT is(run_billing(now()), 1, 'A: billed today: one invoice');

-- the address moves to Lund from D+30; the quantity goes to 2 from D+42; a pause [D+50, D+64);
-- D+28 skipped; the subscription ends at D+80
SELECT isnt(set_shipping_address(pg_temp.acct('dv_a'), 'Anna Berg', 'Lilla vägen 3', '222 33', 'Lund', 'SE',
                                 valid_from => pg_temp.d(30)), NULL, 'A: address Lund from D+30');
SELECT isnt(change_quantity(pg_temp.sub('dv_a'), 2, pg_temp.d(42)), NULL, 'A: quantity 2 from D+42');
SELECT isnt(pause(pg_temp.sub('dv_a'), pg_temp.d(50), pg_temp.d(64)), NULL, 'A: paused [D+50, D+64)');
CREATE TEMP TABLE skips AS SELECT skip_delivery(pg_temp.sub('dv_a'), pg_temp.d(28)) AS a28;
SELECT is(skip_delivery(pg_temp.sub('dv_a'), pg_temp.d(28)), (SELECT a28 FROM skips), 'A: skipping again returns the same record');
SELECT is(pg_temp.events('dv_a', 'delivery.skipped'), 1::bigint, 'A: delivery.skipped once');
SELECT is((SELECT payload ->> 'charge_held' FROM events WHERE subscription_id = pg_temp.sub('dv_a') AND type = 'delivery.skipped'),
          daterange(pg_temp.d(28), pg_temp.d(42))::text, 'A: the skip holds the charges of [D+28, D+42)');
-- the future period is not billed: previewed as of D+28 the key D+28 is absent, D+14 is there
SELECT results_eq($$SELECT key_start - current_date, net::text FROM preview_invoice(pg_temp.sub('dv_a'), pg_temp.d(28)) ORDER BY key_start$$,
                  $$VALUES (14, '149.00 SEK')$$, 'A: the skipped period D+28 is not billed, D+14 is');
SELECT results_eq($$SELECT key_start - current_date, net::text FROM preview_invoice(pg_temp.sub('dv_a'), pg_temp.d(42)) ORDER BY key_start$$,
                  $$VALUES (14, '149.00 SEK'), (42, '170.29 SEK')$$,
                  'A: as of D+42: D+14, not D+28, and D+42 at quantity 2 for the 8 days before the pause: 298.00 × 8 / 14 = 170.29');
SELECT isnt(cancel(pg_temp.sub('dv_a'), pg_temp.d(80)), NULL, 'A: canceled from D+80');

-- delivery.scheduled: the pick window is 3 days; D is fixed today, once
SELECT is(schedule_deliveries(pg_temp.d(0)) >= 1, true, 'schedule_deliveries(D) fixes deliveries');
SELECT is(schedule_deliveries(pg_temp.d(0)), 0, 'schedule_deliveries(D) again fixes nothing');
SELECT is(pg_temp.events('dv_a', 'delivery.scheduled'), 1::bigint, 'A: delivery.scheduled once for D');
SELECT is((SELECT payload - 'delivery_id' FROM events WHERE subscription_id = pg_temp.sub('dv_a') AND type = 'delivery.scheduled'),
          jsonb_build_object('delivery_date', pg_temp.d(0), 'plan_code', 'dv_2w', 'quantity', 2,
                             'items', '[{"sku": "BEANS-250", "quantity": 2, "description": "Coffee beans 250 g"}]'::jsonb),
          'A: delivery.scheduled payload');
SELECT is(schedule_deliveries(pg_temp.d(14)) >= 1, true, 'schedule_deliveries(D+14) fixes D+14');
SELECT is(schedule_deliveries(pg_temp.d(14)), 0, 'and again nothing');
SELECT is(pg_temp.events('dv_a', 'delivery.scheduled'), 2::bigint, 'A: delivery.scheduled once each for D and D+14');
-- a fixed delivery keeps its snapshot: an address from D+10 reaches D+28, not D+14
SELECT isnt(set_shipping_address(pg_temp.acct('dv_a'), 'Anna Berg', 'Gatan 9', '753 20', 'Uppsala', 'SE',
                                 valid_from => pg_temp.d(10)), NULL, 'A: address Uppsala from D+10');
SELECT results_eq($$SELECT day, quantity, city, status FROM pg_temp.sched('dv_a')$$,
                  $$VALUES (0, 2::bigint, 'Stockholm', 'fixed'), (14, 2, 'Stockholm', 'fixed'),
                           (28, 2, 'Uppsala', 'skipped'), (42, 4, 'Lund', 'planned'), (70, 4, 'Lund', 'planned')$$,
                  'A: by hand: D and D+14 fixed (Stockholm), D+28 skipped, D+42 quantity 4 to Lund, D+56 paused, D+70, D+84 after the end');
SELECT results_eq($$SELECT delivery_date - current_date, sku, quantity, line1, postal_code, city, country, fixed
                      FROM deliveries_due(pg_temp.d(0), pg_temp.d(90)) WHERE subscription_id = pg_temp.sub('dv_a')$$,
                  $$VALUES (0, 'BEANS-250', 2::bigint, 'Storgatan 1', '111 22', 'Stockholm', 'SE', true),
                           (14, 'BEANS-250', 2::bigint, 'Storgatan 1', '111 22', 'Stockholm', 'SE', true),
                           (42, 'BEANS-250', 4::bigint, 'Lilla vägen 3', '222 33', 'Lund', 'SE', false),
                           (70, 'BEANS-250', 4::bigint, 'Lilla vägen 3', '222 33', 'Lund', 'SE', false)$$,
                  'A: the pick list leaves the skip out');
-- skipping a fixed delivery
SELECT isnt(skip_delivery(pg_temp.sub('dv_a'), pg_temp.d(14)), NULL, 'A: skip the fixed D+14');
SELECT is((SELECT (payload ->> 'was_fixed')::boolean FROM events WHERE subscription_id = pg_temp.sub('dv_a')
            AND type = 'delivery.skipped' ORDER BY id DESC LIMIT 1), true, 'A: delivery.skipped says it was fixed');
SELECT is((SELECT status FROM deliveries WHERE subscription_id = pg_temp.sub('dv_a') AND delivery_date = pg_temp.d(14)),
          'skipped', 'A: D+14 skipped');
SELECT is((SELECT count(*) FROM deliveries_due(pg_temp.d(14), pg_temp.d(14)) WHERE subscription_id = pg_temp.sub('dv_a')),
          0::bigint, 'A: D+14 is off the pick list');
-- an add-on's goods ride along with the base plan's deliveries
SELECT isnt(add_addon(pg_temp.sub('dv_a'), 'dv_mug', 1, pg_temp.d(40)), NULL, 'A: a mug add-on from D+40');
SELECT is((SELECT items FROM deliveries WHERE subscription_id = pg_temp.sub('dv_a') AND delivery_date = pg_temp.d(42)),
          '[{"sku": "BEANS-250", "quantity": 4, "description": "Coffee beans 250 g"}, {"sku": "MUG", "quantity": 1, "description": "Mug"}]'::jsonb,
          'A: D+42 holds 4 bags and the mug');
-- the horizon
UPDATE delivery_settings SET horizon_days = 30;
SELECT is((SELECT max(delivery_date) - current_date FROM deliveries WHERE subscription_id = pg_temp.sub('dv_a')), 28,
          'a horizon of 30 days ends the view at D+28');
UPDATE delivery_settings SET horizon_days = 90;

-- ---------------------------------------------------------------- B: a payment stop
-- dv_2w from D-7: deliveries D+7, D+21, ...; suspended [D+10, D+24)
SELECT isnt(subscribe(pg_temp.acct('dv_b'), 'dv_2w', 1, pg_temp.d(-7)), NULL, 'B: dv_2w from D-7');
SELECT lives_ok($$SELECT subbilling_internal.set_subscription_status_on(pg_temp.sub('dv_b'), 'suspended', 'test', pg_temp.d(10))$$,
                'B: suspended from D+10');
SELECT results_eq($$SELECT day FROM pg_temp.sched('dv_b')$$, $$VALUES (7)$$, 'B: an open payment stop ships nothing from D+10');
SELECT lives_ok($$SELECT subbilling_internal.set_subscription_status_on(pg_temp.sub('dv_b'), 'active', 'test', pg_temp.d(24))$$,
                'B: lifted on D+24');
SELECT results_eq($$SELECT day FROM pg_temp.sched('dv_b')$$, $$VALUES (7), (35), (49), (63), (77)$$,
                  'B: D+21 falls in the payment stop [D+10, D+24)');
SELECT throws_ok($$SELECT skip_delivery(pg_temp.sub('dv_b'), pg_temp.d(21))$$, '22023',
                 format('subscription %s has no delivery on %s', pg_temp.sub('dv_b'), pg_temp.d(21)),
                 'B: a stopped date is no delivery to skip');

-- ---------------------------------------------------------------- C: cancel at the end of the period
SELECT isnt(subscribe(pg_temp.acct('dv_c'), 'dv_2w', 1, pg_temp.d(-7)), NULL, 'C: dv_2w from D-7');
SELECT results_eq($$SELECT day FROM pg_temp.sched('dv_c') LIMIT 1$$, $$VALUES (7)$$, 'C: next delivery D+7');
SELECT is(cancel(pg_temp.sub('dv_c')) IS NOT NULL, true, 'C: canceled at the end of the period');
SELECT is((SELECT cancel_at - current_date FROM subscriptions WHERE id = pg_temp.sub('dv_c')), 7, 'C: ends D+7');
SELECT is((SELECT count(*) FROM pg_temp.sched('dv_c')), 0::bigint, 'C: no delivery from the end of the paid period');

-- ---------------------------------------------------------------- S: skip charge credited
-- dv_2w × 2 from D-14: billed today [D-14, D) and [D, D+14), 298.00 each
SELECT isnt(subscribe(pg_temp.acct('dv_s'), 'dv_2w', 2, pg_temp.d(-14)), NULL, 'S: dv_2w × 2 from D-14');
SELECT ok(run_billing(now()) >= 1, 'S: billed today (with B and C)');
SELECT results_eq($$SELECT l.kind, l.net::text, l.tax::text, lower(l.period) - current_date FROM invoice_lines l
                     WHERE l.subscription_id = pg_temp.sub('dv_s') ORDER BY l.id$$,
                  $$VALUES ('recurring', '298.00 SEK', '35.76 SEK', -14), ('recurring', '298.00 SEK', '35.76 SEK', 0)$$,
                  'S: two periods of 2 × 149.00, VAT 12 %');
SELECT isnt(skip_delivery(pg_temp.sub('dv_s'), pg_temp.d(0)), NULL, 'S: skip today''s delivery (invoiced)');
SELECT is(run_billing(now()), 1, 'S: billing again makes the credit');
SELECT results_eq($$SELECT l.kind, l.net::text, l.tax::text, l.period::text FROM invoice_lines l
                     WHERE l.subscription_id = pg_temp.sub('dv_s') ORDER BY l.id OFFSET 2$$,
                  $$VALUES ('credit', '-298.00 SEK', '-35.76 SEK', daterange(pg_temp.d(0), pg_temp.d(14))::text)$$,
                  'S: the skipped period is credited exactly: -298.00 SEK, VAT -35.76 SEK');
SELECT is(run_billing(now()), 0, 'S: billing a third time changes nothing');
SELECT is(skip_delivery(pg_temp.sub('dv_s'), pg_temp.d(0)) IS NOT NULL, true, 'S: skipping again');
SELECT is(run_billing(now()), 0, 'S: ... credits nothing more');

-- ---------------------------------------------------------------- M: a plan that does not bill per delivery
SELECT isnt(subscribe(pg_temp.acct('dv_m'), 'dv_m', 1, pg_temp.d(0)), NULL, 'M: dv_m (monthly, deliveries every 2 weeks) from D');
CREATE TEMP TABLE m_before AS SELECT * FROM preview_invoice(pg_temp.sub('dv_m'), pg_temp.d(70));
SELECT isnt(skip_delivery(pg_temp.sub('dv_m'), pg_temp.d(14)), NULL, 'M: skip D+14');
SELECT is((SELECT held FROM delivery_records WHERE subscription_id = pg_temp.sub('dv_m')), NULL, 'M: nothing held');
SELECT set_eq($$SELECT * FROM preview_invoice(pg_temp.sub('dv_m'), pg_temp.d(70))$$, $$SELECT * FROM m_before$$,
              'M: the charges are unchanged by the skip');
SELECT is((SELECT (payload -> 'charge_held') FROM events WHERE subscription_id = pg_temp.sub('dv_m') AND type = 'delivery.skipped'),
          'null'::jsonb, 'M: delivery.skipped holds no charge');

-- ---------------------------------------------------------------- the worker fixes deliveries
UPDATE delivery_settings SET pick_window_days = 7;
SELECT lives_ok($$SELECT * FROM run_worker_cycle(now())$$, 'run_worker_cycle');
SELECT is(pg_temp.events('dv_b', 'delivery.scheduled'), 1::bigint, 'B: the worker cycle fixed D+7 (window 7 days)');
SELECT lives_ok($$SELECT * FROM run_worker_cycle(now())$$, 'run_worker_cycle again');
SELECT is(pg_temp.events('dv_b', 'delivery.scheduled'), 1::bigint, 'B: still once');

-- ---------------------------------------------------------------- bad input
SELECT throws_ok($$SELECT skip_delivery(pg_temp.sub('dv_a'), pg_temp.d(-1))$$, '55000', NULL, 'skip a past date: 55000');
SELECT throws_ok($$SELECT skip_delivery(pg_temp.sub('dv_a'), pg_temp.d(1))$$, '22023', NULL, 'skip a day without delivery: 22023');
SELECT throws_ok($$SELECT skip_delivery(pg_temp.sub('dv_a'), pg_temp.d(56))$$, '22023', NULL, 'skip a paused delivery: 22023');
SELECT throws_ok($$SELECT skip_delivery(pg_temp.sub('dv_a'), NULL)$$, '22023', NULL, 'skip NULL: 22023');
SELECT throws_ok($$SELECT skip_delivery(-1, pg_temp.d(0))$$, '42704', NULL, 'skip on an unknown subscription: 42704');
SELECT throws_ok($$SELECT * FROM deliveries_due(pg_temp.d(5), pg_temp.d(0))$$, '22023', NULL, 'deliveries_due backwards: 22023');
SELECT throws_ok($$SELECT * FROM deliveries_due(pg_temp.d(0), pg_temp.d(400))$$, '22023', NULL, 'deliveries_due over a year: 22023');
SELECT throws_ok($$SELECT * FROM deliveries_due(NULL, pg_temp.d(0))$$, '22023', NULL, 'deliveries_due NULL: 22023');
SELECT throws_ok($$SELECT * FROM delivery_schedule(pg_temp.d(5), pg_temp.d(0))$$, '22023', NULL, 'delivery_schedule backwards: 22023');
SELECT results_eq($$SELECT delivery_date - current_date, status FROM delivery_schedule(pg_temp.d(90), pg_temp.d(120))
                     WHERE subscription_id = pg_temp.sub('dv_b')$$,
                  $$VALUES (91, 'planned'), (105, 'planned'), (119, 'planned')$$, 'delivery_schedule beyond the horizon');
SELECT throws_ok($$SELECT set_shipping_address(pg_temp.acct('dv_a'), 'X', 'Y', '1', 'Z', 'SE', valid_from => pg_temp.d(-1))$$,
                 '22023', NULL, 'an address in the past: 22023');
SELECT throws_ok($$SELECT set_shipping_address(pg_temp.acct('dv_a'), 'X', 'Y', '1', 'Z', 'XX')$$, '22023', NULL, 'unknown country: 22023');
SELECT throws_ok($$SELECT set_shipping_address(pg_temp.acct('dv_a'), ' ', 'Y', '1', 'Z', 'SE')$$, '22023', NULL, 'empty name: 22023');
SELECT throws_ok($$SELECT set_shipping_address(-1, 'X', 'Y', '1', 'Z', 'SE')$$, '42704', NULL, 'unknown account: 42704');
SELECT throws_ok($$INSERT INTO plans (code, product_id, name, currency, billing_period, price, kind, delivery_period)
                    VALUES ('dv_addon2', (SELECT id FROM products WHERE code = 'dv_coffee'), 'x', 'SEK', '1 month', '1.00 SEK', 'addon', '1 month')$$,
                 '23514', NULL, 'an add-on has no delivery period: 23514');
SELECT throws_ok($$UPDATE plans SET delivery_period = '1 week' WHERE code = 'dv_2w'$$, '55000', NULL, 'the cadence of a plan in use is fixed: 55000');
SELECT lives_ok($$UPDATE plans SET delivery_period = '2 weeks' WHERE code = 'dv_unused'$$, 'the cadence of an unused plan may change');
SELECT throws_ok($$INSERT INTO plan_delivery_items VALUES ((SELECT id FROM plans WHERE code = 'dv_m'), 'X', 'x', 0)$$, '23514', NULL, 'quantity 0: 23514');
SELECT throws_ok($$UPDATE delivery_settings SET horizon_days = 0$$, '23514', NULL, 'horizon 0: 23514');

-- ---------------------------------------------------------------- privileges
SELECT ok(has_table_privilege('subbilling_operator', 'subbilling.deliveries', 'SELECT'), 'operator reads deliveries');
SELECT ok(NOT has_table_privilege('subbilling_reader', 'subbilling.deliveries', 'SELECT'), 'reader does not (addresses)');
SELECT ok(has_function_privilege('subbilling_operator', 'subbilling.skip_delivery(bigint, date)', 'EXECUTE')
          AND has_function_privilege('subbilling_operator', 'subbilling.deliveries_due(date, date)', 'EXECUTE'),
          'operator skips and picks');
SELECT ok(NOT has_function_privilege('public', 'subbilling.skip_delivery(bigint, date)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling.deliveries_due(date, date)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling.schedule_deliveries(date)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling.delivery_schedule(date, date)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling_internal.delivery_schedule(date, date, bigint)', 'EXECUTE'),
          'PUBLIC executes none of them');
SET LOCAL ROLE subbilling_operator;
SELECT is((SELECT count(*) FROM subbilling.deliveries WHERE subscription_id = pg_temp.sub('dv_a')), 5::bigint,
          'as operator: the view works');
SELECT throws_ok($$INSERT INTO subbilling.delivery_records (account_id, subscription_id, delivery_date, status) VALUES (1, 1, current_date, 'fixed')$$,
                 '42501', NULL, 'operator cannot write delivery records');
RESET ROLE;
SET LOCAL ROLE subbilling_reader;
SELECT throws_ok($$SELECT * FROM subbilling.deliveries$$, '42501', NULL, 'reader: permission denied');
SELECT throws_ok($$SELECT * FROM subbilling.deliveries_due(current_date, current_date)$$, '42501', NULL, 'reader: no pick list');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
