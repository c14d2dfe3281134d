-- One name for shipped rows: every table that ships rows has the column origin
-- ('shipped' | 'user' | 'edited'), its trigger <table>_shipped_row and the dump filter
-- WHERE origin <> 'shipped'; the tax tables too (they had a boolean column shipped).
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(9);

SELECT is((SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            WHERE c.relnamespace = 'subbilling'::regnamespace AND c.relkind = 'r' AND a.attname = 'shipped'
              AND NOT a.attisdropped),
          NULL, 'no table has a column shipped');
SELECT is((SELECT array_agg(c.relname::text ORDER BY c.relname)
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            WHERE c.relnamespace = 'subbilling'::regnamespace AND c.relkind = 'r' AND a.attname = 'origin'
              AND c.relname <> 'worker_runs'
              AND NOT EXISTS (SELECT FROM pg_trigger tg WHERE tg.tgrelid = c.oid AND tg.tgname = c.relname || '_shipped_row')),
          NULL, 'every table with shipped rows (column origin) has its trigger _shipped_row');
SELECT is((SELECT array_agg(c.relname::text || ': ' || u.cond ORDER BY c.relname)
             FROM pg_extension x, unnest(x.extconfig, x.extcondition) u(oid, cond) JOIN pg_class c ON c.oid = u.oid
            WHERE x.extname = 'subbilling' AND c.relname IN ('tax_categories', 'tax_rates', 'vat_boxes')),
          ARRAY['tax_categories: WHERE origin <> ''shipped''', 'tax_rates: WHERE origin <> ''shipped''',
                'vat_boxes: WHERE origin <> ''shipped'''],
          'the tax tables are dumped with the same filter as the other tables that ship rows');
SELECT is((SELECT count(*) FROM tax_categories WHERE origin <> 'shipped')
        + (SELECT count(*) FROM tax_rates WHERE origin <> 'shipped')
        + (SELECT count(*) FROM vat_boxes WHERE origin <> 'shipped'), 0::bigint,
          'the installed tax rows are shipped');

UPDATE tax_rates SET source = 'checked' WHERE country = 'SE' AND category = 'standard';
SELECT is((SELECT origin FROM tax_rates WHERE country = 'SE' AND category = 'standard'), 'edited',
          'a changed shipped tax rate becomes edited (dumped)');
UPDATE vat_boxes SET box = box WHERE ledger_code = '3001';
SELECT is((SELECT origin FROM vat_boxes WHERE ledger_code = '3001'), 'shipped', 'an update that changes nothing leaves it shipped');
INSERT INTO tax_categories (code, name) VALUES ('t_origin', 'Operator''s category');
SELECT is((SELECT origin FROM tax_categories WHERE code = 't_origin'), 'user', 'an added category is the operator''s');

-- a restore inserts an edited row over the shipped row of the same key
INSERT INTO vat_boxes (ledger_code, box, origin) VALUES ('3002', '06', 'edited');
SELECT results_eq($$SELECT box, origin FROM vat_boxes WHERE ledger_code = '3002'$$,
                  $$VALUES ('06', 'edited')$$, 'an edited VAT box inserted at restore replaces the shipped row');
SELECT throws_ok($$INSERT INTO tax_categories (code, name, origin) VALUES ('standard', 'x', 'nonsense')$$, '23514', NULL,
                 'origin takes shipped, user or edited only');

SELECT * FROM finish();
ROLLBACK;
