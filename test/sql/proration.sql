-- prorate(price, period, part) by days (daterange) and by microseconds (tstzrange)
SET search_path = subbilling, public;
SET datestyle = 'ISO, YMD';
SET timezone = 'Europe/Stockholm';

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

-- by days: price * days(part) / days(period), rounded half away from zero
SELECT price, period, part, prorate(price::price, period::daterange, part::daterange)
  FROM (VALUES ('100.00 SEK', '[2024-02-01,2024-03-01)', '[2024-02-10,2024-03-01)'),  -- 20/29
               ('100.00 SEK', '[2024-02-01,2024-03-01)', '[2024-02-01,2024-03-01)'),  -- whole
               ('100.00 SEK', '[2024-02-01,2024-03-01)', '[2024-02-01,2024-02-02)'),  -- 1/29
               ('100.00 SEK', '[2023-02-01,2023-03-01)', '[2023-02-01,2023-02-02)'),  -- 1/28
               ('299.00 SEK', '[2024-01-31,2024-02-29)', '[2024-02-15,2024-02-29)'),  -- 14/29
               ('1199.00 SEK', '[2024-01-01,2025-01-01)', '[2024-07-01,2025-01-01)'), -- 184/366
               ('0.01 EUR', '[2024-01-01,2024-01-03)', '[2024-01-01,2024-01-02)'),    -- 0.005 -> 0.01
               ('-0.01 EUR', '[2024-01-01,2024-01-03)', '[2024-01-01,2024-01-02)'),   -- -0.005 -> -0.01
               ('0.01 EUR', '[2024-01-01,2024-01-04)', '[2024-01-01,2024-01-02)'),    -- 0.0033 -> 0.00
               ('1000 JPY', '[2024-01-01,2024-01-04)', '[2024-01-02,2024-01-04)'),    -- 666.67 -> 667
               ('10.000 KWD', '[2024-01-01,2024-01-04)', '[2024-01-02,2024-01-03)'),  -- 3.3333 -> 3.333
               ('100.00 SEK', '[2024-02-01,2024-02-29]', '[2024-02-10,2024-02-29]'),  -- inclusive form
               ('100.00 SEK', '(2024-01-31,2024-03-01)', '(2024-02-09,2024-03-01)'),  -- exclusive form
               ('100.00 SEK', '[2024-02-01,2024-03-01)', 'empty'),                    -- empty part
               ('100.00 SEK', '[2024-02-01,2024-03-01)', '[2024-02-10,2024-02-10)')   -- also empty
       ) AS t(price, period, part);

-- by time: microseconds, exact; inclusivity of the bounds does not change a length
SELECT price, period, part, prorate(price::price, period::tstzrange, part::tstzrange)
  FROM (VALUES ('100.00 SEK', '[2024-02-01,2024-02-02)', '[2024-02-01 06:00,2024-02-01 14:00)'),   -- 8/24
               ('100.00 SEK', '[2024-02-01,2024-02-02)', '[2024-02-01 06:00,2024-02-01 14:00]'),   -- same
               ('100.00 SEK', '[2024-03-31,2024-04-01)', '[2024-03-31 00:00,2024-03-31 12:00)'),   -- DST day: 11 of 23 hours
               ('30.00 EUR', '[2024-01-01,2024-01-01 00:00:00.000003)',
                             '[2024-01-01,2024-01-01 00:00:00.000001)'),                           -- 1/3 µs
               ('100.00 SEK', '[2024-02-01,2024-03-01)', '[2024-02-10,2024-03-01)'),               -- 20/29 days
               ('100.00 SEK', '[2024-02-01,2024-03-01)', 'empty'),
               ('100.00 SEK', '[2024-02-01,2024-03-01)', '[2024-02-10,2024-02-10]')                -- zero length
       ) AS t(price, period, part);

-- errors
SELECT call, pg_temp.try('SELECT subbilling.prorate(' || call || ')') AS result
  FROM (VALUES ($$'100.00 SEK', '[2024-02-01,2024-03-01)'::daterange, '[2024-01-31,2024-02-10)'::daterange$$),
               ($$'100.00 SEK', '[2024-02-01,2024-03-01)'::daterange, '[2024-02-10,2024-03-02)'::daterange$$),
               ($$'100.00 SEK', '[2024-02-01,2024-03-01)'::daterange, '[2024-04-01,2024-05-01)'::daterange$$),
               ($$'100.00 SEK', '[2024-02-01,2024-03-01)'::daterange, '[2024-02-10,)'::daterange$$),
               ($$'100.00 SEK', 'empty'::daterange, 'empty'::daterange$$),
               ($$'100.00 SEK', 'empty'::daterange, '[2024-02-10,2024-02-11)'::daterange$$),
               ($$'100.00 SEK', '[2024-02-01,)'::daterange, '[2024-02-10,2024-02-11)'::daterange$$),
               ($$'100.00 SEK', '(,2024-02-01)'::daterange, 'empty'::daterange$$),
               ($$'100.00 SEK', '[2024-02-01,infinity)'::daterange, '[2024-02-10,2024-02-11)'::daterange$$),
               ($$'100.00 SEK', '[-infinity,2024-02-01)'::daterange, '[2024-01-10,2024-01-11)'::daterange$$),
               ($$'100.00 SEK', '[2024-02-01,2024-02-01]'::tstzrange, '[2024-02-01,2024-02-01]'::tstzrange$$),
               ($$'100.00 SEK', 'empty'::tstzrange, 'empty'::tstzrange$$),
               ($$'100.00 SEK', '[2024-02-01,)'::tstzrange, '[2024-02-10,2024-02-11)'::tstzrange$$),
               ($$'100.00 SEK', '[2024-02-01,infinity)'::tstzrange, '[2024-02-10,2024-02-11)'::tstzrange$$),
               ($$'100.00 SEK', '[2024-02-01,2024-02-02)'::tstzrange, '[2024-02-01,2024-02-02]'::tstzrange$$),
               ($$'100.00 SEK', '(2024-02-01,2024-02-02)'::tstzrange, '[2024-02-01,2024-02-02)'::tstzrange$$),
               ($$'100.00 SEK', '[4713-01-01 BC,294276-01-01)'::tstzrange, '[2024-02-10,2024-02-11)'::tstzrange$$)
       ) AS t(call);

-- the error as a client sees it
SELECT prorate('100.00 SEK', '[2024-02-01,2024-03-01)'::daterange, '[2024-01-31,2024-02-10)'::daterange);
SELECT prorate('100.00 SEK', 'empty'::daterange, 'empty'::daterange);

-- untyped range literals are ambiguous between the two overloads: cast them
SELECT pg_temp.try($$SELECT subbilling.prorate('100.00 SEK', '[2024-02-01,2024-03-01)', '[2024-02-10,2024-03-01)')$$);

-- STRICT
SELECT prorate(NULL, '[2024-02-01,2024-03-01)'::daterange, 'empty') IS NULL AS a,
       prorate('1.00 SEK', NULL::daterange, 'empty') IS NULL AS b,
       prorate('1.00 SEK', '[2024-02-01,2024-03-01)'::daterange, NULL) IS NULL AS c;
