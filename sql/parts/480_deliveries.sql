
-- ============================================================================
-- Deliveries: plans for physical goods, what each delivery holds, shipping
-- addresses with history, the delivery schedule, skips and the pick list.
--
-- A base plan with a delivery_period ships on the subscription's billing
-- anchor and every delivery_period from it (within the subscription's
-- dates).  A delivery on date d holds plan_delivery_items of every item
-- (base and add-ons) in effect on d, each quantity times the item's
-- quantity.  No delivery falls on a day that is paused, suspended (payment
-- stop) or on or after the subscription's end (cancel_at).  It ships to the
-- shipping address in effect on d.
--
-- delivery_records holds the deliveries that were fixed (entered the pick
-- window: the worker wrote delivery.scheduled and froze the address and the
-- contents) or skipped.  A plan bills per delivery when its delivery_period
-- equals its billing_period: then a skip holds the recurring charges of the
-- skipped period (held, counted by the billing engine as paused days), so
-- the period is not billed, or is credited if it was already invoiced.
-- docs/deliveries.md describes every rule with a running example.
-- ============================================================================

-- ---------------------------------------------------------------- plans: cadence and contents

ALTER TABLE subbilling.plans
    ADD COLUMN delivery_period subbilling.billing_period,
    ADD CONSTRAINT plans_delivery_period_base CHECK (delivery_period IS NULL OR kind = 'base');
COMMENT ON COLUMN subbilling.plans.delivery_period IS 'physical goods: a delivery every delivery_period from the billing anchor (base plans only); NULL = nothing is shipped; equal to billing_period = the plan bills per delivery';

-- The delivery cadence of a plan that a subscription uses is fixed, like
-- its price fields: the schedule and the charges of its subscribers follow it.
CREATE FUNCTION subbilling_internal.plans_guard_delivery_period() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.delivery_period IS DISTINCT FROM OLD.delivery_period
       AND EXISTS (SELECT 1 FROM subbilling.subscription_items i WHERE i.plan_id = OLD.id) THEN
        RAISE EXCEPTION 'plan "%" is in use and its delivery period cannot change', OLD.code
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Create a new plan and move the subscriptions with migrate_subscriptions().';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling_internal.plans_guard_delivery_period() IS 'trigger: the delivery period of a plan that a subscription uses is immutable';
REVOKE ALL ON FUNCTION subbilling_internal.plans_guard_delivery_period() FROM PUBLIC;

CREATE TRIGGER plans_guard_delivery_period
    BEFORE UPDATE OF delivery_period ON subbilling.plans
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.plans_guard_delivery_period();

CREATE TABLE subbilling.plan_delivery_items (
    plan_id     bigint NOT NULL REFERENCES subbilling.plans (id),
    sku         text NOT NULL
                CONSTRAINT plan_delivery_items_sku_format CHECK (sku ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'),
    description text NOT NULL
                CONSTRAINT plan_delivery_items_description_nonempty CHECK (btrim(description) <> ''),
    quantity    integer NOT NULL
                CONSTRAINT plan_delivery_items_quantity_positive CHECK (quantity > 0),
    PRIMARY KEY (plan_id, sku)
);
COMMENT ON TABLE subbilling.plan_delivery_items IS 'what one delivery of a plan holds per unit of the subscription item''s quantity (catalog: a base plan with a delivery_period, or an add-on whose goods ride along)';

-- ---------------------------------------------------------------- settings

CREATE TABLE subbilling.delivery_settings (
    id                  boolean PRIMARY KEY DEFAULT true
                        CONSTRAINT delivery_settings_single_row CHECK (id),
    horizon_days        integer NOT NULL DEFAULT 90
                        CONSTRAINT delivery_settings_horizon_range CHECK (horizon_days BETWEEN 1 AND 3660),
    pick_window_days    integer NOT NULL DEFAULT 3
                        CONSTRAINT delivery_settings_pick_window_range CHECK (pick_window_days BETWEEN 0 AND 366),
    updated_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    origin              text NOT NULL DEFAULT 'user'
                        CONSTRAINT delivery_settings_origin_check CHECK (origin IN ('shipped', 'user', 'edited'))
);
COMMENT ON TABLE subbilling.delivery_settings IS 'delivery settings (one row): horizon_days = how far ahead the deliveries view looks; pick_window_days = a delivery is fixed (delivery.scheduled) this many days before its date';
SELECT pg_catalog.pg_extension_config_dump('subbilling.delivery_settings', 'WHERE origin <> ''shipped''');
COMMENT ON COLUMN subbilling.delivery_settings.origin IS 'shipped: installed with the extension (not dumped); user: added by an operator; edited: shipped, then changed (dumped, restored over the shipped row)';
CREATE TRIGGER delivery_settings_shipped_row BEFORE INSERT OR UPDATE ON subbilling.delivery_settings
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.shipped_row();
INSERT INTO subbilling.delivery_settings (origin) VALUES ('shipped');

-- ---------------------------------------------------------------- shipping addresses

CREATE TABLE subbilling.shipping_addresses (
    account_id  bigint NOT NULL REFERENCES subbilling.accounts (id),
    id          bigint GENERATED BY DEFAULT AS IDENTITY,
    valid_from  date NOT NULL
                CONSTRAINT shipping_addresses_valid_from_finite CHECK (isfinite(valid_from)),
    name        text NOT NULL CONSTRAINT shipping_addresses_name_nonempty CHECK (btrim(name) <> ''),
    line1       text NOT NULL CONSTRAINT shipping_addresses_line1_nonempty CHECK (btrim(line1) <> ''),
    line2       text,
    postal_code text NOT NULL CONSTRAINT shipping_addresses_postal_code_nonempty CHECK (btrim(postal_code) <> ''),
    city        text NOT NULL CONSTRAINT shipping_addresses_city_nonempty CHECK (btrim(city) <> ''),
    country     text NOT NULL CONSTRAINT shipping_addresses_country_iso3166 CHECK (subbilling.is_country_code(country)),
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (account_id, id),
    CONSTRAINT shipping_addresses_one_per_day UNIQUE (account_id, valid_from)
);
COMMENT ON TABLE subbilling.shipping_addresses IS 'shipping address history of an account: each row holds from valid_from until the next row''s valid_from; a delivery ships to the address in effect on its date (set_shipping_address)';

-- ---------------------------------------------------------------- fixed and skipped deliveries

CREATE TABLE subbilling.delivery_records (
    account_id      bigint NOT NULL,
    id              bigint GENERATED BY DEFAULT AS IDENTITY,
    subscription_id bigint NOT NULL,
    delivery_date   date NOT NULL,
    status          text NOT NULL
                    CONSTRAINT delivery_records_status_check CHECK (status IN ('fixed', 'skipped')),
    items           jsonb,
    address         jsonb,
    held            daterange
                    CONSTRAINT delivery_records_held_skipped CHECK (held IS NULL OR status = 'skipped'),
    fixed_at        timestamptz,
    skipped_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, subscription_id) REFERENCES subbilling.subscriptions (account_id, id),
    CONSTRAINT delivery_records_one_per_date UNIQUE (account_id, subscription_id, delivery_date),
    CONSTRAINT delivery_records_fixed_snapshot CHECK ((fixed_at IS NULL) = (items IS NULL)),
    CONSTRAINT delivery_records_skipped_at CHECK ((status = 'skipped') = (skipped_at IS NOT NULL))
);
COMMENT ON TABLE subbilling.delivery_records IS 'deliveries fixed for the warehouse (delivery.scheduled written, items and address frozen) or skipped; held = the days whose recurring charges a skip holds (a plan that bills per delivery)';
COMMENT ON COLUMN subbilling.delivery_records.items IS 'the delivery''s contents when it was fixed: [{"sku", "description", "quantity"}]';
COMMENT ON COLUMN subbilling.delivery_records.address IS 'the shipping address in effect on the delivery date when it was fixed (NULL: the account had none)';

-- ---------------------------------------------------------------- the schedule

-- Every delivery of the subscriptions (all, or one) from from_date to
-- to_date (inclusive), with its contents, its address and its status:
-- planned (computed now), fixed (frozen contents and address) or skipped.
CREATE FUNCTION subbilling_internal.delivery_schedule(from_date date, to_date date, only_subscription bigint)
    RETURNS TABLE (account_id bigint, subscription_id bigint, delivery_date date, plan_code text,
                   items jsonb, quantity bigint, address jsonb, status text, delivery_id bigint,
                   bills_per_delivery boolean, period daterange)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
WITH bi AS (
    SELECT s.account_id, s.id AS subscription_id, s.billing_anchor AS anchor, p.code AS plan_code,
           p.delivery_period AS dp,
           p.delivery_period = p.billing_period AND p.pricing_model <> 'usage' AS per_delivery,
           greatest(lower(i.validity), s.start_date, from_date) AS lo,
           least(upper(i.validity), s.cancel_at, to_date + 1) AS hi
      FROM subbilling.subscriptions s
      JOIN subbilling.subscription_items i
        ON i.account_id = s.account_id AND i.subscription_id = s.id AND i.kind = 'base' AND i.voided_at IS NULL
      JOIN subbilling.plans p ON p.id = i.plan_id
     WHERE p.delivery_period IS NOT NULL
       AND (only_subscription IS NULL OR s.id = only_subscription)
       AND i.validity && daterange(from_date, to_date, '[]')
       AND (s.cancel_at IS NULL OR s.cancel_at > from_date)
),
dd AS (
    SELECT bi.account_id, bi.subscription_id, bi.plan_code, bi.per_delivery, per.d, per.d_next
      FROM bi
      CROSS JOIN LATERAL generate_series(period_index(bi.anchor, bi.dp, bi.lo),
                                         period_index(bi.anchor, bi.dp, bi.hi - 1)) AS k(n)
      CROSS JOIN LATERAL (SELECT period_start(bi.anchor, bi.dp, k.n) AS d,
                                 period_start(bi.anchor, bi.dp, k.n + 1) AS d_next) per
     WHERE bi.hi > bi.lo AND per.d >= bi.lo AND per.d < bi.hi
       AND NOT EXISTS (SELECT 1 FROM subbilling.subscription_pauses z
                        WHERE z.account_id = bi.account_id AND z.subscription_id = bi.subscription_id
                          AND z.during @> per.d)
       AND NOT EXISTS (SELECT 1 FROM subbilling.subscription_suspensions u
                        WHERE u.account_id = bi.account_id AND u.subscription_id = bi.subscription_id
                          AND u.suspended_from <= per.d AND (u.lifted_on IS NULL OR u.lifted_on > per.d))
)
SELECT dd.account_id, dd.subscription_id, dd.d, dd.plan_code,
       coalesce(r.items, li.items),
       (SELECT sum((e.value ->> 'quantity')::bigint)::bigint
          FROM jsonb_array_elements(coalesce(r.items, li.items)) AS e),
       CASE WHEN r.fixed_at IS NOT NULL THEN r.address ELSE la.address END,
       coalesce(r.status, 'planned'),
       r.id,
       dd.per_delivery,
       daterange(dd.d, dd.d_next)
  FROM dd
  LEFT JOIN subbilling.delivery_records r
    ON r.account_id = dd.account_id AND r.subscription_id = dd.subscription_id AND r.delivery_date = dd.d
  LEFT JOIN LATERAL (
      SELECT jsonb_agg(jsonb_build_object('sku', x.sku, 'description', x.description, 'quantity', x.quantity)
                       ORDER BY x.sku) AS items
        FROM (SELECT di.sku, max(di.description) AS description, sum(di.quantity::bigint * i.quantity)::bigint AS quantity
                FROM subbilling.subscription_items i
                JOIN subbilling.plan_delivery_items di ON di.plan_id = i.plan_id
               WHERE i.account_id = dd.account_id AND i.subscription_id = dd.subscription_id
                 AND i.voided_at IS NULL AND i.validity @> dd.d
               GROUP BY di.sku) x) li ON r.fixed_at IS NULL
  LEFT JOIN LATERAL (
      SELECT jsonb_build_object('name', a.name, 'line1', a.line1, 'line2', a.line2, 'postal_code', a.postal_code,
                                'city', a.city, 'country', a.country) AS address
        FROM subbilling.shipping_addresses a
       WHERE a.account_id = dd.account_id AND a.valid_from <= dd.d
       ORDER BY a.valid_from DESC
       LIMIT 1) la ON r.fixed_at IS NULL
 WHERE coalesce(r.items, li.items) IS NOT NULL
$$;
COMMENT ON FUNCTION subbilling_internal.delivery_schedule(date, date, bigint) IS 'internal: every delivery of the subscriptions (or one) between two dates, inclusive: contents, address, status planned, fixed or skipped, and whether the plan bills per delivery (period = the delivery''s billing period)';
REVOKE ALL ON FUNCTION subbilling_internal.delivery_schedule(date, date, bigint) FROM PUBLIC;

CREATE FUNCTION subbilling.delivery_schedule(from_date date, to_date date)
    RETURNS TABLE (account_id bigint, subscription_id bigint, delivery_date date, plan_code text,
                   items jsonb, quantity bigint, address jsonb, status text, delivery_id bigint,
                   bills_per_delivery boolean)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM subbilling_internal.check_date('from_date', delivery_schedule.from_date);
    PERFORM subbilling_internal.check_date('to_date', delivery_schedule.to_date);
    IF delivery_schedule.to_date < delivery_schedule.from_date THEN
        RAISE EXCEPTION 'to_date % is before from_date %', delivery_schedule.to_date, delivery_schedule.from_date
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
        SELECT d.account_id, d.subscription_id, d.delivery_date, d.plan_code, d.items, d.quantity, d.address,
               d.status, d.delivery_id, d.bills_per_delivery
          FROM subbilling_internal.delivery_schedule(delivery_schedule.from_date, delivery_schedule.to_date, NULL) d
         ORDER BY d.delivery_date, d.account_id, d.subscription_id;
END
$$;
COMMENT ON FUNCTION subbilling.delivery_schedule(date, date) IS 'every delivery from from_date to to_date (inclusive): contents, total quantity, shipping address (frozen once fixed), status (planned, fixed, skipped), whether the plan bills per delivery';

CREATE VIEW subbilling.deliveries AS
SELECT d.account_id, d.subscription_id, d.delivery_date, d.plan_code, d.items, d.quantity, d.address,
       d.status, d.delivery_id, d.bills_per_delivery
  FROM subbilling.delivery_settings st
 CROSS JOIN LATERAL subbilling.delivery_schedule(CURRENT_DATE, CURRENT_DATE + st.horizon_days) d;
COMMENT ON VIEW subbilling.deliveries IS 'upcoming deliveries of every subscription from today to today + delivery_settings.horizon_days: contents, total quantity, shipping address, status (planned, fixed, skipped)';

-- ---------------------------------------------------------------- functions

CREATE FUNCTION subbilling.deliveries_due(from_date date, to_date date)
    RETURNS TABLE (account_id bigint, subscription_id bigint, delivery_date date, sku text, description text,
                   quantity bigint, ship_to_name text, line1 text, line2 text, postal_code text, city text,
                   country text, fixed boolean, delivery_id bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM subbilling_internal.check_date('from_date', deliveries_due.from_date);
    PERFORM subbilling_internal.check_date('to_date', deliveries_due.to_date);
    IF deliveries_due.to_date < deliveries_due.from_date THEN
        RAISE EXCEPTION 'to_date % is before from_date %', deliveries_due.to_date, deliveries_due.from_date
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF deliveries_due.to_date - deliveries_due.from_date > 366 THEN
        RAISE EXCEPTION 'a pick list covers at most 367 days'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('From %s to %s.', deliveries_due.from_date, deliveries_due.to_date);
    END IF;
    RETURN QUERY
        SELECT d.account_id, d.subscription_id, d.delivery_date, x.sku, x.description, x.quantity,
               d.address ->> 'name', d.address ->> 'line1', d.address ->> 'line2', d.address ->> 'postal_code',
               d.address ->> 'city', d.address ->> 'country', d.status = 'fixed', d.delivery_id
          FROM subbilling_internal.delivery_schedule(deliveries_due.from_date, deliveries_due.to_date, NULL) d
         CROSS JOIN LATERAL jsonb_to_recordset(d.items) AS x(sku text, description text, quantity bigint)
         WHERE d.status <> 'skipped'
         ORDER BY d.delivery_date, d.account_id, d.subscription_id, x.sku;
END
$$;
COMMENT ON FUNCTION subbilling.deliveries_due(date, date) IS 'the pick list: one row per delivery and item from from_date to to_date (inclusive) with the shipping address; skipped deliveries left out; fixed = contents and address frozen';

CREATE FUNCTION subbilling.schedule_deliveries(as_of date DEFAULT CURRENT_DATE)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    w       integer;
    d       record;
    rid     bigint;
    n       integer := 0;
BEGIN
    PERFORM subbilling_internal.check_date('as_of', schedule_deliveries.as_of);
    SELECT st.pick_window_days INTO w FROM subbilling.delivery_settings st;
    FOR d IN
        SELECT * FROM subbilling_internal.delivery_schedule(schedule_deliveries.as_of,
                                                            schedule_deliveries.as_of + coalesce(w, 3), NULL) x
         WHERE x.status = 'planned'
         ORDER BY x.account_id, x.subscription_id, x.delivery_date
    LOOP
        rid := NULL;
        INSERT INTO subbilling.delivery_records AS r
               (account_id, subscription_id, delivery_date, status, items, address, fixed_at)
        VALUES (d.account_id, d.subscription_id, d.delivery_date, 'fixed', d.items, d.address, pg_catalog.now())
        ON CONFLICT (account_id, subscription_id, delivery_date) DO NOTHING
        RETURNING r.id INTO rid;
        IF rid IS NOT NULL THEN
            PERFORM subbilling_internal.emit_event(d.account_id, 'delivery.scheduled', d.subscription_id,
                        jsonb_build_object('delivery_id', rid, 'delivery_date', d.delivery_date,
                                           'plan_code', d.plan_code, 'items', d.items, 'quantity', d.quantity));
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling.schedule_deliveries(date) IS 'fix the deliveries that have entered the pick window (as_of to as_of + delivery_settings.pick_window_days): freeze contents and address, event delivery.scheduled once each; returns how many; the worker calls it every cycle';

CREATE FUNCTION subbilling.skip_delivery(subscription_id bigint, delivery_date date)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s       subbilling.subscriptions;
    d       record;
    rid     bigint;
    fixed   boolean;
    nxt     date;
BEGIN
    PERFORM subbilling_internal.check_date('delivery_date', skip_delivery.delivery_date);
    s := subbilling_internal.subscription_for_update(skip_delivery.subscription_id);
    IF skip_delivery.delivery_date < CURRENT_DATE THEN
        RAISE EXCEPTION 'the delivery of subscription % on % is past', s.id, skip_delivery.delivery_date
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'A delivery ships on its date; deliveries from today on can be skipped.';
    END IF;
    SELECT * INTO d
      FROM subbilling_internal.delivery_schedule(skip_delivery.delivery_date, skip_delivery.delivery_date, s.id) x;
    IF NOT FOUND THEN
        SELECT min(x.delivery_date) INTO nxt
          FROM subbilling_internal.delivery_schedule(skip_delivery.delivery_date, skip_delivery.delivery_date + 366, s.id) x
         WHERE x.status <> 'skipped';
        RAISE EXCEPTION 'subscription % has no delivery on %', s.id, skip_delivery.delivery_date
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = CASE WHEN nxt IS NULL THEN 'It has no delivery in the year from that date.'
                                ELSE format('Its next delivery is on %s.', nxt) END;
    END IF;
    IF d.status = 'skipped' THEN
        RETURN d.delivery_id;       -- skipped already: nothing changes
    END IF;
    INSERT INTO subbilling.delivery_records AS r (account_id, subscription_id, delivery_date, status, held, skipped_at)
    VALUES (s.account_id, s.id, skip_delivery.delivery_date, 'skipped',
            CASE WHEN d.bills_per_delivery THEN d.period END, pg_catalog.now())
    ON CONFLICT (account_id, subscription_id, delivery_date)
    DO UPDATE SET status = 'skipped', held = excluded.held, skipped_at = excluded.skipped_at
    RETURNING r.id, r.fixed_at IS NOT NULL INTO rid, fixed;
    IF d.bills_per_delivery THEN
        -- the skipped period's charges are held: bill the subscription again from its history
        UPDATE subbilling.subscriptions x SET updated_at = pg_catalog.now()
         WHERE x.account_id = s.account_id AND x.id = s.id;
    END IF;
    PERFORM subbilling_internal.emit_event(s.account_id, 'delivery.skipped', s.id,
                jsonb_build_object('delivery_id', rid, 'delivery_date', skip_delivery.delivery_date,
                                   'was_fixed', fixed,
                                   'charge_held', CASE WHEN d.bills_per_delivery THEN d.period::text END));
    RETURN rid;
END
$$;
COMMENT ON FUNCTION subbilling.skip_delivery(bigint, date) IS 'skip one delivery of a subscription (today or later); when the plan bills per delivery its period''s recurring charges are held (not billed, or credited if invoiced); idempotent; returns the delivery record id; event delivery.skipped';

CREATE FUNCTION subbilling.set_shipping_address(account_id bigint, name text, line1 text, postal_code text,
                                                city text, country text, line2 text DEFAULT NULL,
                                                valid_from date DEFAULT CURRENT_DATE)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- a variable, not now(): Citus takes only immutable functions in an ON CONFLICT update
    written timestamptz := pg_catalog.now();
    rid     bigint;
BEGIN
    PERFORM subbilling_internal.check_date('valid_from', set_shipping_address.valid_from);
    IF NOT EXISTS (SELECT 1 FROM subbilling.accounts a WHERE a.id = set_shipping_address.account_id) THEN
        RAISE EXCEPTION 'account % does not exist', coalesce(set_shipping_address.account_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    IF set_shipping_address.valid_from < CURRENT_DATE THEN
        RAISE EXCEPTION 'a shipping address cannot take effect in the past'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('valid_from %s is before today (%s); the address history is kept as it was.',
                                  set_shipping_address.valid_from, CURRENT_DATE);
    END IF;
    IF coalesce(btrim(name), '') = '' OR coalesce(btrim(line1), '') = '' OR coalesce(btrim(postal_code), '') = ''
       OR coalesce(btrim(city), '') = '' THEN
        RAISE EXCEPTION 'a shipping address needs a name, line1, postal_code and city'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT coalesce(subbilling.is_country_code(country), false) THEN
        RAISE EXCEPTION 'unknown country code "%"', coalesce(country, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'An ISO 3166-1 alpha-2 code in upper case, such as SE.';
    END IF;
    INSERT INTO subbilling.shipping_addresses AS a (account_id, valid_from, name, line1, line2, postal_code, city, country)
    VALUES (set_shipping_address.account_id, set_shipping_address.valid_from, name, line1, nullif(btrim(line2), ''),
            postal_code, city, country)
    ON CONFLICT (account_id, valid_from)
    DO UPDATE SET name = excluded.name, line1 = excluded.line1, line2 = excluded.line2,
                  postal_code = excluded.postal_code, city = excluded.city, country = excluded.country,
                  created_at = written
    RETURNING a.id INTO rid;
    RETURN rid;
END
$$;
COMMENT ON FUNCTION subbilling.set_shipping_address(bigint, text, text, text, text, text, text, date) IS 'set the shipping address of an account from a date (today or later; a second call for the same date replaces it); returns its id';

-- ---------------------------------------------------------------- privileges

GRANT SELECT, INSERT, UPDATE, DELETE ON subbilling.plan_delivery_items TO subbilling_operator;
GRANT SELECT, UPDATE ON subbilling.delivery_settings TO subbilling_operator;
GRANT SELECT ON subbilling.shipping_addresses, subbilling.delivery_records, subbilling.deliveries
    TO subbilling_operator;
REVOKE ALL ON FUNCTION
    subbilling.delivery_schedule(date, date),
    subbilling.deliveries_due(date, date),
    subbilling.schedule_deliveries(date),
    subbilling.skip_delivery(bigint, date),
    subbilling.set_shipping_address(bigint, text, text, text, text, text, text, date)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    subbilling.delivery_schedule(date, date),
    subbilling.deliveries_due(date, date),
    subbilling.schedule_deliveries(date),
    subbilling.skip_delivery(bigint, date),
    subbilling.set_shipping_address(bigint, text, text, text, text, text, text, date)
    TO subbilling_operator;
