-- KPI views fast: monthly snapshots (refresh_kpi_snapshots), the accounts changed since marked
-- by triggers, kpi_movements and revenue_recognition reading them (the definitions kept as kpi_movements_ref,
-- revenue_recognition_ref); a copy of
-- the objects of sql/parts/680_kpis.sql from the reference view to the grants (docs/kpis.md).

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
-- the current month).  Written without a CTE so that a filter on the
-- account reaches the items (marked accounts are computed alone).
CREATE VIEW subbilling_internal.kpi_customer_movements WITH (security_barrier) AS
SELECT c.account_id, c.currency, x.month, sum(x.cur)::bigint AS cur, sum(x.prev)::bigint AS prev,
       sum(x.subscriptions)::bigint AS subscriptions, min(c.first_month) AS first_month
  FROM (SELECT c.account_id, c.currency, c.month, c.mrr, c.subscriptions,
               min(c.month) OVER (PARTITION BY c.account_id, c.currency) AS first_month
          FROM subbilling_internal.kpi_customer_months c) c
 CROSS JOIN LATERAL (VALUES (true, c.month, c.mrr, 0::bigint, c.subscriptions),
                            (false, (c.month + interval '1 month')::date, 0::bigint, c.mrr, 0::bigint))
       AS x(this_month, month, cur, prev, subscriptions)
 WHERE x.this_month OR c.month < date_trunc('month', current_date)
 GROUP BY c.account_id, c.currency, x.month;
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

-- Signed customer movement rows, summed per currency and month: with usable
-- snapshots, the marked accounts computed live (+) and their snapshot rows
-- (-); without, every account live; while refresh_kpi_snapshots() builds
-- (in its own transaction), the new snapshot rows.
CREATE VIEW subbilling_internal.kpi_movement_parts WITH (security_barrier) AS
WITH st AS (
    SELECT EXISTS (SELECT FROM subbilling_internal.kpi_snapshot_state z
                    WHERE z.computed_on = current_date AND z.time_zone = current_setting('TimeZone')
                      AND NOT z.building) AS usable,
           EXISTS (SELECT FROM subbilling_internal.kpi_snapshot_state z WHERE z.building) AS building,
           (SELECT array_agg(DISTINCT d.account_id) FROM subbilling_internal.kpi_dirty_accounts d) AS dirty
),
r AS (
    SELECT 1 AS sign, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
      FROM subbilling_internal.kpi_customer_movements c
     WHERE NOT (SELECT st.usable OR st.building FROM st)
    UNION ALL
    SELECT 1, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
      FROM subbilling_internal.kpi_customer_movements c
     WHERE (SELECT st.usable FROM st) AND c.account_id = ANY ((SELECT st.dirty FROM st)::bigint[])
    UNION ALL
    SELECT -1, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
      FROM subbilling_internal.kpi_snapshot_customers c
     WHERE (SELECT st.usable FROM st) AND c.account_id = ANY ((SELECT st.dirty FROM st)::bigint[])
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
COMMENT ON VIEW subbilling_internal.kpi_movement_parts IS 'internal: customer movements summed per currency and month: marked accounts live less their snapshot rows (usable snapshots), everything live (none), the snapshot rows (while building)';

-- MRR movements and customer counts per month and currency, from the
-- currency's first month to the current one: the snapshot sums corrected by
-- kpi_movement_parts; the same rows as kpi_movements_ref.
CREATE OR REPLACE VIEW subbilling_internal.kpi_movements WITH (security_barrier) AS
WITH agg AS (
    SELECT x.currency, x.month,
           sum(x.start_mrr) AS start_mrr, sum(x.new_mrr) AS new_mrr, sum(x.expansion_mrr) AS expansion_mrr,
           sum(x.reactivation_mrr) AS reactivation_mrr, sum(x.contraction_mrr) AS contraction_mrr,
           sum(x.churned_mrr) AS churned_mrr, sum(x.end_mrr) AS end_mrr,
           sum(x.customers_start) AS customers_start, sum(x.new_customers) AS new_customers,
           sum(x.reactivated_customers) AS reactivated_customers, sum(x.churned_customers) AS churned_customers,
           sum(x.customers_end) AS customers_end, sum(x.subscriptions_end) AS subscriptions_end
      FROM (SELECT s.*
              FROM subbilling_internal.kpi_snapshot_months s
             WHERE EXISTS (SELECT FROM subbilling_internal.kpi_snapshot_state z
                            WHERE z.computed_on = current_date AND z.time_zone = current_setting('TimeZone')
                              AND NOT z.building)
            UNION ALL
            SELECT p.* FROM subbilling_internal.kpi_movement_parts p) x
     GROUP BY x.currency, x.month
    HAVING sum(x.customer_rows) > 0
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
       coalesce(a.customers_start, 0)::bigint AS customers_start,
       coalesce(a.new_customers, 0)::bigint AS new_customers,
       coalesce(a.reactivated_customers, 0)::bigint AS reactivated_customers,
       coalesce(a.churned_customers, 0)::bigint AS churned_customers,
       coalesce(a.customers_end, 0)::bigint AS customers_end,
       coalesce(a.subscriptions_end, 0)::bigint AS subscriptions_end
  FROM months m
  LEFT JOIN agg a ON a.currency = m.currency AND a.month = m.month;
COMMENT ON VIEW subbilling_internal.kpi_movements IS 'internal: MRR movements and customer counts (minor units) per month and currency, from the snapshots where usable (the same rows as kpi_movements_ref)';

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
-- today, only the marked accounts are recomputed: their snapshot rows
-- replaced and the month sums corrected, with the marks locked so that no
-- change commits meanwhile (lifecycle changes wait the few milliseconds).
-- Returns the customer rows written.
CREATE FUNCTION subbilling.refresh_kpi_snapshots(only_marked boolean DEFAULT false) RETURNS bigint
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
        LOCK TABLE subbilling_internal.kpi_dirty_accounts, subbilling_internal.kpi_recognition_dirty IN EXCLUSIVE MODE;
        -- recognition: the same for the accounts whose invoices changed
        SELECT array_agg(DISTINCT d.account_id) INTO dirty FROM subbilling_internal.kpi_recognition_dirty d;
        IF dirty IS NOT NULL THEN
            INSERT INTO subbilling_internal.kpi_recognition_months AS m
            SELECT p.currency, p.month, p.line_months, p.billed, p.recognised
              FROM subbilling_internal.kpi_recognition_parts p
            ON CONFLICT (currency, month) DO UPDATE
               SET line_months = m.line_months + excluded.line_months, billed = m.billed + excluded.billed,
                   recognised = m.recognised + excluded.recognised;
            DELETE FROM subbilling_internal.kpi_recognition_snapshot c WHERE c.account_id = ANY (dirty);
            INSERT INTO subbilling_internal.kpi_recognition_snapshot (account_id, currency, month, line_months, billed, recognised)
            SELECT c.account_id, c.currency, c.month, c.line_months, c.billed, c.recognised
              FROM subbilling_internal.kpi_recognition_accounts c
             WHERE c.account_id = ANY (dirty);
            DELETE FROM subbilling_internal.kpi_recognition_dirty;
        END IF;
        SELECT array_agg(DISTINCT d.account_id) INTO dirty FROM subbilling_internal.kpi_dirty_accounts d;
        IF dirty IS NULL THEN
            RETURN 0;
        END IF;
        -- the sums: + live - snapshot of the marked accounts (kpi_movement_parts)
        INSERT INTO subbilling_internal.kpi_snapshot_months AS m
        SELECT p.currency, p.month, p.customer_rows, p.start_mrr, p.new_mrr, p.expansion_mrr, p.reactivation_mrr,
               p.contraction_mrr, p.churned_mrr, p.end_mrr, p.customers_start, p.new_customers, p.reactivated_customers,
               p.churned_customers, p.customers_end, p.subscriptions_end
          FROM subbilling_internal.kpi_movement_parts p
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
        DELETE FROM subbilling_internal.kpi_snapshot_customers c WHERE c.account_id = ANY (dirty);
        INSERT INTO subbilling_internal.kpi_snapshot_customers (account_id, currency, month, cur, prev, subscriptions, first_month)
        SELECT c.account_id, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
          FROM subbilling_internal.kpi_customer_movements c
         WHERE c.account_id = ANY (dirty);
        GET DIAGNOSTICS n = ROW_COUNT;
        DELETE FROM subbilling_internal.kpi_dirty_accounts;
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
COMMENT ON FUNCTION subbilling.refresh_kpi_snapshots(boolean) IS 'rebuilds the KPI views'' monthly snapshots as of today (daily after midnight; until then the views compute live), or with only_marked the marked accounts only (every few minutes); returns the customer rows written';

REVOKE ALL ON FUNCTION subbilling_internal.kpi_mark_account(), subbilling_internal.kpi_invalidate() FROM PUBLIC;
REVOKE ALL ON FUNCTION subbilling.refresh_kpi_snapshots(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.refresh_kpi_snapshots(boolean) TO subbilling_operator;


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
    SELECT 1, c.currency, c.month, c.line_months, c.billed, c.recognised
      FROM subbilling_internal.kpi_recognition_accounts c
     WHERE (SELECT st.usable AND st.dirty IS NOT NULL FROM st) AND c.account_id = ANY ((SELECT st.dirty FROM st)::bigint[])
    UNION ALL
    SELECT -1, c.currency, c.month, c.line_months, c.billed, c.recognised
      FROM subbilling_internal.kpi_recognition_snapshot c
     WHERE (SELECT st.usable FROM st) AND c.account_id = ANY ((SELECT st.dirty FROM st)::bigint[])
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

