-- price aggregates: sum, avg, min, max; NULLs, empty input, mixed currencies, overflow,
-- the rounding of avg, and the same results under a forced parallel plan
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(41);

CREATE FUNCTION pg_temp.plan_text(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	l text;
	r text := '';
BEGIN
	FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
		r := r || l || E'\n';
	END LOOP;
	RETURN r;
END
$$;

-- ---------------------------------------------------------------- small cases
SELECT is((SELECT sum(p) FROM (VALUES ('1.00 SEK'::price), ('2.50 SEK'), ('-0.25 SEK')) v(p)), '3.25 SEK'::price, 'sum');
SELECT is((SELECT avg(p) FROM (VALUES ('1.00 SEK'::price), ('2.50 SEK'), ('-0.25 SEK')) v(p)), '1.08 SEK'::price, 'avg 3.25 / 3 = 1.0833 -> 1.08');
SELECT is((SELECT min(p) FROM (VALUES ('1.00 SEK'::price), ('2.50 SEK'), ('-0.25 SEK')) v(p)), '-0.25 SEK'::price, 'min');
SELECT is((SELECT max(p) FROM (VALUES ('1.00 SEK'::price), ('2.50 SEK'), ('-0.25 SEK')) v(p)), '2.50 SEK'::price, 'max');
SELECT is((SELECT avg(p) FROM (VALUES ('0.01 SEK'::price), ('0.02 SEK')) v(p)), '0.02 SEK'::price, 'avg 0.015 -> 0.02 (half away from zero)');
SELECT is((SELECT avg(p) FROM (VALUES ('-0.01 SEK'::price), ('-0.02 SEK')) v(p)), '-0.02 SEK'::price, 'avg -0.015 -> -0.02 (half away from zero)');
SELECT is((SELECT avg(p) FROM (VALUES ('1 JPY'::price), ('2 JPY'), ('2 JPY')) v(p)), '2 JPY'::price, 'avg 1.667 JPY -> 2');
SELECT is((SELECT sum(p) FROM (VALUES ('1.00 SEK'::price), (NULL), ('2.00 SEK')) v(p)), '3.00 SEK'::price, 'sum skips NULL');
SELECT is((SELECT avg(p) FROM (VALUES ('1.00 SEK'::price), (NULL), ('2.00 SEK')) v(p)), '1.50 SEK'::price, 'avg skips NULL (divides by 2)');
SELECT is((SELECT sum(p) FROM (VALUES (NULL::price)) v(p)), NULL::price, 'sum of only NULL is NULL');
SELECT is((SELECT sum(p) FROM (SELECT '1 SEK'::price WHERE false) v(p)), NULL::price, 'sum of nothing is NULL');
SELECT is((SELECT avg(p) FROM (SELECT '1 SEK'::price WHERE false) v(p)), NULL::price, 'avg of nothing is NULL');
SELECT is((SELECT min(p) FROM (SELECT '1 SEK'::price WHERE false) v(p)), NULL::price, 'min of nothing is NULL');
SELECT is((SELECT sum(p) FROM (VALUES ('92233720368547758.07 SEK'::price), ('0.01 SEK'), ('-0.01 SEK')) v(p)),
          '92233720368547758.07 SEK'::price, 'sum: an intermediate beyond int64 is fine when the total fits');
SELECT is((SELECT avg(p) FROM (VALUES ('92233720368547758.07 SEK'::price), ('92233720368547758.07 SEK')) v(p)),
          '92233720368547758.07 SEK'::price, 'avg of max values: no overflow');
SELECT is((SELECT avg(p) FROM (VALUES ('-92233720368547758.08 SEK'::price), ('-92233720368547758.08 SEK')) v(p)),
          '-92233720368547758.08 SEK'::price, 'avg of min values: no overflow');
SELECT throws_ok($$SELECT subbilling.sum(p) FROM (VALUES ('92233720368547758.07 SEK'::subbilling.price), ('0.01 SEK')) v(p)$$,
                 '22003', 'price out of range', 'sum beyond max');
SELECT throws_ok($$SELECT subbilling.sum(p) FROM (VALUES ('-92233720368547758.08 SEK'::subbilling.price), ('-0.01 SEK')) v(p)$$,
                 '22003', 'price out of range', 'sum beyond min');
SELECT throws_ok($$SELECT subbilling.sum(p) FROM (VALUES ('1.00 SEK'::subbilling.price), ('1.00 EUR')) v(p)$$,
                 '22000', 'currency mismatch: SEK and EUR', 'sum over mixed currencies');
SELECT throws_ok($$SELECT subbilling.avg(p) FROM (VALUES ('1 JPY'::subbilling.price), ('1.00 EUR')) v(p)$$,
                 '22000', 'currency mismatch: JPY and EUR', 'avg over mixed currencies');
SELECT is((SELECT min(p) FROM (VALUES ('1.00 SEK'::price), ('999.00 EUR')) v(p)), '999.00 EUR'::price,
          'min over mixed currencies follows the total order (same as ORDER BY ... LIMIT 1)');
SELECT is((SELECT max(p) FROM (VALUES ('1.00 SEK'::price), ('999.00 EUR')) v(p)), '1.00 SEK'::price,
          'max over mixed currencies follows the total order');
SELECT set_eq($$SELECT currency(p), sum(p) FROM (VALUES ('1.00 SEK'::subbilling.price), ('1.00 EUR'), ('2.00 SEK')) v(p) GROUP BY 1$$,
              $$VALUES ('EUR', '1.00 EUR'::subbilling.price), ('SEK', '3.00 SEK')$$,
              'sum per currency with GROUP BY');
SELECT results_eq($$SELECT sum(p) OVER (ORDER BY i) FROM (VALUES (1, '1.00 SEK'::subbilling.price), (2, '2.00 SEK'), (3, '-0.50 SEK')) v(i, p)$$,
                  $$VALUES ('1.00 SEK'::subbilling.price), ('3.00 SEK'), ('2.50 SEK')$$,
                  'sum as a window function (running total)');

-- sliding frames use the inverse transition function; compare with a sum of minor units
CREATE TEMP TABLE win AS
SELECT i, CASE WHEN i % 11 = 0 THEN NULL ELSE price_minor((i * 7919) % 2001 - 1000, 'SEK') END AS p
  FROM generate_series(1, 500) i;
SELECT results_eq(
	$$SELECT sum(p) OVER w, avg(p) OVER w FROM win WINDOW w AS (ORDER BY i ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) ORDER BY i$$,
	$$SELECT price_minor((sum(minor_units(p)) OVER w)::bigint, 'SEK'),
	         price_minor(round(sum(minor_units(p)) OVER w::numeric / nullif(count(p) OVER w, 0))::bigint, 'SEK')
	    FROM win WINDOW w AS (ORDER BY i ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) ORDER BY i$$,
	'sliding-window sum and avg (moving aggregate) equal the reference');
SELECT results_eq(
	$$SELECT sum(p) OVER w FROM (VALUES (1, '1.00 SEK'::subbilling.price), (2, NULL), (3, NULL), (4, '2.00 SEK')) v(i, p)
	   WINDOW w AS (ORDER BY i ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) ORDER BY i$$,
	$$VALUES ('1.00 SEK'::subbilling.price), ('1.00 SEK'), (NULL), ('2.00 SEK')$$,
	'a frame of only NULLs gives NULL, then the sum goes on');
SELECT results_eq(
	$$SELECT sum(p) OVER w FROM (VALUES (1, '1.00 SEK'::subbilling.price), (2, '2.00 SEK'), (3, '1.00 EUR'), (4, '3.00 EUR')) v(i, p)
	   WINDOW w AS (ORDER BY i ROWS BETWEEN CURRENT ROW AND CURRENT ROW) ORDER BY i$$,
	$$VALUES ('1.00 SEK'::subbilling.price), ('2.00 SEK'), ('1.00 EUR'), ('3.00 EUR')$$,
	'a one-row frame may change currency once the old rows left the frame');
SELECT throws_ok($$SELECT subbilling.sum(p) OVER (ORDER BY i ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
                   FROM (VALUES (1, '1.00 SEK'::subbilling.price), (2, '1.00 EUR')) v(i, p)$$,
                 '22000', 'currency mismatch: SEK and EUR', 'a frame holding two currencies is an error');

-- ---------------------------------------------------------------- parallel aggregation
-- 200000 rows in SEK, spread over both signs and up to +-1e15 minor units
CREATE TABLE pagg (id int, g int, p price);
INSERT INTO pagg
SELECT i, i % 7, price_minor(((i::bigint * 2654435761) % 2000000000001) * (CASE WHEN i % 2 = 0 THEN 500 ELSE -499 END), 'SEK')
  FROM generate_series(1, 200000) i;
INSERT INTO pagg VALUES (0, 0, NULL);
ANALYZE pagg;
SET LOCAL max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE serial_res AS
SELECT sum(p) AS s, avg(p) AS a, min(p) AS lo, max(p) AS hi, count(p) AS n FROM pagg;
CREATE TEMP TABLE serial_grp AS
SELECT g, sum(p) AS s, avg(p) AS a, min(p) AS lo, max(p) AS hi FROM pagg GROUP BY g;

-- force_parallel_mode is called debug_parallel_query from PostgreSQL 16 on
SELECT current_setting('server_version_num')::integer >= 160000 AS pg16 \gset
\if :pg16
SET LOCAL debug_parallel_query = on;
\else
SET LOCAL force_parallel_mode = on;
\endif
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SELECT ok(pg_temp.plan_text('SELECT sum(p), avg(p), min(p), max(p) FROM pagg') ~ 'Finalize Aggregate.*\n.*Gather.*\n(.*\n)*.*Partial Aggregate.*\n.*Parallel Seq Scan on pagg',
          'the plan is a parallel aggregate (Gather over Partial Aggregate)');
SELECT results_eq($$SELECT sum(p), avg(p), min(p), max(p), count(p) FROM pagg$$,
                  $$SELECT s, a, lo, hi, n FROM serial_res$$,
                  'parallel sum/avg/min/max equal the serial results');
SELECT ok(pg_temp.plan_text('SELECT g, sum(p), avg(p), min(p), max(p) FROM pagg GROUP BY g') ~ 'Partial .*Aggregate',
          'grouped parallel plan has a Partial Aggregate');
SELECT set_eq($$SELECT g, sum(p), avg(p), min(p), max(p) FROM pagg GROUP BY g$$,
              $$SELECT g, s, a, lo, hi FROM serial_grp$$,
              'parallel grouped results equal the serial ones');
SELECT is((SELECT sum(p) FROM pagg), (SELECT price_minor(sum(minor_units(p))::bigint, 'SEK') FROM pagg),
          'sum agrees with a sum of minor units');
SELECT is((SELECT avg(p) FROM pagg),
          (SELECT price_minor(round(sum(minor_units(p))::numeric / count(p))::bigint, 'SEK') FROM pagg),
          'avg agrees with numeric round(sum / count)');
SELECT isnt((SELECT s FROM serial_res), NULL::price, 'the serial reference is not empty');

-- errors raised in parallel workers reach the client
INSERT INTO pagg VALUES (200001, 1, '1.00 EUR');
SELECT throws_ok($$SELECT subbilling.sum(p) FROM pagg$$, '22000', NULL, 'mixed currencies under a parallel plan');
SELECT throws_ok($$SELECT subbilling.avg(p) FROM pagg$$, '22000', NULL, 'mixed currencies under a parallel plan (avg)');
DELETE FROM pagg WHERE id = 200001;
INSERT INTO pagg VALUES (200002, 1, '92233720368547758.07 SEK'), (200003, 2, '92233720368547758.07 SEK');
SELECT throws_ok($$SELECT subbilling.sum(p) FROM pagg$$, '22003', 'price out of range', 'overflow of the total under a parallel plan');
SELECT lives_ok($$SELECT subbilling.avg(p) FROM pagg$$, 'avg of the same rows fits');
DELETE FROM pagg WHERE id IN (200002, 200003);

\if :pg16
RESET debug_parallel_query;
\else
RESET force_parallel_mode;
\endif
SET LOCAL max_parallel_workers_per_gather = 0;
SELECT ok(pg_temp.plan_text('SELECT sum(p) FROM pagg') !~ 'Partial', 'with no workers the plan is serial');
SELECT results_eq($$SELECT sum(p), avg(p), min(p), max(p), count(p) FROM pagg$$,
                  $$SELECT s, a, lo, hi, n FROM serial_res$$,
                  'serial results again after the parallel runs');

SELECT * FROM finish();
ROLLBACK;
