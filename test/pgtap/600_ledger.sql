-- The chart of accounts, the purpose mapping, book_entry, and the journal's
-- rules: balanced per entry (checked after every statement), immutable.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 600_fixture.psql

SELECT plan(63);

-- ------------------------------------------------------------ objects
SELECT has_table('subbilling', 'ledger_accounts', 'chart of accounts');
SELECT has_table('subbilling', 'ledger_mappings', 'purpose mapping');
SELECT has_table('subbilling', 'journal_entries', 'journal entries');
SELECT has_table('subbilling', 'journal_lines', 'journal lines');
SELECT col_type_is('subbilling', 'journal_lines', 'amount', 'price', 'line amounts are prices');
SELECT is((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
            WHERE i.indrelid = 'subbilling.journal_lines'::regclass AND i.indisprimary),
          ARRAY['account_id', 'id'], 'journal_lines: PRIMARY KEY (account_id, id)');
SELECT is((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
            WHERE i.indrelid = 'subbilling.journal_entries'::regclass AND i.indisprimary),
          ARRAY['account_id', 'id'], 'journal_entries: PRIMARY KEY (account_id, id)');
SELECT ok((SELECT bool_and(c.conkey[1] = (SELECT attnum FROM pg_attribute WHERE attrelid = c.conrelid AND attname = 'account_id'))
             FROM pg_constraint c
            WHERE c.contype = 'f' AND c.conrelid IN ('subbilling.journal_lines'::regclass, 'subbilling.journal_entries'::regclass)
              AND c.confrelid <> 'subbilling.ledger_accounts'::regclass),
          'every foreign key between customer tables leads with account_id');
SELECT ok((SELECT NOT tgdeferrable AND tgconstraint = 0 AND (tgtype & 1) = 0 AND (tgtype & 4) <> 0 FROM pg_trigger
            WHERE tgrelid = 'subbilling.journal_lines'::regclass AND tgname = 'journal_lines_balanced'),
          'the balance check is an AFTER INSERT trigger for each statement, not deferrable');

-- ------------------------------------------------------------ chart and mapping
SELECT results_eq($$ SELECT code, kind FROM ledger_accounts WHERE code IN ('1510', '1930', '2420', '2611', '2621', '2631',
                                                                         '3001', '3002', '3003', '3004', '3740', '3930', '6351', '8313')
                      ORDER BY code $$,
    $$ VALUES ('1510', 'asset'), ('1930', 'asset'), ('2420', 'liability'), ('2611', 'liability'), ('2621', 'liability'),
              ('2631', 'liability'), ('3001', 'revenue'), ('3002', 'revenue'), ('3003', 'revenue'), ('3004', 'revenue'),
              ('3740', 'revenue'), ('3930', 'revenue'), ('6351', 'expense'), ('8313', 'revenue') $$,
    'BAS defaults: receivables, bank, customer advances, output VAT, revenue per rate, rounding, fees, bad debts, interest');
SELECT results_eq($$ SELECT ledger_code(p) FROM unnest(ARRAY['receivables', 'bank', 'customer_credit', 'fees', 'interest',
                                                             'write_off', 'rounding']) p $$,
    $$ VALUES ('1510'), ('1930'), ('2420'), ('3930'), ('8313'), ('6351'), ('3740') $$,
    'ledger_code: the account of each purpose');
SELECT results_eq($$ SELECT ledger_code('vat', 'SEK', r) FROM unnest(ARRAY['25', '12', '6', '25.00', '6.0']) r $$,
    $$ VALUES ('2611'), ('2621'), ('2631'), ('2611'), ('2631') $$, 'VAT by rate (25.00 is 25)');
SELECT results_eq($$ SELECT ledger_code('revenue', 'SEK', p) FROM unnest(ARRAY['p_saas', 'p_food', 'p_book', 'p_free', '12']) p $$,
    $$ VALUES ('3001'), ('3002'), ('3003'), ('3004'), ('3002') $$,
    'revenue of a product by its VAT rate (or a rate given as detail)');
SELECT throws_ok($$ SELECT ledger_code('vat', 'SEK', '15') $$, '42704',
                 'no ledger account for purpose vat (currency SEK, detail 15)', 'an unmapped VAT rate: 42704');
SELECT throws_ok($$ SELECT ledger_code('revenue', 'SEK', 'no_such_product') $$, '42704',
                 'no ledger account for purpose revenue (currency SEK, detail no_such_product)', 'an unmapped revenue detail: 42704');
SELECT throws_ok($$ SELECT ledger_code('cash') $$, '22023', 'unknown ledger purpose "cash"', 'unknown purpose: 22023');
SELECT throws_ok($$ SELECT ledger_code(NULL) $$, '22023', 'unknown ledger purpose "NULL"', 'NULL purpose: 22023');

-- configurable: a product of its own, a currency of its own, a new rate
INSERT INTO ledger_accounts (code, name, kind) VALUES ('3011', 'Försäljning SaaS-licenser', 'revenue'),
    ('1512', 'Kundfordringar EUR', 'asset'), ('2614', 'Utgående moms 15 %', 'liability');
INSERT INTO ledger_mappings (purpose, currency, detail, code) VALUES
    ('revenue', NULL, 'p_saas', '3011'), ('receivables', 'EUR', NULL, '1512'), ('vat', NULL, '15', '2614');
SELECT results_eq($$ VALUES (ledger_code('revenue', 'SEK', 'p_saas')), (ledger_code('revenue', 'SEK', 'p_food')),
                            (ledger_code('receivables', 'EUR')), (ledger_code('receivables', 'eur')),
                            (ledger_code('receivables', 'SEK')), (ledger_code('receivables')), (ledger_code('vat', 'NOK', '15.0')) $$,
    $$ VALUES ('3011'), ('3002'), ('1512'), ('1512'), ('1510'), ('1510'), ('2614') $$,
    'the most specific mapping wins: product, currency, a new rate');
SELECT throws_ok($$ INSERT INTO ledger_mappings (purpose, detail, code) VALUES ('revenue', 'p_saas', '3001') $$, '23505', NULL,
                 'one mapping per purpose, currency and detail');
SELECT throws_ok($$ INSERT INTO ledger_mappings (purpose, currency, code) VALUES ('bank', 'NOK', '9999') $$, '23503', NULL,
                 'a mapping names an account of the chart');
SELECT throws_ok($$ INSERT INTO ledger_mappings (purpose, code) VALUES ('cash', '1930') $$, '23514', NULL,
                 'a mapping names a known purpose');
DELETE FROM ledger_mappings WHERE code IN ('3011', '1512', '2614');

-- ------------------------------------------------------------ book_entry
SELECT FROM pg_temp.account('le');
SELECT FROM pg_temp.account('le_eur', 'FI', 'EUR');
CREATE TEMP TABLE inv AS SELECT pg_temp.issue(pg_temp.acct('le'), '{100.00 SEK}', '{p_saas}') AS id;

CREATE TEMP TABLE e1 AS
SELECT subbilling_internal.book_entry(pg_temp.acct('le'), 'adjustment', '2024-01-05', '{1930,3740}', '{0.40 SEK,-0.40 SEK}',
                  memo => 'rounding difference') AS id;
SELECT results_eq($$ SELECT l.ledger_code, l.amount::text, l.subledger, l.invoice_id FROM journal_lines l
                      WHERE l.entry_id = (SELECT id FROM e1) ORDER BY l.id $$,
    $$ VALUES ('1930', '0.40 SEK', NULL::text, NULL::bigint), ('3740', '-0.40 SEK', NULL, NULL) $$,
    'book_entry: one line per code and amount, in order');
SELECT results_eq($$ SELECT kind, booked_on, memo FROM journal_entries WHERE id = (SELECT id FROM e1) $$,
    $$ VALUES ('adjustment', '2024-01-05'::date, 'rounding difference') $$, 'book_entry: the entry');

CREATE TEMP TABLE e2 AS
SELECT subbilling_internal.book_entry(pg_temp.acct('le'), 'fee', '2024-02-15', '{1510,3930,1930}', '{60.00 SEK,-60.00 SEK,0.00 SEK}',
                  invoice_id => (SELECT id FROM inv)) AS id;
SELECT results_eq($$ SELECT l.ledger_code, l.amount::text, l.subledger, l.invoice_id FROM journal_lines l
                      WHERE l.entry_id = (SELECT id FROM e2) ORDER BY l.id $$,
    $$ VALUES ('1510', '60.00 SEK', 'receivables', (SELECT id FROM inv)), ('3930', '-60.00 SEK', NULL, NULL) $$,
    'a receivables line names its invoice (open item); zero amounts are skipped');
SELECT is(pg_temp.open((SELECT id FROM inv)), '60.00 SEK', 'the open amount of an invoice is the sum of its receivables lines');
SELECT is(pg_temp.balance('le'), '60.00 SEK', 'account_balance counts receivables');

SELECT * FROM pg_temp.refused($$ SELECT subbilling_internal.book_entry(pg_temp.acct('le'), 'adjustment', '2024-01-05', '{1930,3740}', '{1.00 SEK,-0.99 SEK}') $$,
    '23514', 'journal entry does not balance', 'unbalanced: 23514');
SELECT * FROM pg_temp.refused($$ SELECT subbilling_internal.book_entry(pg_temp.acct('le'), 'adjustment', '2024-01-05', '{1930}', '{0.00 SEK}') $$,
    '22023', 'a journal entry needs at least two lines, one code per amount', 'one line: 22023');
SELECT * FROM pg_temp.refused($$ SELECT subbilling_internal.book_entry(pg_temp.acct('le'), 'adjustment', '2024-01-05', '{1930,3740}', '{1.00 SEK}') $$,
    '22023', 'a journal entry needs at least two lines, one code per amount', 'codes and amounts differ in number: 22023');
SELECT * FROM pg_temp.refused($$ SELECT subbilling_internal.book_entry(pg_temp.acct('le'), 'adjustment', '2024-01-05', '{1930,9999}', '{1.00 SEK,-1.00 SEK}') $$,
    '23503', 'unknown ledger account "9999"', 'unknown account: 23503');
SELECT * FROM pg_temp.refused($$ SELECT subbilling_internal.book_entry(pg_temp.acct('le'), 'adjustment', '2024-01-05', '{1930,3740}', '{1.00 EUR,-1.00 EUR}') $$,
    '22000', 'amount 1.00 EUR is not in the account''s currency SEK', 'another currency: 22000');
SELECT * FROM pg_temp.refused($$ SELECT subbilling_internal.book_entry(pg_temp.acct('le'), 'fee', '2024-01-05', '{1510,3930}', '{1.00 SEK,-1.00 SEK}') $$,
    '22023', 'a receivables line needs the invoice it belongs to', 'receivables without an invoice: 22023');
SELECT * FROM pg_temp.refused($$ SELECT subbilling_internal.book_entry(pg_temp.acct('le_eur'), 'fee', '2024-01-05', '{1510,3930}', '{1.00 EUR,-1.00 EUR}', (SELECT id FROM inv)) $$,
    '42704', NULL, 'an invoice of another account: 42704');
SELECT * FROM pg_temp.refused($$ SELECT subbilling_internal.book_entry(pg_temp.acct('le'), 'gift', '2024-01-05', '{1930,3740}', '{1.00 SEK,-1.00 SEK}') $$,
    '23514', NULL, 'unknown kind: 23514');
SELECT * FROM pg_temp.refused($$ SELECT subbilling_internal.book_entry(NULL, 'fee', '2024-01-05', '{1930,3740}', '{1.00 SEK,-1.00 SEK}') $$,
    '22004', 'book_entry needs an account, a kind and a booking date', 'no account: 22004');
SELECT * FROM pg_temp.refused($$ SELECT subbilling_internal.book_entry(-1, 'fee', '2024-01-05', '{1930,3740}', '{1.00 SEK,-1.00 SEK}') $$,
    '42704', 'account -1 does not exist', 'unknown account: 42704');

-- ------------------------------------------------------------ the balance check, per statement
SELECT throws_ok($$ DO $do$
    DECLARE eid bigint;
    BEGIN
        INSERT INTO subbilling.journal_entries (account_id, kind, booked_on) VALUES (pg_temp.acct('le'), 'adjustment', '2024-01-01')
        RETURNING id INTO eid;
        INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount)
        VALUES (pg_temp.acct('le'), eid, '1930', '5.00 SEK'), (pg_temp.acct('le'), eid, '3740', '-4.00 SEK');
    END $do$ $$, '23514', NULL, 'unbalanced lines written directly fail at the end of the statement');
SELECT lives_ok($$ DO $do$
    DECLARE eid bigint;
    BEGIN
        INSERT INTO subbilling.journal_entries (account_id, kind, booked_on) VALUES (pg_temp.acct('le'), 'adjustment', '2024-01-01')
        RETURNING id INTO eid;
        INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount)
        VALUES (pg_temp.acct('le'), eid, '1930', '5.00 SEK'), (pg_temp.acct('le'), eid, '3740', '-5.00 SEK');
    END $do$ $$, 'lines that balance, written in one statement, pass');
SELECT throws_ok($$ DO $do$
    DECLARE eid bigint;
    BEGIN
        INSERT INTO subbilling.journal_entries (account_id, kind, booked_on) VALUES (pg_temp.acct('le'), 'adjustment', '2024-01-01')
        RETURNING id INTO eid;
        INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount) VALUES (pg_temp.acct('le'), eid, '1930', '5.00 SEK');
        INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount) VALUES (pg_temp.acct('le'), eid, '3740', '-5.00 SEK');
    END $do$ $$, '23514', NULL,
    'an entry written over two statements is refused at the first (an entry is written whole)');
SELECT throws_ok($$ INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount)
                    VALUES (pg_temp.acct('le'), (SELECT id FROM e1), '1930', '1.00 SEK'),
                           (pg_temp.acct('le'), (SELECT id FROM e1), '3740', '-0.50 SEK') $$,
    '23514', NULL, 'the balance check looks at the whole entry: lines added to a booked entry must balance among themselves');
SELECT throws_ok($$ WITH e AS (INSERT INTO subbilling.journal_entries (account_id, kind, booked_on)
                                VALUES (pg_temp.acct('le'), 'adjustment', '2024-01-01'), (pg_temp.acct('le'), 'adjustment', '2024-01-02')
                                RETURNING id, booked_on)
                    INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount)
                    SELECT pg_temp.acct('le'), e.id, x.code, x.amount
                      FROM e CROSS JOIN LATERAL (VALUES ('1930', '2.00 SEK'::price),
                                                        ('3740', CASE WHEN e.booked_on = '2024-01-02' THEN '-1.99 SEK'::price ELSE '-2.00 SEK'::price END)) x(code, amount) $$,
    '23514', NULL, 'one statement writing many entries: one that does not balance fails the statement');
SELECT throws_ok($$ INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount)
                    VALUES (pg_temp.acct('le'), (SELECT id FROM e1), '1930', '0.00 SEK') $$,
    '23514', NULL, 'a zero line is refused');
SELECT is(pg_temp.unbalanced(), 0::bigint, 'every entry balances');

-- ------------------------------------------------------------ immutable
SELECT * FROM pg_temp.refused($$ UPDATE journal_lines SET amount = '0.50 SEK' WHERE entry_id = (SELECT id FROM e1) AND ledger_code = '1930' $$,
    '55000', 'journal_lines is immutable: update refused', 'UPDATE of a line: 55000');
SELECT * FROM pg_temp.refused($$ DELETE FROM journal_lines WHERE entry_id = (SELECT id FROM e1) $$,
    '55000', 'journal_lines is immutable: delete refused', 'DELETE of lines: 55000');
SELECT * FROM pg_temp.refused($$ UPDATE journal_entries SET booked_on = '2024-01-06' WHERE id = (SELECT id FROM e1) $$,
    '55000', 'journal_entries is immutable: update refused', 'UPDATE of an entry: 55000');
SELECT * FROM pg_temp.refused($$ DELETE FROM journal_entries WHERE id = (SELECT id FROM e1) $$,
    '55000', 'journal_entries is immutable: delete refused', 'DELETE of an entry: 55000');
SELECT * FROM pg_temp.refused($$ TRUNCATE journal_lines, journal_entries $$,
    '55000', NULL, 'TRUNCATE: 55000');

SELECT * FROM finish();
ROLLBACK;
