
-- ============================================================================
-- KPIs for BI tools: MRR and its movements, churn, LTV, growth, receivables
-- aging, revenue recognition and upsell candidates.  Plain views, one row per
-- month and currency (never converted), computed from the dated history:
-- item validity, trial end, pauses, payment stops, discounts, invoices.  A
-- backdated change shows in the month it belongs to.  docs/kpis.md defines
-- every figure, its formula and each edge decision.
--
-- The views are owned by the extension's owner and run with its rights
-- (security_invoker off, the default): subbilling_reader reads them and no
-- base table.  They call only functions that PUBLIC may execute (the price
-- type's pure functions), because a view's functions are checked against
-- the caller.  security_barrier keeps a caller's functions from seeing rows
-- that the views aggregate away.
-- ============================================================================

-- ---------------------------------------------------------------- MRR per item and month

-- The MRR of every subscription item in every month, in minor units, on the
-- month's snapshot day: its last day, or today for the current month.  An
-- item counts on that day when it is valid (not voided), the subscription's
-- trial is over, it is not paused, not held by a payment stop (dunning's
-- payment_stop until lifted; today also the subscription's status
-- 'suspended'), and its plan is not a usage plan.  Its amount is the plan's
-- price for a whole period at the item's quantity, less the recurring
-- discounts that apply in the billing period holding the day ('forever'
-- always, 'repeating' for its periods, 'once' never; never more than the
-- price), normalised to a month with monthly() (one rounding).
CREATE VIEW subbilling_internal.kpi_item_months WITH (security_barrier) AS
SELECT i.account_id, i.subscription_id, s.currency, m.month, i.kind,
       subbilling.minor_units(subbilling.monthly(
           f.full_price - LEAST(f.full_price, coalesce(dd.disc, subbilling.price_minor(0, s.currency))),
           p.billing_period)) AS mrr
  FROM subbilling.subscription_items i
  JOIN subbilling.subscriptions s ON s.account_id = i.account_id AND s.id = i.subscription_id
  JOIN subbilling.plans p ON p.id = i.plan_id AND p.pricing_model <> 'usage'
  CROSS JOIN LATERAL (
      SELECT g::date AS month, LEAST((g + interval '1 month' - interval '1 day')::date, current_date) AS day
        FROM generate_series(date_trunc('month', GREATEST(lower(i.validity), coalesce(s.trial_end, s.start_date))),
                             date_trunc('month', LEAST(coalesce(upper(i.validity) - 1, current_date), current_date)),
                             interval '1 month') AS g) m
  CROSS JOIN LATERAL (
      SELECT CASE p.pricing_model
                 WHEN 'flat' THEN p.price
                 WHEN 'per_unit' THEN p.price * i.quantity
                 WHEN 'package' THEN subbilling.package_price(i.quantity, p.package_size, p.price)
                 ELSE subbilling.tiered_price(i.quantity, p.tiers, p.pricing_model) END AS full_price,
             subbilling.period_start(s.billing_anchor, p.billing_period,
                                     subbilling.period_index(s.billing_anchor, p.billing_period, m.day)) AS key_start) f
  LEFT JOIN LATERAL (
      SELECT sum(CASE WHEN d.percent_off IS NOT NULL THEN f.full_price * (d.percent_off / 100)
                      ELSE d.amount_off END) AS disc
        FROM subbilling.subscription_discounts d
        JOIN subbilling.campaigns c ON c.id = d.campaign_id
       WHERE d.account_id = i.account_id AND d.subscription_id = i.subscription_id
         AND c.duration <> 'once'
         AND d.starts_on <= f.key_start
         AND (d.periods IS NULL
              OR subbilling.period_index(s.billing_anchor, p.billing_period, f.key_start)
                 - subbilling.period_index(s.billing_anchor, p.billing_period, d.starts_on) < d.periods)
         AND (c.plan_codes IS NULL OR p.code = ANY (c.plan_codes))
         AND (d.percent_off IS NOT NULL OR i.kind = 'base')) dd ON true
 WHERE i.voided_at IS NULL
   AND m.day <@ i.validity
   AND m.day >= coalesce(s.trial_end, s.start_date)
   AND NOT EXISTS (SELECT FROM subbilling.subscription_pauses z
                    WHERE z.account_id = i.account_id AND z.subscription_id = i.subscription_id
                      AND z.during @> m.day)
   AND NOT EXISTS (SELECT FROM subbilling.dunning_actions a
                    WHERE a.account_id = i.account_id AND a.subscription_id = i.subscription_id
                      AND a.action = 'payment_stop' AND a.executed_on <= m.day
                      AND (a.lifted_at IS NULL OR a.lifted_at::date > m.day))
   AND NOT (m.day = current_date AND s.status = 'suspended');
COMMENT ON VIEW subbilling_internal.kpi_item_months IS 'internal: each subscription item''s MRR (minor units) on each month''s snapshot day (last day, today for the current month)';

-- Per customer (account), currency and month: MRR and the subscriptions
-- that count.  Only months with MRR above 0 have a row.
CREATE VIEW subbilling_internal.kpi_customer_months WITH (security_barrier) AS
SELECT x.account_id, x.currency, x.month, sum(x.mrr)::bigint AS mrr,
       count(DISTINCT x.subscription_id) AS subscriptions
  FROM subbilling_internal.kpi_item_months x
 GROUP BY x.account_id, x.currency, x.month
HAVING sum(x.mrr) > 0;
COMMENT ON VIEW subbilling_internal.kpi_customer_months IS 'internal: MRR (minor units) and counted subscriptions per account, currency and month where MRR > 0';

-- The definition (the reference; kpi_movements below gives the same rows
-- from the snapshots).  Movements per customer: the month's MRR (cur) against the previous
-- month's (prev); new when the customer never had MRR in the currency
-- before, reactivation when it had, churn when cur reaches 0, expansion or
-- contraction on the difference otherwise.  Summed per month and currency,
-- over every month from the currency's first to the current one.
CREATE VIEW subbilling_internal.kpi_movements_ref WITH (security_barrier) AS
WITH cm AS (
    SELECT c.account_id, c.currency, c.month, c.mrr, c.subscriptions,
           min(c.month) OVER (PARTITION BY c.account_id, c.currency) AS first_month
      FROM subbilling_internal.kpi_customer_months c
),
pairs AS (
    SELECT cm.account_id, cm.currency, cm.month, cm.mrr AS cur, 0::bigint AS prev, cm.subscriptions, cm.first_month
      FROM cm
    UNION ALL
    SELECT cm.account_id, cm.currency, (cm.month + interval '1 month')::date, 0, cm.mrr, 0, cm.first_month
      FROM cm
     WHERE cm.month < date_trunc('month', current_date)
),
cust AS (
    SELECT p.account_id, p.currency, p.month, sum(p.cur) AS cur, sum(p.prev) AS prev,
           sum(p.subscriptions) AS subscriptions, min(p.first_month) AS first_month
      FROM pairs p
     GROUP BY p.account_id, p.currency, p.month
),
agg AS (
    SELECT c.currency, c.month,
           sum(c.prev) AS start_mrr,
           sum(c.cur) FILTER (WHERE c.prev = 0 AND c.first_month = c.month) AS new_mrr,
           sum(c.cur - c.prev) FILTER (WHERE c.prev > 0 AND c.cur > c.prev) AS expansion_mrr,
           sum(c.cur) FILTER (WHERE c.prev = 0 AND c.first_month < c.month) AS reactivation_mrr,
           sum(c.prev - c.cur) FILTER (WHERE c.cur > 0 AND c.cur < c.prev) AS contraction_mrr,
           sum(c.prev) FILTER (WHERE c.cur = 0) AS churned_mrr,
           sum(c.cur) AS end_mrr,
           count(*) FILTER (WHERE c.prev > 0) AS customers_start,
           count(*) FILTER (WHERE c.prev = 0 AND c.first_month = c.month) AS new_customers,
           count(*) FILTER (WHERE c.prev = 0 AND c.first_month < c.month) AS reactivated_customers,
           count(*) FILTER (WHERE c.cur = 0) AS churned_customers,
           count(*) FILTER (WHERE c.cur > 0) AS customers_end,
           sum(c.subscriptions) AS subscriptions_end
      FROM cust c
     GROUP BY c.currency, c.month
),
months AS (
    SELECT r.currency, g::date AS month
      FROM (SELECT a.currency, min(a.month) AS m0 FROM agg a GROUP BY a.currency) r
     CROSS JOIN LATERAL generate_series(r.m0, date_trunc('month', current_date), interval '1 month') AS g
)
SELECT m.month, m.currency,
       coalesce(a.start_mrr, 0)::bigint AS start_mrr,
       coalesce(a.new_mrr, 0)::bigint AS new_mrr,
       coalesce(a.expansion_mrr, 0)::bigint AS expansion_mrr,
       coalesce(a.reactivation_mrr, 0)::bigint AS reactivation_mrr,
       coalesce(a.contraction_mrr, 0)::bigint AS contraction_mrr,
       coalesce(a.churned_mrr, 0)::bigint AS churned_mrr,
       coalesce(a.end_mrr, 0)::bigint AS end_mrr,
       coalesce(a.customers_start, 0) AS customers_start,
       coalesce(a.new_customers, 0) AS new_customers,
       coalesce(a.reactivated_customers, 0) AS reactivated_customers,
       coalesce(a.churned_customers, 0) AS churned_customers,
       coalesce(a.customers_end, 0) AS customers_end,
       coalesce(a.subscriptions_end, 0)::bigint AS subscriptions_end
  FROM months m
  LEFT JOIN agg a ON a.currency = m.currency AND a.month = m.month;
COMMENT ON VIEW subbilling_internal.kpi_movements_ref IS 'internal: the definition of kpi_movements, computed from the dated history on every read (the reference the snapshots are tested against)';

-- ---------------------------------------------------------------- monthly snapshots

-- Reading the definition above computes every item in every month: seconds
-- per 10,000 subscriptions.  The views read monthly snapshots instead, with
-- the same figures:
--
--   kpi_snapshot_customers  each customer's movement row per currency and
--                           month (kpi_customer_movements), as of one day;
--   kpi_snapshot_months     their sums per currency and month;
--   kpi_dirty_accounts      accounts whose dated history changed since:
--                           marked by triggers in the transaction of the
--                           change (items, subscriptions, pauses, discounts,
--                           payment stops; backdated or not);
--   kpi_snapshot_state      the day (and time zone) the snapshots are of.
--
-- A read uses the snapshots only when they are of today (in the reader's
-- time zone): the month sums, less the snapshot rows of marked accounts,
-- plus those accounts computed live.  Otherwise (never built, built on an
-- earlier day, invalidated by a plan's price or a campaign change) it
-- computes everything live, as the definition does: never stale, only
-- slower.  refresh_kpi_snapshots() rebuilds them (daily, after midnight).

-- Per customer, currency and month: MRR this month (cur) and last month
-- (prev), counted subscriptions, the first month the customer had MRR in the
-- currency.  Rows for every month with MRR and the month after one (up to
-- the current month).  The same rows as kpi_customer_months gives with the
-- movements of kpi_movements_ref, computed in one pass, linear in the items:
-- what does not depend on the month (the item's price and MRR before
-- discounts, its first and last month, whether its subscription has any
-- discount, pause or payment stop) once per item; each month then costs a
-- comparison, and only the items with a discount, pause or payment stop look
-- those up for the month.  The items are read in account order, so the sorts
-- are per account; last month's MRR and the next month come from window
-- functions over the customer's months.  Written without a CTE so that a
-- filter on the account reaches the items (marked accounts are computed
-- alone, by index).
CREATE VIEW subbilling_internal.kpi_customer_movements WITH (security_barrier) AS
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

CREATE TABLE subbilling_internal.kpi_snapshot_state (
    only_row     boolean PRIMARY KEY DEFAULT true CONSTRAINT kpi_snapshot_state_one_row CHECK (only_row),
    computed_on  date NOT NULL,
    time_zone    text NOT NULL,
    building     boolean NOT NULL DEFAULT false,
    refreshed_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE subbilling_internal.kpi_snapshot_state IS 'internal: the day and time zone the KPI snapshots are of (no row: none usable)';

CREATE TABLE subbilling_internal.kpi_snapshot_customers (
    account_id    bigint NOT NULL,
    currency      text NOT NULL,
    month         date NOT NULL,
    cur           bigint NOT NULL,
    prev          bigint NOT NULL,
    subscriptions bigint NOT NULL,
    first_month   date NOT NULL,
    PRIMARY KEY (account_id, currency, month)
);
COMMENT ON TABLE subbilling_internal.kpi_snapshot_customers IS 'internal: kpi_customer_movements as of kpi_snapshot_state.computed_on';

CREATE TABLE subbilling_internal.kpi_snapshot_months (
    currency              text NOT NULL,
    month                 date NOT NULL,
    customer_rows         bigint NOT NULL,
    start_mrr             bigint NOT NULL,
    new_mrr               bigint NOT NULL,
    expansion_mrr         bigint NOT NULL,
    reactivation_mrr      bigint NOT NULL,
    contraction_mrr       bigint NOT NULL,
    churned_mrr           bigint NOT NULL,
    end_mrr               bigint NOT NULL,
    customers_start       bigint NOT NULL,
    new_customers         bigint NOT NULL,
    reactivated_customers bigint NOT NULL,
    churned_customers     bigint NOT NULL,
    customers_end         bigint NOT NULL,
    subscriptions_end     bigint NOT NULL,
    PRIMARY KEY (currency, month)
);
COMMENT ON TABLE subbilling_internal.kpi_snapshot_months IS 'internal: the movements of kpi_snapshot_customers summed per currency and month';

CREATE TABLE subbilling_internal.kpi_dirty_accounts (
    account_id bigint NOT NULL,
    marked_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE subbilling_internal.kpi_dirty_accounts IS 'internal: accounts whose dated history changed after the KPI snapshots were taken (computed live until the next refresh)';

-- Derived data, rebuilt by refresh_kpi_snapshots(): never dumped (a
-- restored database computes live until its first refresh).
SELECT pg_catalog.pg_extension_config_dump('subbilling_internal.kpi_snapshot_state', 'WHERE false');
SELECT pg_catalog.pg_extension_config_dump('subbilling_internal.kpi_snapshot_customers', 'WHERE false');
SELECT pg_catalog.pg_extension_config_dump('subbilling_internal.kpi_snapshot_months', 'WHERE false');
SELECT pg_catalog.pg_extension_config_dump('subbilling_internal.kpi_dirty_accounts', 'WHERE false');

-- The rows of kpi_customer_movements from the snapshot's boundary month on
-- (b: the month of its day, or of today when that is earlier), computed
-- live, the month before the boundary only for last month's MRR: a month
-- that closed before the snapshot's day is measured on its last day, so its
-- rows depend only on the dated history and stay valid on later days (in
-- the snapshot's time zone); the months from the boundary on are measured
-- on today.  The first month with MRR comes from the snapshot's closed
-- months when the customer had MRR there (the rows of an account marked
-- since the snapshot are wrong here: the callers compute those accounts
-- with kpi_customer_movements).  Every item is read once; only those valid
-- in the month before the boundary or later give months.  No rows without a
-- snapshot.
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

-- Signed customer movement rows, summed per currency and month: with a
-- snapshot of today, the marked accounts computed live (+) and their
-- snapshot rows (-); with one of an earlier day (same time zone), the same
-- for the closed months before its boundary month, and from the boundary on
-- every unmarked account computed live (kpi_customer_movements_recent);
-- without, every account live; while refresh_kpi_snapshots() builds (in its
-- own transaction), the new snapshot rows.
CREATE VIEW subbilling_internal.kpi_movement_parts WITH (security_barrier) AS
WITH st AS (
    SELECT EXISTS (SELECT FROM subbilling_internal.kpi_snapshot_state z
                    WHERE z.computed_on = current_date AND z.time_zone = current_setting('TimeZone')
                      AND NOT z.building) AS usable,
           EXISTS (SELECT FROM subbilling_internal.kpi_snapshot_state z
                    WHERE z.computed_on <> current_date AND z.time_zone = current_setting('TimeZone')
                      AND NOT z.building) AS aged,
           (SELECT date_trunc('month', LEAST(z.computed_on, current_date))::date
              FROM subbilling_internal.kpi_snapshot_state z) AS b,
           EXISTS (SELECT FROM subbilling_internal.kpi_snapshot_state z WHERE z.building) AS building,
           (SELECT array_agg(DISTINCT d.account_id) FROM subbilling_internal.kpi_dirty_accounts d) AS dirty
),
r AS (
    SELECT 1 AS sign, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
      FROM subbilling_internal.kpi_customer_movements c
     WHERE NOT (SELECT st.usable OR st.aged OR st.building FROM st)
    UNION ALL
    SELECT 1, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
      FROM subbilling_internal.kpi_customer_movements c
     WHERE (SELECT st.usable OR st.aged FROM st) AND c.account_id = ANY ((SELECT st.dirty FROM st)::bigint[])
    UNION ALL
    SELECT -1, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
      FROM subbilling_internal.kpi_snapshot_customers c
     WHERE (SELECT st.usable FROM st) AND c.account_id = ANY ((SELECT st.dirty FROM st)::bigint[])
    UNION ALL
    SELECT -1, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
      FROM subbilling_internal.kpi_snapshot_customers c
     WHERE (SELECT st.aged FROM st) AND c.account_id = ANY ((SELECT st.dirty FROM st)::bigint[])
       AND c.month < (SELECT st.b FROM st)
    UNION ALL
    SELECT 1, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
      FROM subbilling_internal.kpi_customer_movements_recent c
     WHERE (SELECT st.aged FROM st)
       AND NOT coalesce(c.account_id = ANY ((SELECT st.dirty FROM st)::bigint[]), false)
    UNION ALL
    SELECT 1, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
      FROM subbilling_internal.kpi_snapshot_customers c
     WHERE (SELECT st.building FROM st)
)
SELECT r.currency, r.month,
       sum(r.sign)::bigint AS customer_rows,
       sum(r.sign * r.prev)::bigint AS start_mrr,
       coalesce(sum(r.sign * r.cur) FILTER (WHERE r.prev = 0 AND r.first_month = r.month), 0)::bigint AS new_mrr,
       coalesce(sum(r.sign * (r.cur - r.prev)) FILTER (WHERE r.prev > 0 AND r.cur > r.prev), 0)::bigint AS expansion_mrr,
       coalesce(sum(r.sign * r.cur) FILTER (WHERE r.prev = 0 AND r.first_month < r.month), 0)::bigint AS reactivation_mrr,
       coalesce(sum(r.sign * (r.prev - r.cur)) FILTER (WHERE r.cur > 0 AND r.cur < r.prev), 0)::bigint AS contraction_mrr,
       coalesce(sum(r.sign * r.prev) FILTER (WHERE r.cur = 0), 0)::bigint AS churned_mrr,
       sum(r.sign * r.cur)::bigint AS end_mrr,
       coalesce(sum(r.sign) FILTER (WHERE r.prev > 0), 0)::bigint AS customers_start,
       coalesce(sum(r.sign) FILTER (WHERE r.prev = 0 AND r.first_month = r.month), 0)::bigint AS new_customers,
       coalesce(sum(r.sign) FILTER (WHERE r.prev = 0 AND r.first_month < r.month), 0)::bigint AS reactivated_customers,
       coalesce(sum(r.sign) FILTER (WHERE r.cur = 0), 0)::bigint AS churned_customers,
       coalesce(sum(r.sign) FILTER (WHERE r.cur > 0), 0)::bigint AS customers_end,
       sum(r.sign * r.subscriptions)::bigint AS subscriptions_end
  FROM r
 GROUP BY r.currency, r.month;
COMMENT ON VIEW subbilling_internal.kpi_movement_parts IS 'internal: customer movements summed per currency and month: marked accounts live less their snapshot rows (snapshot of today; of an earlier day: in the closed months, and every other account live from the boundary month on), everything live (none), the snapshot rows (while building)';

-- MRR movements and customer counts per month and currency, from the
-- currency's first month to the current one: the snapshot sums corrected by
-- kpi_movement_parts; the same rows as kpi_movements_ref.  In read mode
-- snapshot (subbilling.kpi_read, read without the library too) and with a
-- usable snapshot (one, of the reader's time zone, not being built): the
-- snapshot's month sums as they are, up to the snapshot's month, nothing
-- computed live (kpi_movement_parts is not run); kpi_snapshot_status says
-- how old they are.
CREATE VIEW subbilling_internal.kpi_movements WITH (security_barrier) AS
WITH snap AS (
    SELECT z.computed_on
      FROM subbilling_internal.kpi_snapshot_state z
     WHERE pg_catalog.current_setting('subbilling.kpi_read', true) = 'snapshot'
       AND z.time_zone = pg_catalog.current_setting('TimeZone') AND NOT z.building
),
agg AS (
    SELECT x.currency, x.month,
           sum(x.start_mrr) AS start_mrr, sum(x.new_mrr) AS new_mrr, sum(x.expansion_mrr) AS expansion_mrr,
           sum(x.reactivation_mrr) AS reactivation_mrr, sum(x.contraction_mrr) AS contraction_mrr,
           sum(x.churned_mrr) AS churned_mrr, sum(x.end_mrr) AS end_mrr,
           sum(x.customers_start) AS customers_start, sum(x.new_customers) AS new_customers,
           sum(x.reactivated_customers) AS reactivated_customers, sum(x.churned_customers) AS churned_customers,
           sum(x.customers_end) AS customers_end, sum(x.subscriptions_end) AS subscriptions_end
      FROM (SELECT s.*
              FROM subbilling_internal.kpi_snapshot_months s
             WHERE EXISTS (SELECT FROM snap)
                OR EXISTS (SELECT FROM subbilling_internal.kpi_snapshot_state z
                            WHERE z.time_zone = current_setting('TimeZone') AND NOT z.building
                              AND (z.computed_on = current_date
                                   OR s.month < date_trunc('month', LEAST(z.computed_on, current_date))))
            UNION ALL
            SELECT p.* FROM subbilling_internal.kpi_movement_parts p WHERE NOT EXISTS (SELECT FROM snap)) x
     GROUP BY x.currency, x.month
    HAVING sum(x.customer_rows) > 0
),
months AS (
    SELECT r.currency, g::date AS month
      FROM (SELECT a.currency, min(a.month) AS m0 FROM agg a GROUP BY a.currency) r
     CROSS JOIN LATERAL generate_series(r.m0,
                                        coalesce((SELECT date_trunc('month', snap.computed_on) FROM snap),
                                                 date_trunc('month', current_date)),
                                        interval '1 month') AS g
)
SELECT m.month, m.currency,
       coalesce(a.start_mrr, 0)::bigint AS start_mrr,
       coalesce(a.new_mrr, 0)::bigint AS new_mrr,
       coalesce(a.expansion_mrr, 0)::bigint AS expansion_mrr,
       coalesce(a.reactivation_mrr, 0)::bigint AS reactivation_mrr,
       coalesce(a.contraction_mrr, 0)::bigint AS contraction_mrr,
       coalesce(a.churned_mrr, 0)::bigint AS churned_mrr,
       coalesce(a.end_mrr, 0)::bigint AS end_mrr,
       coalesce(a.customers_start, 0)::bigint AS customers_start,
       coalesce(a.new_customers, 0)::bigint AS new_customers,
       coalesce(a.reactivated_customers, 0)::bigint AS reactivated_customers,
       coalesce(a.churned_customers, 0)::bigint AS churned_customers,
       coalesce(a.customers_end, 0)::bigint AS customers_end,
       coalesce(a.subscriptions_end, 0)::bigint AS subscriptions_end
  FROM months m
  LEFT JOIN agg a ON a.currency = m.currency AND a.month = m.month;
COMMENT ON VIEW subbilling_internal.kpi_movements IS 'internal: MRR movements and customer counts (minor units) per month and currency, from the snapshots where usable (the same rows as kpi_movements_ref); with subbilling.kpi_read = snapshot and a usable snapshot, its month sums as they are';

-- Marks: the account of every changed row of the dated history.
CREATE FUNCTION subbilling_internal.kpi_mark_account() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = subbilling, pg_catalog, pg_temp AS $$
BEGIN
    IF TG_NARGS > 0 AND TG_ARGV[0] = 'recognition' THEN
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO subbilling_internal.kpi_recognition_dirty (account_id) VALUES (OLD.account_id);
        END IF;
        IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.account_id IS DISTINCT FROM OLD.account_id) THEN
            INSERT INTO subbilling_internal.kpi_recognition_dirty (account_id) VALUES (NEW.account_id);
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO subbilling_internal.kpi_dirty_accounts (account_id) VALUES (OLD.account_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.account_id IS DISTINCT FROM OLD.account_id) THEN
        INSERT INTO subbilling_internal.kpi_dirty_accounts (account_id) VALUES (NEW.account_id);
    END IF;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_mark_account() IS 'internal trigger: marks the changed row''s account for the KPI snapshots (for the recognition snapshot with the argument recognition)';

-- A change of what every account's figures read (a plan's price, which
-- the catalog refuses while the plan is in use; a campaign's duration or
-- plans; a truncated table): no snapshot is usable any more.
CREATE FUNCTION subbilling_internal.kpi_invalidate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = subbilling, pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM subbilling_internal.kpi_snapshot_state;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_invalidate() IS 'internal trigger: makes the KPI snapshots unusable until the next refresh';

CREATE TRIGGER subscription_items_kpi_mark AFTER INSERT OR UPDATE OR DELETE ON subbilling.subscription_items
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.kpi_mark_account();
CREATE TRIGGER subscription_pauses_kpi_mark AFTER INSERT OR UPDATE OR DELETE ON subbilling.subscription_pauses
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.kpi_mark_account();
CREATE TRIGGER subscription_discounts_kpi_mark AFTER INSERT OR UPDATE OR DELETE ON subbilling.subscription_discounts
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.kpi_mark_account();
CREATE TRIGGER dunning_actions_kpi_mark AFTER INSERT OR UPDATE OR DELETE ON subbilling.dunning_actions
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.kpi_mark_account();
CREATE TRIGGER subscriptions_kpi_mark_new AFTER INSERT OR DELETE ON subbilling.subscriptions
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.kpi_mark_account();
CREATE TRIGGER subscriptions_kpi_mark AFTER UPDATE ON subbilling.subscriptions
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id OR OLD.status IS DISTINCT FROM NEW.status
                       OR OLD.currency IS DISTINCT FROM NEW.currency OR OLD.start_date IS DISTINCT FROM NEW.start_date
                       OR OLD.trial_end IS DISTINCT FROM NEW.trial_end
                       OR OLD.billing_anchor IS DISTINCT FROM NEW.billing_anchor)
    EXECUTE FUNCTION subbilling_internal.kpi_mark_account();
CREATE TRIGGER plans_kpi_invalidate AFTER UPDATE ON subbilling.plans
    FOR EACH ROW WHEN (OLD.code IS DISTINCT FROM NEW.code OR OLD.pricing_model IS DISTINCT FROM NEW.pricing_model
                       OR OLD.price IS DISTINCT FROM NEW.price OR OLD.tiers IS DISTINCT FROM NEW.tiers
                       OR OLD.package_size IS DISTINCT FROM NEW.package_size
                       OR OLD.billing_period IS DISTINCT FROM NEW.billing_period)
    EXECUTE FUNCTION subbilling_internal.kpi_invalidate();
CREATE TRIGGER plans_kpi_invalidate_delete AFTER DELETE OR TRUNCATE ON subbilling.plans
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_invalidate();
CREATE TRIGGER campaigns_kpi_invalidate AFTER UPDATE ON subbilling.campaigns
    FOR EACH ROW WHEN (OLD.duration IS DISTINCT FROM NEW.duration OR OLD.plan_codes IS DISTINCT FROM NEW.plan_codes)
    EXECUTE FUNCTION subbilling_internal.kpi_invalidate();
CREATE TRIGGER campaigns_kpi_invalidate_delete AFTER DELETE OR TRUNCATE ON subbilling.campaigns
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_invalidate();
CREATE TRIGGER subscription_items_kpi_truncate AFTER TRUNCATE ON subbilling.subscription_items
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_invalidate();
CREATE TRIGGER subscription_pauses_kpi_truncate AFTER TRUNCATE ON subbilling.subscription_pauses
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_invalidate();
CREATE TRIGGER subscription_discounts_kpi_truncate AFTER TRUNCATE ON subbilling.subscription_discounts
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_invalidate();
CREATE TRIGGER dunning_actions_kpi_truncate AFTER TRUNCATE ON subbilling.dunning_actions
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_invalidate();
CREATE TRIGGER subscriptions_kpi_truncate AFTER TRUNCATE ON subbilling.subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_invalidate();

-- Rebuilds the snapshots as of today (in the session's time zone) and clears
-- the marks; one refresh at a time, readers read on (the previous snapshots
-- until this commits).  Plans and campaigns are locked against changes
-- meanwhile.  A mark made after the refresh began stays (the account is
-- computed live until the next one).  With only_marked, and a snapshot of
-- today, only the marked accounts are recomputed: the refresh claims the
-- marks committed so far (deletes them, returning their accounts), replaces
-- those accounts' snapshot rows and corrects the month sums by the same
-- accounts.  Nothing waits: a lifecycle change only inserts a mark, which
-- the refresh neither locks nor sees until it commits, so a mark made
-- meanwhile stays for the next refresh.  With only_marked and a snapshot of
-- an earlier day in the same time zone (the worker's first refresh after
-- midnight), the snapshot is brought to today: the months from its boundary
-- month on (normally the current one, on the first of a month also the one
-- that just closed) are recomputed for every account, the marked accounts
-- in every month; the closed months' rows stay (kpi_customer_movements_recent).
-- A snapshot of another time zone, or none, is rebuilt whole.  Returns the
-- customer rows written.
CREATE FUNCTION subbilling.refresh_kpi_snapshots(only_marked boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = subbilling, pg_catalog, pg_temp AS $$
DECLARE
    n     bigint;
    dirty bigint[];
    b     date;
BEGIN
    IF only_marked IS NULL THEN
        RAISE EXCEPTION 'only_marked must not be null' USING ERRCODE = '22004';
    END IF;
    LOCK TABLE subbilling_internal.kpi_snapshot_state IN EXCLUSIVE MODE;
    -- the queued usage into the kept per-period usage (upsell_candidates); on Citus account by
    -- account, each on its shard (kpi_usage_fold)
    IF pg_catalog.current_setting('transaction_isolation') = 'read committed' THEN
        PERFORM subbilling_internal.kpi_usage_fold();
    END IF;
    IF subbilling_internal.on_citus() THEN
        -- the snapshots' rows computed shard by shard (sql/parts/977_citus_kpis.sql)
        RETURN subbilling_internal.kpi_snapshot_refresh_citus(only_marked);
    END IF;
    IF only_marked AND EXISTS (SELECT FROM subbilling_internal.kpi_snapshot_state z
                                WHERE z.time_zone = current_setting('TimeZone') AND NOT z.building) THEN
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
        SELECT date_trunc('month', LEAST(z.computed_on, current_date))::date INTO b
          FROM subbilling_internal.kpi_snapshot_state z
         WHERE z.computed_on <> current_date;
        IF b IS NOT NULL THEN
            -- an earlier day's snapshot: the months from b on for everyone, the
            -- marked accounts whole; the month sums are the sums of the rows
            -- (the closed months' sums corrected by the marked accounts)
            LOCK TABLE subbilling.plans, subbilling.campaigns IN SHARE MODE;
            WITH gone AS (DELETE FROM subbilling_internal.kpi_dirty_accounts d RETURNING d.account_id)
            SELECT array_agg(DISTINCT gone.account_id) INTO dirty FROM gone;
            DELETE FROM subbilling_internal.kpi_snapshot_months s WHERE s.month >= b;
            WITH r AS (
                DELETE FROM subbilling_internal.kpi_snapshot_customers c
                 WHERE c.month >= b OR c.account_id = ANY (dirty)
                RETURNING -1 AS sign, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
            )
            INSERT INTO subbilling_internal.kpi_snapshot_months AS m
    SELECT r.currency, r.month,
           sum(r.sign)::bigint, sum(r.sign * r.prev)::bigint,
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
      FROM r
     WHERE r.month < b
     GROUP BY r.currency, r.month
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
           subscriptions_end = m.subscriptions_end + excluded.subscriptions_end;
            WITH r AS (
                INSERT INTO subbilling_internal.kpi_snapshot_customers
                       (account_id, currency, month, cur, prev, subscriptions, first_month)
                SELECT c.account_id, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
                  FROM subbilling_internal.kpi_customer_movements_recent c
                 WHERE NOT coalesce(c.account_id = ANY (dirty), false)
                UNION ALL
                SELECT c.account_id, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
                  FROM subbilling_internal.kpi_customer_movements c
                 WHERE c.account_id = ANY (dirty)
                RETURNING 1 AS sign, currency, month, cur, prev, subscriptions, first_month
            ),
            s AS (
            INSERT INTO subbilling_internal.kpi_snapshot_months AS m
    SELECT r.currency, r.month,
           sum(r.sign)::bigint, sum(r.sign * r.prev)::bigint,
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
      FROM r
     GROUP BY r.currency, r.month
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
           subscriptions_end = m.subscriptions_end + excluded.subscriptions_end
            RETURNING 1)
            SELECT count(*) INTO n FROM r;
            UPDATE subbilling_internal.kpi_snapshot_state SET computed_on = current_date, refreshed_at = pg_catalog.now();
            RETURN n;
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
        -- the snapshot now has every change committed before this refresh
        UPDATE subbilling_internal.kpi_snapshot_state SET refreshed_at = pg_catalog.now();
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

REVOKE ALL ON FUNCTION subbilling_internal.kpi_mark_account(), subbilling_internal.kpi_invalidate() FROM PUBLIC;
REVOKE ALL ON FUNCTION subbilling.refresh_kpi_snapshots(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.refresh_kpi_snapshots(boolean) TO subbilling_operator;

-- ---------------------------------------------------------------- public views

-- Amounts are numeric in major units of the row's currency (exact: minor
-- units shifted by the currency's exponent); rates are fractions.

CREATE VIEW subbilling.kpi_mrr WITH (security_barrier) AS
SELECT v.month, v.currency,
       subbilling.amount(subbilling.price_minor(v.end_mrr, v.currency)) AS mrr,
       subbilling.amount(subbilling.price_minor(v.end_mrr * 12, v.currency)) AS arr,
       v.customers_end AS active_customers,
       v.subscriptions_end AS active_subscriptions
  FROM subbilling_internal.kpi_movements v;
COMMENT ON VIEW subbilling.kpi_mrr IS 'per month and currency: MRR on the month''s last day (today for the current month), ARR = 12 x MRR, customers with MRR above 0 and the subscriptions that count';

CREATE VIEW subbilling.kpi_mrr_movements WITH (security_barrier) AS
SELECT v.month, v.currency,
       subbilling.amount(subbilling.price_minor(v.start_mrr, v.currency)) AS start_mrr,
       subbilling.amount(subbilling.price_minor(v.new_mrr, v.currency)) AS new_mrr,
       subbilling.amount(subbilling.price_minor(v.expansion_mrr, v.currency)) AS expansion_mrr,
       subbilling.amount(subbilling.price_minor(v.reactivation_mrr, v.currency)) AS reactivation_mrr,
       subbilling.amount(subbilling.price_minor(v.contraction_mrr, v.currency)) AS contraction_mrr,
       subbilling.amount(subbilling.price_minor(v.churned_mrr, v.currency)) AS churned_mrr,
       subbilling.amount(subbilling.price_minor(v.end_mrr, v.currency)) AS end_mrr,
       v.new_customers, v.reactivated_customers, v.churned_customers
  FROM subbilling_internal.kpi_movements v;
COMMENT ON VIEW subbilling.kpi_mrr_movements IS 'per month and currency: start + new + expansion + reactivation - contraction - churned = end MRR, exactly; movements per customer';

CREATE VIEW subbilling.kpi_churn WITH (security_barrier) AS
SELECT v.month, v.currency, v.customers_start, v.churned_customers,
       v.churned_customers::numeric / NULLIF(v.customers_start, 0) AS logo_churn,
       (v.contraction_mrr + v.churned_mrr)::numeric / NULLIF(v.start_mrr, 0) AS revenue_churn,
       (v.start_mrr - v.contraction_mrr - v.churned_mrr)::numeric / NULLIF(v.start_mrr, 0) AS gross_revenue_retention,
       (v.start_mrr + v.expansion_mrr - v.contraction_mrr - v.churned_mrr)::numeric / NULLIF(v.start_mrr, 0)
           AS net_revenue_retention
  FROM subbilling_internal.kpi_movements v;
COMMENT ON VIEW subbilling.kpi_churn IS 'per month and currency (fractions, NULL when nothing was there at the start): logo churn, revenue churn, gross and net revenue retention';

CREATE VIEW subbilling.kpi_ltv WITH (security_barrier) AS
SELECT q.month, q.currency, q.active_customers, q.arpa, q.logo_churn,
       round(q.arpa / NULLIF(q.logo_churn, 0), subbilling.currency_exponent(q.currency)) AS ltv
  FROM (SELECT v.month, v.currency, v.customers_end AS active_customers,
               round(subbilling.amount(subbilling.price_minor(v.end_mrr, v.currency)) / NULLIF(v.customers_end, 0),
                     subbilling.currency_exponent(v.currency)) AS arpa,
               v.churned_customers::numeric / NULLIF(v.customers_start, 0) AS logo_churn
          FROM subbilling_internal.kpi_movements v) q;
COMMENT ON VIEW subbilling.kpi_ltv IS 'per month and currency: ARPA = MRR / active customers, the month''s logo churn, LTV = ARPA / logo churn (NULL without churn), rounded to the minor unit';

CREATE VIEW subbilling.kpi_growth WITH (security_barrier) AS
SELECT v.month, v.currency, v.new_customers, v.reactivated_customers, v.churned_customers,
       v.new_customers + v.reactivated_customers - v.churned_customers AS net_new_customers,
       subbilling.amount(subbilling.price_minor(v.new_mrr + v.expansion_mrr + v.reactivation_mrr
                                                - v.contraction_mrr - v.churned_mrr, v.currency)) AS net_new_mrr,
       (v.new_mrr + v.expansion_mrr + v.reactivation_mrr)::numeric
           / NULLIF(v.contraction_mrr + v.churned_mrr, 0) AS quick_ratio
  FROM subbilling_internal.kpi_movements v;
COMMENT ON VIEW subbilling.kpi_growth IS 'per month and currency: new, reactivated and churned customers, net new MRR, quick ratio = (new + expansion + reactivation) / (contraction + churn), NULL without losses';

-- How old the snapshot the MRR views read is, and which read mode this
-- session gets (subbilling.kpi_read): one row, also without a snapshot.
-- A snapshot is usable when there is one (none: never built, or
-- invalidated by a change of plans or campaigns), of the reader's time
-- zone, and not being built.
CREATE VIEW subbilling.kpi_snapshot_status WITH (security_barrier) AS
SELECT z.computed_on AS as_of, z.refreshed_at, z.time_zone,
       (SELECT count(DISTINCT d.account_id) FROM subbilling_internal.kpi_dirty_accounts d) AS marked_accounts,
       coalesce(z.computed_on = current_date AND z.time_zone = pg_catalog.current_setting('TimeZone')
                AND NOT z.building, false) AS of_today,
       CASE WHEN coalesce(pg_catalog.current_setting('subbilling.kpi_read', true), '') <> 'snapshot' THEN 'exact'
            WHEN z.computed_on IS NOT NULL AND z.time_zone = pg_catalog.current_setting('TimeZone')
                 AND NOT z.building THEN 'snapshot'
            ELSE 'exact_no_snapshot' END AS read_mode,
       CASE WHEN z.computed_on IS NULL THEN 'no snapshot'
            WHEN z.building THEN 'being built'
            WHEN z.time_zone <> pg_catalog.current_setting('TimeZone') THEN 'other time zone' END AS unusable_reason
  FROM (SELECT true) one
  LEFT JOIN subbilling_internal.kpi_snapshot_state z ON true;
COMMENT ON VIEW subbilling.kpi_snapshot_status IS 'one row: the day (as_of), refresh time and time zone of the KPI snapshot the MRR views read, the accounts marked since, whether it is of today, the read mode this session gets (exact, snapshot, exact_no_snapshot) and why a snapshot is not usable';

-- ---------------------------------------------------------------- receivables aging

CREATE VIEW subbilling_internal.ar_aging_ref WITH (security_barrier) AS
SELECT o.account_id, o.currency,
       subbilling.amount(coalesce(sum(o.open_amount) FILTER (WHERE o.days_overdue = 0), subbilling.price_minor(0, o.currency))) AS current,
       subbilling.amount(coalesce(sum(o.open_amount) FILTER (WHERE o.days_overdue BETWEEN 1 AND 30), subbilling.price_minor(0, o.currency))) AS overdue_1_30,
       subbilling.amount(coalesce(sum(o.open_amount) FILTER (WHERE o.days_overdue BETWEEN 31 AND 60), subbilling.price_minor(0, o.currency))) AS overdue_31_60,
       subbilling.amount(coalesce(sum(o.open_amount) FILTER (WHERE o.days_overdue BETWEEN 61 AND 90), subbilling.price_minor(0, o.currency))) AS overdue_61_90,
       subbilling.amount(coalesce(sum(o.open_amount) FILTER (WHERE o.days_overdue > 90), subbilling.price_minor(0, o.currency))) AS overdue_90_plus,
       subbilling.amount(sum(o.open_amount)) AS total
  FROM subbilling.open_items o
 GROUP BY o.account_id, o.currency;
COMMENT ON VIEW subbilling_internal.ar_aging_ref IS 'internal: the definition of ar_aging, from open_items on every read (the reference the maintained open items are tested against): per account and currency: open receivables (from the journal) by days past due on the account''s local today: current, 1-30, 31-60, 61-90, over 90';

-- Reading open_items sums every receivables line of every invoice, paid or
-- not.  The open amount of each open item is kept instead, in the
-- transaction that books it: journal lines are insert-only and an issued
-- invoice's currency and due date never change, so adding each inserted
-- receivables line to its item (and dropping items that reach zero) keeps
-- the table equal to open_items, never stale.  Only the days overdue depend
-- on today; they are computed on reading, from the due date.
CREATE TABLE subbilling_internal.kpi_open_items (
    account_id bigint NOT NULL,
    invoice_id bigint NOT NULL,
    currency   text NOT NULL,
    due_date   date,
    open_minor bigint NOT NULL,
    PRIMARY KEY (account_id, invoice_id)
);
COMMENT ON TABLE subbilling_internal.kpi_open_items IS 'internal: open amount (minor units) of every open item, kept by a trigger on journal_lines (the same items as open_items)';
SELECT pg_catalog.pg_extension_config_dump('subbilling_internal.kpi_open_items', 'WHERE false');

CREATE FUNCTION subbilling_internal.kpi_open_items_add() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = subbilling, pg_catalog, pg_temp AS $$
DECLARE
    one        record;
    left_minor bigint;
    cur        text;
    due        date;
BEGIN
    IF subbilling_internal.on_citus() THEN
        -- on Citus this runs on a shard: one open item at a time, each on one account's rows
        FOR one IN SELECT n.account_id, n.invoice_id, sum(subbilling.minor_units(n.amount))::bigint AS m
                   FROM new_lines n WHERE n.invoice_id IS NOT NULL GROUP BY 1, 2 LOOP
            INSERT INTO subbilling_internal.kpi_open_items AS o (account_id, invoice_id, currency, due_date, open_minor)
            SELECT i.account_id, i.id, i.currency, i.due_date, one.m
              FROM subbilling.invoices i WHERE i.account_id = one.account_id AND i.id = one.invoice_id
            ON CONFLICT (account_id, invoice_id) DO UPDATE SET open_minor = o.open_minor + excluded.open_minor;
            DELETE FROM subbilling_internal.kpi_open_items o
             WHERE o.account_id = one.account_id AND o.invoice_id = one.invoice_id AND o.open_minor = 0;
        END LOOP;
        FOR one IN SELECT DISTINCT n.account_id FROM new_lines n WHERE n.invoice_id IS NOT NULL ORDER BY 1 LOOP
            -- (sql/parts/977_citus_kpis.sql: on the account's shard alone)
            PERFORM subbilling_internal.kpi_aging_refresh_citus(one.account_id);
        END LOOP;
        RETURN NULL;
    END IF;
    -- the lines of one item that is kept already (a payment, a refund, a credit): the change
    -- alone, added to the item and to its aging row's running totals from its due date on
    SELECT min(n.account_id) AS a, max(n.account_id) AS a2, min(n.invoice_id) AS i, max(n.invoice_id) AS i2,
           sum(subbilling.minor_units(n.amount))::bigint AS m
      INTO one FROM new_lines n WHERE n.invoice_id IS NOT NULL;
    IF one.a IS NULL THEN
        RETURN NULL;
    END IF;
    IF one.a = one.a2 AND one.i = one.i2 THEN
        IF one.m = 0 THEN
            RETURN NULL;
        END IF;
        UPDATE subbilling_internal.kpi_open_items o SET open_minor = o.open_minor + one.m
         WHERE o.account_id = one.a AND o.invoice_id = one.i
        RETURNING o.open_minor, o.currency, o.due_date INTO left_minor, cur, due;
        IF FOUND THEN
            IF left_minor = 0 THEN
                DELETE FROM subbilling_internal.kpi_open_items o WHERE o.account_id = one.a AND o.invoice_id = one.i;
            END IF;
            -- locks the aging row: what follows reads the open items as committed after it
            IF due IS NULL THEN
                UPDATE subbilling_internal.kpi_aging g SET undated_minor = g.undated_minor + one.m
                 WHERE g.account_id = one.a AND g.currency = cur;
            ELSE
                UPDATE subbilling_internal.kpi_aging g
                   SET cum_minor = ARRAY(SELECT x.c + CASE WHEN x.k > pg_catalog.array_position(g.due_dates, due) THEN one.m ELSE 0 END
                                           FROM unnest(g.cum_minor) WITH ORDINALITY AS x(c, k) ORDER BY x.k)
                 WHERE g.account_id = one.a AND g.currency = cur AND due = ANY (g.due_dates);
            END IF;
            IF NOT FOUND THEN
                -- no aging row with its due date (not expected): computed from the open items
                PERFORM subbilling_internal.kpi_aging_refresh(ARRAY[one.a]);
            ELSIF left_minor = 0 THEN
                -- the item is gone: the account's row with it when no other item is open in its
                -- currency, else its due date when no other item has it
                IF NOT EXISTS (SELECT FROM subbilling_internal.kpi_open_items o
                                WHERE o.account_id = one.a AND o.currency = cur) THEN
                    DELETE FROM subbilling_internal.kpi_aging g WHERE g.account_id = one.a AND g.currency = cur;
                ELSIF due IS NOT NULL AND NOT EXISTS (SELECT FROM subbilling_internal.kpi_open_items o
                                                       WHERE o.account_id = one.a AND o.currency = cur AND o.due_date = due) THEN
                    UPDATE subbilling_internal.kpi_aging g
                       SET due_dates = g.due_dates[:pg_catalog.array_position(g.due_dates, due) - 1]
                                       || g.due_dates[pg_catalog.array_position(g.due_dates, due) + 1:],
                           cum_minor = g.cum_minor[:pg_catalog.array_position(g.due_dates, due)]
                                       || g.cum_minor[pg_catalog.array_position(g.due_dates, due) + 2:]
                     WHERE g.account_id = one.a AND g.currency = cur AND due = ANY (g.due_dates);
                END IF;
            END IF;
            RETURN NULL;
        END IF;
    END IF;
    INSERT INTO subbilling_internal.kpi_open_items AS o (account_id, invoice_id, currency, due_date, open_minor)
    SELECT n.account_id, n.invoice_id, i.currency, i.due_date, sum(subbilling.minor_units(n.amount))::bigint
      FROM new_lines n
      JOIN subbilling.invoices i ON i.account_id = n.account_id AND i.id = n.invoice_id
     WHERE n.invoice_id IS NOT NULL
     GROUP BY n.account_id, n.invoice_id, i.currency, i.due_date
    ON CONFLICT (account_id, invoice_id) DO UPDATE SET open_minor = o.open_minor + excluded.open_minor;
    DELETE FROM subbilling_internal.kpi_open_items o
     USING (SELECT DISTINCT n.account_id, n.invoice_id FROM new_lines n WHERE n.invoice_id IS NOT NULL) n
     WHERE o.account_id = n.account_id AND o.invoice_id = n.invoice_id AND o.open_minor = 0;
    PERFORM subbilling_internal.kpi_aging_refresh(
        ARRAY(SELECT DISTINCT n.account_id FROM new_lines n WHERE n.invoice_id IS NOT NULL ORDER BY 1));
    RETURN NULL;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_open_items_add() IS 'internal trigger (after each statement inserting journal lines): adds the receivables lines to their open items, drops the items that reach zero, and updates the aging rows of their accounts (by the change for one kept item, else computed again)';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_open_items_add() FROM PUBLIC;
CREATE TRIGGER journal_lines_kpi_open_items AFTER INSERT ON subbilling.journal_lines
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_open_items_add();

-- The view returns a row per account and currency with open items, so even
-- summing the open items on each read is too slow at a million accounts.
-- Each (account, currency) keeps one row instead, refreshed with its open
-- items in the same transaction: the distinct due dates of its open items,
-- ascending, and the running total of their open amounts up to each due
-- date (cum_minor[1] = 0, cum_minor[k + 1] = open amount due on or before
-- due_dates[k]).  The buckets depend only on today minus the due date, so a
-- read finds each boundary by binary search (width_bucket over the due
-- dates) and takes the difference of two running totals: one narrow row per
-- account, nothing summed, never stale.  The account's time zone (its local
-- today) is kept in the row, updated when the account's changes.
CREATE TABLE subbilling_internal.kpi_aging (
    account_id    bigint NOT NULL,
    currency      text NOT NULL,
    time_zone     text NOT NULL,
    due_dates     date[] NOT NULL,
    cum_minor     bigint[] NOT NULL,
    undated_minor bigint NOT NULL,
    PRIMARY KEY (account_id, currency)
);
COMMENT ON TABLE subbilling_internal.kpi_aging IS 'internal: per account and currency with open items: the distinct due dates (ascending), the running open amount (minor units) up to each (cum_minor[k + 1] up to due_dates[k], cum_minor[1] = 0), the amount without a due date and the account''s time zone; kept with kpi_open_items';
SELECT pg_catalog.pg_extension_config_dump('subbilling_internal.kpi_aging', 'WHERE false');

-- the rows kpi_aging holds, from the open items (the refresh and its test read it)
CREATE VIEW subbilling_internal.kpi_aging_source AS
SELECT d.account_id, d.currency, a.time_zone,
       coalesce(array_agg(d.due_date ORDER BY d.due_date) FILTER (WHERE d.due_date IS NOT NULL), '{}') AS due_dates,
       '{0}'::bigint[] || coalesce(array_agg(d.cum::bigint ORDER BY d.due_date) FILTER (WHERE d.due_date IS NOT NULL), '{}') AS cum_minor,
       coalesce(sum(d.open_minor) FILTER (WHERE d.due_date IS NULL), 0)::bigint AS undated_minor
  FROM (SELECT o.account_id, o.currency, o.due_date, sum(o.open_minor) AS open_minor,
               sum(sum(o.open_minor)) OVER (PARTITION BY o.account_id, o.currency ORDER BY o.due_date) AS cum
          FROM subbilling_internal.kpi_open_items o
         GROUP BY o.account_id, o.currency, o.due_date) d
  JOIN subbilling.accounts a ON a.id = d.account_id
 GROUP BY d.account_id, d.currency, a.time_zone;
COMMENT ON VIEW subbilling_internal.kpi_aging_source IS 'internal: the rows of kpi_aging computed from kpi_open_items';
REVOKE ALL ON subbilling_internal.kpi_aging_source FROM PUBLIC;

CREATE FUNCTION subbilling_internal.kpi_aging_refresh(accounts bigint[]) RETURNS void
LANGUAGE plpgsql SET search_path = subbilling, pg_catalog, pg_temp AS $$
BEGIN
    -- one transaction at a time per account (two payments of one account on different invoices
    -- change different open items): the row is locked (created first if it is new), and the
    -- statement after the lock computes it from the open items as then committed
    INSERT INTO subbilling_internal.kpi_aging (account_id, currency, time_zone, due_dates, cum_minor, undated_minor)
    SELECT DISTINCT o.account_id, o.currency, ''::text, '{}'::date[], '{0}'::bigint[], 0::bigint
      FROM subbilling_internal.kpi_open_items o
     WHERE o.account_id = ANY (accounts)
    ON CONFLICT DO NOTHING;
    PERFORM FROM subbilling_internal.kpi_aging g WHERE g.account_id = ANY (accounts)
      ORDER BY g.account_id, g.currency FOR UPDATE;
    WITH s AS (SELECT * FROM subbilling_internal.kpi_aging_source s WHERE s.account_id = ANY (accounts)),
    gone AS (DELETE FROM subbilling_internal.kpi_aging g
              WHERE g.account_id = ANY (accounts)
                AND NOT EXISTS (SELECT FROM s WHERE s.account_id = g.account_id AND s.currency = g.currency))
    INSERT INTO subbilling_internal.kpi_aging AS g (account_id, currency, time_zone, due_dates, cum_minor, undated_minor)
    SELECT s.account_id, s.currency, s.time_zone, s.due_dates, s.cum_minor, s.undated_minor FROM s
    ON CONFLICT (account_id, currency) DO UPDATE
       SET time_zone = excluded.time_zone, due_dates = excluded.due_dates, cum_minor = excluded.cum_minor,
           undated_minor = excluded.undated_minor;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_aging_refresh(bigint[]) IS 'internal: computes the aging rows of the given accounts again from their open items';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_aging_refresh(bigint[]) FROM PUBLIC;

CREATE FUNCTION subbilling_internal.kpi_aging_time_zone() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = subbilling, pg_catalog, pg_temp AS $$
BEGIN
    UPDATE subbilling_internal.kpi_aging g SET time_zone = NEW.time_zone WHERE g.account_id = NEW.id;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_aging_time_zone() IS 'internal trigger (after an account''s time zone changes): the aging rows take the new time zone';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_aging_time_zone() FROM PUBLIC;
CREATE TRIGGER accounts_kpi_aging_time_zone AFTER UPDATE OF time_zone ON subbilling.accounts
    FOR EACH ROW WHEN (OLD.time_zone IS DISTINCT FROM NEW.time_zone)
    EXECUTE FUNCTION subbilling_internal.kpi_aging_time_zone();

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

CREATE VIEW subbilling.ar_aging WITH (security_barrier) AS
SELECT k.account_id, k.currency, (k.a).current, (k.a).overdue_1_30, (k.a).overdue_31_60, (k.a).overdue_61_90,
       (k.a).overdue_90_plus, (k.a).total
  FROM (SELECT g.account_id, g.currency,
               subbilling.aging_buckets(g.due_dates, g.cum_minor, g.undated_minor,
                                                     (pg_catalog.now() AT TIME ZONE g.time_zone)::date, g.currency) AS a
          FROM subbilling_internal.kpi_aging g
        OFFSET 0) k;  -- OFFSET 0: one call per row
COMMENT ON VIEW subbilling.ar_aging IS 'per account and currency: open receivables (from the journal) by days past due on the account''s local today: current, 1-30, 31-60, 61-90, over 90';

-- ---------------------------------------------------------------- revenue recognition

-- The recognition schedule of each issued line (invoices and credit notes
-- that are open, paid or uncollectible; void ones never count): a line with
-- a service period is recognised day by day over it, the days before the
-- document's issue month in the issue month (nothing is recognised before
-- it is billed); a line without a period (fees, one-off lines) in its issue
-- month.  Each month's share is net * days / period days rounded once, half
-- away from zero; the last month takes the remainder, so the months sum to
-- the line exactly.  A credit note's lines carry the credited period and a
-- negative net: they reverse the credited revenue the same way.
CREATE VIEW subbilling_internal.kpi_recognition_lines WITH (security_barrier) AS
WITH l AS (
    SELECT l.account_id, l.id AS line_id, i.currency, subbilling.minor_units(l.net) AS net,
           date_trunc('month', i.issue_date)::date AS issue_month,
           CASE WHEN l.period IS NULL OR upper_inf(l.period) OR lower_inf(l.period) THEN NULL ELSE lower(l.period) END AS lo,
           CASE WHEN l.period IS NULL OR upper_inf(l.period) OR lower_inf(l.period) THEN NULL ELSE upper(l.period) END AS hi
      FROM subbilling.invoices i
      JOIN subbilling.invoice_lines l ON l.account_id = i.account_id AND l.invoice_id = i.id
     WHERE i.status IN ('open', 'paid', 'uncollectible')
),
s AS (
    SELECT l.account_id, l.line_id, l.currency, l.net, l.issue_month, g::date AS month,
           CASE WHEN l.lo IS NULL THEN 1
                ELSE GREATEST(0, LEAST(l.hi, (g + interval '1 month')::date)
                                 - CASE WHEN g::date = l.issue_month THEN l.lo ELSE GREATEST(l.lo, g::date) END) END AS days,
           CASE WHEN l.lo IS NULL THEN 1 ELSE l.hi - l.lo END AS total_days,
           g::date = GREATEST(l.issue_month, date_trunc('month', coalesce(l.hi - 1, l.issue_month))::date) AS last
      FROM l
     CROSS JOIN LATERAL generate_series(l.issue_month,
                                        GREATEST(l.issue_month, date_trunc('month', coalesce(l.hi - 1, l.issue_month))),
                                        interval '1 month') AS g
)
SELECT s.account_id, s.line_id, s.currency, s.issue_month, s.month, s.net, s.days, s.total_days,
       CASE WHEN s.last
            THEN s.net - coalesce(sum(round(s.net::numeric * s.days / s.total_days)::bigint)
                                  OVER (PARTITION BY s.account_id, s.line_id ORDER BY s.month
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
            ELSE round(s.net::numeric * s.days / s.total_days)::bigint END AS recognised
  FROM s
 WHERE s.days > 0 OR s.last OR s.month = s.issue_month;
COMMENT ON VIEW subbilling_internal.kpi_recognition_lines IS 'internal: each issued line''s revenue (minor units) per month: day by day over its service period, rounded once per line and month, the remainder in the last month';

-- The definition (the reference; revenue_recognition below gives the same
-- rows from the snapshots).
CREATE VIEW subbilling_internal.revenue_recognition_ref WITH (security_barrier) AS
WITH t AS (
    -- one pass: a line is billed in its issue month, which always has a row
    SELECT r.currency, r.month, (sum(r.net) FILTER (WHERE r.month = r.issue_month))::bigint AS billed,
           sum(r.recognised)::bigint AS recognised
      FROM subbilling_internal.kpi_recognition_lines r
     GROUP BY r.currency, r.month
),
d AS (
    SELECT g.currency, g.month, coalesce(t.billed, 0) AS billed, coalesce(t.recognised, 0) AS recognised
      FROM (SELECT r.currency, x::date AS month
              FROM (SELECT t.currency, min(t.month) AS m0, max(t.month) AS m1 FROM t GROUP BY t.currency) r
             CROSS JOIN LATERAL generate_series(r.m0, r.m1, interval '1 month') AS x) g
      LEFT JOIN t ON t.currency = g.currency AND t.month = g.month
),
c AS (
    SELECT d.*, sum(d.billed - d.recognised) OVER (PARTITION BY d.currency ORDER BY d.month)::bigint AS closing
      FROM d
)
SELECT c.month, c.currency,
       subbilling.amount(subbilling.price_minor(c.closing - c.billed + c.recognised, c.currency)) AS opening_deferred,
       subbilling.amount(subbilling.price_minor(c.billed, c.currency)) AS billed,
       subbilling.amount(subbilling.price_minor(c.recognised, c.currency)) AS recognised,
       subbilling.amount(subbilling.price_minor(c.closing, c.currency)) AS closing_deferred
  FROM c;
COMMENT ON VIEW subbilling_internal.revenue_recognition_ref IS 'internal: the definition of revenue_recognition, computed from the lines on every read (the reference the snapshots are tested against)';


-- Snapshots of recognition, as for MRR (kpi_snapshot_state tells whether
-- they are usable; a line's schedule does not depend on the day, so any day's
-- snapshot is): per account, currency and month the line-months, billed and
-- recognised (minor units), their sums per currency and month, and the
-- accounts whose invoices or lines changed since (marked by triggers).
CREATE VIEW subbilling_internal.kpi_recognition_accounts WITH (security_barrier) AS
SELECT r.account_id, r.currency, r.month, count(*) AS line_months,
       coalesce(sum(r.net) FILTER (WHERE r.month = r.issue_month), 0)::bigint AS billed,
       sum(r.recognised)::bigint AS recognised
  FROM subbilling_internal.kpi_recognition_lines r
 GROUP BY r.account_id, r.currency, r.month;
COMMENT ON VIEW subbilling_internal.kpi_recognition_accounts IS 'internal: per account, currency and month, the recognition line-months, billed and recognised (minor units)';

CREATE TABLE subbilling_internal.kpi_recognition_snapshot (
    account_id  bigint NOT NULL,
    currency    text NOT NULL,
    month       date NOT NULL,
    line_months bigint NOT NULL,
    billed      bigint NOT NULL,
    recognised  bigint NOT NULL,
    PRIMARY KEY (account_id, currency, month)
);
COMMENT ON TABLE subbilling_internal.kpi_recognition_snapshot IS 'internal: kpi_recognition_accounts as of the last refresh';
CREATE TABLE subbilling_internal.kpi_recognition_months (
    currency    text NOT NULL,
    month       date NOT NULL,
    line_months bigint NOT NULL,
    billed      bigint NOT NULL,
    recognised  bigint NOT NULL,
    PRIMARY KEY (currency, month)
);
COMMENT ON TABLE subbilling_internal.kpi_recognition_months IS 'internal: kpi_recognition_snapshot summed per currency and month';
CREATE TABLE subbilling_internal.kpi_recognition_dirty (
    account_id bigint NOT NULL,
    marked_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE subbilling_internal.kpi_recognition_dirty IS 'internal: accounts whose invoices or lines changed after the recognition snapshot (computed live until the next refresh)';
SELECT pg_catalog.pg_extension_config_dump('subbilling_internal.kpi_recognition_snapshot', 'WHERE false');
SELECT pg_catalog.pg_extension_config_dump('subbilling_internal.kpi_recognition_months', 'WHERE false');
SELECT pg_catalog.pg_extension_config_dump('subbilling_internal.kpi_recognition_dirty', 'WHERE false');

-- The recognition rows of each account, live (sign 1) and as in its
-- snapshot (sign -1): summed over some accounts, how their sums changed
-- since the snapshot (as kpi_movement_parts gives for MRR).  The one
-- definition that kpi_recognition_parts (on reading, the marked accounts)
-- and kpi_recognition_delta (the marked-only refresh) both sum.
CREATE VIEW subbilling_internal.kpi_recognition_changes WITH (security_barrier) AS
SELECT 1 AS sign, c.account_id, c.currency, c.month, c.line_months, c.billed, c.recognised
  FROM subbilling_internal.kpi_recognition_accounts c
UNION ALL
SELECT -1, c.account_id, c.currency, c.month, c.line_months, c.billed, c.recognised
  FROM subbilling_internal.kpi_recognition_snapshot c;
COMMENT ON VIEW subbilling_internal.kpi_recognition_changes IS 'internal: per account, currency and month, the recognition rows computed live (sign 1) and as in the snapshot (sign -1)';
REVOKE ALL ON subbilling_internal.kpi_recognition_changes FROM PUBLIC;

CREATE FUNCTION subbilling_internal.kpi_recognition_delta(accounts bigint[])
RETURNS SETOF subbilling_internal.kpi_recognition_months
LANGUAGE sql STABLE SET search_path = subbilling, pg_catalog, pg_temp AS $$
SELECT r.currency, r.month, sum(r.sign * r.line_months)::bigint, sum(r.sign * r.billed)::bigint,
       sum(r.sign * r.recognised)::bigint
  FROM subbilling_internal.kpi_recognition_changes r
 WHERE r.account_id = ANY (accounts)
 GROUP BY r.currency, r.month
$$;
COMMENT ON FUNCTION subbilling_internal.kpi_recognition_delta(bigint[]) IS 'internal: per currency and month, the recognition sums of the given accounts computed live less their snapshot rows';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_recognition_delta(bigint[]) FROM PUBLIC;

CREATE VIEW subbilling_internal.kpi_recognition_parts WITH (security_barrier) AS
WITH st AS (
    -- current_schema() is parallel unsafe: it keeps the planner from a parallel
    -- scan of every line for a few marked accounts (they are read by index)
    SELECT EXISTS (SELECT FROM subbilling_internal.kpi_snapshot_state z WHERE NOT z.building) AS usable,
           EXISTS (SELECT FROM subbilling_internal.kpi_snapshot_state z WHERE z.building) AS building,
           (SELECT array_agg(DISTINCT d.account_id) FROM subbilling_internal.kpi_recognition_dirty d) AS dirty,
           pg_catalog.current_schema() AS serial
),
r AS (
    SELECT 1 AS sign, c.currency, c.month, c.line_months, c.billed, c.recognised
      FROM subbilling_internal.kpi_recognition_accounts c
     WHERE NOT (SELECT st.usable OR st.building FROM st)
    UNION ALL
    -- the marked accounts live less their snapshot rows
    SELECT c.sign, c.currency, c.month, c.line_months, c.billed, c.recognised
      FROM subbilling_internal.kpi_recognition_changes c
     WHERE (SELECT st.usable AND st.dirty IS NOT NULL FROM st) AND c.account_id = ANY ((SELECT st.dirty FROM st)::bigint[])
    UNION ALL
    SELECT 1, c.currency, c.month, c.line_months, c.billed, c.recognised
      FROM subbilling_internal.kpi_recognition_snapshot c
     WHERE (SELECT st.building FROM st)
)
SELECT r.currency, r.month, sum(r.sign * r.line_months)::bigint AS line_months,
       sum(r.sign * r.billed)::bigint AS billed, sum(r.sign * r.recognised)::bigint AS recognised
  FROM r
 GROUP BY r.currency, r.month;
COMMENT ON VIEW subbilling_internal.kpi_recognition_parts IS 'internal: recognition summed per currency and month: marked accounts live less their snapshot rows (usable snapshot), everything live (none), the snapshot rows (while building)';

CREATE TRIGGER invoices_kpi_mark_new AFTER INSERT OR DELETE ON subbilling.invoices
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.kpi_mark_account('recognition');
CREATE TRIGGER invoices_kpi_mark AFTER UPDATE ON subbilling.invoices
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id OR OLD.status IS DISTINCT FROM NEW.status
                       OR OLD.currency IS DISTINCT FROM NEW.currency OR OLD.issue_date IS DISTINCT FROM NEW.issue_date)
    EXECUTE FUNCTION subbilling_internal.kpi_mark_account('recognition');
CREATE TRIGGER invoice_lines_kpi_mark AFTER INSERT OR UPDATE OR DELETE ON subbilling.invoice_lines
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.kpi_mark_account('recognition');
CREATE TRIGGER invoices_kpi_truncate AFTER TRUNCATE ON subbilling.invoices
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_invalidate();
CREATE TRIGGER invoice_lines_kpi_truncate AFTER TRUNCATE ON subbilling.invoice_lines
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_invalidate();

CREATE VIEW subbilling.revenue_recognition WITH (security_barrier) AS
WITH t AS (
    -- the snapshot's sums corrected by the marked accounts (or all live)
    SELECT x.currency, x.month, sum(x.billed)::bigint AS billed, sum(x.recognised)::bigint AS recognised
      FROM (SELECT s.currency, s.month, s.line_months, s.billed, s.recognised
              FROM subbilling_internal.kpi_recognition_months s
             WHERE EXISTS (SELECT FROM subbilling_internal.kpi_snapshot_state z WHERE NOT z.building)
            UNION ALL
            SELECT p.currency, p.month, p.line_months, p.billed, p.recognised
              FROM subbilling_internal.kpi_recognition_parts p) x
     GROUP BY x.currency, x.month
    HAVING sum(x.line_months) > 0
),
d AS (
    SELECT g.currency, g.month, coalesce(t.billed, 0) AS billed, coalesce(t.recognised, 0) AS recognised
      FROM (SELECT r.currency, x::date AS month
              FROM (SELECT t.currency, min(t.month) AS m0, max(t.month) AS m1 FROM t GROUP BY t.currency) r
             CROSS JOIN LATERAL generate_series(r.m0, r.m1, interval '1 month') AS x) g
      LEFT JOIN t ON t.currency = g.currency AND t.month = g.month
),
c AS (
    SELECT d.*, sum(d.billed - d.recognised) OVER (PARTITION BY d.currency ORDER BY d.month)::bigint AS closing
      FROM d
)
SELECT c.month, c.currency,
       subbilling.amount(subbilling.price_minor(c.closing - c.billed + c.recognised, c.currency)) AS opening_deferred,
       subbilling.amount(subbilling.price_minor(c.billed, c.currency)) AS billed,
       subbilling.amount(subbilling.price_minor(c.recognised, c.currency)) AS recognised,
       subbilling.amount(subbilling.price_minor(c.closing, c.currency)) AS closing_deferred
  FROM c;
COMMENT ON VIEW subbilling.revenue_recognition IS 'per month and currency (net of VAT): deferred revenue at the start, billed (issue month), recognised (day by day over service periods), deferred at the end; opening + billed - recognised = closing, exactly';

-- ---------------------------------------------------------------- upsell candidates

-- Subscriptions whose usage was above their allowance (the included units
-- of their items) in at least 2 of their last 3 complete billing periods
-- (the base plan's periods), with the cheapest active base plan of the same
-- product, currency and billing period whose included units cover the
-- average usage of those periods.
CREATE VIEW subbilling_internal.upsell_candidates_ref WITH (security_barrier) AS
WITH b AS (
    SELECT i.account_id, i.subscription_id, s.currency, s.billing_anchor, p.id AS plan_id, p.code AS plan_code,
           p.product_id, p.billing_period, p.price,
           subbilling.period_index(s.billing_anchor, p.billing_period, current_date) AS cur_idx
      FROM subbilling.subscription_items i
      JOIN subbilling.subscriptions s ON s.account_id = i.account_id AND s.id = i.subscription_id
      JOIN subbilling.plans p ON p.id = i.plan_id
     WHERE i.kind = 'base' AND i.voided_at IS NULL AND i.validity @> current_date AND s.status <> 'canceled'
),
per AS (
    SELECT b.*, k.n,
           subbilling.period_start(b.billing_anchor, b.billing_period, b.cur_idx - k.n) AS ps,
           subbilling.period_start(b.billing_anchor, b.billing_period, b.cur_idx - k.n + 1) AS pe
      FROM b CROSS JOIN generate_series(1, 3) AS k(n)
),
u AS (
    SELECT per.account_id, per.subscription_id, per.currency, per.plan_code, per.product_id, per.billing_period,
           per.n,
           (SELECT coalesce(sum(x.quantity), 0) FROM subbilling.usage x
             WHERE x.account_id = per.account_id AND x.subscription_id = per.subscription_id
               AND x.usage_date >= per.ps AND x.usage_date < per.pe) AS used,
           (SELECT coalesce(sum(pp.included_units), 0) FROM subbilling.subscription_items j
              JOIN subbilling.plans pp ON pp.id = j.plan_id
             WHERE j.account_id = per.account_id AND j.subscription_id = per.subscription_id
               AND j.voided_at IS NULL AND j.validity @> per.ps) AS allowance
      FROM per
),
c AS (
    SELECT u.account_id, u.subscription_id, u.currency, u.plan_code, u.product_id, u.billing_period,
           max(u.allowance) FILTER (WHERE u.n = 1) AS included_units,
           count(*) FILTER (WHERE u.used > u.allowance) AS periods_over,
           round(avg(u.used), 2) AS average_usage
      FROM u
     GROUP BY u.account_id, u.subscription_id, u.currency, u.plan_code, u.product_id, u.billing_period
    HAVING count(*) FILTER (WHERE u.used > u.allowance) >= 2
)
SELECT c.account_id, c.subscription_id, c.currency, c.plan_code, c.included_units, c.periods_over, c.average_usage,
       r.code AS suggested_plan_code, r.included_units AS suggested_included_units,
       subbilling.amount(r.price) AS suggested_price
  FROM c
  LEFT JOIN LATERAL (
      SELECT p.code, p.included_units, p.price
        FROM subbilling.plans p
       WHERE p.active AND p.kind = 'base' AND p.product_id = c.product_id AND p.currency = c.currency
         AND p.billing_period = c.billing_period AND p.included_units >= c.average_usage
         AND p.pricing_model = 'flat' AND p.code <> c.plan_code
       ORDER BY p.price, p.included_units DESC, p.code
       LIMIT 1) r ON true;
COMMENT ON VIEW subbilling_internal.upsell_candidates_ref IS 'internal: the definition of upsell_candidates over every current base item (the reference the fast view is tested against): subscriptions with usage above their included units in at least 2 of their last 3 complete billing periods, with the cheapest active flat base plan of the same product, currency and period that covers the average';

-- Only a subscription with usage can use more than its allowance (included
-- units are never negative), and summing the usage of its last three
-- periods on each read costs an index probe per period.  Each subscription
-- with usage keeps one row instead, in the transaction that records the
-- usage: its usage summed per billing period (the period starts ascending,
-- the totals alongside), the periods counted from the subscription's
-- billing anchor by the billing period of its base plan, both stored in
-- the row as its key.  A read takes a period's total by its start; a
-- subscription whose anchor or base plan's period is no longer the key
-- (a plan change since its last usage) is summed from the usage instead, so
-- the view is never stale; its next usage keys it again.  Backdated usage
-- adds to the period of its day, wherever that is.
CREATE TABLE subbilling_internal.kpi_usage_periods (
    account_id      bigint NOT NULL,
    subscription_id bigint NOT NULL,
    billing_anchor  date,
    billing_period  subbilling.billing_period,
    starts          date[] NOT NULL,
    used            numeric[] NOT NULL,
    sub_status      text,
    sub_currency    text,
    sub_anchor      date,
    PRIMARY KEY (account_id, subscription_id)
);
COMMENT ON TABLE subbilling_internal.kpi_usage_periods IS 'internal: per subscription with usage: its usage summed per billing period (starts ascending, used alongside), the periods counted by the key (billing anchor and the base plan''s billing period when last recorded; NULL without a current base plan); kept by triggers on usage; and the subscription''s status, currency and billing anchor, kept by a trigger on subscriptions';

-- The items of the subscriptions with usage (a copy of their rows of
-- subscription_items, kept by triggers on it), so that the view joins two
-- small tables instead of probing the subscriptions and their items.
CREATE TABLE subbilling_internal.kpi_usage_items (
    account_id      bigint NOT NULL,
    id              bigint NOT NULL,
    subscription_id bigint NOT NULL,
    plan_id         bigint NOT NULL,
    kind            text NOT NULL,
    validity        daterange NOT NULL,
    voided_at       timestamptz,
    PRIMARY KEY (account_id, id)
);
CREATE INDEX kpi_usage_items_subscription_idx ON subbilling_internal.kpi_usage_items (account_id, subscription_id);
COMMENT ON TABLE subbilling_internal.kpi_usage_items IS 'internal: the items (subscription_items columns) of the subscriptions in kpi_usage_periods, kept by triggers on subscription_items';
SELECT pg_catalog.pg_extension_config_dump('subbilling_internal.kpi_usage_items', 'WHERE false');
SELECT pg_catalog.pg_extension_config_dump('subbilling_internal.kpi_usage_periods', 'WHERE false');
CREATE INDEX usage_subscription_date_idx ON subbilling.usage (account_id, subscription_id, usage_date) INCLUDE (quantity);

-- Recording usage does not touch the kept rows: the triggers on usage only
-- append each change (quantity negative for removed usage) to an
-- insert-only queue, so two transactions recording usage of one
-- subscription never wait for each other.  The worker folds the queue into
-- the kept rows (kpi_usage_fold, at each KPI refresh), and upsell_candidates
-- adds the rows not yet folded on reading, so it is never stale.  Only a
-- subscription's first usage creates its kept row (unkeyed: read from the
-- usage until the next fold keys it).
CREATE TABLE subbilling_internal.kpi_usage_queue (
    account_id      bigint NOT NULL,
    subscription_id bigint NOT NULL,
    usage_date      date NOT NULL,
    quantity        numeric NOT NULL
);
COMMENT ON TABLE subbilling_internal.kpi_usage_queue IS 'internal: usage changes (quantity negative for removed usage) not yet folded into kpi_usage_periods; appended by triggers on usage, emptied by kpi_usage_fold';
SELECT pg_catalog.pg_extension_config_dump('subbilling_internal.kpi_usage_queue', 'WHERE false');

-- A subscription's first usage: its kept row, unkeyed and empty (read from
-- the usage until a fold keys it), and the copies of its status, currency,
-- anchor and items.  Two first recorders of one subscription: the second
-- waits for the first's row (once per subscription, never again).
CREATE FUNCTION subbilling_internal.kpi_usage_periods_enter(acc bigint[], sub bigint[])
RETURNS void
LANGUAGE plpgsql SET search_path = subbilling, pg_catalog, pg_temp AS $$
DECLARE
    new_acc bigint[];
    new_sub bigint[];
    k       integer;
BEGIN
    IF subbilling_internal.on_citus() THEN
        -- on Citus this runs on a shard: one subscription at a time, each statement on one
        -- account's rows
        FOR k IN 1 .. coalesce(pg_catalog.cardinality(acc), 0) LOOP
            INSERT INTO subbilling_internal.kpi_usage_periods (account_id, subscription_id, billing_anchor, billing_period, starts, used)
            VALUES (acc[k], sub[k], NULL, NULL, '{}', '{}')
            ON CONFLICT DO NOTHING;
            IF FOUND THEN
                PERFORM FROM subbilling.subscriptions s WHERE s.account_id = acc[k] AND s.id = sub[k] FOR SHARE;
                UPDATE subbilling_internal.kpi_usage_periods w
                   SET sub_status = s.status, sub_currency = s.currency, sub_anchor = s.billing_anchor
                  FROM subbilling.subscriptions s
                 WHERE s.account_id = acc[k] AND s.id = sub[k] AND w.account_id = acc[k] AND w.subscription_id = sub[k];
                INSERT INTO subbilling_internal.kpi_usage_items (account_id, id, subscription_id, plan_id, kind, validity, voided_at)
                SELECT i.account_id, i.id, i.subscription_id, i.plan_id, i.kind, i.validity, i.voided_at
                  FROM subbilling.subscription_items i
                 WHERE i.account_id = acc[k] AND i.subscription_id = sub[k]
                ON CONFLICT (account_id, id) DO UPDATE
                   SET plan_id = excluded.plan_id, kind = excluded.kind, validity = excluded.validity, voided_at = excluded.voided_at;
            END IF;
        END LOOP;
        RETURN;
    END IF;
    WITH ins AS (
        INSERT INTO subbilling_internal.kpi_usage_periods (account_id, subscription_id, billing_anchor, billing_period, starts, used)
        SELECT DISTINCT d.a, d.s, NULL::date, NULL::subbilling.billing_period, '{}'::date[], '{}'::numeric[]
          FROM unnest(acc, sub) AS d(a, s)
        ON CONFLICT DO NOTHING
        RETURNING account_id, subscription_id)
    SELECT array_agg(ins.account_id), array_agg(ins.subscription_id) INTO new_acc, new_sub FROM ins;
    IF new_acc IS NULL THEN
        RETURN;
    END IF;
    -- their status, currency, anchor and items, read under a share lock (a change of them,
    -- which locks the subscription, commits before or waits, and then sees the new row and
    -- keeps it)
    PERFORM FROM subbilling.subscriptions s JOIN unnest(new_acc, new_sub) AS d(a, s) ON s.account_id = d.a AND s.id = d.s
     ORDER BY s.account_id, s.id FOR SHARE OF s;
    UPDATE subbilling_internal.kpi_usage_periods w
       SET sub_status = s.status, sub_currency = s.currency, sub_anchor = s.billing_anchor
      FROM unnest(new_acc, new_sub) AS d(a, s)
      JOIN subbilling.subscriptions s ON s.account_id = d.a AND s.id = d.s
     WHERE w.account_id = d.a AND w.subscription_id = d.s;
    INSERT INTO subbilling_internal.kpi_usage_items (account_id, id, subscription_id, plan_id, kind, validity, voided_at)
    SELECT i.account_id, i.id, i.subscription_id, i.plan_id, i.kind, i.validity, i.voided_at
      FROM unnest(new_acc, new_sub) AS d(a, s)
      JOIN subbilling.subscription_items i ON i.account_id = d.a AND i.subscription_id = d.s
    ON CONFLICT (account_id, id) DO UPDATE
       SET plan_id = excluded.plan_id, kind = excluded.kind, validity = excluded.validity, voided_at = excluded.voided_at;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_usage_periods_enter(bigint[], bigint[]) IS 'internal: creates the kept usage rows (unkeyed, empty) of subscriptions with their first usage, with the copies of their status, currency, anchor and items';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_usage_periods_enter(bigint[], bigint[]) FROM PUBLIC;

CREATE FUNCTION subbilling_internal.kpi_usage_periods_add() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = subbilling, pg_catalog, pg_temp AS $$
DECLARE
    one record;
    acc bigint[];
    sub bigint[];
BEGIN
    IF subbilling_internal.on_citus() THEN
        -- on Citus this runs on a shard: one row at a time, each statement on one account's rows
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            FOR one IN SELECT o.account_id, o.subscription_id, o.usage_date, o.quantity FROM old_usage o LOOP
                INSERT INTO subbilling_internal.kpi_usage_queue (account_id, subscription_id, usage_date, quantity)
                VALUES (one.account_id, one.subscription_id, one.usage_date, -one.quantity);
            END LOOP;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            FOR one IN SELECT n.account_id, n.subscription_id, n.usage_date, n.quantity FROM new_usage n LOOP
                INSERT INTO subbilling_internal.kpi_usage_queue (account_id, subscription_id, usage_date, quantity)
                VALUES (one.account_id, one.subscription_id, one.usage_date, one.quantity);
                IF NOT EXISTS (SELECT FROM subbilling_internal.kpi_usage_periods w
                                WHERE w.account_id = one.account_id AND w.subscription_id = one.subscription_id) THEN
                    PERFORM subbilling_internal.kpi_usage_periods_enter(ARRAY[one.account_id], ARRAY[one.subscription_id]);
                END IF;
            END LOOP;
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO subbilling_internal.kpi_usage_queue (account_id, subscription_id, usage_date, quantity)
        SELECT o.account_id, o.subscription_id, o.usage_date, -o.quantity FROM old_usage o;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        -- one statement: the queue rows, and the subscriptions with their first usage (an index
        -- probe each: OFFSET 0 keeps the probe a subplan, so the plan cached for a large
        -- statement never scans every kept row for a one-row one)
        WITH q AS (
            INSERT INTO subbilling_internal.kpi_usage_queue (account_id, subscription_id, usage_date, quantity)
            SELECT n.account_id, n.subscription_id, n.usage_date, n.quantity FROM new_usage n
        )
        SELECT array_agg(n.account_id), array_agg(n.subscription_id) INTO acc, sub
          FROM (SELECT DISTINCT x.account_id, x.subscription_id FROM new_usage x) n
         WHERE NOT EXISTS (SELECT FROM subbilling_internal.kpi_usage_periods w
                            WHERE w.account_id = n.account_id AND w.subscription_id = n.subscription_id OFFSET 0);
        IF acc IS NOT NULL THEN
            PERFORM subbilling_internal.kpi_usage_periods_enter(acc, sub);
        END IF;
    END IF;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_usage_periods_add() IS 'internal trigger (after each statement inserting, updating or deleting usage): appends the change to the usage queue (the worker folds it into the kept per-period usage) and creates the kept rows of subscriptions with their first usage';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_usage_periods_add() FROM PUBLIC;
CREATE TRIGGER usage_kpi_periods AFTER INSERT ON subbilling.usage
    REFERENCING NEW TABLE AS new_usage
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_usage_periods_add();
CREATE TRIGGER usage_kpi_periods_update AFTER UPDATE ON subbilling.usage
    REFERENCING NEW TABLE AS new_usage OLD TABLE AS old_usage
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_usage_periods_add();
CREATE TRIGGER usage_kpi_periods_delete AFTER DELETE ON subbilling.usage
    REFERENCING OLD TABLE AS old_usage
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_usage_periods_add();

-- The fold's one statement (kpi_usage_fold): the queued changes of every account (acct
-- NULL: kpi_usage_fold on one server), or of one account with every table read and written
-- on that account's rows alone (the fold on Citus, kpi_usage_fold: Citus routes the
-- statement as a whole to the account's shard).  The account's condition is written into
-- the statement's text where each table is read ({x}: AND x.account_id = the account, a
-- constant, which Citus prunes by; nothing for every account, so that one server's plan is
-- the plain fold's).  The caller holds the fold's lock.
CREATE FUNCTION subbilling_internal.kpi_usage_fold_account(acct bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = subbilling, pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE regexp_replace($f$
    WITH q AS (
        DELETE FROM subbilling_internal.kpi_usage_queue q
         WHERE true {q}
        RETURNING q.account_id, q.subscription_id, q.usage_date, q.quantity
    ),
    d AS (
        SELECT q.account_id, q.subscription_id, q.usage_date AS day, sum(q.quantity) AS q, count(*) AS n
          FROM q GROUP BY q.account_id, q.subscription_id, q.usage_date
    ),
    k0 AS (
        SELECT w.account_id, w.subscription_id, w.starts, w.used, w.billing_anchor AS kept_anchor,
               w.billing_period AS kept_period, s.billing_anchor,
               (SELECT p.billing_period FROM subbilling.subscription_items i JOIN subbilling.plans p ON p.id = i.plan_id
                 WHERE i.account_id = w.account_id {i} AND i.subscription_id = w.subscription_id
                   AND i.kind = 'base' AND i.voided_at IS NULL AND i.validity @> current_date
                 ORDER BY i.id LIMIT 1) AS billing_period
          FROM subbilling_internal.kpi_usage_periods w
          JOIN subbilling.subscriptions s ON s.account_id = w.account_id AND s.id = w.subscription_id
         WHERE (w.account_id, w.subscription_id) IN (SELECT d.account_id, d.subscription_id FROM d) {w} {s}
    ),
    k AS (
        SELECT k0.*, coalesce(k0.kept_anchor = k0.billing_anchor AND k0.kept_period = k0.billing_period, false) AS same
          FROM k0
    ),
    t AS (
        -- the same key: the kept totals and the changes
        SELECT k.account_id, k.subscription_id, x.ps, x.q
          FROM k CROSS JOIN LATERAL unnest(k.starts, k.used) AS x(ps, q)
         WHERE k.same
        UNION ALL
        SELECT k.account_id, k.subscription_id,
               subbilling.period_start(k.billing_anchor, k.billing_period,
                                       subbilling.period_index(k.billing_anchor, k.billing_period, d.day)), d.q
          FROM k JOIN d ON d.account_id = k.account_id AND d.subscription_id = k.subscription_id
         WHERE k.same
        UNION ALL
        -- unkeyed or a new key: all the usage (which includes the changes claimed)
        SELECT k.account_id, k.subscription_id,
               subbilling.period_start(k.billing_anchor, k.billing_period,
                                       subbilling.period_index(k.billing_anchor, k.billing_period, u.usage_date)), u.quantity
          FROM k JOIN subbilling.usage u ON u.account_id = k.account_id AND u.subscription_id = k.subscription_id
         WHERE NOT k.same AND k.billing_period IS NOT NULL {u}
    ),
    tot AS (
        SELECT t.account_id, t.subscription_id, t.ps, sum(t.q) AS q
          FROM t GROUP BY t.account_id, t.subscription_id, t.ps
        HAVING sum(t.q) <> 0
    ),
    r AS (
        SELECT k.account_id, k.subscription_id,
               CASE WHEN k.billing_period IS NOT NULL THEN k.billing_anchor END AS billing_anchor, k.billing_period,
               coalesce(array_agg(tot.ps ORDER BY tot.ps) FILTER (WHERE tot.ps IS NOT NULL), '{}') AS starts,
               coalesce(array_agg(tot.q ORDER BY tot.ps) FILTER (WHERE tot.ps IS NOT NULL), '{}') AS used
          FROM k LEFT JOIN tot ON tot.account_id = k.account_id AND tot.subscription_id = k.subscription_id
         GROUP BY k.account_id, k.subscription_id, k.billing_anchor, k.billing_period
    ),
    up AS (
        UPDATE subbilling_internal.kpi_usage_periods w
           SET billing_anchor = r.billing_anchor, billing_period = r.billing_period, starts = r.starts, used = r.used
          FROM r
         WHERE w.account_id = r.account_id AND w.subscription_id = r.subscription_id {w}
    )
    SELECT coalesce(sum(d.n), 0) FROM d
    $f$, '\{([a-z])\}', CASE WHEN acct IS NULL THEN '' ELSE 'AND \1.account_id = ' || acct END, 'g') INTO n;
    RETURN n;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_usage_fold_account(bigint) IS 'internal: the usage fold''s one statement: every account''s queued usage (NULL, kpi_usage_fold) or one account''s, every table read on its rows (Citus: on the account''s shard); returns the queue rows folded';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_usage_fold_account(bigint) FROM PUBLIC;

-- The fold: claims the queued changes and adds them to the kept rows of
-- their subscriptions, in one statement, so the queue rows it deletes, the
-- kept rows it reads and the usage it sums are all of one snapshot: a
-- subscription that is unkeyed, or whose key (anchor, base plan's period)
-- changed, is summed again from all its usage under its current key, and
-- exactly the queued changes that usage includes leave the queue.  Folds
-- take turns (a transaction-level advisory lock); recorders never wait for
-- it (they only append to the queue).  Safe to repeat: an empty queue
-- changes nothing.  In READ COMMITTED only (the statement's snapshot must
-- follow the lock).  Returns the queue rows folded.
CREATE FUNCTION subbilling_internal.kpi_usage_fold() RETURNS bigint
LANGUAGE plpgsql SET search_path = subbilling, pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
    acct bigint;
BEGIN
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'kpi_usage_fold runs in a read committed transaction'
            USING ERRCODE = 'active_sql_transaction',
                  DETAIL = 'The fold reads the usage and the queue as committed after it takes its lock.';
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock('subbilling_internal.kpi_usage_queue'::pg_catalog.regclass::oid::bigint);
    IF subbilling_internal.on_citus() THEN
        -- on Citus account by account, each account's fold one statement routed to its shard
        -- (the accounts with queued usage read over every shard, without locks; the lock is
        -- the coordinator's: folds take turns there, as on one server)
        n := 0;
        FOR acct IN SELECT DISTINCT q.account_id FROM subbilling_internal.kpi_usage_queue q ORDER BY 1 LOOP
            n := n + subbilling_internal.kpi_usage_fold_account(acct);
        END LOOP;
        RETURN n;
    END IF;
    -- the fold's one statement over every queued account
    RETURN subbilling_internal.kpi_usage_fold_account(NULL);
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_usage_fold() IS 'internal: folds the queued usage changes into the kept per-period usage of their subscriptions (keying unkeyed and re-keyed subscriptions from all their usage; on Citus account by account, each on its shard); one fold at a time, safe to repeat; returns the queue rows folded';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_usage_fold() FROM PUBLIC;

-- The copies of the subscriptions' status, currency and anchor, and of
-- their items, follow every change of those rows in the same transaction.
CREATE FUNCTION subbilling_internal.kpi_usage_subscription_sync() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = subbilling, pg_catalog, pg_temp AS $$
BEGIN
    UPDATE subbilling_internal.kpi_usage_periods w
       SET sub_status = NEW.status, sub_currency = NEW.currency, sub_anchor = NEW.billing_anchor
     WHERE w.account_id = NEW.account_id AND w.subscription_id = NEW.id;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_usage_subscription_sync() IS 'internal trigger (after a subscription''s status, currency or billing anchor changes): copies them to its kept usage row';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_usage_subscription_sync() FROM PUBLIC;
CREATE TRIGGER subscriptions_kpi_usage AFTER UPDATE ON subbilling.subscriptions
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.currency IS DISTINCT FROM NEW.currency
                       OR OLD.billing_anchor IS DISTINCT FROM NEW.billing_anchor)
    EXECUTE FUNCTION subbilling_internal.kpi_usage_subscription_sync();

CREATE FUNCTION subbilling_internal.kpi_usage_items_sync() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = subbilling, pg_catalog, pg_temp AS $$
DECLARE
    one record;
BEGIN
    IF subbilling_internal.on_citus() THEN
        -- on Citus this runs on a shard: one item at a time, each statement on one account's rows
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            FOR one IN SELECT o.account_id, o.id FROM old_items o LOOP
                DELETE FROM subbilling_internal.kpi_usage_items c WHERE c.account_id = one.account_id AND c.id = one.id;
            END LOOP;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            FOR one IN SELECT n.account_id, n.id, n.subscription_id, n.plan_id, n.kind, n.validity, n.voided_at
                         FROM new_items n LOOP
                IF EXISTS (SELECT FROM subbilling_internal.kpi_usage_periods w
                            WHERE w.account_id = one.account_id AND w.subscription_id = one.subscription_id) THEN
                    INSERT INTO subbilling_internal.kpi_usage_items (account_id, id, subscription_id, plan_id, kind, validity, voided_at)
                    VALUES (one.account_id, one.id, one.subscription_id, one.plan_id, one.kind, one.validity, one.voided_at)
                    ON CONFLICT (account_id, id) DO UPDATE
                       SET subscription_id = excluded.subscription_id, plan_id = excluded.plan_id, kind = excluded.kind,
                           validity = excluded.validity, voided_at = excluded.voided_at;
                END IF;
            END LOOP;
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM subbilling_internal.kpi_usage_items c USING old_items o
         WHERE c.account_id = o.account_id AND c.id = o.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO subbilling_internal.kpi_usage_items (account_id, id, subscription_id, plan_id, kind, validity, voided_at)
        SELECT n.account_id, n.id, n.subscription_id, n.plan_id, n.kind, n.validity, n.voided_at
          FROM new_items n
         WHERE EXISTS (SELECT FROM subbilling_internal.kpi_usage_periods w
                        WHERE w.account_id = n.account_id AND w.subscription_id = n.subscription_id)
        ON CONFLICT (account_id, id) DO UPDATE
           SET subscription_id = excluded.subscription_id, plan_id = excluded.plan_id, kind = excluded.kind,
               validity = excluded.validity, voided_at = excluded.voided_at;
    END IF;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_usage_items_sync() IS 'internal trigger (after each statement inserting, updating or deleting subscription items): keeps the copies of the items of the subscriptions with usage';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_usage_items_sync() FROM PUBLIC;
CREATE TRIGGER subscription_items_kpi_usage AFTER INSERT ON subbilling.subscription_items
    REFERENCING NEW TABLE AS new_items
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_usage_items_sync();
CREATE TRIGGER subscription_items_kpi_usage_update AFTER UPDATE ON subbilling.subscription_items
    REFERENCING NEW TABLE AS new_items OLD TABLE AS old_items
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_usage_items_sync();
CREATE TRIGGER subscription_items_kpi_usage_delete AFTER DELETE ON subbilling.subscription_items
    REFERENCING OLD TABLE AS old_items
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_usage_items_sync();

-- One row per current base item of a subscription with usage, the last
-- three complete periods side by side (1 the latest): no per-period rows to
-- group, the allowances summed over the copied items in one sorted pass (no
-- probe per subscription); nothing read from the subscriptions, their items
-- or the usage (unless a key is stale).
CREATE VIEW subbilling.upsell_candidates WITH (security_barrier) AS
WITH x AS (
    -- every live item of the subscriptions with usage; the current base item (one at most per
    -- subscription: the items' exclusion constraint) gives the periods
    SELECT w.account_id, w.subscription_id, w.sub_currency AS currency, w.sub_anchor AS billing_anchor,
           w.billing_anchor AS key_anchor, w.billing_period AS key_period, w.starts, w.used,
           j.validity, pp.included_units, pp.code AS plan_code, pp.product_id, pp.billing_period,
           j.kind = 'base' AND j.validity @> current_date AS current_base,
           CASE WHEN j.kind = 'base' AND j.validity @> current_date
                THEN subbilling.period_index(w.sub_anchor, pp.billing_period, current_date) END AS cur_idx
      FROM subbilling_internal.kpi_usage_periods w
      JOIN subbilling_internal.kpi_usage_items j
        ON j.account_id = w.account_id AND j.subscription_id = w.subscription_id AND j.voided_at IS NULL
      JOIN subbilling.plans pp ON pp.id = j.plan_id
     WHERE w.sub_status <> 'canceled'
),
xp AS (
    SELECT x.*,
           subbilling.period_start(x.billing_anchor, x.billing_period, x.cur_idx - 3) AS b_ps3,
           subbilling.period_start(x.billing_anchor, x.billing_period, x.cur_idx - 2) AS b_ps2,
           subbilling.period_start(x.billing_anchor, x.billing_period, x.cur_idx - 1) AS b_ps1,
           subbilling.period_start(x.billing_anchor, x.billing_period, x.cur_idx) AS b_pe
      FROM x
),
xs AS (
    -- the base item's period starts on every item of its subscription
    SELECT xp.*,
           max(xp.b_ps3) OVER s AS ps3, max(xp.b_ps2) OVER s AS ps2,
           max(xp.b_ps1) OVER s AS ps1, max(xp.b_pe) OVER s AS pe
      FROM xp
    WINDOW s AS (PARTITION BY xp.account_id, xp.subscription_id)
),
per AS (
    -- the allowance of each period: the included units of the items valid at its start
    SELECT xs.*,
           coalesce(sum(xs.included_units) FILTER (WHERE xs.validity @> xs.ps1) OVER s, 0) AS allowance1,
           coalesce(sum(xs.included_units) FILTER (WHERE xs.validity @> xs.ps2) OVER s, 0) AS allowance2,
           coalesce(sum(xs.included_units) FILTER (WHERE xs.validity @> xs.ps3) OVER s, 0) AS allowance3
      FROM xs
    WINDOW s AS (PARTITION BY xs.account_id, xs.subscription_id)
),
qa AS (
    -- the queued usage changes not yet folded into the kept rows, per subscription
    SELECT q.account_id, q.subscription_id, array_agg(q.usage_date) AS q_days, array_agg(q.quantity) AS q_qty
      FROM subbilling_internal.kpi_usage_queue q
     GROUP BY q.account_id, q.subscription_id
),
u AS MATERIALIZED (
    -- one row per current base item; materialized: each period's usage once (the expressions
    -- below read it twice).  Kept: the kept total plus the queued changes of the period;
    -- unkeyed or keyed otherwise: summed from the usage (which the queue is part of)
    SELECT per.account_id, per.subscription_id, per.currency, per.plan_code, per.product_id, per.billing_period,
           CASE WHEN per.kept THEN coalesce(per.used[pg_catalog.array_position(per.starts, per.ps1)], 0)
                                   + CASE WHEN qa.q_days IS NULL THEN 0
                                          ELSE (SELECT coalesce(sum(y.q), 0) FROM unnest(qa.q_days, qa.q_qty) AS y(d, q)
                                                 WHERE y.d >= per.ps1 AND y.d < per.pe) END
                ELSE (SELECT coalesce(sum(x.quantity), 0) FROM subbilling.usage x
                       WHERE x.account_id = per.account_id AND x.subscription_id = per.subscription_id
                         AND x.usage_date >= per.ps1 AND x.usage_date < per.pe) END AS used1,
           CASE WHEN per.kept THEN coalesce(per.used[pg_catalog.array_position(per.starts, per.ps2)], 0)
                                   + CASE WHEN qa.q_days IS NULL THEN 0
                                          ELSE (SELECT coalesce(sum(y.q), 0) FROM unnest(qa.q_days, qa.q_qty) AS y(d, q)
                                                 WHERE y.d >= per.ps2 AND y.d < per.ps1) END
                ELSE (SELECT coalesce(sum(x.quantity), 0) FROM subbilling.usage x
                       WHERE x.account_id = per.account_id AND x.subscription_id = per.subscription_id
                         AND x.usage_date >= per.ps2 AND x.usage_date < per.ps1) END AS used2,
           CASE WHEN per.kept THEN coalesce(per.used[pg_catalog.array_position(per.starts, per.ps3)], 0)
                                   + CASE WHEN qa.q_days IS NULL THEN 0
                                          ELSE (SELECT coalesce(sum(y.q), 0) FROM unnest(qa.q_days, qa.q_qty) AS y(d, q)
                                                 WHERE y.d >= per.ps3 AND y.d < per.ps2) END
                ELSE (SELECT coalesce(sum(x.quantity), 0) FROM subbilling.usage x
                       WHERE x.account_id = per.account_id AND x.subscription_id = per.subscription_id
                         AND x.usage_date >= per.ps3 AND x.usage_date < per.ps2) END AS used3,
           per.allowance1, per.allowance2, per.allowance3
      FROM (SELECT per.*, coalesce(per.key_anchor = per.billing_anchor AND per.key_period = per.billing_period, false) AS kept
              FROM per WHERE per.current_base) per
      LEFT JOIN qa ON qa.account_id = per.account_id AND qa.subscription_id = per.subscription_id
),
c AS (
    SELECT u.account_id, u.subscription_id, u.currency, u.plan_code, u.product_id, u.billing_period,
           u.allowance1 AS included_units,
           ((u.used1 > u.allowance1)::integer + (u.used2 > u.allowance2)::integer
            + (u.used3 > u.allowance3)::integer)::bigint AS periods_over,
           round((u.used1 + u.used2 + u.used3) / 3, 2) AS average_usage
      FROM u
)
-- the cheapest covering plan of each candidate: a join and one sort, not a look per candidate
-- (a candidate is one subscription: one current base item each)
SELECT DISTINCT ON (c.account_id, c.subscription_id)
       c.account_id, c.subscription_id, c.currency, c.plan_code, c.included_units, c.periods_over, c.average_usage,
       r.code AS suggested_plan_code, r.included_units AS suggested_included_units,
       subbilling.amount(r.price) AS suggested_price
  FROM c
  LEFT JOIN subbilling.plans r
    ON r.active AND r.kind = 'base' AND r.product_id = c.product_id AND r.currency = c.currency
   AND r.billing_period = c.billing_period AND r.included_units >= c.average_usage
   AND r.pricing_model = 'flat' AND r.code <> c.plan_code
 WHERE c.periods_over >= 2
 ORDER BY c.account_id, c.subscription_id, r.price, r.included_units DESC, r.code;
COMMENT ON VIEW subbilling.upsell_candidates IS 'subscriptions with usage above their included units in at least 2 of their last 3 complete billing periods, with the cheapest active flat base plan of the same product, currency and period that covers the average';

-- The open items and the aging rows are kept by triggers in the transaction
-- of each change, the per-period usage by the usage queue and its fold.
-- Data written with triggers off (a bulk load under session_replication_role
-- = replica) bypasses them: this rebuilds them from the journal and the
-- usage (the upgrade that created them runs it) and empties the queue.
-- Inserts into the journal and the usage wait while it runs.  Owner only.
CREATE FUNCTION subbilling_internal.kpi_rebuild_kept() RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = subbilling, pg_catalog, pg_temp AS $$
BEGIN
    LOCK TABLE subbilling.journal_lines, subbilling.usage IN SHARE MODE;
    DELETE FROM subbilling_internal.kpi_open_items;
    DELETE FROM subbilling_internal.kpi_usage_periods;
    DELETE FROM subbilling_internal.kpi_usage_items;
    INSERT INTO subbilling_internal.kpi_open_items (account_id, invoice_id, currency, due_date, open_minor)
    SELECT o.account_id, o.invoice_id, i.currency, i.due_date, o.open_minor
      FROM (SELECT l.account_id, l.invoice_id, sum(subbilling.minor_units(l.amount))::bigint AS open_minor
              FROM subbilling.journal_lines l
             WHERE l.invoice_id IS NOT NULL
             GROUP BY l.account_id, l.invoice_id
            HAVING sum(subbilling.minor_units(l.amount)) <> 0) o
      JOIN subbilling.invoices i ON i.account_id = o.account_id AND i.id = o.invoice_id;
    DELETE FROM subbilling_internal.kpi_aging;
    INSERT INTO subbilling_internal.kpi_aging (account_id, currency, time_zone, due_dates, cum_minor, undated_minor)
    SELECT s.account_id, s.currency, s.time_zone, s.due_dates, s.cum_minor, s.undated_minor
      FROM subbilling_internal.kpi_aging_source s;
    -- every subscription with usage, entered unkeyed, and folded: summed from all its usage
    -- (a zero change per subscription in the emptied queue names them to the fold)
    PERFORM pg_catalog.pg_advisory_xact_lock('subbilling_internal.kpi_usage_queue'::pg_catalog.regclass::oid::bigint);
    DELETE FROM subbilling_internal.kpi_usage_queue;
    PERFORM subbilling_internal.kpi_usage_periods_enter(array_agg(u.account_id), array_agg(u.subscription_id))
       FROM (SELECT DISTINCT x.account_id, x.subscription_id FROM subbilling.usage x) u
     HAVING count(*) > 0;
    INSERT INTO subbilling_internal.kpi_usage_queue (account_id, subscription_id, usage_date, quantity)
    SELECT x.account_id, x.subscription_id, min(x.usage_date), 0 FROM subbilling.usage x
     GROUP BY x.account_id, x.subscription_id;
    PERFORM subbilling_internal.kpi_usage_fold();
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_rebuild_kept() IS 'internal: rebuilds the open items, the aging rows and the per-period usage (emptying the usage queue) from the journal and the usage (after data written with triggers off)';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_rebuild_kept() FROM PUBLIC;

-- ---------------------------------------------------------------- privileges

REVOKE ALL ON subbilling.kpi_mrr, subbilling.kpi_mrr_movements, subbilling.kpi_churn, subbilling.kpi_ltv,
              subbilling.kpi_growth, subbilling.ar_aging, subbilling.revenue_recognition,
              subbilling.upsell_candidates, subbilling.kpi_snapshot_status FROM PUBLIC;
GRANT SELECT ON subbilling.kpi_mrr, subbilling.kpi_mrr_movements, subbilling.kpi_churn, subbilling.kpi_ltv,
                subbilling.kpi_growth, subbilling.ar_aging, subbilling.revenue_recognition,
                subbilling.upsell_candidates, subbilling.kpi_snapshot_status
    TO subbilling_reader, subbilling_operator;

-- The reader reads the KPI views above and no other relation: the views of
-- customer data granted to it with the ledger and the subscriptions (the
-- item history, the customer ledger, open items, balances) are the
-- operator's only.
REVOKE SELECT ON subbilling.subscription_item_history, subbilling.customer_ledger, subbilling.open_items,
                 subbilling.account_balances
    FROM subbilling_reader;

-- Nor does it execute what returns customer rows: a subscription's status,
-- history and items, an account's balance, credit and open amounts, the EU
-- sales list (per customer VAT number).  It keeps vat_report (the VAT
-- return's boxes, summed per box over a period: no customer in them) and
-- ledger_code (the chart of accounts' mapping); docs/privileges.md has the
-- whole list of what it executes.
REVOKE EXECUTE ON FUNCTION subbilling.subscription_status(bigint, date), subbilling.subscription_history(bigint),
                           subbilling.subscription_items_on(bigint, date), subbilling.account_balance(bigint),
                           subbilling.invoice_open_amount(bigint, bigint), subbilling.customer_credit(bigint),
                           subbilling.eu_sales_list(date, date)
    FROM subbilling_reader;
