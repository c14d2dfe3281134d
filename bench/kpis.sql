-- KPI views benchmark (bench/kpis.sh): times every view's current month and its whole history
-- against plain count(*) scans of the tables it reads, in the same run, on the data that
-- bench/kpis_data.sql built.  Not a test: nothing passes or fails.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET search_path = subbilling, public;

-- ---------------------------------------------------------------- timing
-- JIT off: the views' plans are estimated expensive enough for JIT, whose compilation alone
-- takes seconds (docs/kpis.md advises jit = off for the BI role)
SET jit = off;
CREATE TEMP TABLE t (name text, what text, ms numeric, base_ms numeric);
-- the open items and usage subscriptions that triggers keep, and the monthly snapshots, as
-- the daily refresh builds them (the bulk load fired no trigger)
\timing on
SELECT subbilling_internal.kpi_rebuild_kept();
\if :refresh
SELECT refresh_kpi_snapshots() AS snapshot_rows;
\endif
\timing off
-- the best of :runs runs of a query (after one warm-up), in ms
SELECT set_config('bench.runs', :'runs', false);
CREATE FUNCTION pg_temp.ms(q text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
    t0  timestamptz;
    best numeric;
    x   bigint;
BEGIN
    EXECUTE 'SELECT count(*) FROM (' || q || ') q' INTO x;
    FOR i IN 1 .. current_setting('bench.runs')::integer LOOP
        t0 := clock_timestamp();
        EXECUTE 'SELECT count(*) FROM (' || q || ') q' INTO x;
        best := least(best, extract(epoch FROM clock_timestamp() - t0) * 1000);
    END LOOP;
    RETURN round(best, 1);
END $$;
-- count(*) of every table a view reads, summed
CREATE FUNCTION pg_temp.base(tables text[]) RETURNS numeric LANGUAGE sql AS $$
    SELECT sum(pg_temp.ms('SELECT 1 FROM subbilling.' || x)) FROM unnest(tables) AS x
$$;
CREATE TEMP TABLE v (name text, tables text[], rel text);
INSERT INTO v VALUES
    ('kpi_mrr', '{subscription_items,subscriptions,plans,subscription_discounts,subscription_pauses,dunning_actions}'),
    ('kpi_mrr_movements', '{subscription_items,subscriptions,plans,subscription_discounts,subscription_pauses,dunning_actions}'),
    ('kpi_churn', '{subscription_items,subscriptions,plans,subscription_discounts,subscription_pauses,dunning_actions}'),
    ('kpi_ltv', '{subscription_items,subscriptions,plans,subscription_discounts,subscription_pauses,dunning_actions}'),
    ('kpi_growth', '{subscription_items,subscriptions,plans,subscription_discounts,subscription_pauses,dunning_actions}'),
    ('revenue_recognition', '{invoices,invoice_lines}'),
    ('ar_aging', '{journal_lines,invoices,accounts}'),
    ('upsell_candidates', '{subscription_items,subscriptions,plans,usage}'),
    -- the definitions the two views had before they read the kept tables
    ('ar_aging (definition)', '{journal_lines,invoices,accounts}'),
    ('upsell_candidates (definition)', '{subscription_items,subscriptions,plans,usage}');
UPDATE v SET rel = CASE name WHEN 'ar_aging (definition)' THEN 'subbilling_internal.ar_aging_ref'
                             WHEN 'upsell_candidates (definition)' THEN 'subbilling_internal.upsell_candidates_ref'
                             ELSE 'subbilling.' || name END;
DELETE FROM v WHERE name ~ :'skip';
INSERT INTO t
SELECT v.name, w.what, pg_temp.ms(w.q), pg_temp.base(v.tables)
  FROM v CROSS JOIN LATERAL (VALUES
      -- ar_aging and upsell: every column computed (over the view alone, count(*) lets the
      -- planner drop the columns nobody reads)
      ('current month', CASE WHEN v.name ~ '^(ar_aging|upsell)' THEN 'SELECT x FROM (SELECT * FROM ' || v.rel || ') x WHERE x IS NOT NULL'
                             ELSE 'SELECT * FROM ' || v.rel || ' WHERE month = date_trunc(''month'', current_date)' END),
      ('24 months', CASE WHEN v.name ~ '^(ar_aging|upsell)' THEN NULL
                         ELSE 'SELECT * FROM ' || v.rel || ' WHERE month > date_trunc(''month'', current_date) - interval ''24 months''' END)) AS w(what, q)
 WHERE w.q IS NOT NULL;
\pset footer off
SELECT name, what, ms, base_ms AS "count(*) ms", round(ms / base_ms, 1) AS ratio FROM t ORDER BY name, what DESC;
-- the MRR views with 1 % of the accounts changed since the snapshot (computed live)
INSERT INTO subbilling_internal.kpi_dirty_accounts (account_id) SELECT n FROM generate_series(1, :n, 100) AS n;
TRUNCATE t;
INSERT INTO t
SELECT v.name, '1 % marked, ' || w.what, pg_temp.ms(w.q), pg_temp.base(v.tables)
  FROM v CROSS JOIN LATERAL (VALUES
      ('current month', 'SELECT * FROM ' || v.rel || ' WHERE month = date_trunc(''month'', current_date)'),
      ('24 months', 'SELECT * FROM ' || v.rel || ' WHERE month > date_trunc(''month'', current_date) - interval ''24 months''')) AS w(what, q)
 WHERE v.name LIKE 'kpi\_%';
SELECT name, what, ms, base_ms AS "count(*) ms", round(ms / base_ms, 1) AS ratio FROM t ORDER BY name, what DESC;
-- the marked-only refresh (the worker's) of 1,000 changed accounts: the 1 % marks above
-- changed nothing, so they go without a refresh; then 1,000 accounts marked, recomputed
DELETE FROM subbilling_internal.kpi_dirty_accounts;
INSERT INTO subbilling_internal.kpi_dirty_accounts (account_id)
SELECT n FROM generate_series(1, :n, greatest(:n / 1000, 1)) AS n LIMIT 1000;
\timing on
SELECT refresh_kpi_snapshots(true) AS marked_only_rows;
\timing off
