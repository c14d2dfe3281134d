
-- ============================================================================
-- KPIs kept by triggers, on Citus: the aging rows.  docs/citus.md
--
-- These triggers run on a shard, on a worker.  A query there that Citus does
-- not prune to the account's shard (a join through a view filtered with
-- = ANY, a join with the changed rows' arrays) runs on every shard from the
-- worker: a connection from the worker to the other worker inside the
-- coordinator's transaction, which we saw crash a worker at commit.  The
-- Citus branches of the triggers call these instead: every statement on one
-- account's rows, so on the worker's own shard alone.
--
-- The aging rows: kpi_aging_refresh for one account, its open items read
-- with account_id = the account (the view kpi_aging_source, written out).
--
-- (The usage triggers on Citus: kpi_usage_periods_enter in
-- sql/parts/900_kpis.sql enters a first-used subscription one at a time;
-- the queue rows go to the usage's own shard.)
-- ============================================================================

CREATE FUNCTION subbilling_internal.kpi_aging_refresh_citus(acct bigint) RETURNS void
LANGUAGE plpgsql SET search_path = subbilling, pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO subbilling_internal.kpi_aging (account_id, currency, time_zone, due_dates, cum_minor, undated_minor)
    SELECT DISTINCT o.account_id, o.currency, ''::text, '{}'::date[], '{0}'::bigint[], 0::bigint
      FROM subbilling_internal.kpi_open_items o
     WHERE o.account_id = acct
    ON CONFLICT DO NOTHING;
    PERFORM FROM subbilling_internal.kpi_aging g WHERE g.account_id = acct ORDER BY g.currency FOR UPDATE;
    WITH s AS (
        SELECT d.account_id, d.currency, a.time_zone,
               coalesce(array_agg(d.due_date ORDER BY d.due_date) FILTER (WHERE d.due_date IS NOT NULL), '{}') AS due_dates,
               '{0}'::bigint[] || coalesce(array_agg(d.cum::bigint ORDER BY d.due_date) FILTER (WHERE d.due_date IS NOT NULL), '{}') AS cum_minor,
               coalesce(sum(d.open_minor) FILTER (WHERE d.due_date IS NULL), 0)::bigint AS undated_minor
          FROM (SELECT o.account_id, o.currency, o.due_date, sum(o.open_minor) AS open_minor,
                       sum(sum(o.open_minor)) OVER (PARTITION BY o.account_id, o.currency ORDER BY o.due_date) AS cum
                  FROM subbilling_internal.kpi_open_items o
                 WHERE o.account_id = acct
                 GROUP BY o.account_id, o.currency, o.due_date) d
          JOIN subbilling.accounts a ON a.id = d.account_id
         WHERE a.id = acct
         GROUP BY d.account_id, d.currency, a.time_zone
    ),
    gone AS (DELETE FROM subbilling_internal.kpi_aging g
              WHERE g.account_id = acct
                AND NOT EXISTS (SELECT FROM s WHERE s.currency = g.currency))
    INSERT INTO subbilling_internal.kpi_aging AS g (account_id, currency, time_zone, due_dates, cum_minor, undated_minor)
    SELECT s.account_id, s.currency, s.time_zone, s.due_dates, s.cum_minor, s.undated_minor FROM s
    ON CONFLICT (account_id, currency) DO UPDATE
       SET time_zone = excluded.time_zone, due_dates = excluded.due_dates, cum_minor = excluded.cum_minor,
           undated_minor = excluded.undated_minor;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_aging_refresh_citus(bigint) IS 'internal (Citus): kpi_aging_refresh of one account, every statement on its shard';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_aging_refresh_citus(bigint) FROM PUBLIC;

