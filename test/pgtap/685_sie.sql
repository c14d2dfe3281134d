-- sie_export: CP437 bytes, SIE 4 quoting and amounts, 4I and 4E, balanced
-- vouchers, errors and privileges.  A small SIE parser written here in SQL
-- (tokens: quoted fields with \" and \\, {object lists}, plain words) reads
-- our files and the real SIE 4 files in ../shared/fixtures/sie/ written by
-- BL Administration and a till system (provenance in SOURCES.md there);
-- without ../shared those checks are skipped with a message.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 600_fixture.psql

SELECT plan(30);

-- ------------------------------------------------------------ the parser
-- decode CP437 with the table written out here (not the extension's)
CREATE FUNCTION pg_temp.from_cp437(b bytea) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT translate(convert_from(b, 'LATIN1'),
                     (SELECT string_agg(chr(c), '' ORDER BY c) FROM generate_series(128, 255) AS c),
                     U&'\00C7\00FC\00E9\00E2\00E4\00E0\00E5\00E7\00EA\00EB\00E8\00EF\00EE\00EC\00C4\00C5'
                     || U&'\00C9\00E6\00C6\00F4\00F6\00F2\00FB\00F9\00FF\00D6\00DC\00A2\00A3\00A5\20A7\0192'
                     || U&'\00E1\00ED\00F3\00FA\00F1\00D1\00AA\00BA\00BF\2310\00AC\00BD\00BC\00A1\00AB\00BB'
                     || U&'\2591\2592\2593\2502\2524\2561\2562\2556\2555\2563\2551\2557\255D\255C\255B\2510'
                     || U&'\2514\2534\252C\251C\2500\253C\255E\255F\255A\2554\2569\2566\2560\2550\256C\2567'
                     || U&'\2568\2564\2565\2559\2558\2552\2553\256B\256A\2518\250C\2588\2584\258C\2590\2580'
                     || U&'\03B1\00DF\0393\03C0\03A3\03C3\00B5\03C4\03A6\0398\03A9\03B4\221E\03C6\03B5\2229'
                     || U&'\2261\00B1\2265\2264\2320\2321\00F7\2248\00B0\2219\00B7\221A\207F\00B2\25A0\00A0')
$$;
-- the records of a file: line number, label (#VER, {, } ...) and fields
CREATE FUNCTION pg_temp.sie_parse(b bytea) RETURNS TABLE (n bigint, label text, fields text[])
    LANGUAGE sql IMMUTABLE AS $$
    SELECT l.n, t.toks[1], t.toks[2:]
      FROM regexp_split_to_table(rtrim(pg_temp.from_cp437(b), E'\r\n'), E'\r?\n') WITH ORDINALITY AS l(line, n)
     CROSS JOIN LATERAL (
         SELECT array_agg(CASE WHEN m[1] IS NOT NULL THEN replace(replace(m[1], '\"', '"'), '\\', '\') ELSE m[2] END
                          ORDER BY o) AS toks
           FROM regexp_matches(l.line, '"((?:[^"\\]|\\.)*)"|(\{[^}]*\}|[^\s"{}]+|[{}])', 'g') WITH ORDINALITY AS r(m, o)) t
     WHERE btrim(l.line, E' \t') <> ''
$$;
-- what is wrong with a file, per the format: empty when nothing
CREATE FUNCTION pg_temp.sie_problems(b bytea) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    r       record;
    in_ver  boolean := false;
    open_   boolean := false;
    sum_    numeric;
    vers    integer := 0;
BEGIN
    IF position('\x00'::bytea IN b) > 0 THEN RETURN NEXT 'NUL byte'; END IF;
    FOR r IN SELECT * FROM pg_temp.sie_parse(b) ORDER BY n LOOP
        IF r.n = 1 AND r.label <> '#FLAGGA' THEN RETURN NEXT 'does not start with #FLAGGA'; END IF;
        IF r.label = '#FORMAT' AND r.fields[1] <> 'PC8' THEN RETURN NEXT 'format ' || r.fields[1]; END IF;
        IF r.label = '#SIETYP' AND r.fields[1] <> '4' THEN RETURN NEXT 'type ' || r.fields[1]; END IF;
        IF r.label = '#VER' THEN
            IF in_ver OR open_ THEN RETURN NEXT format('line %s: #VER inside a #VER', r.n); END IF;
            IF r.fields[3] !~ '^\d{8}$' OR to_char(to_date(r.fields[3], 'YYYYMMDD'), 'YYYYMMDD') <> r.fields[3] THEN
                RETURN NEXT format('line %s: bad date %s', r.n, r.fields[3]);
            END IF;
            in_ver := true; vers := vers + 1;
        ELSIF r.label = '{' THEN
            IF NOT in_ver THEN RETURN NEXT format('line %s: { outside a #VER', r.n); END IF;
            open_ := true; sum_ := 0;
        ELSIF r.label = '}' THEN
            IF NOT open_ THEN RETURN NEXT format('line %s: } without {', r.n); END IF;
            IF sum_ <> 0 THEN RETURN NEXT format('line %s: voucher does not balance (%s)', r.n, sum_); END IF;
            in_ver := false; open_ := false;
        ELSIF r.label IN ('#TRANS', '#RTRANS', '#BTRANS') THEN
            IF NOT open_ THEN RETURN NEXT format('line %s: #TRANS outside a voucher', r.n); END IF;
            IF r.fields[2] !~ '^\{.*\}$' THEN RETURN NEXT format('line %s: no object list', r.n); END IF;
            IF r.fields[3] !~ '^-?\d+(\.\d+)?$' THEN RETURN NEXT format('line %s: bad amount %s', r.n, r.fields[3]);
            ELSIF r.label = '#TRANS' THEN sum_ := sum_ + r.fields[3]::numeric; END IF;
        ELSIF r.label IN ('#IB', '#UB', '#RES') AND r.fields[3] !~ '^-?\d+(\.\d+)?$' THEN
            RETURN NEXT format('line %s: bad amount %s', r.n, r.fields[3]);
        ELSIF r.label !~ '^#[A-Z]+$' THEN
            RETURN NEXT format('line %s: not a record: %s', r.n, r.label);
        END IF;
    END LOOP;
    IF in_ver THEN RETURN NEXT 'the file ends inside a #VER'; END IF;
END $$;

-- ------------------------------------------------------------ the real files
\set sie_dir `test -d ../shared/fixtures/sie && cd ../shared/fixtures/sie && pwd || echo ''`
SELECT :'sie_dir' <> '' AS have_shared \gset
\if :have_shared
SELECT pg_read_binary_file(:'sie_dir' || '/BLBLOV_SIE4.SI') AS si, pg_read_binary_file(:'sie_dir' || '/BLBLOV_SIE4.SE') AS se \gset
CREATE TEMP TABLE real_files AS SELECT :'si'::bytea AS si, :'se'::bytea AS se;
SELECT is((SELECT array_agg(p) FROM pg_temp.sie_problems((SELECT si FROM real_files)) AS p), NULL,
          'the parser reads the till system''s SIE 4I file without a problem');
SELECT is((SELECT array_agg(p) FROM pg_temp.sie_problems((SELECT se FROM real_files)) AS p), NULL,
          'and BL Administration''s SIE 4E file');
SELECT results_eq(
    $$ SELECT label, fields FROM pg_temp.sie_parse((SELECT si FROM real_files)) ORDER BY n LIMIT 9 $$,
    $$ VALUES ('#FLAGGA', '{0}'::text[]), ('#FORMAT', '{PC8}'), ('#SIETYP', '{4}'), ('#PROGRAM', '{Kassasystem,1.0}'),
              ('#GEN', '{20180503,"Lars Larsson"}'), ('#FNAMN', U&'{\00D6vningsbolaget,AB}'), ('#ORGNR', '{550226-1513}'),
              ('#VER', U&'{K,"",20180502,"F\00F6rs\00E4ljning 25% (DF:157)",20180503}'), ('{', '{}') $$,
    'the 4I file parses as written: CP437 Ö, ö, ä, quoted and plain fields');
SELECT is((SELECT count(*) FROM pg_temp.sie_parse((SELECT se FROM real_files)) WHERE label = '#VER'), 20::bigint,
          'the 4E file has its 20 vouchers');
SELECT is((SELECT fields FROM pg_temp.sie_parse((SELECT se FROM real_files)) WHERE label = '#FNAMN'),
          U&'{"\00D6vningsf\00F6retaget AB"}', 'and its company name in CP437');
SELECT is((SELECT array_agg(DISTINCT label ORDER BY label) FROM pg_temp.sie_parse((SELECT si FROM real_files))),
          '{#FLAGGA,#FNAMN,#FORMAT,#GEN,#ORGNR,#PROGRAM,#SIETYP,#TRANS,#VER,"{","}"}',
          'the record kinds of a feeder system''s 4I file');
\else
SELECT skip('../shared/fixtures/sie is not here: the real SIE files are not read', 6);
\endif

-- ------------------------------------------------------------ CP437 and quoting
SELECT is(subbilling_internal.cp437(U&'\00E5\00E4\00F6\00C5\00C4\00D6\00E9\00FC'), '\x8684948f8e998281'::bytea,
          'å ä ö Å Ä Ö é ü are the bytes CP437 has for them');
SELECT is(subbilling_internal.cp437(U&'\00C9\00E6\00C6\00F1\00D1\00DC\00E0\00E7\00A7'), '\x909192a4a59a85873f'::bytea,
          'É æ Æ ñ Ñ Ü à ç, and § (not in CP437) becomes ?');
SELECT is(subbilling_internal.cp437(U&'Z\00F8e \20AC 5 \4E2D'), convert_to('Z?e ? 5 ?', 'SQL_ASCII'),
          'ø, € and CJK are not in CP437: ?');
SELECT is(subbilling_internal.cp437('#VER "" "" 20250101'), convert_to('#VER "" "" 20250101', 'SQL_ASCII'), 'ASCII as it is');
SELECT is(pg_temp.from_cp437(subbilling_internal.cp437(x)), x, 'every character of CP437''s upper half goes and comes back')
  FROM (SELECT subbilling_internal.cp437_high() AS x) q;
SELECT is(subbilling_internal.sie_quote(E'S\u00e4g "hej" \\ d\u00e5\nny rad'), E'"S\u00e4g \\"hej\\" \\\\ d\u00e5 ny rad"',
          'quoting: \" and \\ escaped, a line break becomes a space');
SELECT is(subbilling_internal.sie_quote(NULL), '""', 'an empty field is ""');

-- ------------------------------------------------------------ our files
SELECT throws_ok($$ SELECT sie_export('2024-01-01', '2024-12-31') $$, '55000', 'the seller is not set up',
                 'without the seller: 55000');
INSERT INTO seller_settings (country, currency, vat_number, legal_name)
VALUES ('SE', 'SEK', 'SE556677889901', U&'Prenumerationsbolaget \00C5re "Fj\00E4ll" AB');
SELECT FROM pg_temp.account('sie1');
UPDATE accounts SET external_id = U&'k\00F6p-\00F6' WHERE external_id = 'sie1';
CREATE FUNCTION pg_temp.acct2() RETURNS bigint LANGUAGE sql RETURN (SELECT id FROM accounts WHERE external_id = U&'k\00F6p-\00F6');
-- an invoice of 100 + 25 % VAT and one of 40 + 6 % VAT in January 2024,
-- a payment of the first (125.00) in February
CREATE TEMP TABLE si AS SELECT pg_temp.invoice(pg_temp.acct2(), '{100.00 SEK}', '{p_saas}', '2024-01-10') AS id
                        UNION ALL SELECT pg_temp.invoice(pg_temp.acct2(), '{40.00 SEK}', '{p_book}', '2024-01-20');
SELECT FROM register_payment('125.00 SEK', pg_temp.ref((SELECT min(id) FROM si)), '2024-02-05', 'bankgiro');
CREATE TEMP TABLE f AS SELECT sie_export('2024-01-01', '2024-02-29') AS i, sie_export('2024-01-01', '2024-02-29', '4E') AS e,
                              sie_export('2024-02-01', '2024-02-29') AS feb;
SELECT is((SELECT array_agg(p) FROM pg_temp.sie_problems((SELECT i FROM f)) AS p), NULL, 'our 4I file: no problem, every #VER balances');
SELECT is((SELECT array_agg(p) FROM pg_temp.sie_problems((SELECT e FROM f)) AS p), NULL, 'our 4E file: no problem');
SELECT results_eq(
    $$ SELECT label, fields FROM pg_temp.sie_parse((SELECT i FROM f)) WHERE label NOT IN ('#PROGRAM', '#GEN') ORDER BY n LIMIT 5 $$,
    $$ VALUES ('#FLAGGA', '{0}'::text[]), ('#FORMAT', '{PC8}'), ('#SIETYP', '{4}'),
              ('#FNAMN', ARRAY[U&'Prenumerationsbolaget \00C5re "Fj\00E4ll" AB']), ('#ORGNR', '{556677-8899}') $$,
    'the header as a feeder system writes it: name quoted and escaped, organisation number from the VAT number');
SELECT is((SELECT array_agg(DISTINCT label ORDER BY label) FROM pg_temp.sie_parse((SELECT i FROM f))),
          (SELECT array_agg(DISTINCT label ORDER BY label) FROM (VALUES ('#FLAGGA'), ('#FORMAT'), ('#GEN'), ('#FNAMN'), ('#ORGNR'),
                  ('#PROGRAM'), ('#SIETYP'), ('#TRANS'), ('#VER'), ('{'), ('}')) v(label)),
          '4I has the record kinds of the till system''s 4I file');
SELECT results_eq(
    $$ SELECT fields[1], fields[3] FROM pg_temp.sie_parse((SELECT i FROM f)) WHERE label = '#TRANS' ORDER BY n $$,
    $$ VALUES ('1510', '125.00'), ('3001', '-100.00'), ('2611', '-25.00'),
              ('1510', '42.40'), ('3003', '-40.00'), ('2631', '-2.40'),
              ('1930', '125.00'), ('1510', '-125.00') $$,
    'the vouchers'' lines: accounts and amounts with a decimal point, credit negative');
SELECT results_eq(
    $$ SELECT fields[3], fields[4] FROM pg_temp.sie_parse((SELECT i FROM f)) WHERE label = '#VER' ORDER BY n $$,
    $$ SELECT '20240110', format(U&'Faktura %s k\00F6p-\00F6 (%s)', (SELECT number FROM invoices WHERE id = (SELECT min(id) FROM si)),
                                  (SELECT id FROM journal_entries WHERE invoice_id = (SELECT min(id) FROM si) AND kind = 'invoice'))
       UNION ALL
       SELECT '20240120', format(U&'Faktura %s k\00F6p-\00F6 (%s)', (SELECT number FROM invoices WHERE id = (SELECT max(id) FROM si)),
                                  (SELECT id FROM journal_entries WHERE invoice_id = (SELECT max(id) FROM si) AND kind = 'invoice'))
       UNION ALL
       SELECT '20240205', format(U&'Inbetalning %s k\00F6p-\00F6 (%s)', (SELECT number FROM invoices WHERE id = (SELECT min(id) FROM si)),
                                  (SELECT max(id) FROM journal_entries WHERE kind = 'payment')) $$,
    'one #VER per journal entry: its date and a text naming the document, the customer and the entry');
SELECT is((SELECT count(*) FROM pg_temp.sie_parse((SELECT feb FROM f)) WHERE label = '#VER'), 1::bigint,
          'only the entries booked in the period');
SELECT ok(position('\x94'::bytea IN (SELECT i FROM f)) > 0 AND position(convert_to(U&'\00F6', 'UTF8') IN (SELECT i FROM f)) = 0,
          'the file is CP437: ö is 0x94, never UTF-8');
-- 4E: accounts, opening (before the period: 0) and closing balances, result
SELECT results_eq(
    $$ SELECT label, fields FROM pg_temp.sie_parse((SELECT e FROM f))
        WHERE label IN ('#RAR', '#IB', '#UB', '#RES') AND (fields[2] IN ('1510', '1930', '3001', '3003') OR label = '#RAR') ORDER BY n $$,
    $$ VALUES ('#RAR', '{0,20240101,20240229}'::text[]),
              ('#IB', '{0,1510,0.00}'), ('#IB', '{0,1930,0.00}'),
              ('#UB', '{0,1510,42.40}'), ('#UB', '{0,1930,125.00}'),
              ('#RES', '{0,3001,-100.00}'), ('#RES', '{0,3003,-40.00}') $$,
    '4E: the year, opening and closing balances of balance-sheet accounts, the result of income accounts');
SELECT is((SELECT fields FROM pg_temp.sie_parse((SELECT e FROM f)) WHERE label = '#KONTO' AND fields[1] = '1930'),
          U&'{1930,"F\00F6retagskonto/checkkonto/aff\00E4rskonto"}', '4E: #KONTO with the account''s name in CP437');
SELECT is((SELECT sum(fields[3]::numeric) FROM pg_temp.sie_parse((SELECT e FROM f)) WHERE label = '#UB'),
          -(SELECT sum(fields[3]::numeric) FROM pg_temp.sie_parse((SELECT e FROM f)) WHERE label = '#RES'),
          '4E: closing balances and the result sum to zero');
SELECT is(length(sie_export('2023-01-01', '2023-12-31')) > 0 AND
          NOT EXISTS (SELECT FROM pg_temp.sie_parse(sie_export('2023-01-01', '2023-12-31')) WHERE label = '#VER'),
          true, 'a period without entries: a header and no vouchers');

-- ------------------------------------------------------------ errors and privileges
SELECT throws_ok($$ SELECT sie_export('2024-01-01', '2024-12-31', '4X') $$, '22023', 'unknown SIE file type 4X', 'an unknown type: 22023');
SELECT throws_ok($$ SELECT sie_export('2024-12-31', '2024-01-01') $$, '22023', NULL, 'from after to: 22023');
SELECT ok(has_function_privilege('subbilling_operator', 'subbilling.sie_export(date, date, text)', 'EXECUTE')
          AND NOT has_function_privilege('subbilling_reader', 'subbilling.sie_export(date, date, text)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling.sie_export(date, date, text)', 'EXECUTE'),
          'sie_export: the operator runs it, the reader and PUBLIC do not');
SET LOCAL ROLE subbilling_operator;
SELECT ok(length(sie_export('2024-01-01', '2024-02-29')) > 0, 'as the operator: the export runs');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
