
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

-- Movements per customer: the month's MRR (cur) against the previous
-- month's (prev); new when the customer never had MRR in the currency
-- before, reactivation when it had, churn when cur reaches 0, expansion or
-- contraction on the difference otherwise.  Summed per month and currency,
-- over every month from the currency's first to the current one.
CREATE VIEW subbilling_internal.kpi_movements WITH (security_barrier) AS
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
COMMENT ON VIEW subbilling_internal.kpi_movements IS 'internal: MRR movements and customer counts (minor units) per month and currency';

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

-- ---------------------------------------------------------------- receivables aging

CREATE VIEW subbilling.ar_aging WITH (security_barrier) AS
SELECT o.account_id, o.currency,
       subbilling.amount(coalesce(sum(o.open_amount) FILTER (WHERE o.days_overdue = 0), subbilling.price_minor(0, o.currency))) AS current,
       subbilling.amount(coalesce(sum(o.open_amount) FILTER (WHERE o.days_overdue BETWEEN 1 AND 30), subbilling.price_minor(0, o.currency))) AS overdue_1_30,
       subbilling.amount(coalesce(sum(o.open_amount) FILTER (WHERE o.days_overdue BETWEEN 31 AND 60), subbilling.price_minor(0, o.currency))) AS overdue_31_60,
       subbilling.amount(coalesce(sum(o.open_amount) FILTER (WHERE o.days_overdue BETWEEN 61 AND 90), subbilling.price_minor(0, o.currency))) AS overdue_61_90,
       subbilling.amount(coalesce(sum(o.open_amount) FILTER (WHERE o.days_overdue > 90), subbilling.price_minor(0, o.currency))) AS overdue_90_plus,
       subbilling.amount(sum(o.open_amount)) AS total
  FROM subbilling.open_items o
 GROUP BY o.account_id, o.currency;
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

CREATE VIEW subbilling.revenue_recognition WITH (security_barrier) AS
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
COMMENT ON VIEW subbilling.revenue_recognition IS 'per month and currency (net of VAT): deferred revenue at the start, billed (issue month), recognised (day by day over service periods), deferred at the end; opening + billed - recognised = closing, exactly';

-- ---------------------------------------------------------------- upsell candidates

-- Subscriptions whose usage was above their allowance (the included units
-- of their items) in at least 2 of their last 3 complete billing periods
-- (the base plan's periods), with the cheapest active base plan of the same
-- product, currency and billing period whose included units cover the
-- average usage of those periods.
CREATE VIEW subbilling.upsell_candidates WITH (security_barrier) AS
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
COMMENT ON VIEW subbilling.upsell_candidates IS 'subscriptions with usage above their included units in at least 2 of their last 3 complete billing periods, with the cheapest active flat base plan of the same product, currency and period that covers the average';

-- ---------------------------------------------------------------- privileges

REVOKE ALL ON subbilling.kpi_mrr, subbilling.kpi_mrr_movements, subbilling.kpi_churn, subbilling.kpi_ltv,
              subbilling.kpi_growth, subbilling.ar_aging, subbilling.revenue_recognition,
              subbilling.upsell_candidates FROM PUBLIC;
GRANT SELECT ON subbilling.kpi_mrr, subbilling.kpi_mrr_movements, subbilling.kpi_churn, subbilling.kpi_ltv,
                subbilling.kpi_growth, subbilling.ar_aging, subbilling.revenue_recognition,
                subbilling.upsell_candidates
    TO subbilling_reader, subbilling_operator;

-- The reader reads the KPI views above and no other relation: the views of
-- customer data granted to it with the ledger and the subscriptions (the
-- item history, the customer ledger, open items, balances) are the
-- operator's only.
REVOKE SELECT ON subbilling.subscription_item_history, subbilling.customer_ledger, subbilling.open_items,
                 subbilling.account_balances
    FROM subbilling_reader;
