-- Entitlements: features, plan_features, the access policy; access granted and withdrawn at the
-- right dates for every lifecycle change; limits with quantities; event entitlements.changed
-- exactly once per real change (at once, or by advance_subscriptions when a scheduled change
-- takes effect) and never otherwise; bad catalog input refused; privileges.
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(160);
\ir 300_fixture.psql

-- what the maintained table says an account holds on a date, and the reference computation
CREATE FUNCTION pg_temp.held(acc bigint, d date) RETURNS jsonb LANGUAGE sql STABLE
RETURN (SELECT coalesce(jsonb_object_agg(e.feature, e.quantity_limit), '{}') FROM subbilling.account_entitlements e
         WHERE e.account_id = acc AND e.valid_from <= d AND (e.valid_until IS NULL OR e.valid_until > d));
CREATE FUNCTION pg_temp.ref(acc bigint, d date) RETURNS jsonb LANGUAGE sql STABLE
RETURN (SELECT coalesce(jsonb_object_agg(r.feature, r.quantity_limit), '{}')
          FROM subbilling_internal.entitlements_at(acc, d) r);
-- entitlements.changed events of an account after an event id
CREATE FUNCTION pg_temp.ev(acc bigint, after bigint) RETURNS SETOF jsonb LANGUAGE sql STABLE
AS $$ SELECT payload FROM subbilling.events WHERE account_id = acc AND type = 'entitlements.changed' AND id > after ORDER BY id $$;
CREATE FUNCTION pg_temp.nev(acc bigint, after bigint) RETURNS bigint LANGUAGE sql STABLE
RETURN (SELECT count(*) FROM pg_temp.ev(acc, after));
CREATE FUNCTION pg_temp.lastev(acc bigint) RETURNS jsonb LANGUAGE sql STABLE
RETURN (SELECT payload FROM subbilling.events WHERE account_id = acc AND type = 'entitlements.changed' ORDER BY id DESC LIMIT 1);
CREATE FUNCTION pg_temp.status(sub bigint) RETURNS text
    LANGUAGE sql STABLE RETURN (SELECT status FROM subbilling.subscriptions WHERE id = sub);
CREATE FUNCTION pg_temp.newacct(ext text) RETURNS bigint LANGUAGE sql VOLATILE
AS $$ INSERT INTO subbilling.accounts (external_id, name, country, currency) VALUES (ext, ext, 'SE', 'SEK') RETURNING id $$;

-- ---------------------------------------------------------------- catalog
SELECT has_table('subbilling', 'features', 'table features');
SELECT has_table('subbilling', 'plan_features', 'table plan_features');
SELECT has_view('subbilling', 'entitlements', 'view entitlements');
SELECT has_function('subbilling', 'has_access', ARRAY['bigint', 'text'], 'has_access(bigint, text)');
SELECT has_function('subbilling', 'entitlement_limit', ARRAY['bigint', 'text'], 'entitlement_limit(bigint, text)');
SELECT columns_are('subbilling', 'features', ARRAY['code', 'name', 'unit', 'scales_with_quantity', 'description', 'created_at'], 'features columns');
SELECT columns_are('subbilling', 'plan_features', ARRAY['plan', 'feature', 'quantity_limit', 'created_at'], 'plan_features columns');
SELECT results_eq($$SELECT status, grants_access FROM entitlement_policy ORDER BY status$$,
    $$VALUES ('active', true), ('canceled', false), ('past_due', true), ('paused', false), ('suspended', false), ('trialing', true)$$,
    'the shipped access policy');

INSERT INTO features (code, name, unit, scales_with_quantity) VALUES
    ('storage', 'Storage', 'GB', true), ('sso', 'Single sign-on', NULL, false),
    ('support', 'Priority support', NULL, false), ('club', 'Coffee club', NULL, false);
SELECT is(set_plan_feature('t_basic', 'storage', 10), 0, 'set_plan_feature: no holders yet');
SELECT set_plan_feature('t_pro', 'storage', 100), set_plan_feature('t_pro', 'sso'),
       set_plan_feature('t_trial', 'storage', 5), set_plan_feature('t_storage', 'storage', 50),
       set_plan_feature('t_support', 'support'), set_plan_feature('t_legacy', 'storage'),
       set_plan_feature('t_monthly', 'club');
SELECT is((SELECT quantity_limit FROM plan_features WHERE plan = 't_legacy' AND feature = 'storage'), NULL, 'NULL limit = unlimited');

-- bad input: documented SQLSTATEs, nothing written
SELECT throws_ok($$SELECT set_plan_feature('nope', 'storage', 1)$$, '42704', 'unknown plan code "nope"', 'set_plan_feature: unknown plan');
SELECT throws_ok($$SELECT set_plan_feature('t_basic', 'nope', 1)$$, '42704', 'unknown feature code "nope"', 'set_plan_feature: unknown feature');
SELECT throws_ok($$SELECT set_plan_feature('t_basic', 'storage', 0)$$, '22023', NULL, 'set_plan_feature: limit 0');
SELECT throws_ok($$SELECT set_plan_feature('t_basic', 'storage', -5)$$, '22023', NULL, 'set_plan_feature: negative limit');
SELECT throws_ok($$SELECT set_plan_feature('t_basic', 'storage', 'NaN')$$, '22023', NULL, 'set_plan_feature: NaN');
SELECT throws_ok($$SELECT set_plan_feature('t_basic', 'storage', 'Infinity')$$, '22023', NULL, 'set_plan_feature: Infinity (NULL is unlimited)');
SELECT is((SELECT quantity_limit FROM plan_features WHERE plan = 't_basic' AND feature = 'storage'), 10::numeric, 'refused calls changed nothing');
SELECT throws_ok($$SELECT remove_plan_feature('t_basic', 'sso')$$, '42704', 'plan "t_basic" does not grant feature "sso"', 'remove_plan_feature: not granted');
SELECT throws_ok($$INSERT INTO plan_features (plan, feature, quantity_limit) VALUES ('t_basic', 'sso', 0)$$, '23514', NULL, 'plan_features: limit must be positive');
SELECT throws_ok($$INSERT INTO plan_features (plan, feature) VALUES ('nope', 'sso')$$, '23503', NULL, 'plan_features: plan must exist');
SELECT throws_ok($$UPDATE features SET scales_with_quantity = false WHERE code = 'storage'$$, '55000', NULL, 'a granted feature keeps scales_with_quantity');
SELECT lives_ok($$UPDATE features SET name = 'Cloud storage', unit = 'GB' WHERE code = 'storage'$$, 'name and unit stay editable');
SELECT throws_ok($$SELECT set_entitlement_policy('paused', true)$$, '22023', 'only the access of status past_due is configurable', 'only past_due is configurable');
SELECT throws_ok($$SELECT set_entitlement_policy('past_due', NULL)$$, '22023', NULL, 'set_entitlement_policy: NULL');
SELECT throws_ok($$UPDATE entitlement_policy SET grants_access = false WHERE status = 'active'$$, '55000', NULL, 'the policy of active is fixed');
SELECT throws_ok($$DELETE FROM entitlement_policy WHERE status = 'paused'$$, '55000', NULL, 'policy rows are not deleted');
SELECT is(set_entitlement_policy('past_due', true), 0, 'set_entitlement_policy to what it is: nothing to do');

-- ---------------------------------------------------------------- subscribe
SELECT pg_temp.newacct('e_a') AS a, pg_temp.last_event_id() AS e0 \gset
SELECT subscribe(:a, 't_basic', 2, pg_temp.d(-5)) AS sa \gset
SELECT ok(has_access(:a, 'storage'), 'subscribe: access to storage');
SELECT is(entitlement_limit(:a, 'storage'), 20::numeric, 'subscribe: limit 10 per unit x quantity 2');
SELECT ok(NOT has_access(:a, 'sso'), 'subscribe: no sso on basic');
SELECT is(entitlement_limit(:a, 'sso'), 0::numeric, 'entitlement_limit of a feature not held: 0');
SELECT is(entitlement_limit(:a, 'nope'), 0::numeric, 'entitlement_limit of an unknown feature: 0');
SELECT ok(NOT has_access(-1, 'storage'), 'has_access of an unknown account: false');
SELECT is(has_access(NULL, 'storage'), false, 'has_access(NULL, ...): false');
SELECT is(pg_temp.nev(:a, :e0), 1::bigint, 'subscribe: one entitlements.changed event');
SELECT is(pg_temp.lastev(:a), jsonb_build_object('effective', current_date, 'added', '{"storage": 20}'::jsonb, 'removed', '{}'::jsonb,
                                                  'changed', '{}'::jsonb, 'features', '{"storage": 20}'::jsonb), 'subscribe: the payload');
SELECT is((SELECT subscription_id FROM events WHERE account_id = :a AND type = 'entitlements.changed'), NULL, 'the event is about the account');
SELECT results_eq($$SELECT feature_code, feature_name, unit, effective_limit, valid_until FROM entitlements WHERE account_id = $$ || :a,
    $$VALUES ('storage', 'Cloud storage', 'GB', 20::numeric, NULL::date)$$, 'view entitlements');
SELECT is(refresh_entitlements(:a), 0, 'refresh_entitlements: nothing changed, no event');
SELECT is(pg_temp.nev(:a, :e0), 1::bigint, 'still one event');

-- future-dated subscription: no access before its start, announced by the worker on the day
SELECT pg_temp.newacct('e_b') AS b, pg_temp.last_event_id() AS e0 \gset
SELECT subscribe(:b, 't_pro', 1, pg_temp.d(5)) AS sb \gset
SELECT ok(NOT has_access(:b, 'storage'), 'subscription starting in 5 days: no access today');
SELECT is(pg_temp.held(:b, pg_temp.d(4)), '{}'::jsonb, 'nothing held the day before the start');
SELECT is(pg_temp.held(:b, pg_temp.d(5)), '{"sso": null, "storage": 100}'::jsonb, 'held from the start: storage 100, sso unlimited');
SELECT is(pg_temp.nev(:b, :e0), 0::bigint, 'no event before the start');
SELECT lives_ok($$SELECT advance_subscriptions(pg_temp.d(4))$$, 'worker the day before');
SELECT is(pg_temp.nev(:b, :e0), 0::bigint, 'still no event the day before the start');
SELECT lives_ok($$SELECT advance_subscriptions(pg_temp.d(6))$$, 'worker a day after the start');
SELECT is(pg_temp.nev(:b, :e0), 1::bigint, 'the worker announced it once');
SELECT is(pg_temp.lastev(:b) - 'features', jsonb_build_object('effective', pg_temp.d(5), 'added', '{"sso": null, "storage": 100}'::jsonb,
                                                              'removed', '{}'::jsonb, 'changed', '{}'::jsonb), 'effective on the start date');
SELECT lives_ok($$SELECT advance_subscriptions(pg_temp.d(7))$$, 'worker again');
SELECT is(pg_temp.nev(:b, :e0), 1::bigint, 'no second announcement');

-- ---------------------------------------------------------------- trial end
SELECT pg_temp.newacct('e_t') AS t, pg_temp.last_event_id() AS e0 \gset
SELECT subscribe(:t, 't_trial') AS st \gset
SELECT is(pg_temp.status(:st), 'trialing', 'trial: trialing');
SELECT ok(has_access(:t, 'storage'), 'trialing grants access');
SELECT is(pg_temp.held(:t, pg_temp.d(14)), '{"storage": 5}'::jsonb, 'access goes on after the trial ends');
SELECT lives_ok($$SELECT advance_subscriptions(pg_temp.d(15))$$, 'worker after the trial end');
SELECT is(pg_temp.status(:st), 'active', 'trial ended: active');
SELECT is(pg_temp.nev(:t, :e0), 1::bigint, 'trial end: no event (nothing changed)');

-- ---------------------------------------------------------------- plan change up (now) and down (end of period)
SELECT pg_temp.last_event_id() AS e0 \gset
SELECT change_plan(:sa, 't_pro');
SELECT ok(has_access(:a, 'sso'), 'upgrade to pro: sso now');
SELECT is(entitlement_limit(:a, 'storage'), 200::numeric, 'upgrade to pro: storage 100 x 2');
SELECT is(entitlement_limit(:a, 'sso'), 'Infinity'::numeric, 'unlimited: Infinity');
SELECT is(pg_temp.nev(:a, :e0), 1::bigint, 'upgrade: exactly one event');
SELECT is(pg_temp.lastev(:a) - 'features', jsonb_build_object('effective', current_date, 'added', '{"sso": null}'::jsonb, 'removed', '{}'::jsonb,
                                                              'changed', '{"storage": {"from": 20, "to": 200}}'::jsonb), 'upgrade: added and changed');
SELECT pg_temp.last_event_id() AS e0 \gset
SELECT change_plan(:sa, 't_basic', current_date, 'end_of_period');
SELECT ok(has_access(:a, 'sso'), 'downgrade at period end: sso until then');
SELECT is(pg_temp.held(:a, pg_temp.d(4)), '{"sso": null, "storage": 200}'::jsonb, 'pro on the last day of the period');
SELECT is(pg_temp.held(:a, pg_temp.d(5)), '{"storage": 20}'::jsonb, 'basic from the period end');
SELECT is(pg_temp.nev(:a, :e0), 0::bigint, 'scheduled downgrade: no event yet');
SELECT lives_ok($$SELECT advance_subscriptions(pg_temp.d(5))$$, 'worker on the day of the downgrade');
SELECT is(pg_temp.nev(:a, :e0), 1::bigint, 'downgrade announced once');
SELECT is(pg_temp.lastev(:a) - 'features', jsonb_build_object('effective', pg_temp.d(5), 'added', '{}'::jsonb, 'removed', '{"sso": null}'::jsonb,
                                                              'changed', '{"storage": {"from": 200, "to": 20}}'::jsonb), 'downgrade: removed and changed');

-- ---------------------------------------------------------------- add-on, quantity
SELECT pg_temp.newacct('e_d') AS d, pg_temp.last_event_id() AS e0 \gset
SELECT subscribe(:d, 't_basic', 1, pg_temp.d(-2)) AS sd \gset
SELECT add_addon(:sd, 't_storage', 2);
SELECT is(entitlement_limit(:d, 'storage'), 110::numeric, 'add-on: 10 + 50 x 2 (limits add up)');
SELECT add_addon(:sd, 't_support', 1, pg_temp.d(3));
SELECT ok(NOT has_access(:d, 'support'), 'support add-on from d(3): not yet');
SELECT is(pg_temp.held(:d, pg_temp.d(3)), '{"storage": 110, "support": null}'::jsonb, 'support add-on from d(3)');
SELECT remove_addon(:sd, 't_storage', pg_temp.d(4));
SELECT is(pg_temp.held(:d, pg_temp.d(4)), '{"storage": 10, "support": null}'::jsonb, 'storage add-on removed from d(4)');
SELECT is(pg_temp.nev(:d, :e0), 2::bigint, 'subscribe and add-on now: two events; the scheduled ones not yet');
SELECT change_quantity(:sd, 3);
SELECT is(entitlement_limit(:d, 'storage'), 130::numeric, 'quantity 3: 10 x 3 + 100');
SELECT is(pg_temp.held(:d, pg_temp.d(4)), '{"storage": 30, "support": null}'::jsonb, 'the scheduled removal keeps the new quantity');
SELECT is(pg_temp.nev(:d, :e0), 3::bigint, 'quantity change: one event');
SELECT is(pg_temp.lastev(:d) -> 'changed', '{"storage": {"from": 110, "to": 130}}'::jsonb, 'quantity change: storage 110 -> 130');
SELECT lives_ok($$SELECT advance_subscriptions(pg_temp.d(3))$$, 'worker on d(3)');
SELECT is(pg_temp.nev(:d, :e0), 4::bigint, 'support add-on announced on d(3)');
SELECT is(pg_temp.lastev(:d) -> 'added', '{"support": null}'::jsonb, 'added support');
SELECT lives_ok($$SELECT advance_subscriptions(pg_temp.d(4))$$, 'worker on d(4)');
SELECT is(pg_temp.nev(:d, :e0), 5::bigint, 'add-on removal announced on d(4)');
SELECT is(pg_temp.lastev(:d) -> 'changed', '{"storage": {"from": 130, "to": 30}}'::jsonb, 'storage 130 -> 30');

-- a quantity change that changes no limit: no event
SELECT pg_temp.newacct('e_q') AS q, pg_temp.last_event_id() AS e0 \gset
SELECT subscribe(:q, 't_monthly', 1, pg_temp.d(-3)) AS sq \gset
SELECT ok(has_access(:q, 'club'), 'coffee club');
SELECT change_quantity(:sq, 4);
SELECT is(pg_temp.nev(:q, :e0), 1::bigint, 'quantity of a plan whose features do not scale: no event');
SELECT is(entitlement_limit(:q, 'club'), 'Infinity'::numeric, 'club unlimited');

-- ---------------------------------------------------------------- pause and resume
SELECT pg_temp.newacct('e_p') AS p \gset
SELECT subscribe(:p, 't_basic', 1, pg_temp.d(-10)) AS sp \gset
SELECT pg_temp.last_event_id() AS e0 \gset
SELECT pause(:sp, current_date);
SELECT ok(NOT has_access(:p, 'storage'), 'paused from today: no access');
SELECT is(pg_temp.nev(:p, :e0), 1::bigint, 'pause: one event');
SELECT is(pg_temp.lastev(:p) -> 'removed', '{"storage": 10}'::jsonb, 'pause: storage removed');
SELECT resume(:sp, pg_temp.d(3));
SELECT ok(NOT has_access(:p, 'storage'), 'resume on d(3): still no access today');
SELECT is(pg_temp.held(:p, pg_temp.d(3)), '{"storage": 10}'::jsonb, 'access again from d(3)');
SELECT is(pg_temp.nev(:p, :e0), 1::bigint, 'scheduled resume: no event yet');
SELECT lives_ok($$SELECT advance_subscriptions(pg_temp.d(3))$$, 'worker on d(3)');
SELECT is(pg_temp.nev(:p, :e0), 2::bigint, 'resume announced');
SELECT is(pg_temp.lastev(:p) -> 'added', '{"storage": 10}'::jsonb, 'resume: storage added');
-- a scheduled pause with an end
SELECT pg_temp.newacct('e_p2') AS p2 \gset
SELECT subscribe(:p2, 't_basic', 1, pg_temp.d(-10)) AS sp2 \gset
SELECT pause(:sp2, pg_temp.d(2), pg_temp.d(6));
SELECT ok(has_access(:p2, 'storage'), 'pause from d(2): access today');
SELECT is(pg_temp.held(:p2, pg_temp.d(1)), '{"storage": 10}'::jsonb, 'access the day before the pause');
SELECT is(pg_temp.held(:p2, pg_temp.d(2)), '{}'::jsonb, 'no access on the first day of the pause');
SELECT is(pg_temp.held(:p2, pg_temp.d(5)), '{}'::jsonb, 'no access on its last day');
SELECT is(pg_temp.held(:p2, pg_temp.d(6)), '{"storage": 10}'::jsonb, 'access again when it ends');

-- ---------------------------------------------------------------- payment stop and its lifting; past_due policy
SELECT pg_temp.newacct('e_s') AS s \gset
SELECT subscribe(:s, 't_pro', 1, pg_temp.d(-20)) AS ss \gset
SELECT pg_temp.last_event_id() AS e0 \gset
SELECT set_subscription_status(:ss, 'past_due');
SELECT ok(has_access(:s, 'sso'), 'past_due with the shipped policy: access kept');
SELECT is(pg_temp.nev(:s, :e0), 0::bigint, 'past_due (access kept): no event');
SELECT is(set_entitlement_policy('past_due', false), 1, 'policy past_due off: one account with a past_due subscription');
SELECT ok(NOT has_access(:s, 'sso'), 'past_due with the policy off: no access');
SELECT is(pg_temp.nev(:s, :e0), 1::bigint, 'policy change: one event');
SELECT is(pg_temp.lastev(:s) -> 'removed', '{"sso": null, "storage": 100}'::jsonb, 'everything removed');
SELECT set_subscription_status(:ss, 'suspended');
SELECT ok(NOT has_access(:s, 'sso'), 'suspended: no access');
SELECT is(pg_temp.nev(:s, :e0), 1::bigint, 'past_due (no access) -> suspended: no event');
SELECT set_subscription_status(:ss, 'active');
SELECT ok(has_access(:s, 'sso'), 'payment stop lifted: access');
SELECT is(pg_temp.nev(:s, :e0), 2::bigint, 'lifted: one event');
SELECT set_subscription_status(:ss, 'past_due');
SELECT ok(NOT has_access(:s, 'storage'), 'past_due again (policy off): no access');
SELECT is(pg_temp.nev(:s, :e0), 3::bigint, 'past_due with the policy off: one event');
SELECT is(set_entitlement_policy('past_due', true), 1, 'policy past_due back on');
SELECT ok(has_access(:s, 'storage'), 'past_due with the policy on: access');
SELECT is(pg_temp.nev(:s, :e0), 4::bigint, 'policy back on: one event');
SELECT set_subscription_status(:ss, 'suspended');
SELECT ok(NOT has_access(:s, 'storage'), 'suspended: no access (whatever past_due''s policy)');
SELECT is(pg_temp.nev(:s, :e0), 5::bigint, 'payment stop: one event');
SELECT set_subscription_status(:ss, 'active');
SELECT is(pg_temp.nev(:s, :e0), 6::bigint, 'lifted again: one event');

-- ---------------------------------------------------------------- cancel now, cancel at period end
SELECT pg_temp.newacct('e_c') AS c \gset
SELECT subscribe(:c, 't_basic', 1, pg_temp.d(-3)) AS sc \gset
SELECT pg_temp.last_event_id() AS e0 \gset
SELECT cancel(:sc);
SELECT ok(has_access(:c, 'storage'), 'cancel at period end: access until then');
SELECT results_eq($$SELECT effective_limit, valid_until FROM entitlements WHERE account_id = $$ || :c,
    $$VALUES (10::numeric, pg_temp.d(7))$$, 'the view shows when access ends');
SELECT is(pg_temp.held(:c, pg_temp.d(6)), '{"storage": 10}'::jsonb, 'the last service day: access');
SELECT is(pg_temp.held(:c, pg_temp.d(7)), '{}'::jsonb, 'after it: none');
SELECT is(pg_temp.nev(:c, :e0), 0::bigint, 'cancel at period end: no event yet');
SELECT lives_ok($$SELECT advance_subscriptions(pg_temp.d(7))$$, 'worker at the end');
SELECT is(pg_temp.nev(:c, :e0), 1::bigint, 'the end announced once');
SELECT is(pg_temp.lastev(:c) - 'features', jsonb_build_object('effective', pg_temp.d(7), 'added', '{}'::jsonb, 'removed', '{"storage": 10}'::jsonb,
                                                              'changed', '{}'::jsonb), 'removed on the end date');
SELECT pg_temp.newacct('e_c2') AS c2 \gset
SELECT subscribe(:c2, 't_basic', 1, pg_temp.d(-3)) AS sc2 \gset
SELECT pg_temp.last_event_id() AS e0 \gset
SELECT cancel(:sc2, current_date);
SELECT ok(NOT has_access(:c2, 'storage'), 'canceled today: no access');
SELECT is(pg_temp.nev(:c2, :e0), 1::bigint, 'cancel now: one event');

-- ---------------------------------------------------------------- several subscriptions; unlimited wins
SELECT pg_temp.newacct('e_m') AS m \gset
SELECT subscribe(:m, 't_basic', 3, pg_temp.d(-1)) AS sm1 \gset
SELECT subscribe(:m, 't_pro', 1, pg_temp.d(-1)) AS sm2 \gset
SELECT is(entitlement_limit(:m, 'storage'), 130::numeric, 'two subscriptions: 10 x 3 + 100');
SELECT subscribe(:m, 't_legacy', 1, pg_temp.d(-1)) AS sm3 \gset
SELECT is(entitlement_limit(:m, 'storage'), 'Infinity'::numeric, 'an unlimited grant wins');
SELECT pause(:sm2, current_date);
SELECT ok(NOT has_access(:m, 'sso'), 'the pro subscription paused: no sso');
SELECT ok(has_access(:m, 'storage'), 'the others still grant storage');

-- ---------------------------------------------------------------- catalog changes reach the holders
SELECT pg_temp.newacct('e_f') AS f \gset
SELECT subscribe(:f, 't_basic', 1, pg_temp.d(-1));
SELECT pg_temp.last_event_id() AS e0 \gset
SELECT cmp_ok(set_plan_feature('t_basic', 'storage', 15), '>=', 4, 'new basic limit: the holders are brought up to date');
SELECT is(entitlement_limit(:c, 'storage'), 15::numeric, 'holder with quantity 1: 15');
SELECT is(pg_temp.nev(:f, :e0), 1::bigint, 'one event for a holder');
SELECT is(pg_temp.lastev(:f) -> 'changed', '{"storage": {"from": 10, "to": 15}}'::jsonb, 'storage 10 -> 15');
SELECT is(pg_temp.nev(:b, :e0), 0::bigint, 'no event for an account without basic');
SELECT cmp_ok(remove_plan_feature('t_support', 'support'), '>=', 1, 'support no longer granted by the add-on');
SELECT ok(NOT has_access(:d, 'support'), 'support withdrawn');

-- ---------------------------------------------------------------- plans without features: nothing
SELECT pg_temp.newacct('e_n') AS n, pg_temp.last_event_id() AS e0 \gset
UPDATE plans SET active = true WHERE code = 't_retired';
SELECT subscribe(:n, 't_retired') AS sn \gset
SELECT pause(:sn, pg_temp.d(2));
SELECT cancel(:sn, pg_temp.d(20));
SELECT is(pg_temp.nev(:n, :e0), 0::bigint, 'a plan without features: no entitlements events');
SELECT ok(NOT EXISTS (SELECT 1 FROM entitlement_accounts WHERE account_id = :n), 'nor any entitlements state');

-- ---------------------------------------------------------------- the maintained rows agree with the reference
SELECT is_empty($$
    SELECT a.id, g::date FROM accounts a, generate_series(0, 40) k, LATERAL (SELECT current_date + k AS g) x
     WHERE pg_temp.held(a.id, g::date) <> pg_temp.ref(a.id, g::date)
$$, 'account_entitlements = the reference computation, every account, the next 40 days');

-- ---------------------------------------------------------------- privileges
SELECT ok(NOT has_function_privilege('public', 'subbilling.has_access(bigint, text)', 'EXECUTE'), 'has_access: not PUBLIC');
SELECT ok(NOT has_function_privilege('public', 'subbilling.entitlement_limit(bigint, text)', 'EXECUTE'), 'entitlement_limit: not PUBLIC');
SELECT ok(has_function_privilege('subbilling_access', 'subbilling.has_access(bigint, text)', 'EXECUTE')
          AND has_function_privilege('subbilling_operator', 'subbilling.has_access(bigint, text)', 'EXECUTE'), 'has_access: access and operator');
SELECT ok(NOT has_function_privilege('subbilling_reader', 'subbilling.has_access(bigint, text)', 'EXECUTE'), 'has_access: not the reader');
SELECT ok(NOT has_function_privilege('subbilling_access', 'subbilling.set_plan_feature(text, text, numeric)', 'EXECUTE'), 'access role: no catalog changes');
SELECT ok(has_function_privilege('subbilling_operator', 'subbilling.set_plan_feature(text, text, numeric)', 'EXECUTE')
          AND has_function_privilege('subbilling_operator', 'subbilling.set_entitlement_policy(text, boolean)', 'EXECUTE')
          AND has_function_privilege('subbilling_operator', 'subbilling.remove_plan_feature(text, text)', 'EXECUTE')
          AND has_function_privilege('subbilling_operator', 'subbilling.refresh_entitlements(bigint)', 'EXECUTE'), 'operator: catalog changes');
SELECT ok(NOT has_function_privilege('public', 'subbilling.set_plan_feature(text, text, numeric)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling.remove_plan_feature(text, text)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling.set_entitlement_policy(text, boolean)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling.refresh_entitlements(bigint)', 'EXECUTE'), 'the mutating functions: not PUBLIC');
SELECT ok(NOT has_table_privilege('subbilling_access', 'subbilling.subscriptions', 'SELECT')
          AND NOT has_table_privilege('subbilling_access', 'subbilling.accounts', 'SELECT')
          AND NOT has_table_privilege('subbilling_access', 'subbilling.events', 'SELECT'), 'access role: no customer tables');
SELECT ok(NOT has_table_privilege('subbilling_access', 'subbilling.plan_features', 'INSERT')
          AND NOT has_table_privilege('subbilling_operator', 'subbilling.plan_features', 'INSERT')
          AND NOT has_table_privilege('subbilling_operator', 'subbilling.account_entitlements', 'INSERT')
          AND NOT has_table_privilege('subbilling_operator', 'subbilling.entitlement_policy', 'UPDATE'), 'plan_features, the maintained rows and the policy change through functions only');
SELECT ok(NOT has_table_privilege('subbilling_reader', 'subbilling.entitlements', 'SELECT')
          AND NOT has_table_privilege('subbilling_reader', 'subbilling.account_entitlements', 'SELECT'), 'the reader: no entitlements (customer data)');
SELECT ok(has_table_privilege('subbilling_operator', 'subbilling.features', 'INSERT'), 'operator: features are plain catalog');
SET LOCAL ROLE subbilling_access;
SELECT ok(has_access(:a, 'storage'), 'as subbilling_access: has_access');
SELECT is(entitlement_limit(:a, 'storage'), 200::numeric, 'as subbilling_access: entitlement_limit (pro until d(5): 100 x 2)');
SELECT is((SELECT count(*) FROM entitlements WHERE account_id = :a), 2::bigint, 'as subbilling_access: the view');
SELECT throws_ok($$SELECT set_plan_feature('t_basic', 'storage', 1)$$, '42501', NULL, 'as subbilling_access: no set_plan_feature');
SELECT throws_ok($$SELECT count(*) FROM subbilling.subscriptions$$, '42501', NULL, 'as subbilling_access: no subscriptions');
RESET ROLE;
SET LOCAL ROLE subbilling_reader;
SELECT throws_ok(format('SELECT subbilling.has_access(%s, %L)', :a, 'storage'), '42501', NULL, 'as subbilling_reader: no has_access');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
