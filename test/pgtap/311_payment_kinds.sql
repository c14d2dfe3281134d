-- One list of automatic payment kinds: payment_methods.automatic follows kind through
-- is_automatic_method(), on insert and on update, whatever the statement writes, for the
-- operator role too; the column is a plain column (an upgrade can change the list in place).
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(9);
\ir 300_fixture.psql

INSERT INTO payment_methods (account_id, kind)
SELECT pg_temp.acct('t_se'), k
  FROM unnest(ARRAY['card', 'autogiro', 'avtalegiro', 'betalingsservice', 'sepa_debit', 'invoice',
                    'e_invoice', 'swish', 'vipps', 'mobilepay', 'bank_transfer']) k;
SELECT is((SELECT count(*) FROM payment_methods WHERE account_id = pg_temp.acct('t_se')
            AND automatic IS DISTINCT FROM is_automatic_method(kind)), 0::bigint,
          'automatic = is_automatic_method(kind) for every kind');
SELECT results_eq($$SELECT kind FROM payment_methods WHERE account_id = pg_temp.acct('t_se') AND automatic ORDER BY kind$$,
                  ARRAY['autogiro', 'avtalegiro', 'betalingsservice', 'card', 'sepa_debit'],
                  'card and the direct debits are automatic');
SELECT is((SELECT attgenerated FROM pg_attribute
            WHERE attrelid = 'subbilling.payment_methods'::regclass AND attname = 'automatic'), '',
          'automatic is a plain column (not generated): the list can change in an upgrade');

-- what a statement writes into automatic does not count
INSERT INTO payment_methods (account_id, kind, automatic) VALUES (pg_temp.acct('t_se'), 'card', false),
                                                                 (pg_temp.acct('t_se'), 'swish', true);
SELECT results_eq($$SELECT kind, automatic FROM payment_methods WHERE account_id = pg_temp.acct('t_se')
                     ORDER BY id DESC LIMIT 2$$,
                  $$VALUES ('swish', false), ('card', true)$$, 'an explicit automatic on insert is replaced by the kind''s');
UPDATE payment_methods SET automatic = NOT automatic WHERE account_id = pg_temp.acct('t_se');
SELECT is((SELECT count(*) FROM payment_methods WHERE account_id = pg_temp.acct('t_se')
            AND automatic IS DISTINCT FROM is_automatic_method(kind)), 0::bigint,
          'an update of automatic alone changes nothing');
UPDATE payment_methods SET kind = 'autogiro'
 WHERE account_id = pg_temp.acct('t_se') AND kind = 'bank_transfer';
SELECT ok((SELECT automatic FROM payment_methods WHERE account_id = pg_temp.acct('t_se') AND kind = 'autogiro'
            ORDER BY id DESC LIMIT 1), 'a kind changed to autogiro makes the method automatic');

-- the operator role, which cannot call the internal trigger function itself
CREATE ROLE t_pk_op NOLOGIN IN ROLE subbilling_operator;
SET LOCAL ROLE t_pk_op;
SELECT lives_ok($$INSERT INTO subbilling.payment_methods (account_id, kind) VALUES (pg_temp.acct('t_se'), 'sepa_debit')$$,
                'the operator adds a payment method');
SELECT ok((SELECT automatic FROM subbilling.payment_methods WHERE account_id = pg_temp.acct('t_se') AND kind = 'sepa_debit'
            ORDER BY id DESC LIMIT 1), 'its automatic flag is set');
SELECT throws_ok($$SELECT subbilling_internal.payment_methods_automatic()$$, '42501', NULL,
                 'the trigger function is not callable by the operator');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
