
-- ============================================================================
-- Dunning settings: policies and their steps, the shipped
-- default policy, and the reference rates of late-payment interest (the
-- per-country fee and interest rules ship with country_settings).
--
-- All of these are small global settings tables (reference tables when distributed);
-- nothing in them points at a customer-owned table.  docs/dunning.md
-- describes every column, rule and source.
-- ============================================================================

-- ---------------------------------------------------------------- policies

-- ---------------------------------------------------------------- steps

CREATE TABLE subbilling.dunning_steps (
    policy_id       bigint NOT NULL REFERENCES subbilling.dunning_policies (id) ON DELETE CASCADE,
    step_no         integer NOT NULL
                    CONSTRAINT dunning_steps_step_no_positive CHECK (step_no > 0),
    days_after_due  integer NOT NULL
                    CONSTRAINT dunning_steps_days_range CHECK (days_after_due BETWEEN 0 AND 3650),
    action          text NOT NULL
                    CONSTRAINT dunning_steps_action_check
                    CHECK (action IN ('reminder', 'payment_stop', 'collection', 'write_off')),
    fee_kind        text NOT NULL DEFAULT 'none'
                    CONSTRAINT dunning_steps_fee_kind_check CHECK (fee_kind IN ('none', 'fixed', 'country')),
    fees            subbilling.price[],
    charge_interest boolean NOT NULL DEFAULT false,
    description     text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    origin          text NOT NULL DEFAULT 'user'
                    CONSTRAINT dunning_steps_origin_check CHECK (origin IN ('shipped', 'user', 'edited')),
    PRIMARY KEY (policy_id, step_no),
    CONSTRAINT dunning_steps_fees_iff_fixed CHECK ((fee_kind = 'fixed') = (fees IS NOT NULL)),
    CONSTRAINT dunning_steps_write_off_plain
        CHECK (action <> 'write_off' OR (fee_kind = 'none' AND NOT charge_interest))
);
COMMENT ON TABLE subbilling.dunning_steps IS 'the steps of a dunning policy: days after the due date, action (reminder, payment_stop, collection, write_off), optional fee (fixed per currency or the country''s standard fee, capped by the country) and late-payment interest';
COMMENT ON COLUMN subbilling.dunning_steps.step_no IS 'order of the steps within the policy (1, 2, ...); each runs once per invoice, in this order';
COMMENT ON COLUMN subbilling.dunning_steps.days_after_due IS 'the step is due this many days after the invoice''s due date, and never sooner after the previous step than the difference of their days';
COMMENT ON COLUMN subbilling.dunning_steps.fee_kind IS 'none; fixed = fees (one price per currency); country = the standard reminder fee of the account''s country (country_settings.reminder_fees)';
COMMENT ON COLUMN subbilling.dunning_steps.fees IS 'fee_kind fixed: the fee per currency, at most one price per currency';
COMMENT ON COLUMN subbilling.dunning_steps.charge_interest IS 'charge late-payment interest accrued on the open amount since the due date or the previous interest charge';
SELECT pg_catalog.pg_extension_config_dump('subbilling.dunning_steps', 'WHERE origin <> ''shipped''');
COMMENT ON COLUMN subbilling.dunning_steps.origin IS 'shipped: installed with the extension (not dumped); user: added by an operator; edited: shipped, then changed (dumped, restored over the shipped row)';
CREATE TRIGGER dunning_steps_shipped_row BEFORE INSERT OR UPDATE ON subbilling.dunning_steps
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.shipped_row();

-- The fees are positive, one per currency, and in known currencies.
CREATE FUNCTION subbilling_internal.dunning_steps_validate() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.fees IS NOT NULL THEN
        IF cardinality(NEW.fees) = 0 OR array_position(NEW.fees, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'step % of dunning policy % has an empty fee list or a NULL fee', NEW.step_no, NEW.policy_id
                USING ERRCODE = 'check_violation',
                      HINT = 'Give one fee per currency, or fee_kind ''none''.';
        END IF;
        IF EXISTS (SELECT 1 FROM unnest(NEW.fees) f WHERE minor_units(f) <= 0) THEN
            RAISE EXCEPTION 'step % of dunning policy % has a fee that is not positive', NEW.step_no, NEW.policy_id
                USING ERRCODE = 'check_violation',
                      DETAIL = format('Fees: %s.', NEW.fees);
        END IF;
        IF (SELECT count(DISTINCT currency(f)) FROM unnest(NEW.fees) f) <> cardinality(NEW.fees) THEN
            RAISE EXCEPTION 'step % of dunning policy % has two fees in one currency', NEW.step_no, NEW.policy_id
                USING ERRCODE = 'check_violation',
                      DETAIL = format('Fees: %s.', NEW.fees);
        END IF;
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling_internal.dunning_steps_validate() IS 'trigger: a dunning step''s fees are positive, one per currency';

CREATE TRIGGER dunning_steps_validate
    BEFORE INSERT OR UPDATE ON subbilling.dunning_steps
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.dunning_steps_validate();

-- Later steps are never due sooner than earlier ones: days_after_due does
-- not decrease with step_no.  Checked at commit, so steps can be
-- renumbered in any order within a transaction.
CREATE FUNCTION subbilling_internal.dunning_steps_check_order() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    bad record;
BEGIN
    SELECT s.step_no, s.days_after_due, s.prev_no, s.prev_days INTO bad
      FROM (SELECT x.step_no, x.days_after_due,
                   lag(x.step_no) OVER w AS prev_no, lag(x.days_after_due) OVER w AS prev_days
              FROM subbilling.dunning_steps x
             WHERE x.policy_id = NEW.policy_id
            WINDOW w AS (ORDER BY x.step_no)) s
     WHERE s.days_after_due < s.prev_days
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'the steps of dunning policy % are not in date order', NEW.policy_id
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Step %s is due %s days after the due date, before step %s at %s days.',
                                  bad.step_no, bad.days_after_due, bad.prev_no, bad.prev_days);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION subbilling_internal.dunning_steps_check_order() IS 'trigger: days_after_due does not decrease with step_no within a policy (checked at commit)';

CREATE CONSTRAINT TRIGGER dunning_steps_check_order
    AFTER INSERT OR UPDATE ON subbilling.dunning_steps
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.dunning_steps_check_order();

-- The reference rate of late-payment interest, per country and half-year
-- (or whatever validity the authority gives it).
CREATE TABLE subbilling.reference_rates (
    country     text NOT NULL
                CONSTRAINT reference_rates_country_iso3166 CHECK (subbilling.is_country_code(country)),
    valid       daterange NOT NULL
                CONSTRAINT reference_rates_valid_nonempty CHECK (NOT isempty(valid) AND lower_inc(valid) AND NOT upper_inc(valid)),
    rate        numeric NOT NULL
                CONSTRAINT reference_rates_rate_range CHECK (rate > -100 AND rate < 100),
    source      text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    origin      text NOT NULL DEFAULT 'user'
                CONSTRAINT reference_rates_origin_check CHECK (origin IN ('shipped', 'user', 'edited')),
    PRIMARY KEY (country, valid),
    CONSTRAINT reference_rates_no_overlap EXCLUDE USING gist (country WITH =, valid WITH &&)
);
COMMENT ON TABLE subbilling.reference_rates IS 'reference rates of late-payment interest in percent per country and validity (Sweden: Riksbanken''s referensränta; Norway: Norges Bank''s policy rate of the half-year); interest = rate + country_settings.late_interest_margin';
SELECT pg_catalog.pg_extension_config_dump('subbilling.reference_rates', 'WHERE origin <> ''shipped''');
COMMENT ON COLUMN subbilling.reference_rates.origin IS 'shipped: installed with the extension (not dumped); user: added by an operator; edited: shipped, then changed (dumped, restored over the shipped row)';
CREATE TRIGGER reference_rates_shipped_row BEFORE INSERT OR UPDATE ON subbilling.reference_rates
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.shipped_row();

INSERT INTO subbilling.reference_rates (country, valid, rate, source, origin) VALUES
    ('SE', '[2023-01-01,2023-07-01)', 2.50, 'Riksbanken referensränta 2023H1', 'shipped'),
    ('SE', '[2023-07-01,2024-01-01)', 3.50, 'Riksbanken referensränta 2023H2', 'shipped'),
    ('SE', '[2024-01-01,2024-07-01)', 4.00, 'Riksbanken referensränta 2024H1', 'shipped'),
    ('SE', '[2024-07-01,2025-01-01)', 4.00, 'Riksbanken referensränta 2024H2', 'shipped'),
    -- 2025H1: Riksbanken's policy rate at 2024-12-31 was 2.75 (the cut to 2.50 applied from
    -- 2025-01-08), rounded up to a half point: 3.00.  Sources in docs/operations.md.
    ('SE', '[2025-01-01,2025-07-01)', 3.00, 'Riksbanken referensränta 2025H1 (policy rate 2.75 at 2024-12-31: the cut to 2.50 applied from 2025-01-08)', 'shipped'),
    ('SE', '[2025-07-01,2026-01-01)', 2.00, 'Riksbanken referensränta 2025H2', 'shipped'),
    ('SE', '[2026-01-01,2026-07-01)', 2.00, 'Riksbanken referensränta 2026H1 (policy rate 1.75 at 2025-12-31, rounded up to a half point)', 'shipped'),
    ('NO', '[2023-01-01,2023-07-01)', 2.75, 'Norges Bank policy rate; forsinkelsesrente 10.75 % 2023H1', 'shipped'),
    ('NO', '[2023-07-01,2024-01-01)', 3.75, 'Norges Bank policy rate; forsinkelsesrente 11.75 % 2023H2', 'shipped'),
    ('NO', '[2024-01-01,2024-07-01)', 4.50, 'Norges Bank policy rate; forsinkelsesrente 12.50 % 2024H1', 'shipped'),
    ('NO', '[2024-07-01,2025-01-01)', 4.50, 'Norges Bank policy rate; forsinkelsesrente 12.50 % 2024H2', 'shipped'),
    ('NO', '[2025-01-01,2025-07-01)', 4.50, 'Norges Bank policy rate; forsinkelsesrente 12.50 % 2025H1', 'shipped'),
    ('NO', '[2025-07-01,2026-01-01)', 4.25, 'Norges Bank policy rate; forsinkelsesrente 12.25 % 2025H2', 'shipped');

-- ---------------------------------------------------------------- the default policy

INSERT INTO subbilling.dunning_policies (code, name, is_default, fee_terms_days, description, origin)
VALUES ('default', 'Default dunning', true, 10,
        'Reminder at +10 days with the country''s reminder fee, second reminder at +20 with a fee and interest, payment stop at +30, collection at +45 with interest',
        'shipped');

INSERT INTO subbilling.dunning_steps (policy_id, step_no, days_after_due, action, fee_kind, charge_interest, description, origin)
SELECT p.id, v.step_no, v.days, v.action, v.fee_kind, v.interest, v.description, 'shipped'
  FROM subbilling.dunning_policies p,
       (VALUES (1, 10, 'reminder',     'country', false, 'First reminder'),
               (2, 20, 'reminder',     'country', true,  'Second reminder'),
               (3, 30, 'payment_stop', 'none',    false, 'Payment stop: the subscription is suspended'),
               (4, 45, 'collection',   'none',    true,  'Handed over to collection')
       ) AS v(step_no, days, action, fee_kind, interest, description)
 WHERE p.code = 'default';

-- ---------------------------------------------------------------- helpers

-- The price of a list in a currency, or NULL.
CREATE FUNCTION subbilling_internal.price_in_currency(prices subbilling.price[], currency text) RETURNS subbilling.price
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (SELECT p FROM unnest(prices) AS p WHERE subbilling.currency(p) = upper(price_in_currency.currency) LIMIT 1);
COMMENT ON FUNCTION subbilling_internal.price_in_currency(subbilling.price[], text) IS 'the element of a price list in a currency, NULL if none';
REVOKE ALL ON FUNCTION subbilling_internal.price_in_currency(subbilling.price[], text) FROM PUBLIC;

-- The dunning policy of an account: its own, else the default.
CREATE FUNCTION subbilling_internal.dunning_policy_of(account_id bigint) RETURNS bigint
    LANGUAGE plpgsql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
-- PL/pgSQL: Citus plans its query with the parameter's value (not an SQL function's)
BEGIN
    RETURN (SELECT coalesce(a.dunning_policy_id, (SELECT p.id FROM subbilling.dunning_policies p WHERE p.is_default))
              FROM subbilling.accounts a WHERE a.id = dunning_policy_of.account_id);
END
$$;
COMMENT ON FUNCTION subbilling_internal.dunning_policy_of(bigint) IS 'the id of the dunning policy of an account: its dunning_policy_id, else the default policy';

-- The fee of a step for an invoice: the step's fee (fixed, or the
-- country's standard fee) in the invoice's currency, subject to the
-- country's rules (earliest day, number of fees, cap).  fee NULL = no fee;
-- note says why, or that the fee was capped.
CREATE FUNCTION subbilling_internal.dunning_fee(fee_kind text, fees subbilling.price[], country text, currency text,
                                       days_overdue integer, fees_before integer,
                                       OUT fee subbilling.price, OUT note text)
    LANGUAGE plpgsql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    cs      subbilling.country_settings;
    base    subbilling.price;
    cap     subbilling.price;
BEGIN
    IF fee_kind IS NULL OR fee_kind = 'none' THEN
        RETURN;
    END IF;
    SELECT * INTO cs FROM subbilling.country_settings c WHERE c.country = dunning_fee.country;
    IF fee_kind = 'fixed' THEN
        base := subbilling_internal.price_in_currency(fees, currency);
        IF base IS NULL THEN
            note := format('the step has no fee in %s', currency);
            RETURN;
        END IF;
    ELSE
        base := subbilling_internal.price_in_currency(cs.reminder_fees, currency);
        IF base IS NULL THEN
            note := format('country %s has no standard reminder fee in %s', country, currency);
            RETURN;
        END IF;
    END IF;
    IF cs.reminder_fee_min_days IS NOT NULL AND days_overdue < cs.reminder_fee_min_days THEN
        note := format('country %s allows a reminder fee from day %s after the due date, this is day %s',
                       country, cs.reminder_fee_min_days, days_overdue);
        RETURN;
    END IF;
    IF cs.reminder_fee_max_count IS NOT NULL AND fees_before >= cs.reminder_fee_max_count THEN
        note := format('country %s allows at most %s reminder fees per invoice', country, cs.reminder_fee_max_count);
        RETURN;
    END IF;
    IF cs.reminder_fee_caps IS NOT NULL THEN
        cap := subbilling_internal.price_in_currency(cs.reminder_fee_caps, currency);
        IF cap IS NULL THEN
            note := format('country %s caps reminder fees, but not in %s', country, currency);
            RETURN;
        END IF;
        IF base > cap THEN
            fee := cap;
            note := format('capped at %s (country %s), the step asks %s', cap, country, base);
            RETURN;
        END IF;
    END IF;
    fee := base;
END
$$;
COMMENT ON FUNCTION subbilling_internal.dunning_fee(text, subbilling.price[], text, text, integer, integer) IS 'internal: the fee of a dunning step in a currency after the country''s rules (earliest day, number of fees, cap); NULL fee with a note when none is due';

-- Late-payment interest on amount for the days d with from_date < d <=
-- to_date: amount * sum over those days of (reference rate of d + margin)
-- / 100 / 365, rounded once, half away from zero, to the minor unit.  A day
-- without a reference rate is an error (55000): the rates are settings.
CREATE FUNCTION subbilling.late_payment_interest(country text, amount subbilling.price, from_date date, to_date date,
                                                 OUT interest subbilling.price, OUT days integer,
                                                 OUT rate_days numeric, OUT rates jsonb)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    margin  numeric;
    span    daterange;
    covered integer;
    gap     date;
BEGIN
    IF amount IS NULL OR from_date IS NULL OR to_date IS NULL OR NOT isfinite(from_date) OR NOT isfinite(to_date)
       OR to_date < from_date THEN
        RAISE EXCEPTION 'late_payment_interest needs an amount and finite dates with from_date <= to_date'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s from %s to %s.', amount, from_date, to_date);
    END IF;
    -- dates the product accepts (22023): no span reaches the end of the calendar
    PERFORM subbilling_internal.check_date('from_date', from_date);
    PERFORM subbilling_internal.check_date('to_date', to_date);
    SELECT c.late_interest_margin INTO margin FROM subbilling.country_settings c WHERE c.country = late_payment_interest.country;
    IF margin IS NULL THEN
        RAISE EXCEPTION 'country % has no late-payment interest margin', coalesce(country, 'NULL')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Set country_settings.late_interest_margin and reference_rates.';
    END IF;
    days := to_date - from_date;
    span := daterange(from_date + 1, to_date + 1);
    SELECT coalesce(sum(upper(r.valid * span) - lower(r.valid * span)), 0),
           coalesce(sum((upper(r.valid * span) - lower(r.valid * span)) * greatest(r.rate + margin, 0)), 0),
           coalesce(jsonb_agg(jsonb_build_object('from', lower(r.valid * span), 'to', upper(r.valid * span) - 1,
                                                 'days', upper(r.valid * span) - lower(r.valid * span),
                                                 'reference_rate', r.rate, 'rate', greatest(r.rate + margin, 0))
                              ORDER BY lower(r.valid)), '[]')
      INTO covered, rate_days, rates
      FROM subbilling.reference_rates r
     WHERE r.country = late_payment_interest.country AND r.valid && span;
    IF covered <> days THEN
        SELECT min(d)::date INTO gap
          FROM generate_series(from_date + 1, to_date, '1 day') AS g(d)
         WHERE NOT EXISTS (SELECT 1 FROM subbilling.reference_rates r
                            WHERE r.country = late_payment_interest.country AND r.valid @> g.d::date);
        RAISE EXCEPTION 'no reference rate for country % on %', country, gap
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add the rate to subbilling.reference_rates.';
    END IF;
    interest := price_minor(round(minor_units(amount)::numeric * rate_days / 36500)::bigint, currency(amount));
END
$$;
COMMENT ON FUNCTION subbilling.late_payment_interest(text, subbilling.price, date, date) IS 'late-payment interest on amount for the days after from_date up to to_date: amount * sum of (reference rate + margin) per day / 36500, rounded once half away from zero; with the days, the rate-days and the rates used';
