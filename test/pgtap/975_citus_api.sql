-- What the public API needs beyond one server, checked on one server: external ids (the
-- UNIQUE of accounts here; the lookup table and its trigger that distribute() makes on Citus,
-- made here by hand), account_by_external_id, relay_events and its cursor, privileges.
-- The Citus tier (test/citus.sh) checks them on a cluster, notifications included.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
SELECT plan(28);

SELECT has_function('subbilling', 'account_by_external_id', ARRAY['text'], 'account_by_external_id(text) exists');
SELECT has_function('subbilling', 'relay_events', ARRAY['integer'], 'relay_events(integer) exists');
SELECT is((SELECT pg_get_function_arguments('subbilling.relay_events(integer)'::regprocedure)),
          'max integer DEFAULT 1000', 'relay_events: max defaults to 1000');

-- ------------------------------------------------------------------ external ids, one server
INSERT INTO accounts (external_id, name, country, currency)
VALUES ('x-1', 'One', 'SE', 'SEK'), ('x-2', 'Two', 'SE', 'SEK'), (NULL, 'Three', 'SE', 'SEK');
SELECT throws_ok($$INSERT INTO accounts (external_id, name, country, currency) VALUES ('x-1', 'Again', 'SE', 'SEK')$$,
                 '23505', NULL, 'one server: a duplicate external id is refused (UNIQUE)');
SELECT is(account_by_external_id('x-2'), (SELECT id FROM accounts WHERE name = 'Two'), 'one server: account_by_external_id finds the account');
SELECT is(account_by_external_id('nobody'), NULL, 'one server: an unknown external id gives NULL');
SELECT is(account_by_external_id(NULL), NULL, 'account_by_external_id(NULL) is NULL');
SELECT is((SELECT count(*) FROM subbilling_internal.account_external_ids), 0::bigint,
          'one server: the lookup table stays empty (no trigger)');
SELECT ok(NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'subbilling.accounts'::regclass AND tgname = 'accounts_external_id'),
          'one server: accounts has no external-id trigger (nothing added to an account insert)');

-- ------------------------------------------------------------------ the trigger distribute() makes
SAVEPOINT citus_like;
ALTER TABLE accounts DROP CONSTRAINT accounts_external_id_key;
CREATE TRIGGER accounts_external_id AFTER INSERT OR DELETE OR UPDATE OF external_id ON accounts
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.accounts_external_id();
INSERT INTO subbilling_internal.account_external_ids (external_id, account_id)
SELECT external_id, id FROM accounts WHERE external_id IS NOT NULL;
INSERT INTO accounts (external_id, name, country, currency) VALUES ('x-4', 'Four', 'SE', 'SEK'), (NULL, 'Five', 'SE', 'SEK');
SELECT is((SELECT account_id FROM subbilling_internal.account_external_ids WHERE external_id = 'x-4'),
          (SELECT id FROM accounts WHERE name = 'Four'), 'trigger: a new account''s external id is in the lookup table');
SELECT is((SELECT count(*) FROM subbilling_internal.account_external_ids), 3::bigint, 'trigger: no row for an account without one');
SELECT throws_ok($$INSERT INTO accounts (external_id, name, country, currency) VALUES ('x-4', 'Again', 'SE', 'SEK')$$,
                 '23505', NULL, 'trigger: a duplicate external id is refused');
SELECT throws_ok($$UPDATE accounts SET external_id = 'x-1' WHERE name = 'Two'$$,
                 '23505', NULL, 'trigger: changing to a taken external id is refused');
UPDATE accounts SET external_id = 'x-2b' WHERE name = 'Two';
SELECT results_eq($$SELECT external_id FROM subbilling_internal.account_external_ids ORDER BY 1$$,
                  ARRAY['x-1', 'x-2b', 'x-4'], 'trigger: a changed external id moves in the lookup table');
UPDATE accounts SET external_id = NULL WHERE name = 'One';
SELECT results_eq($$SELECT external_id FROM subbilling_internal.account_external_ids ORDER BY 1$$,
                  ARRAY['x-2b', 'x-4'], 'trigger: a cleared external id is freed');
UPDATE accounts SET external_id = 'x-1' WHERE name = 'Five';
SELECT is(account_by_external_id('x-1'), (SELECT id FROM accounts WHERE name = 'Five'),
          'with the trigger: account_by_external_id reads the lookup table, and a freed id is taken again');
DELETE FROM accounts WHERE name = 'Four';
SELECT is((SELECT count(*) FROM subbilling_internal.account_external_ids WHERE external_id = 'x-4'), 0::bigint,
          'trigger: a deleted account frees its external id');
ROLLBACK TO SAVEPOINT citus_like;

-- ------------------------------------------------------------------ relay_events
SELECT subbilling_internal.emit_event(id, 'account.relay_test', NULL, '{}') FROM accounts WHERE name IN ('One', 'Two', 'Three');
SELECT throws_ok($$SELECT relay_events(0)$$, '22023', 'max must be a positive number of events, not 0', 'relay_events(0): 22023');
SELECT throws_ok($$SELECT relay_events(NULL)$$, '22023', 'max must be a positive number of events, not null', 'relay_events(NULL): 22023');
SELECT is(relay_events(2), 2, 'relay_events(2) relays two events');
SELECT is((SELECT last_event_id FROM subbilling_internal.relay_cursor),
          (SELECT id FROM events ORDER BY id OFFSET 1 LIMIT 1), 'the cursor is at the second event');
SELECT is(relay_events(), (SELECT count(*)::int - 2 FROM events), 'relay_events() relays the rest');
SELECT is(relay_events(), 0, 'relay_events() again: nothing new');
SELECT is((SELECT last_event_id FROM subbilling_internal.relay_cursor), (SELECT max(id) FROM events),
          'the cursor is at the last event');

-- ------------------------------------------------------------------ privileges
SELECT id AS two FROM accounts WHERE name = 'Two' \gset
SET LOCAL ROLE subbilling_reader;
SELECT throws_ok($$SELECT subbilling.relay_events()$$, '42501', NULL, 'a reader cannot relay events');
SELECT is(subbilling.account_by_external_id('x-2'), :two::bigint, 'a reader can look an external id up');
RESET ROLE;
SET LOCAL ROLE subbilling_operator;
SELECT is(subbilling.relay_events(), 0, 'an operator can relay events');
RESET ROLE;
SELECT ok(NOT has_function_privilege('public', 'subbilling.account_by_external_id(text)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling.relay_events(integer)', 'EXECUTE'),
          'PUBLIC may call neither');

SELECT * FROM finish();
ROLLBACK;
