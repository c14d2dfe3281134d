-- add_addon, remove_addon, change_plan (immediate, end_of_period),
-- change_quantity: the exact item history and events; bad input refused.
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(103);
\ir 300_fixture.psql

SELECT has_function('subbilling', 'add_addon', ARRAY['bigint', 'text', 'integer', 'date'], 'add_addon signature');
SELECT has_function('subbilling', 'remove_addon', ARRAY['bigint', 'text', 'date'], 'remove_addon signature');
SELECT has_function('subbilling', 'change_plan', ARRAY['bigint', 'text', 'date', 'text'], 'change_plan signature');
SELECT has_function('subbilling', 'change_quantity', ARRAY['bigint', 'integer', 'date'], 'change_quantity signature');

-- The history of a subscription as comparable rows: an item is described by
-- kind, plan, quantity, validity, reason, the plan and quantity it replaced,
-- and whether it is void.
CREATE FUNCTION pg_temp.hist(sub bigint)
    RETURNS TABLE (kind text, plan text, quantity integer, validity daterange, reason text, replaces text, void boolean)
    LANGUAGE sql STABLE AS $$
    SELECT h.kind, h.plan_code, h.quantity, h.validity, h.reason,
           (SELECT r.plan_code || ' x' || r.quantity FROM subbilling.subscription_item_history r WHERE r.item_id = h.replaces_id),
           h.voided_at IS NOT NULL
      FROM subbilling.subscription_history(sub) h
$$;
-- Events of a subscription after the mark: type, change, effective, old and new plan x quantity.
CREATE TEMP TABLE mark (before bigint);
CREATE FUNCTION pg_temp.evs(sub bigint)
    RETURNS TABLE (type text, change text, effective date, old text, new text, voided integer)
    LANGUAGE sql STABLE AS $$
    SELECT e.type, e.payload->>'change', (e.payload->>'effective')::date,
           (e.payload->'old'->>'plan') || ' x' || (e.payload->'old'->>'quantity'),
           (e.payload->'new'->>'plan') || ' x' || (e.payload->'new'->>'quantity'),
           jsonb_array_length(e.payload->'voided_item_ids')
      FROM subbilling.events e
     WHERE e.subscription_id = sub AND e.id > (SELECT before FROM mark)
     ORDER BY e.id
$$;

-- 10-day periods from the anchor d(-15): [d(-15), d(-5)), [d(-5), d(5)), [d(5), d(15)) ...
SELECT isnt(subscribe(pg_temp.acct('t_se'), 't_basic', 2, pg_temp.d(-15)), NULL, 'A: t_basic x2 from d(-15)');
INSERT INTO mark SELECT pg_temp.last_event_id();

-- ---------------------------------------------------------------- add-ons
SELECT isnt(add_addon(pg_temp.sub('t_se'), 't_support', 1, pg_temp.d(-10)), NULL, 'add t_support from d(-10)');
SELECT isnt(add_addon(pg_temp.sub('t_se'), 't_storage', 5), NULL, 'add t_storage x5 today');
SELECT results_eq($$SELECT * FROM pg_temp.hist(pg_temp.sub('t_se')) WHERE kind = 'addon'$$,
                  $$VALUES ('addon'::text, 't_support'::text, 1, daterange(pg_temp.d(-10), NULL), 'add_addon'::text, NULL::text, false),
                           ('addon', 't_storage', 5, daterange(current_date, NULL), 'add_addon', NULL, false)$$,
                  'two open add-on items');
SELECT is((SELECT payload FROM events WHERE subscription_id = pg_temp.sub('t_se') ORDER BY id DESC LIMIT 1),
          jsonb_build_object('change', 'addon_added', 'effective', current_date, 'status', 'active', 'old', NULL,
                             'new', jsonb_build_object('item_id', (SELECT max(id) FROM subscription_items),
                                                       'plan', 't_storage', 'quantity', 5, 'price', '5.00 SEK',
                                                       'pricing_model', 'per_unit', 'billing_period', '10 days'),
                             'voided_item_ids', '[]'::jsonb),
          'subscription.changed payload of an added add-on');

-- ---------------------------------------------------------------- quantity and plan
SELECT isnt(change_quantity(pg_temp.sub('t_se'), 4, pg_temp.d(-2)), NULL, 'quantity 4 from d(-2)');
SELECT isnt(change_plan(pg_temp.sub('t_se'), 't_pro'), NULL, 'to t_pro today, immediately');
SELECT isnt(change_plan(pg_temp.sub('t_se'), 't_basic', current_date, 'end_of_period'), NULL, 'back to t_basic at the end of the period');
SELECT results_eq($$SELECT * FROM pg_temp.hist(pg_temp.sub('t_se')) WHERE kind = 'base'$$,
                  $$VALUES ('base'::text, 't_basic'::text, 2, daterange(pg_temp.d(-15), pg_temp.d(-2)), 'subscribe'::text, NULL::text, false),
                           ('base', 't_basic', 4, daterange(pg_temp.d(-2), current_date), 'change_quantity', 't_basic x2', false),
                           ('base', 't_pro',   4, daterange(current_date, pg_temp.d(5)), 'change_plan', 't_basic x4', false),
                           ('base', 't_basic', 4, daterange(pg_temp.d(5), NULL), 'change_plan', 't_pro x4', false)$$,
                  'base history: closed at each change, never overwritten; end_of_period switches at d(5)');
SELECT results_eq($$SELECT plan_code, quantity FROM subscription_items_on(pg_temp.sub('t_se'), pg_temp.d(1))$$,
                  $$VALUES ('t_pro'::text, 4), ('t_storage', 5), ('t_support', 1)$$, 'what held on d(1): base first, then add-ons');
SELECT results_eq($$SELECT plan_code, quantity FROM subscription_items_on(pg_temp.sub('t_se'), pg_temp.d(-12))$$,
                  $$VALUES ('t_basic'::text, 2)$$, 'what held on d(-12)');
SELECT results_eq($$SELECT plan_code, quantity FROM subscription_items_on(pg_temp.sub('t_se'), pg_temp.d(7))$$,
                  $$VALUES ('t_basic'::text, 4), ('t_storage', 5), ('t_support', 1)$$, 'what will hold on d(7)');

-- a later base change supersedes the scheduled switch: it is voided, kept
SELECT isnt(change_quantity(pg_temp.sub('t_se'), 6, pg_temp.d(1)), NULL, 'quantity 6 from d(1)');
SELECT results_eq($$SELECT * FROM pg_temp.hist(pg_temp.sub('t_se')) WHERE kind = 'base' AND validity && daterange(current_date, NULL)$$,
                  $$VALUES ('base'::text, 't_pro'::text, 4, daterange(current_date, pg_temp.d(1)), 'change_plan'::text, 't_basic x4'::text, false),
                           ('base', 't_pro', 6, daterange(pg_temp.d(1), NULL), 'change_quantity', 't_pro x4', false),
                           ('base', 't_basic', 4, daterange(pg_temp.d(5), NULL), 'change_plan', 't_pro x4', true)$$,
                  'the scheduled t_basic item is void, the quantity change runs on');

-- end_of_period again: the switch date follows the period, the scheduled item is undone by a new one
SELECT isnt(change_plan(pg_temp.sub('t_se'), 't_basic', pg_temp.d(2), 'end_of_period'), NULL, 'to t_basic at the end of the period again');
SELECT isnt(change_plan(pg_temp.sub('t_se'), 't_pro', pg_temp.d(3), 'end_of_period'), NULL, 'and back to t_pro at the same boundary');
SELECT results_eq($$SELECT * FROM pg_temp.hist(pg_temp.sub('t_se')) WHERE kind = 'base' AND lower(validity) >= pg_temp.d(1)$$,
                  $$VALUES ('base'::text, 't_pro'::text, 6, daterange(pg_temp.d(1), pg_temp.d(5)), 'change_quantity'::text, 't_pro x4'::text, false),
                           ('base', 't_basic', 4, daterange(pg_temp.d(5), NULL), 'change_plan', 't_pro x4', true),
                           ('base', 't_basic', 6, daterange(pg_temp.d(5), NULL), 'change_plan', 't_pro x6', true),
                           ('base', 't_pro', 6, daterange(pg_temp.d(5), NULL), 'change_plan', 't_basic x6', false)$$,
                  'a change back to the current plan at the same boundary voids the scheduled one');

-- ---------------------------------------------------------------- remove and re-add an add-on
SELECT isnt(remove_addon(pg_temp.sub('t_se'), 't_support', pg_temp.d(3)), NULL, 'remove t_support on d(3)');
SELECT isnt(add_addon(pg_temp.sub('t_se'), 't_support', 2, pg_temp.d(8)), NULL, 'add t_support x2 again on d(8)');
SELECT results_eq($$SELECT * FROM pg_temp.hist(pg_temp.sub('t_se')) WHERE plan = 't_support'$$,
                  $$VALUES ('addon'::text, 't_support'::text, 1, daterange(pg_temp.d(-10), pg_temp.d(3)), 'add_addon'::text, NULL::text, false),
                           ('addon', 't_support', 2, daterange(pg_temp.d(8), NULL), 'add_addon', NULL, false)$$,
                  't_support: closed on d(3), a new item from d(8)');
SELECT results_eq($$SELECT plan_code FROM subscription_items_on(pg_temp.sub('t_se'), pg_temp.d(4))$$,
                  ARRAY['t_pro', 't_storage'], 'on d(4) no support');

SELECT results_eq($$SELECT * FROM pg_temp.evs(pg_temp.sub('t_se'))$$,
                  $$VALUES ('subscription.changed'::text, 'addon_added'::text, pg_temp.d(-10), NULL::text, 't_support x1'::text, 0),
                           ('subscription.changed', 'addon_added', current_date, NULL, 't_storage x5', 0),
                           ('subscription.changed', 'quantity', pg_temp.d(-2), 't_basic x2', 't_basic x4', 0),
                           ('subscription.changed', 'plan', current_date, 't_basic x4', 't_pro x4', 0),
                           ('subscription.changed', 'plan', pg_temp.d(5), 't_pro x4', 't_basic x4', 0),
                           ('subscription.changed', 'quantity', pg_temp.d(1), 't_pro x4', 't_pro x6', 1),
                           ('subscription.changed', 'plan', pg_temp.d(5), 't_pro x6', 't_basic x6', 0),
                           ('subscription.changed', 'plan', pg_temp.d(5), 't_basic x6', 't_pro x6', 1),
                           ('subscription.changed', 'addon_removed', pg_temp.d(3), 't_support x1', NULL, 0),
                           ('subscription.changed', 'addon_added', pg_temp.d(8), NULL, 't_support x2', 0)$$,
                  'one subscription.changed event per call, with old and new plan and quantity');
SELECT results_eq($$SELECT payload->>'timing', (payload->>'requested')::date, payload->'old'->>'price', payload->'new'->>'price'
                      FROM events WHERE subscription_id = pg_temp.sub('t_se') AND payload->>'change' = 'plan' ORDER BY id LIMIT 2$$,
                  $$VALUES ('immediate'::text, current_date, '100.00 SEK'::text, '250.00 SEK'::text),
                           ('end_of_period', current_date, '250.00 SEK', '100.00 SEK')$$,
                  'plan change events carry the timing, the requested date and both prices');

-- ---------------------------------------------------------------- bounded by a scheduled cancellation
SELECT isnt(subscribe(pg_temp.acct('t_se2'), 't_basic', 1, pg_temp.d(-3)), NULL, 'B: t_basic from d(-3)');
SELECT isnt(cancel(pg_temp.sub('t_se2'), pg_temp.d(10)), NULL, 'B ends on d(10)');
SELECT isnt(change_quantity(pg_temp.sub('t_se2'), 3, pg_temp.d(5)), NULL, 'B: quantity 3 from d(5)');
SELECT isnt(add_addon(pg_temp.sub('t_se2'), 't_support', 1, pg_temp.d(6)), NULL, 'B: support from d(6)');
SELECT results_eq($$SELECT * FROM pg_temp.hist(pg_temp.sub('t_se2'))$$,
                  $$VALUES ('addon'::text, 't_support'::text, 1, daterange(pg_temp.d(6), pg_temp.d(10)), 'add_addon'::text, NULL::text, false),
                           ('base', 't_basic', 1, daterange(pg_temp.d(-3), pg_temp.d(5)), 'subscribe', NULL, false),
                           ('base', 't_basic', 3, daterange(pg_temp.d(5), pg_temp.d(10)), 'change_quantity', 't_basic x1', false)$$,
                  'new items end at the scheduled cancellation');

-- ---------------------------------------------------------------- bad input: clear errors, nothing written
SELECT isnt(subscribe(pg_temp.acct('t_se3'), 't_basic', 1, pg_temp.d(-20)), NULL, 'C: t_basic from d(-20)');
SELECT isnt(cancel(pg_temp.sub('t_se3'), pg_temp.d(-1)), NULL, 'C canceled yesterday');
SELECT is((SELECT status FROM subscriptions WHERE id = pg_temp.sub('t_se3')), 'canceled', 'C is canceled');

SELECT pg_temp.refused($$SELECT add_addon(pg_temp.sub('t_se'), 't_eur_sup', 0)$$, '22023', 'quantity must be positive', 'add_addon: quantity 0');
SELECT pg_temp.refused($$SELECT add_addon(pg_temp.sub('t_se'), 't_eur_sup', 1, NULL)$$, '22023', 'effective must be a finite date', 'add_addon: NULL date');
SELECT pg_temp.refused($$SELECT add_addon(-1, 't_support')$$, '42704', 'subscription -1 does not exist', 'add_addon: unknown subscription');
SELECT pg_temp.refused($$SELECT add_addon(pg_temp.sub('t_se'), 't_nope')$$, '42704', 'unknown plan code "t_nope"', 'add_addon: unknown plan');
SELECT pg_temp.refused($$SELECT add_addon(pg_temp.sub('t_se'), 't_pro')$$, '22023', 'plan "t_pro" is a base plan, not an add-on plan', 'add_addon: a base plan');
SELECT pg_temp.refused($$SELECT add_addon(pg_temp.sub('t_se'), 't_eur_sup')$$, '22000', 'plan "t_eur_sup" is priced in EUR, but the account bills in SEK', 'add_addon: another currency');
SELECT pg_temp.refused($$SELECT add_addon(pg_temp.sub('t_se'), 't_storage', 1, pg_temp.d(2))$$, '55000',
                       format('subscription %s already has add-on "t_storage" on %s', pg_temp.sub('t_se'), pg_temp.d(2)), 'add_addon: already there');
SELECT pg_temp.refused($$SELECT add_addon(pg_temp.sub('t_se'), 't_api', 1, pg_temp.d(-16))$$, '22023',
                       format('effective date %s is before the subscription''s start on %s', pg_temp.d(-16), pg_temp.d(-15)), 'add_addon: before the start');
SELECT pg_temp.refused($$SELECT add_addon(pg_temp.sub('t_se3'), 't_support')$$, '55000',
                       format('subscription %s is canceled', pg_temp.sub('t_se3')), 'add_addon: canceled subscription');
SELECT pg_temp.refused($$SELECT add_addon(pg_temp.sub('t_se2'), 't_storage', 1, pg_temp.d(10))$$, '55000',
                       format('subscription %s ends on %s', pg_temp.sub('t_se2'), pg_temp.d(10)), 'add_addon: after the end');
UPDATE plans SET active = false WHERE code = 't_api';
SELECT pg_temp.refused($$SELECT add_addon(pg_temp.sub('t_se'), 't_api')$$, '55000', 'plan "t_api" is not active', 'add_addon: inactive plan');
UPDATE plans SET active = true WHERE code = 't_api';

SELECT pg_temp.refused($$SELECT remove_addon(pg_temp.sub('t_se'), 't_api')$$, '55000',
                       format('subscription %s has no add-on "t_api" on %s', pg_temp.sub('t_se'), current_date), 'remove_addon: not there');
SELECT pg_temp.refused($$SELECT remove_addon(pg_temp.sub('t_se'), 't_pro')$$, '22023', 'plan "t_pro" is a base plan, not an add-on plan', 'remove_addon: a base plan');
SELECT pg_temp.refused($$SELECT remove_addon(pg_temp.sub('t_se'), 't_nope')$$, '42704', 'unknown plan code "t_nope"', 'remove_addon: unknown plan');
SELECT pg_temp.refused($$SELECT remove_addon(pg_temp.sub('t_se'), 't_storage', NULL)$$, '22023', 'effective must be a finite date', 'remove_addon: NULL date');
SELECT pg_temp.refused($$SELECT remove_addon(pg_temp.sub('t_se3'), 't_support')$$, '55000',
                       format('subscription %s is canceled', pg_temp.sub('t_se3')), 'remove_addon: canceled subscription');
SELECT pg_temp.refused($$SELECT remove_addon(pg_temp.sub('t_se'), 't_storage', pg_temp.d(-1))$$, '55000',
                       format('subscription %s has no add-on "t_storage" on %s', pg_temp.sub('t_se'), pg_temp.d(-1)), 'remove_addon: before it was added');

SELECT pg_temp.refused($$SELECT change_plan(pg_temp.sub('t_se'), 't_basic', current_date, 'later')$$, '22023', 'unknown timing "later"', 'change_plan: unknown timing');
SELECT pg_temp.refused($$SELECT change_plan(pg_temp.sub('t_se'), 't_pro')$$, '22023',
                       format('subscription %s is already on plan "t_pro" on %s', pg_temp.sub('t_se'), current_date), 'change_plan: same plan');
SELECT pg_temp.refused($$SELECT change_plan(pg_temp.sub('t_se'), 't_support')$$, '22023', 'plan "t_support" is an add-on plan, not a base plan', 'change_plan: an add-on');
SELECT pg_temp.refused($$SELECT change_plan(pg_temp.sub('t_se'), 't_eur')$$, '22000', 'plan "t_eur" is priced in EUR, but the account bills in SEK', 'change_plan: another currency');
SELECT pg_temp.refused($$SELECT change_plan(pg_temp.sub('t_se'), 't_retired')$$, '55000', 'plan "t_retired" is not active', 'change_plan: inactive plan');
SELECT pg_temp.refused($$SELECT change_plan(pg_temp.sub('t_se'), 't_nope')$$, '42704', 'unknown plan code "t_nope"', 'change_plan: unknown plan');
SELECT pg_temp.refused($$SELECT change_plan(-1, 't_pro')$$, '42704', 'subscription -1 does not exist', 'change_plan: unknown subscription');
SELECT pg_temp.refused($$SELECT change_plan(pg_temp.sub('t_se'), 't_basic', pg_temp.d(-20))$$, '22023',
                       format('effective date %s is before the subscription''s start on %s', pg_temp.d(-20), pg_temp.d(-15)), 'change_plan: before the start');
SELECT pg_temp.refused($$SELECT change_plan(pg_temp.sub('t_se'), 't_legacy', pg_temp.d(-3))$$, '22023',
                       format('effective date %s is before a change that took effect on %s', pg_temp.d(-3), current_date), 'change_plan: back past a change that took effect');
SELECT pg_temp.refused($$SELECT change_plan(pg_temp.sub('t_se3'), 't_pro')$$, '55000',
                       format('subscription %s is canceled', pg_temp.sub('t_se3')), 'change_plan: canceled subscription');
SELECT pg_temp.refused($$SELECT change_plan(pg_temp.sub('t_se2'), 't_pro', pg_temp.d(8), 'end_of_period')$$, '55000',
                       format('subscription %s ends on %s', pg_temp.sub('t_se2'), pg_temp.d(10)), 'change_plan: the period ends after the subscription');

SELECT pg_temp.refused($$SELECT change_quantity(pg_temp.sub('t_se'), 0)$$, '22023', 'quantity must be positive', 'change_quantity: 0');
SELECT pg_temp.refused($$SELECT change_quantity(pg_temp.sub('t_se'), -3)$$, '22023', 'quantity must be positive', 'change_quantity: negative');
SELECT pg_temp.refused($$SELECT change_quantity(pg_temp.sub('t_se'), 6, pg_temp.d(2))$$, '22023',
                       format('subscription %s already has quantity 6 on %s', pg_temp.sub('t_se'), pg_temp.d(2)), 'change_quantity: unchanged');
SELECT pg_temp.refused($$SELECT change_quantity(pg_temp.sub('t_se'), 2, 'infinity')$$, '22023', 'effective must be a finite date', 'change_quantity: infinite date');
SELECT pg_temp.refused($$SELECT change_quantity(pg_temp.sub('t_se3'), 2)$$, '55000',
                       format('subscription %s is canceled', pg_temp.sub('t_se3')), 'change_quantity: canceled subscription');
SELECT pg_temp.refused($$SELECT change_quantity(pg_temp.sub('t_se2'), 2, pg_temp.d(12))$$, '55000',
                       format('subscription %s ends on %s', pg_temp.sub('t_se2'), pg_temp.d(10)), 'change_quantity: after the end');

SELECT * FROM finish();
ROLLBACK;
