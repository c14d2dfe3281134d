-- events_after in a read-only transaction (and so on a hot standby, where
-- every transaction is read-only): refused up front with 25006 and a message
-- that says why, not a row-locking error from inside; the same call works
-- again once the transaction may write.
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(2);

SAVEPOINT ro;
SET LOCAL transaction_read_only = on;
SELECT throws_ok($$SELECT count(*) FROM events_after(0)$$, '25006',
                 'events_after cannot run in a read-only transaction',
                 'a read-only transaction: 25006 with a clear message');
ROLLBACK TO SAVEPOINT ro;
SELECT lives_ok($$SELECT count(*) FROM events_after(0)$$, 'read-write again: events_after runs');

SELECT * FROM finish();
ROLLBACK;
