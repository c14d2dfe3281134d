-- aging_buckets: the aging buckets of one kept row (ar_aging calls it
-- per row; test/pgtap/688_kpi_kept.sql compares ar_aging with its
-- definition over random receivables).  Here: each bucket's edges, the
-- decimals of the currency, and the refusals, with their SQLSTATEs.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
SELECT plan(14);

-- 100.00 due 2025-01-10, 20.00 due 2025-02-15, 3.00 without a due date:
-- cum_minor = {0, 10000, 12000}
CREATE FUNCTION pg_temp.b(today date, cur text DEFAULT 'SEK') RETURNS text LANGUAGE sql AS $$
    SELECT concat_ws(' ', a.current, a.overdue_1_30, a.overdue_31_60, a.overdue_61_90, a.overdue_90_plus, a.total)
      FROM subbilling.aging_buckets('{2025-01-10,2025-02-15}', '{0,10000,12000}', 300, today, cur) a
$$;
SELECT is(pg_temp.b('2025-01-10'), '120.00 0.00 0.00 0.00 0.00 123.00', 'on the first due date: all current (due today is not overdue)');
SELECT is(pg_temp.b('2025-01-11'), '20.00 100.00 0.00 0.00 0.00 123.00', 'a day later: 1 day past due');
SELECT is(pg_temp.b('2025-02-09'), '20.00 100.00 0.00 0.00 0.00 123.00', '30 days past due: still 1-30');
SELECT is(pg_temp.b('2025-02-10'), '20.00 0.00 100.00 0.00 0.00 123.00', '31 days: 31-60');
SELECT is(pg_temp.b('2025-03-12'), '0.00 20.00 0.00 100.00 0.00 123.00', '61 days: 61-90 (the second item 25 days: 1-30)');
SELECT is(pg_temp.b('2025-04-11'), '0.00 0.00 20.00 0.00 100.00 123.00', '91 days: over 90 (the second item 55 days: 31-60)');
SELECT is(pg_temp.b('2025-01-01', 'JPY'), '12000 0 0 0 0 12300', 'the currency''s decimals (JPY has none)');
SELECT is((SELECT concat_ws(' ', a.current, a.total) FROM subbilling.aging_buckets('{}', '{0}', -250, '2025-01-01', 'EUR') a),
          '0.00 -2.50', 'no dated item: the undated amount in the total only');

SELECT throws_ok($$ SELECT subbilling.aging_buckets('{2025-02-01,2025-01-01}', '{0,1,2}', 0, '2025-03-01', 'SEK') $$,
                 '22023', 'due_dates must be strictly ascending', 'due dates out of order are refused');
SELECT throws_ok($$ SELECT subbilling.aging_buckets('{2025-02-01}', '{0}', 0, '2025-03-01', 'SEK') $$,
                 '22023', 'cum_minor must have one element more than due_dates', 'running totals of the wrong length are refused');
SELECT throws_ok($$ SELECT subbilling.aging_buckets('{2025-02-01}', '{0,NULL}', 0, '2025-03-01', 'SEK') $$,
                 '22004', 'cum_minor must not contain nulls', 'a null running total is refused');
SELECT throws_ok($$ SELECT subbilling.aging_buckets('{2025-02-01,2025-03-01}', '{0,9223372036854775807,-2}', 0, '2025-02-02', 'SEK') $$,
                 '22003', 'amount out of range', 'a bucket past bigint is refused');
SELECT throws_ok($$ SELECT subbilling.aging_buckets('{2025-02-01}', '{0,1}', 0, '2025-03-01', 'XXX') $$,
                 '22023', 'unknown currency code "XXX"', 'an unknown currency is refused');
SELECT ok(has_function_privilege('subbilling_reader', 'subbilling.aging_buckets(date[], bigint[], bigint, date, text)', 'EXECUTE')
          AND NOT (SELECT prosecdef FROM pg_proc WHERE oid = 'subbilling.aging_buckets(date[], bigint[], bigint, date, text)'::regprocedure),
          'a pure function of its arguments that ar_aging''s readers execute as themselves');

SELECT * FROM finish();
ROLLBACK;
