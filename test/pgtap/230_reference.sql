-- payment references (OCR, KID): catalogue, published values and properties
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(39);

SELECT function_returns('subbilling', 'ocr_reference', ARRAY['text', 'boolean'], 'text');
SELECT function_returns('subbilling', 'ocr_valid', ARRAY['text', 'boolean'], 'boolean');
SELECT function_returns('subbilling', 'kid_reference', ARRAY['text', 'text'], 'text');
SELECT function_returns('subbilling', 'kid_valid', ARRAY['text', 'text'], 'boolean');
SELECT volatility_is('subbilling', f, args, 'immutable', f || ' is IMMUTABLE')
  FROM (VALUES ('ocr_reference', ARRAY['text', 'boolean']::name[]), ('ocr_valid', ARRAY['text', 'boolean']::name[]),
               ('kid_reference', ARRAY['text', 'text']::name[]), ('kid_valid', ARRAY['text', 'text']::name[])) AS t(f, args);
SELECT is_strict('subbilling', f, args, f || ' is STRICT')
  FROM (VALUES ('ocr_reference', ARRAY['text', 'boolean']::name[]), ('ocr_valid', ARRAY['text', 'boolean']::name[]),
               ('kid_reference', ARRAY['text', 'text']::name[]), ('kid_valid', ARRAY['text', 'text']::name[])) AS t(f, args);
SELECT is((SELECT count(*) FROM pg_proc
            WHERE pronamespace = 'subbilling'::regnamespace AND proname ~ '^(ocr|kid)_'
              AND proparallel = 's' AND obj_description(oid, 'pg_proc') IS NOT NULL), 4::bigint,
          'the 4 reference functions are PARALLEL SAFE and commented');

-- published and hand-computed values (docs/references.md)
SELECT is(ocr_reference('7992739871', false), '79927398713', 'Luhn textbook example 7992739871 -> 3');
SELECT is(ocr_reference('811218987', false), '8112189876', 'Swedish personnummer 811218-9876 check digit 6');
SELECT is(ocr_reference('12345'), '1234574', 'OCR 12345 with length digit 7 and check digit 4');
SELECT is(ocr_reference('12345', false), '123455', 'OCR 12345 without length digit');
SELECT is(ocr_reference('12345678'), '1234567806', 'OCR with 10 digits: length digit 0');
SELECT is(kid_reference('60224'), '602243', 'KID mod10 of invoice 60224 is 602243 (published)');
SELECT is(kid_reference('1374813', 'mod11'), '13748136', 'mod11 of 1374813 is 6 (Danish CVR 13748136)');
SELECT is(kid_reference('3112995671', 'mod11'), '31129956715', 'mod11 of 3112995671 is 5 (Norwegian fodselsnummer 31129956715)');
SELECT is(kid_reference('6', 'mod11'), '6-', 'mod11 check 10 is written -');
SELECT is(kid_reference('14', 'mod11'), '140', 'mod11 check 11 is written 0');
SELECT ok(ocr_valid('1234574') AND ocr_valid('1234574', true), 'OCR 1234574 valid, length digit too');
SELECT ok(ocr_valid('123455') AND NOT ocr_valid('123455', true), 'OCR 123455 valid, but not with a length digit');
SELECT ok(NOT ocr_valid('1234575'), 'OCR 1234575 invalid');
SELECT ok(NOT ocr_valid('12 34574') AND NOT ocr_valid('') AND NOT ocr_valid('0')
          AND NOT ocr_valid('12345678901234567890123457'), 'OCR: spaces, empty, 1 digit, 26 digits are invalid (false, no error)');
SELECT ok(kid_valid('6-', 'mod11') AND NOT kid_valid('6-') AND NOT kid_valid('-6', 'mod11'), 'KID: - only as a mod11 check');
SELECT throws_ok($$SELECT subbilling.ocr_reference('12a')$$, '22023', 'invalid OCR reference base: "12a"', 'OCR base with a letter: 22023');
SELECT throws_ok($$SELECT subbilling.ocr_reference('123456789012345678901234')$$, '22023',
                 'invalid OCR reference base: "123456789012345678901234"', 'OCR longer than 25: 22023');
SELECT throws_ok($$SELECT subbilling.kid_reference('', 'mod11')$$, '22023', 'invalid KID reference base: ""', 'empty KID base: 22023');
SELECT throws_ok($$SELECT subbilling.kid_reference('1', 'mod97')$$, '22023', 'unknown KID method "mod97"', 'unknown KID method: 22023');

-- PROPERTY: over 4000 deterministic bases of 1 to 23 digits, every generated reference is
-- valid, keeps the base as its prefix and has the expected length
CREATE TEMP TABLE bases ON COMMIT DROP AS
    SELECT i, left(translate(md5(i::text) || md5((-i)::text), 'abcdef', '314159'), 1 + i % 23) AS base
      FROM generate_series(1, 4000) AS i;
CREATE TEMP TABLE refs ON COMMIT DROP AS
    SELECT i, base, ocr_reference(base) AS ocr_len, ocr_reference(base, false) AS ocr,
           kid_reference(base) AS kid10, kid_reference(base, 'mod11') AS kid11
      FROM bases;
SELECT is((SELECT count(*) FROM refs WHERE ocr_valid(ocr_len, true) AND ocr_valid(ocr_len)
              AND length(ocr_len) = length(base) + 2 AND left(ocr_len, length(base)) = base
              AND right(ocr_len, 2)::int / 10 = (length(base) + 2) % 10), 4000::bigint,
          'PROPERTY 4000 OCR references with length digit are valid, with the right length digit');
SELECT is((SELECT count(*) FROM refs WHERE ocr_valid(ocr) AND length(ocr) = length(base) + 1
              AND left(ocr, length(base)) = base), 4000::bigint,
          'PROPERTY 4000 OCR references without length digit are valid');
SELECT is((SELECT count(*) FROM refs WHERE kid_valid(kid10) AND kid_valid(kid10, 'mod10')
              AND length(kid10) = length(base) + 1 AND left(kid10, length(base)) = base
              AND kid10 = ocr), 4000::bigint,
          'PROPERTY 4000 KID mod10 references are valid and equal the OCR without length digit');
SELECT is((SELECT count(*) FROM refs WHERE kid_valid(kid11, 'mod11') AND length(kid11) = length(base) + 1
              AND left(kid11, length(base)) = base), 4000::bigint,
          'PROPERTY 4000 KID mod11 references are valid');
SELECT ok((SELECT count(DISTINCT right(kid11, 1)) FROM refs) = 11, 'the mod11 check takes all 11 values 0-9 and -');

-- PROPERTY: changing any single character of a reference makes it invalid
-- (every position, every other digit, and '-' for KID mod11)
CREATE TEMP TABLE mutants ON COMMIT DROP AS
    SELECT r.i, kind, ref, pos, c, overlay(ref PLACING c FROM pos FOR 1) AS mutant
      FROM refs AS r,
           LATERAL (VALUES ('ocr_len', r.ocr_len), ('ocr', r.ocr), ('kid10', r.kid10), ('kid11', r.kid11)) AS k(kind, ref),
           generate_series(1, length(ref)) AS pos,
           unnest(string_to_array('0123456789-', NULL)) AS c
     WHERE r.i <= 1500 AND c <> substr(ref, pos, 1) AND (c <> '-' OR kind = 'kid11');
SELECT ok((SELECT count(*) FROM mutants) > 200000, 'more than 200000 single-character mutants');
SELECT is((SELECT count(*) FROM mutants
            WHERE CASE kind WHEN 'ocr_len' THEN ocr_valid(mutant) OR ocr_valid(mutant, true)
                            WHEN 'ocr' THEN ocr_valid(mutant)
                            WHEN 'kid10' THEN kid_valid(mutant)
                            ELSE kid_valid(mutant, 'mod11') END), 0::bigint,
          'PROPERTY no single-character change of an OCR or KID reference is valid');

SELECT * FROM finish();
ROLLBACK;
