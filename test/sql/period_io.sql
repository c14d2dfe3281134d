-- billing_period: text and binary I/O, canonical output, errors, equality, order, hashing
SET search_path = subbilling, public;
SET datestyle = 'ISO, YMD';
SET intervalstyle = 'postgres';

-- SQLSTATE, message and detail of a failing statement (no line numbers)
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' | ' || nullif(detail, ''), '');
END
$$;

-- every text form, alias and ISO 8601 form, with its canonical output
SELECT input, input::billing_period AS canonical
  FROM (VALUES ('1 month'), ('3 months'), ('1 year'), ('2 weeks'), ('14 days'),
               ('1 day'), ('1 week'), ('2 years'), ('6 months'), ('18 months'),
               ('12 months'), ('24 months'), ('7 days'), ('10 days'), ('21 days'),
               ('1 months'), ('3 month'), ('1 days'), ('2 week'), ('5 year'),
               ('monthly'), ('quarterly'), ('semiannually'), ('yearly'), ('annually'),
               ('weekly'), ('daily'),
               ('P1M'), ('P3M'), ('P1Y'), ('P2W'), ('P14D'), ('P7D'), ('P12M'), ('P1D'),
               ('12000 months'), ('1000 years'), ('365000 days'), ('52142 weeks'))
       AS t(input);

-- case-insensitive, white space tolerant, optional plus sign and leading zeros
SELECT input, input::billing_period AS canonical
  FROM (VALUES ('MONTHLY'), ('Quarterly'), ('  yearly  '), (E'\t2 Weeks\n'), ('1MONTH'),
               ('3months'), ('1   year'), ('p3m'), ('P2w'), (' P14D '), ('+1 month'),
               ('007 days'), ('0012 months'))
       AS t(input);

-- every class of malformed input: SQLSTATE, message and detail
SELECT input, pg_temp.try(format('SELECT %L::subbilling.billing_period', input)) AS result
  FROM (VALUES (''), ('   '), ('month'), ('months'), ('1'), ('1 fortnight'), ('1 mon'),
               ('1.5 months'), ('1,5 months'), ('one month'), ('1 month 2 days'),
               ('1 month,'), ('monthly monthly'), ('bi-weekly'), ('-'), ('- 1 month'),
               ('1e3 days'), ('0x10 days'),
               ('P'), ('P1'), ('PM'), ('P1X'), ('P1 M'), ('P-1M'), ('P1.5M'), ('1M'),
               ('PT1H'), ('P1M!'),
               ('P1Y2M'), ('P1M14D'), ('P2W1D'), ('P1MT2H'),
               ('0 months'), ('0 days'), ('-1 month'), ('-0 weeks'), ('P0M'), ('P0D'),
               ('-99999999999999999999 years'),
               ('1001 years'), ('12001 months'), ('365001 days'), ('52143 weeks'),
               ('P1001Y'), ('99999999999999999999999 days'))
       AS t(input);

-- the error as a client sees it, with its detail
SELECT 'fortnightly'::billing_period;
SELECT 'P1Y6M'::billing_period;
SELECT '0 months'::billing_period;
SELECT '2000 years'::billing_period;

-- equality is semantic
SELECT '12 months'::billing_period = '1 year' AS months_year,
       'P1Y'::billing_period = 'annually' AS iso_alias,
       '14 days'::billing_period = '2 weeks' AS days_weeks,
       'P7D'::billing_period = 'weekly' AS iso_weekly,
       '1 month'::billing_period = '30 days' AS month_30_days,
       '1 month'::billing_period <> '4 weeks' AS month_ne_4_weeks,
       '3 months'::billing_period <> 'quarterly' AS ne_quarterly;

-- the order: by average length (146097 days = 4800 months), months first on a tie
SELECT p FROM unnest('{1 year, 365 days, 366 days, 1 month, 30 days, 31 days, 2 weeks,
                       quarterly, 12 months, 1 day, 91 days, 92 days, 1600 months,
                       48699 days, 1000 years, 365000 days}'::billing_period[]) AS p
 ORDER BY p;
SELECT '1 month'::billing_period < '31 days' AS a, '1 month'::billing_period > '30 days' AS b,
       '1 year'::billing_period >= '12 months' AS c, '1 year'::billing_period <= '365 days' AS d,
       '1600 months'::billing_period < '48699 days' AS tie_months_first;

-- DISTINCT and GROUP BY by sort and by hash
SELECT DISTINCT p FROM unnest('{1 year, 12 months, P1Y, monthly, P1M, 2 weeks, 14 days}'::billing_period[]) AS p
 ORDER BY p;
SET enable_sort = off;
SET enable_hashagg = on;
SELECT p, count(*) FROM unnest('{1 year, 12 months, P1Y, monthly, P1M, 2 weeks, 14 days}'::billing_period[]) AS p
 GROUP BY p ORDER BY count(*), p::text;
RESET enable_sort;
RESET enable_hashagg;

-- a btree and a hash index
CREATE TEMP TABLE plans (id int, cadence billing_period);
INSERT INTO plans SELECT i, (ARRAY['monthly', 'quarterly', 'yearly', '2 weeks'])[1 + i % 4]::billing_period
  FROM generate_series(1, 1000) AS i;
CREATE INDEX plans_cadence_btree ON plans (cadence);
CREATE INDEX plans_cadence_hash ON plans USING hash (cadence);
ANALYZE plans;
SET enable_seqscan = off;
SELECT count(*) FROM plans WHERE cadence = '12 months';
SELECT count(*) FROM plans WHERE cadence < '1 month';
RESET enable_seqscan;
SELECT a.cadence, count(*) FROM plans a JOIN (VALUES ('P1Y'::billing_period)) AS b(c) ON a.cadence = b.c
 GROUP BY a.cadence;

-- binary output: unit byte (0 = months, 1 = days), then the count as int32
SELECT p, billing_period_send(p) FROM unnest('{1 month, 1 year, 2 weeks, 1 day}'::billing_period[]) AS p;

-- binary input round-trips, and is validated, through COPY (FORMAT binary):
-- a bytea column written in binary is read back as billing_period
CREATE TEMP TABLE raw (b bytea);
CREATE TEMP TABLE back (p billing_period);
CREATE FUNCTION pg_temp.recv(hex text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    f text := current_setting('data_directory') || '/billing_period_recv.copy';
    result text;
BEGIN
    DELETE FROM raw;
    DELETE FROM back;
    INSERT INTO raw VALUES (decode(hex, 'hex'));
    EXECUTE format('COPY raw TO %L (FORMAT binary)', f);
    result := pg_temp.try(format('COPY back FROM %L (FORMAT binary)', f));
    RETURN result || coalesce(' -> ' || (SELECT p::text FROM back), '');
END
$$;
SELECT hex, pg_temp.recv(hex)
  FROM (VALUES ('0000000001'), ('000000000c'), ('010000000e'), ('0000002ee0'), ('01000591c8'),
               ('0000000000'), ('0100000000'), ('00ffffffff'), ('0000002ee1'), ('01000591c9'),
               ('0200000001'), ('ff00000001'), ('00000001'), ('000000000100')) AS t(hex);
SELECT pg_temp.try(format('COPY (SELECT p FROM unnest(%L::subbilling.billing_period[]) AS p) TO %L (FORMAT binary)',
                          '{monthly, quarterly, P1Y, 2 weeks, 10 days, 1000 years, 365000 days}',
                          current_setting('data_directory') || '/billing_period_all.copy'));
SELECT pg_temp.try(format('COPY back FROM %L (FORMAT binary)',
                          current_setting('data_directory') || '/billing_period_all.copy'));
SELECT p FROM back;

-- casts to interval (explicit)
SELECT p, p::interval FROM unnest('{1 month, 3 months, 1 year, 2 weeks, 10 days}'::billing_period[]) AS p;

-- text casts and NULL
SELECT 'quarterly'::text::billing_period, 'P1Y'::billing_period::text, NULL::billing_period IS NULL AS is_null;
