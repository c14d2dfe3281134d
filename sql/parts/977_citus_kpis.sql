
-- ============================================================================
-- KPIs kept by triggers, on Citus: the aging rows and the per-period usage
-- (upsell_candidates).  docs/citus.md
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
-- The statement triggers on usage run on the usage shard, on a worker.  On
-- one server kpi_usage_periods_apply joins the changed rows with the
-- subscriptions in a few set-based statements; on Citus such a statement has
-- no account to route by, runs on every shard from the worker and writes
-- over several nodes from inside a trigger (refused, or a two-phase commit
-- started on a worker).  kpi_usage_periods_apply calls this instead on
-- Citus: the same changes, one subscription at a time, every statement on
-- that account's shard (the worker's own shards: no other node takes part).
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

-- The kept per-period usage: kpi_usage_periods_apply one subscription at a time.

CREATE FUNCTION subbilling_internal.kpi_usage_periods_apply_citus(acc bigint[], sub bigint[], days date[], qty numeric[])
RETURNS void
LANGUAGE plpgsql SET search_path = subbilling, pg_catalog, pg_temp AS $$
DECLARE
    one     record;
BEGIN
    FOR one IN SELECT d.a, d.s FROM unnest(acc, sub) AS d(a, s) GROUP BY d.a, d.s ORDER BY d.a, d.s LOOP
        INSERT INTO subbilling_internal.kpi_usage_periods (account_id, subscription_id, billing_anchor, billing_period, starts, used)
        VALUES (one.a, one.s, NULL, NULL, '{}', '{}')
        ON CONFLICT DO NOTHING;
        IF FOUND THEN
            -- the subscription's first usage: its status, currency, anchor and items, read
            -- under a share lock (as on one server)
            PERFORM FROM subbilling.subscriptions s WHERE s.account_id = one.a AND s.id = one.s FOR SHARE;
            UPDATE subbilling_internal.kpi_usage_periods w
               SET sub_status = s.status, sub_currency = s.currency, sub_anchor = s.billing_anchor
              FROM subbilling.subscriptions s
             WHERE s.account_id = one.a AND s.id = one.s AND w.account_id = one.a AND w.subscription_id = one.s;
            INSERT INTO subbilling_internal.kpi_usage_items (account_id, id, subscription_id, plan_id, kind, validity, voided_at)
            SELECT i.account_id, i.id, i.subscription_id, i.plan_id, i.kind, i.validity, i.voided_at
              FROM subbilling.subscription_items i
             WHERE i.account_id = one.a AND i.subscription_id = one.s
            ON CONFLICT (account_id, id) DO UPDATE
               SET plan_id = excluded.plan_id, kind = excluded.kind, validity = excluded.validity, voided_at = excluded.voided_at;
        END IF;
        PERFORM FROM subbilling_internal.kpi_usage_periods w
         WHERE w.account_id = one.a AND w.subscription_id = one.s FOR UPDATE;
        WITH d AS (
            SELECT d.day, d.q FROM unnest(acc, sub, days, qty) AS d(a, s, day, q) WHERE d.a = one.a AND d.s = one.s
        ),
        k0 AS (
            SELECT w.starts, w.used, w.billing_anchor AS kept_anchor, w.billing_period AS kept_period, s.billing_anchor,
                   (SELECT p.billing_period FROM subbilling.subscription_items i JOIN subbilling.plans p ON p.id = i.plan_id
                     WHERE i.account_id = one.a AND i.subscription_id = one.s AND i.kind = 'base'
                       AND i.voided_at IS NULL AND i.validity @> current_date
                     ORDER BY i.id LIMIT 1) AS billing_period
              FROM subbilling_internal.kpi_usage_periods w
              JOIN subbilling.subscriptions s ON s.account_id = w.account_id AND s.id = w.subscription_id
             WHERE w.account_id = one.a AND w.subscription_id = one.s AND s.account_id = one.a AND s.id = one.s
        ),
        k AS (
            SELECT k0.*, coalesce(k0.kept_anchor = k0.billing_anchor AND k0.kept_period = k0.billing_period, false) AS same
              FROM k0
        ),
        t AS (
            -- the same key: the kept totals and the changes
            SELECT x.ps, x.q
              FROM k CROSS JOIN LATERAL unnest(k.starts, k.used) AS x(ps, q)
             WHERE k.same
            UNION ALL
            SELECT subbilling.period_start(k.billing_anchor, k.billing_period,
                                           subbilling.period_index(k.billing_anchor, k.billing_period, d.day)), d.q
              FROM k CROSS JOIN d
             WHERE k.same AND d.day IS NOT NULL
            UNION ALL
            -- a new key: all the usage
            SELECT subbilling.period_start(k.billing_anchor, k.billing_period,
                                           subbilling.period_index(k.billing_anchor, k.billing_period, u.usage_date)), u.quantity
              FROM k JOIN subbilling.usage u ON u.account_id = one.a AND u.subscription_id = one.s
             WHERE NOT k.same AND k.billing_period IS NOT NULL
        ),
        tot AS (
            SELECT t.ps, sum(t.q) AS q FROM t GROUP BY t.ps HAVING sum(t.q) <> 0
        ),
        r AS (
            SELECT CASE WHEN k.billing_period IS NOT NULL THEN k.billing_anchor END AS billing_anchor, k.billing_period,
                   coalesce((SELECT array_agg(tot.ps ORDER BY tot.ps) FROM tot), '{}') AS starts,
                   coalesce((SELECT array_agg(tot.q ORDER BY tot.ps) FROM tot), '{}') AS used
              FROM k
        )
        UPDATE subbilling_internal.kpi_usage_periods w
           SET billing_anchor = r.billing_anchor, billing_period = r.billing_period, starts = r.starts, used = r.used
          FROM r
         WHERE w.account_id = one.a AND w.subscription_id = one.s;
    END LOOP;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_usage_periods_apply_citus(bigint[], bigint[], date[], numeric[]) IS 'internal (Citus): kpi_usage_periods_apply one subscription at a time, every statement on its account''s shard';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_usage_periods_apply_citus(bigint[], bigint[], date[], numeric[]) FROM PUBLIC;
