
-- The tax tables' rows in pg_dump: seller settings and exchange rates whole,
-- categories, rates and VAT-return boxes only the rows the operator added
-- or edited
-- (the shipped ones come with CREATE EXTENSION).  Last, so that a fresh
-- install lists them in the order an upgrade adds them.
-- Their rows have the column origin like every table that ships rows
-- (sql/parts/900_backups.sql): an edited shipped row is dumped and restored
-- over the shipped row of its key.
CREATE TRIGGER tax_categories_shipped_row BEFORE INSERT OR UPDATE ON subbilling.tax_categories
    FOR EACH ROW EXECUTE FUNCTION subbilling.shipped_row();
CREATE TRIGGER tax_rates_shipped_row BEFORE INSERT OR UPDATE ON subbilling.tax_rates
    FOR EACH ROW EXECUTE FUNCTION subbilling.shipped_row();
CREATE TRIGGER vat_boxes_shipped_row BEFORE INSERT OR UPDATE ON subbilling.vat_boxes
    FOR EACH ROW EXECUTE FUNCTION subbilling.shipped_row();
SELECT pg_catalog.pg_extension_config_dump('subbilling.seller_settings', '');
SELECT pg_catalog.pg_extension_config_dump('subbilling.exchange_rates', '');
SELECT pg_catalog.pg_extension_config_dump('subbilling.tax_categories', 'WHERE origin <> ''shipped''');
SELECT pg_catalog.pg_extension_config_dump('subbilling.tax_rates', 'WHERE origin <> ''shipped''');
SELECT pg_catalog.pg_extension_config_dump('subbilling.tax_rates_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('subbilling.vat_boxes', 'WHERE origin <> ''shipped''');

