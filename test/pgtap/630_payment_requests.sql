-- Payment requests of automatic methods: created at booking, reported back
-- with register_payment (succeeded) or payment_failed (retry schedule from
-- payment_settings.retry_days), retried by run_payment_retries.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 600_fixture.psql

SELECT plan(47);

CREATE FUNCTION pg_temp.card_account(ext text) RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT pg_temp.account(ext);
    INSERT INTO subbilling.payment_methods (account_id, kind, is_default) VALUES (pg_temp.acct(ext), 'card', true);
    SELECT pg_temp.acct(ext);
$$;
CREATE FUNCTION pg_temp.req(iid bigint) RETURNS subbilling.payment_requests LANGUAGE sql STABLE
    RETURN (SELECT r FROM subbilling.payment_requests r WHERE r.invoice_id = iid);

SELECT is((SELECT retry_days FROM payment_settings), '{3,5,7}'::integer[], 'default retry schedule: 3, 5, 7 days');

-- ------------------------------------------------------------ failures and retries
SELECT FROM pg_temp.card_account('f');
CREATE TEMP TABLE inv AS SELECT pg_temp.invoice(pg_temp.acct('f'), '{100.00 SEK}', '{p_saas}', '2024-04-01') AS id;
CREATE TEMP TABLE r AS SELECT (pg_temp.req((SELECT id FROM inv))).id;
SELECT results_eq($$ SELECT (x).status, (x).attempt, (x).amount::text, (x).requested_on FROM (SELECT pg_temp.req((SELECT id FROM inv)) x) q $$,
    $$ VALUES ('requested', 1, '125.00 SEK', '2024-04-01'::date) $$, 'a request at booking');

SELECT is(payment_failed((SELECT id FROM r), 'insufficient funds', '2024-04-02'), '2024-04-05'::date,
          'the first failure schedules a retry 3 days later');
SELECT results_eq($$ SELECT (x).status, (x).attempt, (x).failed_on, (x).failure_reason, (x).next_attempt_on
                       FROM (SELECT pg_temp.req((SELECT id FROM inv)) x) q $$,
    $$ VALUES ('failed', 1, '2024-04-02'::date, 'insufficient funds', '2024-04-05'::date) $$, 'the request is failed, retry scheduled');
SELECT is((SELECT payload - 'payment_request_id' FROM events WHERE type = 'payment.failed'),
          jsonb_build_object('invoice_id', (SELECT id FROM inv), 'number', (SELECT number FROM invoices WHERE id = (SELECT id FROM inv)),
                             'currency', 'SEK', 'amount', '125.00 SEK', 'attempt', 1, 'reason', 'insufficient funds',
                             'failed_on', '2024-04-02', 'next_attempt_on', '2024-04-05', 'final', false),
          'event payment.failed with the next attempt');
SELECT * FROM pg_temp.refused($$ SELECT payment_failed((SELECT id FROM r), 'again', '2024-04-02') $$,
    '55000', format('payment request %s is failed, not requested', (SELECT id FROM r)), 'a failed request does not fail twice: 55000');
SELECT is(run_payment_retries('2024-04-04'), 0, 'no retry before its day');
SELECT is(run_payment_retries('2024-04-05'), 1, 'the retry on its day');
SELECT results_eq($$ SELECT (x).status, (x).attempt, (x).requested_on, (x).next_attempt_on FROM (SELECT pg_temp.req((SELECT id FROM inv)) x) q $$,
    $$ VALUES ('requested', 2, '2024-04-05'::date, NULL::date) $$, 'requested again: attempt 2');
SELECT is((SELECT array_agg((payload->>'attempt')::int ORDER BY id) FROM events WHERE type = 'payment.requested' AND invoice_id = (SELECT id FROM inv)),
          ARRAY[1, 2], 'payment.requested for attempt 2');
SELECT is(run_payment_retries('2024-04-05'), 0, 'a retry runs once');
SELECT is(payment_failed((SELECT id FROM r), 'expired card', '2024-04-06'), '2024-04-11'::date, 'second failure: 5 days');
SELECT is(run_payment_retries('2024-04-30'), 1, 'retry 2 (late is fine)');
SELECT is(payment_failed((SELECT id FROM r), 'expired card', '2024-05-01'), '2024-05-08'::date, 'third failure: 7 days');
SELECT is(run_payment_retries('2024-05-08'), 1, 'retry 3');
SELECT is(payment_failed((SELECT id FROM r), 'expired card', '2024-05-09'), NULL::date, 'the fourth failure is final');
SELECT results_eq($$ SELECT (x).status, (x).attempt, (x).next_attempt_on FROM (SELECT pg_temp.req((SELECT id FROM inv)) x) q $$,
    $$ VALUES ('failed', 4, NULL::date) $$, 'failed for good after 4 attempts');
SELECT is((SELECT payload->>'final' FROM events WHERE type = 'payment.failed' ORDER BY id DESC LIMIT 1), 'true', 'payment.failed says final');
SELECT is(run_payment_retries('2024-12-31'), 0, 'no more retries');
SELECT results_eq($$ VALUES (pg_temp.status((SELECT id FROM inv)), pg_temp.open((SELECT id FROM inv))) $$,
    $$ VALUES ('open', '125.00 SEK') $$, 'the invoice stays open for dunning');

-- ------------------------------------------------------------ succeeded
SELECT FROM pg_temp.card_account('s');
CREATE TEMP TABLE inv2 AS SELECT pg_temp.invoice(pg_temp.acct('s'), '{100.00 SEK}', '{p_saas}', '2024-04-01') AS id;
CREATE TEMP TABLE p2 AS SELECT register_payment('125.00 SEK', pg_temp.ref((SELECT id FROM inv2)), '2024-04-01', 'card', 'ch_1') AS id;
SELECT results_eq($$ SELECT (x).status, (x).payment_id FROM (SELECT pg_temp.req((SELECT id FROM inv2)) x) q $$,
    $$ VALUES ('succeeded', (SELECT id FROM p2)) $$, 'a card payment with the invoice''s reference: the request succeeded');
SELECT is((SELECT payment_request_id FROM payments WHERE id = (SELECT id FROM p2)), (pg_temp.req((SELECT id FROM inv2))).id,
          'the payment names the request');
SELECT is((SELECT (payload->>'payment_request_id')::bigint FROM events WHERE type = 'payment.received' AND invoice_id = (SELECT id FROM inv2)),
          (pg_temp.req((SELECT id FROM inv2))).id, 'and so does payment.received');
SELECT is(pg_temp.status((SELECT id FROM inv2)), 'paid', 'the invoice is paid');

-- a failed request whose retry is pending succeeds too
SELECT FROM pg_temp.card_account('s2');
CREATE TEMP TABLE inv3 AS SELECT pg_temp.invoice(pg_temp.acct('s2'), '{100.00 SEK}', '{p_saas}', '2024-04-01') AS id;
SELECT FROM payment_failed((pg_temp.req((SELECT id FROM inv3))).id, 'declined', '2024-04-01');
SELECT FROM register_payment('25.00 SEK', pg_temp.ref((SELECT id FROM inv3)), '2024-04-02', 'autogiro');
SELECT results_eq($$ SELECT (x).status, (x).next_attempt_on FROM (SELECT pg_temp.req((SELECT id FROM inv3)) x) q $$,
    $$ VALUES ('succeeded', NULL::date) $$, 'an automatic payment settles the pending request, even a partial one');
SELECT is(pg_temp.open((SELECT id FROM inv3)), '100.00 SEK', 'the rest stays open');

-- ------------------------------------------------------------ paid otherwise
SELECT FROM pg_temp.card_account('o');
CREATE TEMP TABLE inv4 AS SELECT pg_temp.invoice(pg_temp.acct('o'), '{100.00 SEK}', '{p_saas}', '2024-04-01') AS id;
SELECT FROM payment_failed((pg_temp.req((SELECT id FROM inv4))).id, 'declined', '2024-04-01');
SELECT FROM register_payment('25.00 SEK', pg_temp.ref((SELECT id FROM inv4)), '2024-04-02', 'bankgiro');
SELECT results_eq($$ SELECT (x).status, (x).next_attempt_on FROM (SELECT pg_temp.req((SELECT id FROM inv4)) x) q $$,
    $$ VALUES ('failed', '2024-04-04'::date) $$, 'a partial bank payment leaves the retry pending');
SELECT is(run_payment_retries('2024-04-04'), 1, 'retried');
SELECT is((pg_temp.req((SELECT id FROM inv4))).amount::text, '100.00 SEK', 'for what is still open');
SELECT FROM register_payment('100.00 SEK', pg_temp.ref((SELECT id FROM inv4)), '2024-04-05', 'bankgiro');
SELECT results_eq($$ SELECT (x).status, (x).payment_id FROM (SELECT pg_temp.req((SELECT id FROM inv4)) x) q $$,
    $$ VALUES ('canceled', NULL::bigint) $$, 'paid in full by bank: the request is canceled');
-- paid while a retry is pending: the retry is canceled
SELECT FROM pg_temp.card_account('o2');
CREATE TEMP TABLE inv5 AS SELECT pg_temp.invoice(pg_temp.acct('o2'), '{100.00 SEK}', '{p_saas}', '2024-04-01') AS id;
SELECT FROM payment_failed((pg_temp.req((SELECT id FROM inv5))).id, 'declined', '2024-04-01');
SELECT FROM register_payment('125.00 SEK', pg_temp.ref((SELECT id FROM inv5)), '2024-04-02', 'swish');
SELECT results_eq($$ SELECT (x).status, (x).next_attempt_on FROM (SELECT pg_temp.req((SELECT id FROM inv5)) x) q $$,
    $$ VALUES ('canceled', NULL::date) $$, 'paid otherwise while a retry is pending: canceled');
SELECT is(run_payment_retries('2024-04-30'), 0, 'nothing to retry');
-- the card was removed before the retry
SELECT FROM pg_temp.card_account('o3');
CREATE TEMP TABLE inv6 AS SELECT pg_temp.invoice(pg_temp.acct('o3'), '{100.00 SEK}', '{p_saas}', '2024-04-01') AS id;
SELECT FROM payment_failed((pg_temp.req((SELECT id FROM inv6))).id, 'declined', '2024-04-01');
UPDATE payment_methods SET is_default = false, active = false WHERE account_id = pg_temp.acct('o3');
SELECT is(run_payment_retries('2024-04-30'), 0, 'no retry on an inactive method');
SELECT is((pg_temp.req((SELECT id FROM inv6))).status, 'canceled', 'that request is canceled');

-- ------------------------------------------------------------ settings
UPDATE payment_settings SET retry_days = '{1}';
SELECT FROM pg_temp.card_account('t');
CREATE TEMP TABLE inv7 AS SELECT pg_temp.invoice(pg_temp.acct('t'), '{100.00 SEK}', '{p_saas}', '2024-04-01') AS id;
SELECT is(payment_failed((pg_temp.req((SELECT id FROM inv7))).id, 'declined', '2024-04-01'), '2024-04-02'::date, 'retry_days {1}: one retry a day later');
SELECT FROM run_payment_retries('2024-04-02');
SELECT is(payment_failed((pg_temp.req((SELECT id FROM inv7))).id, 'declined', '2024-04-02'), NULL::date, 'and no second');
UPDATE payment_settings SET retry_days = '{}';
SELECT FROM pg_temp.card_account('t2');
CREATE TEMP TABLE inv8 AS SELECT pg_temp.invoice(pg_temp.acct('t2'), '{100.00 SEK}', '{p_saas}', '2024-04-01') AS id;
SELECT is(payment_failed((pg_temp.req((SELECT id FROM inv8))).id, 'declined'), NULL::date, 'retry_days {}: no retries');
SELECT is((pg_temp.req((SELECT id FROM inv8))).failed_on, current_date, 'failed_on defaults to today');
SELECT throws_ok($$ UPDATE payment_settings SET retry_days = '{3,0}' $$, '23514', NULL, 'retry days are positive');
SELECT throws_ok($$ UPDATE payment_settings SET retry_days = '{3,NULL}' $$, '23514', NULL, 'retry days are not NULL');
SELECT throws_ok($$ INSERT INTO payment_settings (id) VALUES (false) $$, '23514', NULL, 'one settings row');

-- ------------------------------------------------------------ refusals
SELECT * FROM pg_temp.refused($$ SELECT payment_failed(-1, 'x') $$,
    '42704', 'payment request -1 does not exist', 'unknown request: 42704');
SELECT * FROM pg_temp.refused($$ SELECT payment_failed((pg_temp.req((SELECT id FROM inv8))).id, 'x', NULL) $$,
    '22023', 'failed_on must be a finite date', 'no date: 22023');
SELECT throws_ok($$ SELECT run_payment_retries(NULL) $$, '22023', 'as_of must be a finite date', 'run_payment_retries(NULL): 22023');

SELECT * FROM finish();
ROLLBACK;
