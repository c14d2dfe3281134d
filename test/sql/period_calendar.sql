-- period_start, period_of, period_index, periods_per_year
SET search_path = subbilling, public;
SET datestyle = 'ISO, YMD';

CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' | ' || nullif(detail, ''), '');
END
$$;

-- a month-end anchor does not drift: 2024-01-31 monthly
SELECT n, period_start('2024-01-31', 'monthly', n)
  FROM generate_series(-3, 13) AS n;

-- the leap day, yearly: Feb 28 in common years, back to Feb 29 in leap years (not 2100)
SELECT n, period_start('2024-02-29', 'yearly', n)
  FROM (VALUES (-5), (-4), (-1), (0), (1), (3), (4), (8), (76), (80)) AS t(n);

-- quarterly from 2023-11-30; semiannually from 2024-08-31
SELECT n, period_start('2023-11-30', 'quarterly', n), period_start('2024-08-31', 'semiannually', n)
  FROM generate_series(-2, 5) AS n;

-- day-based: every 2 weeks and every 10 days from 2024-01-01
SELECT n, period_start('2024-01-01', '2 weeks', n), period_start('2024-01-01', '10 days', n)
  FROM generate_series(-2, 3) AS n;

-- period_of: the half-open period holding d, also before the anchor
SELECT d, period_of('2024-01-31', 'monthly', d), period_index('2024-01-31', 'monthly', d)
  FROM unnest('{2024-01-31, 2024-02-01, 2024-02-28, 2024-02-29, 2024-03-30, 2024-03-31,
                2024-04-29, 2024-04-30, 2024-01-30, 2023-12-31, 2023-12-30, 2023-11-30,
                2023-11-29, 2025-01-31, 2025-02-27, 2025-02-28}'::date[]) AS d;
SELECT d, period_of('2024-02-29', 'yearly', d), period_index('2024-02-29', 'yearly', d)
  FROM unnest('{2024-02-29, 2025-02-27, 2025-02-28, 2028-02-28, 2028-02-29, 2024-02-28,
                2023-02-28, 2023-02-27}'::date[]) AS d;
SELECT d, period_of('2024-01-01', '2 weeks', d), period_index('2024-01-01', '2 weeks', d)
  FROM unnest('{2024-01-01, 2024-01-14, 2024-01-15, 2023-12-31, 2023-12-18, 2023-12-17}'::date[]) AS d;
SELECT period_of('2024-03-15', 'daily', '2024-03-15') AS one_day,
       period_of('2000-01-01', '1000 years', '2999-12-31') AS millennium;

-- boundaries are consecutive: period n ends where period n + 1 starts
SELECT bool_and(upper(period_of('2024-01-31', 'monthly', d)) =
                lower(period_of('2024-01-31', 'monthly', upper(period_of('2024-01-31', 'monthly', d)))))
       AS tiled
  FROM generate_series('2023-01-01'::date, '2026-01-01', '1 day') AS g, LATERAL (SELECT g::date AS d) AS t;

-- periods per year: 12 / months, 52 / weeks, 365 / days
SELECT p, periods_per_year(p)
  FROM unnest('{1 month, 2 months, 3 months, 5 months, 6 months, 7 months, 1 year, 2 years,
                1 week, 2 weeks, 4 weeks, 1 day, 10 days, 30 days, 365 days}'::billing_period[]) AS p;

-- errors: infinite dates, results outside the date range
SELECT pg_temp.try($$SELECT subbilling.period_start('infinity', 'monthly', 1)$$);
SELECT pg_temp.try($$SELECT subbilling.period_start('-infinity', 'monthly', 1)$$);
SELECT pg_temp.try($$SELECT subbilling.period_of('infinity', 'monthly', '2024-01-01')$$);
SELECT pg_temp.try($$SELECT subbilling.period_of('2024-01-01', 'monthly', 'infinity')$$);
SELECT pg_temp.try($$SELECT subbilling.period_index('2024-01-01', 'monthly', '-infinity')$$);
SELECT pg_temp.try($$SELECT subbilling.period_start('2024-01-31', '1000 years', 2147483647)$$);
SELECT pg_temp.try($$SELECT subbilling.period_start('2024-01-31', '365000 days', -2147483648)$$);
SELECT pg_temp.try($$SELECT subbilling.period_start('5874897-12-01', 'monthly', 1)$$);
SELECT pg_temp.try($$SELECT subbilling.period_of('2000-01-01', 'monthly', '5874897-12-15')$$);
SELECT period_start('5874897-12-01', 'monthly', 0) AS last_month_ok,
       period_start('5874897-12-31', 'daily', 0) AS last_day_ok,
       period_start('4714-11-24 BC', 'monthly', 0) AS first_day_ok;
SELECT period_start('2024-01-01', 'monthly', 1);
SELECT period_start('4714-11-24 BC', 'daily', -1);

-- STRICT: NULL in, NULL out
SELECT period_start(NULL, 'monthly', 1) IS NULL AS a, period_start('2024-01-01', NULL, 1) IS NULL AS b,
       period_start('2024-01-01', 'monthly', NULL) IS NULL AS c, period_of('2024-01-01', 'monthly', NULL) IS NULL AS d,
       periods_per_year(NULL) IS NULL AS e;
