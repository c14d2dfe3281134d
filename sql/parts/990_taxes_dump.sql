
-- The tax tables' rows in pg_dump: seller settings and exchange rates whole,
-- categories, rates and VAT-return boxes only the rows the operator added
-- (the shipped ones come with CREATE EXTENSION).  Last, so that a fresh
-- install lists them in the order an upgrade adds them.
SELECT pg_catalog.pg_extension_config_dump('subbilling.seller_settings', '');
SELECT pg_catalog.pg_extension_config_dump('subbilling.exchange_rates', '');
SELECT pg_catalog.pg_extension_config_dump('subbilling.tax_categories', 'WHERE NOT shipped');
SELECT pg_catalog.pg_extension_config_dump('subbilling.tax_rates', 'WHERE NOT shipped');
SELECT pg_catalog.pg_extension_config_dump('subbilling.tax_rates_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('subbilling.vat_boxes', 'WHERE NOT shipped');

