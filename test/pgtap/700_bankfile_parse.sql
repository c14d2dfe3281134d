-- bank files: parse_bgmax, parse_nets_ocr and the summaries: catalogue, every parsed value of
-- the sample files (test/bankfiles/, see make_samples.py), errors, and properties over
-- generated files and single-digit mutants
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(46);

\set bgmax_good `iconv -f latin1 -t utf-8 test/bankfiles/bgmax_good.txt`
\set bgmax_deduction `iconv -f latin1 -t utf-8 test/bankfiles/bgmax_deduction.txt`
\set nets_good `cat test/bankfiles/nets_good.txt`
\set nets_reversal `cat test/bankfiles/nets_reversal.txt`
CREATE TEMP TABLE files (name text PRIMARY KEY, body text) ON COMMIT DROP;
INSERT INTO files VALUES ('bgmax_good', :'bgmax_good'), ('bgmax_deduction', :'bgmax_deduction'),
                         ('nets_good', :'nets_good'), ('nets_reversal', :'nets_reversal');

-- catalogue: labels and comments
SELECT has_function('subbilling', f, ARRAY['text'], f || '(text) exists')
  FROM unnest(ARRAY['parse_bgmax', 'parse_nets_ocr', 'bgmax_summary', 'nets_ocr_summary']) AS f;
SELECT volatility_is('subbilling', f, ARRAY['text'], 'immutable', f || ' is IMMUTABLE')
  FROM unnest(ARRAY['parse_bgmax', 'parse_nets_ocr', 'bgmax_summary', 'nets_ocr_summary']) AS f;
SELECT is((SELECT count(*) FROM pg_proc
            WHERE pronamespace = 'subbilling'::regnamespace
              AND proname IN ('parse_bgmax', 'parse_nets_ocr', 'bgmax_summary', 'nets_ocr_summary')
              AND proisstrict AND proparallel = 's' AND obj_description(oid, 'pg_proc') IS NOT NULL),
          4::bigint, 'the 4 parse functions are STRICT, PARALLEL SAFE and commented');
SELECT ok((SELECT proretset FROM pg_proc WHERE oid = 'subbilling.parse_bgmax(text)'::regprocedure)
          AND (SELECT proretset FROM pg_proc WHERE oid = 'subbilling.parse_nets_ocr(text)'::regprocedure),
          'parse_bgmax and parse_nets_ocr return sets');

-- BgMax: every value of the good file
SELECT results_eq(
    $$SELECT line, amount, reference, received_on, bank_ref, payer, kind, reference_code, channel, image
        FROM parse_bgmax((SELECT body FROM files WHERE name = 'bgmax_good'))$$,
    $$VALUES (3, '1250.00 SEK'::price, '471169', '2025-03-14'::date, 'bgmax:0009912346:20250314:00001:1', '3783511', 'payment', 2, 1, false),
             (8, '499.00 SEK', '471268', '2025-03-14', 'bgmax:0009912346:20250314:00001:2', NULL, 'payment', 2, 1, false),
             (9, '300.00 SEK', '999961', '2025-03-14', 'bgmax:0009912346:20250314:00001:3', '9701233', 'payment', 2, 2, false),
             (13, '2000.00 SEK', 'FAKTURA 471367', '2025-03-17', 'bgmax:0009912346:20250317:00002:1', '1234567', 'payment', 4, 3, true),
             (17, '150.00 SEK', NULL, '2025-03-17', 'bgmax:0009912346:20250317:00002:2', NULL, 'payment', 1, 3, true)$$,
    'bgmax_good: lines, amounts, references, payment dates, bank identifiers, senders, codes');
SELECT results_eq(
    $$SELECT deduction_code, bgc_serial, receiver_bankgiro, deposit_serial, payer_name, payer_address,
             payer_org_no, information, extra_references
        FROM parse_bgmax((SELECT body FROM files WHERE name = 'bgmax_good'))$$,
    $$VALUES (NULL::int, '000000001001', '9912346', 1, 'Kalles Plåt AB', 'Storgatan 2, 12345 Storåker', '5560001234', NULL::text, NULL::text[]),
             (NULL, '000000001002', '9912346', 1, NULL, NULL, NULL, NULL, NULL),
             (NULL, '000000001003', '9912346', 1, 'Olles Färg AB', NULL, NULL, NULL, NULL),
             (NULL, '000000001004', '9912346', 2, 'Berits Garn c/o Berit Ek', NULL, NULL, 'Betalning avser två fakturor', ARRAY['471466']),
             (NULL, '000000001005', '9912346', 2, NULL, NULL, NULL, 'Medlemsavgift 2025', NULL)$$,
    'bgmax_good: serials, receiver, deposits, names and addresses (ISO-8859-1 letters), information, extra references');
SELECT results_eq(
    $$SELECT * FROM bgmax_summary((SELECT body FROM files WHERE name = 'bgmax_good'))$$,
    $$VALUES ('2025-03-17 06:15:30.123456'::timestamp, false, 1, 2, 5, 0, 1, 20)$$,
    'bgmax_good summary: timestamp, production, version 01, 2 deposits, 5 payments, 1 extra reference, 20 records');
SELECT is((SELECT sum(amount) FROM parse_bgmax((SELECT body FROM files WHERE name = 'bgmax_good'))),
          '4199.00 SEK'::price, 'bgmax_good: the payments sum to the two deposits, 2049.00 + 2150.00');
SELECT results_eq(
    $$SELECT line, kind, amount, deduction_code, extra_references
        FROM parse_bgmax((SELECT body FROM files WHERE name = 'bgmax_deduction'))$$,
    $$VALUES (3, 'payment', '1000.00 SEK'::price, NULL::int, NULL::text[]),
             (4, 'deduction', '-200.00 SEK', 0, ARRAY['471367'])$$,
    'bgmax_deduction: a deduction (21) is negative, with its code and its negative extra reference (23)');
SELECT is((SELECT test FROM bgmax_summary(replace((SELECT body FROM files WHERE name = 'bgmax_good'),
                                                    '123456P', '123456T'))),
          true, 'test marker T: a test file');

-- Nets: every value of the good file
SELECT results_eq(
    $$SELECT line, amount, reference, received_on, bank_ref, payer, transaction_type, transaction_number, bank_date
        FROM parse_nets_ocr((SELECT body FROM files WHERE name = 'nets_good'))$$,
    $$VALUES (3, '1250.00 NOK'::price, '50013', '2025-03-14'::date, 'nets:000123456:0000001:0000001', '12345678901', 10, 1, '2025-03-13'::date),
             (5, '499.00 NOK', '50021', '2025-03-14', 'nets:000123456:0000001:0000002', NULL, 13, 2, NULL),
             (9, '1000.00 NOK', '50039', '2025-03-17', 'nets:000123456:0000002:0000001', '98765432109', 10, 1, '2025-03-16'),
             (11, '50.00 NOK', NULL, '2025-03-17', 'nets:000123456:0000002:0000002', NULL, 21, 2, '2025-03-17'),
             (14, '300.00 NOK', '59998', '2025-03-18', 'nets:000123456:0000002:0000003', NULL, 19, 3, '2025-03-18')$$,
    'nets_good: lines, amounts, KIDs, Nets dates, bank identifiers, debited accounts, types, numbers, payment dates');
SELECT results_eq(
    $$SELECT form_number, archive_reference, message, agreement_id, assignment_number, assignment_account,
             centre_id, day_code, partial_settlement, settlement_serial
        FROM parse_nets_ocr((SELECT body FROM files WHERE name = 'nets_good'))$$,
    $$VALUES ('9797596016', '097596016', NULL, '000123456', '0000001', '12345678903', '01', 14, 1, '00011'),
             (NULL, NULL, NULL, '000123456', '0000001', '12345678903', '01', 14, 1, '00012'),
             ('9797596017', '097596017', NULL, '000123456', '0000002', '12345678903', '01', 17, 1, '00021'),
             (NULL, NULL, 'Gave til klubben', '000123456', '0000002', '12345678903', '01', 17, 1, '00022'),
             (NULL, NULL, NULL, '000123456', '0000002', '12345678903', '01', 18, 1, '00023')$$,
    'nets_good: form numbers, archive references, the amount item 3 text, assignments, settlement fields');
SELECT results_eq(
    $$SELECT * FROM nets_ocr_summary((SELECT body FROM files WHERE name = 'nets_good'))$$,
    $$VALUES ('00008080', '0000123', '00012345', 2, 5, 17, '3099.00 NOK'::price, '2025-03-18'::date)$$,
    'nets_good summary: transmitter, transmission, recipient, 2 assignments, 5 transactions, 17 records, 3099.00 NOK');
SELECT results_eq(
    $$SELECT transaction_type, amount FROM parse_nets_ocr((SELECT body FROM files WHERE name = 'nets_reversal'))$$,
    $$VALUES (10, '1000.00 NOK'::price), (18, '-250.00 NOK')$$,
    'nets_reversal: the reversal (sign -) is negative');
SELECT is((SELECT total FROM nets_ocr_summary((SELECT body FROM files WHERE name = 'nets_reversal'))),
          '750.00 NOK'::price, 'nets_reversal: the end records carry the net sum, 750.00');

-- the same file with CR LF or LF line ends, with or without a last line end
SELECT is((SELECT array_agg(bank_ref ORDER BY line) FROM parse_bgmax(replace((SELECT body FROM files WHERE name = 'bgmax_good'), E'\r', ''))),
          (SELECT array_agg(bank_ref ORDER BY line) FROM parse_bgmax((SELECT body FROM files WHERE name = 'bgmax_good'))),
          'BgMax with LF line ends parses the same as with CR LF');
SELECT is((SELECT sum(amount) FROM parse_nets_ocr(replace((SELECT body FROM files WHERE name = 'nets_good'), E'\n', E'\r\n') || E'\r\n')),
          '3099.00 NOK'::price, 'Nets with CR LF line ends and a last line end parses the same');

-- errors: 22P02, the message names the format
\set bgmax_bad_count `iconv -f latin1 -t utf-8 test/bankfiles/bgmax_bad_count.txt`
\set bgmax_bad_sum `iconv -f latin1 -t utf-8 test/bankfiles/bgmax_bad_sum.txt`
\set bgmax_bad_record `iconv -f latin1 -t utf-8 test/bankfiles/bgmax_bad_record.txt`
\set bgmax_truncated_line `iconv -f latin1 -t utf-8 test/bankfiles/bgmax_truncated_line.txt`
\set bgmax_missing_end `iconv -f latin1 -t utf-8 test/bankfiles/bgmax_missing_end.txt`
\set nets_bad_count `cat test/bankfiles/nets_bad_count.txt`
\set nets_bad_sum `cat test/bankfiles/nets_bad_sum.txt`
\set nets_bad_record `cat test/bankfiles/nets_bad_record.txt`
\set nets_truncated_line `cat test/bankfiles/nets_truncated_line.txt`
\set nets_missing_end `cat test/bankfiles/nets_missing_end.txt`
INSERT INTO files VALUES ('bgmax_bad_count', :'bgmax_bad_count'), ('bgmax_bad_sum', :'bgmax_bad_sum'),
    ('bgmax_bad_record', :'bgmax_bad_record'), ('bgmax_truncated_line', :'bgmax_truncated_line'),
    ('bgmax_missing_end', :'bgmax_missing_end'), ('nets_bad_count', :'nets_bad_count'),
    ('nets_bad_sum', :'nets_bad_sum'), ('nets_bad_record', :'nets_bad_record'),
    ('nets_truncated_line', :'nets_truncated_line'), ('nets_missing_end', :'nets_missing_end');
-- a right-trimmed record is padded back and read, with a warning
SELECT results_eq($$SELECT line, lines, warning FROM nets_ocr_warnings((SELECT body FROM files WHERE name = 'nets_truncated_line'))$$,
                  $$VALUES (10, 1, '1 record shorter than 80 characters (right-trimmed), padded back to 80 with blanks.')$$,
                  'nets_truncated_line: its right-trimmed line 10 is padded back, a warning says so');
SELECT is((SELECT sum(amount) FROM parse_nets_ocr((SELECT body FROM files WHERE name = 'nets_truncated_line'))),
          '3099.00 NOK'::price, 'nets_truncated_line: read whole');
SELECT is((SELECT count(*) FROM bgmax_warnings((SELECT body FROM files WHERE name = 'bgmax_good'))), 0::bigint,
          'a file of 80-character records has no warnings');
SELECT results_eq($$SELECT line, lines, warning FROM bgmax_warnings(regexp_replace((SELECT body FROM files WHERE name = 'bgmax_good'), ' +(\r?)$', '\1', 'gn'))$$,
                  $$VALUES (1, 20, '20 records shorter than 80 characters (right-trimmed), padded back to 80 with blanks.')$$,
                  'bgmax_good with every record right-trimmed: one warning for its 20 lines');
SELECT results_eq($$SELECT line, amount, reference, bank_ref FROM parse_bgmax(regexp_replace((SELECT body FROM files WHERE name = 'bgmax_good'), ' +(\r?)$', '\1', 'gn'))$$,
                  $$SELECT line, amount, reference, bank_ref FROM parse_bgmax((SELECT body FROM files WHERE name = 'bgmax_good'))$$,
                  '  and its payments read the same');
SELECT throws_ok(format('SELECT * FROM subbilling.%s((SELECT body FROM files WHERE name = %L))',
                        CASE WHEN name LIKE 'bgmax%' THEN 'parse_bgmax' ELSE 'parse_nets_ocr' END, name),
                 '22P02',
                 CASE WHEN name LIKE 'bgmax%' THEN 'invalid BgMax file' ELSE 'invalid Nets OCR giro file' END,
                 name || ' is refused with 22P02')
  FROM files WHERE name ~ '_(bad|truncated|missing)' AND name <> 'nets_truncated_line' ORDER BY name;

-- the DETAIL names the line and the reason
CREATE FUNCTION pg_temp.parse_error(kind text, body text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
BEGIN
    IF kind = 'bgmax' THEN
        PERFORM count(*) FROM subbilling.parse_bgmax(body);
    ELSE
        PERFORM count(*) FROM subbilling.parse_nets_ocr(body);
    END IF;
    RETURN NULL;
EXCEPTION WHEN invalid_text_representation THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN detail;
END
$$;
SELECT is(pg_temp.parse_error('bgmax', (SELECT body FROM files WHERE name = 'bgmax_bad_count')),
          'Line 11: deposit record count 2 does not match 3 payment records.', 'bgmax_bad_count: line 11, the deposit count');
SELECT is(pg_temp.parse_error('nets', (SELECT body FROM files WHERE name = 'nets_bad_sum')),
          'Line 17: transmission end record sum 3100.00 does not match 3099.00, the sum of the file''s amounts.',
          'nets_bad_sum: line 17, the transmission sum');

-- PROPERTY: changing any one digit of any amount of a good file is refused at the end
-- record of its section (BgMax 15, Nets 88): 8 x 18 x 9 BgMax and 5 x 17 x 9 Nets mutants
CREATE TEMP TABLE mutants ON COMMIT DROP AS
    SELECT 'bgmax' AS kind, l.n AS line, pos, d,
           (SELECT string_agg(CASE WHEN i = l.n THEN overlay(x PLACING d FROM pos FOR 1) ELSE x END, E'\r\n' ORDER BY i)
              FROM unnest(string_to_array(f.body, E'\r\n')) WITH ORDINALITY AS u(x, i)) AS body,
           CASE WHEN l.n < 11 THEN 11 ELSE 19 END AS expected_line
      FROM files AS f, generate_series(1, 20) AS l(n), generate_series(38, 55) AS pos,
           unnest(string_to_array('0123456789', NULL)) AS d
     WHERE f.name = 'bgmax_good' AND l.n IN (3, 8, 9, 13, 17)
       AND substr(split_part(f.body, E'\r\n', l.n), pos, 1) <> d
    UNION ALL
    SELECT 'nets', l.n, pos, d,
           (SELECT string_agg(CASE WHEN i = l.n THEN overlay(x PLACING d FROM pos FOR 1) ELSE x END, E'\n' ORDER BY i)
              FROM unnest(string_to_array(f.body, E'\n')) WITH ORDINALITY AS u(x, i)),
           CASE WHEN l.n < 7 THEN 7 ELSE 16 END
      FROM files AS f, generate_series(1, 17) AS l(n), generate_series(33, 49) AS pos,
           unnest(string_to_array('0123456789', NULL)) AS d
     WHERE f.name = 'nets_good' AND l.n IN (3, 5, 9, 11, 14)
       AND substr(split_part(f.body, E'\n', l.n), pos, 1) <> d;
SELECT is((SELECT count(*) FROM mutants), (5 * 18 * 9 + 5 * 17 * 9)::bigint, 'PROPERTY 1575 amount mutants');
SELECT is((SELECT count(*) FROM mutants
            WHERE pg_temp.parse_error(kind, body) LIKE 'Line ' || expected_line || ': % does not match %'),
          (SELECT count(*) FROM mutants),
          'PROPERTY every amount mutant is refused at its section''s end record, with both sums');

-- PROPERTY: a generated BgMax file of 3 deposits x 1000 payments parses back to exactly
-- the generated payments, in order
CREATE TEMP TABLE gen ON COMMIT DROP AS
    SELECT d, i, (d * 1000 + i) AS serial, ocr_reference((d * 100000 + i)::text) AS ref,
           abs(hashint4(d * 1000 + i)::bigint) % 10000000 + 1 AS minor
      FROM generate_series(1, 3) AS d, generate_series(1, 1000) AS i;
CREATE FUNCTION pg_temp.bg(tk text, fields text) RETURNS text LANGUAGE sql AS $$ SELECT rpad(tk || fields, 80) $$;
CREATE TEMP TABLE genfile ON COMMIT DROP AS
    SELECT pg_temp.bg('01', rpad('BGMAX', 20) || '01' || '20250401083000000000' || 'P') || E'\n'
           || (SELECT string_agg(
                 pg_temp.bg('05', '0005550001' || repeat(' ', 10) || 'SEK') || E'\n'
                 || (SELECT string_agg(pg_temp.bg('20', '0000000000' || lpad(ref, 25) || lpad(minor::text, 18, '0')
                                                        || '21' || lpad(serial::text, 12, '0') || '0'), E'\n' ORDER BY i)
                       FROM gen WHERE gen.d = s.d) || E'\n'
                 || pg_temp.bg('15', repeat('0', 35) || '2025040' || s.d || lpad(s.d::text, 5, '0')
                                    || lpad((SELECT sum(minor) FROM gen WHERE gen.d = s.d)::text, 18, '0')
                                    || 'SEK' || '00001000'),
                 E'\n' ORDER BY s.d)
                 FROM generate_series(1, 3) AS s(d)) || E'\n'
           || pg_temp.bg('70', '00003000' || '00000000' || '00000000' || '00000003') AS body;
SELECT results_eq(
    $$SELECT amount, reference, received_on, bank_ref FROM parse_bgmax((SELECT body FROM genfile))$$,
    $$SELECT price_minor(minor, 'SEK'), ref, ('2025-04-0' || d)::date,
             'bgmax:0005550001:2025040' || d || ':' || lpad(d::text, 5, '0') || ':' || i
        FROM gen ORDER BY d, i$$,
    'PROPERTY 3000 generated payments parse back exactly, in file order');
SELECT is((SELECT array_agg(line ORDER BY line) FROM parse_bgmax((SELECT body FROM genfile))),
          (SELECT array_agg(d * 1002 - 1000 + i ORDER BY d, i) FROM gen),
          'PROPERTY each payment carries its own line number');
SELECT results_eq($$SELECT deposits, payments, records FROM bgmax_summary((SELECT body FROM genfile))$$,
                  $$VALUES (3, 3000, 3008)$$, 'the generated file: 3 deposits, 3000 payments, 3008 records');
-- the same BGC serial twice in one deposit: two payments (serial numbers are no key)
SELECT is((SELECT count(DISTINCT bank_ref) FROM parse_bgmax(regexp_replace((SELECT body FROM genfile), '000000001002(0\s*\n)', '000000001001\1'))),
          3000::bigint, 'a repeated BGC serial number: still 3000 payments with 3000 bank identifiers');
-- the same deposit (receiver, date, deposit serial) twice: refused at the repeat
SELECT is(pg_temp.parse_error('bgmax', regexp_replace((SELECT body FROM genfile), '2025040200002', '2025040100001')),
          'Line 1005: the payment repeats the bank''s identifiers bgmax:0005550001:20250401:00001:1 of the payment on line 3.',
          'the same deposit twice in a file is refused at the repeat');

SELECT * FROM finish();
ROLLBACK;
