
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



-- ============================================================================
-- The KPI snapshots on Citus (docs/citus.md, docs/kpis.md).
--
-- kpi_customer_movements reads every shard in a way Citus cannot plan (a
-- lateral subquery with OFFSET over the plans, a reference table), even when
-- filtered by one account: the filter does not reach the correlated
-- subqueries, so Citus does not route the query to one shard.  On Citus the
-- same rows come from kpi_customer_movements_citus: the same query with every
-- table filtered by the accounts of one shard (so that Citus routes it, as one
-- command, to that shard) and today passed in (the snapshot's day, read once
-- by the caller), called shard by shard by kpi_customer_movements_shards.
-- refresh_kpi_snapshots builds the snapshot rows from them
-- (kpi_snapshot_refresh_citus); distribute() gives the views' live part,
-- kpi_movement_parts, the body of citus_kpi_movement_parts, which reads them.
-- ============================================================================

-- kpi_customer_movements of the accounts accts (all on one shard), as of today: kept equal to
-- the view (the Citus tier compares the figures with the single server's).
CREATE FUNCTION subbilling_internal.kpi_customer_movements_citus(accts bigint[], today date)
    RETURNS TABLE (account_id bigint, currency text, month date, cur bigint, prev bigint,
                   subscriptions bigint, first_month date)
    LANGUAGE plpgsql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
    SET plan_cache_mode = force_custom_plan
AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
    SELECT c.account_id, c.currency, x.month, x.cur, x.prev, x.subscriptions, c.first_month
      FROM (SELECT cm.account_id, cm.currency, cm.month, cm.mrr, cm.subscriptions,
                   min(cm.month) OVER w AS first_month,
                   lag(cm.month) OVER w AS prev_month, lag(cm.mrr) OVER w AS prev_mrr,
                   lead(cm.month) OVER w AS next_month
              FROM (SELECT ism.account_id, ism.currency, ism.month, sum(ism.mrr)::bigint AS mrr,
                           count(*) AS subscriptions
                      FROM (SELECT im.account_id, im.currency, im.month, im.subscription_id, sum(im.mrr) AS mrr
                      FROM (SELECT it.account_id, it.subscription_id, it.currency, g.month,
                                   CASE WHEN NOT it.discounted THEN it.mrr
                                        ELSE (SELECT subbilling.minor_units(subbilling.monthly(
                                                         it.full_price - LEAST(it.full_price, coalesce(sum(
                                                             CASE WHEN d.percent_off IS NOT NULL
                                                                  THEN it.full_price * (d.percent_off / 100)
                                                                  ELSE d.amount_off END),
                                                             subbilling.price_minor(0, it.currency))),
                                                         it.billing_period))
                                                FROM subbilling.subscription_discounts d
                                                JOIN subbilling.campaigns c ON c.id = d.campaign_id
                                               CROSS JOIN LATERAL (
                                                     SELECT subbilling.period_start(it.billing_anchor, it.billing_period,
                                                                subbilling.period_index(it.billing_anchor, it.billing_period, g.day))
                                                            AS key_start) k
                                               WHERE d.account_id = ANY (accts) AND d.account_id = it.account_id AND d.subscription_id = it.subscription_id
                                                 AND c.duration <> 'once'
                                                 AND d.starts_on <= k.key_start
                                                 AND (d.periods IS NULL
                                                      OR subbilling.period_index(it.billing_anchor, it.billing_period, k.key_start)
                                                         - subbilling.period_index(it.billing_anchor, it.billing_period, d.starts_on)
                                                         < d.periods)
                                                 AND (c.plan_codes IS NULL OR it.plan_code = ANY (c.plan_codes))
                                                 AND (d.percent_off IS NOT NULL OR it.kind = 'base')) END AS mrr
                              FROM (SELECT i.account_id, i.subscription_id, i.kind, i.validity, s.currency, s.status,
                                           s.billing_anchor, p.billing_period, p.code AS plan_code,
                                           coalesce(s.trial_end, s.start_date) AS from_day, f.full_price, f.mrr,
                                           f.m0, f.m1, f.discounted, f.held
                                      FROM subbilling.subscription_items i
                                      JOIN subbilling.subscriptions s ON s.account_id = i.account_id AND s.id = i.subscription_id
                                      JOIN subbilling.plans p ON p.id = i.plan_id AND p.pricing_model <> 'usage'
                                     CROSS JOIN LATERAL (
                                           -- per item; the planner may compute this before the join to
                                           -- the subscription is checked, so nothing here may fail for
                                           -- another subscription's row (the zero is the price's own)
                                           SELECT q.full_price,
                                                  subbilling.minor_units(subbilling.monthly(
                                                      q.full_price - LEAST(q.full_price, q.full_price * 0),
                                                      p.billing_period)) AS mrr,
                                                  date_trunc('month', GREATEST(lower(i.validity), coalesce(s.trial_end, s.start_date))) AS m0,
                                                  date_trunc('month', LEAST(coalesce(upper(i.validity) - 1, today), today)) AS m1,
                                                  EXISTS (SELECT FROM subbilling.subscription_discounts d
                                                           WHERE d.account_id = ANY (accts) AND d.account_id = i.account_id
                                                             AND d.subscription_id = i.subscription_id) AS discounted,
                                                  EXISTS (SELECT FROM subbilling.subscription_pauses z
                                                           WHERE z.account_id = ANY (accts) AND z.account_id = i.account_id
                                                             AND z.subscription_id = i.subscription_id)
                                                  OR EXISTS (SELECT FROM subbilling.dunning_actions a
                                                              WHERE a.account_id = ANY (accts) AND a.account_id = i.account_id
                                                                AND a.subscription_id = i.subscription_id
                                                                AND a.action = 'payment_stop') AS held
                                             FROM (SELECT CASE WHEN p.pricing_model = 'flat' THEN p.price
                                                               WHEN p.pricing_model = 'per_unit' THEN p.price * i.quantity
                                                               WHEN p.pricing_model = 'package'
                                                                    THEN subbilling.package_price(i.quantity, p.package_size, p.price)
                                                               ELSE subbilling.tiered_price(i.quantity, p.tiers, p.pricing_model) END
                                                              AS full_price
                                                    OFFSET 0) q
                                           OFFSET 0) f
                                     WHERE i.voided_at IS NULL AND i.account_id = ANY (accts) AND s.account_id = ANY (accts)) it
                             CROSS JOIN LATERAL (
                                   SELECT m::date AS month,
                                          LEAST((m + interval '1 month' - interval '1 day')::date, today) AS day
                                     FROM generate_series(it.m0, it.m1,
                                                          interval '1 month') AS m) g
                             WHERE g.day <@ it.validity
                               AND g.day >= it.from_day
                               AND NOT (g.day = today AND it.status = 'suspended')
                               AND (NOT it.held
                                    OR (NOT EXISTS (SELECT FROM subbilling.subscription_pauses z
                                                     WHERE z.account_id = ANY (accts) AND z.account_id = it.account_id AND z.subscription_id = it.subscription_id
                                                       AND z.during @> g.day)
                                        AND NOT EXISTS (SELECT FROM subbilling.dunning_actions a
                                                         WHERE a.account_id = ANY (accts) AND a.account_id = it.account_id
                                                           AND a.subscription_id = it.subscription_id
                                                           AND a.action = 'payment_stop' AND a.executed_on <= g.day
                                                           AND (a.lifted_at IS NULL OR a.lifted_at::date > g.day))))) im
                             GROUP BY im.account_id, im.currency, im.month, im.subscription_id) ism
                     GROUP BY ism.account_id, ism.currency, ism.month) cm
             WHERE cm.mrr > 0
            WINDOW w AS (PARTITION BY cm.account_id, cm.currency ORDER BY cm.month)) c
     CROSS JOIN LATERAL (
           SELECT c.month, c.mrr, CASE WHEN c.prev_month = (c.month - interval '1 month')::date THEN c.prev_mrr ELSE 0 END,
                  c.subscriptions
            UNION ALL
           SELECT (c.month + interval '1 month')::date, 0::bigint, c.mrr, 0::bigint
            WHERE c.month < date_trunc('month', today)
              AND (c.next_month IS NULL OR c.next_month <> (c.month + interval '1 month')::date))
           AS x(month, cur, prev, subscriptions);
END
$$;
COMMENT ON FUNCTION subbilling_internal.kpi_customer_movements_citus(bigint[], date) IS 'internal (Citus): kpi_customer_movements of accounts of one shard as of a day, every table filtered by the accounts (one command on the shard)';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_customer_movements_citus(bigint[], date) FROM PUBLIC;

-- kpi_customer_movements_citus shard by shard: of the accounts accts, or of every account when
-- accts is null, as of today.
CREATE FUNCTION subbilling_internal.kpi_customer_movements_shards(accts bigint[], today date)
    RETURNS TABLE (account_id bigint, currency text, month date, cur bigint, prev bigint,
                   subscriptions bigint, first_month date)
    LANGUAGE plpgsql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    ids   bigint[] := accts;
    shard bigint[];
    grp   bigint[];
BEGIN
    IF ids IS NULL THEN
        ids := ARRAY(SELECT a.id FROM subbilling.accounts a);
    END IF;
    IF coalesce(cardinality(ids), 0) = 0 THEN
        RETURN;
    END IF;
    EXECUTE $q$SELECT array_agg(pg_catalog.get_shard_id_for_distribution_column('subbilling.accounts', u.a) ORDER BY u.o)
                 FROM unnest($1) WITH ORDINALITY AS u(a, o)$q$ INTO shard USING ids;
    FOR grp IN SELECT array_agg(DISTINCT u.a ORDER BY u.a) FROM unnest(shard, ids) AS u(s, a)
                GROUP BY u.s ORDER BY min(u.a) LOOP
        RETURN QUERY SELECT * FROM subbilling_internal.kpi_customer_movements_citus(grp, today);
    END LOOP;
END
$$;
COMMENT ON FUNCTION subbilling_internal.kpi_customer_movements_shards(bigint[], date) IS 'internal (Citus): kpi_customer_movements of the given accounts (null: all) as of a day, one command per shard';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_customer_movements_shards(bigint[], date) FROM PUBLIC;

-- refresh_kpi_snapshots on Citus, after the usage fold, under the same lock.  With only_marked
-- and a snapshot of today in the session's time zone: the marked accounts' rows replaced; else
-- (none, an earlier day's, another time zone's) every account's rows rebuilt as of today.  Either
-- way the month sums are summed again from the rows (a sum over the shards, cheap next to
-- computing the rows), so that no ON CONFLICT update runs on the reference table.  The clock is
-- read here, once, and passed on: today to the computation, now() for refreshed_at (Citus
-- refuses a volatile function in an update of a reference table).  The recognition snapshot
-- likewise (kpi_recognition_accounts, which Citus plans).  Returns the customer rows written.
CREATE FUNCTION subbilling_internal.kpi_snapshot_refresh_citus(only_marked boolean) RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    today date := current_date;
    tz    text := pg_catalog.current_setting('TimeZone');
    at    timestamptz := pg_catalog.now();
    n     bigint;
    dirty bigint[];
    rdirty bigint[];
BEGIN
    IF only_marked AND EXISTS (SELECT FROM subbilling_internal.kpi_snapshot_state z
                                WHERE z.computed_on = today AND z.time_zone = tz AND NOT z.building) THEN
        WITH gone AS (DELETE FROM subbilling_internal.kpi_dirty_accounts d RETURNING d.account_id)
        SELECT array_agg(DISTINCT gone.account_id) INTO dirty FROM gone;
        WITH gone AS (DELETE FROM subbilling_internal.kpi_recognition_dirty d RETURNING d.account_id)
        SELECT array_agg(DISTINCT gone.account_id) INTO rdirty FROM gone;
        UPDATE subbilling_internal.kpi_snapshot_state SET refreshed_at = at;
        IF rdirty IS NOT NULL THEN
            DELETE FROM subbilling_internal.kpi_recognition_snapshot c WHERE c.account_id = ANY (rdirty);
            INSERT INTO subbilling_internal.kpi_recognition_snapshot (account_id, currency, month, line_months, billed, recognised)
            SELECT c.account_id, c.currency, c.month, c.line_months, c.billed, c.recognised
              FROM subbilling_internal.kpi_recognition_accounts c
             WHERE c.account_id = ANY (rdirty);
            PERFORM subbilling_internal.kpi_snapshot_sums_citus(false, true);
        END IF;
        IF dirty IS NULL THEN
            RETURN 0;
        END IF;
        LOCK TABLE subbilling.plans, subbilling.campaigns IN SHARE MODE;
        DELETE FROM subbilling_internal.kpi_snapshot_customers c WHERE c.account_id = ANY (dirty);
        INSERT INTO subbilling_internal.kpi_snapshot_customers (account_id, currency, month, cur, prev, subscriptions, first_month)
        SELECT c.account_id, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
          FROM subbilling_internal.kpi_customer_movements_shards(dirty, today) c;
        GET DIAGNOSTICS n = ROW_COUNT;
        PERFORM subbilling_internal.kpi_snapshot_sums_citus(true, false);
        RETURN n;
    END IF;
    LOCK TABLE subbilling.plans, subbilling.campaigns IN SHARE MODE;
    DELETE FROM subbilling_internal.kpi_dirty_accounts;
    DELETE FROM subbilling_internal.kpi_snapshot_customers;
    DELETE FROM subbilling_internal.kpi_snapshot_state;
    INSERT INTO subbilling_internal.kpi_snapshot_state (computed_on, time_zone, building, refreshed_at)
    VALUES (today, tz, true, at);
    INSERT INTO subbilling_internal.kpi_snapshot_customers (account_id, currency, month, cur, prev, subscriptions, first_month)
    SELECT c.account_id, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
      FROM subbilling_internal.kpi_customer_movements_shards(NULL, today) c;
    GET DIAGNOSTICS n = ROW_COUNT;
    DELETE FROM subbilling_internal.kpi_recognition_dirty;
    DELETE FROM subbilling_internal.kpi_recognition_snapshot;
    INSERT INTO subbilling_internal.kpi_recognition_snapshot (account_id, currency, month, line_months, billed, recognised)
    SELECT c.account_id, c.currency, c.month, c.line_months, c.billed, c.recognised
      FROM subbilling_internal.kpi_recognition_accounts c;
    PERFORM subbilling_internal.kpi_snapshot_sums_citus(true, true);
    UPDATE subbilling_internal.kpi_snapshot_state SET building = false;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling_internal.kpi_snapshot_refresh_citus(boolean) IS 'internal (Citus): refresh_kpi_snapshots after the usage fold: the marked accounts'' snapshot rows (only_marked, snapshot of today) or all of them, computed shard by shard, and the month sums summed again; returns the customer rows written';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_snapshot_refresh_citus(boolean) FROM PUBLIC;

-- The month sums of the snapshot rows (customers: kpi_snapshot_months; recognition:
-- kpi_recognition_months), replaced: the sums of kpi_movement_parts and kpi_recognition_parts
-- while building, read over the shards into the coordinator and written to the reference tables.
CREATE FUNCTION subbilling_internal.kpi_snapshot_sums_citus(customers boolean, recognition boolean) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF customers THEN
        DELETE FROM subbilling_internal.kpi_snapshot_months;
        INSERT INTO subbilling_internal.kpi_snapshot_months
        SELECT r.currency, r.month, count(*),
               sum(r.prev)::bigint,
               coalesce(sum(r.cur) FILTER (WHERE r.prev = 0 AND r.first_month = r.month), 0)::bigint,
               coalesce(sum(r.cur - r.prev) FILTER (WHERE r.prev > 0 AND r.cur > r.prev), 0)::bigint,
               coalesce(sum(r.cur) FILTER (WHERE r.prev = 0 AND r.first_month < r.month), 0)::bigint,
               coalesce(sum(r.prev - r.cur) FILTER (WHERE r.cur > 0 AND r.cur < r.prev), 0)::bigint,
               coalesce(sum(r.prev) FILTER (WHERE r.cur = 0), 0)::bigint,
               sum(r.cur)::bigint,
               count(*) FILTER (WHERE r.prev > 0),
               count(*) FILTER (WHERE r.prev = 0 AND r.first_month = r.month),
               count(*) FILTER (WHERE r.prev = 0 AND r.first_month < r.month),
               count(*) FILTER (WHERE r.cur = 0),
               count(*) FILTER (WHERE r.cur > 0),
               sum(r.subscriptions)::bigint
          FROM subbilling_internal.kpi_snapshot_customers r
         GROUP BY r.currency, r.month;
    END IF;
    IF recognition THEN
        DELETE FROM subbilling_internal.kpi_recognition_months;
        INSERT INTO subbilling_internal.kpi_recognition_months
        SELECT r.currency, r.month, sum(r.line_months)::bigint, sum(r.billed)::bigint, sum(r.recognised)::bigint
          FROM subbilling_internal.kpi_recognition_snapshot r
         GROUP BY r.currency, r.month;
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling_internal.kpi_snapshot_sums_citus(boolean, boolean) IS 'internal (Citus): kpi_snapshot_months and/or kpi_recognition_months summed again from the snapshot rows';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_snapshot_sums_citus(boolean, boolean) FROM PUBLIC;

-- kpi_movement_parts on Citus: distribute() gives kpi_movement_parts the body of
-- citus_kpi_movement_parts, the sums of these rows (the single server keeps its own).  The same
-- signed sums, in parts that each read either the live rows (kpi_customer_movements_shards,
-- computed on the coordinator shard by shard) or the snapshot rows (over the shards): Citus
-- cannot plan a query that joins a function's rows with a distributed table.  A snapshot of
-- today: the marked accounts live less their snapshot rows; of an earlier day (same time
-- zone): every account live from the boundary month on and the marked accounts in every month,
-- less the marked accounts' snapshot rows of the closed months (the definition itself, where
-- one server reads kpi_customer_movements_recent); none: every account live; while building,
-- the new snapshot rows.  Rows of kpi_snapshot_months' type (a named type, which Citus
-- deparses), several per currency and month.  SECURITY DEFINER, executable by no role but
-- the owner, like every helper: on Citus the KPI views are read by the owner (docs/citus.md,
-- Limits: Citus runs a view's shard queries as the session's user).
CREATE FUNCTION subbilling_internal.kpi_movement_parts_citus() RETURNS SETOF subbilling_internal.kpi_snapshot_months
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    today    date := current_date;
    tz       text := pg_catalog.current_setting('TimeZone');
    usable   boolean;
    aged     boolean;
    building boolean;
    b        date;
    dirty    bigint[];
    sums     text := $s$SELECT r.currency, r.month, sum(r.sign)::bigint, sum(r.sign * r.prev)::bigint,
           coalesce(sum(r.sign * r.cur) FILTER (WHERE r.prev = 0 AND r.first_month = r.month), 0)::bigint,
           coalesce(sum(r.sign * (r.cur - r.prev)) FILTER (WHERE r.prev > 0 AND r.cur > r.prev), 0)::bigint,
           coalesce(sum(r.sign * r.cur) FILTER (WHERE r.prev = 0 AND r.first_month < r.month), 0)::bigint,
           coalesce(sum(r.sign * (r.prev - r.cur)) FILTER (WHERE r.cur > 0 AND r.cur < r.prev), 0)::bigint,
           coalesce(sum(r.sign * r.prev) FILTER (WHERE r.cur = 0), 0)::bigint,
           sum(r.sign * r.cur)::bigint,
           coalesce(sum(r.sign) FILTER (WHERE r.prev > 0), 0)::bigint,
           coalesce(sum(r.sign) FILTER (WHERE r.prev = 0 AND r.first_month = r.month), 0)::bigint,
           coalesce(sum(r.sign) FILTER (WHERE r.prev = 0 AND r.first_month < r.month), 0)::bigint,
           coalesce(sum(r.sign) FILTER (WHERE r.cur = 0), 0)::bigint,
           coalesce(sum(r.sign) FILTER (WHERE r.cur > 0), 0)::bigint,
           sum(r.sign * r.subscriptions)::bigint
      FROM (%s) r GROUP BY r.currency, r.month$s$;
BEGIN
    SELECT z.computed_on = today AND z.time_zone = tz AND NOT z.building,
           z.computed_on <> today AND z.time_zone = tz AND NOT z.building,
           z.building, date_trunc('month', LEAST(z.computed_on, today))::date
      INTO usable, aged, building, b
      FROM subbilling_internal.kpi_snapshot_state z;
    usable := coalesce(usable, false);
    aged := coalesce(aged, false);
    building := coalesce(building, false);
    IF building THEN
        RETURN QUERY EXECUTE format(sums, $q$SELECT 1 AS sign, c.* FROM subbilling_internal.kpi_snapshot_customers c$q$);
        RETURN;
    END IF;
    SELECT array_agg(DISTINCT d.account_id) INTO dirty FROM subbilling_internal.kpi_dirty_accounts d;
    IF usable AND dirty IS NULL THEN
        RETURN;
    END IF;
    -- the live rows
    RETURN QUERY EXECUTE format(sums, $q$SELECT 1 AS sign, c.* FROM subbilling_internal.kpi_customer_movements_shards($1, $2) c
                                        WHERE NOT $3 OR c.month >= $4 OR c.account_id = ANY ($5)$q$)
        USING CASE WHEN usable THEN dirty END, today, aged, b, dirty;
    -- the marked accounts' snapshot rows
    IF (usable OR aged) AND dirty IS NOT NULL THEN
        RETURN QUERY EXECUTE format(sums, $q$SELECT -1 AS sign, c.* FROM subbilling_internal.kpi_snapshot_customers c
                                            WHERE c.account_id = ANY ($1) AND ($2 OR c.month < $3)$q$)
            USING dirty, usable, b;
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling_internal.kpi_movement_parts_citus() IS 'internal (Citus): the signed sums of kpi_movement_parts in parts (live rows computed shard by shard, snapshot rows over the shards), several rows per currency and month';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_movement_parts_citus() FROM PUBLIC;

CREATE VIEW subbilling_internal.citus_kpi_movement_parts WITH (security_barrier) AS
SELECT p.currency, p.month,
       sum(p.customer_rows)::bigint AS customer_rows, sum(p.start_mrr)::bigint AS start_mrr,
       sum(p.new_mrr)::bigint AS new_mrr, sum(p.expansion_mrr)::bigint AS expansion_mrr,
       sum(p.reactivation_mrr)::bigint AS reactivation_mrr, sum(p.contraction_mrr)::bigint AS contraction_mrr,
       sum(p.churned_mrr)::bigint AS churned_mrr, sum(p.end_mrr)::bigint AS end_mrr,
       sum(p.customers_start)::bigint AS customers_start, sum(p.new_customers)::bigint AS new_customers,
       sum(p.reactivated_customers)::bigint AS reactivated_customers,
       sum(p.churned_customers)::bigint AS churned_customers, sum(p.customers_end)::bigint AS customers_end,
       sum(p.subscriptions_end)::bigint AS subscriptions_end
  FROM subbilling_internal.kpi_movement_parts_citus() p
 GROUP BY p.currency, p.month;
COMMENT ON VIEW subbilling_internal.citus_kpi_movement_parts IS 'internal (Citus): the body distribute() gives kpi_movement_parts: the sums of kpi_movement_parts_citus per currency and month';
REVOKE ALL ON subbilling_internal.citus_kpi_movement_parts FROM PUBLIC;

-- ar_aging's query on Citus: the aging buckets of each row of kpi_aging in a LATERAL call.
-- The single server's view calls aging_buckets in the target list of an OFFSET 0 subquery (one
-- call per row) and expands the record outside it; Citus sends such a record to the
-- coordinator untyped ("record type has not been registered").  distribute() makes ar_aging
-- read this query (through citus_ar_aging_rows, for its readers).
CREATE VIEW subbilling_internal.citus_ar_aging WITH (security_barrier) AS
SELECT g.account_id, g.currency, b.current, b.overdue_1_30, b.overdue_31_60, b.overdue_61_90,
       b.overdue_90_plus, b.total
  FROM subbilling_internal.kpi_aging g
 CROSS JOIN LATERAL subbilling.aging_buckets(g.due_dates, g.cum_minor, g.undated_minor,
                                             (pg_catalog.now() AT TIME ZONE g.time_zone)::date, g.currency) b;
COMMENT ON VIEW subbilling_internal.citus_ar_aging IS 'internal (Citus): ar_aging''s query as Citus can run it (the buckets in a LATERAL call); distribute() makes ar_aging read it';
REVOKE ALL ON subbilling_internal.citus_ar_aging FROM PUBLIC;
