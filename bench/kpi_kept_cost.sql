-- What keeping the aging rows and the per-period usage costs the writes (bench/kpi_kept_cost.sh):
-- 100 000 usage rows in one statement (copies of existing usage, so mostly backdated),
-- :calls record_usage calls and :calls match_payment calls (a part payment of an open invoice,
-- each of another account, registered unmatched first, untimed), each timed three ways in the
-- same run, every one rolled back:
--   none    no kept table at all (the journal and usage triggers of the KPI tables disabled)
--   before  what 0.3 kept before: the open items, and the subscriptions that have usage
--   after   the open items with the aging rows, and the usage summed per period
-- Best of :runs.  Not a test: nothing passes or fails.  Every run rolls back (only sequences
-- left behind by a bulk load that wrote its own ids are moved past them first).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET search_path = subbilling, public;
SET jit = off;
SET subbilling.notify = off;

-- a bulk load that wrote ids itself leaves the sequences behind (never used: last_value NULL): past the highest ids
SELECT setval(pg_get_serial_sequence('subbilling.' || t, 'id'), x)
  FROM (VALUES ('journal_entries', (SELECT max(id) FROM subbilling.journal_entries)),
               ('journal_lines', (SELECT max(id) FROM subbilling.journal_lines)),
               ('payments', (SELECT max(id) FROM subbilling.payments)),
               ('unmatched_payments', (SELECT max(id) FROM subbilling.unmatched_payments)),
               ('usage', (SELECT max(id) FROM subbilling.usage))) AS v(t, x)
 WHERE x IS NOT NULL AND pg_get_serial_sequence('subbilling.' || t, 'id') IS NOT NULL
   AND x > (SELECT coalesce(last_value, 0) FROM pg_sequences WHERE schemaname || '.' || sequencename = pg_get_serial_sequence('subbilling.' || t, 'id'));
CREATE TEMP TABLE src AS
SELECT u.account_id, u.subscription_id, u.item_id, u.plan_id, u.quantity, u.at, u.usage_date, 'cost-' || u.id AS key
  FROM subbilling.usage u ORDER BY u.account_id, u.id LIMIT 100000;
CREATE TEMP TABLE calls AS
SELECT DISTINCT ON (u.account_id) u.subscription_id, p.code AS plan_code
  FROM subbilling.usage u
  JOIN subbilling.subscriptions s ON s.account_id = u.account_id AND s.id = u.subscription_id
  JOIN subbilling.subscription_items i ON i.account_id = u.account_id AND i.id = u.item_id
  JOIN subbilling.plans p ON p.id = u.plan_id
 WHERE s.status <> 'canceled' AND (s.cancel_at IS NULL OR s.cancel_at > current_date + 1)
   AND i.voided_at IS NULL AND i.validity @> current_date
 ORDER BY u.account_id, u.id LIMIT :calls;
CREATE TEMP TABLE pays AS
SELECT DISTINCT ON (o.account_id) subbilling.price_minor(1, o.currency) AS amount, o.invoice_id
  FROM subbilling_internal.kpi_open_items o
 WHERE o.open_minor > 1
 ORDER BY o.account_id, o.invoice_id LIMIT :calls;
CREATE TEMP TABLE upays (payment_id bigint, invoice_id bigint);
ANALYZE src; ANALYZE calls; ANALYZE pays;

-- the work q after setup and prep, in a subtransaction rolled back afterwards; ms of q alone
CREATE FUNCTION pg_temp.timed(setup text, prep text, q text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    ms numeric;
BEGIN
    BEGIN
        EXECUTE setup;
        EXECUTE prep;
        t0 := clock_timestamp();
        EXECUTE q;
        ms := round((extract(epoch FROM clock_timestamp() - t0) * 1000)::numeric, 1);
        RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'kpi_kept_cost: undo';
    EXCEPTION WHEN raise_exception THEN
        IF SQLERRM <> 'kpi_kept_cost: undo' THEN RAISE; END IF;
    END;
    RETURN ms;
END $$;

CREATE TEMP TABLE variant (name text, setup text);
INSERT INTO variant VALUES
  ('none', $s$
    ALTER TABLE subbilling.journal_lines DISABLE TRIGGER journal_lines_kpi_open_items;
    ALTER TABLE subbilling.usage DISABLE TRIGGER usage_kpi_periods;
    ALTER TABLE subbilling.usage DISABLE TRIGGER usage_kpi_periods_update;
  $s$),
  ('before', $s$
    -- the open items without the aging rows
    CREATE OR REPLACE FUNCTION subbilling_internal.kpi_open_items_add() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = subbilling, pg_catalog, pg_temp AS $f$
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
    END $f$;
    -- the subscriptions with usage instead of the usage per period
    ALTER TABLE subbilling.usage DISABLE TRIGGER usage_kpi_periods;
    ALTER TABLE subbilling.usage DISABLE TRIGGER usage_kpi_periods_update;
    CREATE TABLE subbilling_internal.kpi_usage_subscriptions (
        account_id bigint NOT NULL, subscription_id bigint NOT NULL, PRIMARY KEY (account_id, subscription_id));
    INSERT INTO subbilling_internal.kpi_usage_subscriptions
    SELECT DISTINCT u.account_id, u.subscription_id FROM subbilling.usage u;
    CREATE FUNCTION subbilling_internal.kpi_usage_seen() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = subbilling, pg_catalog, pg_temp AS $f$
    BEGIN
        INSERT INTO subbilling_internal.kpi_usage_subscriptions (account_id, subscription_id)
        SELECT DISTINCT n.account_id, n.subscription_id FROM new_usage n
        ON CONFLICT DO NOTHING;
        RETURN NULL;
    END $f$;
    CREATE TRIGGER usage_kpi_seen AFTER INSERT ON subbilling.usage
        REFERENCING NEW TABLE AS new_usage
        FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.kpi_usage_seen();
  $s$),
  ('after', 'SELECT');

CREATE TEMP TABLE work (name text, prep text, q text);
INSERT INTO work VALUES
  ('100 000 usage rows, one statement', 'SELECT', $q$
    INSERT INTO subbilling.usage (account_id, subscription_id, item_id, plan_id, quantity, at, usage_date, idempotency_key)
    SELECT account_id, subscription_id, item_id, plan_id, quantity, at, usage_date, key FROM src $q$),
  (:'calls' || ' record_usage calls', 'SELECT', $q$
    SELECT count(subbilling.record_usage(c.subscription_id, c.plan_code, 3, pg_catalog.now(), 'cost-call-' || c.subscription_id))
      FROM calls c $q$),
  (:'calls' || ' match_payment calls (booked)', $p$
    INSERT INTO upays SELECT subbilling.register_payment(p.amount, 'unmatched', current_date, 'bankgiro'), p.invoice_id
      FROM pays p $p$, $q$
    SELECT count(subbilling.match_payment(u.payment_id, u.invoice_id)) FROM upays u $q$);

CREATE TEMP TABLE t (work text, variant text, ms numeric);
SELECT set_config('bench.runs', :'runs', false);
DO $$
BEGIN
    FOR r IN 1 .. current_setting('bench.runs')::integer LOOP
        INSERT INTO t SELECT w.name, v.name, pg_temp.timed(v.setup, w.prep, w.q) FROM work w CROSS JOIN variant v;
    END LOOP;
END $$;
\pset footer off
SELECT w.name AS work, min(t.ms) FILTER (WHERE t.variant = 'none') AS "none ms",
       min(t.ms) FILTER (WHERE t.variant = 'before') AS "before ms",
       min(t.ms) FILTER (WHERE t.variant = 'after') AS "after ms",
       round(min(t.ms) FILTER (WHERE t.variant = 'after') / min(t.ms) FILTER (WHERE t.variant = 'before'), 2) AS "after / before",
       round(min(t.ms) FILTER (WHERE t.variant = 'after') / min(t.ms) FILTER (WHERE t.variant = 'none'), 2) AS "after / none"
  FROM work w JOIN t ON t.work = w.name
 GROUP BY w.name ORDER BY w.name;
