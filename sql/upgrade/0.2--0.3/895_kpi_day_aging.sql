-- KPI snapshots that age by the day, and ar_aging in one C call per row
-- (docs/kpis.md): kpi_customer_movements_recent computes the months from the
-- snapshot's boundary month on (the closed months before it stay valid on
-- later days); aging_buckets gives the aging buckets of one kept row.
-- kpi_movement_parts, kpi_movements, refresh_kpi_snapshots and ar_aging are
-- re-created by 999_refresh.sql.  Copies of the objects of sql/parts/900_kpis.sql.

CREATE VIEW subbilling_internal.kpi_customer_movements_recent WITH (security_barrier) AS
SELECT c.account_id, c.currency, x.month, x.cur, x.prev, x.subscriptions,
       -- an earlier first month with MRR is in the snapshot's closed months (index, first row)
       coalesce((SELECT s.first_month FROM subbilling_internal.kpi_snapshot_customers s
                  WHERE s.account_id = c.account_id AND s.currency = c.currency AND s.month < c.b
                  ORDER BY s.month LIMIT 1), c.first_month) AS first_month
  FROM (SELECT cm.account_id, cm.currency, cm.month, cm.mrr, cm.subscriptions, cm.b,
               min(cm.month) OVER w AS first_month,
               lag(cm.month) OVER w AS prev_month, lag(cm.mrr) OVER w AS prev_mrr,
               lead(cm.month) OVER w AS next_month
          FROM (SELECT ism.account_id, ism.currency, ism.month, ism.b, sum(ism.mrr)::bigint AS mrr,
                       count(*) AS subscriptions
                  FROM (SELECT im.account_id, im.currency, im.month, im.b, im.subscription_id, sum(im.mrr) AS mrr
                  FROM (SELECT it.account_id, it.subscription_id, it.currency, g.month, it.b,
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
                                       f.m0, f.m1, f.discounted, f.held, bb.b
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
                                 CROSS JOIN (SELECT date_trunc('month', LEAST(z.computed_on, current_date))::date AS b
                                               FROM subbilling_internal.kpi_snapshot_state z) bb
                                 WHERE i.voided_at IS NULL
                                   -- items with MRR in the month before the boundary or later
                                   AND coalesce(upper(i.validity) - 1, current_date) >= (bb.b - interval '1 month')::date) it
                         CROSS JOIN LATERAL (
                               SELECT m::date AS month,
                                      LEAST((m + interval '1 month' - interval '1 day')::date, current_date) AS day
                                 FROM generate_series(GREATEST(it.m0, it.b - interval '1 month'), it.m1,
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
                         GROUP BY im.account_id, im.currency, im.month, im.b, im.subscription_id) ism
                 GROUP BY ism.account_id, ism.currency, ism.month, ism.b) cm
         WHERE cm.mrr > 0
        WINDOW w AS (PARTITION BY cm.account_id, cm.currency ORDER BY cm.month)) c
 CROSS JOIN LATERAL (
       SELECT c.month, c.mrr, CASE WHEN c.prev_month = (c.month - interval '1 month')::date THEN c.prev_mrr ELSE 0 END,
              c.subscriptions
        UNION ALL
       SELECT (c.month + interval '1 month')::date, 0::bigint, c.mrr, 0::bigint
        WHERE c.month < date_trunc('month', current_date)
          AND (c.next_month IS NULL OR c.next_month <> (c.month + interval '1 month')::date))
       AS x(month, cur, prev, subscriptions)
 WHERE x.month >= c.b;
COMMENT ON VIEW subbilling_internal.kpi_customer_movements_recent IS 'internal: kpi_customer_movements from the KPI snapshot''s boundary month on (the month of its day or of today, the earlier), live, the first month with MRR from the snapshot''s closed months';

-- The six amounts of one kept row in one call (src/aging.c, formulas in
-- src/core/aging.h): a binary search over the due dates for each boundary,
-- the difference of two running totals per bucket.  A pure function of its
-- arguments, executable by everyone like the price type's functions: the
-- view calls it as its caller (docs/kpis.md documents it).
CREATE FUNCTION subbilling.aging_buckets(due_dates date[], cum_minor bigint[], undated_minor bigint,
                                         today date, currency text,
                                         OUT current numeric, OUT overdue_1_30 numeric,
                                         OUT overdue_31_60 numeric, OUT overdue_61_90 numeric,
                                         OUT overdue_90_plus numeric, OUT total numeric)
    RETURNS record
    AS 'MODULE_PATHNAME', 'kpi_aging_amounts' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.aging_buckets(date[], bigint[], bigint, date, text) IS 'receivables aging of open amounts kept as running totals over ascending due dates (cum_minor[k + 1] = minor units due on or before due_dates[k], cum_minor[1] = 0) on the given today: current, 1-30, 31-60, 61-90, over 90 days past due, total (with undated_minor), in major units of the currency';
