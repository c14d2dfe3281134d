
-- ============================================================================
-- Payments: payments matched by the invoice's reference,
-- the global queue of unmatched payments, refunds, payment requests of
-- automatic methods with a retry schedule.
--
--   register_payment(amount, reference, received_on, method, external_id)
--   match_payment(payment_id, invoice_id)     settle an unmatched payment by hand
--   refund(payment_id, amount)                from customer credit, then the invoice
--   payment_failed(request_id, reason, failed_on), run_payment_retries(as_of)
--
-- Payments and unmatched payments draw their ids from one sequence, so the
-- id register_payment returns names the payment for good: matching an
-- unmatched payment creates the account's payment under the same id.
-- docs/payments.md describes every rule.
-- ============================================================================

-- ---------------------------------------------------------------- settings

CREATE TABLE subbilling.payment_settings (
    id          boolean PRIMARY KEY DEFAULT true
                CONSTRAINT payment_settings_single_row CHECK (id),
    retry_days  integer[] NOT NULL DEFAULT '{3,5,7}'
                CONSTRAINT payment_settings_retry_days_check
                CHECK (cardinality(retry_days) <= 20 AND array_position(retry_days, NULL) IS NULL
                       AND 0 < ALL (retry_days) AND 366 > ALL (retry_days)),
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    origin      text NOT NULL DEFAULT 'user'
                CONSTRAINT payment_settings_origin_check CHECK (origin IN ('shipped', 'user', 'edited'))
);
COMMENT ON TABLE subbilling.payment_settings IS 'payment settings (one row): retry_days[k] = days after the k-th failed attempt of an automatic payment until retry k; {} = no retries';
SELECT pg_catalog.pg_extension_config_dump('subbilling.payment_settings', 'WHERE origin <> ''shipped''');
COMMENT ON COLUMN subbilling.payment_settings.origin IS 'shipped: installed with the extension (not dumped); user: added by an operator; edited: shipped, then changed (dumped, restored over the shipped row)';
CREATE TRIGGER payment_settings_shipped_row BEFORE INSERT OR UPDATE ON subbilling.payment_settings
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.shipped_row();
INSERT INTO subbilling.payment_settings (origin) VALUES ('shipped');

-- ---------------------------------------------------------------- payments

CREATE SEQUENCE subbilling.payment_id_seq AS bigint;
COMMENT ON SEQUENCE subbilling.payment_id_seq IS 'ids of payments and unmatched payments (one id space: a matched payment keeps its id)';

CREATE FUNCTION subbilling_internal.is_payment_method(method text) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN method ~ '^[a-z][a-z0-9_]{0,62}$';
COMMENT ON FUNCTION subbilling_internal.is_payment_method(text) IS 'internal: a payment method name is lower-case letters, digits and underscores (card, autogiro, bankgiro, bgmax, nets_ocr, swish ...)';
REVOKE ALL ON FUNCTION subbilling_internal.is_payment_method(text) FROM PUBLIC;

CREATE TABLE subbilling.payments (
    account_id          bigint NOT NULL REFERENCES subbilling.accounts (id),
    id                  bigint NOT NULL DEFAULT pg_catalog.nextval('subbilling.payment_id_seq'::regclass),
    invoice_id          bigint NOT NULL,
    amount              subbilling.price NOT NULL
                        CONSTRAINT payments_amount_positive CHECK (subbilling.minor_units(amount) > 0),
    reference           text,
    received_on         date NOT NULL,
    method              text NOT NULL
                        CONSTRAINT payments_method_format CHECK (subbilling_internal.is_payment_method(method)),
    external_id         text,
    matched_by          text NOT NULL DEFAULT 'reference'
                        CONSTRAINT payments_matched_by_check CHECK (matched_by IN ('reference', 'hand')),
    payment_request_id  bigint,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, invoice_id) REFERENCES subbilling.invoices (account_id, id),
    CONSTRAINT payments_external_id_unique UNIQUE (account_id, external_id)
);
CREATE INDEX payments_id_idx ON subbilling.payments (id);
CREATE INDEX payments_external_id_idx ON subbilling.payments (external_id) WHERE external_id IS NOT NULL;
CREATE INDEX payments_invoice_idx ON subbilling.payments (account_id, invoice_id);
COMMENT ON TABLE subbilling.payments IS 'payments received on an account, matched to an invoice (by reference or by hand); booked bank / receivables / customer credit; immutable';

CREATE TABLE subbilling.unmatched_payments (
    id              bigint PRIMARY KEY DEFAULT pg_catalog.nextval('subbilling.payment_id_seq'::regclass),
    amount          subbilling.price NOT NULL
                    CONSTRAINT unmatched_payments_amount_positive CHECK (subbilling.minor_units(amount) > 0),
    reference       text,
    received_on     date NOT NULL,
    method          text NOT NULL
                    CONSTRAINT unmatched_payments_method_format CHECK (subbilling_internal.is_payment_method(method)),
    external_id     text UNIQUE,
    reason          text NOT NULL
                    CONSTRAINT unmatched_payments_reason_check
                    CHECK (reason IN ('no reference', 'invalid reference', 'unknown reference',
                                      'ambiguous reference', 'credit note reference', 'other currency')),
    status          text NOT NULL DEFAULT 'open'
                    CONSTRAINT unmatched_payments_status_check CHECK (status IN ('open', 'matched', 'refunded')),
    account_id      bigint,
    invoice_id      bigint,
    resolved_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT unmatched_payments_matched CHECK ((status = 'matched') = (account_id IS NOT NULL AND invoice_id IS NOT NULL)),
    CONSTRAINT unmatched_payments_resolved CHECK ((status = 'open') = (resolved_at IS NULL))
);
CREATE INDEX unmatched_payments_open_idx ON subbilling.unmatched_payments (created_at) WHERE status = 'open';
COMMENT ON TABLE subbilling.unmatched_payments IS 'global exception queue: payments whose reference matched no invoice (no account yet, so not in the journal); match_payment() books one on an account under the same id, refund() sends one back';

CREATE TABLE subbilling.refunds (
    account_id      bigint NOT NULL REFERENCES subbilling.accounts (id),
    id              bigint GENERATED BY DEFAULT AS IDENTITY,
    payment_id      bigint NOT NULL,
    amount          subbilling.price NOT NULL
                    CONSTRAINT refunds_amount_positive CHECK (subbilling.minor_units(amount) > 0),
    from_credit     subbilling.price NOT NULL,
    reopened        subbilling.price NOT NULL,
    refunded_on     date NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, payment_id) REFERENCES subbilling.payments (account_id, id),
    CONSTRAINT refunds_parts CHECK (amount = from_credit + reopened)
);
CREATE INDEX refunds_payment_idx ON subbilling.refunds (account_id, payment_id);
COMMENT ON TABLE subbilling.refunds IS 'money paid back on a payment: from_credit out of the customer credit, reopened put back on the payment''s invoice; immutable';

CREATE TABLE subbilling.payment_requests (
    account_id          bigint NOT NULL REFERENCES subbilling.accounts (id),
    id                  bigint GENERATED BY DEFAULT AS IDENTITY,
    invoice_id          bigint NOT NULL,
    payment_method_id   bigint NOT NULL,
    amount              subbilling.price NOT NULL,
    status              text NOT NULL DEFAULT 'requested'
                        CONSTRAINT payment_requests_status_check
                        CHECK (status IN ('requested', 'succeeded', 'failed', 'canceled')),
    attempt             integer NOT NULL DEFAULT 1
                        CONSTRAINT payment_requests_attempt_positive CHECK (attempt > 0),
    requested_on        date NOT NULL,
    next_attempt_on     date,
    failed_on           date,
    failure_reason      text,
    payment_id          bigint,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, invoice_id) REFERENCES subbilling.invoices (account_id, id),
    FOREIGN KEY (account_id, payment_method_id) REFERENCES subbilling.payment_methods (account_id, id),
    FOREIGN KEY (account_id, payment_id) REFERENCES subbilling.payments (account_id, id),
    CONSTRAINT payment_requests_retry_only_when_failed CHECK (next_attempt_on IS NULL OR status = 'failed'),
    CONSTRAINT payment_requests_succeeded_payment CHECK ((status = 'succeeded') = (payment_id IS NOT NULL))
);
CREATE INDEX payment_requests_id_idx ON subbilling.payment_requests (id);
CREATE UNIQUE INDEX payment_requests_one_active ON subbilling.payment_requests (account_id, invoice_id)
    WHERE status = 'requested' OR next_attempt_on IS NOT NULL;
CREATE INDEX payment_requests_retry_idx ON subbilling.payment_requests (next_attempt_on)
    WHERE next_attempt_on IS NOT NULL;
COMMENT ON TABLE subbilling.payment_requests IS 'requests to charge an automatic payment method for an invoice: requested -> succeeded | failed (retry on next_attempt_on, or final) | canceled; one active request per invoice';

ALTER TABLE subbilling.payments
    ADD FOREIGN KEY (account_id, payment_request_id) REFERENCES subbilling.payment_requests (account_id, id);

-- payments and refunds are facts: corrections are new rows
CREATE TRIGGER payments_immutable
    BEFORE UPDATE OR DELETE ON subbilling.payments
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.journal_immutable();
CREATE TRIGGER refunds_immutable
    BEFORE UPDATE OR DELETE ON subbilling.refunds
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.journal_immutable();

-- ---------------------------------------------------------------- helpers

-- The account-local date of now().
CREATE FUNCTION subbilling_internal.account_today(account_id bigint) RETURNS date
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT (pg_catalog.now() AT TIME ZONE a.time_zone)::date FROM subbilling.accounts a WHERE a.id = account_today.account_id
$$;
COMMENT ON FUNCTION subbilling_internal.account_today(bigint) IS 'internal: today in the account''s time zone';

-- Internal serialisation: a row lock (with a write, so that a snapshot
-- transaction that did not see the previous holder's work fails with 40001
-- instead of acting on what it saw) on a row of subbilling.locks, which no
-- role but the extension's owner may lock.  Keys: 'account:<id>' (money of
-- an account: payments, refunds, credit notes, customer credit),
-- 'bank_import', 'payment:<md5 of external id>'.
CREATE TABLE subbilling.locks (
    key     text PRIMARY KEY,
    taken   bigint NOT NULL DEFAULT 1
);
COMMENT ON TABLE subbilling.locks IS 'internal: rows whose row locks serialise the extension''s work (account money, bank imports, external payment ids); taken counts the lockers';
SELECT pg_catalog.pg_extension_config_dump('subbilling.locks', '');

CREATE FUNCTION subbilling_internal.lock_row(key text, wait boolean DEFAULT true) RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF key IS NULL THEN
        RETURN false;
    END IF;
    IF wait THEN
        INSERT INTO subbilling.locks AS l (key) VALUES (lock_row.key)
            ON CONFLICT ON CONSTRAINT locks_pkey DO UPDATE SET taken = l.taken + 1;
        RETURN true;
    END IF;
    -- (an insert would wait for a holder that is updating the row)
    IF NOT EXISTS (SELECT 1 FROM subbilling.locks x WHERE x.key = lock_row.key) THEN
        INSERT INTO subbilling.locks AS l (key) VALUES (lock_row.key) ON CONFLICT ON CONSTRAINT locks_pkey DO NOTHING;
    END IF;
    UPDATE subbilling.locks l SET taken = l.taken + 1
     WHERE l.key = (SELECT x.key FROM subbilling.locks x WHERE x.key = lock_row.key FOR UPDATE SKIP LOCKED);
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION subbilling_internal.lock_row(text, boolean) IS 'internal: take (or with wait = false try) the row lock of a key in subbilling.locks until the transaction ends';

-- Serialises what moves an account's money (payments, refunds, credit
-- notes, application of customer credit).
CREATE FUNCTION subbilling_internal.lock_account_credit(account_id bigint, wait boolean DEFAULT true) RETURNS boolean
    LANGUAGE sql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
RETURN subbilling_internal.lock_row('account:' || account_id, wait);
COMMENT ON FUNCTION subbilling_internal.lock_account_credit(bigint, boolean) IS 'internal: take (or with wait = false try) the row lock on an account''s money until the transaction ends';

-- Marks a fully paid invoice paid, announces it, calls dunning's
-- after_invoice_paid(), and settles its active payment request.
CREATE FUNCTION subbilling_internal.invoice_paid(inv subbilling.invoices, via text, payment_id bigint DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    paid_at timestamptz;
BEGIN
    UPDATE subbilling.invoices x SET status = 'paid', paid_at = now()
     WHERE x.account_id = inv.account_id AND x.id = inv.id AND x.status IN ('open', 'uncollectible')
    RETURNING x.paid_at INTO paid_at;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE subbilling.payment_requests r
       SET status = 'canceled', next_attempt_on = NULL, updated_at = now()
     WHERE r.account_id = inv.account_id AND r.invoice_id = inv.id
       AND (r.status = 'requested' OR r.next_attempt_on IS NOT NULL);
    PERFORM subbilling_internal.emit_event(inv.account_id, 'invoice.paid', inv.subscription_id,
        jsonb_build_object('invoice_id', inv.id, 'number', inv.number, 'currency', inv.currency,
                           'total', inv.total::text, 'paid_at', paid_at, 'via', via, 'payment_id', payment_id),
        inv.id);
    PERFORM subbilling_internal.after_invoice_paid(inv.account_id, inv.id);
END
$$;
COMMENT ON FUNCTION subbilling_internal.invoice_paid(subbilling.invoices, text, bigint) IS 'internal: an open or uncollectible invoice whose open amount reached zero becomes paid: status, event invoice.paid, subbilling_internal.after_invoice_paid(), its active payment request canceled';

-- Creates the payment (id given), books it against the locked invoice inv:
-- bank debit, receivables credit up to the open amount, the rest customer
-- credit; settles a payment request; marks the invoice paid when covered.
CREATE FUNCTION subbilling_internal.post_payment(inv subbilling.invoices, payment_id bigint, amount subbilling.price,
                                        reference text, received_on date, method text, external_id text,
                                        matched_by text)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    cur     text := inv.currency;
    zero    subbilling.price := price_minor(0, inv.currency);
    open_   subbilling.price;
    applied subbilling.price;
    excess  subbilling.price;
    req     subbilling.payment_requests;
    req_st  text;
BEGIN
    open_ := invoice_open_amount(inv.account_id, inv.id);
    applied := CASE WHEN inv.status IN ('open', 'uncollectible') AND inv.kind = 'invoice'
                    THEN least(amount, greatest(open_, zero)) ELSE zero END;
    excess := amount - applied;

    -- an active request for this invoice: an automatic payment settles it,
    -- another payment that covers the invoice cancels it
    SELECT * INTO req FROM subbilling.payment_requests r
     WHERE r.account_id = inv.account_id AND r.invoice_id = inv.id
       AND (r.status = 'requested' OR r.next_attempt_on IS NOT NULL)
       FOR UPDATE;
    IF FOUND THEN
        IF subbilling.is_automatic_method(method) THEN
            req_st := 'succeeded';
        ELSIF applied = open_ THEN
            req_st := 'canceled';
        END IF;
    END IF;

    INSERT INTO subbilling.payments AS p (account_id, id, invoice_id, amount, reference, received_on, method,
                                          external_id, matched_by, payment_request_id)
    VALUES (inv.account_id, payment_id, inv.id, amount, reference, received_on, method, external_id, matched_by,
            CASE WHEN req_st = 'succeeded' THEN req.id END);
    IF req_st IS NOT NULL THEN
        UPDATE subbilling.payment_requests r
           SET status = req_st, next_attempt_on = NULL, updated_at = now(),
               payment_id = CASE WHEN req_st = 'succeeded' THEN post_payment.payment_id END
         WHERE r.account_id = req.account_id AND r.id = req.id;
    END IF;

    PERFORM subbilling_internal.book_entry(inv.account_id, 'payment', received_on,
                       ARRAY[ledger_code('bank', cur), ledger_code('receivables', cur), ledger_code('customer_credit', cur)],
                       ARRAY[amount, -applied, -excess], inv.id, payment_id,
                       format('payment %s on invoice %s', payment_id, inv.number));
    PERFORM subbilling_internal.emit_event(inv.account_id, 'payment.received', inv.subscription_id,
        jsonb_build_object('payment_id', payment_id, 'invoice_id', inv.id, 'number', inv.number,
                           'amount', amount::text, 'applied', applied::text, 'credited', excess::text,
                           'open_amount', (open_ - applied)::text, 'currency', cur,
                           'method', method, 'reference', reference, 'received_on', received_on,
                           'external_id', external_id, 'matched_by', matched_by,
                           'payment_request_id', CASE WHEN req_st = 'succeeded' THEN req.id END),
        inv.id);
    IF applied > zero AND applied = open_ THEN
        PERFORM subbilling_internal.invoice_paid(inv, 'payment', payment_id);
    END IF;
    RETURN payment_id;
END
$$;
COMMENT ON FUNCTION subbilling_internal.post_payment(subbilling.invoices, bigint, subbilling.price, text, date, text, text, text) IS 'internal: record and book a payment on a locked invoice (bank debit; receivables credit up to the open amount; customer credit for the rest), settle its payment request, mark the invoice paid when covered; event payment.received';

-- NOTIFY for an event that has no account (the unmatched queue, which is
-- its record): its type and the payment id only.
CREATE FUNCTION subbilling_internal.notify_unaccounted(type text, payment_id bigint) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM subbilling_internal.outbox_notify(NULL, type, NULL, NULL, NULL, payment_id);
END
$$;
COMMENT ON FUNCTION subbilling_internal.notify_unaccounted(text, bigint) IS 'internal: pg_notify(''subbilling'') an event that belongs to no account (payment.unmatched, payment.refunded of an unmatched payment) by its type and payment id; unmatched_payments is its record';

-- ---------------------------------------------------------------- register_payment

CREATE FUNCTION subbilling.register_payment(amount subbilling.price, reference text, received_on date, method text,
                                            external_id text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    ref     text;
    m       text;
    ext     text;
    prev    record;
    hits    bigint[];
    inv     subbilling.invoices;
    reason  text;
    uid     bigint;
BEGIN
    IF amount IS NULL OR received_on IS NULL OR method IS NULL THEN
        RAISE EXCEPTION 'a payment needs an amount, a date and a method'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF minor_units(amount) <= 0 THEN
        RAISE EXCEPTION 'payment amount % is not positive', amount
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Money paid back is a refund().';
    END IF;
    IF NOT isfinite(received_on) THEN
        RAISE EXCEPTION 'payment date % is not a finite date', received_on
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM subbilling_internal.check_date('received_on', received_on);
    m := lower(btrim(method));
    IF NOT subbilling_internal.is_payment_method(m) THEN
        RAISE EXCEPTION 'invalid payment method "%"', method
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A method is a lower-case name: card, autogiro, bankgiro, bank_transfer, swish ...';
    END IF;
    ref := nullif(regexp_replace(reference, '\s', '', 'g'), '');
    ext := nullif(btrim(external_id), '');
    IF length(ext) > 255 THEN
        RAISE EXCEPTION 'external_id of payment is longer than 255 characters'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('It has %s characters.', length(ext)),
                  HINT = 'Register the payment with a shorter identifier of the bank message (for example a digest of it), or without external_id.';
    END IF;

    -- idempotency: the same external_id returns the same payment, unchanged
    IF ext IS NOT NULL THEN
        PERFORM subbilling_internal.lock_row('payment:' || md5(ext));
        SELECT u.id, u.amount, u.reference INTO prev FROM subbilling.unmatched_payments u WHERE u.external_id = ext;
        IF NOT FOUND THEN
            SELECT p.id, p.amount, p.reference INTO prev FROM subbilling.payments p WHERE p.external_id = ext LIMIT 1;
        END IF;
        IF FOUND THEN
            IF prev.amount::text <> amount::text OR prev.reference IS DISTINCT FROM ref THEN
                RAISE EXCEPTION 'payment "%" was registered before with other details', ext
                    USING ERRCODE = 'unique_violation',
                          DETAIL = format('Payment %s: amount %s, reference %s; now amount %s, reference %s.',
                                          prev.id, prev.amount, coalesce(prev.reference, 'none'), amount, coalesce(ref, 'none'));
            END IF;
            RETURN prev.id;
        END IF;
    END IF;

    -- the invoice by its reference
    IF ref IS NULL THEN
        reason := 'no reference';
    ELSIF ref !~ '^[0-9]{1,30}$' THEN
        reason := 'invalid reference';
    ELSE
        SELECT array_agg(i.id) INTO hits
          FROM (SELECT i.id FROM subbilling.invoices i WHERE i.reference = ref AND i.status <> 'draft' LIMIT 2) i;
        IF cardinality(hits) > 1 THEN
            -- the same digits are a reference in several countries: the method's or the currency's decide
            hits := coalesce(subbilling_internal.invoices_of_reference(ref, m, amount), hits);
        END IF;
        IF hits IS NULL THEN
            reason := 'unknown reference';
        ELSIF cardinality(hits) > 1 THEN
            reason := 'ambiguous reference';
        ELSE
            -- the account's money, then the invoice, both read again under the locks
            PERFORM subbilling_internal.lock_account_credit((SELECT i.account_id FROM subbilling.invoices i WHERE i.id = hits[1]));
            inv := subbilling_internal.invoice_for_update(hits[1]);
            IF inv.kind <> 'invoice' THEN
                reason := 'credit note reference';
            ELSIF currency(amount) <> inv.currency THEN
                -- queued, never refused: one such payment must not hold back a bank file
                reason := 'other currency';
            END IF;
        END IF;
    END IF;

    IF reason IS NOT NULL THEN
        INSERT INTO subbilling.unmatched_payments AS u (amount, reference, received_on, method, external_id, reason)
        VALUES (amount, ref, received_on, m, ext, reason)
        RETURNING u.id INTO uid;
        PERFORM subbilling_internal.notify_unaccounted('payment.unmatched', uid);
        RETURN uid;
    END IF;

    RETURN subbilling_internal.post_payment(inv, nextval('subbilling.payment_id_seq'::regclass), amount, ref, received_on, m, ext,
                        'reference');
END
$$;
COMMENT ON FUNCTION subbilling.register_payment(subbilling.price, text, date, text, text) IS 'register a payment: matched to an invoice by its payment reference (OCR/KID/FIK...) and booked (the part above the open amount becomes customer credit), else queued in unmatched_payments; idempotent on external_id; returns the payment id; events payment.received, invoice.paid (NOTIFY payment.unmatched)';

-- ---------------------------------------------------------------- match_payment

CREATE FUNCTION subbilling.match_payment(payment_id bigint, invoice_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    u       subbilling.unmatched_payments;
    inv     subbilling.invoices;
    pid     bigint;
BEGIN
    SELECT * INTO u FROM subbilling.unmatched_payments x WHERE x.id = payment_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unmatched payment % does not exist', coalesce(payment_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    IF u.status <> 'open' THEN
        RAISE EXCEPTION 'unmatched payment % is %, not open', u.id, u.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    PERFORM subbilling_internal.lock_account_credit((SELECT i.account_id FROM subbilling.invoices i WHERE i.id = invoice_id));
    inv := subbilling_internal.invoice_for_update(invoice_id);
    IF inv.kind <> 'invoice' OR inv.status = 'draft' THEN
        RAISE EXCEPTION 'invoice % cannot take a payment', coalesce(inv.number, inv.id::text)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('It is a %s with status %s; payments go to issued invoices.', replace(inv.kind, '_', ' '), inv.status);
    END IF;
    IF currency(u.amount) <> inv.currency THEN
        RAISE EXCEPTION 'payment % is not in the currency % of invoice %', u.amount, inv.currency, inv.number
            USING ERRCODE = 'data_exception';
    END IF;
    pid := subbilling_internal.post_payment(inv, u.id, u.amount, u.reference, u.received_on, u.method, u.external_id, 'hand');
    UPDATE subbilling.unmatched_payments x
       SET status = 'matched', account_id = inv.account_id, invoice_id = inv.id, resolved_at = now()
     WHERE x.id = u.id;
    RETURN pid;
END
$$;
COMMENT ON FUNCTION subbilling.match_payment(bigint, bigint) IS 'settle an unmatched payment by hand: book it on the invoice''s account and invoice under the same id, as register_payment would have; returns the payment id';

-- ---------------------------------------------------------------- refund

CREATE FUNCTION subbilling.refund(payment_id bigint, amount subbilling.price)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    u           subbilling.unmatched_payments;
    p           subbilling.payments;
    inv         subbilling.invoices;
    cur         text;
    zero        subbilling.price;
    remaining   subbilling.price;
    refunded    subbilling.price;
    paid_on_invoice subbilling.price;
    credit      subbilling.price;
    open_       subbilling.price;
    capacity    subbilling.price;
    from_credit subbilling.price;
    reopen      subbilling.price;
    today       date;
    rid         bigint;
BEGIN
    IF amount IS NULL THEN
        RAISE EXCEPTION 'a refund needs an amount'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF minor_units(amount) <= 0 THEN
        RAISE EXCEPTION 'refund amount % is not positive', amount
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- an unmatched payment goes back whole; it was never booked
    SELECT * INTO u FROM subbilling.unmatched_payments x WHERE x.id = payment_id FOR UPDATE;
    IF FOUND AND u.status <> 'matched' THEN
        IF u.status = 'refunded' THEN
            RAISE EXCEPTION 'unmatched payment % is already refunded', u.id
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        IF currency(amount) <> currency(u.amount) THEN
            RAISE EXCEPTION 'refund % is not in the currency of payment % (%)', amount, u.id, u.amount
                USING ERRCODE = 'data_exception';
        END IF;
        IF amount <> u.amount THEN
            RAISE EXCEPTION 'an unmatched payment is refunded whole'
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('Payment %s is %s; the refund asked for %s.', u.id, u.amount, amount);
        END IF;
        UPDATE subbilling.unmatched_payments x SET status = 'refunded', resolved_at = now() WHERE x.id = u.id;
        PERFORM subbilling_internal.notify_unaccounted('payment.refunded', u.id);
        RETURN u.id;
    END IF;

    SELECT * INTO p FROM subbilling.payments x WHERE x.id = payment_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'payment % does not exist', coalesce(payment_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    cur := currency(p.amount);
    zero := price_minor(0, cur);
    IF currency(amount) <> cur THEN
        RAISE EXCEPTION 'refund % is not in the currency of payment % (%)', amount, p.id, p.amount
            USING ERRCODE = 'data_exception';
    END IF;
    PERFORM subbilling_internal.lock_account_credit(p.account_id);
    SELECT * INTO inv FROM subbilling.invoices x WHERE x.account_id = p.account_id AND x.id = p.invoice_id FOR UPDATE;

    -- sums read on their own, not as subqueries inside expressions (Citus sends such a
    -- subquery to the worker without the types of the expression's other variables)
    SELECT sum(r.amount) INTO refunded FROM subbilling.refunds r
     WHERE r.account_id = p.account_id AND r.payment_id = p.id;
    remaining := p.amount - coalesce(refunded, zero);
    credit := greatest(customer_credit(p.account_id), zero);
    open_ := invoice_open_amount(p.account_id, p.invoice_id);
    -- what may go back on the invoice: what this payment paid on it (less
    -- what earlier refunds reopened), at most what is uncredited and not open
    SELECT sum(l.amount) INTO paid_on_invoice
      FROM subbilling.journal_lines l
      JOIN subbilling.journal_entries e ON e.account_id = l.account_id AND e.id = l.entry_id
     WHERE e.account_id = p.account_id AND e.payment_id = p.id AND l.invoice_id = p.invoice_id;
    capacity := CASE WHEN inv.kind = 'invoice' AND inv.status IN ('open', 'paid', 'uncollectible') THEN
                    greatest(least(-coalesce(paid_on_invoice, zero),
                                   subbilling_internal.invoice_uncredited(inv) - open_), zero)
                ELSE zero END;
    from_credit := least(amount, credit);
    reopen := amount - from_credit;
    IF amount > remaining OR reopen > capacity THEN
        RAISE EXCEPTION 'refund % is more than the refundable %', amount, least(remaining, credit + capacity)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Payment %s of %s: %s not yet refunded; customer credit %s; %s may go back on invoice %s.',
                                  p.id, p.amount, remaining, credit, capacity, inv.number);
    END IF;

    today := subbilling_internal.account_today(p.account_id);
    INSERT INTO subbilling.refunds AS r (account_id, payment_id, amount, from_credit, reopened, refunded_on)
    VALUES (p.account_id, p.id, amount, from_credit, reopen, today)
    RETURNING r.id INTO rid;
    PERFORM subbilling_internal.book_entry(p.account_id, 'refund', today,
                       ARRAY[ledger_code('bank', cur), ledger_code('customer_credit', cur), ledger_code('receivables', cur)],
                       ARRAY[-amount, from_credit, reopen], p.invoice_id, p.id,
                       format('refund %s of payment %s', rid, p.id));
    IF reopen > zero AND inv.status = 'paid' THEN
        IF subbilling_internal.on_citus() THEN
            -- on Citus the invoice's trigger runs on its worker: the setting is made there, by
            -- a query on the invoice's row that Citus routes to its shard (on the connection
            -- the UPDATE then takes)
            PERFORM set_config('subbilling_internal.reopen_invoice', x.id::text, true)
               FROM subbilling.invoices x WHERE x.account_id = inv.account_id AND x.id = inv.id;
            UPDATE subbilling.invoices x SET status = 'open', paid_at = NULL
             WHERE x.account_id = inv.account_id AND x.id = inv.id;
            PERFORM set_config('subbilling_internal.reopen_invoice', '', true)
               FROM subbilling.invoices x WHERE x.account_id = inv.account_id AND x.id = inv.id;
        ELSE
            PERFORM set_config('subbilling_internal.reopen_invoice', inv.id::text, true);
            UPDATE subbilling.invoices x SET status = 'open', paid_at = NULL
             WHERE x.account_id = inv.account_id AND x.id = inv.id;
            PERFORM set_config('subbilling_internal.reopen_invoice', '', true);
        END IF;
        PERFORM subbilling_internal.emit_event(inv.account_id, 'invoice.reopened', inv.subscription_id,
            jsonb_build_object('invoice_id', inv.id, 'number', inv.number, 'currency', cur,
                               'open_amount', (open_ + reopen)::text, 'refund_id', rid, 'payment_id', p.id),
            inv.id);
    END IF;
    PERFORM subbilling_internal.emit_event(p.account_id, 'payment.refunded', inv.subscription_id,
        jsonb_build_object('refund_id', rid, 'payment_id', p.id, 'invoice_id', p.invoice_id, 'currency', cur,
                           'amount', amount::text, 'from_credit', from_credit::text, 'reopened', reopen::text,
                           'refunded_on', today),
        p.invoice_id);
    RETURN rid;
END
$$;
COMMENT ON FUNCTION subbilling.refund(bigint, subbilling.price) IS 'pay money back on a payment: first out of the customer credit, the rest put back on the payment''s invoice (reopening it if it was paid); bank credit; refuses more than refundable (22023); an unmatched payment goes back whole; returns the refund id (the payment id for an unmatched payment); event payment.refunded';

-- ---------------------------------------------------------------- payment requests

-- Payload of payment.requested for a request row.
CREATE FUNCTION subbilling_internal.payment_request_payload(r subbilling.payment_requests) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('payment_request_id', r.id, 'invoice_id', r.invoice_id, 'number', i.number,
                              'reference', i.reference, 'due_date', i.due_date, 'currency', currency(r.amount),
                              'amount', r.amount::text, 'amount_minor', minor_units(r.amount),
                              'payment_method_id', r.payment_method_id, 'method', pm.kind, 'attempt', r.attempt,
                              'requested_on', r.requested_on)
      FROM subbilling.invoices i, subbilling.payment_methods pm
     WHERE i.account_id = r.account_id AND i.id = r.invoice_id
       AND pm.account_id = r.account_id AND pm.id = r.payment_method_id
$$;
COMMENT ON FUNCTION subbilling_internal.payment_request_payload(subbilling.payment_requests) IS 'internal: the payload of a payment.requested event';

CREATE FUNCTION subbilling.payment_failed(payment_request_id bigint, reason text, failed_on date DEFAULT current_date)
    RETURNS date
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    r       subbilling.payment_requests;
    days    integer[];
    nxt     date;
    inv     subbilling.invoices;
    acct    bigint;
BEGIN
    IF failed_on IS NULL OR NOT isfinite(failed_on) THEN
        RAISE EXCEPTION 'failed_on must be a finite date'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM subbilling_internal.check_date('failed_on', failed_on);
    IF subbilling_internal.on_citus() THEN
        -- on Citus the request is locked by (account_id, id), on its own shard
        SELECT y.account_id INTO acct FROM subbilling.payment_requests y WHERE y.id = payment_request_id;
        SELECT * INTO r FROM subbilling.payment_requests x
         WHERE x.account_id = acct AND x.id = payment_request_id FOR UPDATE;
    ELSE
        SELECT * INTO r FROM subbilling.payment_requests x WHERE x.id = payment_request_id FOR UPDATE;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'payment request % does not exist', coalesce(payment_request_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    IF r.status <> 'requested' THEN
        RAISE EXCEPTION 'payment request % is %, not requested', r.id, r.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT * INTO inv FROM subbilling.invoices x WHERE x.account_id = r.account_id AND x.id = r.invoice_id;
    SELECT s.retry_days INTO days FROM subbilling.payment_settings s;
    IF r.attempt <= coalesce(cardinality(days), 0) AND inv.status IN ('open', 'uncollectible') THEN
        nxt := failed_on + days[r.attempt];
    END IF;
    UPDATE subbilling.payment_requests x
       SET status = 'failed', failed_on = payment_failed.failed_on, failure_reason = reason,
           next_attempt_on = nxt, updated_at = now()
     WHERE x.account_id = r.account_id AND x.id = r.id;
    PERFORM subbilling_internal.emit_event(r.account_id, 'payment.failed', inv.subscription_id,
        jsonb_build_object('payment_request_id', r.id, 'invoice_id', r.invoice_id, 'number', inv.number,
                           'currency', currency(r.amount), 'amount', r.amount::text, 'attempt', r.attempt,
                           'reason', reason, 'failed_on', failed_on, 'next_attempt_on', nxt, 'final', nxt IS NULL),
        r.invoice_id);
    RETURN nxt;
END
$$;
COMMENT ON FUNCTION subbilling.payment_failed(bigint, text, date) IS 'the application reports a failed automatic payment: the request becomes failed and, while payment_settings.retry_days has entries left, a retry is scheduled (returned; NULL = no more retries, the invoice stays open for dunning); event payment.failed';

CREATE FUNCTION subbilling.run_payment_retries(as_of date DEFAULT current_date)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    r       record;
    n       integer := 0;
    req     subbilling.payment_requests;
    c       record;
    open_amt subbilling.price;
    inv     subbilling.invoices;
    mkind   text;
BEGIN
    IF as_of IS NULL OR NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite date'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM subbilling_internal.check_date('as_of', as_of);
    IF subbilling_internal.on_citus() THEN
        -- on Citus a query over every shard cannot lock: the due requests are read without
        -- locks, then each is locked by (account_id, id) on its shard (skipped when another
        -- transaction holds it) and read again there
        FOR c IN SELECT x.account_id, x.id FROM subbilling.payment_requests x
                  WHERE x.next_attempt_on <= as_of
                  ORDER BY x.next_attempt_on, x.account_id, x.id LOOP
            SELECT x.account_id, x.id, x.invoice_id, i.status AS invoice_status, pm.active AS method_active
              INTO r
              FROM subbilling.payment_requests x
              JOIN subbilling.invoices i ON i.account_id = x.account_id AND i.id = x.invoice_id
              JOIN subbilling.payment_methods pm ON pm.account_id = x.account_id AND pm.id = x.payment_method_id
             WHERE x.account_id = c.account_id AND x.id = c.id AND x.next_attempt_on <= as_of
               FOR UPDATE OF x SKIP LOCKED;
            CONTINUE WHEN NOT FOUND;
            open_amt := invoice_open_amount(r.account_id, r.invoice_id);
            IF r.invoice_status NOT IN ('open', 'uncollectible') OR minor_units(open_amt) <= 0 OR NOT r.method_active THEN
                UPDATE subbilling.payment_requests x SET status = 'canceled', next_attempt_on = NULL, updated_at = now()
                 WHERE x.account_id = r.account_id AND x.id = r.id;
                CONTINUE;
            END IF;
            UPDATE subbilling.payment_requests x
               SET status = 'requested', attempt = x.attempt + 1, amount = open_amt, requested_on = as_of,
                   next_attempt_on = NULL, updated_at = now()
             WHERE x.account_id = r.account_id AND x.id = r.id
            RETURNING x.* INTO req;
            -- the payload of payment_request_payload, read here (Citus cannot plan that SQL
            -- function's parameters)
            SELECT * INTO inv FROM subbilling.invoices i WHERE i.account_id = req.account_id AND i.id = req.invoice_id;
            SELECT x.kind INTO mkind FROM subbilling.payment_methods x
             WHERE x.account_id = req.account_id AND x.id = req.payment_method_id;
            PERFORM subbilling_internal.emit_event(req.account_id, 'payment.requested', inv.subscription_id,
                jsonb_build_object('payment_request_id', req.id, 'invoice_id', req.invoice_id, 'number', inv.number,
                                   'reference', inv.reference, 'due_date', inv.due_date, 'currency', currency(req.amount),
                                   'amount', req.amount::text, 'amount_minor', minor_units(req.amount),
                                   'payment_method_id', req.payment_method_id, 'method', mkind, 'attempt', req.attempt,
                                   'requested_on', req.requested_on), req.invoice_id);
            n := n + 1;
        END LOOP;
        RETURN n;
    END IF;
    FOR r IN
        SELECT x.account_id, x.id, i.status AS invoice_status,
               invoice_open_amount(x.account_id, x.invoice_id) AS open_amount,
               pm.active AS method_active
          FROM subbilling.payment_requests x
          JOIN subbilling.invoices i ON i.account_id = x.account_id AND i.id = x.invoice_id
          JOIN subbilling.payment_methods pm ON pm.account_id = x.account_id AND pm.id = x.payment_method_id
         WHERE x.next_attempt_on <= as_of
         ORDER BY x.next_attempt_on, x.account_id, x.id
           FOR UPDATE OF x SKIP LOCKED
    LOOP
        IF r.invoice_status NOT IN ('open', 'uncollectible') OR minor_units(r.open_amount) <= 0 OR NOT r.method_active THEN
            UPDATE subbilling.payment_requests x SET status = 'canceled', next_attempt_on = NULL, updated_at = now()
             WHERE x.account_id = r.account_id AND x.id = r.id;
            CONTINUE;
        END IF;
        UPDATE subbilling.payment_requests x
           SET status = 'requested', attempt = x.attempt + 1, amount = r.open_amount, requested_on = as_of,
               next_attempt_on = NULL, updated_at = now()
         WHERE x.account_id = r.account_id AND x.id = r.id
        RETURNING x.* INTO req;
        PERFORM subbilling_internal.emit_event(req.account_id, 'payment.requested',
                           (SELECT i.subscription_id FROM subbilling.invoices i
                             WHERE i.account_id = req.account_id AND i.id = req.invoice_id),
                           subbilling_internal.payment_request_payload(req), req.invoice_id);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling.run_payment_retries(date) IS 'request again every failed automatic payment whose retry is due on or before as_of (amount = what is still open; event payment.requested with the next attempt number); requests of invoices no longer open are canceled; returns how many were requested';
