-- KPI full refresh in one linear pass: kpi_customer_movements computes each item's price,
-- MRR and months once and the movements with window functions; the marked-only refresh
-- corrects the month sums with kpi_movement_parts in the statement that claims the marks
-- (kpi_movement_delta, its copy, is gone).  Copies of the objects of sql/parts/900_kpis.sql
-- (docs/kpis.md).

CREATE OR REPLACE VIEW subbilling_internal.kpi_customer_movements WITH (security_barrier) AS
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
                                           WHERE d.account_id = it.account_id AND d.subscription_id = it.subscription_id
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
                                              date_trunc('month', LEAST(coalesce(upper(i.validity) - 1, current_date), current_date)) AS m1,
                                              EXISTS (SELECT FROM subbilling.subscription_discounts d
                                                       WHERE d.account_id = i.account_id
                                                         AND d.subscription_id = i.subscription_id) AS discounted,
                                              EXISTS (SELECT FROM subbilling.subscription_pauses z
                                                       WHERE z.account_id = i.account_id
                                                         AND z.subscription_id = i.subscription_id)
                                              OR EXISTS (SELECT FROM subbilling.dunning_actions a
                                                          WHERE a.account_id = i.account_id
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
                                 WHERE i.voided_at IS NULL) it
                         CROSS JOIN LATERAL (
                               SELECT m::date AS month,
                                      LEAST((m + interval '1 month' - interval '1 day')::date, current_date) AS day
                                 FROM generate_series(it.m0, it.m1,
                                                      interval '1 month') AS m) g
                         WHERE g.day <@ it.validity
                           AND g.day >= it.from_day
                           AND NOT (g.day = current_date AND it.status = 'suspended')
                           AND (NOT it.held
                                OR (NOT EXISTS (SELECT FROM subbilling.subscription_pauses z
                                                 WHERE z.account_id = it.account_id AND z.subscription_id = it.subscription_id
                                                   AND z.during @> g.day)
                                    AND NOT EXISTS (SELECT FROM subbilling.dunning_actions a
                                                     WHERE a.account_id = it.account_id
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
        WHERE c.month < date_trunc('month', current_date)
          AND (c.next_month IS NULL OR c.next_month <> (c.month + interval '1 month')::date))
       AS x(month, cur, prev, subscriptions);
COMMENT ON VIEW subbilling_internal.kpi_customer_movements IS 'internal: per account, currency and month, MRR this month and last (minor units), counted subscriptions, first month with MRR';

DROP FUNCTION subbilling_internal.kpi_movement_delta(bigint[]);

CREATE OR REPLACE FUNCTION subbilling.refresh_kpi_snapshots(only_marked boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = subbilling, pg_catalog, pg_temp AS $$
DECLARE
    n     bigint;
    dirty bigint[];
BEGIN
    IF only_marked IS NULL THEN
        RAISE EXCEPTION 'only_marked must not be null' USING ERRCODE = '22004';
    END IF;
    LOCK TABLE subbilling_internal.kpi_snapshot_state IN EXCLUSIVE MODE;
    IF only_marked AND EXISTS (SELECT FROM subbilling_internal.kpi_snapshot_state z
                                WHERE z.computed_on = current_date AND z.time_zone = current_setting('TimeZone')
                                  AND NOT z.building) THEN
        -- recognition: the same for the accounts whose invoices changed
        WITH gone AS (DELETE FROM subbilling_internal.kpi_recognition_dirty d RETURNING d.account_id)
        SELECT array_agg(DISTINCT gone.account_id) INTO dirty FROM gone;
        IF dirty IS NOT NULL THEN
            INSERT INTO subbilling_internal.kpi_recognition_months AS m
            SELECT p.* FROM subbilling_internal.kpi_recognition_delta(dirty) p
            ON CONFLICT (currency, month) DO UPDATE
               SET line_months = m.line_months + excluded.line_months, billed = m.billed + excluded.billed,
                   recognised = m.recognised + excluded.recognised;
            DELETE FROM subbilling_internal.kpi_recognition_snapshot c WHERE c.account_id = ANY (dirty);
            INSERT INTO subbilling_internal.kpi_recognition_snapshot (account_id, currency, month, line_months, billed, recognised)
            SELECT c.account_id, c.currency, c.month, c.line_months, c.billed, c.recognised
              FROM subbilling_internal.kpi_recognition_accounts c
             WHERE c.account_id = ANY (dirty);
        END IF;
        -- one statement: the marks it claims are the ones kpi_movement_parts
        -- sees (the same snapshot), whose sums (live less snapshot rows of
        -- the marked accounts) correct the month sums
        WITH gone AS (DELETE FROM subbilling_internal.kpi_dirty_accounts d RETURNING d.account_id),
        sums AS (
            INSERT INTO subbilling_internal.kpi_snapshot_months AS m
            SELECT p.* FROM subbilling_internal.kpi_movement_parts p
            ON CONFLICT (currency, month) DO UPDATE
               SET customer_rows = m.customer_rows + excluded.customer_rows, start_mrr = m.start_mrr + excluded.start_mrr,
                   new_mrr = m.new_mrr + excluded.new_mrr, expansion_mrr = m.expansion_mrr + excluded.expansion_mrr,
                   reactivation_mrr = m.reactivation_mrr + excluded.reactivation_mrr,
                   contraction_mrr = m.contraction_mrr + excluded.contraction_mrr,
                   churned_mrr = m.churned_mrr + excluded.churned_mrr, end_mrr = m.end_mrr + excluded.end_mrr,
                   customers_start = m.customers_start + excluded.customers_start,
                   new_customers = m.new_customers + excluded.new_customers,
                   reactivated_customers = m.reactivated_customers + excluded.reactivated_customers,
                   churned_customers = m.churned_customers + excluded.churned_customers,
                   customers_end = m.customers_end + excluded.customers_end,
                   subscriptions_end = m.subscriptions_end + excluded.subscriptions_end)
        SELECT array_agg(DISTINCT gone.account_id) INTO dirty FROM gone;
        IF dirty IS NULL THEN
            RETURN 0;
        END IF;
        DELETE FROM subbilling_internal.kpi_snapshot_customers c WHERE c.account_id = ANY (dirty);
        INSERT INTO subbilling_internal.kpi_snapshot_customers (account_id, currency, month, cur, prev, subscriptions, first_month)
        SELECT c.account_id, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
          FROM subbilling_internal.kpi_customer_movements c
         WHERE c.account_id = ANY (dirty);
        GET DIAGNOSTICS n = ROW_COUNT;
        RETURN n;
    END IF;
    LOCK TABLE subbilling.plans, subbilling.campaigns IN SHARE MODE;
    DELETE FROM subbilling_internal.kpi_dirty_accounts;
    DELETE FROM subbilling_internal.kpi_snapshot_customers;
    DELETE FROM subbilling_internal.kpi_snapshot_months;
    INSERT INTO subbilling_internal.kpi_snapshot_state AS z (computed_on, time_zone, building)
    VALUES (current_date, current_setting('TimeZone'), true)
    ON CONFLICT (only_row) DO UPDATE SET computed_on = excluded.computed_on, time_zone = excluded.time_zone,
                                         building = true, refreshed_at = pg_catalog.now();
    INSERT INTO subbilling_internal.kpi_snapshot_customers (account_id, currency, month, cur, prev, subscriptions, first_month)
    SELECT c.account_id, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
      FROM subbilling_internal.kpi_customer_movements c;
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO subbilling_internal.kpi_snapshot_months
    SELECT p.currency, p.month, p.customer_rows, p.start_mrr, p.new_mrr, p.expansion_mrr, p.reactivation_mrr,
           p.contraction_mrr, p.churned_mrr, p.end_mrr, p.customers_start, p.new_customers, p.reactivated_customers,
           p.churned_customers, p.customers_end, p.subscriptions_end
      FROM subbilling_internal.kpi_movement_parts p;
    DELETE FROM subbilling_internal.kpi_recognition_dirty;
    DELETE FROM subbilling_internal.kpi_recognition_snapshot;
    DELETE FROM subbilling_internal.kpi_recognition_months;
    INSERT INTO subbilling_internal.kpi_recognition_snapshot (account_id, currency, month, line_months, billed, recognised)
    SELECT c.account_id, c.currency, c.month, c.line_months, c.billed, c.recognised
      FROM subbilling_internal.kpi_recognition_accounts c;
    INSERT INTO subbilling_internal.kpi_recognition_months
    SELECT p.currency, p.month, p.line_months, p.billed, p.recognised
      FROM subbilling_internal.kpi_recognition_parts p;
    UPDATE subbilling_internal.kpi_snapshot_state SET building = false;
    RETURN n;
END $$;
COMMENT ON FUNCTION subbilling.refresh_kpi_snapshots(boolean) IS 'rebuilds the KPI views'' monthly snapshots as of today (daily after midnight; until then the views compute live), or with only_marked the marked accounts only (every few minutes, the worker''s kpi_refresh_interval); returns the customer rows written';
