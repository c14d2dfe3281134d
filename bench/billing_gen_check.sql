-- bench/billing_gen_check.sql: the bulk way of bench/billing_gen.sql writes exactly the rows
-- that subscribe(), add_addon() and record_usage() write.  Makes the same N subscriptions
-- both ways in one database, one after the other, and compares every customer row (ids,
-- created_at/updated_at/recorded_at aside; the ids inside event payloads too) and the
-- campaigns' redemption counts.  Registers no timed case.  For a throwaway cluster only
-- (bench/run.sh makes one): it empties the customer tables first.
--
--   bash bench/run.sh --only billing_gen_check --rows 2000
\set ON_ERROR_STOP 1
SET search_path = subbilling, public;
\set n :rows

CREATE OR REPLACE FUNCTION bench.gen_snapshot() RETURNS TABLE (tbl text, external_id text, data jsonb)
LANGUAGE sql STABLE AS $$
    SELECT 'accounts', a.external_id, to_jsonb(a) - '{id,created_at,updated_at}'::text[]
      FROM subbilling.accounts a
    UNION ALL
    SELECT 'subscriptions', a.external_id, to_jsonb(s) - '{id,account_id,created_at,updated_at}'::text[]
      FROM subbilling.subscriptions s JOIN subbilling.accounts a ON a.id = s.account_id
    UNION ALL
    SELECT 'subscription_items', a.external_id,
           to_jsonb(i) - '{id,account_id,subscription_id,plan_id,created_at}'::text[]
                       || jsonb_build_object('plan', p.code)
      FROM subbilling.subscription_items i JOIN subbilling.accounts a ON a.id = i.account_id
      JOIN subbilling.plans p ON p.id = i.plan_id
    UNION ALL
    SELECT 'subscription_discounts', a.external_id,
           to_jsonb(d) - '{id,account_id,subscription_id,campaign_id,created_at}'::text[]
                       || jsonb_build_object('campaign', c.code)
      FROM subbilling.subscription_discounts d JOIN subbilling.accounts a ON a.id = d.account_id
      JOIN subbilling.campaigns c ON c.id = d.campaign_id
    UNION ALL
    SELECT 'events', a.external_id,
           to_jsonb(e) - '{id,account_id,subscription_id,created_at,payload}'::text[]
           || jsonb_build_object('payload', e.payload #- '{item,item_id}' #- '{new,item_id}' #- '{old,item_id}')
      FROM subbilling.events e JOIN subbilling.accounts a ON a.id = e.account_id
    UNION ALL
    SELECT 'usage', a.external_id,
           to_jsonb(u) - '{id,account_id,subscription_id,item_id,plan_id,recorded_at}'::text[]
                       || jsonb_build_object('plan', p.code, 'item_plan', ip.code)
      FROM subbilling.usage u JOIN subbilling.accounts a ON a.id = u.account_id
      JOIN subbilling.plans p ON p.id = u.plan_id
      JOIN subbilling.subscription_items i ON i.account_id = u.account_id AND i.id = u.item_id
      JOIN subbilling.plans ip ON ip.id = i.plan_id
    UNION ALL
    SELECT 'campaigns', c.code, jsonb_build_object('times_redeemed', c.times_redeemed)
      FROM subbilling.campaigns c WHERE c.code LIKE 'bench-%'
$$;
COMMENT ON FUNCTION bench.gen_snapshot() IS 'customer rows made by billing_gen.sql without ids and timestamps, for comparing its two ways';

-- 0. start empty
SET client_min_messages = warning;
TRUNCATE subbilling.usage, subbilling.events, subbilling.subscription_discounts, subbilling.subscription_pauses,
         subbilling.subscription_items, subbilling.subscriptions, subbilling.payment_methods, subbilling.accounts;
UPDATE subbilling.campaigns SET times_redeemed = 0 WHERE code LIKE 'bench-%';
DROP TABLE IF EXISTS bench.gen_by_functions, bench.gen_in_bulk;

-- 1. through the functions
\set via functions
\echo '== billing_gen: ' :n ' subscriptions through subscribe(), add_addon(), record_usage()'
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
\ir billing_gen.sql
SELECT round(extract(epoch FROM clock_timestamp()) - :t0, 1) AS seconds_through_functions;
CREATE TABLE bench.gen_by_functions AS SELECT * FROM bench.gen_snapshot();

-- 2. remove every customer row, reset the redemption counts
TRUNCATE subbilling.usage, subbilling.events, subbilling.subscription_discounts, subbilling.subscription_pauses,
         subbilling.subscription_items, subbilling.subscriptions, subbilling.payment_methods, subbilling.accounts;
UPDATE subbilling.campaigns SET times_redeemed = 0 WHERE code LIKE 'bench-%';

-- 3. in bulk
\set via bulk
\echo '== billing_gen: ' :n ' subscriptions in bulk'
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
\ir billing_gen.sql
SELECT round(extract(epoch FROM clock_timestamp()) - :t0, 1) AS seconds_in_bulk;
CREATE TABLE bench.gen_in_bulk AS SELECT * FROM bench.gen_snapshot();

-- 4. compare (as multisets)
SET client_min_messages = notice;
SELECT tbl, count(*) FILTER (WHERE side = 'functions') AS only_functions,
       count(*) FILTER (WHERE side = 'bulk') AS only_bulk
  FROM (SELECT 'functions' AS side, * FROM (SELECT * FROM bench.gen_by_functions EXCEPT ALL SELECT * FROM bench.gen_in_bulk) x
        UNION ALL
        SELECT 'bulk', * FROM (SELECT * FROM bench.gen_in_bulk EXCEPT ALL SELECT * FROM bench.gen_by_functions) y) d
 GROUP BY tbl ORDER BY tbl;
SELECT tbl, count(*) AS rows_each_way FROM bench.gen_in_bulk GROUP BY tbl ORDER BY tbl;
DO $$
DECLARE
    diff bigint;
    total bigint;
BEGIN
    SELECT count(*) INTO diff
      FROM ((SELECT * FROM bench.gen_by_functions EXCEPT ALL SELECT * FROM bench.gen_in_bulk)
            UNION ALL
            (SELECT * FROM bench.gen_in_bulk EXCEPT ALL SELECT * FROM bench.gen_by_functions)) d;
    SELECT count(*) INTO total FROM bench.gen_in_bulk;
    IF diff <> 0 OR total = 0 THEN
        RAISE EXCEPTION 'billing_gen: the two ways differ in % rows (of %)', diff, total;
    END IF;
    RAISE NOTICE 'billing_gen: both ways made the same % rows', total;
END
$$;
