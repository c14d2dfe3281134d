-- What the public API needs beyond one server, checked on one server: external ids (the
-- UNIQUE of accounts here; the lookup table and its trigger that distribute() makes on Citus,
-- made here by hand), set_account_external_id, account_by_external_id, relay_events and its
-- cursor, privileges.
-- The Citus tier (test/citus.sh) checks them on a cluster, notifications included.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
SELECT plan(41);

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

SELECT is(set_account_external_id((SELECT id FROM accounts WHERE name = 'Three'), 'x-3'),
          (SELECT id FROM accounts WHERE name = 'Three'), 'one server: set_account_external_id returns the account');
SELECT is((SELECT external_id FROM accounts WHERE name = 'Three'), 'x-3', 'one server: set_account_external_id sets it');
SELECT throws_ok($$SELECT set_account_external_id((SELECT id FROM accounts WHERE name = 'Three'), 'x-1')$$,
                 '23505', NULL, 'one server: set_account_external_id refuses a taken external id');
SELECT throws_ok($$SELECT set_account_external_id(-1, 'x-9')$$, '42704', 'account -1 does not exist', 'an unknown account: 42704');
SELECT throws_ok($$SELECT set_account_external_id(NULL, 'x-9')$$, '22004', 'account_id must not be null', 'a null account: 22004');
SELECT is((SELECT count(*) FROM subbilling_internal.account_external_ids), 0::bigint,
          'one server: the lookup table stays empty (no trigger)');

-- ------------------------------------------------------------------ the trigger distribute() makes
SAVEPOINT citus_like;
ALTER TABLE accounts DROP CONSTRAINT accounts_external_id_key;
CREATE TRIGGER accounts_external_id BEFORE INSERT OR UPDATE OF external_id ON accounts
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.accounts_external_id();
INSERT INTO subbilling_internal.account_external_ids (external_id, account_id)
SELECT external_id, id FROM accounts WHERE external_id IS NOT NULL;
INSERT INTO subbilling_internal.account_external_id_grants (account_id, external_id)
SELECT id, external_id FROM accounts WHERE external_id IS NOT NULL;
SELECT throws_ok($$INSERT INTO accounts (external_id, name, country, currency) VALUES ('x-4', 'Four', 'SE', 'SEK')$$,
                 '0A000', 'the external id of an account is set with set_account_external_id on a distributed installation',
                 'distributed: an external id written directly is refused');
SELECT throws_ok($$UPDATE accounts SET external_id = 'x-9' WHERE name = 'Two'$$,
                 '0A000', NULL, 'distributed: an external id changed directly is refused');
INSERT INTO accounts (name, country, currency) VALUES ('Four', 'SE', 'SEK');
UPDATE accounts SET name = 'One again' WHERE name = 'One';
SELECT is((SELECT external_id FROM accounts WHERE name = 'One again'), 'x-1', 'distributed: other changes of an account pass');
SELECT lives_ok($$SELECT set_account_external_id((SELECT id FROM accounts WHERE name = 'Four'), 'x-4')$$,
                'distributed: set_account_external_id sets an external id');
SELECT is((SELECT account_id FROM subbilling_internal.account_external_ids WHERE external_id = 'x-4'),
          (SELECT id FROM accounts WHERE name = 'Four'), 'distributed: ... with its lookup row');
SELECT is(account_by_external_id('x-4'), (SELECT id FROM accounts WHERE name = 'Four'),
          'distributed: account_by_external_id reads the lookup table');
SELECT throws_ok($$SELECT set_account_external_id((SELECT id FROM accounts WHERE name = 'Four'), 'x-2')$$,
                 '23505', NULL, 'distributed: a taken external id is refused');
SELECT lives_ok($$SELECT set_account_external_id((SELECT id FROM accounts WHERE name = 'Two'), 'x-2b')$$,
                'distributed: an external id changed');
SELECT results_eq($$SELECT external_id FROM subbilling_internal.account_external_ids ORDER BY 1$$,
                  ARRAY['x-1', 'x-2b', 'x-3', 'x-4'], 'distributed: the old one leaves the lookup table');
SELECT lives_ok($$SELECT set_account_external_id((SELECT id FROM accounts WHERE name = 'One again'), NULL)$$,
                'distributed: an external id cleared');
SELECT lives_ok($$SELECT set_account_external_id((SELECT id FROM accounts WHERE name = 'Four'), 'x-1')$$,
                'distributed: a freed external id is taken again');
SELECT results_eq($$SELECT g.external_id FROM subbilling_internal.account_external_id_grants g ORDER BY 1$$,
                  ARRAY['x-1', 'x-2b', 'x-3'], 'distributed: one grant per account with an external id');
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
SELECT throws_ok($$SELECT subbilling.account_by_external_id('x-2')$$, '42501', NULL,
                 'a reader cannot look an external id up (its functions are an allow-list of reports)');
RESET ROLE;
SET LOCAL ROLE subbilling_operator;
SELECT is(subbilling.relay_events(), 0, 'an operator can relay events');
SELECT is(subbilling.account_by_external_id('x-2'), :two::bigint, 'an operator can look an external id up');
RESET ROLE;
SET LOCAL ROLE subbilling_reader;
SELECT throws_ok($$SELECT subbilling.set_account_external_id(1, 'r')$$, '42501', NULL, 'a reader cannot set an external id');
RESET ROLE;
SET LOCAL ROLE subbilling_operator;
SELECT is(subbilling.set_account_external_id(:two::bigint, 'x-2o'), :two::bigint, 'an operator can set an external id');
RESET ROLE;
SELECT ok(NOT has_function_privilege('public', 'subbilling.account_by_external_id(text)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling.relay_events(integer)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling.set_account_external_id(bigint, text)', 'EXECUTE'),
          'PUBLIC may call none of them');

SELECT * FROM finish();
ROLLBACK;
