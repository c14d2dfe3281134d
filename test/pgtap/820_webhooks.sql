-- Webhooks, the SQL surface: endpoints (URLs, allowed hosts, event types, secrets, rotation,
-- disable/enable), the signature, privileges, and the worker's SQL steps (fan-out, claim,
-- record, failure, redeliver) called by hand.  The worker itself: test/t/030_webhooks.pl.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
SELECT plan(98);

CREATE FUNCTION pg_temp.as_role(r name, q text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    res text;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', r);
    EXECUTE q INTO res;
    RESET ROLE;
    RETURN res;
END
$$;
CREATE ROLE subbilling_tap_nobody NOLOGIN;
GRANT USAGE ON SCHEMA subbilling TO subbilling_tap_nobody;
CREATE ROLE subbilling_tap_operator NOLOGIN IN ROLE subbilling_operator;
CREATE ROLE subbilling_tap_reader NOLOGIN IN ROLE subbilling_reader;

-- Objects ---------------------------------------------------------------------
SELECT has_table('subbilling', 'webhook_endpoints', 'table webhook_endpoints');
SELECT has_table('subbilling', 'webhook_deliveries', 'table webhook_deliveries');
SELECT has_table('subbilling', 'webhook_delivery_attempts', 'table webhook_delivery_attempts');
SELECT has_table('subbilling', 'webhook_allowed_hosts', 'table webhook_allowed_hosts');
SELECT has_view('subbilling', 'webhook_endpoint_status', 'view webhook_endpoint_status');
SELECT columns_are('subbilling', 'webhook_endpoints',
    ARRAY['id', 'url', 'host', 'secret', 'previous_secret', 'previous_secret_expires_at', 'event_types',
          'description', 'active', 'created_at', 'disabled_at', 'secret_rotated_at'],
    'webhook_endpoints(id, url, secret, event_types, active, ...)');
SELECT col_type_is('subbilling', 'webhook_endpoints', 'event_types', 'text[]', 'event_types text[]');
SELECT has_function('subbilling', 'create_webhook_endpoint', ARRAY['text', 'text[]', 'text'], 'create_webhook_endpoint(url, event_types, description)');
SELECT has_function('subbilling', 'rotate_webhook_secret', ARRAY['bigint', 'interval'], 'rotate_webhook_secret(endpoint_id, keep_previous)');
SELECT has_function('subbilling', 'disable_webhook_endpoint', ARRAY['bigint'], 'disable_webhook_endpoint(endpoint_id)');
SELECT has_function('subbilling', 'enable_webhook_endpoint', ARRAY['bigint'], 'enable_webhook_endpoint(endpoint_id)');
SELECT has_function('subbilling', 'redeliver', ARRAY['bigint'], 'redeliver(delivery_id)');
SELECT volatility_is('subbilling', 'webhook_signature', ARRAY['text', 'text', 'bigint', 'text'], 'immutable', 'webhook_signature is immutable');
SELECT is((SELECT count(*)::int FROM pg_proc WHERE pronamespace = 'subbilling'::regnamespace
             AND proname IN ('create_webhook_endpoint', 'rotate_webhook_secret', 'disable_webhook_endpoint',
                             'enable_webhook_endpoint', 'redeliver')
             AND prosecdef AND proconfig = '{"search_path=subbilling, pg_catalog, pg_temp"}'), 5,
          'the five management functions are SECURITY DEFINER with a pinned search_path');

SELECT results_eq(
    $$SELECT name::text, context::text, vartype::text, boot_val, coalesce(min_val, ''),
             coalesce(max_val, ''), coalesce(unit, '')
        FROM pg_catalog.pg_settings WHERE name LIKE 'subbilling.webhook%' ORDER BY name$$,
    $$VALUES ('subbilling.webhook_concurrency', 'sighup', 'integer', '32', '1', '1000', ''),
             ('subbilling.webhook_max_attempts', 'sighup', 'integer', '20', '1', '1000', ''),
             ('subbilling.webhook_poll_interval', 'sighup', 'integer', '1000', '10', '60000', 'ms'),
             ('subbilling.webhook_retry_base', 'sighup', 'integer', '5000', '10', '3600000', 'ms'),
             ('subbilling.webhook_timeout', 'sighup', 'integer', '10000', '100', '300000', 'ms'),
             ('subbilling.webhooks_enabled', 'sighup', 'bool', 'on', '', '', '')$$,
    'the webhook settings: contexts, types, defaults (retry base 5 s), ranges, units');

-- The signature: the example of the Standard Webhooks test suites, as the official npm
-- package standardwebhooks 1.3.0 computes it ---------------------------------
SELECT is(webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330,
                            '{"test": 2432232314}'),
          'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=', 'webhook_signature: the published example');
SELECT isnt(webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265331,
                              '{"test": 2432232314}'),
            'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=', 'another timestamp, another signature');
SELECT throws_ok($$SELECT webhook_signature('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', '1', 1, '{}')$$,
                 '22023', 'invalid webhook secret', 'a secret without whsec_');
SELECT throws_ok($$SELECT webhook_signature('whsec_!!!!', '1', 1, '{}')$$,
                 '22023', 'invalid webhook secret', 'a secret that is not base64');
SELECT throws_ok($$SELECT webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'a.b', 1, '{}')$$,
                 '22023', 'invalid webhook message id', 'a message id with a dot');
SELECT throws_ok($$SELECT webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', '1', -1, '{}')$$,
                 '22023', NULL, 'a negative timestamp');

-- Allowed hosts -----------------------------------------------------------------
SELECT throws_ok($$SELECT * FROM create_webhook_endpoint('https://hooks.example.com/billing')$$,
                 '42501', 'webhook host "hooks.example.com" is not allowed', 'an empty allow-list allows nothing');
SELECT throws_ok($$INSERT INTO webhook_allowed_hosts (pattern) VALUES ('Hooks.Example.com')$$,
                 '23514', NULL, 'patterns are lower case');
SELECT throws_ok($$INSERT INTO webhook_allowed_hosts (pattern) VALUES ('*')$$,
                 '23514', NULL, 'no pattern allows every host');
SELECT throws_ok($$INSERT INTO webhook_allowed_hosts (pattern) VALUES ('example.com/x')$$,
                 '23514', NULL, 'a pattern is a host, not a URL');
INSERT INTO webhook_allowed_hosts (pattern) VALUES ('*.example.com'), ('crm.example.org'), ('127.0.0.1'), ('[::1]');
SELECT ok((SELECT id FROM create_webhook_endpoint('https://hooks.example.com/billing')) IS NOT NULL,
          '*.example.com allows hooks.example.com');
SELECT ok((SELECT id FROM create_webhook_endpoint('HTTPS://A.B.Example.COM:8443/x?y=1')) IS NOT NULL,
          'and a.b.example.com, scheme and host in any case, a port and a query');
SELECT throws_ok($$SELECT * FROM create_webhook_endpoint('https://example.com/')$$,
                 '42501', NULL, 'but not example.com itself');
SELECT throws_ok($$SELECT * FROM create_webhook_endpoint('https://evilexample.com/')$$,
                 '42501', NULL, 'nor evilexample.com');
SELECT throws_ok($$SELECT * FROM create_webhook_endpoint('https://crm.example.org.evil.net/')$$,
                 '42501', NULL, 'an exact pattern matches the whole host only');
SELECT ok((SELECT id FROM create_webhook_endpoint('http://[::1]:8080/h')) IS NOT NULL, 'an IPv6 address in brackets');
SELECT is((SELECT host FROM webhook_endpoints ORDER BY id DESC LIMIT 1), '[::1]', 'host stored as matched');

-- Bad URLs ------------------------------------------------------------------------
SELECT throws_ok($$SELECT * FROM create_webhook_endpoint('ftp://crm.example.org/')$$,
                 '22023', 'webhook URLs must be http or https', 'ftp');
SELECT throws_ok($$SELECT * FROM create_webhook_endpoint('file:///etc/passwd')$$,
                 '22023', 'webhook URLs must be http or https', 'file');
SELECT throws_ok($$SELECT * FROM create_webhook_endpoint('javascript:alert(1)')$$,
                 '22023', 'invalid webhook URL', 'not an absolute URL');
SELECT throws_ok($$SELECT * FROM create_webhook_endpoint('https://user:pw@crm.example.org/')$$,
                 '22023', 'invalid webhook URL', 'credentials in the URL');
SELECT throws_ok($$SELECT * FROM create_webhook_endpoint('https://127.0.0.1@evil.net/')$$,
                 '22023', 'invalid webhook URL', 'an allowed host in front of @');
SELECT throws_ok($$SELECT * FROM create_webhook_endpoint('https://crm.example.org/#x')$$,
                 '22023', 'invalid webhook URL', 'a fragment');
SELECT throws_ok($$SELECT * FROM create_webhook_endpoint('https://crm.example.org/a b')$$,
                 '22023', 'invalid webhook URL', 'white space');
SELECT throws_ok($$SELECT * FROM create_webhook_endpoint('https://crm.example.org:70000/')$$,
                 '22023', 'invalid webhook URL', 'a port above 65535');
SELECT throws_ok($$SELECT * FROM create_webhook_endpoint('https:///x')$$,
                 '22023', 'invalid webhook URL', 'no host');
SELECT throws_ok($$SELECT * FROM create_webhook_endpoint(NULL)$$,
                 '22023', 'invalid webhook URL', 'NULL');
SELECT throws_ok($$SELECT * FROM create_webhook_endpoint('https://crm.example.org/' || repeat('x', 2000))$$,
                 '22023', 'invalid webhook URL', 'longer than 2000 characters');

-- Event types -----------------------------------------------------------------------
SELECT throws_ok($$SELECT * FROM create_webhook_endpoint('https://crm.example.org/', '{}')$$,
                 '22023', NULL, 'an empty list (NULL means all)');
SELECT throws_ok($$SELECT * FROM create_webhook_endpoint('https://crm.example.org/', '{Invoice.Paid}')$$,
                 '22023', 'invalid event type ''Invoice.Paid''', 'a type in upper case');
SELECT throws_ok($$SELECT * FROM create_webhook_endpoint('https://crm.example.org/', '{invoice.*.paid}')$$,
                 '22023', NULL, 'a wildcard in the middle');
SELECT throws_ok($$SELECT * FROM create_webhook_endpoint('https://crm.example.org/', ARRAY['invoice.paid', NULL])$$,
                 '22023', NULL, 'a NULL type');
CREATE TEMP TABLE typed AS SELECT * FROM create_webhook_endpoint('https://crm.example.org/', '{payment.received,invoice.*,invoice.*}');
SELECT is((SELECT event_types FROM webhook_endpoints WHERE id = (SELECT id FROM typed)),
          '{invoice.*,payment.received}', 'types sorted without duplicates');
SELECT ok(subbilling_internal.webhook_type_matches('{invoice.*}', 'invoice.paid')
          AND subbilling_internal.webhook_type_matches('{invoice.*}', 'invoice.credit_note.issued')
          AND NOT subbilling_internal.webhook_type_matches('{invoice.*}', 'invoices.paid')
          AND NOT subbilling_internal.webhook_type_matches('{invoice.*}', 'subscription.created')
          AND subbilling_internal.webhook_type_matches(NULL, 'subscription.created')
          AND subbilling_internal.webhook_type_matches('{invoice.paid}', 'invoice.paid')
          AND NOT subbilling_internal.webhook_type_matches('{invoice.paid}', 'invoice.paid_late'),
          'type matching: exact types, prefixes, NULL = all');

-- Secrets ---------------------------------------------------------------------------
SELECT ok((SELECT bool_and(secret ~ '^whsec_[A-Za-z0-9+/]{43}=$'
                           AND length(decode(substr(secret, 7), 'base64')) = 32) FROM webhook_endpoints),
          'secrets are whsec_ + base64 of 32 bytes');
SELECT is((SELECT count(DISTINCT secret) FROM webhook_endpoints), (SELECT count(*) FROM webhook_endpoints),
          'every secret differs');
CREATE TEMP TABLE ep AS SELECT * FROM create_webhook_endpoint('http://127.0.0.1:9/hook', NULL, 'tests');
SELECT is(rotate_webhook_secret((SELECT id FROM ep)) <> (SELECT secret FROM ep), true, 'rotate: a new secret');
SELECT ok((SELECT previous_secret = (SELECT secret FROM ep)
                  AND previous_secret_expires_at = now() + interval '24 hours' AND secret_rotated_at = now()
             FROM webhook_endpoints WHERE id = (SELECT id FROM ep)),
          'the old one stays valid for 24 hours by default');
SELECT isnt(rotate_webhook_secret((SELECT id FROM ep), '0'), NULL, 'rotate with keep_previous 0');
SELECT ok((SELECT previous_secret IS NULL AND previous_secret_expires_at IS NULL
                 FROM webhook_endpoints WHERE id = (SELECT id FROM ep)),
          'keep_previous 0: the old secret stops at once');
SELECT throws_ok($$SELECT rotate_webhook_secret((SELECT id FROM ep), '-1 hour')$$,
                 '22023', 'keep_previous must be between 0 and 30 days', 'a negative keep_previous');
SELECT throws_ok($$UPDATE webhook_endpoints SET secret = 'whsec_A' WHERE id = (SELECT id FROM ep)$$,
                 '23514', NULL, 'a secret is whole base64 (the worker could not decode this one)');
SELECT throws_ok($$SELECT rotate_webhook_secret(-1)$$, 'P0002', 'webhook endpoint -1 does not exist', 'rotate: unknown endpoint');

-- Privileges ------------------------------------------------------------------------
SELECT throws_ok($$SELECT pg_temp.as_role('subbilling_tap_operator', 'SELECT secret FROM subbilling.webhook_endpoints LIMIT 1')$$,
                 '42501', NULL, 'operators cannot read secrets');
SELECT throws_ok($$SELECT pg_temp.as_role('subbilling_tap_operator', 'SELECT previous_secret FROM subbilling.webhook_endpoints LIMIT 1')$$,
                 '42501', NULL, 'nor previous secrets');
SELECT is(pg_temp.as_role('subbilling_tap_operator', 'SELECT count(*) FROM (SELECT id, url, host, event_types, active FROM subbilling.webhook_endpoints) x'),
          (SELECT count(*)::text FROM webhook_endpoints), 'operators read the other columns');
SELECT throws_ok($$SELECT pg_temp.as_role('subbilling_tap_reader', 'SELECT count(id) FROM subbilling.webhook_endpoints')$$,
                 '42501', NULL, 'readers cannot read endpoints at all');
SELECT throws_ok($$SELECT pg_temp.as_role('subbilling_tap_reader', 'SELECT count(*) FROM subbilling.webhook_deliveries')$$,
                 '42501', NULL, 'nor deliveries');
SELECT throws_ok($$SELECT pg_temp.as_role('subbilling_tap_reader', 'SELECT id FROM subbilling.create_webhook_endpoint(''http://127.0.0.1/x'')')$$,
                 '42501', NULL, 'readers cannot create endpoints');
SELECT throws_ok($$SELECT pg_temp.as_role('subbilling_tap_nobody', 'SELECT subbilling.redeliver(1)')$$,
                 '42501', NULL, 'PUBLIC cannot redeliver');
SELECT alike(pg_temp.as_role('subbilling_tap_operator', 'SELECT secret FROM subbilling.create_webhook_endpoint(''http://127.0.0.1/op'')'),
            'whsec_%', 'operators create endpoints and get the secret once');
SELECT throws_ok($$SELECT pg_temp.as_role('subbilling_tap_operator', 'INSERT INTO subbilling.webhook_allowed_hosts (pattern) VALUES (''evil.net'')')$$,
                 '42501', NULL, 'operators cannot widen the allow-list');
SELECT throws_ok($$SELECT pg_temp.as_role('subbilling_tap_operator', 'SELECT subbilling_internal.webhook_new_secret()')$$,
                 '42501', NULL, 'nor call the internal helpers');
SELECT is(pg_temp.as_role('subbilling_tap_operator', 'SELECT count(*) FROM subbilling.webhook_endpoint_status'),
          (SELECT count(*)::text FROM webhook_endpoints), 'operators read webhook_endpoint_status');

-- The worker's steps by hand ---------------------------------------------------------
UPDATE webhook_endpoints SET active = false, disabled_at = now() WHERE id <> (SELECT id FROM ep);
INSERT INTO accounts (external_id, name, email, country, currency) VALUES ('wh-1', 'Moln AB', 'a@moln.example', 'SE', 'SEK');
CREATE TEMP TABLE inv_ep AS SELECT * FROM create_webhook_endpoint('http://127.0.0.1:9/inv', '{invoice.*}');
CREATE TEMP TABLE acct AS SELECT id FROM accounts WHERE external_id = 'wh-1';
CREATE TEMP TABLE ev AS
SELECT subbilling_internal.emit_event((SELECT id FROM acct), 'test.before', NULL, '{}') AS before,
       subbilling_internal.emit_event((SELECT id FROM acct), 'invoice.paid', NULL, '{"n": 1}') AS one,
       subbilling_internal.emit_event((SELECT id FROM acct), 'subscription.created', NULL, '{"n": 2}') AS two;
UPDATE events SET created_at = now() - interval '1 minute' WHERE id = (SELECT before FROM ev);
SELECT is((SELECT row(f.events >= 3, f.more)::text FROM subbilling_internal.webhook_fanout(1000) f), '(t,f)', 'fan-out reads the events');
SELECT is((SELECT string_agg(e.type || '>' || CASE d.endpoint_id WHEN (SELECT id FROM ep) THEN 'all' ELSE 'inv' END, ',' ORDER BY d.event_id, d.endpoint_id)
             FROM webhook_deliveries d JOIN events e ON e.id = d.event_id),
          'invoice.paid>all,invoice.paid>inv,subscription.created>all',
          'a delivery per matching endpoint; none for an event older than the endpoint');
SELECT is((SELECT f.deliveries FROM subbilling_internal.webhook_fanout(1000) f), 0, 'fan-out again: nothing new');

CREATE TEMP TABLE c1 AS SELECT * FROM subbilling_internal.webhook_claim(10, '{}', 5000, 3);
SELECT is((SELECT count(*)::int FROM c1), 2, 'claim: the head of each endpoint');
SELECT is((SELECT count(*)::int FROM subbilling_internal.webhook_claim(10, '{}', 5000, 3)), 0,
          'claimed deliveries are not due again before their retry time');
SELECT ok((SELECT body::jsonb = (SELECT to_jsonb(e) FROM events e WHERE e.id = (SELECT one FROM ev))
                  AND msg_id = (SELECT one FROM ev)::text AND attempt = 1
                  AND secrets = ARRAY[(SELECT secret FROM webhook_endpoints WHERE id = (SELECT id FROM ep))]
             FROM c1 WHERE endpoint_id = (SELECT id FROM ep)),
          'the request: the event as events_after returns it, its id, the secret');
SELECT ok((SELECT next_attempt_at BETWEEN now() + interval '2.5 s' AND now() + interval '5 s' AND attempts = 1
             FROM webhook_deliveries WHERE id = (SELECT delivery_id FROM c1 WHERE endpoint_id = (SELECT id FROM ep))),
          'the retry is scheduled before the request: 2.5 to 5 s (retry base 5 s, jitter)');
SELECT is(subbilling_internal.webhook_record((SELECT delivery_id FROM c1 WHERE endpoint_id = (SELECT id FROM ep)), 1, 200, NULL, 12.5, 3),
          'succeeded', 'a 2xx answer: succeeded');
-- the next event of the endpoint becomes its head; make the failing one due at once each time
SELECT is(subbilling_internal.webhook_record((SELECT delivery_id FROM c1 WHERE endpoint_id = (SELECT id FROM inv_ep)), 1, 503, NULL, 3, 3),
          'retry', 'a 503: retry');
UPDATE webhook_deliveries SET next_attempt_at = now() WHERE status = 'pending';
SELECT is((SELECT string_agg(msg_id || '@' || attempt, ',' ORDER BY endpoint_id)
             FROM subbilling_internal.webhook_claim(10, ARRAY[(SELECT id FROM ep)], 5000, 3)),
          (SELECT one FROM ev) || '@2', 'busy endpoints are skipped; the failed delivery is the head again');
SELECT is(subbilling_internal.webhook_record((SELECT delivery_id FROM c1 WHERE endpoint_id = (SELECT id FROM inv_ep)), 2, NULL, 'Connection refused', 1, 3),
          'retry', 'no answer: retry');
UPDATE webhook_deliveries SET next_attempt_at = now() WHERE status = 'pending';
SELECT is((SELECT count(*)::int FROM subbilling_internal.webhook_claim(10, ARRAY[(SELECT id FROM ep)], 5000, 3)), 1, 'third attempt');
SELECT is(subbilling_internal.webhook_record((SELECT delivery_id FROM c1 WHERE endpoint_id = (SELECT id FROM inv_ep)), 3, 500, NULL, 1, 3),
          'failed', 'the third failure of three: failed');
SELECT is((SELECT payload->>'error' || ' ' || (payload->>'attempts') FROM events WHERE type = 'webhook.failed'),
          'HTTP status 500 3', 'a webhook.failed event');
SELECT is((SELECT string_agg(coalesce(status_code::text, '-') || ' ' || coalesce(error, '') || ' ' || (next_attempt_at IS NOT NULL), ',' ORDER BY attempt)
             FROM webhook_delivery_attempts WHERE delivery_id = (SELECT delivery_id FROM c1 WHERE endpoint_id = (SELECT id FROM inv_ep))),
          '503 HTTP status 503 true,- Connection refused true,500 HTTP status 500 false', 'every attempt recorded');
SELECT subbilling_internal.webhook_fanout(1000);
SELECT is((SELECT count(*)::int FROM webhook_deliveries WHERE event_id = (SELECT id FROM events WHERE type = 'webhook.failed')), 1,
          'webhook.failed is queued for the other endpoint only (inv_ep takes invoice.* anyway)');
SELECT is(redeliver((SELECT delivery_id FROM c1 WHERE endpoint_id = (SELECT id FROM inv_ep)))::text, '',
          'redeliver');
SELECT ok((SELECT status = 'pending' AND attempts = 0 AND total_attempts = 3 AND next_attempt_at = now() AND finished_at IS NULL
             FROM webhook_deliveries WHERE id = (SELECT delivery_id FROM c1 WHERE endpoint_id = (SELECT id FROM inv_ep))),
          'pending again, due now, attempts counted afresh');
SELECT throws_ok($$SELECT redeliver(-5)$$, 'P0002', 'webhook delivery -5 does not exist', 'redeliver: unknown delivery');

-- a host removed from the allow-list: an attempt without a request
DELETE FROM webhook_allowed_hosts WHERE pattern = '127.0.0.1';
SELECT is((SELECT count(*)::int FROM subbilling_internal.webhook_claim(10, ARRAY[(SELECT id FROM ep)], 5000, 3)), 0,
          'no request to a host no longer allowed');
SELECT is((SELECT error FROM webhook_delivery_attempts WHERE delivery_id = (SELECT delivery_id FROM c1 WHERE endpoint_id = (SELECT id FROM inv_ep)) AND attempt = 4),
          'host "127.0.0.1" is not in subbilling.webhook_allowed_hosts; no request was made', 'but a failed attempt that says why');
SELECT throws_ok($$SELECT enable_webhook_endpoint((SELECT id FROM ep))$$, '42501', NULL,
                 'enable: the host must be allowed');

-- disable / enable
INSERT INTO webhook_allowed_hosts (pattern) VALUES ('127.0.0.1');
SELECT is(disable_webhook_endpoint((SELECT id FROM inv_ep)), true, 'disable: was active');
SELECT is(disable_webhook_endpoint((SELECT id FROM inv_ep)), false, 'disable again: was not');
SELECT is((SELECT count(*)::int FROM subbilling_internal.webhook_claim(10, ARRAY[(SELECT id FROM ep)], 5000, 3)), 0,
          'nothing is claimed for a disabled endpoint');
SELECT is(enable_webhook_endpoint((SELECT id FROM inv_ep)), true, 'enable');
SELECT throws_ok($$SELECT disable_webhook_endpoint(NULL)$$, 'P0002', NULL, 'disable: no such endpoint');

-- the retry delay: doubling from the base, capped at one hour, jittered in [d/2, d]
SELECT ok((SELECT bool_and(subbilling_internal.webhook_backoff(1, 5000) BETWEEN interval '2.5 s' AND interval '5 s')
             FROM generate_series(1, 200))
          AND (SELECT bool_and(subbilling_internal.webhook_backoff(4, 5000) BETWEEN interval '20 s' AND interval '40 s')
             FROM generate_series(1, 200))
          AND (SELECT bool_and(subbilling_internal.webhook_backoff(30, 5000) BETWEEN interval '30 min' AND interval '60 min')
             FROM generate_series(1, 200)),
          'backoff: 5 s doubling, capped at 1 hour, equal jitter');
SELECT ok((SELECT count(DISTINCT subbilling_internal.webhook_backoff(3, 5000)) FROM generate_series(1, 50)) > 40,
          'backoff is jittered');

SELECT * FROM finish();
ROLLBACK;
