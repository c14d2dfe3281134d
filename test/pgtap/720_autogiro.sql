-- Autogiro, the whole cycle: mandates (by hand and from a mandate advice),
-- the payment-claim file for requested payments of accounts paying by
-- Autogiro (one per run date, each request attempt claimed once), the
-- payment specification read back (approved -> payment, invoice paid;
-- rejected -> payment_failed -> dunning), idempotency, privileges.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 600_fixture.psql

SELECT plan(41);

-- one failure is final here: the invoice goes to dunning at once
UPDATE payment_settings SET retry_days = '{}';

CREATE FUNCTION pg_temp.ag_account(ext text, kind text DEFAULT 'autogiro') RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT pg_temp.account(ext);
    INSERT INTO subbilling.payment_methods (account_id, kind, is_default) VALUES (pg_temp.acct(ext), kind, true);
    SELECT pg_temp.acct(ext);
$$;
-- a payment specification answering claims: (payer, due date, öre, reference, status)
CREATE FUNCTION pg_temp.spec(rows jsonb, settled text DEFAULT '20240402') RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    out text[] := ARRAY[rpad('01AUTOGIRO' || repeat(' ', 14) || settled || '061500000000' || 'BET. SPEC & STOPP TK' || '123456' || '0009912346', 80)];
    r   jsonb;
    n   int := 0;
    s   bigint := 0;
    body text[] := '{}';
BEGIN
    FOR r IN SELECT * FROM jsonb_array_elements(rows) LOOP
        body := body || (rpad('82' || (r->>'due') || '0' || '    ' || lpad(r->>'payer', 16, '0') || lpad(r->>'minor', 12, '0')
                              || '0009912346' || rpad(coalesce(r->>'ref', ''), 16), 79) || (r->>'status'));
        IF r->>'status' = '0' THEN
            n := n + 1;
            s := s + (r->>'minor')::bigint;
        END IF;
    END LOOP;
    out := out || (rpad('15' || repeat('0', 35) || settled || '00017' || lpad(s::text, 18, '0') || '   ' || lpad(n::text, 8, '0'), 80))
               || body
               || (rpad('09' || settled || '9900' || '000001' || lpad(n::text, 12, '0') || repeat('0', 36), 80));
    RETURN array_to_string(out, E'\r\n') || E'\r\n';
END $$;

-- ------------------------------------------------------------ catalogue and privileges
SELECT is_definer('subbilling', 'autogiro_claim_file', ARRAY['date', 'text', 'text'], 'autogiro_claim_file is SECURITY DEFINER');
SELECT ok(NOT has_function_privilege('public', 'subbilling.autogiro_claim_file(date, text, text)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling.import_autogiro_payments(text)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling.import_autogiro_mandates(text)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling.register_autogiro_mandate(bigint, text, date)', 'EXECUTE')
          AND NOT has_function_privilege('subbilling_reader', 'subbilling.autogiro_claim_file(date, text, text)', 'EXECUTE'),
          'PUBLIC and the reader cannot run the Autogiro functions');
SELECT ok(has_function_privilege('subbilling_operator', 'subbilling.autogiro_claim_file(date, text, text)', 'EXECUTE')
          AND has_function_privilege('subbilling_operator', 'subbilling.import_autogiro_payments(text)', 'EXECUTE')
          AND has_table_privilege('subbilling_operator', 'subbilling.autogiro_claims', 'SELECT')
          AND NOT has_table_privilege('subbilling_operator', 'subbilling.autogiro_claims', 'UPDATE'),
          'the operator runs them and reads (not writes) the claims');
SELECT ok(NOT has_function_privilege('public', 'subbilling_internal.autogiro_claims_text(date, text, text, date[], text[], bigint[], text[])', 'EXECUTE'),
          'the file writer is internal');

-- ------------------------------------------------------------ mandates by hand
SELECT FROM pg_temp.ag_account('a1');
SELECT FROM pg_temp.ag_account('a2');
SELECT FROM pg_temp.ag_account('a3');
SELECT FROM pg_temp.ag_account('c1', 'card');
SELECT is((register_autogiro_mandate(pg_temp.acct('a1'), '1001', '2024-03-01')).status, 'active', 'a mandate registered by hand is active');
SELECT is((register_autogiro_mandate(pg_temp.acct('a2'), '1002', '2024-03-01')).status, 'active', 'a second account''s mandate');
SELECT * FROM pg_temp.refused($$ SELECT register_autogiro_mandate(pg_temp.acct('a3'), '1001') $$,
    '23505', 'Autogiro payer number 1001 belongs to another account', 'a payer number is one account''s: 23505');
SELECT * FROM pg_temp.refused($$ SELECT register_autogiro_mandate(pg_temp.acct('a3'), '0123') $$,
    '22023', 'invalid Autogiro payer number "0123"', 'a payer number with a leading zero: 22023');
SELECT * FROM pg_temp.refused($$ SELECT register_autogiro_mandate(-1, '1003') $$,
    '42704', 'account -1 does not exist', 'no such account: 42704');

-- ------------------------------------------------------------ the claim file
CREATE TEMP TABLE inv AS
    SELECT 'a1' AS ext, pg_temp.invoice(pg_temp.acct('a1'), '{100.00 SEK}', '{p_saas}', '2024-03-01') AS id
    UNION ALL SELECT 'a2', pg_temp.invoice(pg_temp.acct('a2'), '{40.00 SEK}', '{p_saas}', '2024-03-01')
    UNION ALL SELECT 'a3', pg_temp.invoice(pg_temp.acct('a3'), '{40.00 SEK}', '{p_saas}', '2024-03-01')
    UNION ALL SELECT 'c1', pg_temp.invoice(pg_temp.acct('c1'), '{40.00 SEK}', '{p_saas}', '2024-03-01');
CREATE TEMP TABLE f1 AS SELECT autogiro_claim_file('2024-03-25', '123456', '9912346') AS body;
SELECT is((SELECT array_length(string_to_array(rtrim(body, E'\r\n'), E'\r\n'), 1) FROM f1), 3,
          'the claim file: the opening record and two claims (a3 has no mandate, c1 pays by card)');
SELECT is((SELECT split_part(body, E'\r\n', 1) FROM f1),
          '0120240325AUTOGIRO' || repeat(' ', 44) || '1234560009912346  ', 'opening record: date, AUTOGIRO, customer number, bankgiro');
SELECT is((SELECT split_part(body, E'\r\n', 2) FROM f1),
          '82202403310    0000000000001001000000012500000991234' || '6' || rpad(pg_temp.ref((SELECT id FROM inv WHERE ext = 'a1')), 16) || repeat(' ', 11),
          'claim: due date (the invoice''s), once, payer number, 125.00 SEK in öre, bankgiro, the invoice''s reference');
SELECT results_eq($$ SELECT c.payer_number, c.due_date, c.amount::text, c.outcome, c.attempt FROM autogiro_claims c ORDER BY c.payer_number $$,
    $$ VALUES ('1001', '2024-03-31'::date, '125.00 SEK', 'sent', 1), ('1002', '2024-03-31'::date, '50.00 SEK', 'sent', 1) $$,
    'the claims are recorded: sent');
SELECT is(autogiro_claim_file('2024-03-25', '123456', '9912346'), (SELECT body FROM f1), 'rebuilt for the same day: the same file');
SELECT is((SELECT count(*) FROM autogiro_claims), 2::bigint, '  and no new claims');
SELECT is(autogiro_claim_file('2024-03-26', '123456', '9912346'),
          '0120240326AUTOGIRO' || repeat(' ', 44) || '1234560009912346  ' || E'\r\n',
          'the next day: nothing is claimed twice');
SELECT * FROM pg_temp.refused($$ SELECT autogiro_claim_file('2024-03-27', '12345', '9912346') $$,
    '22023', 'cannot write the Autogiro claim file', 'a customer number of 5 digits: 22023');

-- ------------------------------------------------------------ the payment specification
CREATE TEMP TABLE spec1 AS SELECT pg_temp.spec(jsonb_build_array(
    jsonb_build_object('due', '20240331', 'payer', '1001', 'minor', 12500, 'ref', pg_temp.ref((SELECT id FROM inv WHERE ext = 'a1')), 'status', '0'),
    jsonb_build_object('due', '20240331', 'payer', '1002', 'minor', 5000, 'ref', pg_temp.ref((SELECT id FROM inv WHERE ext = 'a2')), 'status', '1'),
    jsonb_build_object('due', '20240331', 'payer', '9999', 'minor', 700, 'ref', 'X', 'status', '0'))) AS body;
SELECT results_eq($$ SELECT approved, rejected, unknown, repeated FROM import_autogiro_payments((SELECT body FROM spec1)) $$,
    $$ VALUES (1, 1, 1, false) $$, 'payment specification: 1 approved, 1 rejected, 1 answer to no claim of ours');
SELECT is(pg_temp.status((SELECT id FROM inv WHERE ext = 'a1')), 'paid', 'the approved claim paid its invoice');
SELECT results_eq($$ SELECT p.method, p.amount::text, p.received_on, p.external_id FROM payments p
                      WHERE p.invoice_id = (SELECT id FROM inv WHERE ext = 'a1') $$,
    $$ SELECT 'autogiro', '125.00 SEK', '2024-04-02'::date,
              'autogiro:9912346:20240402:17:' || (SELECT payment_request_id FROM autogiro_claims WHERE payer_number = '1001') || '.1' $$,
    'a payment by autogiro on the settlement date, keyed by section and claim');
SELECT is((SELECT r.status FROM payment_requests r WHERE r.invoice_id = (SELECT id FROM inv WHERE ext = 'a1')), 'succeeded',
          'its payment request succeeded');
SELECT results_eq($$ SELECT r.status, r.failure_reason, r.failed_on, r.next_attempt_on FROM payment_requests r
                      WHERE r.invoice_id = (SELECT id FROM inv WHERE ext = 'a2') $$,
    $$ VALUES ('failed', 'autogiro: insufficient funds', '2024-03-31'::date, NULL::date) $$,
    'the rejected claim: payment_failed with Bankgirot''s reason');
SELECT is((SELECT payload->>'reason' FROM events WHERE type = 'payment.failed' AND invoice_id = (SELECT id FROM inv WHERE ext = 'a2')),
          'autogiro: insufficient funds', 'event payment.failed');
SELECT is(pg_temp.status((SELECT id FROM inv WHERE ext = 'a2')), 'open', 'its invoice stays open');
SELECT is((SELECT next_action FROM dunning_due('2024-04-05') d WHERE d.invoice_id = (SELECT id FROM inv WHERE ext = 'a2')),
          'overdue', '  and dunning takes it up');
SELECT results_eq($$ SELECT payer_number, outcome, status_code FROM autogiro_claims ORDER BY payer_number $$,
    $$ VALUES ('1001', 'approved', 0), ('1002', 'rejected', 1) $$, 'the claims record the answers');
-- idempotency: the same file again, the same file with LF line ends
SELECT results_eq($$ SELECT approved, rejected, repeated FROM import_autogiro_payments((SELECT body FROM spec1)) $$,
    $$ VALUES (0, 0, true) $$, 'the same file again: nothing new');
SELECT results_eq($$ SELECT approved, rejected, unknown, repeated FROM import_autogiro_payments(replace((SELECT body FROM spec1), E'\r', '')) $$,
    $$ VALUES (0, 0, 3, false) $$, 'the same answers in another file: no claim is booked twice');
SELECT is((SELECT count(*) FROM payments WHERE method = 'autogiro'), 1::bigint, 'one Autogiro payment in all');
SELECT * FROM pg_temp.refused($$ SELECT * FROM import_autogiro_payments(replace((SELECT body FROM spec1), '9900000001000000000002', '9900000001000000000003')) $$,
    '22P02', 'invalid Autogiro file', 'a specification whose end record miscounts: 22P02, nothing read');

-- ------------------------------------------------------------ mandate advice
\set mandates `cat test/bankfiles/autogiro_mandates.txt`
CREATE TEMP TABLE adv AS SELECT :'mandates'::text AS body;
SELECT register_autogiro_mandate(pg_temp.acct('a3'), '1004', '2024-03-01') IS NOT NULL AS registered \gset
SELECT results_eq($$ SELECT activated, cancelled, unknown, repeated FROM import_autogiro_mandates((SELECT body FROM adv)) $$,
    $$ VALUES (2, 1, 0, false) $$, 'mandate advice: 1001 and 1002 approved (32), 1004 cancelled (02)');
SELECT results_eq($$ SELECT payer_number, status, status_code, bank_account, source FROM autogiro_mandates ORDER BY payer_number $$,
    $$ VALUES ('1001', 'active', 32, '3300001234567', 'file'), ('1002', 'active', 32, '8327912345678', 'file'),
              ('1004', 'cancelled', 2, '3300007654321', 'file') $$,
    'mandates: status, Bankgirot''s code, the payer''s account');
SELECT results_eq($$ SELECT activated, cancelled, repeated FROM import_autogiro_mandates((SELECT body FROM adv)) $$,
    $$ VALUES (0, 0, true) $$, 'the same advice again: nothing changes');
SELECT * FROM pg_temp.refused($$ SELECT * FROM import_autogiro_mandates((SELECT body FROM spec1)) $$,
    '22023', 'not an Autogiro mandate advice', 'a payment specification is not a mandate advice');

SELECT is(pg_temp.unbalanced(), 0::bigint, 'every journal entry balances');
SELECT * FROM finish();
ROLLBACK;
