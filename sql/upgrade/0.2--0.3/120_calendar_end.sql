
-- ---------------------------------------------------------------------------
-- The end of the calendar: run_dunning and late_payment_interest take the
-- dates the product accepts (2000-01-01 to 10 years ahead, 22023) instead of
-- failing with 22008 for dates past the timestamp range (999_refresh
-- re-creates both as the install script defines them).
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION subbilling.run_dunning_batch(batch_size int, as_of date)
RETURNS TABLE (steps int, errors int, more boolean)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = subbilling, pg_catalog, pg_temp
AS $$ SELECT b.steps, b.errors, b.more FROM subbilling.dunning_batch(batch_size, as_of) AS b $$;
COMMENT ON FUNCTION subbilling.run_dunning_batch(int, date) IS
    'takes up to batch_size due dunning steps as of as_of in the caller''s transaction; failures go to billing_errors; more = due work remains';

CREATE OR REPLACE FUNCTION subbilling.late_payment_interest(country text, amount subbilling.price, from_date date, to_date date,
                                                 OUT interest subbilling.price, OUT days integer,
                                                 OUT rate_days numeric, OUT rates jsonb)
    LANGUAGE plpgsql STABLE
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
    PERFORM check_date('from_date', from_date);
    PERFORM check_date('to_date', to_date);
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
