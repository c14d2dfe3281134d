-- billing_period and the period functions: catalogue, behaviour and properties
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL datestyle = 'ISO, YMD';
SELECT plan(65);

-- catalogue: type, operators, operator classes, functions and their labels
SELECT has_type('subbilling', 'billing_period', 'type billing_period exists');
SELECT has_operator('billing_period', 'subbilling', op, 'billing_period', 'boolean',
                    'operator billing_period ' || op || ' billing_period exists')
  FROM unnest(ARRAY['=', '<>', '<', '<=', '>', '>=']) AS op;
SELECT has_opclass('subbilling', 'billing_period_ops', 'btree operator class billing_period_ops exists');
SELECT has_opclass('subbilling', 'billing_period_hash_ops', 'hash operator class billing_period_hash_ops exists');
SELECT has_cast('billing_period', 'interval', 'cast billing_period -> interval exists');
SELECT function_returns('subbilling', 'period_start', ARRAY['date', 'billing_period', 'integer'], 'date');
SELECT function_returns('subbilling', 'period_of', ARRAY['date', 'billing_period', 'date'], 'daterange');
SELECT function_returns('subbilling', 'period_index', ARRAY['date', 'billing_period', 'date'], 'integer');
SELECT function_returns('subbilling', 'periods_per_year', ARRAY['billing_period'], 'numeric');
SELECT volatility_is('subbilling', f, args, 'immutable', f || ' is IMMUTABLE')
  FROM (VALUES ('period_start', ARRAY['date', 'billing_period', 'integer']::name[]),
               ('period_of', ARRAY['date', 'billing_period', 'date']::name[]),
               ('period_index', ARRAY['date', 'billing_period', 'date']::name[]),
               ('periods_per_year', ARRAY['billing_period']::name[])) AS t(f, args);
SELECT is_strict('subbilling', f, args, f || ' is STRICT')
  FROM (VALUES ('period_start', ARRAY['date', 'billing_period', 'integer']::name[]),
               ('period_of', ARRAY['date', 'billing_period', 'date']::name[]),
               ('period_index', ARRAY['date', 'billing_period', 'date']::name[]),
               ('periods_per_year', ARRAY['billing_period']::name[])) AS t(f, args);
SELECT is((SELECT count(*) FROM pg_proc
            WHERE pronamespace = 'subbilling'::regnamespace
              AND (proname LIKE 'billing_period%' OR proname LIKE 'period%')
              AND proparallel <> 's'), 0::bigint,
          'every billing_period and period function is PARALLEL SAFE');
SELECT is((SELECT count(*) FROM pg_proc
            WHERE pronamespace = 'subbilling'::regnamespace
              AND (proname LIKE 'billing_period%' OR proname LIKE 'period%')
              AND obj_description(oid, 'pg_proc') IS NULL), 0::bigint,
          'every billing_period and period function has a comment');
SELECT is((SELECT typlen::int || ' ' || typbyval FROM pg_type WHERE oid = 'billing_period'::regtype),
          '8 true', 'billing_period is 8 bytes, passed by value');

-- behaviour: text forms
SELECT is('14 days'::billing_period::text, '2 weeks', '14 days is output as 2 weeks');
SELECT is('P12M'::billing_period::text, '1 year', 'P12M is output as 1 year');
SELECT is('semiannually'::billing_period::text, '6 months', 'semiannually is 6 months');
SELECT ok('12 months'::billing_period = '1 year', '12 months = 1 year');
SELECT ok('1 month'::billing_period <> '30 days', '1 month <> 30 days');
SELECT throws_ok($$SELECT 'every month'::subbilling.billing_period$$, '22P02',
                 'invalid input syntax for type billing_period: "every month"', 'garbage is 22P02');
SELECT throws_ok($$SELECT 'P1Y2M'::subbilling.billing_period$$, '22P02',
                 'invalid input syntax for type billing_period: "P1Y2M"', 'mixed ISO 8601 is 22P02');
SELECT throws_ok($$SELECT '0 weeks'::subbilling.billing_period$$, '22023',
                 'invalid billing period: "0 weeks"', 'a zero count is 22023');
SELECT throws_ok($$SELECT '1001 years'::subbilling.billing_period$$, '22003',
                 'value "1001 years" is out of range for type billing_period', 'more than 1000 years is 22003');

-- behaviour: boundaries
SELECT results_eq($$SELECT subbilling.period_start('2024-01-31', 'monthly', n) FROM generate_series(1, 3) AS n$$,
                  $$VALUES ('2024-02-29'::date), ('2024-03-31'), ('2024-04-30')$$,
                  'month-end anchor 2024-01-31 monthly: 2024-02-29, 2024-03-31, 2024-04-30');
SELECT results_eq($$SELECT subbilling.period_start('2024-02-29', 'yearly', n) FROM generate_series(1, 4) AS n$$,
                  $$VALUES ('2025-02-28'::date), ('2026-02-28'), ('2027-02-28'), ('2028-02-29')$$,
                  'Feb 29 yearly: Feb 28 in common years, Feb 29 again in 2028');
SELECT is(period_start('2024-01-31', 'monthly', -1), '2023-12-31'::date, 'negative n goes back');
SELECT is(period_start('2024-01-01', '2 weeks', 3), '2024-02-12'::date, 'day-based: anchor + n * days');
SELECT is(period_of('2024-01-31', 'monthly', '2024-03-30'), '[2024-02-29,2024-03-31)'::daterange,
          'period_of inside a clamped month');
SELECT is(period_of('2024-01-31', 'monthly', '2023-12-30'), '[2023-11-30,2023-12-31)'::daterange,
          'period_of before the anchor');
SELECT is(period_index('2024-01-31', 'monthly', '2023-12-30'), -2, 'period_index before the anchor');
SELECT is(periods_per_year('quarterly'), 4::numeric, 'quarterly: 4 a year');
SELECT is(periods_per_year('2 weeks'), 26::numeric, 'every 2 weeks: 26 a year');
SELECT is(periods_per_year('10 days'), 36.5, 'every 10 days: 36.5 a year');
SELECT throws_ok($$SELECT subbilling.period_start('infinity', 'monthly', 1)$$, '22023',
                 'anchor date must be finite', 'infinite anchor is 22023');
SELECT throws_ok($$SELECT subbilling.period_start('5874897-12-01', 'monthly', 1)$$, '22008',
                 'date out of range', 'a boundary past the last date is 22008');
SELECT throws_ok($$SELECT subbilling.period_of('2024-01-01', 'monthly', '-infinity')$$, '22023',
                 'date must be finite', 'infinite d is 22023');

-- PROPERTY: for every anchor day 2023-01-01 .. 2028-12-31, cadences 1, 3 and 12 months and
-- n in -12 .. 24, period_start is the anchor's month advanced by n periods, its day clamped
-- to the length of that month (computed independently: integer months, make_date, least)
SELECT is(
    (SELECT count(*) FILTER (WHERE got = want)
       FROM (SELECT period_start(a::date, (m || ' months')::billing_period, n) AS got,
                    make_date(t.y, t.mo, least(extract(day FROM a)::int, t.dim)) AS want
               FROM generate_series('2023-01-01'::date, '2028-12-31', '1 day') AS a,
                    unnest(ARRAY[1, 3, 12]) AS m,
                    generate_series(-12, 24) AS n,
                    LATERAL (SELECT extract(year FROM a)::int * 12 + extract(month FROM a)::int - 1
                                    + m * n AS total) AS c,
                    LATERAL (SELECT c.total / 12 AS y, c.total % 12 + 1 AS mo,
                                    (make_date(c.total / 12, c.total % 12 + 1, 1) + interval '1 month')::date
                                    - make_date(c.total / 12, c.total % 12 + 1, 1) AS dim) AS t) AS s),
    (2192 * 3 * 37)::bigint,
    'PROPERTY period_start = anchor advanced n periods, day clamped: 2192 anchor days x 3 cadences x 37 n');

-- PROPERTY: day-based periods are plain day arithmetic
SELECT is(
    (SELECT count(*) FILTER (WHERE period_start(a::date, (k || ' days')::billing_period, n) = a::date + k * n)
       FROM generate_series('2023-01-01'::date, '2028-12-31', '1 day') AS a,
            unnest(ARRAY[1, 7, 10, 14, 30]) AS k,
            generate_series(-5, 5) AS n),
    (2192 * 5 * 11)::bigint,
    'PROPERTY period_start of day-based periods = anchor + n * days: 2192 x 5 x 11');

-- PROPERTY: period_of(anchor, p, d) holds d, its bounds are the consecutive boundaries
-- period_index and period_index + 1, and the index is negative exactly before the anchor
SELECT is(
    (SELECT count(*) FILTER (WHERE lower(r) <= d AND d < upper(r)
                               AND lower(r) = period_start(anchor, p, i)
                               AND upper(r) = period_start(anchor, p, i + 1)
                               AND (i >= 0) = (d >= anchor)
                               AND NOT lower_inf(r) AND lower_inc(r) AND NOT upper_inc(r))
       FROM generate_series('2023-01-01'::date, '2028-12-31', '1 day') AS a,
            unnest('{1 month, 3 months, 1 year, 2 weeks, 10 days}'::billing_period[]) AS p,
            generate_series(-15, 15) AS k,
            LATERAL (SELECT a::date AS anchor, a::date + 29 * k AS d) AS x,
            LATERAL (SELECT period_of(x.anchor, p, x.d) AS r, period_index(x.anchor, p, x.d) AS i) AS y),
    (2192 * 5 * 31)::bigint,
    'PROPERTY start <= d < next start, bounds are consecutive boundaries: 2192 anchors x 5 cadences x 31 days');

-- PROPERTY: boundaries strictly increase with n, and n = 0 is the anchor
SELECT is(
    (SELECT count(*) FILTER (WHERE period_start(a::date, p, n) < period_start(a::date, p, n + 1)
                               AND period_start(a::date, p, 0) = a::date)
       FROM generate_series('2023-01-01'::date, '2028-12-31', '1 day') AS a,
            unnest('{1 month, 3 months, 1 year, 1 day}'::billing_period[]) AS p,
            generate_series(-3, 3) AS n),
    (2192 * 4 * 7)::bigint,
    'PROPERTY boundaries strictly increase and period_start(anchor, p, 0) = anchor');

-- PROPERTY: text round trip and canonical form over every month count and many day counts
SELECT is(
    (SELECT count(*) FILTER (WHERE p::text::billing_period = p
                               AND p::text = CASE WHEN m % 12 = 0
                                                  THEN (m / 12) || CASE WHEN m = 12 THEN ' year' ELSE ' years' END
                                                  ELSE m || CASE WHEN m = 1 THEN ' month' ELSE ' months' END END)
       FROM generate_series(1, 12000) AS m, LATERAL (SELECT (m || ' months')::billing_period AS p) AS x),
    12000::bigint,
    'PROPERTY every month count 1..12000 round-trips and prints canonically');
SELECT is(
    (SELECT count(*) FILTER (WHERE p::text::billing_period = p
                               AND p::text = CASE WHEN d % 7 = 0
                                                  THEN (d / 7) || CASE WHEN d = 7 THEN ' week' ELSE ' weeks' END
                                                  ELSE d || CASE WHEN d = 1 THEN ' day' ELSE ' days' END END)
       FROM (SELECT generate_series(1, 3000) UNION SELECT generate_series(3001, 365000, 97)) AS g(d),
            LATERAL (SELECT (d || ' days')::billing_period AS p) AS x),
    (SELECT count(*) FROM (SELECT generate_series(1, 3000) UNION SELECT generate_series(3001, 365000, 97)) AS g),
    'PROPERTY day counts round-trip and print canonically');

-- PROPERTY: the btree order is the order of average length (4800 months = 146097 days),
-- months first on a tie, computed independently from the interval cast
SELECT is(
    (WITH ps AS (
        SELECT p, extract(month FROM p::interval)::bigint + 12 * extract(year FROM p::interval)::bigint AS months,
               extract(day FROM p::interval)::bigint AS days
          FROM (SELECT (k || ' months')::billing_period FROM generate_series(1, 60) AS k
                UNION ALL SELECT (k || ' days')::billing_period FROM generate_series(1, 2000, 13) AS k
                UNION ALL SELECT '1600 months' UNION ALL SELECT '48699 days') AS t(p)
     )
     SELECT count(*) FILTER (WHERE sign((a.months * 146097 + a.days * 4800) - (b.months * 146097 + b.days * 4800))
                                   + CASE WHEN (a.months * 146097 + a.days * 4800) = (b.months * 146097 + b.days * 4800)
                                          THEN sign(b.months - a.months) ELSE 0 END
                                   = billing_period_cmp(a.p, b.p)
                             AND (a.p < b.p) = (billing_period_cmp(a.p, b.p) < 0)
                             AND (a.p = b.p) = (billing_period_cmp(a.p, b.p) = 0)
                             AND (a.p = b.p) = (billing_period_hash(a.p) = billing_period_hash(b.p) AND a.p::text = b.p::text))
       FROM ps AS a, ps AS b),
    ((60 + 154 + 2) ^ 2)::bigint,
    'PROPERTY comparison = order of average length, months first; = agrees with hash: 216 x 216 pairs');

-- monthly(price, period): the MRR normalisation
SELECT function_returns('subbilling', 'monthly', ARRAY['price', 'billing_period'], 'price');
SELECT volatility_is('subbilling', 'monthly', ARRAY['price', 'billing_period'], 'immutable', 'monthly is IMMUTABLE');
SELECT is_strict('subbilling', 'monthly', ARRAY['price', 'billing_period'], 'monthly is STRICT');
SELECT is(monthly('1200.00 SEK', 'yearly'), '100.00 SEK'::price, '1200.00 SEK yearly is 100.00 SEK a month');
SELECT is(monthly('99.00 SEK', 'quarterly'), '33.00 SEK'::price, '99.00 SEK quarterly is 33.00 SEK a month');
SELECT is(monthly('10.00 SEK', 'weekly'), '43.33 SEK'::price, '10.00 SEK weekly is 10.00 * 52 / 12 = 43.33 SEK a month');
SELECT is(monthly('1.00 SEK', 'daily'), '30.42 SEK'::price, '1.00 SEK daily is 365 / 12 = 30.42 SEK a month');
SELECT is(monthly('0.05 EUR', '2 months'), '0.03 EUR'::price, 'half a cent rounds away from zero');
SELECT throws_ok($$SELECT subbilling.monthly('92233720368547758.07 EUR', 'daily')$$, '22003', 'price out of range',
                 'overflow is 22003');

-- PROPERTY: monthly = round(units * periods_per_year / 12) half away from zero, exactly:
-- units / months, units * 52 / (12 * weeks), units * 365 / (12 * days)
SELECT is(
    (SELECT count(*) FILTER (WHERE minor_units(monthly(price_minor(u, 'SEK'), p)) = round((u * num)::numeric / den))
       FROM generate_series(-3000, 3000, 7) AS u,
            (SELECT (m || ' months')::billing_period, 1, m FROM generate_series(1, 36) AS m
             UNION ALL SELECT (w || ' weeks')::billing_period, 52, 12 * w FROM generate_series(1, 10) AS w
             UNION ALL SELECT (d || ' days')::billing_period, 365, 12 * d FROM generate_series(1, 30) AS d
                                                                         WHERE d % 7 <> 0) AS t(p, num, den)),
    (858 * (36 + 10 + 26))::bigint,
    'PROPERTY monthly(price, p) = round(price * periods_per_year(p) / 12) for 858 prices x 72 periods');
SELECT is(
    (SELECT count(*) FILTER (WHERE periods_per_year(p) = trim_scale(12::numeric / k))
       FROM generate_series(1, 36) AS k, LATERAL (SELECT (k || ' months')::billing_period AS p) AS x),
    36::bigint,
    'periods_per_year of 1..36 months is 12 / months');

SELECT * FROM finish();
ROLLBACK;
