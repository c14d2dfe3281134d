-- The event outbox: emit_event, events_after.  NOTIFY delivery at commit and
-- never at rollback, and the catch-up race, are in test/t/001_notify.pl.
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(22);
\ir 300_fixture.psql

SELECT has_function('subbilling', 'emit_event', ARRAY['bigint', 'text', 'bigint', 'jsonb', 'bigint'], 'emit_event exists');
SELECT has_function('subbilling', 'events_after', ARRAY['bigint', 'integer'], 'events_after exists');
SELECT function_returns('subbilling', 'events_after', ARRAY['bigint', 'integer'], 'setof events', 'events_after returns events rows');
SELECT volatility_is('subbilling', 'events_after', ARRAY['bigint', 'integer'], 'volatile',
                     'events_after is volatile: each statement takes a new snapshot');

CREATE TEMP TABLE mark AS SELECT pg_temp.last_event_id() AS before;

SELECT isnt(emit_event(pg_temp.acct('t_se'), 'test.one', NULL, '{"n": 1}'), NULL, 'emit_event returns the id');
SELECT isnt(emit_event(pg_temp.acct('t_se2'), 'test.two', NULL, '{"n": 2}', 42), NULL, 'with an invoice id');
SELECT isnt(emit_event(pg_temp.acct('t_se'), 'test.three', NULL, NULL), NULL, 'a NULL payload is an empty object');

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

SELECT throws_ok($$SELECT emit_event(pg_temp.acct('t_se'), 'Not A Type', NULL, '{}')$$,
                 '23514', 'new row for relation "events" violates check constraint "events_type_format"', 'event types are dotted lower-case words');
SELECT throws_ok($$SELECT emit_event(-1, 'test.x', NULL, '{}')$$, '23503', NULL, 'event of an unknown account');
SELECT throws_ok($$SELECT emit_event(pg_temp.acct('t_se'), 'test.x', -1, '{}')$$, '23503', NULL, 'event of an unknown subscription');
SELECT throws_ok($$SELECT emit_event(pg_temp.acct('t_se'), 'test.x', NULL, '[1, 2]')$$,
                 '23514', 'new row for relation "events" violates check constraint "events_payload_object"', 'payload must be an object');

-- the writer holds the outbox watermark lock for its transaction, once
SELECT is((SELECT count(*)::int FROM pg_catalog.pg_locks
            WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objsubid = 2
              AND classid::bigint BETWEEN 1396834304 AND 1396834304 + 65535), 1,
          'one watermark lock per transaction, however many events');
SELECT cmp_ok((SELECT ((classid::bigint - 1396834304) << 31) | objid::bigint FROM pg_catalog.pg_locks
                WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objsubid = 2
                  AND classid::bigint BETWEEN 1396834304 AND 1396834304 + 65535),
              '<=', (SELECT min(id) FROM events WHERE id > (SELECT before FROM mark)),
              'the watermark is at or below the transaction''s first event id');

-- notify off: the row is written all the same
SET LOCAL subbilling.notify = off;
SELECT isnt(emit_event(pg_temp.acct('t_se'), 'test.quiet', NULL, '{}'), NULL, 'with subbilling.notify = off the event row is still written');

SELECT * FROM finish();
ROLLBACK;
