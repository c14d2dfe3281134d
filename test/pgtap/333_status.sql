-- Statuses: advance_subscriptions (dated transitions), every transition of
-- the 6x6 matrix (legal ones done, illegal ones refused), set_subscription_status.
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(80);
\ir 300_fixture.psql

SELECT has_function('subbilling', 'advance_subscriptions', ARRAY['date'], 'advance_subscriptions(as_of date)');
SELECT has_function('subbilling', 'subscription_status', ARRAY['bigint', 'date'], 'subscription_status(subscription_id, as_of)');
SELECT has_function('subbilling', 'set_subscription_status', ARRAY['bigint', 'text', 'text'], 'set_subscription_status(subscription_id, status, reason)');
SELECT results_eq($$SELECT from_status, to_status FROM subscription_transitions ORDER BY 1, 2$$,
                  $$VALUES ('active'::text, 'canceled'::text), ('active', 'past_due'), ('active', 'paused'), ('active', 'suspended'),
                           ('past_due', 'active'), ('past_due', 'canceled'), ('past_due', 'suspended'),
                           ('paused', 'active'), ('paused', 'canceled'), ('paused', 'trialing'),
                           ('suspended', 'active'), ('suspended', 'canceled'),
                           ('trialing', 'active'), ('trialing', 'canceled'), ('trialing', 'paused')$$,
                  'the transition table');

-- ---------------------------------------------------------------- advance_subscriptions
CREATE TEMP TABLE subs (name text PRIMARY KEY, id bigint);
INSERT INTO subs VALUES
    ('T', subscribe(pg_temp.acct('t_se'),  't_trial', 1, pg_temp.d(-10))),   -- trial until d(4)
    ('P', subscribe(pg_temp.acct('t_se2'), 't_basic', 1, pg_temp.d(-10))),
    ('Q', subscribe(pg_temp.acct('t_se3'), 't_trial')),                      -- trial until d(14)
    ('R', subscribe(pg_temp.acct('t_de'),  't_eur',   1, pg_temp.d(-10)));
CREATE FUNCTION pg_temp.s(n text) RETURNS bigint LANGUAGE sql STABLE RETURN (SELECT id FROM subs WHERE name = n);
SELECT isnt(pause(pg_temp.s('P'), pg_temp.d(2), pg_temp.d(6)), NULL, 'P pauses d(2) to d(6)');
SELECT isnt(pause(pg_temp.s('Q'), pg_temp.d(1), pg_temp.d(3)), NULL, 'Q pauses during its trial, d(1) to d(3)');
SELECT isnt(cancel(pg_temp.s('R'), pg_temp.d(7)), NULL, 'R ends on d(7)');
CREATE TEMP TABLE mark AS SELECT pg_temp.last_event_id() AS before;
SELECT results_eq($$SELECT name, status FROM subs JOIN subscriptions USING (id) ORDER BY name$$,
                  $$VALUES ('P'::text, 'active'::text), ('Q', 'trialing'), ('R', 'active'), ('T', 'trialing')$$, 'statuses today');

SELECT is(advance_subscriptions(), 0, 'advance today: nothing to do');
SELECT is(advance_subscriptions(pg_temp.d(1)), 1, 'd(1): Q''s pause starts');
SELECT is(advance_subscriptions(pg_temp.d(2)), 1, 'd(2): P''s pause starts');
SELECT is(advance_subscriptions(pg_temp.d(3)), 1, 'd(3): Q''s pause ends, back in its trial');
SELECT is(advance_subscriptions(pg_temp.d(4)), 1, 'd(4): T''s trial ends');
SELECT is(advance_subscriptions(pg_temp.d(6)), 1, 'd(6): P''s pause ends');
SELECT is(advance_subscriptions(pg_temp.d(7)), 1, 'd(7): R ends');
SELECT is(advance_subscriptions(pg_temp.d(7)), 0, 'd(7) again: nothing to do (idempotent)');
SELECT results_eq($$SELECT name, status FROM subs JOIN subscriptions USING (id) ORDER BY name$$,
                  $$VALUES ('P'::text, 'active'::text), ('Q', 'trialing'), ('R', 'canceled'), ('T', 'active')$$, 'statuses after d(7)');
SELECT results_eq($$
    SELECT s.name, e.type, e.payload->>'previous_status', e.payload->>'status', e.payload->>'reason', (e.payload->>'as_of')::date
      FROM events e JOIN subs s ON s.id = e.subscription_id
     WHERE e.id > (SELECT before FROM mark) ORDER BY e.id
$$, $$VALUES ('Q'::text, 'subscription.status_changed'::text, 'trialing'::text, 'paused'::text, 'pause_started'::text, pg_temp.d(1)),
             ('P', 'subscription.status_changed', 'active',   'paused',   'pause_started', pg_temp.d(2)),
             ('Q', 'subscription.status_changed', 'paused',   'trialing', 'pause_ended',   pg_temp.d(3)),
             ('T', 'subscription.status_changed', 'trialing', 'active',   'trial_ended',   pg_temp.d(4)),
             ('P', 'subscription.status_changed', 'paused',   'active',   'pause_ended',   pg_temp.d(6)),
             ('R', 'subscription.status_changed', 'active',   'canceled', 'canceled',      pg_temp.d(7))$$,
   'one subscription.status_changed event per dated transition');
SELECT throws_ok($$SELECT advance_subscriptions(NULL)$$, '22023', 'as_of must be a finite date', 'advance_subscriptions(NULL)');
SELECT throws_ok($$SELECT subscription_status(-1)$$, '42704', 'subscription -1 does not exist', 'subscription_status of an unknown subscription');
SELECT throws_ok($$SELECT subscription_status(pg_temp.s('P'), NULL)$$, '22023', 'as_of must be a finite date', 'subscription_status as of NULL');

-- ---------------------------------------------------------------- the whole transition matrix
-- A fresh subscription in each from-status, then transition() to each other
-- status (to canceled: cancel() today, since canceled needs its date):
-- legal -> done and stored; illegal -> 55000, nothing changed.
CREATE FUNCTION pg_temp.in_status(st text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    sid bigint;
BEGIN
    IF st = 'trialing' THEN
        RETURN subbilling.subscribe(pg_temp.acct('t_se'), 't_trial');
    END IF;
    sid := subbilling.subscribe(pg_temp.acct('t_se'), 't_basic', 1, pg_temp.d(-5));
    CASE st
    WHEN 'paused' THEN PERFORM subbilling.pause(sid, current_date);
    WHEN 'past_due' THEN PERFORM subbilling.set_subscription_status(sid, 'past_due');
    WHEN 'suspended' THEN PERFORM subbilling.set_subscription_status(sid, 'suspended');
    WHEN 'canceled' THEN PERFORM subbilling.cancel(sid, current_date);
    ELSE NULL;
    END CASE;
    RETURN sid;
END
$$;
CREATE FUNCTION pg_temp.try(f text, t text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    sid bigint := pg_temp.in_status(f);
    s   subbilling.subscriptions;
    got text;
BEGIN
    SELECT * INTO s FROM subbilling.subscriptions WHERE id = sid;
    IF s.status <> f THEN
        RETURN 'setup failed: ' || s.status;
    END IF;
    BEGIN
        IF t = 'canceled' THEN
            PERFORM subbilling.cancel(sid, current_date);  -- canceled needs its date: the public way
        ELSE
            PERFORM subbilling_internal.transition(s, t);
        END IF;
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        IF SQLERRM <> format('subscription %s cannot go from %s to %s', sid, f, t) THEN
            RETURN 'wrong message: ' || SQLERRM;
        END IF;
        SELECT status INTO got FROM subbilling.subscriptions WHERE id = sid;
        RETURN CASE WHEN got = f THEN 'refused' ELSE 'refused but changed' END;
    END;
    SELECT status INTO got FROM subbilling.subscriptions WHERE id = sid;
    RETURN CASE WHEN got = t THEN 'done' ELSE 'done but stored ' || got END;
END
$$;
SELECT is(pg_temp.try(f, t),
          CASE WHEN EXISTS (SELECT 1 FROM subscription_transitions x WHERE x.from_status = f AND x.to_status = t)
               THEN 'done' ELSE 'refused' END,
          f || ' -> ' || t)
  FROM unnest(ARRAY['trialing', 'active', 'paused', 'past_due', 'suspended', 'canceled']) f,
       unnest(ARRAY['trialing', 'active', 'paused', 'past_due', 'suspended', 'canceled']) t
 WHERE f <> t
 ORDER BY f, t;

-- ---------------------------------------------------------------- set_subscription_status (dunning, payments)
DELETE FROM subs;
INSERT INTO subs VALUES ('A', subscribe(pg_temp.acct('t_se2'), 't_basic', 1, pg_temp.d(-5)));
TRUNCATE mark;
INSERT INTO mark SELECT pg_temp.last_event_id();
SELECT is(set_subscription_status(pg_temp.s('A'), 'past_due', 'invoice 17 overdue'), 'past_due', 'active -> past_due');
SELECT is(set_subscription_status(pg_temp.s('A'), 'suspended', 'payment stop'), 'suspended', 'past_due -> suspended');
SELECT is(set_subscription_status(pg_temp.s('A'), 'active', 'paid in full'), 'active', 'suspended -> active');
SELECT is(set_subscription_status(pg_temp.s('A'), 'past_due'), 'past_due', 'active -> past_due again');
SELECT is(set_subscription_status(pg_temp.s('A'), 'active'), 'active', 'past_due -> active');
SELECT results_eq($$SELECT type, payload FROM events WHERE id > (SELECT before FROM mark) ORDER BY id$$,
                  $$VALUES ('subscription.past_due'::text, '{"previous_status": "active", "status": "past_due", "reason": "invoice 17 overdue"}'::jsonb),
                           ('subscription.suspended', '{"previous_status": "past_due", "status": "suspended", "reason": "payment stop"}'),
                           ('subscription.reactivated', '{"previous_status": "suspended", "status": "active", "reason": "paid in full"}'),
                           ('subscription.past_due', '{"previous_status": "active", "status": "past_due", "reason": null}'),
                           ('subscription.reactivated', '{"previous_status": "past_due", "status": "active", "reason": null}')$$,
                  'events subscription.past_due, .suspended, .reactivated');
SELECT isnt(cancel(pg_temp.s('A'), pg_temp.d(3)), NULL, 'A ends on d(3)');
SELECT is(set_subscription_status(pg_temp.s('A'), 'suspended'), 'suspended', 'a subscription that ends later can be suspended');
SELECT is(subscription_status(pg_temp.s('A'), pg_temp.d(3)), 'canceled', 'the end wins over the payment stop');
SELECT is(set_subscription_status(pg_temp.s('A'), 'active'), 'active', 'lifted');

INSERT INTO subs VALUES ('Tr', subscribe(pg_temp.acct('t_se2'), 't_trial')),
                        ('Pa', subscribe(pg_temp.acct('t_se2'), 't_basic', 1, pg_temp.d(-5))),
                        ('Ca', subscribe(pg_temp.acct('t_se2'), 't_basic', 1, pg_temp.d(-5)));
SELECT isnt(pause(pg_temp.s('Pa'), current_date), NULL, 'Pa paused');
SELECT isnt(cancel(pg_temp.s('Ca'), current_date), NULL, 'Ca canceled');
SELECT pg_temp.refused($$SELECT set_subscription_status(pg_temp.s('Tr'), 'past_due')$$, '55000',
                       format('subscription %s cannot go from trialing to past_due', pg_temp.s('Tr')), 'set_subscription_status: trialing -> past_due');
SELECT pg_temp.refused($$SELECT set_subscription_status(pg_temp.s('Pa'), 'suspended')$$, '55000',
                       format('subscription %s cannot go from paused to suspended', pg_temp.s('Pa')), 'set_subscription_status: paused -> suspended');
SELECT pg_temp.refused($$SELECT set_subscription_status(pg_temp.s('Ca'), 'past_due')$$, '55000',
                       format('subscription %s cannot go from canceled to past_due', pg_temp.s('Ca')), 'set_subscription_status: canceled -> past_due');
SELECT pg_temp.refused($$SELECT set_subscription_status(pg_temp.s('A'), 'active')$$, '55000',
                       format('subscription %s is active, not past_due or suspended', pg_temp.s('A')), 'set_subscription_status: active -> active');
SELECT isnt(set_subscription_status(pg_temp.s('A'), 'past_due'), NULL, 'A past_due');
SELECT pg_temp.refused($$SELECT set_subscription_status(pg_temp.s('A'), 'past_due')$$, '55000',
                       format('subscription %s is already past_due', pg_temp.s('A')), 'set_subscription_status: past_due twice');
SELECT pg_temp.refused($$SELECT set_subscription_status(pg_temp.s('A'), 'paused')$$, '22023',
                       'set_subscription_status sets past_due, suspended or active, not paused', 'set_subscription_status: paused');
SELECT pg_temp.refused($$SELECT set_subscription_status(pg_temp.s('A'), NULL)$$, '22023',
                       'set_subscription_status sets past_due, suspended or active, not NULL', 'set_subscription_status: NULL');
SELECT pg_temp.refused($$SELECT set_subscription_status(-1, 'past_due')$$, '42704', 'subscription -1 does not exist', 'set_subscription_status: unknown subscription');

SELECT * FROM finish();
ROLLBACK;
