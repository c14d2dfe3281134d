-- record_usage: usage on the item in effect on the account's local date,
-- idempotent on its key; bad input refused with nothing written.
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(57);
\ir 300_fixture.psql

SELECT has_function('subbilling', 'record_usage', ARRAY['bigint', 'text', 'numeric', 'timestamp with time zone', 'text'], 'record_usage signature');
SELECT function_returns('subbilling', 'record_usage', ARRAY['bigint', 'text', 'numeric', 'timestamp with time zone', 'text'], 'bigint', 'returns the usage id');

SELECT isnt(subscribe(pg_temp.acct('t_se'), 't_basic', 1, pg_temp.d(-20)), NULL, 'U: t_basic from d(-20)');
SELECT isnt(add_addon(pg_temp.sub('t_se'), 't_api', 1, pg_temp.d(-10)), NULL, 'U: metered API add-on from d(-10)');
SELECT isnt(subscribe(pg_temp.acct('t_se2'), 't_basic', 1, pg_temp.d(-20)), NULL, 'V: t_basic');
SELECT isnt(add_addon(pg_temp.sub('t_se2'), 't_api', 1, pg_temp.d(-10)), NULL, 'V: metered API add-on');
CREATE TEMP TABLE mark AS SELECT pg_temp.last_event_id() AS before;

-- 23:30 UTC yesterday is already today in Stockholm (UTC+1 or +2)
CREATE TEMP TABLE t AS SELECT (pg_temp.d(-1)::text || ' 23:30:00+00')::timestamptz AS late,
                              (pg_temp.d(-5)::text || ' 12:00:00+00')::timestamptz AS noon;
CREATE TEMP TABLE ids AS SELECT record_usage(pg_temp.sub('t_se'), 't_api', 120, (SELECT late FROM t), 'req-1') AS u1;
SELECT results_eq($$SELECT subscription_id, plan_id, quantity, at, usage_date, idempotency_key,
                           item_id = (SELECT i.id FROM subscription_items i WHERE i.subscription_id = u.subscription_id AND i.plan_id = u.plan_id)
                      FROM usage u WHERE id = (SELECT u1 FROM ids)$$,
                  $$VALUES (pg_temp.sub('t_se'), pg_temp.plan('t_api'), 120::numeric, (SELECT late FROM t), current_date, 'req-1'::text, true)$$,
                  'the usage row: on the add-on item, dated by the account''s time zone');
SELECT is(record_usage(pg_temp.sub('t_se'), 't_api', 120, (SELECT late FROM t), 'req-1'), (SELECT u1 FROM ids),
          'a repeat with the same key and values returns the same id');
SELECT is(record_usage(pg_temp.sub('t_se'), 't_api', 120.000, (SELECT late FROM t), 'req-1'), (SELECT u1 FROM ids),
          'numerically equal quantity: still the same usage');
SELECT is((SELECT count(*)::int FROM usage WHERE subscription_id = pg_temp.sub('t_se')), 1, 'and writes nothing');
SELECT isnt(record_usage(pg_temp.sub('t_se'), 't_api', 0.5, (SELECT noon FROM t), 'req-2'), (SELECT u1 FROM ids), 'a new key is new usage (fractions allowed)');
SELECT isnt(record_usage(pg_temp.sub('t_se2'), 't_api', 120, (SELECT late FROM t), 'req-1'), (SELECT u1 FROM ids), 'keys are per subscription');
SELECT isnt(record_usage(pg_temp.sub('t_se'), 't_basic', 3, (SELECT noon FROM t), 'seats-1'), NULL,
            'usage of the base plan is kept too (for insight: included units, upsell)');
SELECT results_eq($$SELECT usage_date, quantity FROM usage WHERE subscription_id = pg_temp.sub('t_se') ORDER BY id$$,
                  $$VALUES (current_date, 120::numeric), (pg_temp.d(-5), 0.5), (pg_temp.d(-5), 3)$$, 'U''s usage');
SELECT is(pg_temp.last_event_id(), (SELECT before FROM mark), 'usage writes no events');

-- the same key with other values
SELECT pg_temp.refused($$SELECT record_usage(pg_temp.sub('t_se'), 't_api', 121, (SELECT late FROM t), 'req-1')$$, '23505',
                       'idempotency key "req-1" was used with other values', 'record_usage: same key, other quantity');
SELECT pg_temp.refused($$SELECT record_usage(pg_temp.sub('t_se'), 't_api', 120, (SELECT noon FROM t), 'req-1')$$, '23505',
                       'idempotency key "req-1" was used with other values', 'record_usage: same key, other time');
SELECT pg_temp.refused($$SELECT record_usage(pg_temp.sub('t_se'), 't_basic', 120, (SELECT late FROM t), 'req-1')$$, '23505',
                       'idempotency key "req-1" was used with other values', 'record_usage: same key, other plan');
-- bad input
SELECT pg_temp.refused($$SELECT record_usage(pg_temp.sub('t_se'), 't_api', 0, now(), 'req-9')$$, '22023', 'quantity must be positive', 'record_usage: quantity 0');
SELECT pg_temp.refused($$SELECT record_usage(pg_temp.sub('t_se'), 't_api', -5, now(), 'req-9')$$, '22023', 'quantity must be positive', 'record_usage: negative quantity');
SELECT pg_temp.refused($$SELECT record_usage(pg_temp.sub('t_se'), 't_api', NULL, now(), 'req-9')$$, '22023', 'quantity must be positive', 'record_usage: NULL quantity');
SELECT pg_temp.refused($$SELECT record_usage(pg_temp.sub('t_se'), 't_api', 1, NULL, 'req-9')$$, '22023', 'at must be a finite timestamp', 'record_usage: NULL time');
SELECT pg_temp.refused($$SELECT record_usage(pg_temp.sub('t_se'), 't_api', 1, 'infinity', 'req-9')$$, '22023', 'at must be a finite timestamp', 'record_usage: infinite time');
SELECT pg_temp.refused($$SELECT record_usage(pg_temp.sub('t_se'), 't_api', 1, now(), NULL)$$, '22023', 'idempotency_key must be a text of 1 to 255 characters', 'record_usage: NULL key');
SELECT pg_temp.refused($$SELECT record_usage(pg_temp.sub('t_se'), 't_api', 1, now(), '')$$, '22023', 'idempotency_key must be a text of 1 to 255 characters', 'record_usage: empty key');
SELECT pg_temp.refused($$SELECT record_usage(-1, 't_api', 1, now(), 'req-9')$$, '42704', 'subscription -1 does not exist', 'record_usage: unknown subscription');
SELECT pg_temp.refused($$SELECT record_usage(pg_temp.sub('t_se'), 't_nope', 1, now(), 'req-9')$$, '42704', 'unknown plan code "t_nope"', 'record_usage: unknown plan');
SELECT pg_temp.refused($$SELECT record_usage(pg_temp.sub('t_se'), 't_storage', 1, (SELECT noon FROM t), 'req-9')$$, '22023',
                       format('subscription %s has no item of plan "t_storage" on %s', pg_temp.sub('t_se'), pg_temp.d(-5)), 'record_usage: a plan the subscription does not have');
SELECT pg_temp.refused($$SELECT record_usage(pg_temp.sub('t_se'), 't_api', 1, (pg_temp.d(-15)::text || ' 12:00+00')::timestamptz, 'req-9')$$, '22023',
                       format('subscription %s has no item of plan "t_api" on %s', pg_temp.sub('t_se'), pg_temp.d(-15)), 'record_usage: before the add-on began');

-- absurd quantities and dates
SELECT pg_temp.refused($$SELECT record_usage(pg_temp.sub('t_se'), 't_api', 'NaN', now(), 'req-9')$$, '22023', 'usage quantity NaN is out of range', 'record_usage: NaN');
SELECT pg_temp.refused($$SELECT record_usage(pg_temp.sub('t_se'), 't_api', 'Infinity', now(), 'req-9')$$, '22023', 'usage quantity Infinity is out of range', 'record_usage: Infinity');
SELECT pg_temp.refused($$SELECT record_usage(pg_temp.sub('t_se'), 't_api', 1e300, now(), 'req-9')$$, '22023', NULL, 'record_usage: 1e300');
SELECT isnt(record_usage(pg_temp.sub('t_se'), 't_api', 1000000000, now(), 'req-max'), NULL, 'record_usage: the bound itself, 1000000000, is taken');
SELECT throws_like($$SELECT record_usage(pg_temp.sub('t_se'), 't_api', 1, '1999-12-31 12:00+00', 'req-9')$$,
                   'at 1999-12-31 is outside the accepted dates', 'record_usage: before 2000-01-01');
SELECT throws_like($$SELECT record_usage(pg_temp.sub('t_se'), 't_api', 1, now() + interval '11 years', 'req-9')$$,
                   'at % is outside the accepted dates', 'record_usage: more than 10 years ahead');

-- after a cancellation: usage reported once the subscription has ended is
-- refused (its final invoice is made; it would never be billed)
SELECT isnt(cancel(pg_temp.sub('t_se'), pg_temp.d(-2)), NULL, 'U canceled on d(-2)');
SELECT pg_temp.refused($$SELECT record_usage(pg_temp.sub('t_se'), 't_api', 7, (pg_temp.d(-3)::text || ' 12:00+00')::timestamptz, 'late-1')$$, '55000',
                       format('subscription %s ended on %s; usage recorded after its end is refused', pg_temp.sub('t_se'), pg_temp.d(-2)),
                       'usage dated before the end, reported after it: refused');
SELECT pg_temp.refused($$SELECT record_usage(pg_temp.sub('t_se'), 't_api', 1, (pg_temp.d(-2)::text || ' 12:00+00')::timestamptz, 'late-2')$$, '55000',
                       format('subscription %s ended on %s; usage recorded after its end is refused', pg_temp.sub('t_se'), pg_temp.d(-2)), 'record_usage: after the end');

SELECT * FROM finish();
ROLLBACK;
