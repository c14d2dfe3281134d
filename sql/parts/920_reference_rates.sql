
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

-- worker_status with the rate warnings (its last column)
CREATE OR REPLACE VIEW subbilling.worker_status AS
SELECT w.pid                  AS worker_pid,
       w.datname::text        AS worker_database,
       c.preloaded,
       c.enabled,
       c.naptime,
       c.batch_size,
       c.database,
       r.id                   AS last_run_id,
       r.origin               AS last_run_origin,
       r.started_at           AS last_run_started_at,
       r.finished_at          AS last_run_finished_at,
       r.status               AS last_run_status,
       r.batches              AS last_run_batches,
       r.invoices             AS last_run_invoices,
       r.errors               AS last_run_errors,
       r.dunning_steps        AS last_run_dunning_steps,
       r.transitions          AS last_run_transitions,
       r.sqlstate             AS last_run_sqlstate,
       r.message              AS last_run_message,
       (SELECT ok.finished_at FROM subbilling.worker_runs AS ok
         WHERE ok.status = 'ok' ORDER BY ok.id DESC LIMIT 1) AS last_ok_finished_at,
       (SELECT pg_catalog.count(*) FROM subbilling.billing_errors AS e
         WHERE e.resolved_at IS NULL) AS open_errors,
       (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'account_id', e.account_id, 'id', e.id, 'subscription_id', e.subscription_id,
                   'run_id', e.run_id, 'sqlstate', e.sqlstate, 'message', e.message,
                   'created_at', e.created_at)
                   ORDER BY e.created_at DESC, e.account_id, e.id), '[]'::jsonb)
          FROM (SELECT * FROM subbilling.billing_errors AS be
                 WHERE be.resolved_at IS NULL
                 ORDER BY be.created_at DESC, be.account_id, be.id LIMIT 5) AS e) AS recent_errors,
       (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'country', k.country, 'rates_end', k.rates_end,
                   'message', pg_catalog.format('the reference rates of %s end %s: add the next with set_reference_rate()',
                                                k.country, coalesce(k.rates_end::text, '(none)')))
                   ORDER BY k.country), '[]'::jsonb)
          FROM (SELECT cs.country, (SELECT pg_catalog.max(upper(rr.valid)) - 1 FROM subbilling.reference_rates AS rr
                                      WHERE rr.country = cs.country) AS rates_end
                  FROM subbilling.country_settings AS cs
                 WHERE cs.late_interest_margin IS NOT NULL) AS k
         WHERE k.rates_end IS NULL OR k.rates_end < CURRENT_DATE + 30) AS rate_warnings
  FROM subbilling.worker_config() AS c
  LEFT JOIN LATERAL (SELECT a.pid, a.datname FROM pg_catalog.pg_stat_activity AS a
                      WHERE a.backend_type = 'subbilling worker' LIMIT 1) AS w ON true
  LEFT JOIN LATERAL (SELECT * FROM subbilling.worker_runs AS lr ORDER BY lr.id DESC LIMIT 1) AS r ON true;
COMMENT ON VIEW subbilling.worker_status IS
    'one row: the running worker, its settings, the last run with its counts, open billing errors (the latest five as jsonb), and rate_warnings: the countries charging late-payment interest whose reference rates end within 30 days';

-- ---------------------------------------------------------------- rates confirmed from published sources
-- Sweden 2025H1: the referensränta is Riksbanken's effective policy rate at the
-- end of the previous half-year, rounded up to a half point; the cut to 2.50
-- decided in December 2024 applied from 8 January 2025, so 2.75 held on
-- 2024-12-31 and the rate is 3.00 (not 2.50).  Sources in docs/operations.md.
-- A shipped row an operator has changed (origin edited) is left alone.
ALTER TABLE subbilling.reference_rates DISABLE TRIGGER reference_rates_shipped_row;
UPDATE subbilling.reference_rates
   SET rate = 3.00,
       source = 'Riksbanken referensränta 2025H1 (policy rate 2.75 at 2024-12-31: the cut to 2.50 applied from 2025-01-08)'
 WHERE country = 'SE' AND valid = '[2025-01-01,2025-07-01)' AND origin = 'shipped';
ALTER TABLE subbilling.reference_rates ENABLE TRIGGER reference_rates_shipped_row;
