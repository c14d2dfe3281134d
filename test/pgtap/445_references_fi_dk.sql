-- Finnish references and FI-kort payment ids are C (src/core/checkdigit.c):
-- a differential test against the PL/pgSQL they replaced, kept here as the
-- oracle, on every short base, many random ones and bad input.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;

SELECT plan(9);

-- the PL/pgSQL of version 0.2, unchanged but for the schema
CREATE FUNCTION pg_temp.old_fik_reference(base text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF base !~ '^[0-9]{1,14}$' THEN
        RAISE EXCEPTION 'invalid FIK payment id base "%"', base
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A FI-kort (+71) payment id has 14 digits before its check digit.';
    END IF;
    RETURN ocr_reference(lpad(base, 14, '0'), false);
END
$$;

CREATE FUNCTION pg_temp.old_fi_reference(base text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    b   text := base;
    s   integer := 0;
    n   integer;
BEGIN
    IF b !~ '^[0-9]{3,19}$' THEN
        RAISE EXCEPTION 'invalid Finnish reference base "%"', base
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A Finnish reference has 3 to 19 digits before its check digit.';
    END IF;
    n := length(b);
    FOR i IN 0 .. n - 1 LOOP
        s := s + substr(b, n - i, 1)::integer * (ARRAY[7, 3, 1])[i % 3 + 1];
    END LOOP;
    RETURN b || ((10 - s % 10) % 10)::text;
END
$$;

-- the result, or the error's SQLSTATE, message and detail
CREATE FUNCTION pg_temp.outcome(f text, base text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r   text;
    det text;
BEGIN
    r := CASE f WHEN 'fi' THEN subbilling.fi_reference(base)
                WHEN 'old_fi' THEN pg_temp.old_fi_reference(base)
                WHEN 'fik' THEN subbilling.fik_reference(base)
                WHEN 'old_fik' THEN pg_temp.old_fik_reference(base) END;
    RETURN coalesce(r, '<null>');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS det = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || ' | ' || det;
END
$$;

CREATE TEMP TABLE bases (base text);
-- every base of up to 5 digits, with and without leading zeros
INSERT INTO bases SELECT g::text FROM generate_series(0, 99999) g;
INSERT INTO bases SELECT lpad(g::text, w, '0') FROM generate_series(0, 999) g, generate_series(1, 5) w
 WHERE length(g::text) < w;
-- random bases of 1 to 25 digits (fixed seed)
SELECT setseed(0.445);
INSERT INTO bases
SELECT string_agg((floor(random() * 10))::int::text, '' ORDER BY k)
  FROM generate_series(1, 20000) n, LATERAL generate_series(1, 1 + (n % 25)) k
 GROUP BY n;
-- bad input
INSERT INTO bases VALUES (''), (' 123'), ('123 '), ('12a'), ('-123'), ('+71'), ('1.5'), (E'123\n'),
    ('١٢٣'), ('１２３'), ('0x1F'), ('1e5'), (repeat('9', 20)), (repeat('9', 30)), ('𝟙𝟚𝟛');

CREATE TEMP TABLE outcomes AS
SELECT DISTINCT base, pg_temp.outcome('fi', base) AS fi, pg_temp.outcome('old_fi', base) AS old_fi,
       pg_temp.outcome('fik', base) AS fik, pg_temp.outcome('old_fik', base) AS old_fik
  FROM bases;

SELECT cmp_ok((SELECT count(*) FROM outcomes), '>', 110000::bigint, 'more than 110,000 distinct bases');
SELECT is_empty($$ SELECT base, fi, old_fi FROM outcomes WHERE fi IS DISTINCT FROM old_fi $$,
                'fi_reference: the same reference or the same error as the PL/pgSQL for every base');
SELECT is_empty($$ SELECT base, fik, old_fik FROM outcomes WHERE fik IS DISTINCT FROM old_fik $$,
                'fik_reference: the same payment id or the same error as the PL/pgSQL for every base');
-- the comparison saw both outcomes
SELECT cmp_ok((SELECT count(*) FROM outcomes WHERE fi LIKE '22023:%'), '>', 1000::bigint,
              'fi_reference: many bases refused');
SELECT cmp_ok((SELECT count(*) FROM outcomes WHERE fik LIKE '22023:%'), '>', 1000::bigint,
              'fik_reference: many bases refused');

SELECT is(fi_reference(NULL), NULL, 'fi_reference is STRICT');
SELECT is(fik_reference(NULL), NULL, 'fik_reference is STRICT');
SELECT is((SELECT count(*) FROM pg_proc
            WHERE pronamespace = 'subbilling'::regnamespace AND proname IN ('fi_reference', 'fik_reference')
              AND prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')
              AND provolatile = 'i' AND proparallel = 's' AND proisstrict
              AND pg_get_function_result(oid) = 'text' AND pg_get_function_arguments(oid) = 'base text'
              AND obj_description(oid, 'pg_proc') IS NOT NULL), 2::bigint,
          'fi_reference and fik_reference: C, IMMUTABLE, STRICT, PARALLEL SAFE, (base text) -> text, commented');
SELECT throws_ok($$ SELECT fi_reference('') $$, '22023',
                 'invalid Finnish reference base ""', 'fi_reference: the empty base is refused');

SELECT * FROM finish();
ROLLBACK;
