-- bench/harness.sql: the timing harness shared by every suite (bench/run.sh loads it first).
--
-- A suite file registers its cases in bench.cases; bench.measure(suite, runs) then times them:
-- for each mode (serial: max_parallel_workers_per_gather = 0; parallel: = 2) one untimed warm-up
-- round and RUNS timed rounds, each round running every case once in turn (round-robin, so slow
-- drift of the machine's load hits every case alike).  A case is timed server-side as the
-- clock_timestamp() difference around EXECUTE of its query inside PL/pgSQL: parse, plan and
-- execution, no client round trip, no EXPLAIN instrumentation.  Results are discarded
-- (SPI keeps them; every case returns at most a handful of rows).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;
SET client_min_messages = notice;

CREATE TABLE bench.cases (
	suite    text NOT NULL,
	ord      int NOT NULL,
	name     text NOT NULL,
	baseline bool NOT NULL DEFAULT false,
	rows     bigint NOT NULL,          -- rows the query processes (for ns/row)
	query    text NOT NULL,
	seq      bigserial,                -- registration order (suites are reported in it)
	PRIMARY KEY (suite, name)
);
COMMENT ON TABLE bench.cases IS 'benchmark cases: one query each; one baseline per suite';

CREATE TABLE bench.results (
	suite   text NOT NULL,
	mode    text NOT NULL,
	name    text NOT NULL,
	run     int NOT NULL,
	ms      float8 NOT NULL,
	workers int                        -- parallel workers the plan asks for (EXPLAIN)
);
COMMENT ON TABLE bench.results IS 'one row per timed execution of a case';

CREATE TABLE bench.modes (
	mode     text PRIMARY KEY,
	ord      int NOT NULL,
	settings text[] NOT NULL           -- name=value pairs applied with set_config(..., true)
);
COMMENT ON TABLE bench.modes IS 'execution modes every case is timed under';
INSERT INTO bench.modes VALUES
	('serial',   1, '{max_parallel_workers_per_gather=0}'),
	('parallel', 2, '{max_parallel_workers_per_gather=2}');

-- Workers the planner plans for QUERY under the current settings (0 for a serial plan).
CREATE FUNCTION bench.planned_workers(query text) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
	plan json;
BEGIN
	EXECUTE 'EXPLAIN (FORMAT JSON) ' || query INTO plan;
	RETURN coalesce((regexp_match(plan::text, '"Workers Planned": (\d+)'))[1]::int, 0);
END
$$;
COMMENT ON FUNCTION bench.planned_workers(text) IS 'parallel workers planned for a query (0 = serial plan)';

-- Milliseconds one execution of QUERY takes, timed around EXECUTE.
CREATE FUNCTION bench.time_ms(query text) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
BEGIN
	t0 := clock_timestamp();
	EXECUTE query;
	RETURN 1000 * extract(epoch FROM clock_timestamp() - t0);
END
$$;
COMMENT ON FUNCTION bench.time_ms(text) IS 'wall-clock milliseconds of one server-side execution of a query';

-- Time every case of SUITE under MODE: one warm-up round, then RUNS timed rounds.
CREATE FUNCTION bench.measure(p_suite text, p_mode text, runs int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	s   text;
	c   record;
	r   int;
	ms  float8;
	w   int;
BEGIN
	FOREACH s IN ARRAY (SELECT settings FROM bench.modes WHERE mode = p_mode) LOOP
		PERFORM set_config(split_part(s, '=', 1), split_part(s, '=', 2), true);
	END LOOP;
	FOR r IN 0 .. runs LOOP
		FOR c IN SELECT * FROM bench.cases WHERE suite = p_suite ORDER BY ord LOOP
			w := bench.planned_workers(c.query);
			ms := bench.time_ms(c.query);
			IF r > 0 THEN
				INSERT INTO bench.results VALUES (p_suite, p_mode, c.name, r, ms, w);
			END IF;
			RAISE NOTICE '% % % %: % ms', p_suite, p_mode, CASE WHEN r = 0 THEN 'warm-up' ELSE 'run ' || r END,
				c.name, round(ms::numeric, 1);
		END LOOP;
	END LOOP;
END
$$;
COMMENT ON FUNCTION bench.measure(text, text, int) IS 'time every case of a suite under one mode: warm-up + RUNS round-robin rounds';

-- The figures: median per case and mode, ratio to the suite's baseline in the same mode; and
-- the same ratio of the fastest runs (less affected by other load on the machine: where the
-- two ratios differ much, the machine was disturbed during the run).
CREATE VIEW bench.report AS
WITH med AS (
	SELECT r.suite, r.mode, r.name,
	       percentile_cont(0.5) WITHIN GROUP (ORDER BY r.ms) AS median_ms,
	       min(r.ms) AS min_ms, max(r.ms) AS max_ms, count(*) AS runs, max(r.workers) AS workers
	FROM bench.results r
	GROUP BY 1, 2, 3
)
SELECT m.suite, m.mode, m.name AS "case", c.rows,
       m.workers,
       round(m.median_ms::numeric, 1) AS median_ms,
       round(m.min_ms::numeric, 1) AS min_ms,
       round(m.max_ms::numeric, 1) AS max_ms,
       round((1e6 * m.median_ms / c.rows)::numeric, 1) AS ns_per_row,
       round((m.median_ms / b.median_ms)::numeric, 2) AS ratio,
       round((m.min_ms / b.min_ms)::numeric, 2) AS ratio_of_min
FROM med m
JOIN bench.cases c USING (suite, name)
JOIN bench.cases bc ON bc.suite = m.suite AND bc.baseline
JOIN med b ON b.suite = m.suite AND b.mode = m.mode AND b.name = bc.name
JOIN bench.modes mo ON mo.mode = m.mode
ORDER BY (SELECT min(x.seq) FROM bench.cases x WHERE x.suite = m.suite), mo.ord, c.ord;
COMMENT ON VIEW bench.report IS 'median milliseconds per case and mode, and the ratio to the suite baseline in the same mode';
