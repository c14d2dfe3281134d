-- customer_ledger (running balance), open_items, account_balances; who may
-- do what; function labels.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 600_fixture.psql

SELECT plan(45);

-- ------------------------------------------------------------ customer_ledger
SELECT FROM pg_temp.account('lg');
CREATE TEMP TABLE i1 AS SELECT pg_temp.invoice(pg_temp.acct('lg'), '{400.00 SEK}', '{p_saas}', '2024-01-01') AS id;
SELECT FROM register_payment('200.00 SEK', pg_temp.ref((SELECT id FROM i1)), '2024-01-15', 'bankgiro');
CREATE TEMP TABLE p2 AS SELECT register_payment('400.00 SEK', pg_temp.ref((SELECT id FROM i1)), '2024-01-20', 'bankgiro') AS id;
CREATE TEMP TABLE i2 AS SELECT pg_temp.invoice(pg_temp.acct('lg'), '{40.00 SEK}', '{p_saas}', '2024-02-01') AS id;
CREATE TEMP TABLE i3 AS SELECT pg_temp.invoice(pg_temp.acct('lg'), '{80.00 SEK}', '{p_saas}', '2024-03-01') AS id;
SELECT results_eq(
    $$ SELECT booked_on, kind, document, debit::text, credit::text, balance::text FROM customer_ledger
        WHERE account_id = pg_temp.acct('lg') ORDER BY booked_on, entry_id $$,
    $$ VALUES ('2024-01-01'::date, 'invoice', (SELECT number FROM invoices WHERE id = (SELECT id FROM i1)), '500.00 SEK', '0.00 SEK', '500.00 SEK'),
              ('2024-01-15', 'payment', (SELECT number FROM invoices WHERE id = (SELECT id FROM i1)), '0.00 SEK', '200.00 SEK', '300.00 SEK'),
              ('2024-01-20', 'payment', (SELECT number FROM invoices WHERE id = (SELECT id FROM i1)), '0.00 SEK', '400.00 SEK', '-100.00 SEK'),
              ('2024-02-01', 'invoice', (SELECT number FROM invoices WHERE id = (SELECT id FROM i2)), '50.00 SEK', '0.00 SEK', '-50.00 SEK'),
              ('2024-02-01', 'credit_applied', (SELECT number FROM invoices WHERE id = (SELECT id FROM i2)), '50.00 SEK', '50.00 SEK', '-50.00 SEK'),
              ('2024-03-01', 'invoice', (SELECT number FROM invoices WHERE id = (SELECT id FROM i3)), '100.00 SEK', '0.00 SEK', '50.00 SEK'),
              ('2024-03-01', 'credit_applied', (SELECT number FROM invoices WHERE id = (SELECT id FROM i3)), '50.00 SEK', '50.00 SEK', '50.00 SEK') $$,
    'the customer ledger: debit, credit and running balance per entry');
SELECT is((SELECT balance::text FROM customer_ledger WHERE account_id = pg_temp.acct('lg') ORDER BY booked_on DESC, entry_id DESC LIMIT 1),
          pg_temp.balance('lg'), 'its last balance is account_balance');

-- ------------------------------------------------------------ open_items
SELECT FROM pg_temp.account('oi');
CREATE TEMP TABLE o1 AS SELECT pg_temp.invoice(pg_temp.acct('oi'), '{100.00 SEK}', '{p_saas}', current_date - 40, 30) AS id;
CREATE TEMP TABLE o2 AS SELECT pg_temp.invoice(pg_temp.acct('oi'), '{100.00 SEK}', '{p_saas}', current_date - 5, 30) AS id;
CREATE TEMP TABLE o3 AS SELECT pg_temp.invoice(pg_temp.acct('oi'), '{100.00 SEK}', '{p_saas}', current_date - 5, 30) AS id;
SELECT FROM register_payment('25.00 SEK', pg_temp.ref((SELECT id FROM o1)), current_date, 'swish');
SELECT FROM register_payment('125.00 SEK', pg_temp.ref((SELECT id FROM o3)), current_date, 'swish');
SELECT results_eq(
    $$ SELECT invoice_id, kind, status, total::text, open_amount::text, due_date, days_overdue FROM open_items
        WHERE account_id = pg_temp.acct('oi') ORDER BY invoice_id $$,
    $$ VALUES ((SELECT id FROM o1), 'invoice', 'open', '125.00 SEK', '100.00 SEK', current_date - 10, 10),
              ((SELECT id FROM o2), 'invoice', 'open', '125.00 SEK', '125.00 SEK', current_date + 25, 0) $$,
    'open items: what is open, when due, days overdue; the paid invoice is gone');
SELECT is((SELECT sum(open_amount)::text FROM open_items WHERE account_id = pg_temp.acct('oi')), pg_temp.balance('oi'),
          'open items add up to the balance');

-- ------------------------------------------------------------ account_balances
SELECT results_eq($$ SELECT currency, receivables::text, customer_credit::text, balance::text FROM account_balances
                      WHERE account_id IN (pg_temp.acct('lg'), pg_temp.acct('oi')) ORDER BY account_id $$,
    $$ VALUES ('SEK', '50.00 SEK', '0.00 SEK', '50.00 SEK'), ('SEK', '225.00 SEK', '0.00 SEK', '225.00 SEK') $$,
    'account_balances: receivables, credit, balance');
SELECT FROM pg_temp.account('empty', 'NO', 'NOK');
SELECT results_eq($$ SELECT receivables::text, customer_credit::text, balance::text, account_balance(account_id)::text
                       FROM account_balances WHERE account_id = pg_temp.acct('empty') $$,
    $$ VALUES ('0.00 NOK', '0.00 NOK', '0.00 NOK', '0.00 NOK') $$, 'an account without entries: zero in its currency');
SELECT is(account_balance(-1), NULL, 'account_balance of no account is NULL');
SELECT is(invoice_open_amount(pg_temp.acct('oi'), -1), NULL, 'invoice_open_amount of no invoice is NULL');

-- ------------------------------------------------------------ privileges
SELECT ok(has_function_privilege('subbilling_operator', f, 'EXECUTE') AND NOT has_function_privilege('public', f, 'EXECUTE')
          AND NOT has_function_privilege('subbilling_reader', f, 'EXECUTE'),
          format('%s: operator only', f))
  FROM unnest(ARRAY['subbilling.register_payment(subbilling.price, text, date, text, text)',
                    'subbilling.match_payment(bigint, bigint)', 'subbilling.refund(bigint, subbilling.price)',
                    'subbilling.payment_failed(bigint, text, date)', 'subbilling.run_payment_retries(date)']) f;
SELECT ok(has_function_privilege('subbilling_operator', f, 'EXECUTE') AND NOT has_function_privilege('subbilling_reader', f, 'EXECUTE')
          AND NOT has_function_privilege('public', f, 'EXECUTE'),
          format('%s: operator only (customer data)', f))
  FROM unnest(ARRAY['subbilling.account_balance(bigint)', 'subbilling.invoice_open_amount(bigint, bigint)',
                    'subbilling.customer_credit(bigint)']) f;
SELECT ok(has_function_privilege('subbilling_operator', f, 'EXECUTE') AND has_function_privilege('subbilling_reader', f, 'EXECUTE')
          AND NOT has_function_privilege('public', f, 'EXECUTE'),
          format('%s: operator and reader', f))
  FROM unnest(ARRAY['subbilling.ledger_code(text, text, text)']) f;
SELECT ok(NOT has_function_privilege('subbilling_operator', f, 'EXECUTE') AND NOT has_function_privilege('public', f, 'EXECUTE'),
          format('%s: internal', f))
  FROM unnest(ARRAY['subbilling_internal.book_entry(bigint, text, date, text[], subbilling.price[], bigint, bigint, text)',
                    'subbilling_internal.book_invoices(bigint[], bigint[])', 'subbilling_internal.after_invoice_paid(bigint, bigint)',
                    'subbilling_internal.post_payment(subbilling.invoices, bigint, subbilling.price, text, date, text, text, text)']) f;
SELECT ok(has_table_privilege('subbilling_operator', v, 'SELECT') AND NOT has_table_privilege('subbilling_reader', v, 'SELECT')
          AND NOT has_table_privilege('public', v, 'SELECT'),
          format('%s: the operator reads it, the reader (KPI views only) does not', v))
  FROM unnest(ARRAY['subbilling.customer_ledger', 'subbilling.open_items', 'subbilling.account_balances']) v;
SELECT ok(NOT has_table_privilege('subbilling_reader', t, 'SELECT') AND has_table_privilege('subbilling_operator', t, 'SELECT')
          AND NOT has_table_privilege('subbilling_operator', t, 'INSERT') AND NOT has_table_privilege('subbilling_operator', t, 'UPDATE'),
          format('%s: the operator reads it and changes it only through functions', t))
  FROM unnest(ARRAY['subbilling.journal_entries', 'subbilling.journal_lines', 'subbilling.payments',
                    'subbilling.unmatched_payments', 'subbilling.refunds', 'subbilling.payment_requests']) t;

-- as the roles themselves: the first column of the first row of q, or the error's SQLSTATE
CREATE FUNCTION pg_temp.as_role(r text, q text) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    res text;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', r);
    BEGIN
        EXECUTE q INTO res;
    EXCEPTION WHEN OTHERS THEN
        res := 'ERROR ' || SQLSTATE;
    END;
    RESET ROLE;
    RETURN res;
END $$;
SELECT is(pg_temp.as_role('subbilling_operator', format('SELECT count(*) FROM subbilling.customer_ledger WHERE account_id = %s', pg_temp.acct('lg'))),
          '7', 'the operator reads the ledger view');
SELECT is(pg_temp.as_role('subbilling_reader', format('SELECT count(*) FROM subbilling.customer_ledger WHERE account_id = %s', pg_temp.acct('lg'))),
          'ERROR 42501', 'the reader does not');
SELECT is(pg_temp.as_role('subbilling_reader', format('SELECT subbilling.account_balance(%s)', pg_temp.acct('lg'))),
          'ERROR 42501', 'nor asks for balances');
SELECT is(pg_temp.as_role('subbilling_reader', 'SELECT count(*) FROM subbilling.journal_lines'), 'ERROR 42501',
          'but not the journal tables');
SELECT ok(pg_temp.as_role('subbilling_operator', format('SELECT subbilling.register_payment(''50.00 SEK'', %L, ''2024-03-05'', ''swish'')',
                                                       pg_temp.ref((SELECT id FROM i3))))::bigint > 0, 'the operator registers a payment');
SELECT is(pg_temp.status((SELECT id FROM i3)), 'paid', 'which pays the invoice');
SELECT is(pg_temp.as_role('subbilling_operator', $$ SELECT subbilling_internal.book_entry(1, 'adjustment', '2024-01-01', '{1930,3740}', '{1.00 SEK,-1.00 SEK}') $$),
          'ERROR 42501', 'the operator books no entries by hand');
SELECT is(pg_temp.as_role('subbilling_operator', $$ INSERT INTO subbilling.journal_entries (account_id, kind, booked_on) VALUES (1, 'adjustment', '2024-01-01') RETURNING 1 $$),
          'ERROR 42501', 'nor writes the journal');

-- ------------------------------------------------------------ labels
SELECT is_definer('subbilling', f, ARRAY[]::text[] || a, format('%s is SECURITY DEFINER', f))
  FROM (VALUES ('register_payment', ARRAY['price', 'text', 'date', 'text', 'text']),
               ('match_payment', ARRAY['bigint', 'bigint']), ('refund', ARRAY['bigint', 'price']),
               ('payment_failed', ARRAY['bigint', 'text', 'date'])) v(f, a);
SELECT ok((SELECT bool_and(p.provolatile = 's') FROM pg_proc p
            WHERE p.pronamespace = 'subbilling'::regnamespace
              AND p.proname IN ('account_balance', 'invoice_open_amount', 'customer_credit', 'ledger_code')),
          'the balance questions are STABLE');
SELECT ok((SELECT bool_and(p.proconfig IS NOT NULL) FROM pg_proc p
            WHERE p.pronamespace = 'subbilling'::regnamespace AND p.prosecdef),
          'every SECURITY DEFINER function pins its search_path');
SELECT is((SELECT count(*) FROM pg_proc p
            WHERE p.pronamespace IN ('subbilling'::regnamespace, 'subbilling_internal'::regnamespace)
              AND p.proname IN ('register_payment', 'match_payment', 'refund', 'payment_failed', 'run_payment_retries',
                                'book_entry', 'book_invoices', 'account_balance', 'invoice_open_amount', 'customer_credit',
                                'ledger_code', 'after_invoice_paid')
              AND obj_description(p.oid, 'pg_proc') IS NULL), 0::bigint, 'every function has a comment');

SELECT * FROM finish();
ROLLBACK;
