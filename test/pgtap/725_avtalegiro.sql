-- AvtaleGiro, the whole cycle: agreements (by hand and from Nets' agreements
-- file, with the notification flag), the payment-claim transmission for
-- requested payments of accounts paying by AvtaleGiro (one per run date,
-- each request attempt once, type 21 or 02 by the flag), the OCR giro
-- settlement read by import_nets_ocr (type 15: the agreement's KID and the
-- amount name the claim; the invoice is paid), a claim left unpaid (no
-- record from Nets: the invoice is dunned after its due date), idempotency,
-- privileges.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 600_fixture.psql

SELECT plan(28);

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

CREATE FUNCTION pg_temp.ag_account(ext text) RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT pg_temp.account(ext, 'NO', 'NOK');
    INSERT INTO subbilling.payment_methods (account_id, kind, is_default) VALUES (pg_temp.acct(ext), 'avtalegiro', true);
    SELECT pg_temp.acct(ext);
$$;
CREATE FUNCTION pg_temp.lines(body text) RETURNS text[] LANGUAGE sql IMMUTABLE
    RETURN string_to_array(rtrim(body, E'\n'), E'\n');

-- ------------------------------------------------------------ privileges
SELECT ok(NOT has_function_privilege('public', 'subbilling.avtalegiro_claim_file(date, text, text, text)', 'EXECUTE')
          AND NOT has_function_privilege('subbilling_reader', 'subbilling.import_avtalegiro_agreements(text)', 'EXECUTE')
          AND has_function_privilege('subbilling_operator', 'subbilling.avtalegiro_claim_file(date, text, text, text)', 'EXECUTE')
          AND has_function_privilege('subbilling_operator', 'subbilling.register_avtalegiro_agreement(bigint, text, boolean, date)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling_internal.avtalegiro_claim_of(text, subbilling.price)', 'EXECUTE'),
          'the operator runs the AvtaleGiro functions; PUBLIC and the reader do not; the helpers are internal');

-- ------------------------------------------------------------ agreements and the claim file
SELECT FROM pg_temp.ag_account('n1');
SELECT FROM pg_temp.ag_account('n2');
SELECT is((register_avtalegiro_agreement(pg_temp.acct('n1'), '1234567890123', true, '2024-03-01')).status, 'active',
          'an agreement registered by hand');
SELECT is((register_avtalegiro_agreement(pg_temp.acct('n2'), '50013', false, '2024-03-01')).notify, false,
          'an agreement whose payer is notified by the payee (N)');
SELECT * FROM pg_temp.refused($$ SELECT register_avtalegiro_agreement(pg_temp.acct('n2'), '1234567890123') $$,
    '23505', 'KID 1234567890123 belongs to another account''s agreement', 'a KID is one account''s: 23505');
SELECT * FROM pg_temp.refused($$ SELECT register_avtalegiro_agreement(pg_temp.acct('n2'), '1') $$,
    '22023', 'invalid KID "1"', 'a KID of one digit: 22023');
CREATE TEMP TABLE inv AS
    SELECT 'n1' AS ext, pg_temp.invoice(pg_temp.acct('n1'), '{100.00 NOK}', '{p_saas}', '2024-03-01') AS id
    UNION ALL SELECT 'n2', pg_temp.invoice(pg_temp.acct('n2'), '{40.00 NOK}', '{p_saas}', '2024-03-01');
CREATE TEMP TABLE f1 AS SELECT avtalegiro_claim_file('2024-03-20', '12345678', '000123456', '12345678903') AS body;
SELECT is((SELECT array_agg(left(l, 8)) FROM unnest(pg_temp.lines((SELECT body FROM f1))) l),
          ARRAY['NY000010', 'NY210020', 'NY212130', 'NY212131', 'NY212149', 'NY210230', 'NY210231', 'NY210249',
                'NY210088', 'NY000089'],
          'the transmission: 10, 20, per claim 30/31/49 (type 21 notified by the bank, 02 not), 88, 89');
SELECT is((pg_temp.lines((SELECT body FROM f1)))[3],
          'NY2121300000001310324           ' || lpad((SELECT minor_units(total)::text FROM invoices WHERE id = (SELECT id FROM inv WHERE ext = 'n1')), 17, '0')
          || lpad('1234567890123', 25) || '000000',
          'amount item 1: transaction 1, due 31.03.24, the invoice total in øre, the agreement''s KID');
SELECT is(substr((pg_temp.lines((SELECT body FROM f1)))[5], 21, 40),
          rpad('Faktura ' || (SELECT number FROM invoices WHERE id = (SELECT id FROM inv WHERE ext = 'n1')), 40),
          'the specification names the invoice');
SELECT is((pg_temp.lines((SELECT body FROM f1)))[10],
          'NY000089' || '00000002' || '00000010' || lpad((SELECT sum(minor_units(total))::text FROM invoices), 17, '0') || '310324' || repeat('0', 33),
          'end of transmission: 2 claims, 10 records, the sum, the earliest due date');
SELECT is(avtalegiro_claim_file('2024-03-20', '12345678', '000123456', '12345678903'), (SELECT body FROM f1),
          'rebuilt for the same day: the same transmission');
SELECT is(array_length(pg_temp.lines(avtalegiro_claim_file('2024-03-21', '12345678', '000123456', '12345678903')), 1), 4,
          'the next day: nothing is claimed twice (10, 20, 88, 89)');

-- ------------------------------------------------------------ the OCR giro settlement
CREATE TEMP TABLE ocr AS SELECT pg_temp.nets_file(jsonb_build_array(jsonb_build_object('number', 1, 'transactions', jsonb_build_array(
    jsonb_build_object('type', 15, 'number', 1, 'date', '020424', 'kid', '1234567890123',
                       'minor', (SELECT minor_units(total) FROM invoices WHERE id = (SELECT id FROM inv WHERE ext = 'n1'))))))) AS body;
SELECT results_eq($$ SELECT payments, imported, unmatched FROM import_nets_ocr((SELECT body FROM ocr)) $$,
    $$ VALUES (1, 1, 0) $$, 'the settlement of the claim is imported, not left unmatched');
SELECT is(pg_temp.status((SELECT id FROM inv WHERE ext = 'n1')), 'paid', 'the invoice is paid');
SELECT is((SELECT r.status FROM payment_requests r WHERE r.invoice_id = (SELECT id FROM inv WHERE ext = 'n1')), 'succeeded',
          'its payment request succeeded');
SELECT results_eq($$ SELECT c.outcome, p.method FROM avtalegiro_claims c JOIN payments p ON p.id = c.payment_id $$,
    $$ VALUES ('settled', 'avtalegiro') $$, 'the claim is settled by an avtalegiro payment');
SELECT results_eq($$ SELECT already_imported, repeated FROM import_nets_ocr(replace((SELECT body FROM ocr), E'\n', E'\r\n')) $$,
    $$ VALUES (1, false) $$, 'the same settlement in another file books nothing new');
SELECT is((SELECT count(*) FROM payments WHERE method = 'avtalegiro'), 1::bigint, 'one AvtaleGiro payment');

-- ------------------------------------------------------------ a debit that fails: no record, dunning after the due date
-- Nets reports no failed AvtaleGiro debit: the claim of n2 (due 2024-03-31) is simply not in the settlement
SELECT results_eq($$ SELECT c.outcome, r.status, i.status FROM avtalegiro_claims c
                      JOIN payment_requests r ON r.account_id = c.account_id AND r.id = c.payment_request_id
                      JOIN invoices i ON i.account_id = r.account_id AND i.id = r.invoice_id
                     WHERE c.account_id = pg_temp.acct('n2') $$,
    $$ VALUES ('sent', 'requested', 'open') $$, 'an unsettled claim stays sent, its request requested, its invoice open');
SELECT is((SELECT count(*) FROM dunning_due('2024-03-31') d WHERE d.account_id = pg_temp.acct('n2')), 0::bigint,
          'not dunned on its due date');
SELECT is((SELECT next_action FROM dunning_due('2024-04-01') d WHERE d.account_id = pg_temp.acct('n2')), 'overdue',
          'the day after, dunning takes the invoice up as for any unpaid invoice');

-- ------------------------------------------------------------ agreements file: the flag changes the claim type
CREATE TEMP TABLE agr AS SELECT
    'NY000010' || '00008080' || '0000001' || '12345678' || repeat('0', 49) || E'\n' ||
    'NY212420' || '000123456' || '0000001' || '12345678903' || repeat('0', 45) || E'\n' ||
    'NY219470' || '0000001' || '1' || lpad('50013', 25) || 'J' || repeat('0', 38) || E'\n' ||
    'NY219470' || '0000002' || '1' || lpad('99999', 25) || 'N' || repeat('0', 38) || E'\n' ||
    'NY212488' || '00000002' || '00000004' || repeat('0', 56) || E'\n' ||
    'NY000089' || '00000002' || '00000006' || repeat('0', 17) || '250324' || repeat('0', 33) || E'\n' AS body;
SELECT results_eq($$ SELECT changed, deleted, unknown, repeated FROM import_avtalegiro_agreements((SELECT body FROM agr)) $$,
    $$ VALUES (1, 0, 1, false) $$, 'agreements file: 50013 changed (now J), 99999 unknown');
SELECT results_eq($$ SELECT notify, changed_on, source FROM avtalegiro_agreements WHERE kid = '50013' $$,
    $$ VALUES (true, '2024-03-25'::date, 'file') $$, 'the notification flag and date from the file');
SELECT results_eq($$ SELECT changed, repeated FROM import_avtalegiro_agreements((SELECT body FROM agr)) $$,
    $$ VALUES (0, true) $$, 'the same file again changes nothing');
SELECT * FROM pg_temp.refused($$ SELECT * FROM import_avtalegiro_agreements(replace((SELECT body FROM agr), 'NY212488' || '00000002', 'NY212488' || '00000003')) $$,
    '22P02', 'invalid AvtaleGiro agreements file', 'an agreements file that miscounts: 22P02');

SELECT is(pg_temp.unbalanced(), 0::bigint, 'every journal entry balances');
SELECT * FROM finish();
ROLLBACK;
