-- The event outbox: emit_event, events_after.  NOTIFY delivery at commit and
-- never at rollback, and the catch-up race, are in test/t/001_notify.pl.
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(28);
\ir 300_fixture.psql

SELECT has_function('subbilling_internal', 'emit_event', ARRAY['bigint', 'text', 'bigint', 'jsonb', 'bigint'], 'emit_event exists');
SELECT has_function('subbilling', 'events_after', ARRAY['bigint', 'integer'], 'events_after exists');
SELECT function_returns('subbilling', 'events_after', ARRAY['bigint', 'integer'], 'setof events', 'events_after returns events rows');
SELECT volatility_is('subbilling', 'events_after', ARRAY['bigint', 'integer'], 'volatile',
                     'events_after is volatile: each statement takes a new snapshot');

CREATE TEMP TABLE mark AS SELECT pg_temp.last_event_id() AS before;

SELECT isnt(subbilling_internal.emit_event(pg_temp.acct('t_se'), 'test.one', NULL, '{"n": 1}'), NULL, 'emit_event returns the id');
SELECT isnt(subbilling_internal.emit_event(pg_temp.acct('t_se2'), 'test.two', NULL, '{"n": 2}', 42), NULL, 'with an invoice id');
SELECT isnt(subbilling_internal.emit_event(pg_temp.acct('t_se'), 'test.three', NULL, NULL), NULL, 'a NULL payload is an empty object');

SELECT results_eq($$
    SELECT account_id, type, subscription_id, invoice_id, payload, created_at = now()
      FROM events WHERE id > (SELECT before FROM mark) ORDER BY id
$$, $$VALUES (pg_temp.acct('t_se'),  'test.one',   NULL::bigint, NULL::bigint, '{"n": 1}'::jsonb, true),
             (pg_temp.acct('t_se2'), 'test.two',   NULL::bigint, 42::bigint,   '{"n": 2}'::jsonb, true),
             (pg_temp.acct('t_se'),  'test.three', NULL::bigint, NULL::bigint, '{}'::jsonb,       true)$$,
   'the event rows as written, in the transaction''s time');

SELECT results_eq($$SELECT type FROM events_after((SELECT before FROM mark)) ORDER BY id$$,
                  ARRAY['test.one', 'test.two', 'test.three'],
                  'events_after: everything after the mark (a transaction sees its own events)');
SELECT results_eq($$SELECT type FROM events_after((SELECT before FROM mark), 2)$$,
                  ARRAY['test.one', 'test.two'], 'events_after: at most max, in id order');
SELECT results_eq($$SELECT type FROM events_after((SELECT min(id) FROM events WHERE id > (SELECT before FROM mark)), 1)$$,
                  ARRAY['test.two'], 'events_after: strictly after last_id');
SELECT is_empty($$SELECT * FROM events_after((SELECT max(id) FROM events))$$, 'events_after the last id: nothing');
SELECT ok((SELECT count(*) FROM events_after(NULL, 100000)) >= 3, 'events_after(NULL) starts at the beginning');
SELECT throws_ok($$SELECT * FROM events_after(0, 0)$$, '22023', 'max must be a positive number of events', 'max 0');
SELECT throws_ok($$SELECT * FROM events_after(0, NULL)$$, '22023', 'max must be a positive number of events', 'max NULL');

SELECT throws_ok($$SELECT subbilling_internal.emit_event(pg_temp.acct('t_se'), 'Not A Type', NULL, '{}')$$,
                 '23514', 'new row for relation "events" violates check constraint "events_type_format"', 'event types are dotted lower-case words');
SELECT throws_ok($$SELECT subbilling_internal.emit_event(-1, 'test.x', NULL, '{}')$$, '23503', NULL, 'event of an unknown account');
SELECT throws_ok($$SELECT subbilling_internal.emit_event(pg_temp.acct('t_se'), 'test.x', -1, '{}')$$, '23503', NULL, 'event of an unknown subscription');
SELECT throws_ok($$SELECT subbilling_internal.emit_event(pg_temp.acct('t_se'), 'test.x', NULL, '[1, 2]')$$,
                 '23514', 'new row for relation "events" violates check constraint "events_payload_object"', 'payload must be an object');

-- the writer holds one outbox slot (a row lock) for its transaction, once
SELECT is((SELECT count(*)::int FROM outbox_slots WHERE xact = pg_current_xact_id()), 1,
          'one outbox slot per transaction, however many events');
SELECT cmp_ok((SELECT bound FROM outbox_slots WHERE xact = pg_current_xact_id()),
              '<=', (SELECT min(id) FROM events WHERE id > (SELECT before FROM mark)),
              'the slot''s bound is at or below the transaction''s first event id (events_after hands out ids below it)');
-- an internal setting names no slot: a forged one is checked against the row
SELECT ok(set_config('subbilling_internal.outbox_slot', (SELECT min(slot) FROM outbox_slots WHERE xact IS DISTINCT FROM pg_current_xact_id())::text, true) IS NOT NULL,
          'forge the internal setting to name another slot');
SELECT isnt(subbilling_internal.emit_event(pg_temp.acct('t_se'), 'test.forged', NULL, '{}'), NULL, 'an event after the setting was forged');
SELECT is((SELECT count(*)::int FROM outbox_slots WHERE xact = pg_current_xact_id()), 1,
          'still the transaction''s one slot: a forged setting does not replace it');
SELECT is((SELECT count(*)::int FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), 0,
          'no advisory locks');
-- no other role may lock or read the slots
SELECT ok(NOT has_table_privilege('subbilling_operator', 'subbilling.outbox_slots', 'SELECT, UPDATE, DELETE')
          AND NOT has_table_privilege('public', 'subbilling.outbox_slots', 'SELECT, UPDATE')
          AND NOT has_table_privilege('subbilling_operator', 'subbilling.locks', 'SELECT, UPDATE'),
          'outbox_slots and locks: no privileges for other roles (no one else can take their row locks)');
SELECT ok(NOT has_function_privilege('subbilling_operator', 'subbilling_internal.outbox_notify(bigint, text, bigint, bigint, bigint, bigint)', 'EXECUTE')
          AND NOT has_function_privilege('subbilling_operator', 'subbilling_internal.lock_row(text, boolean)', 'EXECUTE')
          AND NOT has_function_privilege('subbilling_operator', 'subbilling_internal.outbox_reserve()', 'EXECUTE'),
          'the outbox and lock functions are internal');

-- notify off: the row is written all the same
SET LOCAL subbilling.notify = off;
SELECT isnt(subbilling_internal.emit_event(pg_temp.acct('t_se'), 'test.quiet', NULL, '{}'), NULL, 'with subbilling.notify = off the event row is still written');

SELECT * FROM finish();
ROLLBACK;
