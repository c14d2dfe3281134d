-- Receivables aging and upsell candidates at a million accounts: one kept row per account and
-- currency with the running open amounts by due date (kpi_aging, refreshed with the open items,
-- its time zone with the account's), the buckets found by binary search at read; the usage of
-- each subscription kept summed per billing period with copies of the subscription's status,
-- currency and anchor (kpi_usage_periods, kept by triggers on usage and subscriptions; it
-- replaces kpi_usage_subscriptions) and of its items (kpi_usage_items, kept by triggers on
-- subscription_items); all filled from the existing data (kpi_rebuild_kept).  Copies of the
-- objects of sql/parts/900_kpis.sql (docs/kpis.md).

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

CREATE OR REPLACE FUNCTION subbilling_internal.kpi_open_items_add() RETURNS trigger
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
    PERFORM subbilling_internal.kpi_aging_refresh(
        ARRAY(SELECT DISTINCT n.account_id FROM new_lines n WHERE n.invoice_id IS NOT NULL ORDER BY 1));
    RETURN NULL;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_open_items_add() IS 'internal trigger (after each statement inserting journal lines): adds the receivables lines to their open items, drops the items that reach zero, and refreshes the aging rows of their accounts';

CREATE OR REPLACE VIEW subbilling.ar_aging WITH (security_barrier) AS
SELECT k.account_id, k.currency,
       subbilling.amount(subbilling.price_minor(k.cum_minor[pg_catalog.cardinality(k.cum_minor)]
                                                - k.cum_minor[pg_catalog.width_bucket(k.today - 1, k.due_dates) + 1], k.currency)) AS current,
       subbilling.amount(subbilling.price_minor(k.cum_minor[pg_catalog.width_bucket(k.today - 1, k.due_dates) + 1]
                                                - k.cum_minor[pg_catalog.width_bucket(k.today - 31, k.due_dates) + 1], k.currency)) AS overdue_1_30,
       subbilling.amount(subbilling.price_minor(k.cum_minor[pg_catalog.width_bucket(k.today - 31, k.due_dates) + 1]
                                                - k.cum_minor[pg_catalog.width_bucket(k.today - 61, k.due_dates) + 1], k.currency)) AS overdue_31_60,
       subbilling.amount(subbilling.price_minor(k.cum_minor[pg_catalog.width_bucket(k.today - 61, k.due_dates) + 1]
                                                - k.cum_minor[pg_catalog.width_bucket(k.today - 91, k.due_dates) + 1], k.currency)) AS overdue_61_90,
       subbilling.amount(subbilling.price_minor(k.cum_minor[pg_catalog.width_bucket(k.today - 91, k.due_dates) + 1], k.currency)) AS overdue_90_plus,
       subbilling.amount(subbilling.price_minor(k.cum_minor[pg_catalog.cardinality(k.cum_minor)] + k.undated_minor, k.currency)) AS total
  FROM (SELECT g.account_id, g.currency, g.due_dates, g.cum_minor, g.undated_minor,
               (pg_catalog.now() AT TIME ZONE g.time_zone)::date AS today
          FROM subbilling_internal.kpi_aging g
        OFFSET 0) k;  -- OFFSET 0: the local today once per row
COMMENT ON VIEW subbilling.ar_aging IS 'per account and currency: open receivables (from the journal) by days past due on the account''s local today: current, 1-30, 31-60, 61-90, over 90';

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

-- Adds the usage changes (quantity negative for removed usage) to their
-- subscriptions' rows; a subscription that is new, or whose key changed, is
-- summed again from all its usage under its current key.  One transaction
-- at a time per subscription: the rows are locked (created first), and the
-- statement after the lock reads them as then committed.
CREATE FUNCTION subbilling_internal.kpi_usage_periods_apply(acc bigint[], sub bigint[], days date[], qty numeric[])
RETURNS void
LANGUAGE plpgsql SET search_path = subbilling, pg_catalog, pg_temp AS $$
DECLARE
    new_acc bigint[];
    new_sub bigint[];
BEGIN
    WITH ins AS (
        INSERT INTO subbilling_internal.kpi_usage_periods (account_id, subscription_id, billing_anchor, billing_period, starts, used)
        SELECT DISTINCT d.a, d.s, NULL::date, NULL::subbilling.billing_period, '{}'::date[], '{}'::numeric[]
          FROM unnest(acc, sub) AS d(a, s)
        ON CONFLICT DO NOTHING
        RETURNING account_id, subscription_id)
    SELECT array_agg(ins.account_id), array_agg(ins.subscription_id) INTO new_acc, new_sub FROM ins;
    IF new_acc IS NOT NULL THEN
        -- a subscription's first usage: its status, currency, anchor and items, read under a
        -- share lock (a change of them, which locks the subscription, commits before or waits,
        -- and then sees the new row and keeps it)
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
    END IF;
    PERFORM FROM subbilling_internal.kpi_usage_periods w
      JOIN (SELECT DISTINCT d.a, d.s FROM unnest(acc, sub) AS d(a, s)) d ON w.account_id = d.a AND w.subscription_id = d.s
     ORDER BY w.account_id, w.subscription_id FOR UPDATE OF w;
    WITH d AS (
        SELECT d.a AS account_id, d.s AS subscription_id, d.day, d.q FROM unnest(acc, sub, days, qty) AS d(a, s, day, q)
    ),
    k0 AS (
        SELECT w.account_id, w.subscription_id, w.starts, w.used, w.billing_anchor AS kept_anchor,
               w.billing_period AS kept_period, s.billing_anchor,
               (SELECT p.billing_period FROM subbilling.subscription_items i JOIN subbilling.plans p ON p.id = i.plan_id
                 WHERE i.account_id = w.account_id AND i.subscription_id = w.subscription_id AND i.kind = 'base'
                   AND i.voided_at IS NULL AND i.validity @> current_date
                 ORDER BY i.id LIMIT 1) AS billing_period
          FROM subbilling_internal.kpi_usage_periods w
          JOIN subbilling.subscriptions s ON s.account_id = w.account_id AND s.id = w.subscription_id
         WHERE (w.account_id, w.subscription_id) IN (SELECT d.account_id, d.subscription_id FROM d)
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
         WHERE k.same AND d.day IS NOT NULL
        UNION ALL
        -- a new key: all the usage
        SELECT k.account_id, k.subscription_id,
               subbilling.period_start(k.billing_anchor, k.billing_period,
                                       subbilling.period_index(k.billing_anchor, k.billing_period, u.usage_date)), u.quantity
          FROM k JOIN subbilling.usage u ON u.account_id = k.account_id AND u.subscription_id = k.subscription_id
         WHERE NOT k.same AND k.billing_period IS NOT NULL
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
    )
    UPDATE subbilling_internal.kpi_usage_periods w
       SET billing_anchor = r.billing_anchor, billing_period = r.billing_period, starts = r.starts, used = r.used
      FROM r
     WHERE w.account_id = r.account_id AND w.subscription_id = r.subscription_id;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_usage_periods_apply(bigint[], bigint[], date[], numeric[]) IS 'internal: adds usage changes (account, subscription, day, quantity; negative for removed usage) to the kept per-period usage of their subscriptions, summing a new or re-keyed subscription from all its usage';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_usage_periods_apply(bigint[], bigint[], date[], numeric[]) FROM PUBLIC;

CREATE FUNCTION subbilling_internal.kpi_usage_periods_add() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = subbilling, pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM subbilling_internal.kpi_usage_periods_apply(array_agg(n.account_id), array_agg(n.subscription_id),
                                                            array_agg(n.usage_date), array_agg(n.q))
           FROM (SELECT x.account_id, x.subscription_id, x.usage_date, sum(x.quantity) AS q FROM new_usage x
                  GROUP BY x.account_id, x.subscription_id, x.usage_date) n
         HAVING count(*) > 0;
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM subbilling_internal.kpi_usage_periods_apply(array_agg(n.account_id), array_agg(n.subscription_id),
                                                            array_agg(n.usage_date), array_agg(n.q))
           FROM (SELECT x.account_id, x.subscription_id, x.usage_date, sum(x.q) AS q
                   FROM (SELECT y.account_id, y.subscription_id, y.usage_date, y.quantity AS q FROM new_usage y
                         UNION ALL
                         SELECT y.account_id, y.subscription_id, y.usage_date, -y.quantity FROM old_usage y) x
                  GROUP BY x.account_id, x.subscription_id, x.usage_date) n
         HAVING count(*) > 0;
    ELSE
        PERFORM subbilling_internal.kpi_usage_periods_apply(array_agg(n.account_id), array_agg(n.subscription_id),
                                                            array_agg(n.usage_date), array_agg(n.q))
           FROM (SELECT x.account_id, x.subscription_id, x.usage_date, -sum(x.quantity) AS q FROM old_usage x
                  GROUP BY x.account_id, x.subscription_id, x.usage_date) n
         HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_usage_periods_add() IS 'internal trigger (after each statement inserting, updating or deleting usage): adds the change to the kept per-period usage of its subscriptions';
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
BEGIN
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

CREATE OR REPLACE VIEW subbilling.upsell_candidates WITH (security_barrier) AS
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
u AS MATERIALIZED (
    -- one row per current base item; materialized: each period's usage once (the expressions
    -- below read it twice)
    SELECT per.account_id, per.subscription_id, per.currency, per.plan_code, per.product_id, per.billing_period,
           CASE WHEN per.kept THEN coalesce(per.used[pg_catalog.array_position(per.starts, per.ps1)], 0)
                ELSE (SELECT coalesce(sum(x.quantity), 0) FROM subbilling.usage x
                       WHERE x.account_id = per.account_id AND x.subscription_id = per.subscription_id
                         AND x.usage_date >= per.ps1 AND x.usage_date < per.pe) END AS used1,
           CASE WHEN per.kept THEN coalesce(per.used[pg_catalog.array_position(per.starts, per.ps2)], 0)
                ELSE (SELECT coalesce(sum(x.quantity), 0) FROM subbilling.usage x
                       WHERE x.account_id = per.account_id AND x.subscription_id = per.subscription_id
                         AND x.usage_date >= per.ps2 AND x.usage_date < per.ps1) END AS used2,
           CASE WHEN per.kept THEN coalesce(per.used[pg_catalog.array_position(per.starts, per.ps3)], 0)
                ELSE (SELECT coalesce(sum(x.quantity), 0) FROM subbilling.usage x
                       WHERE x.account_id = per.account_id AND x.subscription_id = per.subscription_id
                         AND x.usage_date >= per.ps3 AND x.usage_date < per.ps2) END AS used3,
           per.allowance1, per.allowance2, per.allowance3
      FROM (SELECT per.*, coalesce(per.key_anchor = per.billing_anchor AND per.key_period = per.billing_period, false) AS kept
              FROM per WHERE per.current_base) per
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

DROP TRIGGER usage_kpi_seen ON subbilling.usage;
DROP TRIGGER usage_kpi_seen_update ON subbilling.usage;
DROP FUNCTION subbilling_internal.kpi_usage_seen();
-- out of the extension first: that also takes it off the tables pg_dump dumps (a plain DROP
-- TABLE would leave its mark behind)
ALTER EXTENSION subbilling DROP TABLE subbilling_internal.kpi_usage_subscriptions;
DROP TABLE subbilling_internal.kpi_usage_subscriptions;

CREATE OR REPLACE FUNCTION subbilling_internal.kpi_rebuild_kept() RETURNS void
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
    -- every subscription with usage, summed from all its usage (no row has a key)
    PERFORM subbilling_internal.kpi_usage_periods_apply(array_agg(u.account_id), array_agg(u.subscription_id), '{}', '{}')
       FROM (SELECT DISTINCT x.account_id, x.subscription_id FROM subbilling.usage x) u
     HAVING count(*) > 0;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_rebuild_kept() IS 'internal: rebuilds the open items, the aging rows and the per-period usage that triggers keep (after data written with triggers off)';
SELECT subbilling_internal.kpi_rebuild_kept();
