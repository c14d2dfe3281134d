-- Grandfathering: a plan in use keeps its price; migrate_subscriptions moves
-- its subscribers to a new plan from a date, with history and events.
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(32);
\ir 300_fixture.psql

SELECT has_function('subbilling', 'migrate_subscriptions', ARRAY['text', 'text', 'date'], 'migrate_subscriptions(from_plan, to_plan, effective)');
SELECT function_returns('subbilling', 'migrate_subscriptions', ARRAY['text', 'text', 'date'], 'integer', 'returns how many');

INSERT INTO accounts (external_id, name, country, currency) VALUES ('t_x1', 'X1', 'SE', 'SEK');
CREATE TEMP TABLE subs (name text PRIMARY KEY, id bigint);
INSERT INTO subs VALUES
    ('S1', subscribe(pg_temp.acct('t_se'),  't_legacy', 2, pg_temp.d(-20))),
    ('S2', subscribe(pg_temp.acct('t_se2'), 't_legacy', 1, pg_temp.d(-5))),
    ('S3', subscribe(pg_temp.acct('t_se3'), 't_legacy', 1, pg_temp.d(-20))),
    ('S4', subscribe(pg_temp.acct('t_x1'),  't_basic',  1, pg_temp.d(-20)));
CREATE FUNCTION pg_temp.s(n text) RETURNS bigint LANGUAGE sql STABLE RETURN (SELECT id FROM subs WHERE name = n);
SELECT isnt(cancel(pg_temp.s('S2'), pg_temp.d(20)), NULL, 'S2 ends on d(20)');
SELECT isnt(cancel(pg_temp.s('S3'), pg_temp.d(-1)), NULL, 'S3 ended yesterday');
SELECT isnt(add_addon(pg_temp.s('S1'), 't_support', 3, pg_temp.d(-10)), NULL, 'S1 has t_support x3');

-- the price stays: grandfathering
SELECT throws_ok($$UPDATE plans SET price = '90.00 SEK' WHERE code = 't_legacy'$$, '55000',
                 'plan "t_legacy" is in use and its price fields cannot change', 'the legacy price cannot be raised in place');
INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price)
SELECT 't_legacy2', product_id, 'Legacy (new price)', billing_period, pricing_model, '90.00 SEK' FROM plans WHERE code = 't_legacy';
INSERT INTO plans (code, product_id, name, kind, billing_period, pricing_model, price)
SELECT 't_support2', product_id, 'Support (new price)', 'addon', billing_period, pricing_model, '40.00 SEK' FROM plans WHERE code = 't_support';
UPDATE plans SET active = false WHERE code = 't_legacy';
SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_x1'), 't_legacy')$$, '55000', 'plan "t_legacy" is not active',
                       'a retired plan takes no new subscribers');

CREATE TEMP TABLE mark AS SELECT pg_temp.last_event_id() AS before;
SELECT is(migrate_subscriptions('t_legacy', 't_legacy2', pg_temp.d(5)), 2, 'S1 and S2 move on d(5); S3 had ended, S4 is on another plan');
SELECT results_eq($$SELECT s.name, h.plan_code, h.quantity, h.validity, h.reason
                      FROM subs s CROSS JOIN LATERAL subscription_history(s.id) h
                     WHERE h.kind = 'base' ORDER BY s.name, h.valid_from$$,
                  $$VALUES ('S1'::text, 't_legacy'::text, 2, daterange(pg_temp.d(-20), pg_temp.d(5)), 'subscribe'::text),
                           ('S1', 't_legacy2', 2, daterange(pg_temp.d(5), NULL), 'migrate'),
                           ('S2', 't_legacy', 1, daterange(pg_temp.d(-5), pg_temp.d(5)), 'subscribe'),
                           ('S2', 't_legacy2', 1, daterange(pg_temp.d(5), pg_temp.d(20)), 'migrate'),
                           ('S3', 't_legacy', 1, daterange(pg_temp.d(-20), pg_temp.d(-1)), 'subscribe'),
                           ('S4', 't_basic', 1, daterange(pg_temp.d(-20), NULL), 'subscribe')$$,
                  'history: the old plan until d(5), the new one after (until S2''s end)');
SELECT results_eq($$SELECT s.name, e.type, e.payload->>'change', (e.payload->>'effective')::date,
                           e.payload->'old'->>'plan', e.payload->'old'->>'price', e.payload->'new'->>'plan', e.payload->'new'->>'price',
                           (e.payload->'new'->>'quantity')::int
                      FROM events e JOIN subs s ON s.id = e.subscription_id
                     WHERE e.id > (SELECT before FROM mark) ORDER BY e.id$$,
                  $$VALUES ('S1'::text, 'subscription.changed'::text, 'migrated'::text, pg_temp.d(5), 't_legacy'::text, '80.00 SEK'::text, 't_legacy2'::text, '90.00 SEK'::text, 2),
                           ('S2', 'subscription.changed', 'migrated', pg_temp.d(5), 't_legacy', '80.00 SEK', 't_legacy2', '90.00 SEK', 1)$$,
                  'one subscription.changed (migrated) per subscription, old and new prices');
SELECT is(migrate_subscriptions('t_legacy', 't_legacy2', pg_temp.d(5)), 0, 'again: nobody left on t_legacy on d(5)');
SELECT is(subscribe(pg_temp.acct('t_x1'), 't_legacy2') IS NOT NULL, true, 'the new plan takes subscribers');

-- add-ons migrate within their kind
SELECT is(migrate_subscriptions('t_support', 't_support2', pg_temp.d(5)), 1, 'the t_support add-on moves to t_support2');
SELECT results_eq($$SELECT h.plan_code, h.quantity, h.validity, h.reason, (SELECT r.plan_code FROM subscription_item_history r WHERE r.item_id = h.replaces_id)
                      FROM subscription_history(pg_temp.s('S1')) h WHERE h.kind = 'addon'$$,
                  $$VALUES ('t_support'::text, 3, daterange(pg_temp.d(-10), pg_temp.d(5)), 'add_addon'::text, NULL::text),
                           ('t_support2', 3, daterange(pg_temp.d(5), NULL), 'migrate', 't_support')$$,
                  'the add-on chain: closed, and the new add-on item from d(5) replacing it');

-- bad input: clear errors, nothing written
SELECT pg_temp.refused($$SELECT migrate_subscriptions('t_basic', 't_basic', current_date)$$, '22023',
                       'from_plan and to_plan are the same plan "t_basic"', 'migrate: same plan');
SELECT pg_temp.refused($$SELECT migrate_subscriptions('t_basic', 't_support', current_date)$$, '22023',
                       'plan "t_basic" is a base plan but plan "t_support" is an add-on plan', 'migrate: base to add-on');
SELECT pg_temp.refused($$SELECT migrate_subscriptions('t_basic', 't_eur', current_date)$$, '22000',
                       'plan "t_basic" is priced in SEK and plan "t_eur" in EUR', 'migrate: another currency');
SELECT pg_temp.refused($$SELECT migrate_subscriptions('t_basic', 't_retired', current_date)$$, '55000',
                       'plan "t_retired" is not active', 'migrate: to an inactive plan');
SELECT pg_temp.refused($$SELECT migrate_subscriptions('t_nope', 't_basic', current_date)$$, '42704',
                       'unknown plan code "t_nope"', 'migrate: unknown from_plan');
SELECT pg_temp.refused($$SELECT migrate_subscriptions('t_basic', 't_nope', current_date)$$, '42704',
                       'unknown plan code "t_nope"', 'migrate: unknown to_plan');
SELECT pg_temp.refused($$SELECT migrate_subscriptions('t_basic', 't_pro', NULL)$$, '22023',
                       'effective must be a finite date', 'migrate: NULL date');
SELECT isnt(change_quantity(pg_temp.s('S4'), 2, pg_temp.d(-1)), NULL, 'S4 changed quantity yesterday');
SELECT pg_temp.refused($$SELECT migrate_subscriptions('t_basic', 't_pro', pg_temp.d(-2))$$, '22023',
                       format('effective date %s is before a change that took effect on %s', pg_temp.d(-2), pg_temp.d(-1)),
                       'migrate: back past a change that took effect, all or nothing');

SELECT * FROM finish();
ROLLBACK;
