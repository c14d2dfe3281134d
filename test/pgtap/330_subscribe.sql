-- subscribe(): the subscription, its first item, trials, campaigns, the
-- subscription.created event; every bad input refused with nothing written.
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(69);
\ir 300_fixture.psql

SELECT has_function('subbilling', 'subscribe', ARRAY['bigint', 'text', 'integer', 'date', 'text', 'integer'], 'subscribe signature');
SELECT function_returns('subbilling', 'subscribe', ARRAY['bigint', 'text', 'integer', 'date', 'text', 'integer'], 'bigint', 'subscribe returns the id');
SELECT volatility_is('subbilling', 'subscribe', ARRAY['bigint', 'text', 'integer', 'date', 'text', 'integer'], 'volatile', 'subscribe is volatile');
SELECT is_definer('subbilling', 'subscribe', ARRAY['bigint', 'text', 'integer', 'date', 'text', 'integer'], 'subscribe is SECURITY DEFINER');

-- ---------------------------------------------------------------- a plain subscription, backdated
CREATE TEMP TABLE mark AS SELECT pg_temp.last_event_id() AS before;
SELECT isnt(subscribe(pg_temp.acct('t_se'), 't_basic', 3, pg_temp.d(-5)), NULL, 'subscribe t_se to t_basic x3 from 5 days ago');
SELECT results_eq($$
    SELECT status, currency, start_date, trial_end, billing_anchor, cancel_at, canceled_at, credit_unused
      FROM subscriptions WHERE id = pg_temp.sub('t_se')
$$, $$VALUES ('active'::text, 'SEK'::text, pg_temp.d(-5), NULL::date, pg_temp.d(-5), NULL::date, NULL::timestamptz, false)$$,
   'the subscription row');
SELECT results_eq($$
    SELECT kind, plan_id, quantity, validity, reason, replaces_id, voided_at
      FROM subscription_items WHERE subscription_id = pg_temp.sub('t_se')
$$, $$VALUES ('base'::text, pg_temp.plan('t_basic'), 3, daterange(pg_temp.d(-5), NULL), 'subscribe'::text, NULL::bigint, NULL::timestamptz)$$,
   'one base item, open-ended from the start date');
SELECT results_eq($$SELECT type, subscription_id, account_id FROM events WHERE id > (SELECT before FROM mark)$$,
                  $$VALUES ('subscription.created'::text, pg_temp.sub('t_se'), pg_temp.acct('t_se'))$$,
                  'one event: subscription.created');
SELECT is((SELECT payload FROM events WHERE id > (SELECT before FROM mark)),
          jsonb_build_object('status', 'active', 'currency', 'SEK', 'start_date', pg_temp.d(-5), 'trial_end', NULL,
                             'billing_anchor', pg_temp.d(-5), 'campaign', NULL, 'setup_fee', NULL,
                             'item', jsonb_build_object('item_id', (SELECT id FROM subscription_items WHERE subscription_id = pg_temp.sub('t_se')),
                                                        'plan', 't_basic', 'quantity', 3, 'price', '100.00 SEK',
                                                        'pricing_model', 'per_unit', 'billing_period', '10 days')),
          'subscription.created payload: status, dates, plan, quantity, price');
SELECT is(subscription_status(pg_temp.sub('t_se')), 'active', 'subscription_status today: active');
SELECT is(subscription_status(pg_temp.sub('t_se'), pg_temp.d(-6)), NULL, 'subscription_status before the start: NULL');

-- defaults: quantity 1, today
SELECT isnt(subscribe(pg_temp.acct('t_se'), 't_pro'), NULL, 'subscribe with every default');
SELECT results_eq($$SELECT start_date, status, (SELECT quantity FROM subscription_items i WHERE i.subscription_id = s.id)
                      FROM subscriptions s WHERE id = pg_temp.sub('t_se')$$,
                  $$VALUES (current_date, 'active'::text, 1)$$, 'defaults: today, quantity 1');

-- ---------------------------------------------------------------- trials
SELECT isnt(subscribe(pg_temp.acct('t_se2'), 't_trial'), NULL, 'subscribe to a plan with a 14-day trial');
SELECT results_eq($$SELECT status, trial_end, billing_anchor FROM subscriptions WHERE id = pg_temp.sub('t_se2')$$,
                  $$VALUES ('trialing'::text, pg_temp.d(14), pg_temp.d(14))$$, 'trialing until day 14, billing anchored there');
SELECT is(subscription_status(pg_temp.sub('t_se2'), pg_temp.d(13)), 'trialing', 'trialing on day 13');
SELECT is(subscription_status(pg_temp.sub('t_se2'), pg_temp.d(14)), 'active', 'active on day 14');
SELECT isnt(subscribe(pg_temp.acct('t_se2'), 't_trial', 1, current_date, NULL, 0), NULL, 'trial_days 0 overrides the plan');
SELECT results_eq($$SELECT status, trial_end, billing_anchor FROM subscriptions WHERE id = pg_temp.sub('t_se2')$$,
                  $$VALUES ('active'::text, NULL::date, current_date)$$, 'no trial');
SELECT isnt(subscribe(pg_temp.acct('t_se2'), 't_basic', 2, pg_temp.d(-3), NULL, 30), NULL, 'trial_days 30 on a plan without a trial');
SELECT results_eq($$SELECT status, trial_end FROM subscriptions WHERE id = pg_temp.sub('t_se2')$$,
                  $$VALUES ('trialing'::text, pg_temp.d(27))$$, 'trialing 30 days from the start');
SELECT isnt(subscribe(pg_temp.acct('t_se2'), 't_trial', 1, pg_temp.d(-20)), NULL, 'backdated start whose trial is over');
SELECT results_eq($$SELECT status, trial_end FROM subscriptions WHERE id = pg_temp.sub('t_se2')$$,
                  $$VALUES ('active'::text, pg_temp.d(-6))$$, 'active: the trial ended 6 days ago');
SELECT isnt(subscribe(pg_temp.acct('t_se2'), 't_basic', 1, pg_temp.d(10)), NULL, 'a start in the future');
SELECT is(subscription_status(pg_temp.sub('t_se2')), NULL, 'not started yet: subscription_status NULL');

-- ---------------------------------------------------------------- campaigns
SELECT isnt(subscribe(pg_temp.acct('t_se3'), 't_trial', 1, current_date, 't_half'), NULL, 'with campaign t_half (50% once)');
SELECT results_eq($$SELECT c.code, d.percent_off, d.amount_off, d.periods, d.starts_on
                      FROM subscription_discounts d JOIN campaigns c ON c.id = d.campaign_id
                     WHERE d.subscription_id = pg_temp.sub('t_se3')$$,
                  $$VALUES ('t_half'::text, 50::numeric, NULL::price, 1, pg_temp.d(14))$$,
                  'discount: 50% for one period from the first billed period (after the trial)');
SELECT is((SELECT payload->>'campaign' FROM events WHERE subscription_id = pg_temp.sub('t_se3')), 't_half', 'the event names the campaign');
SELECT isnt(subscribe(pg_temp.acct('t_se3'), 't_basic', 1, current_date, 't_100off'), NULL, 'with campaign t_100off (repeating 3)');
SELECT results_eq($$SELECT d.percent_off, d.amount_off, d.periods, d.starts_on FROM subscription_discounts d
                     WHERE d.subscription_id = pg_temp.sub('t_se3')$$,
                  $$VALUES (NULL::numeric, '100.00 SEK'::price, 3, current_date)$$, 'discount: 100.00 SEK for 3 periods');
SELECT isnt(subscribe(pg_temp.acct('t_de'), 't_eur', 1, current_date, 't_eur5'), NULL, 'EUR account, EUR plan, 5 EUR forever');
SELECT results_eq($$SELECT d.amount_off, d.periods FROM subscription_discounts d WHERE d.subscription_id = pg_temp.sub('t_de')$$,
                  $$VALUES ('5.00 EUR'::price, NULL::integer)$$, 'forever: periods NULL');
SELECT isnt(subscribe(pg_temp.acct('t_se3'), 't_pro', 1, current_date, 't_only_pro'), NULL, 'a campaign limited to t_pro on t_pro');
SELECT isnt(subscribe(pg_temp.acct('t_se3'), 't_basic', 1, current_date, 't_one'), NULL, 'the single redemption of t_one');
SELECT results_eq($$SELECT code, times_redeemed FROM campaigns WHERE code IN ('t_half', 't_100off', 't_eur5', 't_one', 't_expired') ORDER BY code$$,
                  $$VALUES ('t_100off'::text, 1), ('t_eur5', 1), ('t_expired', 0), ('t_half', 1), ('t_one', 1)$$,
                  'redemptions counted per campaign');

-- ---------------------------------------------------------------- bad input: clear errors, nothing written
SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_se'), 't_basic', 0)$$, '22023', 'quantity must be positive', 'subscribe: quantity 0');
SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_se'), 't_basic', -2)$$, '22023', 'quantity must be positive', 'subscribe: negative quantity');
SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_se'), 't_basic', NULL)$$, '22023', 'quantity must be positive', 'subscribe: NULL quantity');
SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_se'), 't_basic', 1, NULL)$$, '22023', 'start_date must be a finite date', 'subscribe: NULL start date');
SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_se'), 't_basic', 1, 'infinity')$$, '22023', 'start_date must be a finite date', 'subscribe: infinite start date');
SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_se'), 't_basic', 1, current_date, NULL, -1)$$, '22023', 'trial_days must be between 0 and 3650', 'subscribe: negative trial days');
SELECT pg_temp.refused($$SELECT subscribe(-1, 't_basic')$$, '42704', 'account -1 does not exist', 'subscribe: unknown account');
SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_se'), 't_nope')$$, '42704', 'unknown plan code "t_nope"', 'subscribe: unknown plan code');
SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_se'), 't_support')$$, '22023', 'plan "t_support" is an add-on plan, not a base plan', 'subscribe: an add-on plan');
SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_se'), 't_retired')$$, '55000', 'plan "t_retired" is not active', 'subscribe: an inactive plan');
SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_no'), 't_basic')$$, '22000', 'plan "t_basic" is priced in SEK, but the account bills in NOK', 'subscribe: plan in another currency');
SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_se'), 't_basic', 1, current_date, 't_nope')$$, '42704', 'unknown campaign code "t_nope"', 'subscribe: unknown campaign code');
SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_se'), 't_basic', 1, current_date, 't_expired')$$, '55000',
                       format('campaign "t_expired" is not valid on %s', current_date), 'subscribe: expired campaign');
SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_se'), 't_basic', 1, current_date, 't_only_pro')$$, '22023',
                       'campaign "t_only_pro" does not apply to plan "t_basic"', 'subscribe: campaign for other plans');
SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_de'), 't_eur', 1, current_date, 't_100off')$$, '22000',
                       'campaign "t_100off" takes off 100.00 SEK, but the account bills in EUR', 'subscribe: campaign amount in another currency');
SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_se'), 't_basic', 1, current_date, 't_one')$$, '55000',
                       'campaign "t_one" has been redeemed all 1 times', 'subscribe: campaign used up');
UPDATE campaigns SET active = false WHERE code = 't_half';
SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_se'), 't_basic', 1, current_date, 't_half')$$, '55000',
                       format('campaign "t_half" is not valid on %s', current_date), 'subscribe: inactive campaign');

SELECT * FROM finish();
ROLLBACK;
