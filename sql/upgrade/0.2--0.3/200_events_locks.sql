-- Events and locks: the outbox watermark on row locks of outbox_slots instead of advisory
-- locks; NOTIFY payloads carry identifiers only (outbox_notify, the one NOTIFY); every other
-- advisory lock (bank imports, external payment ids, account money) replaced by row locks on
-- subbilling.locks; money-moving functions lock the account's money before the invoice.

DROP FUNCTION subbilling.outbox_lock_key1(bigint);
DROP FUNCTION subbilling.outbox_lock_key2(bigint);
DROP FUNCTION subbilling.ledger_event_notification(subbilling.events);
DROP FUNCTION subbilling.notify_unaccounted(text, jsonb);

-- a payment in another currency than its invoice's is queued with its reason
ALTER TABLE subbilling.unmatched_payments DROP CONSTRAINT unmatched_payments_reason_check;
ALTER TABLE subbilling.unmatched_payments ADD CONSTRAINT unmatched_payments_reason_check
    CHECK (reason IN ('no reference', 'invalid reference', 'unknown reference',
                      'ambiguous reference', 'credit note reference', 'other currency'));

CREATE TABLE subbilling.outbox_slots (
    slot    integer PRIMARY KEY,
    bound   bigint NOT NULL DEFAULT 0,
    xact    xid8
);
COMMENT ON TABLE subbilling.outbox_slots IS 'internal: the event outbox watermark; a writer transaction holds a row lock on one slot (bound: at most its first event id) until it ends';
INSERT INTO subbilling.outbox_slots (slot) SELECT k FROM generate_series(1, 256) k;
SELECT pg_catalog.pg_extension_config_dump('subbilling.outbox_slots', 'WHERE false');

CREATE TABLE subbilling.locks (
    key     text PRIMARY KEY,
    taken   bigint NOT NULL DEFAULT 1
);
COMMENT ON TABLE subbilling.locks IS 'internal: rows whose row locks serialise the extension''s work (account money, bank imports, external payment ids); taken counts the lockers';
SELECT pg_catalog.pg_extension_config_dump('subbilling.locks', '');

CREATE OR REPLACE FUNCTION subbilling.outbox_reserve() RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    me      xid8 := pg_current_xact_id();
    hint    text := current_setting('subbilling_internal.outbox_slot', true);
    sl      integer;
    cand    integer;
BEGIN
    IF hint ~ '^[0-9]{1,9}$' AND EXISTS (SELECT 1 FROM subbilling.outbox_slots s
                                           WHERE s.slot = hint::integer AND s.xact = me) THEN
        RETURN;
    END IF;
    IF current_setting('transaction_isolation') = 'read committed' THEN
        -- the session's own slot (its bound is from its last writing
        -- transaction), else the free slot with the most recent bound
        SELECT s.slot INTO sl FROM subbilling.outbox_slots s
         WHERE s.slot = pg_backend_pid() % 256 + 1 FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            SELECT s.slot INTO sl FROM subbilling.outbox_slots s
             ORDER BY s.bound DESC, s.slot LIMIT 1 FOR UPDATE SKIP LOCKED;
        END IF;
    ELSE
        -- a snapshot transaction cannot lock a row updated since its
        -- snapshot: try the slots, oldest bound first
        FOR cand IN SELECT s.slot FROM subbilling.outbox_slots s ORDER BY s.bound, s.slot LOOP
            BEGIN
                SELECT s.slot INTO sl FROM subbilling.outbox_slots s WHERE s.slot = cand FOR UPDATE SKIP LOCKED;
            EXCEPTION WHEN serialization_failure THEN
                sl := NULL;
            END;
            EXIT WHEN sl IS NOT NULL;
        END LOOP;
    END IF;
    IF sl IS NULL THEN
        -- every slot is held: wait for one
        SELECT s.slot INTO sl FROM subbilling.outbox_slots s ORDER BY s.slot LIMIT 1 FOR UPDATE;
    END IF;
    UPDATE subbilling.outbox_slots s
       SET bound = (SELECT q.last_value FROM subbilling.events_id_seq q), xact = me
     WHERE s.slot = sl;
    PERFORM set_config('subbilling_internal.outbox_slot', sl::text, true);
END
$$;
COMMENT ON FUNCTION subbilling.outbox_reserve() IS 'internal: hold an outbox slot (row lock) for the rest of the transaction before event ids are drawn; every event writer calls it';

CREATE OR REPLACE FUNCTION subbilling.outbox_notify(id bigint, type text, account_id bigint, subscription_id bigint,
                                         invoice_id bigint, payment_id bigint DEFAULT NULL)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT notify_enabled() THEN
        RETURN false;
    END IF;
    PERFORM pg_notify('subbilling',
        jsonb_strip_nulls(jsonb_build_object('id', id, 'type', left(type, 200), 'account_id', account_id,
                                             'subscription_id', subscription_id, 'invoice_id', invoice_id,
                                             'payment_id', payment_id))::text);
    RETURN true;
END
$$;
COMMENT ON FUNCTION subbilling.outbox_notify(bigint, text, bigint, bigint, bigint, bigint) IS 'internal: pg_notify(''subbilling'') an event by its identifiers only (id, type, account_id, subscription_id, invoice_id; payment_id for an unmatched payment); false when subbilling.notify is off';

CREATE OR REPLACE FUNCTION subbilling.emit_event(account_id bigint, type text, subscription_id bigint,
                                      payload jsonb, invoice_id bigint DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    ev      subbilling.events;
BEGIN
    PERFORM outbox_reserve();
    INSERT INTO subbilling.events AS e (account_id, type, subscription_id, invoice_id, payload)
    VALUES (emit_event.account_id, emit_event.type, emit_event.subscription_id,
            emit_event.invoice_id, coalesce(emit_event.payload, '{}'))
    RETURNING e.* INTO ev;
    PERFORM outbox_notify(ev.id, ev.type, ev.account_id, ev.subscription_id, ev.invoice_id);
    RETURN ev.id;
END
$$;
COMMENT ON FUNCTION subbilling.emit_event(bigint, text, bigint, jsonb, bigint) IS 'internal: write an event row and pg_notify(''subbilling'') its identifiers in the current transaction';

CREATE OR REPLACE FUNCTION subbilling.events_after(last_id bigint, max integer DEFAULT 1000)
    RETURNS SETOF subbilling.events
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    allocated   bigint;
    inflight    bigint;
BEGIN
    IF max IS NULL OR max < 1 THEN
        RAISE EXCEPTION 'max must be a positive number of events'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', coalesce(max::text, 'NULL'));
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'events_after needs READ COMMITTED isolation'
            USING ERRCODE = 'invalid_transaction_state',
                  DETAIL = format('The transaction runs at %s; a snapshot taken before the call could hide an event that commits while it runs.',
                                  upper(current_setting('transaction_isolation'))),
                  HINT = 'Call it in its own statement at the default isolation level.';
    END IF;
    -- 1. every id drawn so far (non-transactional read of the sequence)
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END INTO allocated FROM subbilling.events_id_seq;
    -- 2. the smallest bound of a slot that an unfinished writer holds: the
    --    free slots are share-locked without waiting, the rest are held (a
    --    transaction's own slot counts as free: it sees its own events).
    --    The share locks go with the subtransaction, so that no writer
    --    ever waits for a reader.
    BEGIN
        WITH free AS (SELECT s.slot FROM subbilling.outbox_slots s FOR SHARE SKIP LOCKED)
        SELECT min(s.bound) INTO inflight
          FROM subbilling.outbox_slots s
         WHERE NOT EXISTS (SELECT 1 FROM free f WHERE f.slot = s.slot);
        RAISE SQLSTATE 'SBEV0';
    EXCEPTION WHEN SQLSTATE 'SBEV0' THEN
        NULL;
    END;
    -- 3. a new snapshot: what committed before it, below both limits
    RETURN QUERY
        SELECT e.*
          FROM subbilling.events e
         WHERE e.id > coalesce(last_id, 0)
           AND e.id <= allocated
           AND (inflight IS NULL OR e.id < inflight)
         ORDER BY e.id
         LIMIT max;
END
$$;
COMMENT ON FUNCTION subbilling.events_after(bigint, integer) IS 'committed events with id > last_id in id order (at most max); never skips an event that commits late; the cursor of a listener (a NOTIFY only says: look)';

CREATE OR REPLACE FUNCTION subbilling.lock_row(key text, wait boolean DEFAULT true) RETURNS boolean
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
COMMENT ON FUNCTION subbilling.lock_row(text, boolean) IS 'internal: take (or with wait = false try) the row lock of a key in subbilling.locks until the transaction ends';

CREATE OR REPLACE FUNCTION subbilling.lock_account_credit(account_id bigint, wait boolean DEFAULT true) RETURNS boolean
    LANGUAGE sql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
RETURN subbilling.lock_row('account:' || account_id, wait);
COMMENT ON FUNCTION subbilling.lock_account_credit(bigint, boolean) IS 'internal: take (or with wait = false try) the row lock on an account''s money until the transaction ends';

CREATE OR REPLACE FUNCTION subbilling.notify_unaccounted(type text, payment_id bigint) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM outbox_notify(NULL, type, NULL, NULL, NULL, payment_id);
END
$$;
COMMENT ON FUNCTION subbilling.notify_unaccounted(text, bigint) IS 'internal: pg_notify(''subbilling'') an event that belongs to no account (payment.unmatched, payment.refunded of an unmatched payment) by its type and payment id; unmatched_payments is its record';

CREATE OR REPLACE FUNCTION subbilling.register_payment(amount subbilling.price, reference text, received_on date, method text,
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
    PERFORM check_date('received_on', received_on);
    m := lower(btrim(method));
    IF NOT is_payment_method(m) THEN
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
        PERFORM lock_row('payment:' || md5(ext));
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
        IF hits IS NULL THEN
            reason := 'unknown reference';
        ELSIF cardinality(hits) > 1 THEN
            reason := 'ambiguous reference';
        ELSE
            -- the account's money, then the invoice, both read again under the locks
            PERFORM lock_account_credit((SELECT i.account_id FROM subbilling.invoices i WHERE i.id = hits[1]));
            inv := invoice_for_update(hits[1]);
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
        PERFORM notify_unaccounted('payment.unmatched', uid);
        RETURN uid;
    END IF;

    RETURN post_payment(inv, nextval('subbilling.payment_id_seq'::regclass), amount, ref, received_on, m, ext,
                        'reference');
END
$$;
COMMENT ON FUNCTION subbilling.register_payment(subbilling.price, text, date, text, text) IS 'register a payment: matched to an invoice by its payment reference (OCR/KID/FIK...) and booked (the part above the open amount becomes customer credit), else queued in unmatched_payments; idempotent on external_id; returns the payment id; events payment.received, invoice.paid (NOTIFY payment.unmatched)';

CREATE OR REPLACE FUNCTION subbilling.match_payment(payment_id bigint, invoice_id bigint)
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
    PERFORM lock_account_credit((SELECT i.account_id FROM subbilling.invoices i WHERE i.id = invoice_id));
    inv := invoice_for_update(invoice_id);
    IF inv.kind <> 'invoice' OR inv.status = 'draft' THEN
        RAISE EXCEPTION 'invoice % cannot take a payment', coalesce(inv.number, inv.id::text)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('It is a %s with status %s; payments go to issued invoices.', replace(inv.kind, '_', ' '), inv.status);
    END IF;
    IF currency(u.amount) <> inv.currency THEN
        RAISE EXCEPTION 'payment % is not in the currency % of invoice %', u.amount, inv.currency, inv.number
            USING ERRCODE = 'data_exception';
    END IF;
    pid := post_payment(inv, u.id, u.amount, u.reference, u.received_on, u.method, u.external_id, 'hand');
    UPDATE subbilling.unmatched_payments x
       SET status = 'matched', account_id = inv.account_id, invoice_id = inv.id, resolved_at = now()
     WHERE x.id = u.id;
    RETURN pid;
END
$$;
COMMENT ON FUNCTION subbilling.match_payment(bigint, bigint) IS 'settle an unmatched payment by hand: book it on the invoice''s account and invoice under the same id, as register_payment would have; returns the payment id';

CREATE OR REPLACE FUNCTION subbilling.refund(payment_id bigint, amount subbilling.price)
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
        PERFORM notify_unaccounted('payment.refunded', u.id);
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
    PERFORM lock_account_credit(p.account_id);
    SELECT * INTO inv FROM subbilling.invoices x WHERE x.account_id = p.account_id AND x.id = p.invoice_id FOR UPDATE;

    remaining := p.amount - coalesce((SELECT sum(r.amount) FROM subbilling.refunds r
                                       WHERE r.account_id = p.account_id AND r.payment_id = p.id), zero);
    credit := greatest(customer_credit(p.account_id), zero);
    open_ := invoice_open_amount(p.account_id, p.invoice_id);
    -- what may go back on the invoice: what this payment paid on it (less
    -- what earlier refunds reopened), at most what is uncredited and not open
    capacity := CASE WHEN inv.kind = 'invoice' AND inv.status IN ('open', 'paid', 'uncollectible') THEN
                    greatest(least(-coalesce((SELECT sum(l.amount)
                                                FROM subbilling.journal_lines l
                                                JOIN subbilling.journal_entries e ON e.account_id = l.account_id AND e.id = l.entry_id
                                               WHERE e.account_id = p.account_id AND e.payment_id = p.id
                                                 AND l.invoice_id = p.invoice_id), zero),
                                   invoice_uncredited(inv) - open_), zero)
                ELSE zero END;
    from_credit := least(amount, credit);
    reopen := amount - from_credit;
    IF amount > remaining OR reopen > capacity THEN
        RAISE EXCEPTION 'refund % is more than the refundable %', amount, least(remaining, credit + capacity)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Payment %s of %s: %s not yet refunded; customer credit %s; %s may go back on invoice %s.',
                                  p.id, p.amount, remaining, credit, capacity, inv.number);
    END IF;

    today := account_today(p.account_id);
    INSERT INTO subbilling.refunds AS r (account_id, payment_id, amount, from_credit, reopened, refunded_on)
    VALUES (p.account_id, p.id, amount, from_credit, reopen, today)
    RETURNING r.id INTO rid;
    PERFORM book_entry(p.account_id, 'refund', today,
                       ARRAY[ledger_code('bank', cur), ledger_code('customer_credit', cur), ledger_code('receivables', cur)],
                       ARRAY[-amount, from_credit, reopen], p.invoice_id, p.id,
                       format('refund %s of payment %s', rid, p.id));
    IF reopen > zero AND inv.status = 'paid' THEN
        PERFORM set_config('subbilling_internal.reopen_invoice', inv.id::text, true);
        UPDATE subbilling.invoices x SET status = 'open', paid_at = NULL
         WHERE x.account_id = inv.account_id AND x.id = inv.id;
        PERFORM set_config('subbilling_internal.reopen_invoice', '', true);
        PERFORM emit_event(inv.account_id, 'invoice.reopened', inv.subscription_id,
            jsonb_build_object('invoice_id', inv.id, 'number', inv.number, 'currency', cur,
                               'open_amount', (open_ + reopen)::text, 'refund_id', rid, 'payment_id', p.id),
            inv.id);
    END IF;
    PERFORM emit_event(p.account_id, 'payment.refunded', inv.subscription_id,
        jsonb_build_object('refund_id', rid, 'payment_id', p.id, 'invoice_id', p.invoice_id, 'currency', cur,
                           'amount', amount::text, 'from_credit', from_credit::text, 'reopened', reopen::text,
                           'refunded_on', today),
        p.invoice_id);
    RETURN rid;
END
$$;
COMMENT ON FUNCTION subbilling.refund(bigint, subbilling.price) IS 'pay money back on a payment: first out of the customer credit, the rest put back on the payment''s invoice (reopening it if it was paid); bank credit; refuses more than refundable (22023); an unmatched payment goes back whole; returns the refund id (the payment id for an unmatched payment); event payment.refunded';

CREATE OR REPLACE FUNCTION subbilling.credit_invoice(invoice_id bigint, amount subbilling.price DEFAULT NULL,
                                          reason text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    i       subbilling.invoices;
    a       subbilling.accounts;
    left_   subbilling.price;
    amt     subbilling.price;
    zero    subbilling.price;
    whole   boolean;
    today   date;
    num     record;
    cid     bigint;
    cn      subbilling.invoices;
BEGIN
    -- the account's money, then the invoice, both read again under the locks
    PERFORM lock_account_credit((SELECT x.account_id FROM subbilling.invoices x WHERE x.id = credit_invoice.invoice_id));
    i := invoice_for_update(credit_invoice.invoice_id);
    IF i.kind <> 'invoice' OR i.status NOT IN ('open', 'paid', 'uncollectible') THEN
        RAISE EXCEPTION 'invoice % cannot be credited', coalesce(i.number, i.id::text)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('It is a %s with status %s; only issued invoices (open, paid, uncollectible) are credited.',
                                  replace(i.kind, '_', ' '), i.status);
    END IF;
    zero := price_minor(0, i.currency);
    left_ := invoice_uncredited(i);
    IF left_ <= zero THEN
        RAISE EXCEPTION 'invoice % is fully credited', i.number
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Its total %s has been credited.', i.total);
    END IF;
    amt := coalesce(credit_invoice.amount, left_);
    IF currency(amt) <> i.currency THEN
        RAISE EXCEPTION 'credit amount % is not in the invoice''s currency %', amt, i.currency
            USING ERRCODE = 'data_exception';
    END IF;
    IF amt <= zero OR amt > left_ THEN
        RAISE EXCEPTION 'credit amount % is not between 0 and the uncredited %', amt, left_
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Invoice %s totals %s, of which %s is not yet credited.', i.number, i.total, left_);
    END IF;
    SELECT * INTO a FROM subbilling.accounts x WHERE x.id = i.account_id;
    today := (now() AT TIME ZONE a.time_zone)::date;
    whole := amt = i.total;     -- nothing credited before: mirror every line
    cid := nextval('subbilling.invoices_id_seq'::regclass);
    num := take_invoice_number(today);

    WITH g AS (
        SELECT l.tax_rate, greatest(minor_units(sum(l.net) + sum(l.tax)), 0)::numeric AS w,
               row_number() OVER (ORDER BY l.tax_rate DESC) AS ord
          FROM subbilling.invoice_lines l
          JOIN subbilling.invoices x ON x.account_id = l.account_id AND x.id = l.invoice_id
         WHERE l.account_id = i.account_id AND x.status <> 'void'
           AND (x.id = i.id OR x.credits_invoice_id = i.id)
         GROUP BY l.tax_rate
    ),
    -- the gross amount split over the VAT rates in proportion to what is
    -- not yet credited of each, exactly (largest remainder)
    parts AS (
        SELECT g.tax_rate, g.ord, (allocate(amt, (SELECT array_agg(g2.w ORDER BY g2.ord) FROM g g2)))[g.ord] AS part
          FROM g
         WHERE NOT whole
    ),
    cl AS (
        SELECT 'Credit: ' || l.description AS description, l.period, l.quantity, -l.unit_price AS unit_price,
               -l.net AS net, l.tax_rate, -l.tax AS tax, l.id AS ord
          FROM subbilling.invoice_lines l
         WHERE whole AND l.account_id = i.account_id AND l.invoice_id = i.id
        UNION ALL
        SELECT format('%s (VAT %s%%)', coalesce(credit_invoice.reason, 'Credit'), trim_scale(r.tax_rate)),
               NULL, 1, -net_of(r.part, r.tax_rate), -net_of(r.part, r.tax_rate), r.tax_rate,
               -(r.part - net_of(r.part, r.tax_rate)), r.ord
          FROM parts r
         WHERE r.part <> zero
    ),
    h AS (
        INSERT INTO subbilling.invoices AS x
               (account_id, id, subscription_id, kind, status, series_id, number_seq, number, currency, net, tax,
                total, issue_date, due_date, reference, credits_invoice_id, reason, finalized_at)
        SELECT i.account_id, cid, i.subscription_id, 'credit_note', 'open', num.series_id, num.number_seq,
               num.number, i.currency, sum(c.net), sum(c.tax), sum(c.net) + sum(c.tax), today, today,
               payment_reference(a.country, cid), i.id, credit_invoice.reason, now()
          FROM cl c
        RETURNING x.*
    ),
    ln AS (
        INSERT INTO subbilling.invoice_lines
               (account_id, invoice_id, subscription_id, kind, description, period, quantity, unit_price, net,
                tax_rate, tax)
        SELECT i.account_id, cid, i.subscription_id, 'credit', c.description, c.period, c.quantity, c.unit_price,
               c.net, c.tax_rate, c.tax
          FROM cl c
         ORDER BY c.ord
    )
    SELECT * INTO cn FROM h;

    PERFORM emit_event(cn.account_id, 'invoice.created', cn.subscription_id,
        jsonb_build_object('invoice_id', cn.id, 'kind', cn.kind, 'currency', cn.currency, 'net', cn.net::text,
                           'tax', cn.tax::text, 'total', cn.total::text, 'credits_invoice_id', i.id), cn.id);
    PERFORM emit_event(cn.account_id, 'invoice.finalized', cn.subscription_id,
        jsonb_build_object('invoice_id', cn.id, 'kind', cn.kind, 'status', cn.status, 'number', cn.number,
                           'series', (SELECT sr.code FROM subbilling.invoice_series sr WHERE sr.id = cn.series_id),
                           'currency', cn.currency, 'net', cn.net::text, 'tax', cn.tax::text, 'total', cn.total::text,
                           'total_minor', minor_units(cn.total), 'issue_date', cn.issue_date,
                           'due_date', cn.due_date, 'reference', cn.reference, 'credits_invoice_id', i.id), cn.id);
    PERFORM emit_event(i.account_id, 'invoice.credited', i.subscription_id,
        jsonb_build_object('invoice_id', i.id, 'number', i.number, 'credit_note_id', cn.id,
                           'credit_note_number', cn.number, 'amount', amt::text, 'currency', i.currency,
                           'uncredited', (left_ - amt)::text, 'reason', credit_invoice.reason), i.id);
    PERFORM book_invoices(ARRAY[i.account_id], ARRAY[cid]);   -- the receivables ledger
    RETURN cid;
END
$$;
COMMENT ON FUNCTION subbilling.credit_invoice(bigint, subbilling.price, text) IS 'issue a credit note for an invoice: the whole uncredited amount (NULL) mirrors its lines, a part is split over its VAT rates; numbered and announced at once; returns the credit note id; events invoice.created, invoice.finalized (note) and invoice.credited';

CREATE OR REPLACE FUNCTION subbilling.bill_subscriptions(account_ids bigint[], subscription_ids bigint[],
                                              as_of_dates date[], as_of timestamptz)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    n       integer;
    notify  boolean := notify_enabled();
    booked_acc  bigint[];
    booked_inv  bigint[];
BEGIN
    -- series rows of the issue years (created on first use, outside the lock)
    PERFORM series_for(y) FROM (SELECT DISTINCT d FROM unnest(as_of_dates) d) q(y);
    PERFORM outbox_reserve();

    WITH ch AS MATERIALIZED (
        SELECT * FROM billing_charges(account_ids, subscription_ids, as_of_dates)
    ),
    b AS (
        SELECT x.account_id, x.subscription_id, x.as_of
          FROM unnest(account_ids, subscription_ids, as_of_dates) AS x(account_id, subscription_id, as_of)
    ),
    st AS (
        SELECT b.account_id, b.subscription_id, b.as_of,
               min(c.due_date) FILTER (WHERE c.pending) AS next_on,
               min(c.key_start) FILTER (WHERE c.pending) AS from_d
          FROM b LEFT JOIN ch c ON c.account_id = b.account_id AND c.subscription_id = b.subscription_id
         GROUP BY b.account_id, b.subscription_id, b.as_of
    ),
    upd AS (
        UPDATE subbilling.subscriptions x
           SET next_bill_on = st.next_on,
               bill_from = coalesce(st.from_d, greatest(st.as_of, x.billed_as_of) + 1),
               billed_as_of = greatest(st.as_of, x.billed_as_of),
               billed_at = clock_timestamp()
          FROM st
         WHERE x.account_id = st.account_id AND x.id = st.subscription_id
        RETURNING x.id
    ),
    heads AS (
        SELECT c.account_id, c.subscription_id, b.as_of AS issue_date, min(c.currency) AS currency,
               sum(c.net) AS net, sum(c.tax) AS tax, count(*) AS nlines
          FROM ch c JOIN b ON b.account_id = c.account_id AND b.subscription_id = c.subscription_id
         WHERE c.emit
         GROUP BY c.account_id, c.subscription_id, b.as_of
    ),
    hs AS (
        SELECT h.*, sr.id AS series_id,
               row_number() OVER (PARTITION BY sr.id ORDER BY h.account_id, h.subscription_id) AS rn,
               nextval('subbilling.invoices_id_seq'::regclass) AS invoice_id
          FROM heads h
          JOIN subbilling.invoice_series sr ON sr.code = to_char(h.issue_date, 'FMYYYY')
    ),
    cnt AS (
        SELECT hs.series_id, count(*) AS n FROM hs GROUP BY hs.series_id
    ),
    -- the gapless counters: one row lock per series for the whole batch
    num AS (
        UPDATE subbilling.invoice_counters ct
           SET next_number = ct.next_number + cnt.n
          FROM cnt
          JOIN subbilling.invoice_series sr ON sr.id = cnt.series_id
         WHERE ct.series_id = cnt.series_id
        RETURNING sr.id, sr.code, ct.next_number - cnt.n AS first, sr.prefix, sr.digits
    ),
    ins AS (
        INSERT INTO subbilling.invoices AS i
               (account_id, id, subscription_id, kind, status, series_id, number_seq, number, currency,
                net, tax, total, issue_date, due_date, reference, as_of, finalized_at)
        SELECT hs.account_id, hs.invoice_id, hs.subscription_id,
               CASE WHEN hs.net + hs.tax < price_minor(0, hs.currency) THEN 'credit_note' ELSE 'invoice' END,
               'open', hs.series_id, num.first + hs.rn - 1,
               format_invoice_number(num.prefix, num.digits, num.first + hs.rn - 1), hs.currency,
               hs.net, hs.tax, hs.net + hs.tax, hs.issue_date, hs.issue_date + a.payment_terms_days,
               reference_of(coalesce(cs.reference_kind, 'luhn'), hs.invoice_id), bill_subscriptions.as_of, now()
          FROM hs
          JOIN num ON num.id = hs.series_id
          JOIN subbilling.accounts a ON a.id = hs.account_id
          LEFT JOIN subbilling.country_settings cs ON cs.country = a.country
        RETURNING i.*
    ),
    lines AS (
        INSERT INTO subbilling.invoice_lines
               (account_id, invoice_id, subscription_id, plan_id, kind, charge_type, key_start, description,
                period, quantity, unit_price, net, tax_rate, tax)
        SELECT c.account_id, hs.invoice_id, c.subscription_id, c.plan_id, c.kind, c.charge_type, c.key_start,
               c.description, c.period, c.quantity, c.unit_price, c.net, c.tax_rate, c.tax
          FROM ch c
          JOIN hs ON hs.account_id = c.account_id AND hs.subscription_id = c.subscription_id
         WHERE c.emit
         ORDER BY c.account_id, c.subscription_id, c.key_start, c.charge_type = 'discount', c.charge_type,
                  minor_units(c.net) >= 0, c.plan_id
        RETURNING 1
    ),
    ev AS (
        INSERT INTO subbilling.events AS e (account_id, type, subscription_id, invoice_id, payload)
        SELECT i.account_id, t.type, i.subscription_id, i.id,
               CASE t.type
               WHEN 'invoice.created' THEN
                   jsonb_build_object('invoice_id', i.id, 'kind', i.kind,
                                      'currency', i.currency, 'net', i.net::text, 'tax', i.tax::text,
                                      'total', i.total::text, 'as_of', i.as_of)
               ELSE
                   jsonb_build_object('invoice_id', i.id, 'kind', i.kind, 'status', i.status,
                                      'number', i.number, 'series', num.code,
                                      'currency', i.currency, 'net', i.net::text, 'tax', i.tax::text,
                                      'total', i.total::text, 'total_minor', minor_units(i.total),
                                      'issue_date', i.issue_date, 'due_date', i.due_date,
                                      'reference', i.reference)
               END
          FROM ins i
          JOIN num ON num.id = i.series_id
          CROSS JOIN (VALUES (1, 'invoice.created'), (2, 'invoice.finalized')) AS t(ord, type)
         ORDER BY i.account_id, i.id, t.ord
        RETURNING e.*
    ),
    -- NOTIFY each event's identifiers (outbox_notify, as emit_event does)
    nt AS (
        SELECT count(outbox_notify(ev.id, ev.type, ev.account_id, ev.subscription_id, ev.invoice_id)) AS n
          FROM ev WHERE notify
    )
    SELECT count(*), array_agg(ins.account_id), array_agg(ins.id) INTO n, booked_acc, booked_inv
      FROM ins WHERE (SELECT nt.n FROM nt) >= 0;
    -- the receivables ledger: book the invoices, apply customer credit, request automatic payments
    IF n > 0 THEN
        PERFORM book_invoices(booked_acc, booked_inv);
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling.bill_subscriptions(bigint[], bigint[], date[], timestamptz) IS 'internal: bill claimed subscriptions as of their account-local dates in one statement; returns the number of invoices';

CREATE OR REPLACE FUNCTION subbilling.book_invoices(account_ids bigint[], invoice_ids bigint[])
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    notify  boolean := notify_enabled();
    booked  integer := 0;
    n       integer;
    t_acc   bigint[] := '{}';       -- invoices whose open amount may have reached zero
    t_inv   bigint[] := '{}';
    c_acc   bigint[];               -- accounts whose credit is applied
    l_acc   bigint[];               -- open invoices locked for credit application
    l_inv   bigint[];
    a_acc   bigint[];
    a_inv   bigint[];
    p_acc   bigint[];
    p_inv   bigint[];
    bad     text;
    has_void boolean;
    has_cn  boolean;
BEGIN
    IF coalesce(cardinality(account_ids), 0) <> coalesce(cardinality(invoice_ids), 0) THEN
        RAISE EXCEPTION 'book_invoices needs one account id per invoice id'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s account ids and %s invoice ids.',
                                  coalesce(cardinality(account_ids), 0), coalesce(cardinality(invoice_ids), 0));
    END IF;
    IF coalesce(cardinality(invoice_ids), 0) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM outbox_reserve();
    SELECT coalesce(bool_or(i.status = 'void'), false), coalesce(bool_or(i.kind = 'credit_note'), false)
      INTO has_void, has_cn
      FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)
      JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id;

    -- 1. issued documents not yet booked
    WITH d AS MATERIALIZED (
        SELECT i.account_id, i.id, i.kind, i.currency, i.total, i.issue_date, i.number,
               nextval('subbilling.journal_entries_id_seq'::regclass) AS eid
          FROM (SELECT DISTINCT k.account_id, k.invoice_id
                  FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)) k
          JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
         WHERE i.status IN ('open', 'paid', 'uncollectible')
           AND NOT EXISTS (SELECT 1 FROM subbilling.journal_entries e
                            WHERE e.account_id = i.account_id AND e.invoice_id = i.id
                              AND e.kind IN ('invoice', 'credit_note'))
    ),
    cur AS MATERIALIZED (
        SELECT c.currency, ledger_code('receivables', c.currency) AS rc
          FROM (SELECT DISTINCT d.currency FROM d) c
    ),
    -- the lines summed per plan, fee or not, and VAT rate first (an invoice
    -- bills several periods of the same plan): every later step, the plan
    -- and product lookups and the joins to the account codes, works on
    -- these few sums instead of every line
    dp AS MATERIALIZED (
        SELECT d.account_id, d.eid, d.kind, d.issue_date, d.id, d.number, d.currency, l.plan_id,
               l.kind = 'fee' AS is_fee, l.tax_rate, sum(l.net) AS net, sum(l.tax) AS tax
          FROM d
          JOIN subbilling.invoice_lines l ON l.account_id = d.account_id AND l.invoice_id = d.id
         GROUP BY d.account_id, d.eid, d.kind, d.issue_date, d.id, d.number, d.currency, l.plan_id,
                  l.kind = 'fee', l.tax_rate
    ),
    dl AS MATERIALIZED (
        SELECT dp.account_id, dp.eid, dp.kind, dp.issue_date, dp.id, dp.number, dp.currency, dp.is_fee,
               p.code AS product, dp.tax_rate, dp.net, dp.tax
          FROM dp
          LEFT JOIN subbilling.plans pl ON pl.id = dp.plan_id
          LEFT JOIN subbilling.products p ON p.id = pl.product_id
    ),
    rev AS MATERIALIZED (
        SELECT k.currency, k.is_fee, k.product, k.tax_rate,
               revenue_code(k.currency, k.product, k.tax_rate, k.is_fee) AS code
          FROM (SELECT DISTINCT dl.currency, dl.is_fee, dl.product, dl.tax_rate FROM dl) k
    ),
    vat AS MATERIALIZED (
        SELECT k.currency, k.tax_rate, ledger_code('vat', k.currency, rate_detail(k.tax_rate)) AS code
          FROM (SELECT DISTINCT dl.currency, dl.tax_rate FROM dl WHERE minor_units(dl.tax) <> 0) k
    ),
    -- every line carries its document, and entries and lines come from the
    -- lines alone: no join between the batch-sized intermediate results,
    -- whose row estimates are poor while a batch is being written
    ln AS MATERIALIZED (
        SELECT d.account_id, d.eid, d.kind, d.issue_date, d.id, d.number, cur.rc AS code, d.total AS amount,
               'receivables'::text AS subledger, d.id AS invoice_id, 0 AS ord
          FROM d JOIN cur ON cur.currency = d.currency
        UNION ALL
        SELECT dl.account_id, dl.eid, dl.kind, dl.issue_date, dl.id, dl.number, rev.code, -sum(dl.net), NULL, NULL, 1
          FROM dl JOIN rev ON rev.currency = dl.currency AND rev.is_fee = dl.is_fee
                          AND rev.product IS NOT DISTINCT FROM dl.product AND rev.tax_rate = dl.tax_rate
         GROUP BY dl.account_id, dl.eid, dl.kind, dl.issue_date, dl.id, dl.number, rev.code
        UNION ALL
        SELECT dl.account_id, dl.eid, dl.kind, dl.issue_date, dl.id, dl.number, vat.code, -sum(dl.tax), NULL, NULL, 2
          FROM dl JOIN vat ON vat.currency = dl.currency AND vat.tax_rate = dl.tax_rate
         GROUP BY dl.account_id, dl.eid, dl.kind, dl.issue_date, dl.id, dl.number, vat.code
    ),
    nz AS MATERIALIZED (
        SELECT q.* FROM (SELECT ln.*, count(*) OVER (PARTITION BY ln.account_id, ln.eid) AS n
                           FROM ln WHERE minor_units(ln.amount) <> 0) q
         WHERE q.n >= 2
    ),
    ent AS (
        INSERT INTO subbilling.journal_entries AS e (account_id, id, kind, booked_on, invoice_id, memo)
        SELECT DISTINCT ON (nz.account_id, nz.eid) nz.account_id, nz.eid, nz.kind, nz.issue_date, nz.id,
               replace(nz.kind, '_', ' ') || ' ' || nz.number
          FROM nz
         ORDER BY nz.account_id, nz.eid
        RETURNING e.id
    ),
    lin AS (
        INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id)
        SELECT nz.account_id, nz.eid, nz.code, nz.amount, nz.subledger, nz.invoice_id
          FROM nz
         ORDER BY nz.account_id, nz.eid, nz.ord, nz.code
    )
    SELECT (SELECT count(*) FROM ent),
           coalesce(array_agg(d.account_id) FILTER (WHERE d.kind = 'invoice' AND minor_units(d.total) = 0), '{}'),
           coalesce(array_agg(d.id) FILTER (WHERE d.kind = 'invoice' AND minor_units(d.total) = 0), '{}')
      INTO booked, t_acc, t_inv
      FROM d;

    -- 2. void invoices: reverse their booking once; what was paid on them
    --    becomes customer credit.  A booked credit note is final.
    IF has_void THEN
    SELECT c.number INTO bad
      FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)
      JOIN subbilling.invoices c ON c.account_id = k.account_id AND c.id = k.invoice_id
     WHERE c.kind = 'credit_note' AND c.status = 'void'
       AND EXISTS (SELECT 1 FROM subbilling.journal_entries e
                    WHERE e.account_id = c.account_id AND e.invoice_id = c.id AND e.kind = 'credit_note')
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'credit note % cannot be voided', bad
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'A credit note is booked and applied when it is issued.',
                  HINT = 'Issue a new invoice for what the credit note should not have credited.';
    END IF;
    WITH v AS MATERIALIZED (
        SELECT i.account_id, i.id, i.currency, i.total, i.number, e.id AS booking,
               invoice_open_amount(i.account_id, i.id) AS open_amount,
               coalesce((i.voided_at AT TIME ZONE a.time_zone)::date, i.issue_date) AS booked_on,
               nextval('subbilling.journal_entries_id_seq'::regclass) AS eid
          FROM (SELECT DISTINCT k.account_id, k.invoice_id
                  FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)) k
          JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
          JOIN subbilling.accounts a ON a.id = i.account_id
          JOIN subbilling.journal_entries e ON e.account_id = i.account_id AND e.invoice_id = i.id AND e.kind = 'invoice'
         WHERE i.status = 'void'
           AND NOT EXISTS (SELECT 1 FROM subbilling.journal_entries r
                            WHERE r.account_id = i.account_id AND r.invoice_id = i.id AND r.kind = 'void')
    ),
    ln AS MATERIALIZED (
        SELECT v.account_id, v.eid, l.ledger_code AS code, -l.amount AS amount, l.subledger, NULL::bigint AS invoice_id,
               1 AS ord, l.id AS lid
          FROM v JOIN subbilling.journal_lines l ON l.account_id = v.account_id AND l.entry_id = v.booking
         WHERE l.subledger IS DISTINCT FROM 'receivables'
        UNION ALL
        SELECT v.account_id, v.eid, ledger_code('receivables', v.currency), -v.open_amount, 'receivables', v.id, 0, 0
          FROM v WHERE minor_units(v.open_amount) <> 0
        UNION ALL
        SELECT v.account_id, v.eid, ledger_code('customer_credit', v.currency), v.open_amount - v.total,
               'customer_credit', NULL, 2, 0
          FROM v WHERE v.open_amount <> v.total
    ),
    ent AS (
        INSERT INTO subbilling.journal_entries AS e (account_id, id, kind, booked_on, invoice_id, memo)
        SELECT v.account_id, v.eid, 'void', v.booked_on, v.id, 'void invoice ' || v.number FROM v
        RETURNING e.id
    ),
    lin AS (
        INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id)
        SELECT ln.account_id, ln.eid, ln.code, ln.amount, ln.subledger, ln.invoice_id
          FROM ln ORDER BY ln.account_id, ln.eid, ln.ord, ln.lid
    ),
    rq AS (
        UPDATE subbilling.payment_requests r
           SET status = 'canceled', next_attempt_on = NULL, updated_at = now()
          FROM v
         WHERE r.account_id = v.account_id AND r.invoice_id = v.id
           AND (r.status = 'requested' OR r.next_attempt_on IS NOT NULL)
        RETURNING r.id
    )
    SELECT booked + count(*) INTO booked FROM v;
    END IF;

    -- 3. credit notes: onto the invoice they credit, the rest to customer credit
    IF has_cn THEN
    PERFORM 1
       FROM subbilling.invoices o
      WHERE (o.account_id, o.id) IN (SELECT c.account_id, c.credits_invoice_id
                                       FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)
                                       JOIN subbilling.invoices c ON c.account_id = k.account_id AND c.id = k.invoice_id
                                      WHERE c.kind = 'credit_note' AND c.credits_invoice_id IS NOT NULL)
      ORDER BY o.account_id, o.id
        FOR UPDATE OF o;
    WITH c AS MATERIALIZED (
        SELECT c.account_id, c.id, c.number, c.currency, c.credits_invoice_id AS original, c.issue_date,
               -invoice_open_amount(c.account_id, c.id) AS amount
          FROM (SELECT DISTINCT k.account_id, k.invoice_id
                  FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)) k
          JOIN subbilling.invoices c ON c.account_id = k.account_id AND c.id = k.invoice_id
         WHERE c.kind = 'credit_note' AND c.status <> 'void'
    ),
    c2 AS MATERIALIZED (
        SELECT c.*, o.number AS original_number,
               CASE WHEN o.kind = 'invoice' AND o.status IN ('open', 'uncollectible')
                    THEN greatest(invoice_open_amount(o.account_id, o.id), price_minor(0, c.currency))
                    ELSE price_minor(0, c.currency) END AS original_open,
               sum(c.amount) OVER (PARTITION BY c.account_id, c.original ORDER BY c.id) AS cum,
               nextval('subbilling.journal_entries_id_seq'::regclass) AS eid
          FROM c
          LEFT JOIN subbilling.invoices o ON o.account_id = c.account_id AND o.id = c.original
         WHERE minor_units(c.amount) > 0
    ),
    c3 AS MATERIALIZED (
        SELECT c2.*,
               least(c2.amount, greatest(c2.original_open - (c2.cum - c2.amount), price_minor(0, c2.currency))) AS onto
          FROM c2
    ),
    ln AS MATERIALIZED (
        SELECT c3.account_id, c3.eid, ledger_code('receivables', c3.currency) AS code, c3.amount,
               'receivables'::text AS subledger, c3.id AS invoice_id, 0 AS ord
          FROM c3
        UNION ALL
        SELECT c3.account_id, c3.eid, ledger_code('receivables', c3.currency), -c3.onto, 'receivables', c3.original, 1
          FROM c3 WHERE minor_units(c3.onto) <> 0
        UNION ALL
        SELECT c3.account_id, c3.eid, ledger_code('customer_credit', c3.currency), c3.onto - c3.amount,
               'customer_credit', NULL, 2
          FROM c3 WHERE c3.onto <> c3.amount
    ),
    ent AS (
        INSERT INTO subbilling.journal_entries AS e (account_id, id, kind, booked_on, invoice_id, memo)
        SELECT c3.account_id, c3.eid, 'allocation', c3.issue_date, c3.id,
               'credit note ' || c3.number || coalesce(' on invoice ' || c3.original_number, '')
          FROM c3
        RETURNING e.id
    ),
    lin AS (
        INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id)
        SELECT ln.account_id, ln.eid, ln.code, ln.amount, ln.subledger, ln.invoice_id
          FROM ln ORDER BY ln.account_id, ln.eid, ln.ord
    )
    SELECT t_acc || coalesce(array_agg(c3.account_id) FILTER (WHERE minor_units(c3.onto) > 0), '{}'),
           t_inv || coalesce(array_agg(c3.original) FILTER (WHERE minor_units(c3.onto) > 0), '{}')
      INTO t_acc, t_inv
      FROM c3
     WHERE (SELECT count(*) FROM ent) >= 0;
    END IF;

    -- 4. customer credit onto open invoices, oldest due first; an account
    --    whose credit another transaction is using is left for next time
    SELECT array_agg(q.account_id) INTO c_acc
      FROM (SELECT l.account_id FROM subbilling.journal_lines l
             WHERE l.subledger = 'customer_credit'
               AND l.account_id IN (SELECT DISTINCT k FROM unnest(account_ids) k)
             GROUP BY l.account_id
            HAVING minor_units(sum(l.amount)) < 0
             ORDER BY l.account_id) q
     WHERE lock_account_credit(q.account_id, false);
    IF c_acc IS NOT NULL THEN
        -- lock the open invoices that the credit reaches (oldest due first);
        -- their open amounts are read again under the lock below
        WITH o AS MATERIALIZED (
            SELECT i.account_id, i.id, i.due_date, s.open_amount
              FROM subbilling.invoices i
              JOIN (SELECT l.account_id, l.invoice_id, sum(l.amount) AS open_amount
                      FROM subbilling.journal_lines l
                     WHERE l.account_id = ANY (c_acc) AND l.invoice_id IS NOT NULL
                     GROUP BY l.account_id, l.invoice_id
                    HAVING minor_units(sum(l.amount)) > 0) s ON s.account_id = i.account_id AND s.invoice_id = i.id
             WHERE i.account_id = ANY (c_acc) AND i.kind = 'invoice' AND i.status IN ('open', 'uncollectible')
        ),
        cr AS MATERIALIZED (
            SELECT x.account_id, customer_credit(x.account_id) AS credit FROM unnest(c_acc) AS x(account_id)
        ),
        w AS MATERIALIZED (
            SELECT o.account_id, o.id, cr.credit,
                   sum(o.open_amount) OVER (PARTITION BY o.account_id ORDER BY o.due_date, o.id) - o.open_amount AS before
              FROM o JOIN cr ON cr.account_id = o.account_id
        )
        SELECT array_agg(q.account_id), array_agg(q.id) INTO l_acc, l_inv
          FROM (SELECT i.account_id, i.id FROM subbilling.invoices i
                 WHERE (i.account_id, i.id) IN (SELECT w.account_id, w.id FROM w WHERE w.before < w.credit)
                 ORDER BY i.account_id, i.id
                   FOR UPDATE SKIP LOCKED) q;
    END IF;
    IF l_inv IS NOT NULL THEN
        WITH o AS MATERIALIZED (
            SELECT i.account_id, i.id, i.number, i.subscription_id, i.currency, i.due_date, s.open_amount
              FROM unnest(l_acc, l_inv) AS k(account_id, invoice_id)
              JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
              JOIN (SELECT l.account_id, l.invoice_id, sum(l.amount) AS open_amount
                      FROM subbilling.journal_lines l
                     WHERE l.account_id = ANY (c_acc) AND l.invoice_id = ANY (l_inv)
                     GROUP BY l.account_id, l.invoice_id) s ON s.account_id = i.account_id AND s.invoice_id = i.id
        ),
        cr AS MATERIALIZED (
            SELECT x.account_id, customer_credit(x.account_id) AS credit,
                   coalesce((SELECT max(i.issue_date)
                               FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)
                               JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
                              WHERE k.account_id = x.account_id), account_today(x.account_id)) AS booked_on
              FROM unnest(c_acc) AS x(account_id)
        ),
        w AS MATERIALIZED (
            SELECT o.*, cr.credit, cr.booked_on,
                   sum(o.open_amount) OVER (PARTITION BY o.account_id ORDER BY o.due_date, o.id) AS cum
              FROM o JOIN cr ON cr.account_id = o.account_id
             WHERE minor_units(o.open_amount) > 0
        ),
        al AS MATERIALIZED (
            SELECT q.*, nextval('subbilling.journal_entries_id_seq'::regclass) AS eid
              FROM (SELECT w.*, least(w.open_amount, w.credit - (w.cum - w.open_amount)) AS amount
                      FROM w
                     WHERE w.credit > w.cum - w.open_amount
                     ORDER BY w.account_id, w.due_date, w.id) q
        ),
        ent AS (
            INSERT INTO subbilling.journal_entries AS e (account_id, id, kind, booked_on, invoice_id, memo)
            SELECT al.account_id, al.eid, 'credit_applied', al.booked_on, al.id, 'customer credit on invoice ' || al.number
              FROM al
            RETURNING e.id
        ),
        lin AS (
            INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id)
            SELECT al.account_id, al.eid, x.code, x.amount, x.subledger, x.invoice_id
              FROM al
             CROSS JOIN LATERAL (VALUES (0, ledger_code('customer_credit', al.currency), al.amount, 'customer_credit', NULL::bigint),
                                        (1, ledger_code('receivables', al.currency), -al.amount, 'receivables', al.id))
                   AS x(ord, code, amount, subledger, invoice_id)
             ORDER BY al.account_id, al.eid, x.ord
        ),
        ev AS (
            INSERT INTO subbilling.events AS e (account_id, type, subscription_id, invoice_id, payload)
            SELECT al.account_id, 'credit.applied', al.subscription_id, al.id,
                   jsonb_build_object('invoice_id', al.id, 'number', al.number, 'currency', al.currency,
                                      'amount', al.amount::text, 'open_amount', (al.open_amount - al.amount)::text,
                                      'credit_left', (al.credit - al.cum + al.open_amount - al.amount)::text)
              FROM al
             ORDER BY al.account_id, al.eid
            RETURNING e.*
        ),
        nt AS (
            SELECT count(outbox_notify(ev.id, ev.type, ev.account_id, ev.subscription_id, ev.invoice_id)) AS n FROM ev WHERE notify
        )
        SELECT coalesce(array_agg(al.account_id), '{}'), coalesce(array_agg(al.id), '{}') INTO a_acc, a_inv
          FROM al
         WHERE (SELECT count(*) FROM ent) + (SELECT nt.n FROM nt) >= 0 AND al.amount = al.open_amount;
        t_acc := t_acc || a_acc;
        t_inv := t_inv || a_inv;
    END IF;

    -- 5. invoices whose open amount reached zero are paid
    IF cardinality(t_inv) > 0 THEN
        WITH k AS MATERIALIZED (
            SELECT q.account_id, q.invoice_id
              FROM (SELECT DISTINCT t.account_id, t.invoice_id FROM unnest(t_acc, t_inv) AS t(account_id, invoice_id)) q
             WHERE minor_units(invoice_open_amount(q.account_id, q.invoice_id)) = 0
        ),
        p AS (
            UPDATE subbilling.invoices x
               SET status = 'paid', paid_at = now()
              FROM k
             WHERE x.account_id = k.account_id AND x.id = k.invoice_id
               AND x.kind = 'invoice' AND x.status IN ('open', 'uncollectible')
            RETURNING x.*
        ),
        rq AS (
            UPDATE subbilling.payment_requests r
               SET status = 'canceled', next_attempt_on = NULL, updated_at = now()
              FROM p
             WHERE r.account_id = p.account_id AND r.invoice_id = p.id
               AND (r.status = 'requested' OR r.next_attempt_on IS NOT NULL)
            RETURNING r.id
        ),
        ev AS (
            INSERT INTO subbilling.events AS e (account_id, type, subscription_id, invoice_id, payload)
            SELECT p.account_id, 'invoice.paid', p.subscription_id, p.id,
                   jsonb_build_object('invoice_id', p.id, 'number', p.number, 'currency', p.currency,
                                      'total', p.total::text, 'paid_at', p.paid_at,
                                      'via', CASE WHEN minor_units(p.total) = 0 THEN 'zero total' ELSE 'credit' END,
                                      'payment_id', NULL)
              FROM p
             ORDER BY p.account_id, p.id
            RETURNING e.*
        ),
        nt AS (
            SELECT count(outbox_notify(ev.id, ev.type, ev.account_id, ev.subscription_id, ev.invoice_id)) AS n FROM ev WHERE notify
        )
        SELECT array_agg(p.account_id ORDER BY p.account_id, p.id), array_agg(p.id ORDER BY p.account_id, p.id)
          INTO p_acc, p_inv
          FROM p
         WHERE (SELECT count(*) FROM rq) + (SELECT nt.n FROM nt) >= 0;
        IF p_inv IS NOT NULL THEN
            PERFORM after_invoice_paid(k.account_id, k.invoice_id)
               FROM unnest(p_acc, p_inv) WITH ORDINALITY AS k(account_id, invoice_id, ord)
              ORDER BY k.ord;
        END IF;
    END IF;

    -- 6. payment requests for new open invoices of accounts that pay automatically
    WITH c AS MATERIALIZED (
        SELECT i.account_id, i.id, pm.id AS pm_id, i.issue_date
          FROM (SELECT DISTINCT k.account_id, k.invoice_id
                  FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)) k
          JOIN subbilling.payment_methods pm ON pm.account_id = k.account_id AND pm.is_default
                                            AND pm.active AND pm.automatic
          JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
         WHERE i.kind = 'invoice' AND i.status = 'open'
           AND NOT EXISTS (SELECT 1 FROM subbilling.payment_requests x
                            WHERE x.account_id = i.account_id AND x.invoice_id = i.id)
    ),
    q AS MATERIALIZED (
        SELECT c.*, invoice_open_amount(c.account_id, c.id) AS open_amount FROM c
    ),
    r AS (
        INSERT INTO subbilling.payment_requests AS r (account_id, invoice_id, payment_method_id, amount, requested_on)
        SELECT q.account_id, q.id, q.pm_id, q.open_amount, q.issue_date
          FROM q
         WHERE minor_units(q.open_amount) > 0
         ORDER BY q.account_id, q.id
        RETURNING r.*
    ),
    ev AS (
        INSERT INTO subbilling.events AS e (account_id, type, subscription_id, invoice_id, payload)
        SELECT r.account_id, 'payment.requested', i.subscription_id, r.invoice_id,
               jsonb_build_object('payment_request_id', r.id, 'invoice_id', r.invoice_id, 'number', i.number,
                                  'reference', i.reference, 'due_date', i.due_date, 'currency', i.currency,
                                  'amount', r.amount::text, 'amount_minor', minor_units(r.amount),
                                  'payment_method_id', r.payment_method_id, 'method', pm.kind,
                                  'attempt', r.attempt, 'requested_on', r.requested_on)
          FROM r
          JOIN subbilling.invoices i ON i.account_id = r.account_id AND i.id = r.invoice_id
          JOIN subbilling.payment_methods pm ON pm.account_id = r.account_id AND pm.id = r.payment_method_id
         ORDER BY r.account_id, r.id
        RETURNING e.*
    )
    SELECT count(outbox_notify(ev.id, ev.type, ev.account_id, ev.subscription_id, ev.invoice_id)) INTO n FROM ev WHERE notify;

    RETURN booked;
END
$$;
COMMENT ON FUNCTION subbilling.book_invoices(bigint[], bigint[]) IS 'book issued invoices and credit notes (receivables, revenue per account, VAT per rate) and reverse void ones, once each; apply credit notes and customer credit to open invoices (paid when covered); create payment requests for accounts paying automatically; set-based; returns the number of entries booked or reversed';

CREATE OR REPLACE FUNCTION subbilling.import_bank_file(fmt text, file text, allow_test boolean,
                                            OUT f subbilling.bank_files, OUT repeated boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    digest      bytea;
    created     timestamp;
    is_test     boolean := false;
    trans       text;
    nrec        integer;
    nsec        integer;
    nets_total  subbilling.price;
    lines       integer[];
    amounts     subbilling.price[];
    refs        text[];
    dates       date[];
    exts        text[];
    methods     text[];
    negative    integer;
    prior       boolean;
    pid         bigint;
    n_imp       integer := 0;
    n_already   integer := 0;
    n_unm       integer := 0;
    n_skip      integer := 0;
    i           integer;
BEGIN
    IF file IS NULL THEN
        RAISE EXCEPTION 'no bank file'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;

    -- 1. the whole file is checked and parsed before anything is written
    IF fmt = 'bgmax' THEN
        SELECT s.created_at, s.test, s.records, s.deposits INTO created, is_test, nrec, nsec
          FROM bgmax_summary(file) s;
        SELECT array_agg(p.line ORDER BY p.line), array_agg(p.amount ORDER BY p.line),
               array_agg(p.reference ORDER BY p.line), array_agg(p.received_on ORDER BY p.line),
               array_agg(p.bank_ref ORDER BY p.line),
               array_agg(CASE WHEN p.channel = 4 THEN 'autogiro' ELSE 'bankgiro' END ORDER BY p.line)
          INTO lines, amounts, refs, dates, exts, methods
          FROM parse_bgmax(file) p;
    ELSE
        SELECT s.data_transmitter || ':' || s.transmission_number, s.records, s.assignments, s.total
          INTO trans, nrec, nsec, nets_total
          FROM nets_ocr_summary(file) s;
        SELECT array_agg(p.line ORDER BY p.line), array_agg(p.amount ORDER BY p.line),
               array_agg(p.reference ORDER BY p.line), array_agg(p.received_on ORDER BY p.line),
               array_agg(p.bank_ref ORDER BY p.line),
               array_agg(CASE WHEN p.transaction_type = 15 THEN 'avtalegiro' ELSE 'ocr_giro' END ORDER BY p.line)
          INTO lines, amounts, refs, dates, exts, methods
          FROM parse_nets_ocr(file) p;
    END IF;
    lines := coalesce(lines, '{}');

    IF is_test AND NOT coalesce(allow_test, false) THEN
        RAISE EXCEPTION 'BgMax test file refused'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'The start record marks the file as a test file (T, position 45).',
                  HINT = 'Pass allow_test => true to import a test file, in a test database.';
    END IF;
    -- money that went out (BgMax deductions, Nets reversals) is not a payment
    SELECT min(k) INTO negative FROM generate_subscripts(lines, 1) k WHERE minor_units(amounts[k]) < 0;
    IF negative IS NOT NULL THEN
        RAISE EXCEPTION '% file with a negative amount refused', CASE fmt WHEN 'bgmax' THEN 'BgMax' ELSE 'Nets OCR giro' END
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = format('Line %s: %s of %s%s.', lines[negative],
                                  CASE fmt WHEN 'bgmax' THEN 'deduction' ELSE 'transaction' END,
                                  amounts[negative], coalesce(' with reference ' || refs[negative], '')),
                  HINT = 'Deductions and reversals are not payments: register the file''s other payments with register_payment and settle these by hand.';
    END IF;

    -- 2. one import at a time; the same content returns the first import
    PERFORM lock_row('bank_import');
    digest := sha256(convert_to(file, 'LATIN1'));
    SELECT * INTO f FROM bank_files b WHERE b.sha256 = digest;
    IF FOUND THEN
        repeated := true;
        RETURN;
    END IF;
    repeated := false;

    INSERT INTO bank_files AS b (format, sha256, file_created_at, transmission, test, records, sections,
                                 payments, total, content)
    VALUES (fmt, digest, created, trans, is_test, nrec, nsec, cardinality(lines),
            CASE WHEN fmt = 'nets_ocr' THEN nets_total
                 WHEN (SELECT count(DISTINCT currency(a)) FROM unnest(amounts) a) = 1
                 THEN (SELECT sum(a) FROM unnest(amounts) a) END,
            file)
    RETURNING * INTO f;

    -- 3. each payment, idempotent on the bank's identifiers
    FOR i IN 1 .. cardinality(lines) LOOP
        IF minor_units(amounts[i]) = 0 THEN
            n_skip := n_skip + 1;
            CONTINUE;
        END IF;
        prior := EXISTS (SELECT 1 FROM unmatched_payments u WHERE u.external_id = exts[i])
                 OR EXISTS (SELECT 1 FROM payments p WHERE p.external_id = exts[i]);
        pid := register_payment(amounts[i], refs[i], dates[i], methods[i], exts[i]);
        IF prior THEN
            n_already := n_already + 1;
        ELSIF EXISTS (SELECT 1 FROM unmatched_payments u WHERE u.id = pid) THEN
            n_unm := n_unm + 1;
        ELSE
            n_imp := n_imp + 1;
        END IF;
    END LOOP;

    UPDATE bank_files b
       SET imported = n_imp, already_imported = n_already, unmatched = n_unm, skipped = n_skip
     WHERE b.id = (f).id
    RETURNING * INTO f;
END
$$;
COMMENT ON FUNCTION subbilling.import_bank_file(text, text, boolean) IS
    'internal: import a bank file of format bgmax or nets_ocr (see import_bgmax): check it whole, record it in bank_files, register its payments; returns the bank_files row and whether the same file had been imported before';

CREATE OR REPLACE FUNCTION subbilling.accounts_validate() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
    SET TimeZone = 'UTC'
AS $$
DECLARE
    bad boolean := false;
BEGIN
    IF TG_OP = 'INSERT' OR NEW.currency IS DISTINCT FROM OLD.currency THEN
        PERFORM currency_exponent(NEW.currency);        -- unknown currency: 22023
    END IF;
    IF TG_OP = 'INSERT' OR NEW.time_zone IS DISTINCT FROM OLD.time_zone THEN
        PERFORM pg_catalog.timezone(NEW.time_zone, pg_catalog.now());  -- unknown zone: 22023
        -- only zone names: no POSIX offsets ('XYZ+167') nor abbreviations
        -- ('CEST').  The TimeZone setting takes no abbreviations (set here for
        -- this function only: see its SET clause); a name with digits is
        -- looked up in pg_timezone_names (slowly), so that no POSIX offset passes
        BEGIN
            PERFORM pg_catalog.set_config('TimeZone', NEW.time_zone, true);
        EXCEPTION WHEN invalid_parameter_value THEN
            bad := true;
        END;
        IF bad OR (NEW.time_zone ~ '[0-9]'
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names z WHERE lower(z.name) = lower(NEW.time_zone))) THEN
            RAISE EXCEPTION 'time zone "%" is not a time zone name', NEW.time_zone
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'An account''s time zone is a name from pg_timezone_names, such as Europe/Stockholm.';
        END IF;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW.id <> OLD.id THEN
            RAISE EXCEPTION 'the id of account % cannot change', OLD.id
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        IF NEW.currency <> OLD.currency
           AND EXISTS (SELECT 1 FROM subbilling.subscriptions WHERE account_id = OLD.id) THEN
            RAISE EXCEPTION 'account % has subscriptions in %; its currency cannot change', OLD.id, OLD.currency
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Open a new account for billing in another currency.';
        END IF;
        NEW.updated_at := pg_catalog.now();
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling.accounts_validate() IS 'trigger: an account''s currency and time zone are known, and its currency is fixed once it has subscriptions';

CREATE OR REPLACE FUNCTION subbilling.record_usage(subscription_id bigint, plan_code text, quantity numeric,
                                        at timestamptz, idempotency_key text)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s       subbilling.subscriptions;
    p       subbilling.plans;
    prior   subbilling.usage;
    tz      text;
    d       date;
    iid     bigint;
    uid     bigint;
BEGIN
    PERFORM check_quantity(record_usage.quantity);
    IF record_usage.quantity = 'NaN' OR record_usage.quantity > 1000000000 THEN
        RAISE EXCEPTION 'usage quantity % is out of range', record_usage.quantity
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A usage record has a finite quantity above 0 and at most 1000000000.',
                  HINT = 'Record larger amounts as several records, or in a larger unit.';
    END IF;
    IF record_usage.at IS NULL OR NOT isfinite(record_usage.at) THEN
        RAISE EXCEPTION 'at must be a finite timestamp'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM check_date('at', record_usage.at::date);
    IF record_usage.idempotency_key IS NULL OR length(record_usage.idempotency_key) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'idempotency_key must be a text of 1 to 255 characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO s FROM subbilling.subscriptions x WHERE x.id = record_usage.subscription_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription % does not exist', coalesce(record_usage.subscription_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    p := plan_by_code(record_usage.plan_code);

    -- a repeat: the same key with the same values is the same usage
    SELECT * INTO prior FROM subbilling.usage u
     WHERE u.account_id = s.account_id AND u.subscription_id = s.id
       AND u.idempotency_key = record_usage.idempotency_key;
    IF NOT FOUND THEN
        SELECT a.time_zone INTO tz FROM subbilling.accounts a WHERE a.id = s.account_id;
        d := (record_usage.at AT TIME ZONE tz)::date;
        -- usage of an ended subscription would never be billed: refused
        IF s.cancel_at IS NOT NULL AND s.cancel_at <= (now() AT TIME ZONE tz)::date THEN
            RAISE EXCEPTION 'subscription % ended on %; usage recorded after its end is refused', s.id, s.cancel_at
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'Its final invoice takes the usage recorded before the end date.',
                      HINT = 'Charge late usage of an ended subscription with an invoice of its own.';
        END IF;
        SELECT i.id INTO iid FROM subbilling.subscription_items i
         WHERE i.account_id = s.account_id AND i.subscription_id = s.id AND i.plan_id = p.id
           AND i.voided_at IS NULL AND i.validity @> d;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'subscription % has no item of plan "%" on %', s.id, p.code, d
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('Usage at %s is dated %s in the account''s time zone %s.', record_usage.at, d, tz);
        END IF;
        INSERT INTO subbilling.usage AS u
               (account_id, subscription_id, item_id, plan_id, quantity, at, usage_date, idempotency_key)
        VALUES (s.account_id, s.id, iid, p.id, record_usage.quantity, record_usage.at, d,
                record_usage.idempotency_key)
        ON CONFLICT (account_id, subscription_id, idempotency_key) DO NOTHING
        RETURNING u.id INTO uid;
        IF uid IS NOT NULL THEN
            RETURN uid;
        END IF;
        -- a concurrent call with the same key committed first
        SELECT * INTO prior FROM subbilling.usage u
         WHERE u.account_id = s.account_id AND u.subscription_id = s.id
           AND u.idempotency_key = record_usage.idempotency_key;
    END IF;
    IF prior.plan_id <> p.id OR prior.quantity <> record_usage.quantity OR prior.at <> record_usage.at THEN
        RAISE EXCEPTION 'idempotency key "%" was used with other values', record_usage.idempotency_key
            USING ERRCODE = 'unique_violation',
                  DETAIL = format('Usage %s recorded %s of plan "%s" at %s.', prior.id, prior.quantity,
                                  (SELECT x.code FROM subbilling.plans x WHERE x.id = prior.plan_id), prior.at),
                  HINT = 'A retry sends the same values; new usage takes a new key.';
    END IF;
    RETURN prior.id;
END
$$;
COMMENT ON FUNCTION subbilling.record_usage(bigint, text, numeric, timestamptz, text) IS 'record metered usage of a subscription''s plan item at a time; idempotent on idempotency_key (a repeat returns the same id, the key with other values is an error); returns the usage id';

CREATE OR REPLACE FUNCTION subbilling.check_date(name text, d date) RETURNS date
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF d IS NULL OR NOT isfinite(d) THEN
        RAISE EXCEPTION '% must be a finite date', name
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', coalesce(d::text, 'NULL'));
    END IF;
    IF d < date '2000-01-01' OR d > (current_date + interval '10 years')::date THEN
        RAISE EXCEPTION '% % is outside the accepted dates', name, d
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Dates from 2000-01-01 to 10 years after today (%s) are accepted.',
                                  (current_date + interval '10 years')::date);
    END IF;
    RETURN d;
END
$$;
COMMENT ON FUNCTION subbilling.check_date(text, date) IS 'internal: the date itself, or SQLSTATE 22023 if it is NULL, infinite, before 2000-01-01 or more than 10 years after today';

CREATE OR REPLACE FUNCTION subbilling.bill_batch(batch_size integer, as_of timestamptz,
                                      OUT invoices integer, OUT errors integer, OUT more boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    acc     bigint[];
    sid     bigint[];
    ad      date[];
    nbo     date[];
    n       integer;
    cursor_ text;
    after_d date := '-infinity';
    after_a bigint := 0;
    after_i bigint := 0;
    st      text;
    msg     text;
    det     text;
BEGIN
    IF bill_batch.batch_size IS NULL OR bill_batch.batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be a positive number of subscriptions'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', coalesce(bill_batch.batch_size::text, 'NULL'));
    END IF;
    IF bill_batch.as_of IS NULL OR NOT isfinite(bill_batch.as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite timestamp'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM check_date('as_of', bill_batch.as_of::date);
    invoices := 0;
    errors := 0;
    -- In one session, each batch for the same as_of goes on where the last
    -- one ended (keyset on the claim index): the rows already billed keep
    -- index entries under their old dates (until the transaction ends, or
    -- until vacuum), and a scan from the start would pass them again for
    -- every batch.  When the rows after the cursor do not fill a batch, the
    -- batch is filled from the start of the index up to the cursor (rows
    -- that changed meanwhile, or that another session held), and the cursor
    -- moves to the last row claimed.  It is a session setting: a rolled-back
    -- transaction takes its moves back.
    cursor_ := current_setting('subbilling_internal.billing_cursor', true);
    IF split_part(cursor_, '|', 1) = bill_batch.as_of::text THEN
        after_d := split_part(cursor_, '|', 2)::date;
        after_a := split_part(cursor_, '|', 3)::bigint;
        after_i := split_part(cursor_, '|', 4)::bigint;
    END IF;
    -- A full batch that yields neither invoice nor error (subscriptions that
    -- only had their bookkeeping moved on) takes the next one at once, so
    -- that a caller judging progress by invoices + errors never sees a full
    -- batch without progress.
    LOOP
        -- due: next_bill_on on or before the account-local date of as_of
        -- (no zone is more than a day ahead of UTC, which bounds the index scan)
        SELECT array_agg(c.account_id ORDER BY c.next_bill_on, c.account_id, c.id),
               array_agg(c.id ORDER BY c.next_bill_on, c.account_id, c.id),
               array_agg(c.local_date ORDER BY c.next_bill_on, c.account_id, c.id),
               array_agg(c.next_bill_on ORDER BY c.next_bill_on, c.account_id, c.id)
          INTO acc, sid, ad, nbo
          FROM (SELECT s.account_id, s.id, s.next_bill_on,
                       (bill_batch.as_of AT TIME ZONE a.time_zone)::date AS local_date
                  FROM subbilling.subscriptions s
                  JOIN subbilling.accounts a ON a.id = s.account_id
                 WHERE s.next_bill_on <= (bill_batch.as_of AT TIME ZONE 'UTC')::date + 1
                   AND (s.next_bill_on, s.account_id, s.id) > (after_d, after_a, after_i)
                   AND s.next_bill_on <= (bill_batch.as_of AT TIME ZONE a.time_zone)::date
                 ORDER BY s.next_bill_on, s.account_id, s.id
                 LIMIT bill_batch.batch_size
                   FOR UPDATE OF s SKIP LOCKED) c;
        n := coalesce(cardinality(sid), 0);
        IF n < bill_batch.batch_size AND (after_d, after_a, after_i) > ('-infinity'::date, 0::bigint, 0::bigint) THEN
            SELECT acc || coalesce(array_agg(c.account_id ORDER BY c.next_bill_on, c.account_id, c.id), '{}'),
                   sid || coalesce(array_agg(c.id ORDER BY c.next_bill_on, c.account_id, c.id), '{}'),
                   ad || coalesce(array_agg(c.local_date ORDER BY c.next_bill_on, c.account_id, c.id), '{}'),
                   nbo || coalesce(array_agg(c.next_bill_on ORDER BY c.next_bill_on, c.account_id, c.id), '{}')
              INTO acc, sid, ad, nbo
              FROM (SELECT s.account_id, s.id, s.next_bill_on,
                           (bill_batch.as_of AT TIME ZONE a.time_zone)::date AS local_date
                      FROM subbilling.subscriptions s
                      JOIN subbilling.accounts a ON a.id = s.account_id
                     WHERE s.next_bill_on <= (bill_batch.as_of AT TIME ZONE 'UTC')::date + 1
                       AND (s.next_bill_on, s.account_id, s.id) <= (after_d, after_a, after_i)
                       AND s.next_bill_on <= (bill_batch.as_of AT TIME ZONE a.time_zone)::date
                     ORDER BY s.next_bill_on, s.account_id, s.id
                     LIMIT bill_batch.batch_size - n
                       FOR UPDATE OF s SKIP LOCKED) c;
            n := coalesce(cardinality(sid), 0);
        END IF;
        more := n = bill_batch.batch_size;
        EXIT WHEN n = 0;
        after_d := nbo[n];
        after_a := acc[n];
        after_i := sid[n];
        PERFORM set_config('subbilling_internal.billing_cursor',
                           concat_ws('|', bill_batch.as_of, after_d, after_a, after_i), false);
        BEGIN
            invoices := invoices + bill_subscriptions(acc, sid, ad, bill_batch.as_of);
            PERFORM resolve_billing_errors(acc, sid);
        EXCEPTION WHEN OTHERS THEN
            -- one subscription at a time, each in its own subtransaction
            FOR k IN 1 .. n LOOP
                BEGIN
                    invoices := invoices + bill_subscriptions(ARRAY[acc[k]], ARRAY[sid[k]], ARRAY[ad[k]], bill_batch.as_of);
                    PERFORM resolve_billing_errors(ARRAY[acc[k]], ARRAY[sid[k]]);
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
                    INSERT INTO subbilling.billing_errors (account_id, subscription_id, run_id, as_of, sqlstate, message, detail)
                    VALUES (acc[k], sid[k], current_run_id(), bill_batch.as_of, st, msg, nullif(det, ''));
                    UPDATE subbilling.subscriptions x SET next_bill_on = ad[k] + 1
                     WHERE x.account_id = acc[k] AND x.id = sid[k];
                    errors := errors + 1;
                END;
            END LOOP;
        END;
        EXIT WHEN NOT more OR invoices + errors > 0;
    END LOOP;
END
$$;
COMMENT ON FUNCTION subbilling.bill_batch(integer, timestamptz) IS 'internal: claim up to batch_size due subscriptions (FOR UPDATE SKIP LOCKED) and bill them as of as_of; failures are recorded in billing_errors and retried the next day; more = a full batch was claimed';

CREATE OR REPLACE FUNCTION subbilling.payment_failed(payment_request_id bigint, reason text, failed_on date DEFAULT current_date)
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
BEGIN
    IF failed_on IS NULL OR NOT isfinite(failed_on) THEN
        RAISE EXCEPTION 'failed_on must be a finite date'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM check_date('failed_on', failed_on);
    SELECT * INTO r FROM subbilling.payment_requests x WHERE x.id = payment_request_id FOR UPDATE;
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
    PERFORM emit_event(r.account_id, 'payment.failed', inv.subscription_id,
        jsonb_build_object('payment_request_id', r.id, 'invoice_id', r.invoice_id, 'number', inv.number,
                           'currency', currency(r.amount), 'amount', r.amount::text, 'attempt', r.attempt,
                           'reason', reason, 'failed_on', failed_on, 'next_attempt_on', nxt, 'final', nxt IS NULL),
        r.invoice_id);
    RETURN nxt;
END
$$;
COMMENT ON FUNCTION subbilling.payment_failed(bigint, text, date) IS 'the application reports a failed automatic payment: the request becomes failed and, while payment_settings.retry_days has entries left, a retry is scheduled (returned; NULL = no more retries, the invoice stays open for dunning); event payment.failed';

CREATE OR REPLACE FUNCTION subbilling.dunning_batch(batch_size integer, as_of date,
                                         OUT steps integer, OUT errors integer, OUT more boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    err_at  timestamptz;
    cand    record;
    acc     bigint;
    ids     bigint[];
    c_acc   bigint[] := '{}';
    c_inv   bigint[] := '{}';
    ok_acc  bigint[] := '{}';
    ok_inv  bigint[] := '{}';
    n       integer;
    k       integer;
    st      text;
    msg     text;
    det     text;
BEGIN
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be a positive number of invoices'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', coalesce(batch_size::text, 'NULL'));
    END IF;
    IF as_of IS NULL OR NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite date'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', coalesce(as_of::text, 'NULL'));
    END IF;
    -- fees, interest and write-offs are computed from open amounts read under
    -- the invoice's row lock: only right when each statement sees what
    -- payments committed meanwhile
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'dunning needs READ COMMITTED isolation'
            USING ERRCODE = 'invalid_transaction_state',
                  DETAIL = format('The transaction runs at %s; a payment committed after its snapshot would be missed and written off or charged interest.',
                                  upper(current_setting('transaction_isolation'))),
                  HINT = 'Run dunning in a transaction at the default isolation level.';
    END IF;
    steps := 0;
    errors := 0;
    err_at := as_of::timestamp AT TIME ZONE 'UTC';

    -- due invoices that still owe something and did not fail on this date
    SELECT array_agg(q.account_id ORDER BY q.account_id, q.invoice_id), array_agg(q.invoice_id ORDER BY q.account_id, q.invoice_id),
           count(*)
      INTO c_acc, c_inv, n
      FROM (SELECT d.account_id, d.invoice_id
              FROM dunning_due(as_of) d
             WHERE NOT EXISTS (SELECT 1 FROM subbilling.billing_errors e
                                WHERE e.account_id = d.account_id AND e.invoice_id = d.invoice_id
                                  AND e.resolved_at IS NULL AND e.as_of >= err_at)
               AND invoice_open_amount(d.account_id, d.invoice_id) > price_minor(0, (SELECT x.currency FROM subbilling.invoices x
                                                                                    WHERE x.account_id = d.account_id AND x.id = d.invoice_id))
             ORDER BY d.next_on, d.account_id, d.invoice_id
             LIMIT batch_size) q;
    more := n = batch_size;
    IF n = 0 THEN
        RETURN;
    END IF;

    -- claim per account; a row locked by a payment or another batch is skipped
    ids := '{}';
    FOR acc IN SELECT DISTINCT u FROM unnest(c_acc) u ORDER BY u LOOP
        ids := ids || ARRAY(SELECT x.id FROM subbilling.invoices x
                             WHERE x.account_id = acc
                               AND x.id = ANY (ARRAY(SELECT c_inv[j] FROM generate_subscripts(c_acc, 1) j WHERE c_acc[j] = acc))
                               AND x.status = 'open'
                             ORDER BY x.id
                               FOR UPDATE SKIP LOCKED);
    END LOOP;
    -- keep the claimed pairs in order
    SELECT coalesce(array_agg(c_acc[j] ORDER BY j), '{}'), coalesce(array_agg(c_inv[j] ORDER BY j), '{}')
      INTO c_acc, c_inv
      FROM generate_subscripts(c_inv, 1) j WHERE c_inv[j] = ANY (ids);
    n := cardinality(c_inv);

    BEGIN
        FOR k IN 1 .. n LOOP
            steps := steps + dunning_invoice(c_acc[k], c_inv[k], as_of);
        END LOOP;
        ok_acc := c_acc;
        ok_inv := c_inv;
    EXCEPTION WHEN OTHERS THEN
        steps := 0;
        FOR k IN 1 .. n LOOP
            BEGIN
                steps := steps + dunning_invoice(c_acc[k], c_inv[k], as_of);
                ok_acc := ok_acc || c_acc[k];
                ok_inv := ok_inv || c_inv[k];
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
                INSERT INTO subbilling.billing_errors (account_id, invoice_id, run_id, as_of, sqlstate, message, detail)
                VALUES (c_acc[k], c_inv[k], current_run_id(), err_at, st, msg, nullif(det, ''));
                errors := errors + 1;
            END;
        END LOOP;
    END;
    -- open dunning errors of invoices dunned successfully now are resolved
    -- (a cheap test first: there are rarely any open errors)
    IF EXISTS (SELECT FROM subbilling.billing_errors e WHERE e.resolved_at IS NULL AND e.invoice_id IS NOT NULL) THEN
        UPDATE subbilling.billing_errors e SET resolved_at = now()
          FROM unnest(ok_acc, ok_inv) AS x(account_id, invoice_id)
         WHERE e.account_id = x.account_id AND e.invoice_id = x.invoice_id AND e.resolved_at IS NULL;
    END IF;
    -- a full batch of which nothing could be done (all claimed elsewhere) is not progress
    more := more AND steps + errors > 0;
END
$$;
COMMENT ON FUNCTION subbilling.dunning_batch(integer, date) IS 'internal: claim up to batch_size invoices with a due dunning step (per account, FOR UPDATE SKIP LOCKED) and take their steps as of as_of; failures are recorded in billing_errors and retried on a later date; more = a full batch was claimed and progressed';

CREATE OR REPLACE FUNCTION subbilling.run_payment_retries(as_of date DEFAULT current_date)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    r       record;
    n       integer := 0;
    req     subbilling.payment_requests;
BEGIN
    IF as_of IS NULL OR NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite date'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM check_date('as_of', as_of);
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
        PERFORM emit_event(req.account_id, 'payment.requested',
                           (SELECT i.subscription_id FROM subbilling.invoices i
                             WHERE i.account_id = req.account_id AND i.id = req.invoice_id),
                           payment_request_payload(req), req.invoice_id);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling.run_payment_retries(date) IS 'request again every failed automatic payment whose retry is due on or before as_of (amount = what is still open; event payment.requested with the next attempt number); requests of invoices no longer open are canceled; returns how many were requested';

REVOKE ALL ON FUNCTION
    subbilling.outbox_notify(bigint, text, bigint, bigint, bigint, bigint),
    subbilling.notify_unaccounted(text, bigint),
    subbilling.lock_row(text, boolean)
    FROM PUBLIC;
