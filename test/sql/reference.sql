-- payment references: Swedish OCR and Norwegian KID
SET search_path = subbilling, public;

CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
    hint text;
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' | ' || nullif(detail, ''), '')
           || coalesce(' | ' || nullif(hint, ''), '');
END
$$;

-- OCR, worked by hand in docs/references.md:
--   12345 with length digit: 7 digits in all -> length digit 7; Luhn of 123457 is 4
--   12345 without: Luhn of 12345 is 5
--   7992739871: the textbook Luhn example, check digit 3
--   811218987: Swedish personal identity number 811218-9876, check digit 6
SELECT base, ocr_reference(base) AS with_length, ocr_reference(base, false) AS without_length
  FROM (VALUES ('12345'), ('7992739871'), ('811218987'), ('12345678'), ('1'), ('0'),
               ('00000'), ('12345678901234567890123')) AS t(base);
SELECT ocr_reference('123456789012345678901234', false) AS longest_without_length_digit;

SELECT ref, ocr_valid(ref) AS luhn, ocr_valid(ref, true) AS luhn_and_length
  FROM (VALUES ('1234574'), ('123455'), ('79927398713'), ('8112189876'), ('1234567806'),
               ('1234575'), ('1234547'), ('79927398710'), ('00'), ('18'), ('133'),
               ('0'), (''), ('12345 74'), ('1234574 '), ('-1234574'), ('123457A'),
               ('1234567890123456789012357'), ('12345678901234567890123573'),
               ('１２３４５７４')) AS t(ref);

-- KID: mod10 (Luhn) and mod11 (weights 2..7 from the right, 10 -> '-', 11 -> '0')
--   60224 -> 602243 (Luhn)
--   1374813 -> 13748136: 3*2+1*3+8*4+4*5+7*6+3*7+1*2 = 126, 126 mod 11 = 5, 11 - 5 = 6
--   6 -> 6-: 6*2 = 12, 12 mod 11 = 1, 11 - 1 = 10 -> '-'
--   14 -> 140: 4*2+1*3 = 11, 11 mod 11 = 0 -> 0
SELECT base, kid_reference(base) AS mod10_default, kid_reference(base, 'mod10') AS mod10,
       kid_reference(base, 'mod11') AS mod11
  FROM (VALUES ('60224'), ('1374813'), ('6'), ('14'), ('3112995671'), ('1234567'),
               ('000000000000000000000001')) AS t(base);
SELECT kid_reference('1374813', 'MOD11') AS upper_case_method;

SELECT ref, kid_valid(ref) AS mod10, kid_valid(ref, 'mod11') AS mod11
  FROM (VALUES ('602243'), ('602242'), ('13748136'), ('13748137'), ('6-'), ('-6'), ('--'),
               ('140'), ('31129956715'), ('0'), (''), ('6 -'), ('60224-'), ('602 243'),
               ('0000000000000000000000018'), ('00000000000000000000000018')) AS t(ref);

-- errors of the *_reference functions: 22023
SELECT call, pg_temp.try('SELECT subbilling.' || call) AS result
  FROM (VALUES ($$ocr_reference('')$$), ($$ocr_reference('12a45')$$), ($$ocr_reference(' 12345')$$),
               ($$ocr_reference('-12345')$$), ($$ocr_reference('12.5')$$),
               ($$ocr_reference('123456789012345678901234')$$),
               ($$ocr_reference('1234567890123456789012345', false)$$),
               ($$kid_reference('')$$), ($$kid_reference('12-')$$),
               ($$kid_reference('1234567890123456789012345', 'mod11')$$),
               ($$kid_reference('12345', 'mod12')$$), ($$kid_reference('12345', '')$$),
               ($$kid_valid('12345', 'luhn')$$)) AS t(call);

-- STRICT
SELECT ocr_reference(NULL) IS NULL AS a, ocr_reference('1', NULL) IS NULL AS b, ocr_valid(NULL) IS NULL AS c,
       kid_reference(NULL) IS NULL AS d, kid_reference('1', NULL) IS NULL AS e, kid_valid(NULL) IS NULL AS f;
