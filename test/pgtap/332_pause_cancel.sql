-- pause, resume, cancel: pauses and cancellation as dated data, statuses,
-- events; the history guards on items and pauses; bad input refused.
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(113);
\ir 300_fixture.psql

INSERT INTO accounts (external_id, name, country, currency) VALUES
    ('t_x1', 'X1', 'SE', 'SEK'), ('t_x2', 'X2', 'SE', 'SEK'), ('t_x3', 'X3', 'SE', 'SEK'), ('t_x4', 'X4', 'SE', 'SEK');

SELECT has_function('subbilling', 'pause', ARRAY['bigint', 'date', 'date'], 'pause signature');
SELECT has_function('subbilling', 'resume', ARRAY['bigint', 'date'], 'resume signature');
SELECT has_function('subbilling', 'cancel', ARRAY['bigint', 'date', 'boolean'], 'cancel signature');

CREATE FUNCTION pg_temp.last_payload(sub bigint) RETURNS jsonb
    LANGUAGE sql STABLE RETURN (SELECT payload FROM subbilling.events WHERE subscription_id = sub ORDER BY id DESC LIMIT 1);
CREATE FUNCTION pg_temp.last_type(sub bigint) RETURNS text
    LANGUAGE sql STABLE RETURN (SELECT type FROM subbilling.events WHERE subscription_id = sub ORDER BY id DESC LIMIT 1);
CREATE FUNCTION pg_temp.pauses(sub bigint) RETURNS SETOF daterange
    LANGUAGE sql STABLE AS $$ SELECT during FROM subbilling.subscription_pauses WHERE subscription_id = sub ORDER BY lower(during) $$;
CREATE FUNCTION pg_temp.status(sub bigint) RETURNS text
    LANGUAGE sql STABLE RETURN (SELECT status FROM subbilling.subscriptions WHERE id = sub);

-- ---------------------------------------------------------------- pause now, resume early
SELECT isnt(subscribe(pg_temp.acct('t_se'), 't_basic', 1, pg_temp.d(-15)), NULL, 'A: t_basic from d(-15)');
CREATE TEMP TABLE ids AS SELECT pause(pg_temp.sub('t_se'), current_date, pg_temp.d(10)) AS pause_a;
SELECT is(pg_temp.status(pg_temp.sub('t_se')), 'paused', 'A paused from today: status paused');
SELECT results_eq($$SELECT * FROM pg_temp.pauses(pg_temp.sub('t_se'))$$, $$VALUES (daterange(current_date, pg_temp.d(10)))$$, 'pause [today, d(10))');
SELECT is(pg_temp.last_type(pg_temp.sub('t_se')), 'subscription.paused', 'event subscription.paused');
SELECT is(pg_temp.last_payload(pg_temp.sub('t_se')),
          jsonb_build_object('pause_id', (SELECT pause_a FROM ids), 'from', current_date, 'until', pg_temp.d(10),
                             'previous_status', 'active', 'status', 'paused'),
          'subscription.paused payload');
SELECT is(subscription_status(pg_temp.sub('t_se'), pg_temp.d(9)), 'paused', 'paused on d(9)');
SELECT is(subscription_status(pg_temp.sub('t_se'), pg_temp.d(10)), 'active', 'active again on d(10)');
SELECT is(resume(pg_temp.sub('t_se'), pg_temp.d(4)), (SELECT pause_a FROM ids), 'resume on d(4) returns the pause id');
SELECT results_eq($$SELECT * FROM pg_temp.pauses(pg_temp.sub('t_se'))$$, $$VALUES (daterange(current_date, pg_temp.d(4)))$$, 'the pause now ends on d(4)');
SELECT isnt((SELECT resumed_at FROM subscription_pauses WHERE id = (SELECT pause_a FROM ids)), NULL, 'resumed_at recorded');
SELECT is(pg_temp.last_payload(pg_temp.sub('t_se')),
          jsonb_build_object('pause_id', (SELECT pause_a FROM ids), 'paused_from', current_date, 'on', pg_temp.d(4),
                             'previous_status', 'paused', 'status', 'paused'),
          'subscription.resumed payload: still paused today, active from d(4)');
SELECT is(subscription_status(pg_temp.sub('t_se'), pg_temp.d(4)), 'active', 'active on d(4)');
SELECT is(resume(pg_temp.sub('t_se'), pg_temp.d(2)), (SELECT pause_a FROM ids), 'resume earlier still, on d(2)');
SELECT results_eq($$SELECT * FROM pg_temp.pauses(pg_temp.sub('t_se'))$$, $$VALUES (daterange(current_date, pg_temp.d(2)))$$, 'the pause ends on d(2)');

-- ---------------------------------------------------------------- scheduled pauses
SELECT isnt(subscribe(pg_temp.acct('t_se2'), 't_basic', 1, pg_temp.d(-3)), NULL, 'B: t_basic from d(-3)');
SELECT isnt(pause(pg_temp.sub('t_se2'), pg_temp.d(5)), NULL, 'B paused from d(5) until further notice');
SELECT is(pg_temp.status(pg_temp.sub('t_se2')), 'active', 'a scheduled pause leaves the status active today');
SELECT is(pg_temp.last_payload(pg_temp.sub('t_se2'))->'until', 'null'::jsonb, 'open-ended: until null');
SELECT is(subscription_status(pg_temp.sub('t_se2'), pg_temp.d(400)), 'paused', 'paused on d(400)');
SELECT isnt(resume(pg_temp.sub('t_se2'), pg_temp.d(20)), NULL, 'B resumes on d(20)');
SELECT isnt(pause(pg_temp.sub('t_se2'), pg_temp.d(30), pg_temp.d(40)), NULL, 'B pauses again d(30) to d(40)');
SELECT results_eq($$SELECT * FROM pg_temp.pauses(pg_temp.sub('t_se2'))$$,
                  $$VALUES (daterange(pg_temp.d(5), pg_temp.d(20))), (daterange(pg_temp.d(30), pg_temp.d(40)))$$, 'two pauses');
SELECT isnt(pause(pg_temp.sub('t_se2'), pg_temp.d(20), pg_temp.d(30)), NULL, 'a pause in the gap, touching both');
SELECT is(subscription_status(pg_temp.sub('t_se2'), pg_temp.d(25)), 'paused', 'paused on d(25)');

-- pausing a paused one, and other bad pauses
SELECT pg_temp.refused($$SELECT pause(pg_temp.sub('t_se'), pg_temp.d(1), pg_temp.d(3))$$, '55000',
                       format('subscription %s is already paused from %s until %s', pg_temp.sub('t_se'), current_date, pg_temp.d(2)),
                       'pause: already paused');
SELECT pg_temp.refused($$SELECT pause(pg_temp.sub('t_se2'), pg_temp.d(35))$$, '55000',
                       format('subscription %s is already paused from %s until %s', pg_temp.sub('t_se2'), pg_temp.d(30), pg_temp.d(40)),
                       'pause: an open pause over a scheduled one');
SELECT pg_temp.refused($$SELECT pause(pg_temp.sub('t_se2'), pg_temp.d(50), pg_temp.d(50))$$, '22023',
                       format('until_date %s is not after from_date %s', pg_temp.d(50), pg_temp.d(50)), 'pause: empty range');
SELECT pg_temp.refused($$SELECT pause(pg_temp.sub('t_se2'), pg_temp.d(50), pg_temp.d(45))$$, '22023',
                       format('until_date %s is not after from_date %s', pg_temp.d(45), pg_temp.d(50)), 'pause: dates out of order');
SELECT pg_temp.refused($$SELECT pause(pg_temp.sub('t_se2'), NULL)$$, '22023', 'from_date must be a finite date', 'pause: NULL from_date');
SELECT pg_temp.refused($$SELECT pause(pg_temp.sub('t_se2'), pg_temp.d(50), 'infinity')$$, '22023', 'until_date must be a finite date', 'pause: infinite until_date');
SELECT pg_temp.refused($$SELECT pause(pg_temp.sub('t_se2'), pg_temp.d(-4))$$, '22023',
                       format('from_date %s is before the subscription''s start on %s', pg_temp.d(-4), pg_temp.d(-3)), 'pause: before the start');
SELECT pg_temp.refused($$SELECT pause(-1, current_date)$$, '42704', 'subscription -1 does not exist', 'pause: unknown subscription');
SELECT isnt(set_subscription_status(pg_temp.sub('t_se2'), 'past_due', 'invoice overdue'), NULL, 'B is past_due');
SELECT pg_temp.refused($$SELECT pause(pg_temp.sub('t_se2'), pg_temp.d(60))$$, '55000',
                       format('subscription %s is past_due and cannot be paused', pg_temp.sub('t_se2')), 'pause: past_due');

SELECT pg_temp.refused($$SELECT resume(pg_temp.sub('t_se'), pg_temp.d(3))$$, '55000',
                       format('subscription %s is not paused on %s', pg_temp.sub('t_se'), pg_temp.d(3)), 'resume: not paused then');
SELECT pg_temp.refused($$SELECT resume(pg_temp.sub('t_se2'), pg_temp.d(30))$$, '22023',
                       format('on_date %s is the first day of the pause', pg_temp.d(30)), 'resume: on the first day');
SELECT pg_temp.refused($$SELECT resume(pg_temp.sub('t_se2'), NULL)$$, '22023', 'on_date must be a finite date', 'resume: NULL date');
SELECT pg_temp.refused($$SELECT resume(-1, current_date)$$, '42704', 'subscription -1 does not exist', 'resume: unknown subscription');

-- ---------------------------------------------------------------- cancel at the end of the period
-- C: 10-day periods from d(-15); the current one is [d(-5), d(5))
SELECT isnt(subscribe(pg_temp.acct('t_se3'), 't_basic', 1, pg_temp.d(-15)), NULL, 'C: t_basic from d(-15)');
SELECT isnt(add_addon(pg_temp.sub('t_se3'), 't_support', 1, pg_temp.d(-10)), NULL, 'C: support from d(-10)');
SELECT isnt(change_plan(pg_temp.sub('t_se3'), 't_pro', pg_temp.d(6), 'end_of_period'), NULL, 'C: t_pro scheduled for d(15)');
SELECT is(cancel(pg_temp.sub('t_se3')), pg_temp.sub('t_se3'), 'cancel C at the end of the period: returns its id');
SELECT results_eq($$SELECT status, cancel_at, canceled_at = now(), credit_unused FROM subscriptions WHERE id = pg_temp.sub('t_se3')$$,
                  $$VALUES ('active'::text, pg_temp.d(5), true, false)$$, 'C ends on d(5), active until then');
SELECT results_eq($$SELECT plan_code, validity, voided_at IS NOT NULL FROM subscription_history(pg_temp.sub('t_se3'))$$,
                  $$VALUES ('t_support'::text, daterange(pg_temp.d(-10), pg_temp.d(5)), false),
                           ('t_basic', daterange(pg_temp.d(-15), pg_temp.d(5)), false),
                           ('t_pro', daterange(pg_temp.d(15), NULL), true)$$,
                  'every item closes at d(5); the scheduled t_pro never takes effect');
SELECT is(pg_temp.last_type(pg_temp.sub('t_se3')), 'subscription.canceled', 'event subscription.canceled');
SELECT is(pg_temp.last_payload(pg_temp.sub('t_se3')),
          jsonb_build_object('effective', pg_temp.d(5), 'requested', NULL, 'at_period_end', true, 'credit_unused', false,
                             'previous_status', 'active', 'status', 'active',
                             'voided_item_ids', jsonb_build_array((SELECT max(id) FROM subscription_items WHERE subscription_id = pg_temp.sub('t_se3')))),
          'subscription.canceled payload');
SELECT is(subscription_status(pg_temp.sub('t_se3'), pg_temp.d(4)), 'active', 'active on d(4)');
SELECT is(subscription_status(pg_temp.sub('t_se3'), pg_temp.d(5)), 'canceled', 'canceled on d(5)');
SELECT pg_temp.refused($$SELECT cancel(pg_temp.sub('t_se3'), pg_temp.d(3))$$, '55000',
                       format('subscription %s is already canceled from %s', pg_temp.sub('t_se3'), pg_temp.d(5)), 'cancel: cancellation already scheduled');
SELECT pg_temp.refused($$SELECT pause(pg_temp.sub('t_se3'), pg_temp.d(5))$$, '55000',
                       format('subscription %s ends on %s', pg_temp.sub('t_se3'), pg_temp.d(5)), 'pause: from its end');
SELECT is(advance_subscriptions(pg_temp.d(5)), 2, 'advance to d(5): C canceled, A back from its pause (B is past_due: its pause does not start)');
SELECT is(pg_temp.status(pg_temp.sub('t_se3')), 'canceled', 'C is canceled');
SELECT pg_temp.refused($$SELECT cancel(pg_temp.sub('t_se3'))$$, '55000',
                       format('subscription %s is canceled', pg_temp.sub('t_se3')), 'cancel: a canceled subscription');
SELECT pg_temp.refused($$SELECT pause(pg_temp.sub('t_se3'), pg_temp.d(6))$$, '55000',
                       format('subscription %s is canceled', pg_temp.sub('t_se3')), 'pause: a canceled subscription');
SELECT pg_temp.refused($$SELECT resume(pg_temp.sub('t_se3'), pg_temp.d(6))$$, '55000',
                       format('subscription %s is canceled', pg_temp.sub('t_se3')), 'resume: a canceled subscription');

-- ---------------------------------------------------------------- cancel now, with credit
SELECT isnt(subscribe(pg_temp.acct('t_de'), 't_eur', 2, pg_temp.d(-4)), NULL, 'D: t_eur from d(-4)');
SELECT isnt(cancel(pg_temp.sub('t_de'), current_date, true), NULL, 'cancel D today, crediting the unused part');
SELECT results_eq($$SELECT status, cancel_at, credit_unused FROM subscriptions WHERE id = pg_temp.sub('t_de')$$,
                  $$VALUES ('canceled'::text, current_date, true)$$, 'D canceled at once');
SELECT results_eq($$SELECT validity FROM subscription_items WHERE subscription_id = pg_temp.sub('t_de')$$,
                  $$VALUES (daterange(pg_temp.d(-4), current_date))$$, 'its item ends today');
SELECT is(pg_temp.last_payload(pg_temp.sub('t_de')) - 'voided_item_ids',
          jsonb_build_object('effective', current_date, 'requested', current_date, 'at_period_end', false, 'credit_unused', true,
                             'previous_status', 'active', 'status', 'canceled'),
          'payload of an immediate cancellation');

-- during a trial: at the trial end
SELECT isnt(subscribe(pg_temp.acct('t_x1'), 't_trial'), NULL, 'E: trial until d(14)');
SELECT isnt(cancel(pg_temp.sub('t_x1')), NULL, 'cancel E');
SELECT is((SELECT cancel_at FROM subscriptions WHERE id = pg_temp.sub('t_x1')), pg_temp.d(14), 'a trial is canceled at its end');

-- before the start: nothing ever takes effect
SELECT isnt(subscribe(pg_temp.acct('t_x2'), 't_basic', 1, pg_temp.d(10)), NULL, 'F: starts on d(10)');
SELECT isnt(cancel(pg_temp.sub('t_x2')), NULL, 'cancel F before it starts');
SELECT results_eq($$SELECT cancel_at, (SELECT bool_and(voided_at IS NOT NULL) FROM subscription_items i WHERE i.subscription_id = s.id)
                      FROM subscriptions s WHERE id = pg_temp.sub('t_x2')$$,
                  $$VALUES (pg_temp.d(10), true)$$, 'F ends on its start date; its item is void');
SELECT is(subscription_status(pg_temp.sub('t_x2'), pg_temp.d(10)), 'canceled', 'F is canceled from d(10)');

-- backdated: items after the end are voided
SELECT isnt(subscribe(pg_temp.acct('t_x3'), 't_basic', 2, pg_temp.d(-30)), NULL, 'G: t_basic x2 from d(-30)');
SELECT isnt(change_quantity(pg_temp.sub('t_x3'), 3, pg_temp.d(-10)), NULL, 'G: x3 from d(-10)');
SELECT isnt(cancel(pg_temp.sub('t_x3'), pg_temp.d(-20)), NULL, 'cancel G backdated to d(-20)');
SELECT results_eq($$SELECT quantity, validity, voided_at IS NOT NULL FROM subscription_items WHERE subscription_id = pg_temp.sub('t_x3') ORDER BY id$$,
                  $$VALUES (2, daterange(pg_temp.d(-30), pg_temp.d(-20)), false), (3, daterange(pg_temp.d(-10), NULL), true)$$,
                  'G: the first item ends on d(-20), the later one is void');
SELECT is(pg_temp.status(pg_temp.sub('t_x3')), 'canceled', 'G is canceled');

SELECT isnt(subscribe(pg_temp.acct('t_x4'), 't_basic', 1, pg_temp.d(-2)), NULL, 'H: t_basic from d(-2)');
SELECT pg_temp.refused($$SELECT cancel(pg_temp.sub('t_x4'), pg_temp.d(-3))$$, '22023',
                       format('effective date %s is before the subscription''s start on %s', pg_temp.d(-3), pg_temp.d(-2)), 'cancel: before the start');
SELECT pg_temp.refused($$SELECT cancel(pg_temp.sub('t_x4'), 'infinity')$$, '22023', 'effective must be a finite date', 'cancel: infinite date');
SELECT pg_temp.refused($$SELECT cancel(-1)$$, '42704', 'subscription -1 does not exist', 'cancel: unknown subscription');

-- ---------------------------------------------------------------- history guards
SELECT throws_ok($$DELETE FROM subscription_items WHERE subscription_id = pg_temp.sub('t_x4')$$, '55000',
                 'subscription items are history and are never deleted', 'items are never deleted');
SELECT throws_ok($$UPDATE subscription_items SET quantity = 9 WHERE subscription_id = pg_temp.sub('t_x4')$$, '55000',
                 'subscription item history is never overwritten', 'an item''s quantity never changes');
SELECT throws_ok($$UPDATE subscription_items SET plan_id = pg_temp.plan('t_pro') WHERE subscription_id = pg_temp.sub('t_x4')$$, '55000',
                 'subscription item history is never overwritten', 'an item''s plan never changes');
SELECT throws_ok($$UPDATE subscription_items SET validity = daterange(pg_temp.d(-1), NULL) WHERE subscription_id = pg_temp.sub('t_x4')$$, '55000',
                 'subscription item history is never overwritten', 'an item''s start never moves');
SELECT throws_ok($$UPDATE subscription_items SET validity = daterange(pg_temp.d(-30), NULL) WHERE subscription_id = pg_temp.sub('t_x3') AND voided_at IS NULL$$, '55000',
                 format('the validity of subscription item %s can only end earlier',
                        (SELECT id FROM subscription_items WHERE subscription_id = pg_temp.sub('t_x3') AND voided_at IS NULL)),
                 'a closed item never reopens');
SELECT throws_ok($$UPDATE subscription_items SET voided_at = NULL WHERE subscription_id = pg_temp.sub('t_x3') AND voided_at IS NOT NULL$$, '55000',
                 format('subscription item %s is void and cannot change',
                        (SELECT id FROM subscription_items WHERE subscription_id = pg_temp.sub('t_x3') AND voided_at IS NOT NULL)),
                 'a void item stays void');
SELECT throws_ok($$INSERT INTO subscription_items (account_id, subscription_id, plan_id, kind, quantity, validity, reason)
                   VALUES (pg_temp.acct('t_x4'), pg_temp.sub('t_x4'), pg_temp.plan('t_pro'), 'base', 1, daterange(current_date, NULL), 'change_plan')$$,
                 '23P01', NULL, 'two base items cannot overlap (exclusion constraint)');
SELECT throws_ok($$INSERT INTO subscription_items (account_id, subscription_id, plan_id, kind, quantity, validity, reason)
                   VALUES (pg_temp.acct('t_x4'), pg_temp.sub('t_x4'), pg_temp.plan('t_eur'), 'base', 1, daterange(pg_temp.d(50), NULL), 'change_plan')$$,
                 '22000', format('plan %s does not fit subscription %s as an item of kind base', pg_temp.plan('t_eur'), pg_temp.sub('t_x4')),
                 'an item''s plan is in the subscription''s currency');
SELECT throws_ok($$INSERT INTO subscription_items (account_id, subscription_id, plan_id, kind, quantity, validity, reason)
                   VALUES (pg_temp.acct('t_x4'), pg_temp.sub('t_x4'), pg_temp.plan('t_support'), 'base', 1, daterange(pg_temp.d(50), NULL), 'change_plan')$$,
                 '22000', format('plan %s does not fit subscription %s as an item of kind base', pg_temp.plan('t_support'), pg_temp.sub('t_x4')),
                 'an item''s kind is its plan''s kind');
SELECT throws_ok($$INSERT INTO subscription_items (account_id, subscription_id, plan_id, kind, quantity, validity, reason)
                   VALUES (pg_temp.acct('t_x4'), pg_temp.sub('t_x4'), pg_temp.plan('t_support'), 'addon', 0, daterange(pg_temp.d(50), NULL), 'add_addon')$$,
                 '23514', 'new row for relation "subscription_items" violates check constraint "subscription_items_quantity_positive"',
                 'item quantities are positive');
SELECT throws_ok($$DELETE FROM subscription_pauses WHERE subscription_id = pg_temp.sub('t_se')$$, '55000',
                 'subscription pauses are history and are never deleted', 'pauses are never deleted');
SELECT throws_ok($$UPDATE subscription_pauses SET during = daterange(pg_temp.d(1), pg_temp.d(2)) WHERE subscription_id = pg_temp.sub('t_se')$$, '55000',
                 'subscription pause history is never overwritten', 'a pause''s start never moves');
SELECT throws_ok($$INSERT INTO subscription_pauses (account_id, subscription_id, during)
                   VALUES (pg_temp.acct('t_se'), pg_temp.sub('t_se'), daterange(pg_temp.d(1), NULL))$$,
                 '23P01', NULL, 'pauses cannot overlap (exclusion constraint)');

SELECT * FROM finish();
ROLLBACK;
