
-- ============================================================================
-- Webhooks: signed, at-least-once delivery of events over HTTP.  docs/webhooks.md
--
-- webhook_endpoints are the receivers; the webhook worker (src/webhook.c) reads
-- committed events with events_after, writes one webhook_deliveries row per
-- matching endpoint and event (fan-out), and delivers them: a short
-- transaction claims the next due delivery of each endpoint (the attempt is
-- recorded and the next one scheduled before any network I/O, so a crash
-- means a retry), commits, POSTs the event signed as the Standard Webhooks
-- specification says, and records the result in another short transaction.
-- Per endpoint one delivery is in flight at a time, in event id order.
-- ============================================================================

-------------------------------------------------------------------------------
-- Which hosts endpoints may name: a billing database must not become a tool
-- for reaching arbitrary addresses.  Only the extension's owner (a
-- superuser) changes it; operators may read it.
-------------------------------------------------------------------------------
CREATE TABLE subbilling.webhook_allowed_hosts (
    pattern     text PRIMARY KEY
                CONSTRAINT webhook_allowed_hosts_pattern CHECK (
                    pattern ~ '^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$'
                    OR pattern ~ '^\[[0-9a-f:.]+\]$'),
    note        text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE subbilling.webhook_allowed_hosts IS
    'hosts webhook endpoints may name: a lower-case host name or address (exact), or *.domain (any host under domain); empty = no endpoint can be created or delivered to';

-------------------------------------------------------------------------------
-- Endpoints
-------------------------------------------------------------------------------
CREATE TABLE subbilling.webhook_endpoints (
    id                          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url                         text NOT NULL,
    host                        text NOT NULL,
    secret                      text NOT NULL
                                CONSTRAINT webhook_endpoints_secret_format CHECK (secret ~ '^whsec_([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$' AND length(secret) > 6),
    previous_secret             text
                                CONSTRAINT webhook_endpoints_previous_secret_format CHECK (previous_secret ~ '^whsec_([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$' AND length(previous_secret) > 6),
    previous_secret_expires_at  timestamptz,
    event_types                 text[],
    description                 text,
    active                      boolean NOT NULL DEFAULT true,
    created_at                  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    disabled_at                 timestamptz,
    secret_rotated_at           timestamptz,
    CONSTRAINT webhook_endpoints_previous_secret_expiry CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL)),
    CONSTRAINT webhook_endpoints_disabled CHECK (active = (disabled_at IS NULL))
);
COMMENT ON TABLE subbilling.webhook_endpoints IS
    'receivers of webhooks: the events created after the endpoint was, of the listed types (NULL = all), POSTed to url and signed with secret (Standard Webhooks)';
COMMENT ON COLUMN subbilling.webhook_endpoints.host IS 'the host of url, lower case; checked against webhook_allowed_hosts when the endpoint is created and before every attempt';
COMMENT ON COLUMN subbilling.webhook_endpoints.secret IS 'whsec_ + base64 of 32 random bytes; the HMAC-SHA256 key is the decoded bytes.  Not readable by operators or readers';
COMMENT ON COLUMN subbilling.webhook_endpoints.previous_secret IS 'the secret before the last rotation: requests are signed with both until previous_secret_expires_at';
COMMENT ON COLUMN subbilling.webhook_endpoints.event_types IS 'event types to deliver: exact types or prefixes (invoice.*); NULL = all';
COMMENT ON COLUMN subbilling.webhook_endpoints.active IS 'false after disable_webhook_endpoint: nothing is delivered, and events created meanwhile are not queued for it';

-------------------------------------------------------------------------------
-- Deliveries (one per event per endpoint) and their attempts
-------------------------------------------------------------------------------
CREATE TABLE subbilling.webhook_deliveries (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id         bigint NOT NULL REFERENCES subbilling.webhook_endpoints (id) ON DELETE CASCADE,
    account_id          bigint NOT NULL,
    event_id            bigint NOT NULL,
    event_type          text NOT NULL,
    status              text NOT NULL DEFAULT 'pending'
                        CONSTRAINT webhook_deliveries_status CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    total_attempts      integer NOT NULL DEFAULT 0 CHECK (total_attempts >= attempts),
    next_attempt_at     timestamptz,
    last_attempt_at     timestamptz,
    last_status_code    integer,
    last_error          text,
    last_duration_ms    double precision,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    finished_at         timestamptz,
    CONSTRAINT webhook_deliveries_event UNIQUE (endpoint_id, event_id),
    FOREIGN KEY (account_id, event_id) REFERENCES subbilling.events (account_id, id) ON DELETE CASCADE,
    CONSTRAINT webhook_deliveries_pending CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL)),
    CONSTRAINT webhook_deliveries_finished CHECK ((status = 'pending') = (finished_at IS NULL))
);
CREATE INDEX webhook_deliveries_pending_idx ON subbilling.webhook_deliveries (endpoint_id, event_id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_event_idx ON subbilling.webhook_deliveries (account_id, event_id);
COMMENT ON TABLE subbilling.webhook_deliveries IS
    'one row per event per endpoint: pending until a 2xx answer (succeeded) or subbilling.webhook_max_attempts failed attempts (failed, and a webhook.failed event); every attempt is in webhook_delivery_attempts';
COMMENT ON COLUMN subbilling.webhook_deliveries.attempts IS 'attempts since the delivery was created or last redelivered';
COMMENT ON COLUMN subbilling.webhook_deliveries.total_attempts IS 'all attempts, redeliveries included (the number of the last webhook_delivery_attempts row)';
COMMENT ON COLUMN subbilling.webhook_deliveries.next_attempt_at IS 'when the delivery is due (set before each attempt to the retry time, so that an attempt cut short by a crash is retried); NULL when finished';

CREATE TABLE subbilling.webhook_delivery_attempts (
    delivery_id         bigint NOT NULL REFERENCES subbilling.webhook_deliveries (id) ON DELETE CASCADE,
    attempt             integer NOT NULL CHECK (attempt > 0),
    webhook_timestamp   bigint NOT NULL,
    started_at          timestamptz NOT NULL,
    finished_at         timestamptz,
    duration_ms         double precision,
    status_code         integer,
    error               text,
    next_attempt_at     timestamptz,
    PRIMARY KEY (delivery_id, attempt)
);
COMMENT ON TABLE subbilling.webhook_delivery_attempts IS
    'every HTTP attempt of a webhook delivery: status code (NULL without an answer), error, duration, and when the next attempt is due (NULL: none)';
COMMENT ON COLUMN subbilling.webhook_delivery_attempts.webhook_timestamp IS 'the webhook-timestamp header sent (Unix seconds)';
COMMENT ON COLUMN subbilling.webhook_delivery_attempts.finished_at IS 'NULL while the request is in flight';

-- Where the fan-out has read events up to (one row, created by the first fan-out).
CREATE TABLE subbilling_internal.webhook_cursor (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_event_id   bigint NOT NULL
);
COMMENT ON TABLE subbilling_internal.webhook_cursor IS 'internal: the id of the last event the webhook fan-out has read (events_after)';

-------------------------------------------------------------------------------
-- Internal helpers
-------------------------------------------------------------------------------
CREATE FUNCTION subbilling_internal.webhook_new_secret() RETURNS text
AS 'MODULE_PATHNAME', 'subbilling_webhook_new_secret'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION subbilling_internal.webhook_new_secret() IS
    'internal: a new webhook secret, whsec_ + base64 of 32 bytes from the server''s cryptographic random source';

-- Whether host is allowed by webhook_allowed_hosts.
-- (a body in quotes, not a RETURN clause: Citus, on the coordinator, parses the source text of
-- a SQL function it runs, which a RETURN clause leaves empty)
CREATE FUNCTION subbilling_internal.webhook_host_allowed(host text) RETURNS boolean
    LANGUAGE sql STABLE STRICT
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT FROM subbilling.webhook_allowed_hosts a
                    WHERE a.pattern = host
                       OR (a.pattern LIKE '*.%' AND host LIKE '%' || substr(a.pattern, 2)))
$$;
COMMENT ON FUNCTION subbilling_internal.webhook_host_allowed(text) IS
    'internal: whether host matches a webhook_allowed_hosts pattern (exact, or *.domain for hosts under domain)';

-- Validates a URL; returns its host in lower case.
CREATE FUNCTION subbilling_internal.webhook_url_host(url text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    m       text[];
    host    text;
BEGIN
    IF url IS NULL OR length(url) > 2000 OR url ~ '[[:space:][:cntrl:]]' THEN
        RAISE EXCEPTION 'invalid webhook URL'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = CASE WHEN url IS NULL THEN 'The URL is NULL.'
                                WHEN length(url) > 2000 THEN 'The URL is longer than 2000 characters.'
                                ELSE 'The URL contains white space or control characters.' END;
    END IF;
    m := regexp_match(url, '^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([/?][^#]*)?$');
    IF m IS NULL THEN
        RAISE EXCEPTION 'invalid webhook URL'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('%s is not an absolute URL without a fragment.', quote_literal(url));
    END IF;
    IF lower(m[1]) NOT IN ('http', 'https') THEN
        RAISE EXCEPTION 'webhook URLs must be http or https'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The scheme is %s.', quote_literal(m[1]));
    END IF;
    IF m[2] LIKE '%@%' THEN
        RAISE EXCEPTION 'invalid webhook URL'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'The URL carries a user name or password.',
                  HINT = 'Receivers authenticate requests by their signature.';
    END IF;
    -- host, optionally :port; an IPv6 address in brackets
    m := regexp_match(lower(m[2]), '^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)(:([0-9]{1,5}))?$');
    IF m IS NULL OR (m[6] IS NOT NULL AND (m[6]::integer < 1 OR m[6]::integer > 65535)) THEN
        RAISE EXCEPTION 'invalid webhook URL'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('%s has no valid host and port.', quote_literal(url));
    END IF;
    host := m[1];
    RETURN host;
END
$$;
COMMENT ON FUNCTION subbilling_internal.webhook_url_host(text) IS
    'internal: checks a webhook URL (http or https, a host, an optional port, no user information, no fragment) and returns its host in lower case';

-- Whether an event type matches an endpoint's event_types.
CREATE FUNCTION subbilling_internal.webhook_type_matches(event_types text[], type text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
RETURN event_types IS NULL
    OR type = ANY (event_types)
    OR EXISTS (SELECT FROM unnest(event_types) AS p
                WHERE p LIKE '%.*' AND starts_with(type, left(p, -1)));
COMMENT ON FUNCTION subbilling_internal.webhook_type_matches(text[], text) IS
    'internal: whether an event type is among event_types (exact types, or prefixes written invoice.*); NULL = all';

CREATE FUNCTION subbilling_internal.webhook_check_types(event_types text[]) RETURNS text[]
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    t   text;
BEGIN
    IF event_types IS NULL THEN
        RETURN NULL;
    END IF;
    IF cardinality(event_types) = 0 OR array_ndims(event_types) <> 1 THEN
        RAISE EXCEPTION 'event_types must be NULL (all events) or a list of event types'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'The list is empty.';
    END IF;
    FOREACH t IN ARRAY event_types LOOP
        IF t IS NULL OR t !~ '^[a-z][a-z_]*(\.[a-z][a-z_]*)*(\.\*|(\.[a-z][a-z_]*))$' THEN
            RAISE EXCEPTION 'invalid event type %', coalesce(quote_literal(t), 'NULL')
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Event types are dotted lower-case words (invoice.paid); a prefix is written invoice.*.';
        END IF;
    END LOOP;
    RETURN (SELECT array_agg(DISTINCT u ORDER BY u) FROM unnest(event_types) AS u);
END
$$;
COMMENT ON FUNCTION subbilling_internal.webhook_check_types(text[]) IS
    'internal: checks a list of event types or prefixes (invoice.*) and returns it sorted without duplicates';

-- The retry delay after the n-th attempt of a round: retry_base doubling,
-- capped at one hour, with "equal jitter" (between half and all of it).
CREATE FUNCTION subbilling_internal.webhook_backoff(n integer, retry_base_ms integer) RETURNS interval
    LANGUAGE sql VOLATILE STRICT
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT make_interval(secs => (least(3600000.0, retry_base_ms * power(2.0, least(greatest(n, 1) - 1, 40)))
                                  * (0.5 + 0.5 * random())) / 1000.0)
$$;
COMMENT ON FUNCTION subbilling_internal.webhook_backoff(integer, integer) IS
    'internal: delay before the next attempt after the n-th failed one: d = min(1 h, retry_base * 2^(n-1)), then a uniform random time in [d/2, d]';

-- Fan-out: reads up to max_events committed events after the cursor and
-- queues a delivery for every active endpoint they match.  A webhook.failed
-- event is not delivered to the endpoint it is about.
CREATE FUNCTION subbilling_internal.webhook_fanout(max_events integer,
                                                   OUT events integer, OUT deliveries integer, OUT more boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    cur     bigint;
    last    bigint;
    evs     subbilling.events[];
BEGIN
    IF subbilling_internal.on_citus() THEN
        -- the events are read over every shard one shard at a time, so that the transaction
        -- may then write the deliveries (a reference table)
        PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);
    END IF;
    INSERT INTO subbilling_internal.webhook_cursor (singleton, last_event_id) VALUES (true, 0)
        ON CONFLICT (singleton) DO NOTHING;
    SELECT c.last_event_id INTO cur FROM subbilling_internal.webhook_cursor c FOR UPDATE;
    SELECT coalesce(array_agg(e ORDER BY e.id), '{}') INTO evs FROM subbilling.events_after(cur, max_events) e;
    events := cardinality(evs);
    last := evs[events].id;
    INSERT INTO subbilling.webhook_deliveries (endpoint_id, account_id, event_id, event_type, next_attempt_at)
    SELECT w.id, e.account_id, e.id, e.type, pg_catalog.now()
      FROM unnest(evs) e
      JOIN subbilling.webhook_endpoints w
        ON w.active
       AND e.created_at >= w.created_at
       AND subbilling_internal.webhook_type_matches(w.event_types, e.type)
       AND NOT (e.type = 'webhook.failed' AND e.payload ->> 'endpoint_id' = w.id::text)
     ORDER BY w.id, e.id
    ON CONFLICT (endpoint_id, event_id) DO NOTHING;
    GET DIAGNOSTICS deliveries = ROW_COUNT;
    IF last IS NOT NULL THEN
        UPDATE subbilling_internal.webhook_cursor SET last_event_id = last;
    END IF;
    more := events >= max_events;
END
$$;
COMMENT ON FUNCTION subbilling_internal.webhook_fanout(integer) IS
    'internal: queue deliveries of the committed events after the fan-out cursor (at most max_events) to the active endpoints they match';

-- Claims up to max_deliveries due deliveries, the oldest pending one of each
-- active endpoint not in busy (the worker's endpoints with a request in
-- flight): records the attempt and schedules the next one before any I/O.
-- A delivery whose host is no longer allowed gets a failed attempt instead.
CREATE FUNCTION subbilling_internal.webhook_claim(max_deliveries integer, busy bigint[],
                                                  retry_base_ms integer, max_attempts integer)
    RETURNS TABLE (delivery_id bigint, endpoint_id bigint, attempt integer, url text,
                   msg_id text, msg_timestamp bigint, body text, secrets text[])
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    r       record;
    ts      bigint := floor(extract(epoch FROM pg_catalog.clock_timestamp()))::bigint;
    n       integer := 0;
    nxt     timestamptz;
BEGIN
    FOR r IN
        SELECT d.id, d.endpoint_id AS ep, d.account_id, d.event_id, d.attempts, d.total_attempts,
               w.url AS ep_url, w.host, w.secret,
               CASE WHEN w.previous_secret_expires_at > pg_catalog.now() THEN w.previous_secret END AS prev
          FROM subbilling.webhook_endpoints w
          CROSS JOIN LATERAL (SELECT * FROM subbilling.webhook_deliveries d
                               WHERE d.endpoint_id = w.id AND d.status = 'pending'
                               ORDER BY d.event_id LIMIT 1) d
         WHERE w.active
           AND NOT (w.id = ANY (coalesce(busy, '{}')))
           AND d.next_attempt_at <= pg_catalog.now()
         ORDER BY d.next_attempt_at, d.id
    LOOP
        EXIT WHEN n >= max_deliveries;
        IF NOT subbilling_internal.webhook_host_allowed(r.host) THEN
            -- no request: a failed attempt, with the same retries as any other
            -- the next attempt's time drawn first: Citus refuses a volatile function in an
            -- UPDATE of a reference table
            SELECT pg_catalog.now() + subbilling_internal.webhook_backoff(d.attempts + 1, retry_base_ms) INTO nxt
              FROM subbilling.webhook_deliveries d WHERE d.id = r.id;
            UPDATE subbilling.webhook_deliveries d
               SET attempts = d.attempts + 1, total_attempts = d.total_attempts + 1,
                   last_attempt_at = pg_catalog.now(), next_attempt_at = nxt
             WHERE d.id = r.id;
            INSERT INTO subbilling.webhook_delivery_attempts (delivery_id, attempt, webhook_timestamp, started_at, next_attempt_at)
            VALUES (r.id, r.total_attempts + 1, ts, pg_catalog.clock_timestamp(), nxt);
            PERFORM subbilling_internal.webhook_record(r.id, r.total_attempts + 1, NULL,
                        format('host "%s" is not in subbilling.webhook_allowed_hosts; no request was made', r.host),
                        0, max_attempts);
            CONTINUE;
        END IF;
        SELECT pg_catalog.now() + subbilling_internal.webhook_backoff(d.attempts + 1, retry_base_ms) INTO nxt
          FROM subbilling.webhook_deliveries d WHERE d.id = r.id;
        UPDATE subbilling.webhook_deliveries d
           SET attempts = d.attempts + 1, total_attempts = d.total_attempts + 1,
               last_attempt_at = pg_catalog.now(), next_attempt_at = nxt
         WHERE d.id = r.id;
        INSERT INTO subbilling.webhook_delivery_attempts (delivery_id, attempt, webhook_timestamp, started_at, next_attempt_at)
        VALUES (r.id, r.total_attempts + 1, ts, pg_catalog.clock_timestamp(), nxt);
        delivery_id := r.id;
        endpoint_id := r.ep;
        attempt := r.total_attempts + 1;
        url := r.ep_url;
        msg_id := r.event_id::text;
        msg_timestamp := ts;
        SELECT to_jsonb(e)::text INTO body FROM subbilling.events e
         WHERE e.account_id = r.account_id AND e.id = r.event_id;
        secrets := CASE WHEN r.prev IS NULL THEN ARRAY[r.secret] ELSE ARRAY[r.secret, r.prev] END;
        n := n + 1;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION subbilling_internal.webhook_claim(integer, bigint[], integer, integer) IS
    'internal: claim the next due delivery of up to max_deliveries endpoints (not those in busy): the attempt is recorded and the next one scheduled before the request';

-- Records the outcome of an attempt: 2xx = succeeded; otherwise the
-- delivery stays pending (its next attempt was scheduled by the claim) or,
-- after max_attempts, fails and a webhook.failed event says so.
CREATE FUNCTION subbilling_internal.webhook_record(delivery_id bigint, attempt integer, status_code integer,
                                                   error text, duration_ms double precision, max_attempts integer)
    RETURNS text
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    d       subbilling.webhook_deliveries;
    ok      boolean := status_code BETWEEN 200 AND 299;
    err     text := CASE WHEN status_code BETWEEN 200 AND 299 THEN NULL
                         ELSE coalesce(error, format('HTTP status %s', status_code)) END;
    fin     timestamptz;
BEGIN
    SELECT * INTO d FROM subbilling.webhook_deliveries x WHERE x.id = webhook_record.delivery_id FOR UPDATE;
    IF NOT FOUND OR d.total_attempts <> webhook_record.attempt THEN
        RETURN 'stale';     -- deleted, or attempted again meanwhile
    END IF;
    fin := pg_catalog.clock_timestamp();     -- not in the UPDATE: Citus refuses it there
    UPDATE subbilling.webhook_delivery_attempts a
       SET finished_at = fin, duration_ms = webhook_record.duration_ms,
           status_code = webhook_record.status_code, error = err,
           next_attempt_at = CASE WHEN ok OR d.attempts >= max_attempts OR d.status <> 'pending' THEN NULL
                                  ELSE d.next_attempt_at END
     WHERE a.delivery_id = d.id AND a.attempt = webhook_record.attempt;
    IF d.status <> 'pending' THEN
        RETURN d.status;
    END IF;
    IF ok THEN
        UPDATE subbilling.webhook_deliveries x
           SET status = 'succeeded', finished_at = pg_catalog.now(), next_attempt_at = NULL,
               last_status_code = webhook_record.status_code, last_error = NULL,
               last_duration_ms = webhook_record.duration_ms
         WHERE x.id = d.id;
        RETURN 'succeeded';
    END IF;
    IF d.attempts >= max_attempts THEN
        UPDATE subbilling.webhook_deliveries x
           SET status = 'failed', finished_at = pg_catalog.now(), next_attempt_at = NULL,
               last_status_code = webhook_record.status_code, last_error = err,
               last_duration_ms = webhook_record.duration_ms
         WHERE x.id = d.id;
        -- the failure of a webhook.failed delivery is not announced again
        IF d.event_type <> 'webhook.failed' THEN
            PERFORM subbilling_internal.emit_event(d.account_id, 'webhook.failed', NULL,
                jsonb_build_object('delivery_id', d.id, 'endpoint_id', d.endpoint_id,
                                   'event_id', d.event_id, 'event_type', d.event_type,
                                   'attempts', d.attempts, 'status_code', webhook_record.status_code,
                                   'error', err));
        END IF;
        RETURN 'failed';
    END IF;
    UPDATE subbilling.webhook_deliveries x
       SET last_status_code = webhook_record.status_code, last_error = err,
           last_duration_ms = webhook_record.duration_ms
     WHERE x.id = d.id;
    RETURN 'retry';
END
$$;
COMMENT ON FUNCTION subbilling_internal.webhook_record(bigint, integer, integer, text, double precision, integer) IS
    'internal: record the result of a webhook attempt: succeeded (2xx), retry later, or failed after max_attempts (with a webhook.failed event)';

-- Attempts left unfinished by a worker that exited (crash, immediate
-- shutdown): their deliveries are retried at the time the claim scheduled.
CREATE FUNCTION subbilling_internal.webhook_mark_interrupted() RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    n   integer;
BEGIN
    WITH a AS (
        UPDATE subbilling.webhook_delivery_attempts a
           SET finished_at = pg_catalog.now(),
               error = 'interrupted: the webhook worker exited during the attempt'
         WHERE a.finished_at IS NULL
        RETURNING a.delivery_id, a.attempt, a.error)
    UPDATE subbilling.webhook_deliveries d
       SET last_error = a.error, last_status_code = NULL
      FROM a
     WHERE d.id = a.delivery_id AND d.total_attempts = a.attempt;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling_internal.webhook_mark_interrupted() IS
    'internal: mark attempts left in flight by an exited webhook worker as interrupted (their deliveries are retried)';

-------------------------------------------------------------------------------
-- The API
-------------------------------------------------------------------------------
CREATE FUNCTION subbilling.webhook_signature(secret text, msg_id text, msg_timestamp bigint, body text)
    RETURNS text
AS 'MODULE_PATHNAME', 'subbilling_webhook_signature'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.webhook_signature(text, text, bigint, text) IS
    'the Standard Webhooks signature v1,<base64 HMAC-SHA256 of msg_id.msg_timestamp.body> keyed with the base64-decoded secret after whsec_';

CREATE FUNCTION subbilling.create_webhook_endpoint(url text, event_types text[] DEFAULT NULL,
                                                   description text DEFAULT NULL)
    RETURNS TABLE (id bigint, secret text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    h       text := subbilling_internal.webhook_url_host(url);
    types   text[] := subbilling_internal.webhook_check_types(event_types);
BEGIN
    IF NOT subbilling_internal.webhook_host_allowed(h) THEN
        RAISE EXCEPTION 'webhook host "%" is not allowed', h
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Endpoints may only name hosts listed in subbilling.webhook_allowed_hosts.',
                  HINT = format('A superuser allows it with INSERT INTO subbilling.webhook_allowed_hosts (pattern) VALUES (%s).',
                                quote_literal(h));
    END IF;
    RETURN QUERY
    INSERT INTO subbilling.webhook_endpoints AS w (url, host, secret, event_types, description)
    VALUES (create_webhook_endpoint.url, h, subbilling_internal.webhook_new_secret(), types,
            create_webhook_endpoint.description)
    RETURNING w.id, w.secret;
END
$$;
COMMENT ON FUNCTION subbilling.create_webhook_endpoint(text, text[], text) IS
    'create a webhook endpoint (http or https URL on an allowed host; event types or prefixes, NULL = all) and return its id and secret, the one time the secret is shown';

CREATE FUNCTION subbilling.rotate_webhook_secret(endpoint_id bigint, keep_previous interval DEFAULT '24 hours')
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    s   text;
BEGIN
    IF keep_previous IS NULL OR keep_previous < interval '0' OR keep_previous > interval '30 days' THEN
        RAISE EXCEPTION 'keep_previous must be between 0 and 30 days'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s.', coalesce(keep_previous::text, 'NULL'));
    END IF;
    UPDATE subbilling.webhook_endpoints w
       SET previous_secret = CASE WHEN keep_previous > interval '0' THEN w.secret END,
           previous_secret_expires_at = CASE WHEN keep_previous > interval '0' THEN pg_catalog.now() + keep_previous END,
           secret = subbilling_internal.webhook_new_secret(),
           secret_rotated_at = pg_catalog.now()
     WHERE w.id = rotate_webhook_secret.endpoint_id
    RETURNING w.secret INTO s;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'webhook endpoint % does not exist', coalesce(endpoint_id::text, 'NULL')
            USING ERRCODE = 'no_data_found';
    END IF;
    RETURN s;
END
$$;
COMMENT ON FUNCTION subbilling.rotate_webhook_secret(bigint, interval) IS
    'give an endpoint a new secret and return it; requests are signed with the old one too (two signatures) for keep_previous (default 24 hours, 0 = at once)';

CREATE FUNCTION subbilling.disable_webhook_endpoint(endpoint_id bigint) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    was boolean;
BEGIN
    SELECT w.active INTO was FROM subbilling.webhook_endpoints w WHERE w.id = endpoint_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'webhook endpoint % does not exist', coalesce(endpoint_id::text, 'NULL')
            USING ERRCODE = 'no_data_found';
    END IF;
    UPDATE subbilling.webhook_endpoints w SET active = false, disabled_at = coalesce(w.disabled_at, pg_catalog.now())
     WHERE w.id = endpoint_id;
    RETURN was;
END
$$;
COMMENT ON FUNCTION subbilling.disable_webhook_endpoint(bigint) IS
    'stop delivering to an endpoint (its pending deliveries wait; events created meanwhile are not queued for it); returns whether it was active';

CREATE FUNCTION subbilling.enable_webhook_endpoint(endpoint_id bigint) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    was boolean;
    h   text;
BEGIN
    SELECT w.active, w.host INTO was, h FROM subbilling.webhook_endpoints w WHERE w.id = endpoint_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'webhook endpoint % does not exist', coalesce(endpoint_id::text, 'NULL')
            USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT subbilling_internal.webhook_host_allowed(h) THEN
        RAISE EXCEPTION 'webhook host "%" is not allowed', h
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Endpoints may only name hosts listed in subbilling.webhook_allowed_hosts.';
    END IF;
    UPDATE subbilling.webhook_endpoints w SET active = true, disabled_at = NULL WHERE w.id = endpoint_id;
    RETURN NOT was;
END
$$;
COMMENT ON FUNCTION subbilling.enable_webhook_endpoint(bigint) IS
    'deliver to a disabled endpoint again (its pending deliveries resume; events of the disabled time are not delivered); returns whether it was disabled';

CREATE FUNCTION subbilling.redeliver(delivery_id bigint) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE subbilling.webhook_deliveries d
       SET status = 'pending', attempts = 0, next_attempt_at = pg_catalog.now(), finished_at = NULL
     WHERE d.id = redeliver.delivery_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'webhook delivery % does not exist', coalesce(delivery_id::text, 'NULL')
            USING ERRCODE = 'no_data_found';
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling.redeliver(bigint) IS
    'deliver again (failed, succeeded or pending): the delivery is pending and due now, with a fresh count of attempts';

CREATE VIEW subbilling.webhook_endpoint_status AS
SELECT w.id AS endpoint_id, w.url, w.active, w.event_types,
       count(*) FILTER (WHERE d.status = 'pending') AS pending,
       min(d.created_at) FILTER (WHERE d.status = 'pending') AS oldest_pending_at,
       count(*) FILTER (WHERE d.status = 'failed') AS failed,
       count(*) FILTER (WHERE d.status = 'succeeded') AS succeeded,
       max(d.finished_at) FILTER (WHERE d.status = 'succeeded') AS last_success_at,
       (SELECT x.last_error FROM subbilling.webhook_deliveries x
         WHERE x.endpoint_id = w.id AND x.last_error IS NOT NULL
         ORDER BY x.last_attempt_at DESC NULLS LAST, x.id DESC LIMIT 1) AS last_error
  FROM subbilling.webhook_endpoints w
  LEFT JOIN subbilling.webhook_deliveries d ON d.endpoint_id = w.id
 GROUP BY w.id;
COMMENT ON VIEW subbilling.webhook_endpoint_status IS
    'one row per webhook endpoint: pending, failed and succeeded deliveries, the oldest pending one, the last success and the last error';

-------------------------------------------------------------------------------
-- Privileges: operators manage endpoints and watch deliveries; secrets are
-- shown only by the functions that make them.  Readers get nothing here.
-------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION subbilling_internal.webhook_new_secret(), subbilling_internal.webhook_host_allowed(text),
    subbilling_internal.webhook_url_host(text), subbilling_internal.webhook_type_matches(text[], text),
    subbilling_internal.webhook_check_types(text[]), subbilling_internal.webhook_backoff(integer, integer),
    subbilling_internal.webhook_fanout(integer), subbilling_internal.webhook_claim(integer, bigint[], integer, integer),
    subbilling_internal.webhook_record(bigint, integer, integer, text, double precision, integer),
    subbilling_internal.webhook_mark_interrupted() FROM PUBLIC;
REVOKE ALL ON FUNCTION subbilling.create_webhook_endpoint(text, text[], text),
    subbilling.rotate_webhook_secret(bigint, interval), subbilling.disable_webhook_endpoint(bigint),
    subbilling.enable_webhook_endpoint(bigint), subbilling.redeliver(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.create_webhook_endpoint(text, text[], text),
    subbilling.rotate_webhook_secret(bigint, interval), subbilling.disable_webhook_endpoint(bigint),
    subbilling.enable_webhook_endpoint(bigint), subbilling.redeliver(bigint) TO subbilling_operator;
GRANT SELECT (id, url, host, event_types, description, active, created_at, disabled_at,
              secret_rotated_at, previous_secret_expires_at)
    ON subbilling.webhook_endpoints TO subbilling_operator;
GRANT SELECT ON subbilling.webhook_deliveries, subbilling.webhook_delivery_attempts,
    subbilling.webhook_allowed_hosts, subbilling.webhook_endpoint_status TO subbilling_operator;
