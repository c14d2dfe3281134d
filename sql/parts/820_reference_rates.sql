
-- ============================================================================
-- Reference rates of late-payment interest: set_reference_rate, and a warning
-- in worker_status when a country's rates end within 30 days.  A missing rate
-- never holds dunning back (dunning_take_step charges interest up to the last
-- day with a known rate; the rest with a later step).  docs/operations.md
-- ============================================================================

-- The rate of a country from valid_from: until the next rate already set,
-- at most to the end of valid_from's calendar half-year (both shipped
-- countries fix their rate per half-year).  A rate already set that covers
-- valid_from ends the day before.  Returns the validity set.
CREATE FUNCTION subbilling.set_reference_rate(country text, valid_from date, rate numeric)
    RETURNS daterange
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    half_end    date;
    next_from   date;
    v           daterange;
BEGIN
    IF country IS NULL OR valid_from IS NULL OR rate IS NULL THEN
        RAISE EXCEPTION 'set_reference_rate needs a country, a date and a rate'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT is_country_code(country) THEN
        RAISE EXCEPTION 'invalid country code "%"', country
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use an ISO 3166-1 alpha-2 code such as SE or NO.';
    END IF;
    IF NOT isfinite(valid_from) OR valid_from < '2000-01-01' OR valid_from > CURRENT_DATE + 366 THEN
        RAISE EXCEPTION 'a reference rate is valid from a date between 2000-01-01 and a year from today'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', valid_from);
    END IF;
    IF rate <= -100 OR rate >= 100 OR rate <> round(rate, 4) THEN
        RAISE EXCEPTION 'a reference rate is a percentage above -100 and below 100 with at most 4 decimals'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', rate);
    END IF;
    half_end := (date_trunc('year', valid_from) + CASE WHEN extract(month FROM valid_from) <= 6
                                                       THEN interval '6 months' ELSE interval '12 months' END)::date;
    SELECT min(lower(r.valid)) INTO next_from FROM subbilling.reference_rates r
     WHERE r.country = country AND lower(r.valid) > valid_from;
    v := daterange(valid_from, least(half_end, coalesce(next_from, half_end)));
    -- a rate set from the same day is replaced; one that covers the day ends before it
    DELETE FROM subbilling.reference_rates r WHERE r.country = country AND lower(r.valid) = valid_from;
    UPDATE subbilling.reference_rates r SET valid = daterange(lower(r.valid), valid_from)
     WHERE r.country = country AND r.valid @> valid_from;
    INSERT INTO subbilling.reference_rates (country, valid, rate, source)
    VALUES (country, v, rate, format('set_reference_rate by %s on %s', session_user, CURRENT_DATE));
    RETURN v;
END
$$;
COMMENT ON FUNCTION subbilling.set_reference_rate(text, date, numeric) IS
    'set the reference rate of late-payment interest of a country from a date: until the next rate set, at most to the end of that half-year; a covering rate ends the day before; returns the validity';
REVOKE ALL ON FUNCTION subbilling.set_reference_rate(text, date, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.set_reference_rate(text, date, numeric) TO subbilling_operator;
