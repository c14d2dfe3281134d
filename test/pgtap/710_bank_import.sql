-- bank files: import_bgmax and import_nets_ocr against invoices whose references the files
-- carry: payments matched, partial and over payments, the unmatched queue, idempotency per
-- file and per transaction, bad files and failing payments leave nothing behind, test files,
-- deductions and reversals, privileges.  Files are generated here with the invoices' real
-- references (pg_temp.bgmax_file, pg_temp.nets_file); the layouts are in docs/bankfiles.md.
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(68);
\ir 600_fixture.psql

-- A BgMax file: deposits [{date, currency, payments: [{ref, minor, serial, sender, channel}]}]
CREATE FUNCTION pg_temp.bgmax_file(deposits jsonb, marker text DEFAULT 'P', eol text DEFAULT E'\r\n')
    RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d   jsonb;
    p   jsonb;
    out text[] := ARRAY[rpad('01' || rpad('BGMAX', 20) || '01' || '20250317061530123456' || marker, 80)];
    n   int;
    s   bigint;
    np  int := 0;
    k   int := 0;
BEGIN
    FOR d IN SELECT * FROM jsonb_array_elements(deposits) LOOP
        k := k + 1;
        out := out || rpad('05' || '0009912346' || repeat(' ', 10) || coalesce(d->>'currency', 'SEK'), 80);
        n := 0;
        s := 0;
        FOR p IN SELECT * FROM jsonb_array_elements(d->'payments') LOOP
            out := out || rpad('20' || lpad(coalesce(p->>'sender', '0'), 10, '0') || lpad(coalesce(p->>'ref', ''), 25)
                               || lpad(p->>'minor', 18, '0') || CASE WHEN p->>'ref' IS NULL THEN '1' ELSE '2' END
                               || coalesce(p->>'channel', '1') || lpad(p->>'serial', 12, '0') || '0', 80);
            n := n + 1;
            s := s + (p->>'minor')::bigint;
        END LOOP;
        np := np + n;
        out := out || rpad('15' || lpad('58410000010098', 35, '0') || (d->>'date') || lpad(k::text, 5, '0')
                           || lpad(s::text, 18, '0') || coalesce(d->>'currency', 'SEK') || lpad(n::text, 8, '0'), 80);
    END LOOP;
    out := out || rpad('70' || lpad(np::text, 8, '0') || '00000000' || '00000000' || lpad(k::text, 8, '0'), 80);
    RETURN array_to_string(out, eol) || eol;
END $$;

-- A Nets OCR giro file: assignments [{number, transactions: [{type, number, date DDMMYY, minor, kid}]}]
CREATE FUNCTION pg_temp.nets_file(assignments jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    a       jsonb;
    t       jsonb;
    out     text[] := ARRAY['NY000010' || '00008080' || '0000123' || '00012345' || repeat('0', 49)];
    n       int;
    nrec    int;
    s       bigint;
    dmin    date;
    dmax    date;
    d       date;
    tn      int := 0;
    trec    int := 2;
    ts      bigint := 0;
    tlast   date;
BEGIN
    FOR a IN SELECT * FROM jsonb_array_elements(assignments) LOOP
        out := out || ('NY090020' || '000123456' || lpad(a->>'number', 7, '0') || '12345678903' || repeat('0', 45));
        n := 0;
        nrec := 2;
        s := 0;
        dmin := NULL;
        dmax := NULL;
        FOR t IN SELECT * FROM jsonb_array_elements(a->'transactions') LOOP
            d := to_date(t->>'date', 'DDMMYY');
            out := out || ('NY09' || lpad(t->>'type', 2, '0') || '30' || lpad(t->>'number', 7, '0') || (t->>'date')
                           || '01' || left(t->>'date', 2) || '1' || '00001'
                           || CASE WHEN (t->>'minor')::bigint < 0 THEN '-' ELSE '0' END
                           || lpad(abs((t->>'minor')::bigint)::text, 17, '0') || lpad(coalesce(t->>'kid', ''), 25)
                           || '000000');
            out := out || ('NY09' || lpad(t->>'type', 2, '0') || '31' || lpad(t->>'number', 7, '0')
                           || repeat('0', 26) || (t->>'date') || repeat('0', 33));
            n := n + 1;
            nrec := nrec + 2;
            s := s + (t->>'minor')::bigint;
            dmin := least(dmin, d);
            dmax := greatest(dmax, d);
        END LOOP;
        out := out || ('NY090088' || lpad(n::text, 8, '0') || lpad(nrec::text, 8, '0') || lpad(s::text, 17, '0')
                       || to_char(dmax, 'DDMMYY') || to_char(dmin, 'DDMMYY') || to_char(dmax, 'DDMMYY')
                       || repeat('0', 21));
        tn := tn + n;
        trec := trec + nrec;
        ts := ts + s;
        tlast := greatest(tlast, dmax);
    END LOOP;
    out := out || ('NY000089' || lpad(tn::text, 8, '0') || lpad(trec::text, 8, '0') || lpad(ts::text, 17, '0')
                   || to_char(tlast, 'DDMMYY') || repeat('0', 33));
    RETURN array_to_string(out, E'\n') || E'\n';
END $$;

CREATE FUNCTION pg_temp.nbank() RETURNS bigint LANGUAGE sql RETURN (SELECT count(*) FROM subbilling.bank_files);

-- ---------------------------------------------------------------- catalogue and privileges
SELECT volatility_is('subbilling', 'import_bgmax', ARRAY['text', 'boolean'], 'volatile', 'import_bgmax is VOLATILE');
SELECT volatility_is('subbilling', 'import_nets_ocr', ARRAY['text'], 'volatile', 'import_nets_ocr is VOLATILE');
SELECT is_definer('subbilling', 'import_bgmax', ARRAY['text', 'boolean'], 'import_bgmax is SECURITY DEFINER');
SELECT is_definer('subbilling', 'import_nets_ocr', ARRAY['text'], 'import_nets_ocr is SECURITY DEFINER');
SELECT is((SELECT count(*) FROM pg_proc
            WHERE oid IN ('subbilling.import_bgmax(text, boolean)'::regprocedure, 'subbilling.import_nets_ocr(text)'::regprocedure,
                          'subbilling_internal.import_bank_file(text, text, boolean)'::regprocedure)
              AND proconfig @> ARRAY['search_path=subbilling, pg_catalog, pg_temp']
              AND obj_description(oid, 'pg_proc') IS NOT NULL), 3::bigint,
          'the import functions pin search_path and are commented');
SELECT ok(NOT has_function_privilege('public', 'subbilling.import_bgmax(text, boolean)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling.import_nets_ocr(text)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling_internal.import_bank_file(text, text, boolean)', 'EXECUTE'),
          'PUBLIC cannot run the imports');
SELECT ok(has_function_privilege('subbilling_operator', 'subbilling.import_bgmax(text, boolean)', 'EXECUTE')
          AND has_function_privilege('subbilling_operator', 'subbilling.import_nets_ocr(text)', 'EXECUTE')
          AND NOT has_function_privilege('subbilling_operator', 'subbilling_internal.import_bank_file(text, text, boolean)', 'EXECUTE'),
          'subbilling_operator runs import_bgmax and import_nets_ocr, not the internal import_bank_file');
SELECT ok(has_table_privilege('subbilling_operator', 'subbilling.bank_files', 'SELECT')
          AND NOT has_table_privilege('subbilling_operator', 'subbilling.bank_files', 'INSERT')
          AND NOT has_table_privilege('subbilling_operator', 'subbilling.bank_files', 'UPDATE')
          AND NOT has_table_privilege('subbilling_reader', 'subbilling.bank_files', 'SELECT'),
          'bank_files: the operator reads it, nobody writes it but the imports');
SELECT col_is_unique('subbilling', 'bank_files', ARRAY['sha256'], 'bank_files.sha256 is unique');
SELECT ok(obj_description('subbilling.bank_files'::regclass, 'pg_class') IS NOT NULL, 'bank_files is commented');

-- ---------------------------------------------------------------- BgMax fixture
SELECT FROM pg_temp.account('bf_se_a');
SELECT FROM pg_temp.account('bf_se_b');
CREATE TEMP TABLE inv ON COMMIT DROP AS
SELECT 'i1' AS k, pg_temp.invoice(pg_temp.acct('bf_se_a'), ARRAY['1000.00 SEK'], ARRAY['p_saas'], '2025-02-01') AS id
UNION ALL SELECT 'i2', pg_temp.invoice(pg_temp.acct('bf_se_a'), ARRAY['399.20 SEK'], ARRAY['p_saas'], '2025-02-01')
UNION ALL SELECT 'i3', pg_temp.invoice(pg_temp.acct('bf_se_b'), ARRAY['1600.00 SEK'], ARRAY['p_saas'], '2025-02-01');
CREATE FUNCTION pg_temp.i(key text) RETURNS bigint LANGUAGE sql RETURN (SELECT id FROM inv WHERE k = key);
SELECT results_eq($$SELECT pg_temp.open(pg_temp.i(k)) FROM unnest(ARRAY['i1', 'i2', 'i3']) k$$,
                  ARRAY['1250.00 SEK', '499.00 SEK', '2000.00 SEK'],
                  'fixture: three open invoices of 1250.00, 499.00 and 2000.00 SEK');

-- two deposits: a full payment, a partial one, an unknown reference; an overpayment, no reference
CREATE TEMP TABLE bf (k text PRIMARY KEY, body text) ON COMMIT DROP;
INSERT INTO bf SELECT 'good', pg_temp.bgmax_file(jsonb_build_array(
    jsonb_build_object('date', '20250314', 'payments', jsonb_build_array(
        jsonb_build_object('ref', pg_temp.ref(pg_temp.i('i1')), 'minor', 125000, 'serial', 1001, 'sender', '3783511'),
        jsonb_build_object('ref', pg_temp.ref(pg_temp.i('i2')), 'minor', 30000, 'serial', 1002),
        jsonb_build_object('ref', '9999999999', 'minor', 30000, 'serial', 1003))),
    jsonb_build_object('date', '20250317', 'payments', jsonb_build_array(
        jsonb_build_object('ref', pg_temp.ref(pg_temp.i('i3')), 'minor', 210000, 'serial', 1004, 'channel', '3'),
        jsonb_build_object('minor', 15000, 'serial', 1005)))));
SELECT is((SELECT count(*) FROM parse_bgmax((SELECT body FROM bf WHERE k = 'good'))), 5::bigint,
          'the generated BgMax file parses: 5 payments');

-- ---------------------------------------------------------------- BgMax import
CREATE TEMP TABLE first_import ON COMMIT DROP AS SELECT * FROM import_bgmax((SELECT body FROM bf WHERE k = 'good'));
SELECT results_eq($$SELECT format, payments, imported, already_imported, unmatched, skipped, total, repeated FROM first_import$$,
                  $$VALUES ('bgmax', 5, 3, 0, 2, 0, '4100.00 SEK'::price, false)$$,
                  'import_bgmax: 5 payments, 3 matched, 2 unmatched, total 4100.00 SEK, a new file');
SELECT results_eq(
    $$SELECT p.invoice_id, p.amount, p.reference, p.received_on, p.method, p.external_id, p.matched_by
        FROM payments p WHERE p.external_id LIKE 'bgmax:%' ORDER BY p.external_id$$,
    $$VALUES (pg_temp.i('i1'), '1250.00 SEK'::price, pg_temp.ref(pg_temp.i('i1')), '2025-03-14'::date, 'bankgiro',
              'bgmax:0009912346:20250314:000000001001', 'reference'),
             (pg_temp.i('i2'), '300.00 SEK', pg_temp.ref(pg_temp.i('i2')), '2025-03-14', 'bankgiro',
              'bgmax:0009912346:20250314:000000001002', 'reference'),
             (pg_temp.i('i3'), '2100.00 SEK', pg_temp.ref(pg_temp.i('i3')), '2025-03-17', 'bankgiro',
              'bgmax:0009912346:20250317:000000001004', 'reference')$$,
    'three payments registered: amounts, references, the deposits'' payment dates, method bankgiro, the bank identifiers');
SELECT results_eq($$SELECT pg_temp.status(pg_temp.i(k)), pg_temp.open(pg_temp.i(k)) FROM unnest(ARRAY['i1', 'i2', 'i3']) k$$,
                  $$VALUES ('paid', '0.00 SEK'), ('open', '199.00 SEK'), ('paid', '0.00 SEK')$$,
                  'invoice 1 paid, invoice 2 partly paid (199.00 open), invoice 3 paid');
SELECT is(pg_temp.credit('bf_se_b'), '100.00 SEK', 'the overpayment of invoice 3 is 100.00 SEK customer credit');
SELECT results_eq(
    $$SELECT amount, reference, received_on, method, external_id, reason, status FROM unmatched_payments
       WHERE external_id LIKE 'bgmax:%' ORDER BY external_id$$,
    $$VALUES ('300.00 SEK'::price, '9999999999', '2025-03-14'::date, 'bankgiro', 'bgmax:0009912346:20250314:000000001003',
              'unknown reference', 'open'),
             ('150.00 SEK', NULL, '2025-03-17', 'bankgiro', 'bgmax:0009912346:20250317:000000001005', 'no reference', 'open')$$,
    'the unknown reference and the payment without one wait in unmatched_payments');
SELECT results_eq(
    $$SELECT b.id, b.format, b.sha256, b.received_by, b.file_created_at, b.transmission, b.test, b.records,
             b.sections, b.payments, b.content
        FROM bank_files b WHERE b.id = (SELECT file_id FROM first_import)$$,
    $$SELECT (SELECT file_id FROM first_import), 'bgmax', sha256(convert_to(body, 'LATIN1')), session_user,
             '2025-03-17 06:15:30.123456'::timestamp, NULL::text, false, 11, 2, 5, body
        FROM bf WHERE k = 'good'$$,
    'bank_files records the file: format, SHA-256 of its bytes, who, the start record''s timestamp, counts, the content');
SELECT is(pg_temp.unbalanced(), 0::bigint, 'every journal entry balances after the import');

-- the same file again: nothing new, the first import's result
CREATE TEMP TABLE snap1 ON COMMIT DROP AS SELECT pg_temp.snap() AS s, pg_temp.nbank() AS n;
SELECT results_eq($$SELECT file_id, payments, imported, already_imported, unmatched, total, received_at, repeated
                      FROM import_bgmax((SELECT body FROM bf WHERE k = 'good'))$$,
                  $$SELECT file_id, payments, imported, already_imported, unmatched, total, received_at, true FROM first_import$$,
                  'the same file again returns the first import (same id and counts), repeated = true');
SELECT is(pg_temp.snap(), (SELECT s FROM snap1), 'the same file again writes no payment, entry or event');
SELECT is(pg_temp.nbank(), (SELECT n FROM snap1), 'the same file again adds no bank_files row');

-- the same payments in another file (LF line ends: other bytes): all already imported
SELECT results_eq($$SELECT payments, imported, already_imported, unmatched, skipped, repeated
                      FROM import_bgmax(replace((SELECT body FROM bf WHERE k = 'good'), E'\r\n', E'\n'))$$,
                  $$VALUES (5, 0, 5, 0, 0, false)$$,
                  'another file with the same transactions: a new bank file, all 5 already imported');
SELECT is(pg_temp.snap(), (SELECT s FROM snap1), 'the same transactions again write no payment, entry or event');
SELECT is(pg_temp.nbank(), (SELECT n FROM snap1) + 1, 'but the second file is recorded');

-- one old and one new payment (invoice 2's rest) in a third file
INSERT INTO bf SELECT 'third', pg_temp.bgmax_file(jsonb_build_array(
    jsonb_build_object('date', '20250314', 'payments', jsonb_build_array(
        jsonb_build_object('ref', pg_temp.ref(pg_temp.i('i1')), 'minor', 125000, 'serial', 1001, 'sender', '3783511'))),
    jsonb_build_object('date', '20250320', 'payments', jsonb_build_array(
        jsonb_build_object('ref', pg_temp.ref(pg_temp.i('i2')), 'minor', 19900, 'serial', 1001)))));
SELECT results_eq($$SELECT payments, imported, already_imported, unmatched, total
                      FROM import_bgmax((SELECT body FROM bf WHERE k = 'third'))$$,
                  $$VALUES (2, 1, 1, 0, '1449.00 SEK'::price)$$,
                  'a file with one old and one new payment: 1 imported, 1 already imported');
SELECT is(pg_temp.status(pg_temp.i('i2')), 'paid', 'invoice 2 is paid by its second payment');
SELECT is((SELECT count(*) FROM payments WHERE external_id LIKE 'bgmax:%'), 4::bigint, 'four BgMax payments in all');

-- ---------------------------------------------------------------- refused whole, nothing written
TRUNCATE snap1;
INSERT INTO snap1 VALUES (pg_temp.snap(), pg_temp.nbank());
\set bgmax_bad_count `iconv -f latin1 -t utf-8 test/bankfiles/bgmax_bad_count.txt`
\set bgmax_missing_end `iconv -f latin1 -t utf-8 test/bankfiles/bgmax_missing_end.txt`
\set bgmax_deduction `iconv -f latin1 -t utf-8 test/bankfiles/bgmax_deduction.txt`
INSERT INTO bf VALUES ('bad_count', :'bgmax_bad_count'), ('missing_end', :'bgmax_missing_end'),
                      ('deduction', :'bgmax_deduction');
SELECT throws_ok($$SELECT * FROM subbilling.import_bgmax((SELECT body FROM bf WHERE k = 'bad_count'))$$,
                 '22P02', 'invalid BgMax file', 'a file with a wrong deposit count is refused (22P02)');
SELECT throws_ok($$SELECT * FROM subbilling.import_bgmax((SELECT body FROM bf WHERE k = 'missing_end'))$$,
                 '22P02', 'invalid BgMax file', 'a file without its end record is refused (22P02)');
-- a bad file whose first deposit is good: its valid payments are not imported either
INSERT INTO bf SELECT 'late_error', replace(pg_temp.bgmax_file(jsonb_build_array(
    jsonb_build_object('date', '20250321', 'payments', jsonb_build_array(
        jsonb_build_object('ref', pg_temp.ref(pg_temp.i('i3')), 'minor', 5000, 'serial', 3001))),
    jsonb_build_object('date', '20250322', 'payments', jsonb_build_array(
        jsonb_build_object('ref', pg_temp.ref(pg_temp.i('i3')), 'minor', 5000, 'serial', 3002))))),
    '00000001 ' || E'\r\n' || '70', '00000002 ' || E'\r\n' || '70');
SELECT throws_ok($$SELECT * FROM subbilling.import_bgmax((SELECT body FROM bf WHERE k = 'late_error'))$$,
                 '22P02', 'invalid BgMax file', 'a file whose last deposit count is wrong is refused (22P02)');
SELECT throws_ok($$SELECT * FROM subbilling.import_bgmax((SELECT body FROM bf WHERE k = 'deduction'))$$,
                 '0A000', 'BgMax file with a negative amount refused', 'a file with a deduction (21) is refused (0A000)');
SELECT throws_ok($$SELECT * FROM subbilling.import_bgmax(NULL)$$, '22004', 'no bank file', 'no file: 22004');
-- a transaction seen before with another amount aborts it all too
INSERT INTO bf SELECT 'changed', pg_temp.bgmax_file(jsonb_build_array(
    jsonb_build_object('date', '20250321', 'payments', jsonb_build_array(
        jsonb_build_object('ref', '9999999999', 'minor', 800, 'serial', 5001))),
    jsonb_build_object('date', '20250314', 'payments', jsonb_build_array(
        jsonb_build_object('ref', pg_temp.ref(pg_temp.i('i1')), 'minor', 125001, 'serial', 1001)))));
SELECT throws_ok($$SELECT * FROM subbilling.import_bgmax((SELECT body FROM bf WHERE k = 'changed'))$$,
                 '23505', NULL, 'bank identifiers seen before with another amount: 23505 from register_payment');
SELECT is(pg_temp.snap(), (SELECT s FROM snap1), 'the refused files wrote no payment, unmatched payment, entry or event');
SELECT is(pg_temp.nbank(), (SELECT n FROM snap1), 'the refused files left no bank_files row');
SELECT is((SELECT count(*) FROM unmatched_payments WHERE external_id IN ('bgmax:0009912346:20250321:000000004001',
                                                                        'bgmax:0009912346:20250321:000000005001')),
          0::bigint, 'the good payments before the failing one are not in the unmatched queue');

-- test files: refused unless asked for
INSERT INTO bf SELECT 'test', pg_temp.bgmax_file(jsonb_build_array(
    jsonb_build_object('date', '20250324', 'payments', jsonb_build_array(
        jsonb_build_object('ref', '9999999999', 'minor', 1234, 'serial', 6001)))), 'T');
SELECT throws_ok($$SELECT * FROM subbilling.import_bgmax((SELECT body FROM bf WHERE k = 'test'))$$,
                 '22023', 'BgMax test file refused', 'a test file (T) is refused (22023)');
SELECT is(pg_temp.nbank(), (SELECT n FROM snap1), 'the refused test file left no bank_files row');
SELECT results_eq($$SELECT imported, unmatched FROM import_bgmax((SELECT body FROM bf WHERE k = 'test'), allow_test => true)$$,
                  $$VALUES (0, 1)$$, 'with allow_test the test file is imported');
SELECT is((SELECT test FROM bank_files ORDER BY id DESC LIMIT 1), true, 'bank_files marks it a test file');

-- Autogiro payments reported in BgMax (channel 4) settle as autogiro
SELECT FROM pg_temp.account('bf_se_c');
INSERT INTO inv SELECT 'i4', pg_temp.invoice(pg_temp.acct('bf_se_c'), ARRAY['80.00 SEK'], ARRAY['p_saas'], '2025-02-01');
SELECT results_eq($$SELECT imported FROM import_bgmax(pg_temp.bgmax_file(jsonb_build_array(
                        jsonb_build_object('date', '20250325', 'payments', jsonb_build_array(
                            jsonb_build_object('ref', pg_temp.ref(pg_temp.i('i4')), 'minor', 10000, 'serial', 7001,
                                               'channel', '4'))))))$$,
                  $$VALUES (1)$$, 'a payment of channel 4 is imported');
SELECT is((SELECT method FROM payments WHERE invoice_id = pg_temp.i('i4')), 'autogiro', 'its method is autogiro');

-- the operator role can import (SECURITY DEFINER), a plain role cannot: the statement runs
-- as the role, its result or SQLSTATE comes back
CREATE FUNCTION pg_temp.as_role(r text, stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    res text;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', r);
    BEGIN
        EXECUTE stmt INTO res;
    EXCEPTION WHEN OTHERS THEN
        res := SQLSTATE;
    END;
    RESET ROLE;
    RETURN res;
END $$;
CREATE ROLE bf_op_test NOLOGIN IN ROLE subbilling_operator;
CREATE ROLE bf_plain_test NOLOGIN;
GRANT USAGE ON SCHEMA subbilling TO bf_plain_test;
SELECT is(pg_temp.as_role('bf_op_test', format(
              'SELECT imported || ''/'' || unmatched FROM subbilling.import_bgmax(%L)',
              pg_temp.bgmax_file(jsonb_build_array(jsonb_build_object('date', '20250326', 'payments', jsonb_build_array(
                  jsonb_build_object('ref', '12345', 'minor', 4200, 'serial', 8001))))))),
          '0/1', 'a member of subbilling_operator imports a file (1 unmatched)');
SELECT is(pg_temp.as_role('bf_plain_test', format('SELECT file_id FROM subbilling.import_bgmax(%L)',
                                                  (SELECT body FROM bf WHERE k = 'good'))),
          '42501', 'a role without subbilling_operator cannot import (42501)');

-- ---------------------------------------------------------------- Nets OCR giro
SELECT FROM pg_temp.account('bf_no_a', 'NO', 'NOK');
SELECT FROM pg_temp.account('bf_no_b', 'NO', 'NOK');
INSERT INTO inv SELECT 'n1', pg_temp.invoice(pg_temp.acct('bf_no_a'), ARRAY['1000.00 NOK'], ARRAY['p_saas'], '2025-02-01')
UNION ALL SELECT 'n2', pg_temp.invoice(pg_temp.acct('bf_no_a'), ARRAY['399.20 NOK'], ARRAY['p_saas'], '2025-02-01')
UNION ALL SELECT 'n3', pg_temp.invoice(pg_temp.acct('bf_no_b'), ARRAY['800.00 NOK'], ARRAY['p_saas'], '2025-02-01');
SELECT ok((SELECT bool_and(kid_valid(pg_temp.ref(pg_temp.i(k)))) FROM unnest(ARRAY['n1', 'n2', 'n3']) k),
          'fixture: the Norwegian invoices carry KIDs');
INSERT INTO bf SELECT 'nets', pg_temp.nets_file(jsonb_build_array(
    jsonb_build_object('number', 41, 'transactions', jsonb_build_array(
        jsonb_build_object('type', 10, 'number', 1, 'date', '140325', 'minor', 125000, 'kid', pg_temp.ref(pg_temp.i('n1'))),
        jsonb_build_object('type', 13, 'number', 2, 'date', '140325', 'minor', 40000, 'kid', pg_temp.ref(pg_temp.i('n2'))))),
    jsonb_build_object('number', 42, 'transactions', jsonb_build_array(
        jsonb_build_object('type', 15, 'number', 1, 'date', '170325', 'minor', 100000, 'kid', pg_temp.ref(pg_temp.i('n3'))),
        jsonb_build_object('type', 21, 'number', 2, 'date', '170325', 'minor', 5000),
        jsonb_build_object('type', 19, 'number', 3, 'date', '180325', 'minor', 30000, 'kid', '59998')))));
SELECT results_eq($$SELECT transmission_number, assignments, transactions, total FROM nets_ocr_summary((SELECT body FROM bf WHERE k = 'nets'))$$,
                  $$VALUES ('0000123', 2, 5, '3000.00 NOK'::price)$$, 'the generated Nets file: 2 assignments, 5 transactions, 3000.00 NOK');
CREATE TEMP TABLE nets_import ON COMMIT DROP AS SELECT * FROM import_nets_ocr((SELECT body FROM bf WHERE k = 'nets'));
SELECT results_eq($$SELECT format, payments, imported, already_imported, unmatched, skipped, total, repeated FROM nets_import$$,
                  $$VALUES ('nets_ocr', 5, 3, 0, 2, 0, '3000.00 NOK'::price, false)$$,
                  'import_nets_ocr: 5 transactions, 3 matched, 2 unmatched, 3000.00 NOK');
SELECT results_eq(
    $$SELECT p.invoice_id, p.amount, p.received_on, p.method, p.external_id
        FROM payments p WHERE p.external_id LIKE 'nets:%' ORDER BY p.external_id$$,
    $$VALUES (pg_temp.i('n1'), '1250.00 NOK'::price, '2025-03-14'::date, 'ocr_giro', 'nets:000123456:0000041:0000001'),
             (pg_temp.i('n2'), '400.00 NOK', '2025-03-14', 'ocr_giro', 'nets:000123456:0000041:0000002'),
             (pg_temp.i('n3'), '1000.00 NOK', '2025-03-17', 'avtalegiro', 'nets:000123456:0000042:0000001')$$,
    'Nets payments: amounts, Nets dates, method ocr_giro (avtalegiro for type 15), the bank identifiers');
SELECT results_eq($$SELECT pg_temp.status(pg_temp.i(k)), pg_temp.open(pg_temp.i(k)) FROM unnest(ARRAY['n1', 'n2', 'n3']) k$$,
                  $$VALUES ('paid', '0.00 NOK'), ('open', '99.00 NOK'), ('paid', '0.00 NOK')$$,
                  'Norwegian invoices: paid, 99.00 open, paid');
SELECT is(pg_temp.credit('bf_no_b'), '0.00 NOK', 'no customer credit for the exact AvtaleGiro payment');
SELECT results_eq(
    $$SELECT amount, reference, method, external_id, reason FROM unmatched_payments
       WHERE external_id LIKE 'nets:%' ORDER BY external_id$$,
    $$VALUES ('50.00 NOK'::price, NULL::text, 'ocr_giro', 'nets:000123456:0000042:0000002', 'no reference'),
             ('300.00 NOK', '59998', 'ocr_giro', 'nets:000123456:0000042:0000003', 'unknown reference')$$,
    'the transaction without KID and the unknown KID wait in unmatched_payments');
SELECT is((SELECT transmission FROM bank_files WHERE id = (SELECT file_id FROM nets_import)), '00008080:0000123',
          'bank_files records the Nets transmission');
TRUNCATE snap1;
INSERT INTO snap1 VALUES (pg_temp.snap(), pg_temp.nbank());
SELECT results_eq($$SELECT file_id, imported, unmatched, repeated FROM import_nets_ocr((SELECT body FROM bf WHERE k = 'nets'))$$,
                  $$SELECT file_id, imported, unmatched, true FROM nets_import$$,
                  'the same Nets file again returns the first import');
SELECT is(pg_temp.snap(), (SELECT s FROM snap1), 'the same Nets file again writes nothing');
\set nets_reversal `cat test/bankfiles/nets_reversal.txt`
\set nets_bad_sum `cat test/bankfiles/nets_bad_sum.txt`
INSERT INTO bf VALUES ('nets_reversal', :'nets_reversal'), ('nets_bad_sum', :'nets_bad_sum');
SELECT throws_ok($$SELECT * FROM subbilling.import_nets_ocr((SELECT body FROM bf WHERE k = 'nets_reversal'))$$,
                 '0A000', 'Nets OCR giro file with a negative amount refused', 'a Nets file with a reversal is refused (0A000)');
SELECT throws_ok($$SELECT * FROM subbilling.import_nets_ocr((SELECT body FROM bf WHERE k = 'nets_bad_sum'))$$,
                 '22P02', 'invalid Nets OCR giro file', 'a Nets file with a wrong sum is refused (22P02)');
SELECT throws_ok($$SELECT * FROM subbilling.import_nets_ocr((SELECT body FROM bf WHERE k = 'good'))$$,
                 '22P02', 'invalid Nets OCR giro file', 'a BgMax file given to import_nets_ocr is refused (22P02)');
SELECT is(pg_temp.snap(), (SELECT s FROM snap1), 'the refused Nets files wrote nothing');
SELECT is(pg_temp.nbank(), (SELECT n FROM snap1), 'the refused Nets files left no bank_files row');
-- a zero amount moves no money: skipped
SELECT results_eq($$SELECT payments, imported, unmatched, skipped FROM import_nets_ocr(pg_temp.nets_file(jsonb_build_array(
                        jsonb_build_object('number', 43, 'transactions', jsonb_build_array(
                            jsonb_build_object('type', 10, 'number', 1, 'date', '200325', 'minor', 0, 'kid', '59998'),
                            jsonb_build_object('type', 10, 'number', 2, 'date', '200325', 'minor', 9900,
                                               'kid', pg_temp.ref(pg_temp.i('n2'))))))))$$,
                  $$VALUES (2, 1, 0, 1)$$, 'a zero-amount transaction is skipped, the other imported');
SELECT is(pg_temp.status(pg_temp.i('n2')), 'paid', 'invoice n2 paid by its second payment');
-- an empty transmission is a valid file without payments
SELECT results_eq($$SELECT payments, imported, unmatched, total, repeated FROM import_nets_ocr(
                        'NY000010000080800000124000123450000000000000000000000000000000000000000000000000' || E'\n' ||
                        'NY000089000000000000000200000000000000000000000000000000000000000000000000000000')$$,
                  $$VALUES (0, 0, 0, '0.00 NOK'::price, false)$$, 'an empty Nets transmission imports as a file without payments');

-- PROPERTY: the import registers exactly the file's parsed payments, and the outcome
-- counts add up, for every file imported above
SELECT is((SELECT count(*) FROM bank_files b
            WHERE b.imported + b.already_imported + b.unmatched + b.skipped <> b.payments), 0::bigint,
          'PROPERTY in every bank file the outcomes add up to its payments');
SELECT is((SELECT count(*) FROM bank_files b,
                  LATERAL (SELECT bank_ref FROM parse_bgmax(b.content) WHERE b.format = 'bgmax' AND minor_units(amount) > 0
                           UNION ALL
                           SELECT bank_ref FROM parse_nets_ocr(b.content) WHERE b.format = 'nets_ocr' AND minor_units(amount) > 0) r
            WHERE NOT EXISTS (SELECT 1 FROM payments p WHERE p.external_id = r.bank_ref)
              AND NOT EXISTS (SELECT 1 FROM unmatched_payments u WHERE u.external_id = r.bank_ref)), 0::bigint,
          'PROPERTY every non-zero payment of every recorded file is registered under its bank identifiers');
SELECT is(pg_temp.unbalanced(), 0::bigint, 'every journal entry balances at the end');

-- a payment in another currency than its invoice's goes to the unmatched queue with its
-- reason; the rest of the file is imported
INSERT INTO bf SELECT 'eur', pg_temp.bgmax_file(jsonb_build_array(
    jsonb_build_object('date', '20250321', 'payments', jsonb_build_array(
        jsonb_build_object('ref', '9999999999', 'minor', 700, 'serial', 4001))),
    jsonb_build_object('date', '20250321', 'currency', 'EUR', 'payments', jsonb_build_array(
        jsonb_build_object('ref', pg_temp.ref(pg_temp.i('i3')), 'minor', 1000, 'serial', 4002)))));
SELECT is((SELECT imported || '/' || unmatched FROM subbilling.import_bgmax((SELECT body FROM bf WHERE k = 'eur'))), '0/2',
          'a EUR payment on a SEK invoice does not abort the file: both payments queued');
SELECT is((SELECT string_agg(reason, ', ' ORDER BY external_id) FROM unmatched_payments
            WHERE external_id IN ('bgmax:0009912346:20250321:000000004001', 'bgmax:0009912346:20250321:000000004002')),
          'unknown reference, other currency', 'each with its reason');

SELECT * FROM finish();
ROLLBACK;
