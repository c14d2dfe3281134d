-- bench/billing_gen.sql: N subscriptions for the billing benchmark.
--
--   psql -v n=1000000 -f bench/billing_gen.sql                  bulk (INSERT ... SELECT)
--   psql -v n=1000 -v via=functions -f bench/billing_gen.sql    through subscribe(), add_addon(), record_usage()
--
-- Needs the catalog and subscription schema (sql/parts/3NN_*.sql) installed.  Everything is
-- derived from the number i of the subscription (1 .. n), so both ways make the same business:
--   * one account per subscription: external_id 'bench-<i>', currency SEK 50 %, NOK 30 %,
--     EUR 20 % (country SE / NO / FI, time zone to match), payment terms 30 / 14 days;
--   * base plan: basic 50 %, pro 35 % (14 trial days), team 15 % (per seat, 2..20 seats),
--     billed monthly 70 %, quarterly 15 %, yearly 15 %; started 0..399 days before today;
--   * campaigns: 10 % 'bench-welcome20' (20 % off, 3 periods), 3 % 'bench-firstfree' (100 %
--     off once), 2 % of the SEK accounts 'bench-sek100' (100 SEK off once);
--   * add-ons: 25 % rent 'storage' (1..5 units, same cadence), from the start or up to 59
--     days later (never after today);
--   * usage: 10 % have the 'api' usage add-on (in arrears, per call) from the start and
--     3 usage records of 1..1000 calls on days after the start (never after today).
-- The bulk way writes exactly the rows that the functions write, events included (ids and
-- timestamps aside), checked by bench/billing_gen_check.sh; it sends no NOTIFY.
\set ON_ERROR_STOP 1
\if :{?n}
\else
  \warn 'billing_gen.sql: give -v n=NUMBER'
  SELECT 1 / 0 AS missing_n;
\endif
\if :{?via}
\else
  \set via bulk
\endif
SET search_path = subbilling, public;
SET client_min_messages = warning;

-- ---------------------------------------------------------------- catalog (once)

INSERT INTO products (code, name, tax_rate) VALUES
    ('bench-office', 'Benchmark office suite', 25),
    ('bench-api',    'Benchmark API',          25)
ON CONFLICT (code) DO NOTHING;

-- Base plans: 3 tiers x 3 cadences x 3 currencies; add-ons: storage x 3 cadences x 3
-- currencies; usage: api x 3 currencies (monthly, in arrears).  Quarterly is 3 months at
-- 5 % off, yearly 12 months at 15 % off, rounded to whole units of the currency.
WITH cur(currency, unit) AS (VALUES ('SEK', 1.0), ('NOK', 1.1), ('EUR', 0.1)),
     cad(cad, period, months, factor) AS (VALUES ('m', 'monthly', 1, 1.00), ('q', 'quarterly', 3, 0.95),
                                                ('y', 'yearly', 12, 0.85)),
     tier(tier, name, kind, model, monthly, trial) AS (VALUES
        ('basic',   'Basic',         'base',  'flat',     99, 0),
        ('pro',     'Pro',           'base',  'flat',    249, 14),
        ('team',    'Team, per seat','base',  'per_unit', 79, 0),
        ('storage', 'Extra storage', 'addon', 'per_unit', 29, 0))
INSERT INTO plans (code, product_id, name, kind, billing_period, pricing_model, price, trial_days)
SELECT format('bench-%s-%s-%s', tier, lower(currency), cad), (SELECT id FROM products WHERE code = 'bench-office'),
       format('%s (%s, %s)', name, currency, period), kind, period::billing_period, model,
       price(round(monthly * unit * months * factor), currency), trial
  FROM cur, cad, tier
ON CONFLICT (code) DO NOTHING;
INSERT INTO plans (code, product_id, name, kind, billing_period, pricing_model, price, billing_timing)
SELECT format('bench-api-%s', lower(currency)), (SELECT id FROM products WHERE code = 'bench-api'),
       format('API calls (%s)', currency), 'addon', 'monthly', 'usage', price(per_call, currency), 'in_arrears'
  FROM (VALUES ('SEK', 0.05), ('NOK', 0.05), ('EUR', 0.01)) v(currency, per_call)
ON CONFLICT (code) DO NOTHING;

INSERT INTO campaigns (code, name, percent_off, amount_off, duration, duration_periods)
VALUES ('bench-welcome20', '20 % off the first three periods', 20, NULL, 'repeating', 3),
       ('bench-firstfree', 'First period free', 100, NULL, 'once', NULL),
       ('bench-sek100', '100 kr off the first period', NULL, '100.00 SEK', 'once', NULL)
ON CONFLICT (code) DO NOTHING;

-- ---------------------------------------------------------------- what to create

DROP TABLE IF EXISTS pg_temp.gen;
CREATE TEMP TABLE gen AS
SELECT i, 'bench-' || i AS external_id, currency, country, time_zone,
       plan_code, quantity, start_date, campaign_code,
       CASE WHEN h3 % 4 = 0 THEN format('bench-storage-%s-%s', lower(currency), cad) END AS addon_code,
       CASE WHEN h3 % 4 = 0 THEN (1 + (h3 / 4) % 5)::int END AS addon_quantity,
       CASE WHEN h3 % 4 = 0 THEN least(start_date + CASE WHEN h3 % 8 = 0 THEN 0 ELSE ((h3 / 40) % 60)::int END,
                                       current_date) END AS addon_from,
       CASE WHEN h4 % 10 = 0 THEN format('bench-api-%s', lower(currency)) END AS usage_code
  FROM (SELECT i, h1, h2, h3, h4,
               (ARRAY['SEK','SEK','SEK','SEK','SEK','NOK','NOK','NOK','EUR','EUR'])[1 + h1 % 10] AS currency,
               (ARRAY['m','m','m','m','m','m','m','m','m','m','m','m','m','m','q','q','q','y','y','y'])[1 + h2 % 20] AS cad
          FROM generate_series(1, :n) AS i,
               LATERAL (SELECT (i::bigint * 2654435761) % 4294967291 AS h1,
                               (i::bigint * 2246822519) % 4294967279 AS h2,
                               (i::bigint * 3266489917) % 4294967231 AS h3,
                               (i::bigint * 668265263)  % 4294967197 AS h4) AS h) AS x,
       LATERAL (SELECT CASE currency WHEN 'SEK' THEN 'SE' WHEN 'NOK' THEN 'NO' ELSE 'FI' END AS country,
                       CASE currency WHEN 'SEK' THEN 'Europe/Stockholm' WHEN 'NOK' THEN 'Europe/Oslo'
                                     ELSE 'Europe/Helsinki' END AS time_zone,
                       (ARRAY['basic','basic','basic','basic','basic','basic','basic','basic','basic','basic',
                              'pro','pro','pro','pro','pro','pro','pro','team','team','team'])[1 + (h1 / 10) % 20] AS tier,
                       current_date - ((h2 / 20) % 400)::int AS start_date,
                       CASE WHEN (h4 / 10) % 100 < 10 THEN 'bench-welcome20'
                            WHEN (h4 / 10) % 100 < 13 THEN 'bench-firstfree'
                            WHEN (h4 / 10) % 100 < 15 AND currency = 'SEK' THEN 'bench-sek100' END AS campaign_code) AS y,
       LATERAL (SELECT format('bench-%s-%s-%s', tier, lower(currency), cad) AS plan_code,
                       CASE tier WHEN 'team' THEN (2 + (h3 / 7) % 19)::int ELSE 1 END AS quantity) AS z;
CREATE UNIQUE INDEX ON gen (external_id);

-- Usage records: 3 per usage subscription, on days 0..29 after the start, at 10:00 + k hours
-- local time, never after today.
DROP TABLE IF EXISTS pg_temp.gen_usage;
CREATE TEMP TABLE gen_usage AS
SELECT g.external_id, g.usage_code, k,
       1 + ((g.i::bigint * 7 + k) * 40503) % 1000 AS quantity,
       (least(g.start_date + ((g.i + 11 * k) % 30), current_date) + make_interval(hours => 9 + k))::timestamp
           AT TIME ZONE g.time_zone AS at,
       format('bench-%s-%s', g.i, k) AS idempotency_key
  FROM gen g, generate_series(1, 3) AS k
 WHERE g.usage_code IS NOT NULL;

-- ---------------------------------------------------------------- accounts (no function makes them)

INSERT INTO accounts (external_id, name, email, country, currency, time_zone, payment_terms_days)
SELECT external_id, 'Benchmark customer ' || i, external_id || '@example.com', country, currency, time_zone,
       CASE WHEN i % 3 = 0 THEN 14 ELSE 30 END
  FROM gen
 ORDER BY i;

SELECT :'via' = 'functions' AS via_functions \gset
\if :via_functions
-- ---------------------------------------------------------------- through the lifecycle functions

DO $$
DECLARE
    g   record;
    u   record;
    sid bigint;
BEGIN
    FOR g IN SELECT gen.*, a.id AS account_id FROM gen JOIN subbilling.accounts a USING (external_id) ORDER BY i LOOP
        sid := subbilling.subscribe(g.account_id, g.plan_code, g.quantity, g.start_date, g.campaign_code);
        IF g.addon_code IS NOT NULL THEN
            PERFORM subbilling.add_addon(sid, g.addon_code, g.addon_quantity, g.addon_from);
        END IF;
        IF g.usage_code IS NOT NULL THEN
            PERFORM subbilling.add_addon(sid, g.usage_code, 1, g.start_date);
            FOR u IN SELECT * FROM gen_usage WHERE external_id = g.external_id ORDER BY k LOOP
                PERFORM subbilling.record_usage(sid, u.usage_code, u.quantity, u.at, u.idempotency_key);
            END LOOP;
        END IF;
    END LOOP;
END
$$;
\else
-- ---------------------------------------------------------------- in bulk
-- What subscribe() writes: the subscription (trialing while the trial lasts), its base item
-- from the start date, the discount of a campaign (and the campaign's redemption count), and
-- the event subscription.created.  What add_addon() writes on a subscription without that
-- add-on: the item from the effective date and the event subscription.changed.  What
-- record_usage() writes: the usage row, dated in the account's time zone.

DROP TABLE IF EXISTS pg_temp.gen_sub;
CREATE TEMP TABLE gen_sub AS
SELECT g.*, a.id AS account_id, p.id AS plan_id, p.setup_fee, p.price AS plan_price,
       p.pricing_model, p.billing_period,
       CASE WHEN p.trial_days > 0 THEN g.start_date + p.trial_days END AS trial_end
  FROM gen g
  JOIN accounts a USING (external_id)
  JOIN plans p ON p.code = g.plan_code;

INSERT INTO subscriptions (account_id, status, currency, start_date, trial_end, billing_anchor)
SELECT account_id, CASE WHEN trial_end > current_date THEN 'trialing' ELSE 'active' END,
       currency, start_date, trial_end, coalesce(trial_end, start_date)
  FROM gen_sub
 ORDER BY i;
ALTER TABLE gen_sub ADD COLUMN subscription_id bigint;
UPDATE gen_sub g SET subscription_id = s.id FROM subscriptions s WHERE s.account_id = g.account_id;

INSERT INTO subscription_items (account_id, subscription_id, plan_id, kind, quantity, validity, reason)
SELECT account_id, subscription_id, plan_id, 'base', quantity, daterange(start_date, NULL), 'subscribe'
  FROM gen_sub
 ORDER BY i;

INSERT INTO subscription_discounts (account_id, subscription_id, campaign_id, percent_off, amount_off, periods, starts_on)
SELECT g.account_id, g.subscription_id, c.id, c.percent_off, c.amount_off,
       CASE c.duration WHEN 'once' THEN 1 WHEN 'repeating' THEN c.duration_periods END,
       coalesce(g.trial_end, g.start_date)
  FROM gen_sub g JOIN campaigns c ON c.code = g.campaign_code
 ORDER BY g.i;
UPDATE campaigns c SET times_redeemed = c.times_redeemed + r.n
  FROM (SELECT campaign_code, count(*) AS n FROM gen_sub WHERE campaign_code IS NOT NULL GROUP BY 1) r
 WHERE c.code = r.campaign_code;

-- add-on and usage items: (subscription, plan, quantity, from, order of the calls)
DROP TABLE IF EXISTS pg_temp.gen_addon;
CREATE TEMP TABLE gen_addon AS
SELECT g.i, g.account_id, g.subscription_id, g.status_now, x.*
  FROM (SELECT gs.*, CASE WHEN gs.trial_end > current_date THEN 'trialing' ELSE 'active' END AS status_now
          FROM gen_sub gs) g,
       LATERAL (VALUES (1, g.addon_code, g.addon_quantity, g.addon_from),
                       (2, g.usage_code, 1, g.start_date)) AS x(call, plan_code, quantity, effective)
 WHERE x.plan_code IS NOT NULL;
ALTER TABLE gen_addon ADD COLUMN item_id bigint;

WITH ins AS (
    INSERT INTO subscription_items (account_id, subscription_id, plan_id, kind, quantity, validity, reason)
    SELECT a.account_id, a.subscription_id, p.id, 'addon', a.quantity, daterange(a.effective, NULL), 'add_addon'
      FROM gen_addon a JOIN plans p ON p.code = a.plan_code
     ORDER BY a.i, a.call
    RETURNING account_id, subscription_id, plan_id, id)
UPDATE gen_addon a SET item_id = ins.id
  FROM ins JOIN plans p ON p.id = ins.plan_id
 WHERE ins.account_id = a.account_id AND ins.subscription_id = a.subscription_id AND p.code = a.plan_code;

-- events, in the order the functions raise them; the item objects are item_json()'s, written
-- out so that they need no function call per row
INSERT INTO events (account_id, type, subscription_id, payload)
SELECT account_id, type, subscription_id, payload
  FROM (SELECT g.i, 0 AS call, g.account_id, 'subscription.created' AS type, g.subscription_id,
               jsonb_build_object('status', CASE WHEN g.trial_end > current_date THEN 'trialing' ELSE 'active' END,
                                  'currency', g.currency, 'start_date', g.start_date, 'trial_end', g.trial_end,
                                  'billing_anchor', coalesce(g.trial_end, g.start_date), 'campaign', g.campaign_code)
               || jsonb_build_object('item', jsonb_build_object('item_id', it.id, 'plan', p.code, 'quantity', it.quantity,
                                                                'price', p.price::text, 'pricing_model', p.pricing_model,
                                                                'billing_period', p.billing_period::text),
                                     'setup_fee', g.setup_fee::text) AS payload
          FROM gen_sub g
          JOIN subscription_items it ON it.account_id = g.account_id AND it.subscription_id = g.subscription_id
                                    AND it.kind = 'base'
          JOIN plans p ON p.id = it.plan_id
        UNION ALL
        SELECT a.i, a.call, a.account_id, 'subscription.changed', a.subscription_id,
               jsonb_build_object('change', 'addon_added', 'effective', a.effective,
                                  'status', a.status_now, 'old', NULL,
                                  'new', jsonb_build_object('item_id', it.id, 'plan', p.code, 'quantity', it.quantity,
                                                            'price', p.price::text, 'pricing_model', p.pricing_model,
                                                            'billing_period', p.billing_period::text),
                                  'voided_item_ids', '[]'::jsonb)
          FROM gen_addon a
          JOIN subscription_items it ON it.account_id = a.account_id AND it.id = a.item_id
          JOIN plans p ON p.id = it.plan_id) e
 ORDER BY i, call;

INSERT INTO usage (account_id, subscription_id, item_id, plan_id, quantity, at, usage_date, idempotency_key)
SELECT a.account_id, a.subscription_id, a.item_id, p.id, u.quantity, u.at,
       (u.at AT TIME ZONE g.time_zone)::date, u.idempotency_key
  FROM gen_usage u
  JOIN gen_sub g USING (external_id)
  JOIN gen_addon a ON a.i = g.i AND a.call = 2
  JOIN plans p ON p.code = u.usage_code
 ORDER BY g.i, u.k;
\endif

ANALYZE accounts;
ANALYZE subscriptions;
ANALYZE subscription_items;
ANALYZE subscription_discounts;
ANALYZE events;
ANALYZE usage;
