-- Entitlements over random histories: after every lifecycle change (subscribe, plan changes
-- now and at period end, quantity, add-ons, pauses, resumes, cancellations, payment states,
-- the past_due policy, plan limits) with random dates from 10 days back to 20 days ahead, the
-- maintained account_entitlements equal the reference computation from the subscriptions
-- (entitlements_at, via status_on) on every day of the next 60, has_access and
-- entitlement_limit answer as the reference does today, and each account got exactly one
-- entitlements.changed event when what it holds today changed, and none when it did not.
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(6);
\ir 300_fixture.psql

INSERT INTO features (code, name, unit, scales_with_quantity) VALUES
    ('storage', 'Storage', 'GB', true), ('sso', 'Single sign-on', NULL, false), ('support', 'Support', NULL, false);
SELECT set_plan_feature('t_basic', 'storage', 10), set_plan_feature('t_pro', 'storage', 100), set_plan_feature('t_pro', 'sso'),
       set_plan_feature('t_trial', 'storage', 5), set_plan_feature('t_storage', 'storage', 50),
       set_plan_feature('t_support', 'support'), set_plan_feature('t_legacy', 'storage');

CREATE FUNCTION pg_temp.ref(acc bigint, d date) RETURNS jsonb LANGUAGE sql STABLE
RETURN (SELECT coalesce(jsonb_object_agg(r.feature, r.quantity_limit), '{}') FROM subbilling_internal.entitlements_at(acc, d) r);
CREATE FUNCTION pg_temp.held(acc bigint, d date) RETURNS jsonb LANGUAGE sql STABLE
RETURN (SELECT coalesce(jsonb_object_agg(e.feature, e.quantity_limit), '{}') FROM subbilling.account_entitlements e
         WHERE e.account_id = acc AND e.valid_from <= d AND (e.valid_until IS NULL OR e.valid_until > d));
CREATE FUNCTION pg_temp.today_all() RETURNS jsonb LANGUAGE sql STABLE
RETURN (SELECT jsonb_object_agg(a.id, pg_temp.ref(a.id, current_date)) FROM subbilling.accounts a WHERE a.external_id LIKE 'r_%');
CREATE FUNCTION pg_temp.events_all() RETURNS jsonb LANGUAGE sql STABLE
RETURN (SELECT jsonb_object_agg(a.id, (SELECT count(*) FROM subbilling.events e
                                        WHERE e.account_id = a.id AND e.type = 'entitlements.changed'))
          FROM subbilling.accounts a WHERE a.external_id LIKE 'r_%');

INSERT INTO accounts (external_id, name, country, currency)
SELECT 'r_' || k, 'Random ' || k, 'SE', 'SEK' FROM generate_series(1, 12) k;

CREATE TEMP TABLE log (step int, op text, ok boolean, bad_events text);
SELECT setseed(0.17);
DO $$
DECLARE
    accs    bigint[] := (SELECT array_agg(id ORDER BY id) FROM subbilling.accounts WHERE external_id LIKE 'r_%');
    acc     bigint;
    sub     bigint;
    op      text;
    d       date;
    before  jsonb;
    after   jsonb;
    ev0     jsonb;
    ev1     jsonb;
    bad     text;
    done    boolean;
    k       int;
BEGIN
    FOR k IN 1 .. 300 LOOP
        acc := accs[1 + floor(random() * array_length(accs, 1))::int];
        SELECT max(s.id) INTO sub FROM subbilling.subscriptions s
         WHERE s.account_id = acc AND s.status <> 'canceled' AND (random() < 0.8);
        d := current_date + (floor(random() * 31)::int - 10);
        op := (ARRAY['subscribe', 'subscribe', 'change_plan', 'change_plan_eop', 'quantity', 'add_storage', 'add_support',
                     'remove_storage', 'remove_support', 'pause', 'pause_until', 'resume', 'cancel_eop', 'cancel',
                     'past_due', 'suspend', 'lift', 'policy', 'limit'])[1 + floor(random() * 19)::int];
        before := pg_temp.today_all();
        ev0 := pg_temp.events_all();
        done := true;
        BEGIN
            CASE op
            WHEN 'subscribe' THEN PERFORM subbilling.subscribe(acc, (ARRAY['t_basic', 't_pro', 't_trial', 't_legacy'])[1 + floor(random() * 4)::int],
                                                               1 + floor(random() * 3)::int, d);
            WHEN 'change_plan' THEN PERFORM subbilling.change_plan(sub, (ARRAY['t_basic', 't_pro', 't_legacy'])[1 + floor(random() * 3)::int], greatest(d, current_date));
            WHEN 'change_plan_eop' THEN PERFORM subbilling.change_plan(sub, (ARRAY['t_basic', 't_pro', 't_legacy'])[1 + floor(random() * 3)::int], greatest(d, current_date), 'end_of_period');
            WHEN 'quantity' THEN PERFORM subbilling.change_quantity(sub, 1 + floor(random() * 4)::int, greatest(d, current_date));
            WHEN 'add_storage' THEN PERFORM subbilling.add_addon(sub, 't_storage', 1 + floor(random() * 3)::int, greatest(d, current_date));
            WHEN 'add_support' THEN PERFORM subbilling.add_addon(sub, 't_support', 1, greatest(d, current_date));
            WHEN 'remove_storage' THEN PERFORM subbilling.remove_addon(sub, 't_storage', greatest(d, current_date));
            WHEN 'remove_support' THEN PERFORM subbilling.remove_addon(sub, 't_support', greatest(d, current_date));
            WHEN 'pause' THEN PERFORM subbilling.pause(sub, greatest(d, current_date));
            WHEN 'pause_until' THEN PERFORM subbilling.pause(sub, greatest(d, current_date), greatest(d, current_date) + 1 + floor(random() * 6)::int);
            WHEN 'resume' THEN PERFORM subbilling.resume(sub, greatest(d, current_date + 1));
            WHEN 'cancel_eop' THEN PERFORM subbilling.cancel(sub);
            WHEN 'cancel' THEN PERFORM subbilling.cancel(sub, greatest(d, current_date));
            WHEN 'past_due' THEN PERFORM subbilling.set_subscription_status(sub, 'past_due');
            WHEN 'suspend' THEN PERFORM subbilling.set_subscription_status(sub, 'suspended');
            WHEN 'lift' THEN PERFORM subbilling.set_subscription_status(sub, 'active');
            WHEN 'policy' THEN PERFORM subbilling.set_entitlement_policy('past_due',
                                   NOT (SELECT grants_access FROM subbilling.entitlement_policy WHERE status = 'past_due'));
            WHEN 'limit' THEN PERFORM subbilling.set_plan_feature((ARRAY['t_basic', 't_pro', 't_storage'])[1 + floor(random() * 3)::int],
                                                                  'storage', (ARRAY[10, 20, 50, 100])[1 + floor(random() * 4)::int]);
            END CASE;
        EXCEPTION WHEN OTHERS THEN
            done := false;     -- refused (wrong state or date): rolled back, nothing to compare
        END;
        after := pg_temp.today_all();
        ev1 := pg_temp.events_all();
        SELECT string_agg(format('account %s: %s events for %s -> %s', b.key, (ev1 ->> b.key)::int - (ev0 ->> b.key)::int,
                                 b.value, after -> b.key), '; ')
          INTO bad
          FROM jsonb_each(before) b
         WHERE (ev1 ->> b.key)::int - (ev0 ->> b.key)::int <> (b.value <> after -> b.key)::int;
        INSERT INTO log VALUES (k, op, done, bad);
    END LOOP;
END
$$;

SELECT cmp_ok((SELECT count(*) FROM log WHERE ok), '>=', 80::bigint, 'at least 80 of the random changes were made');
SELECT cmp_ok((SELECT count(DISTINCT op) FROM log WHERE ok), '>=', 15::bigint, 'of at least 15 kinds');
SELECT is_empty($$SELECT step, op, bad_events FROM log WHERE bad_events IS NOT NULL$$,
                'one entitlements.changed event for each change of what an account holds today, none otherwise');
SELECT is_empty($$
    SELECT a.id, x.g FROM accounts a, generate_series(0, 60) k, LATERAL (SELECT current_date + k AS g) x
     WHERE a.external_id LIKE 'r_%' AND pg_temp.held(a.id, x.g) <> pg_temp.ref(a.id, x.g)
$$, 'account_entitlements equal the reference computation on every day of the next 60');
SELECT is_empty($$
    SELECT a.id, f.code FROM accounts a, features f
     WHERE a.external_id LIKE 'r_%'
       AND (has_access(a.id, f.code) <> (pg_temp.ref(a.id, current_date) ? f.code)
            OR entitlement_limit(a.id, f.code) <> coalesce((pg_temp.ref(a.id, current_date) ->> f.code)::numeric,
                                                           CASE WHEN pg_temp.ref(a.id, current_date) ? f.code THEN 'Infinity'::numeric ELSE 0::numeric END))
$$, 'has_access and entitlement_limit answer as the reference does today');
SELECT is_empty($$
    SELECT x.account_id FROM entitlement_accounts x JOIN accounts a ON a.id = x.account_id
     WHERE a.external_id LIKE 'r_%' AND x.announced <> pg_temp.ref(x.account_id, current_date)
$$, 'what was last announced is what each account holds today');

SELECT * FROM finish();
ROLLBACK;
