-- The write cost of the kept KPI data: recording usage only appends to an insert-only queue
-- (kpi_usage_queue), which the worker folds into kpi_usage_periods at each KPI refresh
-- (kpi_usage_fold) and upsell_candidates adds on reading; kpi_usage_periods_apply is gone
-- (kpi_usage_periods_enter creates a subscription's row at its first usage).  A payment on a
-- kept open item updates its aging row by the change (kpi_open_items_add).  kpi_recognition_parts
-- and kpi_recognition_delta sum one definition (kpi_recognition_changes).  Copies of the objects
-- of sql/parts/900_kpis.sql (docs/kpis.md); 999_refresh re-creates the changed ones.

DROP FUNCTION subbilling_internal.kpi_usage_periods_apply(bigint[], bigint[], date[], numeric[]);

CREATE TABLE subbilling_internal.kpi_usage_queue (
    account_id      bigint NOT NULL,
    subscription_id bigint NOT NULL,
    usage_date      date NOT NULL,
    quantity        numeric NOT NULL
);
COMMENT ON TABLE subbilling_internal.kpi_usage_queue IS 'internal: usage changes (quantity negative for removed usage) not yet folded into kpi_usage_periods; appended by triggers on usage, emptied by kpi_usage_fold';
SELECT pg_catalog.pg_extension_config_dump('subbilling_internal.kpi_usage_queue', 'WHERE false');

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

CREATE FUNCTION subbilling_internal.kpi_usage_fold() RETURNS bigint
LANGUAGE plpgsql SET search_path = subbilling, pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'kpi_usage_fold runs in a read committed transaction'
            USING ERRCODE = 'active_sql_transaction',
                  DETAIL = 'The fold reads the usage and the queue as committed after it takes its lock.';
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock('subbilling_internal.kpi_usage_queue'::pg_catalog.regclass::oid::bigint);
    WITH q AS (
        DELETE FROM subbilling_internal.kpi_usage_queue q
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
         WHERE k.same
        UNION ALL
        -- unkeyed or a new key: all the usage (which includes the changes claimed)
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
    ),
    up AS (
        UPDATE subbilling_internal.kpi_usage_periods w
           SET billing_anchor = r.billing_anchor, billing_period = r.billing_period, starts = r.starts, used = r.used
          FROM r
         WHERE w.account_id = r.account_id AND w.subscription_id = r.subscription_id
    )
    SELECT coalesce(sum(d.n), 0) INTO n FROM d;
    RETURN n;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_usage_fold() IS 'internal: folds the queued usage changes into the kept per-period usage of their subscriptions (keying unkeyed and re-keyed subscriptions from all their usage); one fold at a time, safe to repeat; returns the queue rows folded';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_usage_fold() FROM PUBLIC;

CREATE VIEW subbilling_internal.kpi_recognition_changes WITH (security_barrier) AS
SELECT 1 AS sign, c.account_id, c.currency, c.month, c.line_months, c.billed, c.recognised
  FROM subbilling_internal.kpi_recognition_accounts c
UNION ALL
SELECT -1, c.account_id, c.currency, c.month, c.line_months, c.billed, c.recognised
  FROM subbilling_internal.kpi_recognition_snapshot c;
COMMENT ON VIEW subbilling_internal.kpi_recognition_changes IS 'internal: per account, currency and month, the recognition rows computed live (sign 1) and as in the snapshot (sign -1)';
REVOKE ALL ON subbilling_internal.kpi_recognition_changes FROM PUBLIC;
