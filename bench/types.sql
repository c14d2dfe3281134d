-- bench/types.sql: sum() over the same amounts held as price, numeric(20,2), bigint (minor
-- units) and money.  Baseline: sum(bigint).  Run by bench/run.sh (psql -v rows=N).
--
-- money depends on lc_monetary (its number of decimals and its text form): it is set to C
-- here, so money has 2 decimals and no currency symbol; the cluster is made with the same.
\set ON_ERROR_STOP 1
SET lc_monetary = 'C';
SET search_path = subbilling, public;

DROP TABLE IF EXISTS bench.amounts;
-- One row per amount; every column holds the same amount.  p, n, b, m are all SEK; cur and pm
-- hold the same amount in one of five currencies (for the GROUP BY currency cases).
CREATE TABLE bench.amounts (
	id   int NOT NULL,
	cur  text NOT NULL,
	p    subbilling.price NOT NULL,
	n    numeric(20,2) NOT NULL,
	b    bigint NOT NULL,
	m    money NOT NULL,
	pm   subbilling.price NOT NULL
);
COMMENT ON TABLE bench.amounts IS 'the same amounts as price, numeric(20,2), bigint minor units and money';

-- Amounts 0.00 .. 99 999.99, spread by a multiplicative hash of the row number (deterministic).
INSERT INTO bench.amounts
SELECT i, cur, price_minor(minor, 'SEK'), minor / 100.0, minor, (minor / 100.0)::numeric::money,
       price_minor(minor, cur)
FROM generate_series(1, :rows) AS i,
     LATERAL (SELECT (i::bigint * 2654435761) % 10000000 AS minor,
                     (ARRAY['SEK','NOK','EUR','DKK','USD'])[1 + i % 5] AS cur) AS x;
-- Without statistics on the expression the planner takes currency(pm) to have as many distinct
-- values as pm itself (millions of groups), and plans a serial HashAggregate for GROUP BY
-- currency(pm); with them it knows there are five.  See docs/benchmarks.md.
CREATE STATISTICS bench.amounts_currency ON (subbilling.currency(pm)) FROM bench.amounts;
VACUUM (FREEZE, ANALYZE) bench.amounts;
SELECT pg_prewarm('bench.amounts') AS amounts_pages_prewarmed,
       pg_size_pretty(pg_table_size('bench.amounts')) AS amounts_size;

-- The four sums must agree before anything is timed.
DO $$
DECLARE
	sp numeric; sn numeric; sb numeric; sm numeric;
BEGIN
	SELECT amount(sum(p)), sum(n), sum(b) / 100.0, sum(m)::numeric INTO sp, sn, sb, sm FROM bench.amounts;
	IF sp IS DISTINCT FROM sn OR sn IS DISTINCT FROM sb OR sb IS DISTINCT FROM sm THEN
		RAISE EXCEPTION 'sums differ: price % numeric % bigint % money %', sp, sn, sb, sm;
	END IF;
	IF EXISTS (SELECT FROM (SELECT currency(pm) AS c, amount(sum(pm)) AS s FROM bench.amounts GROUP BY 1) a
	           FULL JOIN (SELECT cur AS c, sum(b) / 100.0 AS s FROM bench.amounts GROUP BY 1) b USING (c)
	           WHERE a.s IS DISTINCT FROM b.s) THEN
		RAISE EXCEPTION 'per-currency sums differ between price and bigint';
	END IF;
	RAISE NOTICE 'types: verified, all four sums are % SEK', sp;
END
$$;

INSERT INTO bench.cases (suite, ord, name, baseline, rows, query) VALUES
	('types', 1, 'sum(bigint)',        true,  :rows, 'SELECT sum(b) FROM bench.amounts'),
	('types', 2, 'sum(numeric)',       false, :rows, 'SELECT sum(n) FROM bench.amounts'),
	('types', 3, 'sum(money)',         false, :rows, 'SELECT sum(m) FROM bench.amounts'),
	('types', 4, 'sum(price)',         false, :rows, 'SELECT subbilling.sum(p) FROM bench.amounts'),
	('types', 5, 'count(*): scan only', false, :rows, 'SELECT count(*) FROM bench.amounts');

INSERT INTO bench.cases (suite, ord, name, baseline, rows, query) VALUES
	('types_by_currency', 1, 'sum(bigint) GROUP BY cur',   true,  :rows,
	 'SELECT cur, sum(b) FROM bench.amounts GROUP BY cur'),
	('types_by_currency', 2, 'sum(numeric) GROUP BY cur',  false, :rows,
	 'SELECT cur, sum(n) FROM bench.amounts GROUP BY cur'),
	('types_by_currency', 3, 'sum(price) GROUP BY cur',  false, :rows,
	 'SELECT cur, subbilling.sum(pm) FROM bench.amounts GROUP BY cur'),
	('types_by_currency', 4, 'sum(price) GROUP BY currency(price)', false, :rows,
	 'SELECT subbilling.currency(pm), subbilling.sum(pm) FROM bench.amounts GROUP BY 1'),
	('types_by_currency', 5, 'count(*) GROUP BY cur: scan and grouping only', false, :rows,
	 'SELECT cur, count(*) FROM bench.amounts GROUP BY cur');
