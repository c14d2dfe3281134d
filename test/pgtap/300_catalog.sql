-- Catalog: tables, plan validation, plan immutability once in use, campaigns.
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(82);
\ir 300_fixture.psql

-- ---------------------------------------------------------------- tables
SELECT has_table('subbilling', t, 'table ' || t) FROM unnest(ARRAY[
    'dunning_policies', 'products', 'plans', 'campaigns', 'accounts', 'payment_methods', 'events',
    'subscription_transitions', 'subscriptions', 'subscription_items', 'subscription_pauses',
    'subscription_discounts', 'usage']) t;
SELECT has_view('subbilling', 'subscription_item_history', 'view subscription_item_history');
SELECT col_type_is('subbilling', 'plans', 'price', 'price', 'plans.price is a price');
SELECT col_type_is('subbilling', 'plans', 'billing_period', 'billing_period', 'plans.billing_period is a billing_period');
SELECT col_type_is('subbilling', 'plans', 'tiers', 'tier[]', 'plans.tiers is a tier[]');
SELECT col_type_is('subbilling', 'campaigns', 'valid', 'daterange', 'campaigns.valid is a daterange');
SELECT has_trigger('subbilling', 'plans', 'plans_validate', 'plans validation trigger');
SELECT has_trigger('subbilling', 'plans', 'plans_guard_in_use', 'plans immutability trigger');
SELECT has_trigger('subbilling', 'campaigns', 'campaigns_validate', 'campaigns validation trigger');
SELECT is((SELECT count(*)::int FROM pg_catalog.pg_description d JOIN pg_catalog.pg_class c ON c.oid = d.objoid
            WHERE c.relnamespace = 'subbilling'::regnamespace AND d.objsubid = 0 AND c.relkind IN ('r', 'v')
              AND c.relname IN ('dunning_policies', 'products', 'plans', 'campaigns', 'accounts', 'payment_methods',
                                'events', 'subscription_transitions', 'subscriptions', 'subscription_items',
                                'subscription_pauses', 'subscription_discounts', 'usage', 'subscription_item_history')),
          14, 'every lifecycle table and view has a comment');

-- ---------------------------------------------------------------- plans: the fixture is valid
SELECT is((SELECT currency FROM plans WHERE code = 't_basic'), 'SEK', 'plan currency taken from the price');
SELECT is((SELECT currency FROM plans WHERE code = 't_eur'), 'EUR', 'plan currency EUR');
SELECT is((SELECT billing_period::text FROM plans WHERE code = 't_monthly'), '1 month', 'billing period stored canonically');

-- graduated and volume plans take their currency from the tiers
SELECT lives_ok($$
    INSERT INTO plans (code, product_id, name, billing_period, pricing_model, tiers)
    VALUES ('t_grad', (SELECT id FROM products WHERE code = 't_saas'), 'Graduated', 'monthly', 'graduated',
            ARRAY[ROW(10, '10.00 SEK', '100.00 SEK')::tier, ROW(100, '8.00 SEK', NULL)::tier, ROW(NULL, '5.00 SEK', NULL)::tier])
$$, 'graduated plan with three tiers');
SELECT is((SELECT currency FROM plans WHERE code = 't_grad'), 'SEK', 'graduated plan currency from its tiers');
SELECT lives_ok($$
    INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price, package_size, setup_fee)
    VALUES ('t_pack', (SELECT id FROM products WHERE code = 't_coffee'), 'Beans by the 5 kg', 'monthly', 'package',
            '400.00 SEK', 5, '99.00 SEK')
$$, 'package plan with a setup fee');
SELECT lives_ok($$
    INSERT INTO plans (code, product_id, name, currency, billing_period, pricing_model, tiers, billing_timing, included_units)
    VALUES ('t_metered', (SELECT id FROM products WHERE code = 't_saas'), 'Metered', 'sek', 'monthly', 'usage',
            ARRAY[ROW(1000, '0.00 SEK', NULL)::tier, ROW(NULL, '0.05 SEK', NULL)::tier], 'in_arrears', 1000)
$$, 'usage plan with graduated tiers, currency given in lower case');
SELECT is((SELECT currency FROM plans WHERE code = 't_metered'), 'SEK', 'explicit currency upper-cased');

-- ---------------------------------------------------------------- plans: bad rows
PREPARE ins_plan(text, text, text, text, tier[], numeric, text, text) AS
    INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price, tiers, package_size,
                       billing_timing, setup_fee)
    VALUES ('t_bad', (SELECT id FROM products WHERE code = 't_saas'), 'Bad', $1::billing_period, $2,
            $3::price, $5, $6, coalesce($7, 'in_advance'), $8::price);
SELECT throws_ok($$EXECUTE ins_plan('monthly', 'flat', NULL, NULL, NULL, NULL, NULL, NULL)$$,
                 '23502', 'plan "t_bad" has no currency', 'plan without any price has no currency');
SELECT throws_ok($$INSERT INTO plans (code, product_id, name, currency, billing_period, pricing_model)
                   VALUES ('t_bad', (SELECT id FROM products WHERE code = 't_saas'), 'Bad', 'SEK', 'monthly', 'flat')$$,
                 '23514', 'a flat plan needs a price and no tiers or package size', 'flat plan without a price');
SELECT throws_ok($$EXECUTE ins_plan('monthly', 'per_unit', '1.00 SEK', NULL, ARRAY[ROW(NULL, '1.00 SEK', NULL)::tier], NULL, NULL, NULL)$$,
                 '23514', 'a per_unit plan needs a price and no tiers or package size', 'per_unit plan with tiers');
SELECT throws_ok($$EXECUTE ins_plan('monthly', 'graduated', '1.00 SEK', NULL, NULL, NULL, NULL, NULL)$$,
                 '23514', 'a graduated plan needs tiers and no price or package size', 'graduated plan without tiers');
SELECT throws_ok($$EXECUTE ins_plan('monthly', 'volume', '1.00 SEK', NULL, ARRAY[ROW(NULL, '1.00 SEK', NULL)::tier], NULL, NULL, NULL)$$,
                 '23514', 'a volume plan needs tiers and no price or package size', 'volume plan with a price as well');
SELECT throws_ok($$EXECUTE ins_plan('monthly', 'package', '1.00 SEK', NULL, NULL, NULL, NULL, NULL)$$,
                 '23514', 'a package plan needs a price per package and a package size, and no tiers', 'package plan without size');
SELECT throws_ok($$EXECUTE ins_plan('monthly', 'package', '1.00 SEK', NULL, NULL, 0, NULL, NULL)$$,
                 '23514', 'new row for relation "plans" violates check constraint "plans_package_size_positive"', 'package size 0');
SELECT throws_ok($$EXECUTE ins_plan('monthly', 'usage', '1.00 SEK', NULL, NULL, NULL, NULL, NULL)$$,
                 '23514', 'a usage plan is billed in arrears', 'usage plan billed in advance');
SELECT throws_ok($$EXECUTE ins_plan('monthly', 'usage', '1.00 SEK', NULL, ARRAY[ROW(NULL, '1.00 SEK', NULL)::tier], NULL, 'in_arrears', NULL)$$,
                 '23514', 'a usage plan needs either a unit price or graduated tiers, not both', 'usage plan with price and tiers');
SELECT throws_ok($$EXECUTE ins_plan('monthly', 'flat', '1.00 SEK', NULL, NULL, NULL, NULL, '5.00 EUR')$$,
                 '22000', 'setup fee 5.00 EUR of plan "t_bad" is not in the plan''s currency SEK', 'setup fee in another currency');
SELECT throws_ok($$INSERT INTO plans (code, product_id, name, currency, billing_period, pricing_model, price)
                   VALUES ('t_bad', (SELECT id FROM products WHERE code = 't_saas'), 'Bad', 'NOK', 'monthly', 'flat', '1.00 SEK')$$,
                 '22000', 'price 1.00 SEK of plan "t_bad" is not in the plan''s currency NOK', 'price not in the given currency');
SELECT throws_ok($$EXECUTE ins_plan('monthly', 'graduated', NULL, NULL, ARRAY[ROW(10, '1.00 SEK', NULL)::tier, ROW(NULL, '1.00 NOK', NULL)::tier], NULL, NULL, NULL)$$,
                 '22000', 'tier 2 of plan "t_bad" is not in the plan''s currency SEK', 'tiers in two currencies');
SELECT throws_ok($$EXECUTE ins_plan('monthly', 'graduated', NULL, NULL, ARRAY[ROW(10, '1.00 SEK', NULL)::tier, ROW(10, '1.00 SEK', NULL)::tier, ROW(NULL, '1.00 SEK', NULL)::tier], NULL, NULL, NULL)$$,
                 '23514', 'tier limits of plan "t_bad" must be positive and strictly increasing', 'tier limits not increasing');
SELECT throws_ok($$EXECUTE ins_plan('monthly', 'graduated', NULL, NULL, ARRAY[ROW(10, '1.00 SEK', NULL)::tier, ROW(20, '1.00 SEK', NULL)::tier], NULL, NULL, NULL)$$,
                 '23514', 'the last tier of plan "t_bad" must have no upper limit (up_to NULL)', 'last tier bounded');
SELECT throws_ok($$EXECUTE ins_plan('monthly', 'volume', NULL, NULL, ARRAY[ROW(NULL, '1.00 SEK', NULL)::tier, ROW(NULL, '1.00 SEK', NULL)::tier], NULL, NULL, NULL)$$,
                 '23514', 'tier 1 of plan "t_bad" has no upper limit but is not the last tier', 'unbounded tier before the last');
SELECT throws_ok($$INSERT INTO plans (code, product_id, name, currency, billing_period, pricing_model, tiers)
                   VALUES ('t_bad', (SELECT id FROM products WHERE code = 't_saas'), 'Bad', 'SEK', 'monthly', 'volume',
                           ARRAY[ROW(NULL, NULL, NULL)::tier])$$,
                 '23514', 'tier 1 of plan "t_bad" has neither a unit price nor a flat price', 'tier without prices');
SELECT throws_ok($$EXECUTE ins_plan('monthly', 'volume', NULL, NULL, '{}', NULL, NULL, NULL)$$,
                 '23502', 'plan "t_bad" has no currency', 'empty tiers and no price: no currency');
SELECT throws_ok($$EXECUTE ins_plan('monthly', 'flat', '-1.00 SEK', NULL, NULL, NULL, NULL, NULL)$$,
                 '23514', 'plan "t_bad" has a negative price or setup fee', 'negative price');
SELECT throws_ok($$INSERT INTO plans (code, product_id, name, currency, billing_period, pricing_model, price)
                   VALUES ('t_bad', (SELECT id FROM products WHERE code = 't_saas'), 'Bad', 'ABC', 'monthly', 'flat', NULL)$$,
                 '22023', 'unknown currency code "ABC"', 'unknown currency');
SELECT throws_ok($$EXECUTE ins_plan('monthly', 'tiered', '1.00 SEK', NULL, NULL, NULL, NULL, NULL)$$,
                 '23514', 'new row for relation "plans" violates check constraint "plans_pricing_model_check"', 'unknown pricing model');
SELECT throws_ok($$EXECUTE ins_plan('monthly', 'flat', '1.00 SEK', NULL, NULL, NULL, 'at_once', NULL)$$,
                 '23514', 'new row for relation "plans" violates check constraint "plans_billing_timing_check"', 'unknown billing timing');
SELECT throws_ok($$INSERT INTO plans (code, product_id, name, kind, billing_period, price)
                   VALUES ('t_bad', (SELECT id FROM products WHERE code = 't_saas'), 'Bad', 'extra', 'monthly', '1.00 SEK')$$,
                 '23514', 'new row for relation "plans" violates check constraint "plans_kind_check"', 'unknown kind');
SELECT throws_ok($$INSERT INTO plans (code, product_id, name, billing_period, price, trial_days)
                   VALUES ('t_bad', (SELECT id FROM products WHERE code = 't_saas'), 'Bad', 'monthly', '1.00 SEK', -1)$$,
                 '23514', 'new row for relation "plans" violates check constraint "plans_trial_days_range"', 'negative trial days');
SELECT throws_ok($$INSERT INTO plans (code, product_id, name, billing_period, price)
                   VALUES ('t_basic', (SELECT id FROM products WHERE code = 't_saas'), 'Again', 'monthly', '1.00 SEK')$$,
                 '23505', 'duplicate key value violates unique constraint "plans_code_key"', 'plan codes are unique');
SELECT throws_ok($$INSERT INTO plans (code, product_id, name, billing_period, price)
                   VALUES ('t_bad', -1, 'Bad', 'monthly', '1.00 SEK')$$,
                 '23503', NULL, 'plan of an unknown product');
SELECT throws_ok($$INSERT INTO products (code, name, tax_rate) VALUES ('t_badtax', 'Bad', 100)$$,
                 '23514', 'new row for relation "products" violates check constraint "products_tax_rate_range"', 'tax rate 100');

-- ---------------------------------------------------------------- plans: immutable once in use
SELECT lives_ok($$UPDATE plans SET price = '110.00 SEK' WHERE code = 't_basic'$$, 'an unused plan''s price can change');
SELECT lives_ok($$UPDATE plans SET price = '100.00 SEK' WHERE code = 't_basic'$$, 'and back');
SELECT isnt(subscribe(pg_temp.acct('t_se'), 't_basic'), NULL, 'a subscription now uses t_basic');
SELECT throws_ok($$UPDATE plans SET price = '120.00 SEK' WHERE code = 't_basic'$$,
                 '55000', 'plan "t_basic" is in use and its price fields cannot change', 'price of a plan in use');
SELECT throws_ok($$UPDATE plans SET billing_period = 'P1M' WHERE code = 't_basic'$$,
                 '55000', 'plan "t_basic" is in use and its price fields cannot change', 'billing period of a plan in use');
SELECT throws_ok($$UPDATE plans SET pricing_model = 'flat' WHERE code = 't_basic'$$,
                 '55000', 'plan "t_basic" is in use and its price fields cannot change', 'pricing model of a plan in use');
SELECT throws_ok($$UPDATE plans SET setup_fee = '1.00 SEK' WHERE code = 't_basic'$$,
                 '55000', 'plan "t_basic" is in use and its price fields cannot change', 'setup fee of a plan in use');
SELECT throws_ok($$UPDATE plans SET included_units = 5 WHERE code = 't_basic'$$,
                 '55000', 'plan "t_basic" is in use and its price fields cannot change', 'included units of a plan in use');
SELECT throws_ok($$UPDATE plans SET code = 't_basic2' WHERE code = 't_basic'$$,
                 '55000', 'plan "t_basic" is in use and its price fields cannot change', 'code of a plan in use');
SELECT lives_ok($$UPDATE plans SET name = 'Basic (2024)', description = 'old', active = false, trial_days = 7,
                                 metadata = '{"tier": "entry"}' WHERE code = 't_basic'$$,
                'name, description, active, trial days and metadata of a plan in use stay editable');
SELECT is((SELECT (name, active, trial_days, price::text) FROM plans WHERE code = 't_basic'),
          ROW('Basic (2024)'::text, false, 7, '100.00 SEK'::text), 'the edit took, the price did not move');
SELECT throws_ok($$DELETE FROM plans WHERE code = 't_basic'$$, '23503', NULL, 'a plan in use cannot be deleted');
SELECT lives_ok($$DELETE FROM plans WHERE code = 't_legacy'$$, 'an unused plan can be deleted');

-- ---------------------------------------------------------------- campaigns
PREPARE ins_camp(numeric, text, text, integer, integer, text[]) AS
    INSERT INTO campaigns (code, name, percent_off, amount_off, duration, duration_periods, max_redemptions, plan_codes)
    VALUES ('t_badc', 'Bad', $1, $2::price, $3, $4, $5, $6);
SELECT throws_ok($$EXECUTE ins_camp(10, '10.00 SEK', 'once', NULL, NULL, NULL)$$,
                 '23514', 'new row for relation "campaigns" violates check constraint "campaigns_one_discount"', 'percent and amount off');
SELECT throws_ok($$EXECUTE ins_camp(NULL, NULL, 'once', NULL, NULL, NULL)$$,
                 '23514', 'new row for relation "campaigns" violates check constraint "campaigns_one_discount"', 'neither percent nor amount off');
SELECT throws_ok($$EXECUTE ins_camp(10, NULL, 'repeating', NULL, NULL, NULL)$$,
                 '23514', 'new row for relation "campaigns" violates check constraint "campaigns_duration_periods_check"', 'repeating without periods');
SELECT throws_ok($$EXECUTE ins_camp(10, NULL, 'once', 3, NULL, NULL)$$,
                 '23514', 'new row for relation "campaigns" violates check constraint "campaigns_duration_periods_check"', 'once with periods');
SELECT throws_ok($$EXECUTE ins_camp(10, NULL, 'weekly', NULL, NULL, NULL)$$,
                 '23514', 'new row for relation "campaigns" violates check constraint "campaigns_duration_check"', 'unknown duration');
SELECT throws_ok($$EXECUTE ins_camp(101, NULL, 'once', NULL, NULL, NULL)$$,
                 '23514', 'new row for relation "campaigns" violates check constraint "campaigns_percent_off_range"', 'more than 100 percent');
SELECT throws_ok($$EXECUTE ins_camp(NULL, '-5.00 SEK', 'once', NULL, NULL, NULL)$$,
                 '23514', 'amount_off of campaign "t_badc" must be positive', 'negative amount off');
SELECT throws_ok($$EXECUTE ins_camp(10, NULL, 'once', NULL, 0, NULL)$$,
                 '23514', 'new row for relation "campaigns" violates check constraint "campaigns_max_redemptions_positive"', 'zero redemptions');
SELECT throws_ok($$EXECUTE ins_camp(10, NULL, 'once', NULL, NULL, '{t_pro,t_nope}')$$,
                 '23503', 'campaign "t_badc" names unknown plan code "t_nope"', 'unknown plan code in plan_codes');
SELECT throws_ok($$EXECUTE ins_camp(10, NULL, 'once', NULL, NULL, '{}')$$,
                 '23514', 'campaign "t_badc" has an empty plan_codes array', 'empty plan_codes');
SELECT lives_ok($$EXECUTE ins_camp(NULL, '25.00 SEK', 'repeating', 2, 100, '{t_pro,t_basic}')$$, 'a valid campaign');

-- ---------------------------------------------------------------- dunning policies
SELECT lives_ok($$INSERT INTO dunning_policies (code, name) VALUES ('t_strict', 'Strict')$$, 'a dunning policy');
SELECT throws_ok($$INSERT INTO dunning_policies (code, name) VALUES ('t_strict', 'Again')$$,
                 '23505', 'duplicate key value violates unique constraint "dunning_policies_code_key"', 'dunning policy codes are unique');

SELECT * FROM finish();
ROLLBACK;
