-- Payment references by country, function labels and privileges of invoicing.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;

SELECT plan(35);

-- references
SELECT is(luhn_reference('7992739871'), '79927398713', 'luhn_reference: the textbook Luhn example');
SELECT is(fik_reference('1'), '000000000000018', 'fik_reference: 14 digits zero-padded and a Luhn check digit');
SELECT is(fik_reference('12345678901234'), '123456789012347', 'fik_reference: a full 14-digit base');
SELECT ok(ocr_valid(fik_reference('987654')), 'fik_reference: the check digit is valid Luhn');
SELECT throws_ok($$ SELECT fik_reference('123456789012345') $$, '22023', 'invalid FIK payment id base "123456789012345"',
                 'fik_reference: at most 14 digits');
SELECT throws_ok($$ SELECT fik_reference('12a') $$, '22023', NULL, 'fik_reference: digits only');
SELECT is(fi_reference('123'), '1232', 'fi_reference: 123 -> 1232 (weights 7, 3, 1 from the right)');
SELECT is(fi_reference('1234561'), '12345614', 'fi_reference: 1234561 -> 12345614');
SELECT throws_ok($$ SELECT fi_reference('12') $$, '22023', 'invalid Finnish reference base "12"', 'fi_reference: at least 3 digits');
SELECT throws_ok($$ SELECT fi_reference('12345678901234567890') $$, '22023', NULL, 'fi_reference: at most 19 digits');
SELECT is(payment_reference('SE', 1234), ocr_reference('1234', true), 'SE: OCR with length digit');
SELECT is(payment_reference('NO', 1234), kid_reference('1234', 'mod10'), 'NO: KID mod 10');
SELECT is(payment_reference('DK', 1234), fik_reference('1234'), 'DK: FIK payment id');
SELECT is(payment_reference('FI', 1234), fi_reference('1334'), 'FI: Finnish reference from id + 100');
SELECT is(payment_reference('FI', 5), '1054', 'FI: at least four digits, no leading zero');
SELECT is(payment_reference('DE', 1234), luhn_reference('1234'), 'elsewhere: Luhn');
UPDATE country_settings SET reference_kind = 'kid' WHERE country = 'SE';
SELECT is(payment_reference('SE', 1234), kid_reference('1234'), 'country_settings decides');
SELECT throws_ok($$ INSERT INTO country_settings (country, reference_kind) VALUES ('XX', 'luhn') $$, '23514', NULL,
                 'country_settings: ISO 3166 codes only');
SELECT throws_ok($$ INSERT INTO country_settings (country, reference_kind) VALUES ('DE', 'iban') $$, '23514', NULL,
                 'country_settings: known reference kinds only');

-- labels
SELECT volatility_is('subbilling', 'run_billing', ARRAY['timestamp with time zone'], 'volatile', 'run_billing is volatile');
SELECT volatility_is('subbilling', 'preview_invoice', ARRAY['bigint', 'date'], 'stable', 'preview_invoice is stable');
SELECT volatility_is('subbilling_internal', 'billing_charges', ARRAY['bigint[]', 'bigint[]', 'date[]'], 'stable', 'billing_charges is stable');
SELECT volatility_is('subbilling', 'fi_reference', ARRAY['text'], 'immutable', 'fi_reference is immutable');
SELECT is_definer('subbilling', 'run_billing', ARRAY['timestamp with time zone'], 'run_billing is SECURITY DEFINER');
SELECT is_definer('subbilling', 'credit_invoice', ARRAY['bigint', 'price', 'text'], 'credit_invoice is SECURITY DEFINER');
SELECT is_definer('subbilling', 'run_billing_batch', ARRAY['integer', 'timestamp with time zone'], 'run_billing_batch is SECURITY DEFINER');

-- privileges
SELECT ok(NOT has_function_privilege('public', 'subbilling.run_billing(timestamptz)', 'EXECUTE'),
          'PUBLIC cannot run billing');
SELECT ok(NOT has_function_privilege('public', 'subbilling.credit_invoice(bigint, subbilling.price, text)', 'EXECUTE'),
          'PUBLIC cannot credit');
SELECT ok(has_function_privilege('subbilling_operator', 'subbilling.run_billing(timestamptz)', 'EXECUTE')
          AND has_function_privilege('subbilling_operator', 'subbilling.preview_invoice(bigint, date)', 'EXECUTE')
          AND has_function_privilege('subbilling_operator', 'subbilling.credit_invoice(bigint, subbilling.price, text)', 'EXECUTE')
          AND has_function_privilege('subbilling_operator', 'subbilling.void_invoice(bigint, text)', 'EXECUTE')
          AND has_function_privilege('subbilling_operator', 'subbilling.finalize_invoice(bigint)', 'EXECUTE'),
          'the operator runs billing, previews, credits, voids and finalises');
SELECT ok(NOT has_function_privilege('subbilling_operator', 'subbilling_internal.bill_subscriptions(bigint[], bigint[], date[], timestamptz)', 'EXECUTE')
          AND NOT has_function_privilege('subbilling_operator', 'subbilling_internal.billing_charges(bigint[], bigint[], date[])', 'EXECUTE'),
          'internal functions are not executable by the operator');
SELECT ok(has_table_privilege('subbilling_operator', 'subbilling.invoices', 'SELECT')
          AND NOT has_table_privilege('subbilling_operator', 'subbilling.invoices', 'UPDATE')
          AND NOT has_table_privilege('subbilling_operator', 'subbilling.invoice_lines', 'INSERT'),
          'the operator reads invoices and lines but writes them only through functions');
SELECT ok(NOT has_table_privilege('subbilling_reader', 'subbilling.invoices', 'SELECT'),
          'the reader does not read invoice tables (reporting views only)');
SELECT ok(has_table_privilege('subbilling_operator', 'subbilling.invoice_counters', 'SELECT')
          AND NOT has_table_privilege('subbilling_operator', 'subbilling.invoice_counters', 'UPDATE')
          AND NOT has_table_privilege('subbilling_operator', 'subbilling.invoice_counters', 'INSERT'),
          'the operator cannot move a series counter');

-- the operator at work
SET LOCAL ROLE subbilling_operator;
SELECT is(run_billing('2024-01-01'), 0, 'the operator runs billing');
SELECT throws_ok($$ UPDATE subbilling.invoices SET reason = 'x' $$, '42501', NULL, 'the operator cannot update invoices directly');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
