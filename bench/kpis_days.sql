-- KPI snapshots across days and ar_aging (bench/kpis.sh with DAYS=1), on the data that
-- bench/kpis_data.sql built and a snapshot refresh_kpi_snapshots() took today: every MRR
-- view's current month read on the day after the snapshot (computed_on set back one day:
-- the closed months from the snapshot, the current month live), the same in read mode
-- snapshot (subbilling.kpi_read: the snapshot's month sums as they are, nothing live; on a
-- snapshot of today and of yesterday, the same work), the daily refresh that
-- brings it to today (refresh_kpi_snapshots(true)), and ar_aging against its previous
-- formula (width_bucket per boundary, amount() per column), each against count(*) of the
-- tables it reads in the same run.  Not a test: nothing passes or fails.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET search_path = subbilling, public;
SET jit = off;
SELECT set_config('bench.runs', :'runs', false);
-- the best of bench.runs runs of a query (after one warm-up), in ms; with once, one run
CREATE FUNCTION pg_temp.ms(q text, once boolean DEFAULT false) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
    t0   timestamptz;
    best numeric;
    x    bigint;
BEGIN
    IF NOT once THEN
        EXECUTE 'SELECT count(*) FROM (' || q || ') q' INTO x;
    END IF;
    FOR i IN 1 .. CASE WHEN once THEN 1 ELSE current_setting('bench.runs')::integer END LOOP
        t0 := clock_timestamp();
        EXECUTE 'SELECT count(*) FROM (' || q || ') q' INTO x;
        best := least(best, extract(epoch FROM clock_timestamp() - t0) * 1000);
    END LOOP;
    RETURN round(best, 1);
END $$;
CREATE FUNCTION pg_temp.base(tables text[]) RETURNS numeric LANGUAGE sql AS $$
    SELECT sum(pg_temp.ms('SELECT 1 FROM subbilling.' || x)) FROM unnest(tables) AS x
$$;
CREATE TEMP TABLE t (name text, what text, ms numeric, base_ms numeric);
\pset footer off

-- ar_aging, and its previous formula; every column computed (count(*) over the view alone
-- lets the planner drop the columns nobody reads: the 'count(*)' row)
CREATE TEMP VIEW ar_aging_before AS
SELECT k.account_id, k.currency,
       subbilling.amount(subbilling.price_minor(k.cum_minor[cardinality(k.cum_minor)]
                                                - k.cum_minor[width_bucket(k.today - 1, k.due_dates) + 1], k.currency)) AS current,
       subbilling.amount(subbilling.price_minor(k.cum_minor[width_bucket(k.today - 1, k.due_dates) + 1]
                                                - k.cum_minor[width_bucket(k.today - 31, k.due_dates) + 1], k.currency)) AS overdue_1_30,
       subbilling.amount(subbilling.price_minor(k.cum_minor[width_bucket(k.today - 31, k.due_dates) + 1]
                                                - k.cum_minor[width_bucket(k.today - 61, k.due_dates) + 1], k.currency)) AS overdue_31_60,
       subbilling.amount(subbilling.price_minor(k.cum_minor[width_bucket(k.today - 61, k.due_dates) + 1]
                                                - k.cum_minor[width_bucket(k.today - 91, k.due_dates) + 1], k.currency)) AS overdue_61_90,
       subbilling.amount(subbilling.price_minor(k.cum_minor[width_bucket(k.today - 91, k.due_dates) + 1], k.currency)) AS overdue_90_plus,
       subbilling.amount(subbilling.price_minor(k.cum_minor[cardinality(k.cum_minor)] + k.undated_minor, k.currency)) AS total
  FROM (SELECT g.account_id, g.currency, g.due_dates, g.cum_minor, g.undated_minor,
               (now() AT TIME ZONE g.time_zone)::date AS today
          FROM subbilling_internal.kpi_aging g
        OFFSET 0) k;
SELECT count(*) AS differing_rows FROM ((TABLE ar_aging EXCEPT ALL TABLE ar_aging_before)
                                        UNION ALL (TABLE ar_aging_before EXCEPT ALL TABLE ar_aging)) x;
INSERT INTO t VALUES
    ('ar_aging', 'SELECT *', pg_temp.ms('SELECT x FROM (SELECT * FROM subbilling.ar_aging) x WHERE x IS NOT NULL'),
     pg_temp.base('{journal_lines,invoices,accounts}')),
    ('ar_aging (before: width_bucket)', 'SELECT *', pg_temp.ms('SELECT x FROM (SELECT * FROM ar_aging_before) x WHERE x IS NOT NULL'),
     pg_temp.base('{journal_lines,invoices,accounts}')),
    ('ar_aging', 'count(*)', pg_temp.ms('SELECT 1 FROM subbilling.ar_aging'), pg_temp.base('{journal_lines,invoices,accounts}'));

-- the MRR views: a snapshot of today, then of yesterday (computed live from its boundary month)
CREATE TEMP TABLE v (name text);
INSERT INTO v VALUES ('kpi_mrr'), ('kpi_mrr_movements'), ('kpi_churn'), ('kpi_ltv'), ('kpi_growth');
SELECT pg_temp.base('{subscription_items,subscriptions,plans,subscription_discounts,subscription_pauses,dunning_actions}') AS mrr_base
\gset
INSERT INTO t
SELECT v.name, 'snapshot of today, current month',
       pg_temp.ms('SELECT * FROM subbilling.' || v.name || ' WHERE month = date_trunc(''month'', current_date)'), :mrr_base
  FROM v;
SET subbilling.kpi_read = snapshot;
INSERT INTO t
SELECT v.name, 'snapshot of today, mode snapshot, current month',
       pg_temp.ms('SELECT * FROM subbilling.' || v.name || ' WHERE month = date_trunc(''month'', current_date)'), :mrr_base
  FROM v;
RESET subbilling.kpi_read;
UPDATE subbilling_internal.kpi_snapshot_state SET computed_on = current_date - 1;
-- read mode snapshot on yesterday's snapshot: its last month (yesterday's) and 24 months
SET subbilling.kpi_read = snapshot;
SELECT as_of, read_mode, marked_accounts FROM subbilling.kpi_snapshot_status;
INSERT INTO t
SELECT v.name, 'snapshot of yesterday, mode snapshot, its month',
       pg_temp.ms('SELECT * FROM subbilling.' || v.name || ' WHERE month = date_trunc(''month'', current_date - 1)'), :mrr_base
  FROM v;
INSERT INTO t
SELECT 'kpi_mrr', 'snapshot of yesterday, mode snapshot, 24 months',
       pg_temp.ms('SELECT * FROM subbilling.kpi_mrr WHERE month > date_trunc(''month'', current_date - 1) - interval ''24 months'''),
       :mrr_base;
RESET subbilling.kpi_read;
INSERT INTO t
SELECT v.name, 'snapshot of yesterday, current month (one run)',
       pg_temp.ms('SELECT * FROM subbilling.' || v.name || ' WHERE month = date_trunc(''month'', current_date)', true), :mrr_base
  FROM v;
INSERT INTO t
SELECT 'kpi_mrr', 'snapshot of yesterday, 24 months (one run)',
       pg_temp.ms('SELECT * FROM subbilling.kpi_mrr WHERE month > date_trunc(''month'', current_date) - interval ''24 months''', true),
       :mrr_base;
SELECT name, what, ms, base_ms AS "count(*) ms", round(ms / base_ms, 2) AS ratio FROM t ORDER BY name, what;
-- the daily refresh (the worker's first after midnight): the months from the boundary on
\timing on
SELECT refresh_kpi_snapshots(true) AS daily_refresh_rows;
\timing off
SELECT :mrr_base AS "count(*) ms of the MRR views' tables";
TRUNCATE t;
INSERT INTO t
SELECT 'kpi_mrr', 'after the daily refresh, current month',
       pg_temp.ms('SELECT * FROM subbilling.kpi_mrr WHERE month = date_trunc(''month'', current_date)'), :mrr_base;
SELECT name, what, ms, base_ms AS "count(*) ms", round(ms / base_ms, 2) AS ratio FROM t ORDER BY name, what;
