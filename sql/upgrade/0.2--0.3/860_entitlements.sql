-- Entitlements (docs/entitlements.md): the objects of sql/parts/470_entitlements.sql and
-- 495_entitlements_privileges.sql, all new in 0.3.  The lifecycle functions that now keep them
-- (transition, refresh_status, subscribe, advance_subscriptions) call the new helpers and are
-- re-created by 999_refresh.sql.

-- ============================================================================
-- Entitlements: which features each account may use, and how much of them.
--
-- features and plan_features are catalog (global reference tables): a base
-- plan or an add-on grants features, optionally with a limit, scaled by the
-- item's quantity where the feature says so.  entitlement_policy says which
-- subscription statuses grant access (past_due is the operator's choice).
--
-- What an account holds is kept, in the same transaction as every change,
-- in account_entitlements: per account and feature, the dated limit from
-- today on (a scheduled change, pause or cancellation is a later row), so
-- has_access() and entitlement_limit() are one index lookup.  The lifecycle
-- functions rebuild an account's rows (entitlements_sync) whenever they
-- change it; entitlements_at() is the reference computation from the
-- subscriptions.  Event entitlements.changed announces a new set of
-- features and limits on the day it takes effect: at once for a change that
-- takes effect today, by advance_subscriptions() (the worker) for a
-- scheduled one.  docs/entitlements.md
-- ============================================================================

-- ---------------------------------------------------------------- catalog

CREATE TABLE subbilling.features (
    code                 text PRIMARY KEY
                         CONSTRAINT features_code_format CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'),
    name                 text NOT NULL,
    unit                 text,
    scales_with_quantity boolean NOT NULL DEFAULT false,
    description          text,
    created_at           timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE subbilling.features IS 'what plans grant: a capability (sso) or a limited resource (storage in GB); scales_with_quantity: a plan''s limit is per unit of the item''s quantity (seats)';
COMMENT ON COLUMN subbilling.features.unit IS 'the unit of a limit (GB, books a month); NULL for a feature without a limit';
COMMENT ON COLUMN subbilling.features.scales_with_quantity IS 'the limit a plan grants is multiplied by the quantity of the item (per seat); fixed once a plan grants the feature';
SELECT pg_catalog.pg_extension_config_dump('subbilling.features', '');

-- scales_with_quantity changes the limits of every holder: fixed while a plan grants it
CREATE FUNCTION subbilling_internal.features_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.scales_with_quantity IS DISTINCT FROM OLD.scales_with_quantity
       AND EXISTS (SELECT 1 FROM subbilling.plan_features pf WHERE pf.feature = OLD.code) THEN
        RAISE EXCEPTION 'feature "%" is granted by plans and its scales_with_quantity cannot change', OLD.code
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Create a new feature; name, unit and description stay editable.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling_internal.features_guard() IS 'trigger: a feature that a plan grants keeps scales_with_quantity';
REVOKE ALL ON FUNCTION subbilling_internal.features_guard() FROM PUBLIC;

CREATE TRIGGER features_guard
    BEFORE UPDATE ON subbilling.features
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.features_guard();

CREATE TABLE subbilling.plan_features (
    plan            text NOT NULL REFERENCES subbilling.plans (code),
    feature         text NOT NULL REFERENCES subbilling.features (code),
    quantity_limit  numeric
                    CONSTRAINT plan_features_limit_range CHECK (quantity_limit > 0 AND quantity_limit < 'Infinity'),
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (plan, feature)
);
CREATE INDEX plan_features_feature_idx ON subbilling.plan_features (feature);
COMMENT ON TABLE subbilling.plan_features IS 'the features a base plan or add-on grants, with a limit (NULL: unlimited); changed with set_plan_feature() and remove_plan_feature(), which bring every holder up to date';
COMMENT ON COLUMN subbilling.plan_features.quantity_limit IS 'the limit the plan grants (times the item''s quantity when the feature scales with quantity); NULL = unlimited';
SELECT pg_catalog.pg_extension_config_dump('subbilling.plan_features', '');

-- ---------------------------------------------------------------- access policy

CREATE TABLE subbilling.entitlement_policy (
    status          text PRIMARY KEY
                    CONSTRAINT entitlement_policy_status_check
                    CHECK (status IN ('trialing', 'active', 'paused', 'past_due', 'suspended', 'canceled')),
    grants_access   boolean NOT NULL,
    description     text,
    origin          text NOT NULL DEFAULT 'user'
                    CONSTRAINT entitlement_policy_origin_check CHECK (origin IN ('shipped', 'user', 'edited'))
);
COMMENT ON TABLE subbilling.entitlement_policy IS 'which subscription statuses grant access to the features of their plans; only past_due is configurable (set_entitlement_policy)';
SELECT pg_catalog.pg_extension_config_dump('subbilling.entitlement_policy', 'WHERE origin <> ''shipped''');
COMMENT ON COLUMN subbilling.entitlement_policy.origin IS 'shipped: installed with the extension (not dumped); user: added by an operator; edited: shipped, then changed (dumped, restored over the shipped row)';
CREATE TRIGGER entitlement_policy_shipped_row BEFORE INSERT OR UPDATE ON subbilling.entitlement_policy
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.shipped_row();

INSERT INTO subbilling.entitlement_policy (status, grants_access, description, origin) VALUES
    ('trialing',  true,  'a trial gives the plan''s features', 'shipped'),
    ('active',    true,  'paid up (a cancellation at period end keeps access until its last service day)', 'shipped'),
    ('past_due',  true,  'an invoice is overdue and dunning has begun: configurable, access kept by default', 'shipped'),
    ('paused',    false, 'no access while paused (uppehåll)', 'shipped'),
    ('suspended', false, 'payment stop: no access until it is lifted', 'shipped'),
    ('canceled',  false, 'ended', 'shipped');

CREATE FUNCTION subbilling_internal.entitlement_policy_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.status <> OLD.status
       OR (NEW.grants_access <> OLD.grants_access AND OLD.status <> 'past_due') THEN
        RAISE EXCEPTION 'only the access of status past_due is configurable'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'trialing and active grant access; paused, suspended and canceled do not.',
                  HINT = 'Use set_entitlement_policy(''past_due'', true or false).';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
COMMENT ON FUNCTION subbilling_internal.entitlement_policy_guard() IS 'trigger: the access policy keeps its statuses, and only past_due''s access changes';
REVOKE ALL ON FUNCTION subbilling_internal.entitlement_policy_guard() FROM PUBLIC;

CREATE TRIGGER entitlement_policy_guard
    BEFORE UPDATE OR DELETE ON subbilling.entitlement_policy
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.entitlement_policy_guard();

-- ---------------------------------------------------------------- maintained state

CREATE TABLE subbilling.account_entitlements (
    account_id      bigint NOT NULL REFERENCES subbilling.accounts (id),
    feature         text NOT NULL REFERENCES subbilling.features (code),
    valid_from      date NOT NULL,
    valid_until     date,
    quantity_limit  numeric,
    PRIMARY KEY (account_id, feature, valid_from),
    CONSTRAINT account_entitlements_dates CHECK (valid_until > valid_from)
);
COMMENT ON TABLE subbilling.account_entitlements IS 'what each account holds from the day it was last brought up to date on: feature, limit (NULL = unlimited) over [valid_from, valid_until); kept by the lifecycle functions, read by has_access() and entitlement_limit()';
SELECT pg_catalog.pg_extension_config_dump('subbilling.account_entitlements', '');

CREATE TABLE subbilling.entitlement_accounts (
    account_id      bigint PRIMARY KEY REFERENCES subbilling.accounts (id),
    announced       jsonb NOT NULL DEFAULT '{}'
                    CONSTRAINT entitlement_accounts_announced_object CHECK (pg_catalog.jsonb_typeof(announced) = 'object'),
    announced_on    date,
    next_change     date,
    synced_at       timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX entitlement_accounts_next_change_idx ON subbilling.entitlement_accounts (next_change, account_id)
    WHERE next_change IS NOT NULL;
COMMENT ON TABLE subbilling.entitlement_accounts IS 'per account: the features and limits last announced (entitlements.changed), as of which date, and the next date its entitlements change';
SELECT pg_catalog.pg_extension_config_dump('subbilling.entitlement_accounts', '');

-- ---------------------------------------------------------------- computation

-- The reference: what an account holds on a date, from its subscriptions.
-- A subscription counts when its status on that date grants access (the
-- dunning states past_due and suspended as they are now); each item in
-- effect grants its plan's features.  Limits add up over items and
-- subscriptions (times the quantity where the feature scales); unlimited
-- (NULL) wins.
CREATE FUNCTION subbilling_internal.entitlements_at(account_id bigint, on_date date,
                                                    OUT feature text, OUT quantity_limit numeric)
    RETURNS SETOF record
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT pf.feature,
           CASE WHEN bool_or(pf.quantity_limit IS NULL) THEN NULL
                ELSE sum(pf.quantity_limit * CASE WHEN f.scales_with_quantity THEN i.quantity ELSE 1 END) END
      FROM subbilling.subscriptions s
      JOIN subbilling.entitlement_policy ep
        ON ep.status = subbilling_internal.status_on(s, entitlements_at.on_date) AND ep.grants_access
      JOIN subbilling.subscription_items i
        ON i.account_id = s.account_id AND i.subscription_id = s.id
       AND i.voided_at IS NULL AND i.validity @> entitlements_at.on_date
      JOIN subbilling.plans p ON p.id = i.plan_id
      JOIN subbilling.plan_features pf ON pf.plan = p.code
      JOIN subbilling.features f ON f.code = pf.feature
     WHERE s.account_id = entitlements_at.account_id
     GROUP BY pf.feature
$$;
COMMENT ON FUNCTION subbilling_internal.entitlements_at(bigint, date) IS 'internal: the features and limits (NULL = unlimited) an account holds on a date, computed from its subscriptions (the reference for account_entitlements)';
REVOKE ALL ON FUNCTION subbilling_internal.entitlements_at(bigint, date) FROM PUBLIC;

-- The dated entitlements of an account from from_date on: the holdings of
-- each stretch between two dates on which something changes (an item, a
-- pause, the start, the trial end, the end), merged per feature where the
-- limit stays the same.  The status of a subscription on a date is
-- status_on()'s, written out so that the plan of this query is cached
-- (entitlements_at() is the reference that calls status_on()).
CREATE FUNCTION subbilling_internal.entitlements_timeline(account_id bigint, from_date date)
    RETURNS TABLE (feature text, valid_from date, valid_until date, quantity_limit numeric)
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    acc     bigint := entitlements_timeline.account_id;
    since   date := entitlements_timeline.from_date;
BEGIN
    RETURN QUERY
    WITH dates AS (
        SELECT since AS d
        UNION
        SELECT x.d FROM subbilling.subscription_items i,
                        LATERAL (VALUES (lower(i.validity)), (upper(i.validity))) x (d)
         WHERE i.account_id = acc AND i.voided_at IS NULL AND x.d > since
        UNION
        SELECT x.d FROM subbilling.subscription_pauses z,
                        LATERAL (VALUES (lower(z.during)), (upper(z.during))) x (d)
         WHERE z.account_id = acc AND x.d > since
        UNION
        SELECT x.d FROM subbilling.subscriptions s,
                        LATERAL (VALUES (s.start_date), (s.trial_end), (s.cancel_at)) x (d)
         WHERE s.account_id = acc AND x.d > since
    ), stretches AS (
        SELECT dates.d, lead(dates.d) OVER (ORDER BY dates.d) AS next_d FROM dates
    ), held AS (
        SELECT st.d, st.next_d, pf.feature,
               CASE WHEN bool_or(pf.quantity_limit IS NULL) THEN NULL
                    ELSE sum(pf.quantity_limit * CASE WHEN f.scales_with_quantity THEN i.quantity ELSE 1 END)
               END AS quantity_limit
          FROM stretches st
          JOIN subbilling.subscriptions s
            ON s.account_id = acc AND s.start_date <= st.d AND (s.cancel_at IS NULL OR s.cancel_at > st.d)
          JOIN subbilling.entitlement_policy ep
            ON ep.grants_access
           AND ep.status = CASE WHEN s.status IN ('past_due', 'suspended') THEN s.status
                                WHEN EXISTS (SELECT 1 FROM subbilling.subscription_pauses z
                                              WHERE z.account_id = s.account_id AND z.subscription_id = s.id
                                                AND z.during @> st.d) THEN 'paused'
                                WHEN s.trial_end > st.d THEN 'trialing'
                                ELSE 'active' END
          JOIN subbilling.subscription_items i
            ON i.account_id = s.account_id AND i.subscription_id = s.id
           AND i.voided_at IS NULL AND i.validity @> st.d
          JOIN subbilling.plans p ON p.id = i.plan_id
          JOIN subbilling.plan_features pf ON pf.plan = p.code
          JOIN subbilling.features f ON f.code = pf.feature
         GROUP BY st.d, st.next_d, pf.feature
    ), marked AS (
        SELECT h.*,
               CASE WHEN lag(h.next_d) OVER w = h.d
                         AND lag(h.quantity_limit) OVER w IS NOT DISTINCT FROM h.quantity_limit
                    THEN 0 ELSE 1 END AS starts
          FROM held h
        WINDOW w AS (PARTITION BY h.feature ORDER BY h.d)
    ), runs AS (
        SELECT m.*, sum(m.starts) OVER (PARTITION BY m.feature ORDER BY m.d) AS run FROM marked m
    )
    SELECT r.feature, min(r.d),
           CASE WHEN bool_or(r.next_d IS NULL) THEN NULL ELSE max(r.next_d) END,
           (array_agg(r.quantity_limit))[1]
      FROM runs r
     GROUP BY r.feature, r.run;
END
$$;
COMMENT ON FUNCTION subbilling_internal.entitlements_timeline(bigint, date) IS 'internal: an account''s features and limits from a date on, as dated rows (feature, valid_from, valid_until, limit)';
REVOKE ALL ON FUNCTION subbilling_internal.entitlements_timeline(bigint, date) FROM PUBLIC;

-- Announces what an account holds on as_of if it differs from what was
-- last announced (event entitlements.changed), and notes the next date on
-- which its entitlements change.  An announcement for an earlier date than
-- the last one is not made (the worker may have run ahead, as of a later
-- date).  Returns whether an event was written.
CREATE FUNCTION subbilling_internal.entitlements_announce(account_id bigint, as_of date) RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    ea      subbilling.entitlement_accounts;
    now_    jsonb;
    added   jsonb;
    removed jsonb;
    changed jsonb;
    nxt     date;
    eff     date;
BEGIN
    SELECT * INTO ea FROM subbilling.entitlement_accounts x
     WHERE x.account_id = entitlements_announce.account_id FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO subbilling.entitlement_accounts AS x (account_id) VALUES (entitlements_announce.account_id)
        ON CONFLICT DO NOTHING;
        SELECT * INTO ea FROM subbilling.entitlement_accounts x
         WHERE x.account_id = entitlements_announce.account_id FOR UPDATE;
    END IF;
    SELECT min(x.d) INTO nxt
      FROM subbilling.account_entitlements e,
           LATERAL (VALUES (e.valid_from), (e.valid_until)) x (d)
     WHERE e.account_id = ea.account_id AND x.d > greatest(as_of, ea.announced_on);
    IF ea.announced_on > as_of THEN
        UPDATE subbilling.entitlement_accounts x SET next_change = nxt WHERE x.account_id = ea.account_id;
        RETURN false;
    END IF;
    SELECT coalesce(jsonb_object_agg(e.feature, e.quantity_limit), '{}') INTO now_
      FROM subbilling.account_entitlements e
     WHERE e.account_id = ea.account_id AND e.valid_from <= as_of
       AND (e.valid_until IS NULL OR e.valid_until > as_of);
    UPDATE subbilling.entitlement_accounts x
       SET announced = now_, announced_on = as_of, next_change = nxt
     WHERE x.account_id = ea.account_id;
    IF now_ = ea.announced THEN
        RETURN false;
    END IF;
    SELECT coalesce(jsonb_object_agg(n.key, n.value) FILTER (WHERE NOT ea.announced ? n.key), '{}'),
           coalesce(jsonb_object_agg(n.key, jsonb_build_object('from', ea.announced -> n.key, 'to', n.value))
                        FILTER (WHERE ea.announced ? n.key AND ea.announced -> n.key <> n.value), '{}')
      INTO added, changed
      FROM jsonb_each(now_) n;
    SELECT coalesce(jsonb_object_agg(o.key, o.value), '{}') INTO removed
      FROM jsonb_each(ea.announced) o WHERE NOT now_ ? o.key;
    -- the day the change took effect: the latest date in (last announcement, as_of] on which
    -- the maintained rows change (a scheduled change the worker announces late), else as_of
    SELECT coalesce(max(x.d), as_of) INTO eff
      FROM subbilling.account_entitlements e,
           LATERAL (VALUES (e.valid_from), (e.valid_until)) x (d)
     WHERE e.account_id = ea.account_id AND x.d <= as_of AND x.d > ea.announced_on;
    PERFORM subbilling_internal.emit_event(ea.account_id, 'entitlements.changed', NULL,
        jsonb_build_object('effective', eff, 'added', added, 'removed', removed, 'changed', changed,
                           'features', now_));
    RETURN true;
END
$$;
COMMENT ON FUNCTION subbilling_internal.entitlements_announce(bigint, date) IS 'internal: event entitlements.changed if what the account holds on as_of differs from what was last announced; notes the next change date';
REVOKE ALL ON FUNCTION subbilling_internal.entitlements_announce(bigint, date) FROM PUBLIC;

-- Brings an account's entitlements up to date from today on and announces a
-- change that takes effect today.  The lifecycle functions call it after
-- every change (in their transaction, under the account's
-- entitlement_accounts row lock).  Cheap for an account whose plans grant no
-- features and that never held any.
CREATE FUNCTION subbilling_internal.entitlements_sync(account_id bigint) RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    IF NOT EXISTS (SELECT 1 FROM subbilling.entitlement_accounts x WHERE x.account_id = entitlements_sync.account_id)
       AND NOT EXISTS (SELECT 1 FROM subbilling.subscription_items i
                         JOIN subbilling.plans p ON p.id = i.plan_id
                         JOIN subbilling.plan_features pf ON pf.plan = p.code
                        WHERE i.account_id = entitlements_sync.account_id AND i.voided_at IS NULL
                          AND (upper_inf(i.validity) OR upper(i.validity) > current_date)) THEN
        RETURN false;
    END IF;
    -- the account's row lock serialises concurrent changes of its subscriptions
    INSERT INTO subbilling.entitlement_accounts AS x (account_id) VALUES (entitlements_sync.account_id)
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM subbilling.entitlement_accounts x WHERE x.account_id = entitlements_sync.account_id FOR UPDATE;
    DELETE FROM subbilling.account_entitlements e WHERE e.account_id = entitlements_sync.account_id;
    INSERT INTO subbilling.account_entitlements (account_id, feature, valid_from, valid_until, quantity_limit)
    SELECT entitlements_sync.account_id, t.feature, t.valid_from, t.valid_until, t.quantity_limit
      FROM subbilling_internal.entitlements_timeline(entitlements_sync.account_id, current_date) t;
    UPDATE subbilling.entitlement_accounts x SET synced_at = now() WHERE x.account_id = entitlements_sync.account_id;
    RETURN subbilling_internal.entitlements_announce(entitlements_sync.account_id, current_date);
END
$$;
COMMENT ON FUNCTION subbilling_internal.entitlements_sync(bigint) IS 'internal: rebuild an account''s account_entitlements from today on and announce a change that holds today; true if an event was written';
REVOKE ALL ON FUNCTION subbilling_internal.entitlements_sync(bigint) FROM PUBLIC;

-- The worker's step (from advance_subscriptions): announce the scheduled
-- changes that have taken effect by as_of.  Returns how many accounts got
-- an entitlements.changed event.
CREATE FUNCTION subbilling_internal.entitlements_announce_due(as_of date) RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    acc     bigint;
    n       integer := 0;
BEGIN
    FOR acc IN
        SELECT x.account_id FROM subbilling.entitlement_accounts x
         WHERE x.next_change <= as_of ORDER BY x.account_id
    LOOP
        IF subbilling_internal.entitlements_announce(acc, as_of) THEN
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling_internal.entitlements_announce_due(date) IS 'internal: announce (entitlements.changed) the scheduled entitlement changes that took effect by as_of; returns how many accounts changed';
REVOKE ALL ON FUNCTION subbilling_internal.entitlements_announce_due(date) FROM PUBLIC;

-- ---------------------------------------------------------------- the API

-- One index lookup each, in PL/pgSQL (its plan is cached for the session;
-- a SQL-language function is planned again for every statement that calls
-- it), with the caller's rights: an application role that is granted
-- subbilling_access or subbilling_operator, never PUBLIC.  The search_path
-- is pinned like every function's (the names are qualified anyway).
CREATE FUNCTION subbilling.has_access(account_id bigint, feature_code text) RETURNS boolean
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM subbilling.account_entitlements e
                    WHERE e.account_id = $1 AND e.feature = $2
                      AND e.valid_from <= CURRENT_DATE
                      AND (e.valid_until IS NULL OR e.valid_until > CURRENT_DATE));
END
$$;
COMMENT ON FUNCTION subbilling.has_access(bigint, text) IS 'whether the account holds the feature today (a subscription whose status grants access has a plan or add-on that grants it)';

CREATE FUNCTION subbilling.entitlement_limit(account_id bigint, feature_code text) RETURNS numeric
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN coalesce((SELECT coalesce(e.quantity_limit, 'Infinity')
                       FROM subbilling.account_entitlements e
                      WHERE e.account_id = $1 AND e.feature = $2
                        AND e.valid_from <= CURRENT_DATE
                        AND (e.valid_until IS NULL OR e.valid_until > CURRENT_DATE)), 0);
END
$$;
COMMENT ON FUNCTION subbilling.entitlement_limit(bigint, text) IS 'the account''s limit of the feature today: the sum over its items (times quantity where the feature scales), Infinity if unlimited, 0 if it does not hold the feature';

CREATE VIEW subbilling.entitlements AS
SELECT e.account_id,
       e.feature AS feature_code,
       f.name AS feature_name,
       f.unit,
       coalesce(e.quantity_limit, 'Infinity') AS effective_limit,
       e.valid_until
  FROM subbilling.account_entitlements e
  JOIN subbilling.features f ON f.code = e.feature
 WHERE e.valid_from <= CURRENT_DATE
   AND (e.valid_until IS NULL OR e.valid_until > CURRENT_DATE);
COMMENT ON VIEW subbilling.entitlements IS 'per account, every feature it holds today with its effective limit (Infinity = unlimited) and the date that limit ends or changes as scheduled now (NULL: not scheduled)';

-- A plan grants a feature (or changes its limit); every account that holds
-- the plan now or later is brought up to date.  Returns how many accounts.
CREATE FUNCTION subbilling.set_plan_feature(plan_code text, feature_code text, quantity_limit numeric DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p   subbilling.plans;
BEGIN
    p := subbilling_internal.plan_by_code(set_plan_feature.plan_code);
    IF NOT EXISTS (SELECT 1 FROM subbilling.features f WHERE f.code = set_plan_feature.feature_code) THEN
        RAISE EXCEPTION 'unknown feature code "%"', coalesce(set_plan_feature.feature_code, 'NULL')
            USING ERRCODE = 'undefined_object', HINT = 'Insert it into subbilling.features first.';
    END IF;
    IF set_plan_feature.quantity_limit IS NOT NULL
       AND NOT (set_plan_feature.quantity_limit > 0 AND set_plan_feature.quantity_limit < 'Infinity') THEN
        RAISE EXCEPTION 'quantity_limit must be a positive finite number, or NULL for unlimited'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', set_plan_feature.quantity_limit);
    END IF;
    INSERT INTO subbilling.plan_features AS x (plan, feature, quantity_limit)
    VALUES (p.code, set_plan_feature.feature_code, set_plan_feature.quantity_limit)
    ON CONFLICT (plan, feature) DO UPDATE SET quantity_limit = EXCLUDED.quantity_limit;
    RETURN subbilling_internal.entitlements_sync_plan(p.id);
END
$$;
COMMENT ON FUNCTION subbilling.set_plan_feature(text, text, numeric) IS 'a plan grants a feature with a limit (NULL: unlimited), or changes the limit; brings its holders up to date (events entitlements.changed); returns how many accounts were brought up to date';

CREATE FUNCTION subbilling.remove_plan_feature(plan_code text, feature_code text)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p   subbilling.plans;
BEGIN
    p := subbilling_internal.plan_by_code(remove_plan_feature.plan_code);
    DELETE FROM subbilling.plan_features x WHERE x.plan = p.code AND x.feature = remove_plan_feature.feature_code;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'plan "%" does not grant feature "%"', p.code, coalesce(remove_plan_feature.feature_code, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN subbilling_internal.entitlements_sync_plan(p.id);
END
$$;
COMMENT ON FUNCTION subbilling.remove_plan_feature(text, text) IS 'a plan no longer grants a feature; brings its holders up to date (events entitlements.changed); returns how many accounts were brought up to date';

-- Every account with an item of the plan in effect today or later.
CREATE FUNCTION subbilling_internal.entitlements_sync_plan(plan_id bigint) RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    acc     bigint;
    n       integer := 0;
BEGIN
    FOR acc IN
        SELECT DISTINCT i.account_id FROM subbilling.subscription_items i
         WHERE i.plan_id = entitlements_sync_plan.plan_id AND i.voided_at IS NULL
           AND (upper_inf(i.validity) OR upper(i.validity) > current_date)
         ORDER BY 1
    LOOP
        PERFORM subbilling_internal.entitlements_sync(acc);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling_internal.entitlements_sync_plan(bigint) IS 'internal: bring every account holding a plan today or later up to date; returns how many';
REVOKE ALL ON FUNCTION subbilling_internal.entitlements_sync_plan(bigint) FROM PUBLIC;

CREATE FUNCTION subbilling.set_entitlement_policy(status text, grants_access boolean)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    acc     bigint;
    n       integer := 0;
BEGIN
    IF set_entitlement_policy.status IS DISTINCT FROM 'past_due' OR set_entitlement_policy.grants_access IS NULL THEN
        RAISE EXCEPTION 'only the access of status past_due is configurable'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got status %s, grants_access %s.', coalesce(set_entitlement_policy.status, 'NULL'),
                                  coalesce(set_entitlement_policy.grants_access::text, 'NULL')),
                  HINT = 'trialing and active grant access; paused, suspended and canceled do not.';
    END IF;
    UPDATE subbilling.entitlement_policy x SET grants_access = set_entitlement_policy.grants_access
     WHERE x.status = set_entitlement_policy.status AND x.grants_access <> set_entitlement_policy.grants_access;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    FOR acc IN
        SELECT DISTINCT s.account_id FROM subbilling.subscriptions s
         WHERE s.status = set_entitlement_policy.status ORDER BY 1
    LOOP
        PERFORM subbilling_internal.entitlements_sync(acc);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling.set_entitlement_policy(text, boolean) IS 'whether past_due subscriptions grant access; brings the accounts with a past_due subscription up to date (events entitlements.changed); returns how many';

CREATE FUNCTION subbilling.refresh_entitlements(account_id bigint DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    acc     bigint;
    n       integer := 0;
BEGIN
    IF refresh_entitlements.account_id IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM subbilling.accounts a WHERE a.id = refresh_entitlements.account_id) THEN
            RAISE EXCEPTION 'account % does not exist', refresh_entitlements.account_id
                USING ERRCODE = 'undefined_object';
        END IF;
        RETURN subbilling_internal.entitlements_sync(refresh_entitlements.account_id)::integer;
    END IF;
    FOR acc IN SELECT a.id FROM subbilling.accounts a ORDER BY a.id LOOP
        IF subbilling_internal.entitlements_sync(acc) THEN
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling.refresh_entitlements(bigint) IS 'rebuild the entitlements of one account (or of every account) from its subscriptions and announce any difference; returns how many accounts got an entitlements.changed event';

-- ============================================================================
-- Privileges of entitlements (sql/parts/470_entitlements.sql), after the
-- grants of 490_privileges.sql so that the schema's ACL lists the roles in
-- the same order in a fresh install and after an upgrade.  docs/entitlements.md
-- and docs/privileges.md.
-- ============================================================================


-- subbilling_access: the role of an application that only checks access
-- (has_access, entitlement_limit, the entitlements view and the feature
-- catalog), nothing else.  Roles are cluster-wide: created if missing.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'subbilling_access') THEN
        CREATE ROLE subbilling_access NOLOGIN;
        COMMENT ON ROLE subbilling_access IS 'subbilling: checks what accounts may use (has_access, entitlement_limit, entitlements) and nothing else';
    END IF;
END
$$;
GRANT USAGE ON SCHEMA subbilling TO subbilling_access;

GRANT SELECT ON subbilling.features, subbilling.plan_features, subbilling.entitlement_policy,
                subbilling.account_entitlements, subbilling.entitlements
    TO subbilling_operator, subbilling_access;
GRANT SELECT ON subbilling.entitlement_accounts TO subbilling_operator;
-- features are catalog, maintained with plain SQL; plan_features and the policy change
-- through functions that bring the holders up to date
GRANT INSERT, UPDATE ON subbilling.features TO subbilling_operator;

REVOKE ALL ON FUNCTION
    subbilling.has_access(bigint, text),
    subbilling.entitlement_limit(bigint, text),
    subbilling.set_plan_feature(text, text, numeric),
    subbilling.remove_plan_feature(text, text),
    subbilling.set_entitlement_policy(text, boolean),
    subbilling.refresh_entitlements(bigint)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    subbilling.has_access(bigint, text),
    subbilling.entitlement_limit(bigint, text)
    TO subbilling_operator, subbilling_access;
GRANT EXECUTE ON FUNCTION
    subbilling.set_plan_feature(text, text, numeric),
    subbilling.remove_plan_feature(text, text),
    subbilling.set_entitlement_policy(text, boolean),
    subbilling.refresh_entitlements(bigint)
    TO subbilling_operator;
