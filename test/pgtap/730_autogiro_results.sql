-- Autogiro results and mandate requests, the whole cycles:
--   mandate -> claim file -> report of rejected payment orders (AVVISADE BET
--   UPPDR) -> payment_failed with Bankgirot's reason -> dunning;
--   mandate requested by hand -> mandate request file (04) -> mandate
--   advice (32) -> active -> claimed; cancelled by hand -> request file (03);
-- refund -> outgoing payment (32) in the claim file -> paid, or refused and
-- registered back; each file once, each request once; and references equal
-- across countries
-- (a Swedish OCR number that is also a Norwegian KID).
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 600_fixture.psql

SELECT plan(77);

\set mandates `cat test/bankfiles/autogiro_mandates.txt`
CREATE TEMP TABLE advice_file AS SELECT :'mandates'::text AS body;

-- one failure is final here: the invoice goes to dunning at once
UPDATE payment_settings SET retry_days = '{}';

CREATE FUNCTION pg_temp.ag_account(ext text, kind text DEFAULT 'autogiro') RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT pg_temp.account(ext);
    INSERT INTO subbilling.payment_methods (account_id, kind, is_default) VALUES (pg_temp.acct(ext), kind, true);
    SELECT pg_temp.acct(ext);
$$;
-- a report of rejected payment orders, in Bankgirot's layout (new format):
-- rows (code 82/32, payment date, payer, öre, reference, comment code)
CREATE FUNCTION pg_temp.rejections(rows jsonb, written text DEFAULT '20240326') RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    out text[] := ARRAY[rpad('01AUTOGIRO' || repeat(' ', 14) || written || repeat(' ', 12) || 'AVVISADE BET UPPDR  '
                             || '123456' || '0009912346', 80)];
    r   jsonb;
    n   bigint[] := '{0,0}';
    s   bigint[] := '{0,0}';
    k   int;
BEGIN
    FOR r IN SELECT * FROM jsonb_array_elements(rows) LOOP
        out := out || rpad((r->>'code') || (r->>'date') || '0' || '   ' || lpad(r->>'payer', 16, '0')
                           || lpad(r->>'minor', 12, '0') || rpad(coalesce(r->>'ref', ''), 16) || (r->>'comment'), 80);
        k := CASE WHEN r->>'code' = '32' THEN 1 ELSE 2 END;
        n[k] := n[k] + 1;
        s[k] := s[k] + (r->>'minor')::bigint;
    END LOOP;
    out := out || rpad('09' || written || '9900' || lpad(n[1]::text, 6, '0') || lpad(s[1]::text, 12, '0')
                       || lpad(n[2]::text, 6, '0') || lpad(s[2]::text, 12, '0'), 80);
    RETURN array_to_string(out, E'\r\n') || E'\r\n';
END $$;
CREATE FUNCTION pg_temp.lines(body text) RETURNS text[] LANGUAGE sql IMMUTABLE
    RETURN string_to_array(rtrim(body, E'\r\n'), E'\r\n');

-- ------------------------------------------------------------ privileges
SELECT ok(NOT has_function_privilege('public', 'subbilling.import_autogiro_rejections(text)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling.autogiro_refund(bigint, subbilling.price, date)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling.request_autogiro_mandate(bigint, text, text, text, date)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling.cancel_autogiro_mandate(text, date)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling.autogiro_mandate_file(date, text, text)', 'EXECUTE')
          AND NOT has_function_privilege('subbilling_reader', 'subbilling.autogiro_mandate_file(date, text, text)', 'EXECUTE'),
          'PUBLIC and the reader cannot run the new Autogiro functions');
SELECT ok(has_function_privilege('subbilling_operator', 'subbilling.import_autogiro_rejections(text)', 'EXECUTE')
          AND has_function_privilege('subbilling_operator', 'subbilling.request_autogiro_mandate(bigint, text, text, text, date)', 'EXECUTE')
          AND has_function_privilege('subbilling_operator', 'subbilling.cancel_autogiro_mandate(text, date)', 'EXECUTE')
          AND has_function_privilege('subbilling_operator', 'subbilling.autogiro_mandate_file(date, text, text)', 'EXECUTE')
          AND has_function_privilege('subbilling_operator', 'subbilling.autogiro_refund(bigint, subbilling.price, date)', 'EXECUTE')
          AND has_table_privilege('subbilling_operator', 'subbilling.autogiro_payouts', 'SELECT')
          AND NOT has_table_privilege('subbilling_operator', 'subbilling.autogiro_payouts', 'UPDATE'),
          'the operator runs them');
SELECT ok(NOT has_function_privilege('public', 'subbilling_internal.autogiro_rejection_reason(integer)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling_internal.invoices_of_reference(text, text, subbilling.price)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling_internal.reference_kind_of_method(text)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling_internal.autogiro_payout_refused(bigint, integer, date)', 'EXECUTE'),
          'the helpers are internal');
SELECT is_definer('subbilling', 'import_autogiro_rejections', ARRAY['text'], 'import_autogiro_rejections is SECURITY DEFINER');

-- ------------------------------------------------------------ rejected payment orders
SELECT FROM pg_temp.ag_account('a1');
SELECT FROM pg_temp.ag_account('a2');
SELECT FROM register_autogiro_mandate(pg_temp.acct('a1'), '1001', '2024-03-01');
SELECT FROM register_autogiro_mandate(pg_temp.acct('a2'), '1002', '2024-03-01');
CREATE TEMP TABLE inv AS
    SELECT 'a1' AS ext, pg_temp.invoice(pg_temp.acct('a1'), '{100.00 SEK}', '{p_saas}', '2024-03-01') AS id
    UNION ALL SELECT 'a2', pg_temp.invoice(pg_temp.acct('a2'), '{40.00 SEK}', '{p_saas}', '2024-03-01');
SELECT is(array_length(pg_temp.lines(autogiro_claim_file('2024-03-25', '123456', '9912346')), 1), 3,
          'the claim file claims both invoices');
CREATE TEMP TABLE rej AS SELECT pg_temp.rejections(jsonb_build_array(
    jsonb_build_object('code', '82', 'date', '20240331', 'payer', '1001', 'minor', 12500,
                       'ref', pg_temp.ref((SELECT id FROM inv WHERE ext = 'a1')), 'comment', '01'),
    jsonb_build_object('code', '82', 'date', '20240331', 'payer', '9999', 'minor', 700, 'ref', 'X', 'comment', '02'),
    jsonb_build_object('code', '32', 'date', '20240320', 'payer', '1002', 'minor', 5000, 'ref', 'ATERBET', 'comment', '13'))) AS body;
SELECT results_eq($$ SELECT kind, code, payer_number, amount_minor, status, settled_on, section_serial, written_on
                      FROM parse_autogiro((SELECT body FROM rej)) ORDER BY line $$,
    $$ VALUES ('rejections', 82, '1001', 12500::bigint, 1, NULL::date, NULL::integer, '2024-03-26'::date),
              ('rejections', 82, '9999', 700::bigint, 2, NULL, NULL, '2024-03-26'),
              ('rejections', 32, '1002', 5000::bigint, 13, NULL, NULL, '2024-03-26') $$,
    'parse_autogiro reads the report: kind rejections, the comment code as status, the report''s date');
SELECT results_eq($$ SELECT refused, unknown, repeated FROM import_autogiro_rejections((SELECT body FROM rej)) $$,
    $$ VALUES (1, 2, false) $$, 'the report: one claim of ours refused; a claim not ours and an outgoing payment unknown');
SELECT results_eq($$ SELECT r.status, r.failure_reason, r.failed_on, r.next_attempt_on FROM payment_requests r
                      WHERE r.invoice_id = (SELECT id FROM inv WHERE ext = 'a1') $$,
    $$ VALUES ('failed', 'autogiro: no mandate', '2024-03-26'::date, NULL::date) $$,
    'the refused claim: payment_failed on the report''s date with Bankgirot''s reason');
SELECT is((SELECT payload->>'reason' FROM events WHERE type = 'payment.failed' AND invoice_id = (SELECT id FROM inv WHERE ext = 'a1')),
          'autogiro: no mandate', 'event payment.failed');
SELECT results_eq($$ SELECT payer_number, outcome, status_code FROM autogiro_claims ORDER BY payer_number $$,
    $$ VALUES ('1001', 'refused', 1), ('1002', 'sent', NULL) $$, 'the claim records the refusal and its comment code');
SELECT is(pg_temp.status((SELECT id FROM inv WHERE ext = 'a1')), 'open', 'its invoice stays open');
SELECT is((SELECT count(*) FROM dunning_due('2024-03-31') d WHERE d.invoice_id = (SELECT id FROM inv WHERE ext = 'a1')), 0::bigint,
          'not dunned before its due date');
SELECT is((SELECT next_action FROM dunning_due('2024-04-01') d WHERE d.invoice_id = (SELECT id FROM inv WHERE ext = 'a1')),
          'overdue', '  and dunning takes it up the day after');
SELECT results_eq($$ SELECT refused, unknown, repeated FROM import_autogiro_rejections((SELECT body FROM rej)) $$,
    $$ VALUES (0, 0, true) $$, 'the same report again: nothing new');
SELECT results_eq($$ SELECT refused, unknown, repeated FROM import_autogiro_rejections(replace((SELECT body FROM rej), E'\r', '')) $$,
    $$ VALUES (0, 3, false) $$, 'the same rejections in another file: no claim is failed twice');
SELECT is((SELECT count(*) FROM events WHERE type = 'payment.failed'), 1::bigint, 'one payment.failed in all');
-- a later payment specification answering the refused claim changes nothing
SELECT results_eq($$ SELECT approved, rejected, unknown FROM import_autogiro_payments(
        rpad('01AUTOGIRO' || repeat(' ', 14) || '20240402061500000000' || 'BET. SPEC & STOPP TK' || '123456' || '0009912346', 80) || E'\r\n' ||
        rpad('15' || repeat('0', 35) || '20240402' || '00017' || lpad('12500', 18, '0') || '   ' || '00000001', 80) || E'\r\n' ||
        rpad('82' || '20240331' || '0' || '    ' || lpad('1001', 16, '0') || lpad('12500', 12, '0') || '0009912346', 79) || '0' || E'\r\n' ||
        rpad('09' || '20240402' || '9900' || '000001' || lpad('1', 12, '0') || repeat('0', 36), 80) || E'\r\n') $$,
    $$ VALUES (0, 0, 1) $$, 'a refused claim is not booked by a later specification');
SELECT * FROM pg_temp.refused($$ SELECT * FROM import_autogiro_rejections(replace((SELECT body FROM rej), '000002000000013200', '000003000000013200')) $$,
    '22P02', 'invalid Autogiro file', 'a report whose end record miscounts: 22P02, nothing read');
SELECT * FROM pg_temp.refused($$ SELECT * FROM import_autogiro_rejections((SELECT body FROM advice_file)) $$,
    '22023', 'not an Autogiro report of rejected payment orders', 'a mandate advice is not a rejection report: 22023');

-- ------------------------------------------------------------ mandate requests
SELECT FROM pg_temp.ag_account('a3');
SELECT FROM pg_temp.ag_account('a4');
SELECT results_eq($$ SELECT status, request, request_file_id, bank_account, id_number, source
                      FROM request_autogiro_mandate(pg_temp.acct('a3'), '1003', '3300-000 123 4567', '19700101-1234', '2024-03-01') $$,
    $$ VALUES ('requested', 'new', NULL::bigint, '33000001234567', '197001011234', 'hand') $$,
    'a mandate requested by hand: requested, to be sent, account and personal number without separators');
SELECT is((request_autogiro_mandate(pg_temp.acct('a4'), '1004', '8327912345678', '5560000001', '2024-03-01')).status, 'requested',
          'a company''s mandate (organisation number, 10 digits)');
SELECT * FROM pg_temp.refused($$ SELECT request_autogiro_mandate(pg_temp.acct('a4'), '1001', '8327912345678', '5560000001') $$,
    '23505', 'Autogiro payer number 1001 belongs to another account', 'a payer number of another account: 23505');
SELECT * FROM pg_temp.refused($$ SELECT request_autogiro_mandate(pg_temp.acct('a4'), '1005', '83279', '55600000') $$,
    '22023', 'invalid personal or organisation number "55600000"', 'an id number of 8 digits: 22023');
SELECT * FROM pg_temp.refused($$ SELECT request_autogiro_mandate(pg_temp.acct('a4'), '1005', '1234', '5560000001') $$,
    '22023', 'invalid bank account "1234"', 'a bank account of 4 digits: 22023');
SELECT * FROM pg_temp.refused($$ SELECT request_autogiro_mandate(-1, '1005', '8327912345678', '5560000001') $$,
    '42704', 'account -1 does not exist', 'no such account: 42704');
SELECT is((request_autogiro_mandate(pg_temp.acct('a1'), '1001', '8327912345678', '197001011234')).status, 'active',
          'an active mandate requested again is left active');
INSERT INTO inv SELECT 'a3', pg_temp.invoice(pg_temp.acct('a3'), '{80.00 SEK}', '{p_saas}', '2024-03-10');
SELECT is(array_length(pg_temp.lines(autogiro_claim_file('2024-03-26', '123456', '9912346')), 1), 1,
          'a requested mandate is not claimed on');
CREATE TEMP TABLE mf1 AS SELECT autogiro_mandate_file('2024-03-27', '123456', '9912346') AS body;
SELECT is(pg_temp.lines((SELECT body FROM mf1)),
          ARRAY[rpad('0120240327AUTOGIRO' || repeat(' ', 44) || '1234560009912346', 80),
                rpad('04' || '0009912346' || '0000000000001003' || '0033000001234567' || '197001011234', 80),
                rpad('04' || '0009912346' || '0000000000001004' || '0008327912345678' || '005560000001', 80)],
          'the mandate request file: the opening, a new mandate (04) per request: bankgiro, payer number, account, id number');
SELECT ok((SELECT body FROM mf1) ~ '^([^\r\n]{80}\r\n)+$', 'records of 80 characters, CR LF');
SELECT is(autogiro_mandate_file('2024-03-27', '123456', '9912346'), (SELECT body FROM mf1), 'the same run date: the same file');
SELECT is(pg_temp.lines(autogiro_mandate_file('2024-03-28', '123456', '9912346')),
          ARRAY[rpad('0120240328AUTOGIRO' || repeat(' ', 44) || '1234560009912346', 80)],
          'the next day: no request is sent twice');
SELECT results_eq($$ SELECT payer_number, status, request, request_file_id IS NOT NULL FROM autogiro_mandates
                      WHERE payer_number IN ('1003', '1004') ORDER BY 1 $$,
    $$ VALUES ('1003', 'requested', 'new', true), ('1004', 'requested', 'new', true) $$,
    'the requests are sent, waiting for the answer');
-- Bankgirot's answer: 1003 approved (32), 1004 refused (05: wrong bank account or personal details)
CREATE TEMP TABLE adv AS SELECT
    rpad('01AUTOGIRO' || repeat(' ', 14) || '20240402' || repeat(' ', 12) || 'AG-MEDAVI' || repeat(' ', 11) || '123456' || '0009912346', 80) || E'\r\n' ||
    rpad('73' || '0009912346' || '0000000000001003' || '0033000001234567' || '197001011234' || '00000' || '04' || '32' || '20240402', 80) || E'\r\n' ||
    rpad('73' || '0009912346' || '0000000000001004' || '0008327912345678' || '005560000001' || '00000' || '04' || '05' || '20240402', 80) || E'\r\n' ||
    rpad('09' || '20240402' || '9900' || '0000002', 80) || E'\r\n' AS body;
SELECT results_eq($$ SELECT activated, cancelled, unknown FROM import_autogiro_mandates((SELECT body FROM adv)) $$,
    $$ VALUES (1, 1, 0) $$, 'the mandate advice answers both requests');
SELECT results_eq($$ SELECT payer_number, status, status_code, request FROM autogiro_mandates
                      WHERE payer_number IN ('1003', '1004') ORDER BY 1 $$,
    $$ VALUES ('1003', 'active', 32, NULL::text), ('1004', 'rejected', 5, NULL) $$,
    'approved: active; refused: rejected; both requests answered');
SELECT is((pg_temp.lines(autogiro_claim_file('2024-04-03', '123456', '9912346')))[2],
          rpad('82' || '20240409' || '0' || '    ' || '0000000000001003' || lpad(minor_units((SELECT total FROM invoices WHERE id = (SELECT id FROM inv WHERE ext = 'a3')))::text, 12, '0')
               || '0009912346' || pg_temp.ref((SELECT id FROM inv WHERE ext = 'a3')), 80),
          'the approved mandate is claimed on in the next claim file');
-- cancellation
SELECT results_eq($$ SELECT status, request FROM cancel_autogiro_mandate('1003', '2024-04-10') $$,
    $$ VALUES ('cancelled', 'cancel') $$, 'cancelled by hand: at once, and to be sent to Bankgirot');
SELECT results_eq($$ SELECT status, request FROM cancel_autogiro_mandate('1003', '2024-04-11') $$,
    $$ VALUES ('cancelled', 'cancel') $$, 'cancelled again: nothing changes');
SELECT FROM request_autogiro_mandate(pg_temp.acct('a4'), '1005', '8327912345678', '5560000001', '2024-04-10');
SELECT results_eq($$ SELECT status, request FROM cancel_autogiro_mandate('1005', '2024-04-10') $$,
    $$ VALUES ('cancelled', NULL::text) $$, 'a request not yet sent is withdrawn: nothing to send');
SELECT is(pg_temp.lines(autogiro_mandate_file('2024-04-11', '666666', '11111119')),
          ARRAY[rpad('0120240411AUTOGIRO' || repeat(' ', 44) || '6666660011111119', 80),
                rpad('0300111111190000000000001003', 80)],
          'the next request file: a cancellation (03: bankgiro, payer number), as Bankgirot''s layout has it');
SELECT FROM request_autogiro_mandate(pg_temp.acct('a4'), '1006', '8327912345678', '5560000001', '2024-04-12');
SELECT results_eq($$ SELECT status, request FROM register_autogiro_mandate(pg_temp.acct('a4'), '1006', '2024-04-12') $$,
    $$ VALUES ('active', NULL::text) $$, 'a requested mandate registered by hand (Bankgirot has it): active, nothing to send');
SELECT * FROM pg_temp.refused($$ SELECT cancel_autogiro_mandate('4711') $$,
    '42704', 'no Autogiro mandate with payer number 4711', 'cancelling an unknown payer number: 42704');
SELECT * FROM pg_temp.refused($$ SELECT autogiro_mandate_file('2024-04-12', '12345', '9912346') $$,
    '22023', 'invalid Bankgirot customer number "12345"', 'a customer number of 5 digits: 22023');

-- ------------------------------------------------------------ refunds paid out by Autogiro (32)
-- a payment specification with one section: (section code 15/16, date, rows of code, due, payer, öre, ref, status)
CREATE FUNCTION pg_temp.spec(sec text, settled text, rows jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    out  text[] := ARRAY[rpad('01AUTOGIRO' || repeat(' ', 14) || settled || '061500000000' || 'BET. SPEC & STOPP TK' || '123456' || '0009912346', 80)];
    r    jsonb;
    n    int := 0;
    s    bigint := 0;
    body text[] := '{}';
BEGIN
    FOR r IN SELECT * FROM jsonb_array_elements(rows) LOOP
        body := body || (rpad((r->>'code') || (r->>'due') || '0' || '    ' || lpad(r->>'payer', 16, '0') || lpad(r->>'minor', 12, '0')
                              || '0009912346' || rpad(coalesce(r->>'ref', ''), 16), 79) || (r->>'status'));
        IF r->>'status' = '0' THEN
            n := n + 1;
            s := s + (r->>'minor')::bigint;
        END IF;
    END LOOP;
    out := out || (rpad(sec || repeat('0', 35) || settled || '00021' || lpad(s::text, 18, '0') || '   ' || lpad(n::text, 8, '0'), 80))
               || body
               || (rpad('09' || settled || '9900'
                        || CASE sec WHEN '15' THEN '000001' || lpad(n::text, 12, '0') || repeat('0', 18)
                                    ELSE repeat('0', 18) || '000001' || lpad(n::text, 12, '0') END
                        || repeat('0', 18), 80));
    RETURN array_to_string(out, E'\r\n') || E'\r\n';
END $$;
SELECT FROM pg_temp.ag_account('r1');
SELECT FROM register_autogiro_mandate(pg_temp.acct('r1'), '2001', '2024-05-01');
INSERT INTO inv SELECT 'r1', pg_temp.invoice(pg_temp.acct('r1'), '{200.00 SEK}', '{p_saas}', '2024-05-01');
SELECT is(array_length(pg_temp.lines(autogiro_claim_file('2024-05-02', '123456', '9912346')), 1), 2, 'r1''s invoice is claimed');
SELECT results_eq($$ SELECT approved, rejected, unknown FROM import_autogiro_payments(pg_temp.spec('15', '20240531', jsonb_build_array(
        jsonb_build_object('code', '82', 'due', '20240531', 'payer', '2001', 'minor', 25000,
                           'ref', pg_temp.ref((SELECT id FROM inv WHERE ext = 'r1')), 'status', '0')))) $$,
    $$ VALUES (1, 0, 0) $$, 'and paid');
CREATE TEMP TABLE rp AS SELECT id FROM payments WHERE invoice_id = (SELECT id FROM inv WHERE ext = 'r1');
SELECT results_eq($$ SELECT payer_number, pay_date, amount::text, outcome, file_id IS NULL, reference
                      FROM autogiro_refund((SELECT id FROM rp), '50.00 SEK', '2024-06-05') $$,
    $$ SELECT '2001', '2024-06-05'::date, '50.00 SEK', 'sent', true, pg_temp.ref((SELECT id FROM inv WHERE ext = 'r1')) $$,
    'a refund to pay back by Autogiro: to the mandate''s payer number, waiting for the next claim file');
SELECT is(pg_temp.open((SELECT id FROM inv WHERE ext = 'r1')), '50.00 SEK', 'booked at once as refund() books it: the invoice reopened by 50.00');
SELECT is((SELECT count(*) FROM refunds WHERE payment_id = (SELECT id FROM rp)), 1::bigint, '  one refund');
SELECT is((pg_temp.lines(autogiro_claim_file('2024-06-01', '123456', '9912346')))[2],
          rpad('32' || '20240605' || '0' || '    ' || '0000000000002001' || '000000005000' || '0009912346'
               || pg_temp.ref((SELECT id FROM inv WHERE ext = 'r1')), 80),
          'the next claim file pays it out: an outgoing payment (32) on its date, in the claim''s layout');
SELECT is(array_length(pg_temp.lines(autogiro_claim_file('2024-06-02', '123456', '9912346')), 1), 1, 'paid out once');
SELECT results_eq($$ SELECT approved, rejected, unknown FROM import_autogiro_payments(pg_temp.spec('16', '20240605', jsonb_build_array(
        jsonb_build_object('code', '32', 'due', '20240605', 'payer', '2001', 'minor', 5000,
                           'ref', pg_temp.ref((SELECT id FROM inv WHERE ext = 'r1')), 'status', '0')))) $$,
    $$ VALUES (1, 0, 0) $$, 'the payment specification confirms it (section 16)');
SELECT is((SELECT outcome FROM autogiro_payouts WHERE amount = '50.00 SEK'), 'paid', '  paid');
SELECT FROM autogiro_refund((SELECT id FROM rp), '20.00 SEK', '2024-06-10');
SELECT is(pg_temp.open((SELECT id FROM inv WHERE ext = 'r1')), '70.00 SEK', 'a second refund of 20.00');
SELECT is(array_length(pg_temp.lines(autogiro_claim_file('2024-06-08', '123456', '9912346')), 1), 2, '  paid out in the next file');
SELECT results_eq($$ SELECT refused, unknown FROM import_autogiro_rejections(pg_temp.rejections(jsonb_build_array(
        jsonb_build_object('code', '32', 'date', '20240610', 'payer', '2001', 'minor', 2000,
                           'ref', pg_temp.ref((SELECT id FROM inv WHERE ext = 'r1')), 'comment', '09')), '20240609')) $$,
    $$ VALUES (1, 0) $$, 'Bankgirot refuses it (09, outgoing payments barred)');
SELECT results_eq($$ SELECT outcome, status_code, returned_payment_id IS NOT NULL FROM autogiro_payouts WHERE amount = '20.00 SEK' $$,
    $$ VALUES ('refused', 9, true) $$, 'the payout is refused');
SELECT is(pg_temp.open((SELECT id FROM inv WHERE ext = 'r1')), '50.00 SEK', 'the money did not leave: registered back on the invoice');
SELECT is((SELECT external_id FROM payments WHERE id = (SELECT returned_payment_id FROM autogiro_payouts WHERE amount = '20.00 SEK')),
          'autogiro:payout:' || (SELECT id FROM autogiro_payouts WHERE amount = '20.00 SEK') || ':refused', '  under its own key');
CREATE TEMP TABLE bt AS SELECT register_payment('1.00 SEK', pg_temp.ref((SELECT id FROM inv WHERE ext = 'a2')), '2024-06-01',
                                                'bank_transfer', 'bt-1') AS id;
SELECT * FROM pg_temp.refused($$ SELECT autogiro_refund((SELECT id FROM bt), '1.00 SEK') $$,
    '22023', 'payment ' || (SELECT id FROM bt) || ' cannot be paid back by Autogiro',
    'a payment by another method: 22023');
SELECT * FROM pg_temp.refused($$ SELECT autogiro_refund(-1, '1.00 SEK') $$,
    '42704', 'payment -1 does not exist', 'no such payment: 42704');
SELECT throws_ok($$ SELECT autogiro_refund((SELECT id FROM rp), '500.00 SEK') $$, '22023', NULL,
    'more than was paid: refused as refund() refuses it');
SELECT is((SELECT count(*) FROM autogiro_payouts), 2::bigint, '  and nothing is left to pay out');

-- ------------------------------------------------------------ references equal across countries
-- the Swedish OCR number of invoice 5000 (5000, length digit 6, Luhn) is the Norwegian KID of invoice 50006
SELECT setval(pg_get_serial_sequence('subbilling.invoices', 'id'), 4999);
SELECT FROM pg_temp.account('se', 'SE', 'SEK');
SELECT FROM pg_temp.account('no', 'NO', 'NOK');
INSERT INTO inv SELECT 'se', pg_temp.invoice(pg_temp.acct('se'), '{100.00 SEK}', '{p_saas}', '2024-03-01');
SELECT setval(pg_get_serial_sequence('subbilling.invoices', 'id'), 50005);
INSERT INTO inv SELECT 'no', pg_temp.invoice(pg_temp.acct('no'), '{100.00 NOK}', '{p_saas}', '2024-03-01');
SELECT is(pg_temp.ref((SELECT id FROM inv WHERE ext = 'se')), pg_temp.ref((SELECT id FROM inv WHERE ext = 'no')),
          'the Swedish invoice''s OCR number is the Norwegian invoice''s KID');
CREATE TEMP TABLE pay AS
    SELECT 'bg' AS k, register_payment('125.00 SEK', pg_temp.ref((SELECT id FROM inv WHERE ext = 'se')), '2024-03-20', 'bankgiro', 'bg-1') AS id
    UNION ALL SELECT 'ocr', register_payment('125.00 NOK', pg_temp.ref((SELECT id FROM inv WHERE ext = 'no')), '2024-03-20', 'ocr_giro', 'ocr-1')
    UNION ALL SELECT 'card', register_payment('10.00 EUR', pg_temp.ref((SELECT id FROM inv WHERE ext = 'no')), '2024-03-20', 'card', 'card-1');
SELECT is((SELECT invoice_id FROM payments WHERE id = (SELECT id FROM pay WHERE k = 'bg')), (SELECT id FROM inv WHERE ext = 'se'),
          'a Bankgirot payment pays the invoice with the Swedish OCR number');
SELECT is((SELECT invoice_id FROM payments WHERE id = (SELECT id FROM pay WHERE k = 'ocr')), (SELECT id FROM inv WHERE ext = 'no'),
          'a Nets OCR giro payment pays the invoice with the Norwegian KID');
SELECT is((SELECT reason FROM unmatched_payments WHERE id = (SELECT id FROM pay WHERE k = 'card')), 'ambiguous reference',
          'a payment of no country and neither currency stays unmatched: ambiguous');
SELECT is((SELECT count(*) FROM unmatched_payments), 1::bigint, 'the other two are not unmatched');

SELECT is(pg_temp.unbalanced(), 0::bigint, 'every journal entry balances');
SELECT * FROM finish();
ROLLBACK;
