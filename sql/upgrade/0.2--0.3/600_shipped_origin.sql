-- One name for shipped rows: the tax tables' column shipped (boolean) becomes origin
-- ('shipped' | 'user' | 'edited') like every other table that ships rows, in place (same
-- column position), with the trigger shipped_row and the dump filter WHERE origin <> 'shipped'
-- (a shipped row an operator edits is now dumped and restored over the shipped row).

ALTER TABLE subbilling.tax_categories RENAME COLUMN shipped TO origin;
ALTER TABLE subbilling.tax_categories ALTER COLUMN origin DROP DEFAULT;
ALTER TABLE subbilling.tax_categories ALTER COLUMN origin TYPE text USING CASE WHEN origin THEN 'shipped' ELSE 'user' END;
ALTER TABLE subbilling.tax_categories ALTER COLUMN origin SET DEFAULT 'user';
ALTER TABLE subbilling.tax_categories ADD CONSTRAINT tax_categories_origin_check CHECK (origin IN ('shipped', 'user', 'edited'));
COMMENT ON COLUMN subbilling.tax_categories.origin IS 'shipped: installed with the extension (not dumped); user: added by an operator; edited: shipped, then changed (dumped, restored over the shipped row)';
CREATE TRIGGER tax_categories_shipped_row BEFORE INSERT OR UPDATE ON subbilling.tax_categories
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.shipped_row();
SELECT pg_catalog.pg_extension_config_dump('subbilling.tax_categories', 'WHERE origin <> ''shipped''');

ALTER TABLE subbilling.tax_rates RENAME COLUMN shipped TO origin;
ALTER TABLE subbilling.tax_rates ALTER COLUMN origin DROP DEFAULT;
ALTER TABLE subbilling.tax_rates ALTER COLUMN origin TYPE text USING CASE WHEN origin THEN 'shipped' ELSE 'user' END;
ALTER TABLE subbilling.tax_rates ALTER COLUMN origin SET DEFAULT 'user';
ALTER TABLE subbilling.tax_rates ADD CONSTRAINT tax_rates_origin_check CHECK (origin IN ('shipped', 'user', 'edited'));
COMMENT ON COLUMN subbilling.tax_rates.origin IS 'shipped: installed with the extension (not dumped); user: added by an operator; edited: shipped, then changed (dumped, restored over the shipped row)';
CREATE TRIGGER tax_rates_shipped_row BEFORE INSERT OR UPDATE ON subbilling.tax_rates
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.shipped_row();
SELECT pg_catalog.pg_extension_config_dump('subbilling.tax_rates', 'WHERE origin <> ''shipped''');

ALTER TABLE subbilling.vat_boxes RENAME COLUMN shipped TO origin;
ALTER TABLE subbilling.vat_boxes ALTER COLUMN origin DROP DEFAULT;
ALTER TABLE subbilling.vat_boxes ALTER COLUMN origin TYPE text USING CASE WHEN origin THEN 'shipped' ELSE 'user' END;
ALTER TABLE subbilling.vat_boxes ALTER COLUMN origin SET DEFAULT 'user';
ALTER TABLE subbilling.vat_boxes ADD CONSTRAINT vat_boxes_origin_check CHECK (origin IN ('shipped', 'user', 'edited'));
COMMENT ON COLUMN subbilling.vat_boxes.origin IS 'shipped: installed with the extension (not dumped); user: added by an operator; edited: shipped, then changed (dumped, restored over the shipped row)';
CREATE TRIGGER vat_boxes_shipped_row BEFORE INSERT OR UPDATE ON subbilling.vat_boxes
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.shipped_row();
SELECT pg_catalog.pg_extension_config_dump('subbilling.vat_boxes', 'WHERE origin <> ''shipped''');

-- PostgreSQL 18 keeps NOT NULL constraints in pg_constraint, named <table>_<column>_not_null
-- when the column is made; a renamed column keeps its old name there.  Give them the names a
-- fresh install has (nothing to do before 18).
DO $rename$
DECLARE
    t   text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tax_categories', 'tax_rates', 'vat_boxes'] LOOP
        IF EXISTS (SELECT FROM pg_catalog.pg_constraint c
                    WHERE c.conrelid = ('subbilling.' || t)::regclass AND c.conname = t || '_shipped_not_null') THEN
            EXECUTE format('ALTER TABLE subbilling.%I RENAME CONSTRAINT %I TO %I',
                           t, t || '_shipped_not_null', t || '_origin_not_null');
        END IF;
    END LOOP;
END
$rename$;
