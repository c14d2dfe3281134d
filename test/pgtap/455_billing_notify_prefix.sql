-- Billing announces its invoices through the one notify function, with
-- identifiers only: an invoice series with a very long prefix (numbers of
-- 9000 characters) no longer makes pg_notify fail ("payload string too
-- long", 22023) and stop all billing, as the bulk path of 0.2 did.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
SET LOCAL TimeZone = 'UTC';
SET LOCAL subbilling.notify = on;
SELECT plan(3);

INSERT INTO products (code, name, tax_rate) VALUES ('np', 'Notify prefix', 25);
INSERT INTO plans (code, product_id, name, billing_period, price)
SELECT 'np_m', id, 'Monthly', '1 month', '10.00 SEK' FROM products WHERE code = 'np';
INSERT INTO accounts (external_id, name, country, currency) VALUES ('np1', 'Prefix AB', 'SE', 'SEK'), ('np2', 'Prefix 2 AB', 'SE', 'SEK');
INSERT INTO invoice_series (code, prefix) VALUES ('2025', repeat('X', 9000));
SELECT subscribe(id, 'np_m', 1, '2025-01-01') FROM accounts WHERE external_id LIKE 'np_' ORDER BY id;

SELECT is(run_billing('2025-01-01 12:00+00'), 2, 'billing issues both invoices despite numbers of 9000+ characters');
SELECT is((SELECT min(length(number)) FROM invoices i JOIN accounts a ON a.id = i.account_id WHERE a.external_id LIKE 'np_'),
          9006, 'the numbers carry the long prefix');
SELECT is((SELECT count(*) FROM events e JOIN accounts a ON a.id = e.account_id
            WHERE a.external_id LIKE 'np_' AND e.type = 'invoice.finalized'), 2::bigint,
          'an invoice.finalized event for each');
SELECT * FROM finish();
ROLLBACK;
