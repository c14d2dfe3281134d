-- One meaning of recurring: the kind recurring of an invoice line is a whole period's
-- charge; the charge key's type of the items' period charges (lines of kind recurring,
-- proration and addon) is period (it was also called recurring before 0.3).
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 400_fixture.psql

SELECT plan(5);

SELECT pg_temp.account('ct');
SELECT subscribe(pg_temp.acct('ct'), 'b_coffee', 1, '2024-01-15');
SELECT run_billing('2024-03-20');
SELECT results_eq($$SELECT DISTINCT kind, charge_type FROM invoice_lines
                    WHERE subscription_id = pg_temp.sub('ct') ORDER BY kind$$,
                  $$VALUES ('recurring', 'period')$$,
                  'the lines of kind recurring settle charge keys of type period');
SELECT is((SELECT count(*) FROM invoice_lines WHERE charge_type = 'recurring'), 0::bigint,
          'no charge key is of type recurring');
SELECT results_eq($$SELECT DISTINCT kind, charge_type FROM preview_invoice(pg_temp.sub('ct'), '2024-05-20')$$,
                  $$VALUES ('recurring', 'period')$$, 'preview_invoice says period too');
SELECT is((SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'invoice_lines_charge_type_check'),
          'CHECK ((charge_type = ANY (ARRAY[''period''::text, ''usage''::text, ''setup''::text, ''discount''::text])))',
          'the charge types are period, usage, setup and discount (recurring is refused)');
SELECT is(run_billing('2024-03-20'), 0, 'billing again bills nothing: the keys match their lines');

SELECT * FROM finish();
ROLLBACK;
