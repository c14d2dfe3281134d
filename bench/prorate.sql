-- bench/prorate.sql: prorate(price, daterange, daterange) in C against the same computation
-- in PL/pgSQL and inline in plain SQL, both on numeric.  Baseline: plain SQL.
-- Run by bench/run.sh (psql -v prorate_rows=N).
--
-- The computation: amount * days(part) / days(period), rounded half away from zero to the
-- minor unit (numeric round() rounds half away from zero, like the extension's one rule).
-- The PL/pgSQL function also checks what the C function checks (bounded non-empty period,
-- part inside it) so it does the same job; the plain SQL expression checks nothing, so it is
-- the least any SQL formulation can cost.  All amounts are SEK (2 decimals).
\set ON_ERROR_STOP 1
SET search_path = subbilling, public;

CREATE OR REPLACE FUNCTION bench.prorate_plpgsql(amount numeric, period daterange, part daterange)
RETURNS numeric
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
	period_days int;
BEGIN
	IF lower_inf(period) OR upper_inf(period) OR isempty(period) THEN
		RAISE EXCEPTION 'period must be bounded and non-empty' USING ERRCODE = '22023';
	END IF;
	IF NOT period @> part THEN
		RAISE EXCEPTION 'part is not within the period' USING ERRCODE = '22023';
	END IF;
	IF isempty(part) THEN
		RETURN 0;
	END IF;
	period_days := upper(period) - lower(period);
	RETURN round(amount * (upper(part) - lower(part)) / period_days, 2);
END
$$;
COMMENT ON FUNCTION bench.prorate_plpgsql(numeric, daterange, daterange) IS
	'prorate() written in PL/pgSQL on numeric, for the benchmark (2-decimal currencies only)';

DROP TABLE IF EXISTS bench.proration;
-- Periods of 1, 3 or 12 months (6:3:1) starting on any day of 2023-2024, each with a part
-- of 1 .. all of its days; amounts 0.00 .. 99 999.99 SEK, as price (p) and numeric (n).
CREATE TABLE bench.proration (
	id     int NOT NULL,
	p      subbilling.price NOT NULL,
	n      numeric(20,2) NOT NULL,
	period daterange NOT NULL,
	part   daterange NOT NULL
);
COMMENT ON TABLE bench.proration IS 'amount, period and part of the period, for the proration benchmark';

INSERT INTO bench.proration
SELECT i, price_minor(minor, 'SEK'), minor / 100.0,
       daterange(s, e), daterange(s + a, s + a + 1 + ((i::bigint * 40503) % (e - s - a))::int)
FROM generate_series(1, :prorate_rows) AS i,
     LATERAL (SELECT (i::bigint * 2654435761) % 10000000 AS minor,
                     date '2023-01-01' + i % 731 AS s,
                     (ARRAY[1,1,1,1,1,1,3,3,3,12])[1 + (i / 7) % 10] AS months) AS x,
     LATERAL (SELECT (s + make_interval(months => months))::date AS e) AS y,
     LATERAL (SELECT ((i::bigint * 69069) % (e - s))::int AS a) AS z;
VACUUM (FREEZE, ANALYZE) bench.proration;
SELECT pg_prewarm('bench.proration') AS proration_pages_prewarmed,
       pg_size_pretty(pg_table_size('bench.proration')) AS proration_size;

-- The three must agree on every row before anything is timed.
DO $$
DECLARE
	n_rows bigint; bad_plpgsql bigint; bad_sql bigint; whole bigint;
BEGIN
	SELECT count(*),
	       count(*) FILTER (WHERE amount(prorate(p, period, part)) IS DISTINCT FROM bench.prorate_plpgsql(n, period, part)),
	       count(*) FILTER (WHERE amount(prorate(p, period, part)) IS DISTINCT FROM
	                              round(n * (upper(part) - lower(part)) / (upper(period) - lower(period)), 2)),
	       count(*) FILTER (WHERE part = period)
	INTO n_rows, bad_plpgsql, bad_sql, whole
	FROM bench.proration;
	RAISE NOTICE 'prorate: % rows (% whole periods), mismatches C vs PL/pgSQL: %, C vs SQL: %',
		n_rows, whole, bad_plpgsql, bad_sql;
	IF bad_plpgsql <> 0 OR bad_sql <> 0 THEN
		RAISE EXCEPTION 'prorate implementations disagree';
	END IF;
END
$$;

-- count(x) evaluates x on every row and is equally cheap for every type: the results are
-- computed and checked for NULL, nothing else.  The last case computes nothing: the cost of
-- reading the rows, which every other case pays too.
INSERT INTO bench.cases (suite, ord, name, baseline, rows, query) VALUES
	('prorate', 1, 'plain SQL on numeric', true, :prorate_rows,
	 'SELECT count(round(n * (upper(part) - lower(part)) / (upper(period) - lower(period)), 2)) FROM bench.proration'),
	('prorate', 2, 'PL/pgSQL on numeric', false, :prorate_rows,
	 'SELECT count(bench.prorate_plpgsql(n, period, part)) FROM bench.proration'),
	('prorate', 3, 'prorate() in C on price', false, :prorate_rows,
	 'SELECT count(subbilling.prorate(p, period, part)) FROM bench.proration'),
	('prorate', 4, 'count(part): scan only', false, :prorate_rows,
	 'SELECT count(part) FROM bench.proration');
