BEGIN;
SELECT plan(3);
SELECT has_schema('subbilling');
SELECT has_extension('subbilling');
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'subbilling'), '0.3', 'version 0.3 installed');
SELECT * FROM finish();
ROLLBACK;
