-- KPI speed and the reader's functions: receivables aging from open items kept by a trigger on
-- the journal (kpi_open_items), upsell candidates over the subscriptions with usage
-- (kpi_usage_subscriptions, an index on usage by subscription and day), the marked-only refresh
-- claiming marks without locking (kpi_movement_delta, kpi_recognition_delta), both kept tables
-- filled from the existing journal and usage (kpi_rebuild_kept); the reader no longer executes
-- the functions that return customer data.  Copies of the objects of sql/parts/900_kpis.sql
-- (docs/kpis.md, docs/privileges.md).

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
BEGIN
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
    RETURN NULL;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_open_items_add() IS 'internal trigger (after each statement inserting journal lines): adds the receivables lines to their open items, drops the items that reach zero';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_open_items_add() FROM PUBLIC;
CREATE TRIGGER journal_lines_kpi_open_items AFTER INSERT ON subbilling.journal_lines
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_open_items_add();

CREATE OR REPLACE VIEW subbilling.ar_aging WITH (security_barrier) AS
SELECT o.account_id, o.currency,
       subbilling.amount(subbilling.price_minor(coalesce(sum(o.open_minor) FILTER (WHERE o.days_overdue = 0), 0)::bigint, o.currency)) AS current,
       subbilling.amount(subbilling.price_minor(coalesce(sum(o.open_minor) FILTER (WHERE o.days_overdue BETWEEN 1 AND 30), 0)::bigint, o.currency)) AS overdue_1_30,
       subbilling.amount(subbilling.price_minor(coalesce(sum(o.open_minor) FILTER (WHERE o.days_overdue BETWEEN 31 AND 60), 0)::bigint, o.currency)) AS overdue_31_60,
       subbilling.amount(subbilling.price_minor(coalesce(sum(o.open_minor) FILTER (WHERE o.days_overdue BETWEEN 61 AND 90), 0)::bigint, o.currency)) AS overdue_61_90,
       subbilling.amount(subbilling.price_minor(coalesce(sum(o.open_minor) FILTER (WHERE o.days_overdue > 90), 0)::bigint, o.currency)) AS overdue_90_plus,
       subbilling.amount(subbilling.price_minor(sum(o.open_minor)::bigint, o.currency)) AS total
  FROM (SELECT k.account_id, k.currency, k.open_minor,
               greatest((pg_catalog.now() AT TIME ZONE a.time_zone)::date - k.due_date, 0) AS days_overdue
          FROM subbilling_internal.kpi_open_items k
          JOIN subbilling.accounts a ON a.id = k.account_id) o
 GROUP BY o.account_id, o.currency;
COMMENT ON VIEW subbilling.ar_aging IS 'per account and currency: open receivables (from the journal) by days past due on the account''s local today: current, 1-30, 31-60, 61-90, over 90';

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

CREATE TABLE subbilling_internal.kpi_usage_subscriptions (
    account_id      bigint NOT NULL,
    subscription_id bigint NOT NULL,
    PRIMARY KEY (account_id, subscription_id)
);
COMMENT ON TABLE subbilling_internal.kpi_usage_subscriptions IS 'internal: the subscriptions that recorded usage (kept by a trigger on usage), the ones upsell_candidates looks at';
SELECT pg_catalog.pg_extension_config_dump('subbilling_internal.kpi_usage_subscriptions', 'WHERE false');
CREATE INDEX usage_subscription_date_idx ON subbilling.usage (account_id, subscription_id, usage_date) INCLUDE (quantity);

CREATE FUNCTION subbilling_internal.kpi_usage_seen() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = subbilling, pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO subbilling_internal.kpi_usage_subscriptions (account_id, subscription_id)
    SELECT DISTINCT n.account_id, n.subscription_id FROM new_usage n
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_usage_seen() IS 'internal trigger (after each statement inserting or updating usage): records the subscriptions that have usage';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_usage_seen() FROM PUBLIC;
CREATE TRIGGER usage_kpi_seen AFTER INSERT ON subbilling.usage
    REFERENCING NEW TABLE AS new_usage
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_usage_seen();
CREATE TRIGGER usage_kpi_seen_update AFTER UPDATE ON subbilling.usage
    REFERENCING NEW TABLE AS new_usage
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_usage_seen();

CREATE OR REPLACE VIEW subbilling.upsell_candidates WITH (security_barrier) AS
WITH b AS (
    SELECT i.account_id, i.subscription_id, s.currency, s.billing_anchor, p.id AS plan_id, p.code AS plan_code,
           p.product_id, p.billing_period, p.price,
           subbilling.period_index(s.billing_anchor, p.billing_period, current_date) AS cur_idx
      FROM subbilling.subscription_items i
      JOIN subbilling.subscriptions s ON s.account_id = i.account_id AND s.id = i.subscription_id
      JOIN subbilling.plans p ON p.id = i.plan_id
      JOIN subbilling_internal.kpi_usage_subscriptions w
        ON w.account_id = i.account_id AND w.subscription_id = i.subscription_id
     WHERE i.kind = 'base' AND i.voided_at IS NULL AND i.validity @> current_date AND s.status <> 'canceled'
),
per AS (
    SELECT b.*, k.n,
           subbilling.period_start(b.billing_anchor, b.billing_period, b.cur_idx - k.n) AS ps,
           subbilling.period_start(b.billing_anchor, b.billing_period, b.cur_idx - k.n + 1) AS pe
      FROM b CROSS JOIN generate_series(1, 3) AS k(n)
),
u AS MATERIALIZED (
    -- materialized: each sum once per period (the aggregates below read used and allowance
    -- several times, and an inlined subquery would run for each)
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

CREATE FUNCTION subbilling_internal.kpi_movement_delta(accounts bigint[])
RETURNS SETOF subbilling_internal.kpi_snapshot_months
LANGUAGE sql STABLE SET search_path = subbilling, pg_catalog, pg_temp AS $$
SELECT r.currency, r.month,
       sum(r.sign)::bigint,
       sum(r.sign * r.prev)::bigint,
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
  FROM (SELECT 1 AS sign, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
          FROM subbilling_internal.kpi_customer_movements c
         WHERE c.account_id = ANY (accounts)
        UNION ALL
        SELECT -1, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
          FROM subbilling_internal.kpi_snapshot_customers c
         WHERE c.account_id = ANY (accounts)) r
 GROUP BY r.currency, r.month
$$;
COMMENT ON FUNCTION subbilling_internal.kpi_movement_delta(bigint[]) IS 'internal: per currency and month, the movement sums of the given accounts computed live less their snapshot rows';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_movement_delta(bigint[]) FROM PUBLIC;

CREATE FUNCTION subbilling_internal.kpi_recognition_delta(accounts bigint[])
RETURNS SETOF subbilling_internal.kpi_recognition_months
LANGUAGE sql STABLE SET search_path = subbilling, pg_catalog, pg_temp AS $$
SELECT r.currency, r.month, sum(r.sign * r.line_months)::bigint, sum(r.sign * r.billed)::bigint,
       sum(r.sign * r.recognised)::bigint
  FROM (SELECT 1 AS sign, c.currency, c.month, c.line_months, c.billed, c.recognised
          FROM subbilling_internal.kpi_recognition_accounts c
         WHERE c.account_id = ANY (accounts)
        UNION ALL
        SELECT -1, c.currency, c.month, c.line_months, c.billed, c.recognised
          FROM subbilling_internal.kpi_recognition_snapshot c
         WHERE c.account_id = ANY (accounts)) r
 GROUP BY r.currency, r.month
$$;
COMMENT ON FUNCTION subbilling_internal.kpi_recognition_delta(bigint[]) IS 'internal: per currency and month, the recognition sums of the given accounts computed live less their snapshot rows';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_recognition_delta(bigint[]) FROM PUBLIC;

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
        WITH gone AS (DELETE FROM subbilling_internal.kpi_dirty_accounts d RETURNING d.account_id)
        SELECT array_agg(DISTINCT gone.account_id) INTO dirty FROM gone;
        IF dirty IS NULL THEN
            RETURN 0;
        END IF;
        INSERT INTO subbilling_internal.kpi_snapshot_months AS m
        SELECT p.* FROM subbilling_internal.kpi_movement_delta(dirty) p
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

CREATE FUNCTION subbilling_internal.kpi_rebuild_kept() RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = subbilling, pg_catalog, pg_temp AS $$
BEGIN
    LOCK TABLE subbilling.journal_lines, subbilling.usage IN SHARE MODE;
    DELETE FROM subbilling_internal.kpi_open_items;
    DELETE FROM subbilling_internal.kpi_usage_subscriptions;
    INSERT INTO subbilling_internal.kpi_open_items (account_id, invoice_id, currency, due_date, open_minor)
    SELECT o.account_id, o.invoice_id, i.currency, i.due_date, o.open_minor
      FROM (SELECT l.account_id, l.invoice_id, sum(subbilling.minor_units(l.amount))::bigint AS open_minor
              FROM subbilling.journal_lines l
             WHERE l.invoice_id IS NOT NULL
             GROUP BY l.account_id, l.invoice_id
            HAVING sum(subbilling.minor_units(l.amount)) <> 0) o
      JOIN subbilling.invoices i ON i.account_id = o.account_id AND i.id = o.invoice_id;
    INSERT INTO subbilling_internal.kpi_usage_subscriptions (account_id, subscription_id)
    SELECT DISTINCT u.account_id, u.subscription_id FROM subbilling.usage u;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_rebuild_kept() IS 'internal: rebuilds the open items and the usage subscriptions that triggers keep (after data written with triggers off)';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_rebuild_kept() FROM PUBLIC;
SELECT subbilling_internal.kpi_rebuild_kept();

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
