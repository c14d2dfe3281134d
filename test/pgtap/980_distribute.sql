-- distribute() without Citus: it refuses with a documented SQLSTATE and changes nothing.
-- The Citus tier (test/citus.sh) distributes for real where citus is installed.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
SELECT plan(9);

SELECT has_function('subbilling', 'distribute', ARRAY['integer'], 'distribute(shard_count integer) exists');
SELECT is((SELECT pg_get_function_arguments('subbilling.distribute(integer)'::regprocedure)),
          'shard_count integer DEFAULT 32', 'shard_count defaults to 32');
SELECT throws_ok($$SELECT * FROM distribute()$$, '0A000',
                 'subbilling cannot be distributed: the citus extension is not installed in this database',
                 'without citus: 0A000');
SELECT throws_ok($$SELECT * FROM distribute(0)$$, '22023', 'shard_count must be between 1 and 64000, not 0',
                 'shard_count 0: 22023');
SELECT throws_ok($$SELECT * FROM distribute(NULL)$$, '22023', 'shard_count must be between 1 and 64000, not null',
                 'shard_count null: 22023');

INSERT INTO accounts (external_id, name, country, currency) VALUES ('dist-1', 'Distributed', 'SE', 'SEK');
SELECT throws_ok($$SELECT * FROM distribute()$$, '55000',
                 'subbilling cannot be distributed: table accounts already holds customer rows',
                 'customer rows: 55000, before looking for citus');

SET LOCAL ROLE subbilling_operator;
SELECT throws_ok($$SELECT * FROM subbilling.distribute()$$, '42501', 'only a superuser can distribute subbilling',
                 'an operator: 42501');
RESET ROLE;

-- nothing changed: the external id is still unique on one server, the database untouched
SELECT ok(EXISTS (SELECT FROM pg_constraint WHERE conname = 'accounts_external_id_key'
                                              AND conrelid = 'subbilling.accounts'::regclass),
          'accounts.external_id is still UNIQUE');
SELECT ok(NOT EXISTS (SELECT FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
                       WHERE d.datname = current_database()
                         AND EXISTS (SELECT FROM unnest(s.setconfig) c WHERE c ~ '^citus\.')),
          'no Citus setting was written to the database');

SELECT * FROM finish();
ROLLBACK;
