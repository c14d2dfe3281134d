
-- ============================================================================
-- Invoices: settings (number series, country settings,
-- payment references), invoices and their lines, the billing bookkeeping of
-- subscriptions, and the guards that keep issued invoices unchanged.
--
-- invoices and invoice_lines are customer-owned (distributed by account): account_id leads
-- every key, foreign keys are composite.  invoice_series and
-- country_settings are small global settings tables.  docs/invoicing.md
-- describes every column and rule.
-- ============================================================================

-- ---------------------------------------------------------------- settings

CREATE TABLE subbilling.country_settings (
    country         text PRIMARY KEY
                    CONSTRAINT country_settings_country_iso3166 CHECK (subbilling.is_country_code(country)),
    reference_kind  text NOT NULL
                    CONSTRAINT country_settings_reference_kind_check
                    CHECK (reference_kind IN ('ocr', 'kid', 'fik', 'fi', 'luhn')),
    description     text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    reminder_fees   subbilling.price[],
    reminder_fee_caps subbilling.price[],
    reminder_fee_max_count integer
        CONSTRAINT country_settings_reminder_fee_max_count_range CHECK (reminder_fee_max_count >= 0),
    reminder_fee_min_days integer
        CONSTRAINT country_settings_reminder_fee_min_days_range CHECK (reminder_fee_min_days BETWEEN 0 AND 3650),
    late_interest_margin numeric
        CONSTRAINT country_settings_late_interest_margin_range CHECK (late_interest_margin >= 0 AND late_interest_margin < 100),
    dunning_legal_basis text,
    origin      text NOT NULL DEFAULT 'user'
                CONSTRAINT country_settings_origin_check CHECK (origin IN ('shipped', 'user', 'edited'))
);
COMMENT ON TABLE subbilling.country_settings IS 'per-country invoicing settings: the kind of payment reference (ocr SE, kid NO, fik DK, fi FI, luhn elsewhere); countries without a row get luhn';
COMMENT ON COLUMN subbilling.country_settings.reminder_fees IS 'dunning: the standard reminder fee per currency (steps with fee_kind ''country''); NULL = none';
COMMENT ON COLUMN subbilling.country_settings.reminder_fee_caps IS 'dunning: the legal maximum of one reminder fee per currency; NULL = no cap; a cap list without the invoice''s currency means no fee in that currency';
COMMENT ON COLUMN subbilling.country_settings.reminder_fee_max_count IS 'dunning: at most this many reminder fees per invoice; NULL = no limit';
COMMENT ON COLUMN subbilling.country_settings.reminder_fee_min_days IS 'dunning: a fee only on a step taken at least this many days after the due date; NULL = any day';
COMMENT ON COLUMN subbilling.country_settings.late_interest_margin IS 'dunning: late-payment interest = reference rate (reference_rates) + this many percentage points; NULL = no late-payment interest';
COMMENT ON COLUMN subbilling.country_settings.dunning_legal_basis IS 'dunning: where the fee and interest rules of the country come from';

SELECT pg_catalog.pg_extension_config_dump('subbilling.country_settings', 'WHERE origin <> ''shipped''');
COMMENT ON COLUMN subbilling.country_settings.origin IS 'shipped: installed with the extension (not dumped); user: added by an operator; edited: shipped, then changed (dumped, restored over the shipped row)';
CREATE TRIGGER country_settings_shipped_row BEFORE INSERT OR UPDATE ON subbilling.country_settings
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.shipped_row();

-- The reminder fee lists of a country: positive, one per currency.
CREATE FUNCTION subbilling_internal.country_settings_validate_dunning() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    l   subbilling.price[];
    nm  text;
BEGIN
    FOR nm, l IN VALUES ('reminder_fees', NEW.reminder_fees), ('reminder_fee_caps', NEW.reminder_fee_caps) LOOP
        CONTINUE WHEN l IS NULL;
        IF cardinality(l) = 0 OR array_position(l, NULL) IS NOT NULL
           OR EXISTS (SELECT 1 FROM unnest(l) f WHERE minor_units(f) <= 0)
           OR (SELECT count(DISTINCT currency(f)) FROM unnest(l) f) <> cardinality(l) THEN
            RAISE EXCEPTION '% of country % must list positive amounts, one per currency', nm, NEW.country
                USING ERRCODE = 'check_violation',
                      DETAIL = format('Got %s.', l);
        END IF;
    END LOOP;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling_internal.country_settings_validate_dunning() IS 'trigger: a country''s reminder fees and caps are positive, one per currency';

CREATE TRIGGER country_settings_validate_dunning
    BEFORE INSERT OR UPDATE ON subbilling.country_settings
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.country_settings_validate_dunning();

-- The shipped countries, with their rules of dunning (docs/dunning.md gives the sources;
-- operators keep them current).
INSERT INTO subbilling.country_settings (country, reference_kind, description, reminder_fees, reminder_fee_caps,
                                         reminder_fee_max_count, reminder_fee_min_days, late_interest_margin,
                                         dunning_legal_basis, origin) VALUES
    ('SE', 'ocr', 'Bankgirot OCR: Luhn check digit and length digit',
     '{"60.00 SEK"}', '{"60.00 SEK"}', NULL, NULL, 8,
     'Reminder fee at most 60 SEK per written reminder if agreed when the debt arose: lag (1981:739) om ersättning för inkassokostnader 2 and 4 §§. Late-payment interest: referensränta + 8 percentage points, räntelagen (1975:635) 6 and 9 §§.',
     'shipped'),
    ('NO', 'kid', 'KID, mod 10',
     '{"35.00 NOK"}', '{"35.00 NOK"}', 2, 14, 8,
     'Purregebyr per inkassoforskriften 1-2 and 1-3: a fraction of the inkassosats, for a reminder sent at least 14 days after the due date, at most two fees per claim (35 NOK assumed; check the current inkassosats). Forsinkelsesrente: Norges Bank''s policy rate + 8 percentage points per half-year, forsinkelsesrenteloven 3 §.',
     'shipped'),
    ('DK', 'fik', 'FI-kort +71 payment id, 15 digits',
     '{"100.00 DKK"}', '{"100.00 DKK"}', 3, NULL, NULL,
     'Rykkergebyr at most 100 DKK per reminder, at most three, renteloven 9 b. Morarente (Nationalbanken''s lending rate + 8 percentage points) is not preset: set late_interest_margin and reference_rates to charge it.',
     'shipped'),
    ('FI', 'fi', 'Finnish reference number (viitenumero), 7-3-1',
     '{"5.00 EUR"}', '{"5.00 EUR"}', NULL, NULL, NULL,
     'Maksumuistutus at most 5 EUR, laki saatavien perinnästä 10 §. Viivästyskorko (reference rate + 7 percentage points, korkolaki) is not preset: set late_interest_margin and reference_rates to charge it.',
     'shipped'),
    ('IS', 'luhn', 'Luhn reference',
     NULL, NULL, NULL, NULL, NULL,
     NULL,
     'shipped');

-- The payment reference of an invoice: built from its id (unique, so the
-- reference is too) by a reference kind; a Finnish reference is built from
-- id + 100 (at least 3 digits, no leading zero).
CREATE FUNCTION subbilling.reference_of(kind text, invoice_id bigint) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
       WHEN kind = 'ocr' THEN subbilling.ocr_reference(invoice_id::text, true)
       WHEN kind = 'kid' THEN subbilling.kid_reference(invoice_id::text, 'mod10')
       WHEN kind = 'fik' THEN subbilling.fik_reference(invoice_id::text)
       WHEN kind = 'fi'  THEN subbilling.fi_reference((invoice_id + 100)::text)
       ELSE subbilling.luhn_reference(invoice_id::text)
       END;
COMMENT ON FUNCTION subbilling.reference_of(text, bigint) IS 'the payment reference of kind ocr, kid, fik, fi or luhn (anything else) for an invoice id';

-- ... by the kind that the country's settings name.
CREATE FUNCTION subbilling.payment_reference(country text, invoice_id bigint) RETURNS text
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT reference_of(coalesce((SELECT c.reference_kind FROM subbilling.country_settings c
                                   WHERE c.country = payment_reference.country), 'luhn'), invoice_id)
$$;
COMMENT ON FUNCTION subbilling.payment_reference(text, bigint) IS 'the payment reference for an invoice id in a country: OCR (SE), KID (NO), FIK (DK), Finnish (FI), else Luhn; see country_settings';

-- Gapless numbering: one counter row per series, locked (UPDATE) when a
-- batch of invoices is numbered, held until commit.  No sequences: a
-- rolled-back batch returns its numbers.  The counter lives in its own
-- table: the series row that every invoice references stays unchanged, so
-- the foreign-key check of each new invoice finds one row version, not one
-- per batch numbered so far in the transaction.
CREATE TABLE subbilling.invoice_series (
    id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    code        text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'),
    prefix      text NOT NULL DEFAULT '',
    digits      integer NOT NULL DEFAULT 6
                CONSTRAINT invoice_series_digits_range CHECK (digits BETWEEN 1 AND 18),
    description text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE subbilling.invoice_series IS 'invoice number series: invoices and credit notes issued in a calendar year are numbered in series code YYYY (created on first use: prefix ''YYYY-'', 6 digits); the counter is in invoice_counters';

CREATE TABLE subbilling.invoice_counters (
    series_id   bigint PRIMARY KEY REFERENCES subbilling.invoice_series (id),
    next_number bigint NOT NULL DEFAULT 1
                CONSTRAINT invoice_counters_next_number_positive CHECK (next_number > 0)
);
COMMENT ON TABLE subbilling.invoice_counters IS 'the gapless counter of each invoice series: next_number is the number the next invoice of the series gets; moved only by numbering, under its row lock';

-- The series of an issue date's year, created on first use.
CREATE FUNCTION subbilling_internal.series_for(issue_date date) RETURNS bigint
    LANGUAGE plpgsql VOLATILE STRICT
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    c   text := to_char(issue_date, 'FMYYYY');
    sid bigint;
BEGIN
    SELECT s.id INTO sid FROM subbilling.invoice_series s
     WHERE s.code = c AND EXISTS (SELECT FROM subbilling.invoice_counters ct WHERE ct.series_id = s.id);
    IF NOT FOUND THEN
        -- created here, not by a trigger: a restore loads series and counters as dumped
        INSERT INTO subbilling.invoice_series AS s (code, prefix, description)
        VALUES (c, c || '-', format('invoices and credit notes issued in %s', c))
        ON CONFLICT (code) DO NOTHING;
        SELECT s.id INTO sid FROM subbilling.invoice_series s WHERE s.code = c;
        INSERT INTO subbilling.invoice_counters (series_id) VALUES (sid) ON CONFLICT (series_id) DO NOTHING;
    END IF;
    RETURN sid;
END
$$;
COMMENT ON FUNCTION subbilling_internal.series_for(date) IS 'internal: the id of the number series of an issue date''s year (code YYYY), created with its counter if missing';

-- The text form of number n in a series.
CREATE FUNCTION subbilling_internal.format_invoice_number(prefix text, digits integer, n bigint) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN prefix || lpad(n::text, greatest(digits, length(n::text)), '0');
COMMENT ON FUNCTION subbilling_internal.format_invoice_number(text, integer, bigint) IS 'internal: prefix followed by n zero-padded to digits';
REVOKE ALL ON FUNCTION subbilling_internal.format_invoice_number(text, integer, bigint) FROM PUBLIC;

-- ---------------------------------------------------------------- invoices

CREATE TABLE subbilling.invoices (
    account_id          bigint NOT NULL REFERENCES subbilling.accounts (id),
    id                  bigint GENERATED BY DEFAULT AS IDENTITY,
    subscription_id     bigint,
    kind                text NOT NULL DEFAULT 'invoice'
                        CONSTRAINT invoices_kind_check CHECK (kind IN ('invoice', 'credit_note')),
    status              text NOT NULL DEFAULT 'draft'
                        CONSTRAINT invoices_status_check
                        CHECK (status IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
    series_id           bigint REFERENCES subbilling.invoice_series (id),
    number_seq          bigint,
    number              text,
    currency            text NOT NULL,
    net                 subbilling.price NOT NULL,
    tax                 subbilling.price NOT NULL,
    total               subbilling.price NOT NULL,
    issue_date          date,
    due_date            date,
    reference           text,
    credits_invoice_id  bigint,
    reason              text,
    as_of               timestamptz,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    finalized_at        timestamptz,
    paid_at             timestamptz,
    voided_at           timestamptz,
    tax_notes           text[] NOT NULL DEFAULT '{}',
    buyer_vat_number    text,
    seller_currency     text,
    exchange_rate       numeric,
    tax_seller_currency subbilling.price,
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, subscription_id) REFERENCES subbilling.subscriptions (account_id, id),
    FOREIGN KEY (account_id, credits_invoice_id) REFERENCES subbilling.invoices (account_id, id),
    CONSTRAINT invoices_number_unique UNIQUE (account_id, series_id, number),
    CONSTRAINT invoices_total_is_net_plus_tax CHECK (total = net + tax),
    CONSTRAINT invoices_currency_matches CHECK (subbilling.currency(total) = currency AND subbilling.currency(net) = currency),
    CONSTRAINT invoices_issued_numbered
        CHECK (status = 'draft' OR (series_id IS NOT NULL AND number_seq IS NOT NULL AND number IS NOT NULL
                                    AND issue_date IS NOT NULL AND due_date IS NOT NULL
                                    AND reference IS NOT NULL AND finalized_at IS NOT NULL)),
    CONSTRAINT invoices_draft_unnumbered CHECK (status <> 'draft' OR (number IS NULL AND number_seq IS NULL)),
    CONSTRAINT invoices_credit_note_reference CHECK (credits_invoice_id IS NULL OR kind = 'credit_note'),
    CONSTRAINT invoices_paid_at CHECK ((status = 'paid') = (paid_at IS NOT NULL)),
    CONSTRAINT invoices_voided_at CHECK ((status = 'void') = (voided_at IS NOT NULL))
);
CREATE INDEX invoices_id_idx ON subbilling.invoices (id);
CREATE INDEX invoices_subscription_idx ON subbilling.invoices (account_id, subscription_id);
CREATE INDEX invoices_reference_idx ON subbilling.invoices (reference);
CREATE INDEX invoices_credits_idx ON subbilling.invoices (account_id, credits_invoice_id) WHERE credits_invoice_id IS NOT NULL;
CREATE INDEX invoices_open_due_idx ON subbilling.invoices (due_date) WHERE status = 'open';
COMMENT ON TABLE subbilling.invoices IS 'invoices and credit notes: draft -> open (numbered, gapless per series) -> paid | void | uncollectible; an issued invoice is never deleted or altered';
COMMENT ON COLUMN subbilling.invoices.tax_notes IS 'legal texts the invoice must print (reverse charge, outside the scope, exempt, OSS)';
COMMENT ON COLUMN subbilling.invoices.buyer_vat_number IS 'the customer''s VAT number when the invoice was issued';
COMMENT ON COLUMN subbilling.invoices.exchange_rate IS 'foreign-currency invoices: the rate into seller_currency at which tax_seller_currency states the VAT';

CREATE TABLE subbilling.invoice_lines (
    account_id      bigint NOT NULL,
    id              bigint GENERATED BY DEFAULT AS IDENTITY,
    invoice_id      bigint NOT NULL,
    subscription_id bigint,
    plan_id         bigint REFERENCES subbilling.plans (id),
    kind            text NOT NULL
                    CONSTRAINT invoice_lines_kind_check
                    CHECK (kind IN ('recurring', 'proration', 'usage', 'addon', 'discount', 'setup', 'fee', 'credit')),
    charge_type     text
                    CONSTRAINT invoice_lines_charge_type_check
                    CHECK (charge_type IN ('period', 'usage', 'setup', 'discount')),
    key_start       date,
    description     text NOT NULL,
    period          daterange,
    quantity        numeric,
    unit_price      subbilling.price,
    net             subbilling.price NOT NULL,
    tax_rate        numeric NOT NULL
                    CONSTRAINT invoice_lines_tax_rate_range CHECK (tax_rate >= 0 AND tax_rate < 100),
    tax             subbilling.price NOT NULL,
    tax_treatment   text NOT NULL DEFAULT 'domestic'
        CONSTRAINT invoice_lines_tax_treatment_check
        CHECK (tax_treatment IN ('domestic', 'reverse_charge', 'oss', 'outside_scope', 'exempt')),
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, invoice_id) REFERENCES subbilling.invoices (account_id, id),
    CONSTRAINT invoice_lines_charge_key
        CHECK ((charge_type IS NULL) = (key_start IS NULL)
               AND (charge_type IS NULL OR (subscription_id IS NOT NULL AND plan_id IS NOT NULL))),
    CONSTRAINT invoice_lines_currency_matches CHECK (subbilling.currency(tax) = subbilling.currency(net))
);
CREATE INDEX invoice_lines_invoice_idx ON subbilling.invoice_lines (account_id, invoice_id);
CREATE INDEX invoice_lines_charge_key_idx ON subbilling.invoice_lines (account_id, subscription_id, key_start)
    WHERE charge_type IS NOT NULL;
COMMENT ON TABLE subbilling.invoice_lines IS 'invoice lines: kind, period, quantity, unit price, net, VAT rate and VAT; engine lines carry the charge key (subscription, plan, charge_type, key_start) they settle';
COMMENT ON COLUMN subbilling.invoice_lines.charge_type IS 'the charge key''s type: period (the items'' charge for a billing period: lines of kind recurring, proration or addon), usage, setup, discount; called recurring before 0.3';
COMMENT ON COLUMN subbilling.invoice_lines.tax_treatment IS 'domestic, reverse_charge (EU business), oss (EU consumer, the customer country''s rate), outside_scope (outside the EU), exempt';

-- ---------------------------------------------------------------- guards

-- Issued invoices are never deleted, and only their status (open -> paid |
-- void | uncollectible, uncollectible -> paid) and its timestamps change;
-- columns added by the payments part (payment bookkeeping) stay writable.
CREATE FUNCTION subbilling_internal.invoices_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status <> 'draft' THEN
            RAISE EXCEPTION 'invoice % is issued and cannot be deleted', coalesce(OLD.number, OLD.id::text)
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = format('Invoice %s has status %s.', OLD.id, OLD.status),
                      HINT = 'Issue a credit note with credit_invoice(), or void_invoice() an open invoice.';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.status = 'draft' THEN
        RETURN NEW;
    END IF;
    IF NEW.account_id <> OLD.account_id OR NEW.id <> OLD.id
       OR NEW.subscription_id IS DISTINCT FROM OLD.subscription_id OR NEW.kind <> OLD.kind
       OR NEW.series_id IS DISTINCT FROM OLD.series_id OR NEW.number_seq IS DISTINCT FROM OLD.number_seq
       OR NEW.number IS DISTINCT FROM OLD.number OR NEW.currency <> OLD.currency
       OR NEW.net <> OLD.net OR NEW.tax <> OLD.tax OR NEW.total <> OLD.total
       OR NEW.issue_date IS DISTINCT FROM OLD.issue_date OR NEW.due_date IS DISTINCT FROM OLD.due_date
       OR NEW.reference IS DISTINCT FROM OLD.reference
       OR NEW.credits_invoice_id IS DISTINCT FROM OLD.credits_invoice_id
       OR NEW.reason IS DISTINCT FROM OLD.reason OR NEW.as_of IS DISTINCT FROM OLD.as_of
       OR NEW.created_at <> OLD.created_at OR NEW.finalized_at IS DISTINCT FROM OLD.finalized_at THEN
        RAISE EXCEPTION 'invoice % is issued and cannot be altered', OLD.number
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'An issued invoice keeps its number, dates, amounts and reference for ever.',
                  HINT = 'Issue a credit note with credit_invoice().';
    END IF;
    IF NEW.status <> OLD.status
       AND NOT (OLD.status = 'open' AND NEW.status IN ('paid', 'void', 'uncollectible'))
       AND NOT (OLD.status = 'uncollectible' AND NEW.status = 'paid') THEN
        RAISE EXCEPTION 'invoice % cannot go from % to %', OLD.number, OLD.status, NEW.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Issued invoices go open -> paid, void or uncollectible, and uncollectible -> paid.';
    END IF;
    IF (OLD.paid_at IS NOT NULL AND NEW.paid_at IS DISTINCT FROM OLD.paid_at)
       OR (OLD.voided_at IS NOT NULL AND NEW.voided_at IS DISTINCT FROM OLD.voided_at) THEN
        RAISE EXCEPTION 'invoice % keeps its paid_at and voided_at once set', OLD.number
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling_internal.invoices_guard() IS 'trigger: issued invoices are never deleted, and only their status moves forward (open -> paid | void | uncollectible)';

-- (except for the one invoice that refund() reopens: invoices_reopen_guard, below)
CREATE TRIGGER invoices_guard
    BEFORE UPDATE OR DELETE ON subbilling.invoices
    FOR EACH ROW
    WHEN (pg_catalog.current_setting('subbilling_internal.reopen_invoice', true) IS DISTINCT FROM OLD.id::text)
    EXECUTE FUNCTION subbilling_internal.invoices_guard();

-- The guard above lets an issued invoice's status only move forward.  A
-- refund that puts money back on a paid invoice reopens it (paid -> open):
-- refund() names the invoice in subbilling_internal.reopen_invoice for the
-- one UPDATE, which invoices_guard lets by (its WHEN) and which then passes
-- through invoices_reopen_guard instead.
CREATE FUNCTION subbilling_internal.invoices_reopen_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR OLD.status <> 'paid' OR NEW.status <> 'open' OR NEW.paid_at IS NOT NULL
       OR (to_jsonb(NEW) - 'status' - 'paid_at') <> (to_jsonb(OLD) - 'status' - 'paid_at') THEN
        RAISE EXCEPTION 'invoice % can only be reopened (paid -> open, paid_at cleared)', coalesce(OLD.number, OLD.id::text)
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling_internal.invoices_reopen_guard() IS 'trigger: the one change refund() makes to a paid invoice it puts money back on: paid -> open, paid_at cleared';

CREATE TRIGGER invoices_reopen_guard
    BEFORE UPDATE OR DELETE ON subbilling.invoices
    FOR EACH ROW
    WHEN (pg_catalog.current_setting('subbilling_internal.reopen_invoice', true) = OLD.id::text)
    EXECUTE FUNCTION subbilling_internal.invoices_reopen_guard();

-- Lines of an issued invoice are never changed or deleted.
CREATE FUNCTION subbilling_internal.invoice_lines_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    st  text;
    num text;
BEGIN
    SELECT i.status, i.number INTO st, num FROM subbilling.invoices i
     WHERE i.account_id = OLD.account_id AND i.id = OLD.invoice_id;
    IF st IS DISTINCT FROM 'draft' THEN
        RAISE EXCEPTION 'the lines of invoice % are issued and cannot be %', num,
                        CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'altered' END
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Line %s of invoice %s (status %s).', OLD.id, OLD.invoice_id, st),
                  HINT = 'Issue a credit note with credit_invoice().';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling_internal.invoice_lines_guard() IS 'trigger: the lines of an issued invoice are never altered or deleted';

CREATE TRIGGER invoice_lines_guard
    BEFORE UPDATE OR DELETE ON subbilling.invoice_lines
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.invoice_lines_guard();

-- Totals equal the sum of the lines, checked once per statement for every
-- issued invoice that the statement gave lines (set-based: one query per
-- batch, not one per line).
CREATE FUNCTION subbilling_internal.invoice_lines_check_totals() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    bad record;
    one record;
    hit boolean := false;
BEGIN
    IF subbilling_internal.on_citus() THEN
        -- on Citus this runs on a shard: one invoice at a time, each query on one account's rows
        FOR one IN SELECT DISTINCT n.account_id, n.invoice_id FROM new_lines n LOOP
            SELECT i.id, i.number, i.net, i.tax, t.net AS lines_net, t.tax AS lines_tax INTO bad
              FROM subbilling.invoices i,
                   (SELECT sum(l.net) AS net, sum(l.tax) AS tax FROM subbilling.invoice_lines l
                     WHERE l.account_id = one.account_id AND l.invoice_id = one.invoice_id) t
             WHERE i.account_id = one.account_id AND i.id = one.invoice_id
               AND i.status <> 'draft' AND (t.net <> i.net OR t.tax <> i.tax);
            hit := FOUND;
            EXIT WHEN hit;
        END LOOP;
    ELSE
        SELECT i.id, i.number, i.net, i.tax, t.net AS lines_net, t.tax AS lines_tax INTO bad
          FROM (SELECT DISTINCT n.account_id, n.invoice_id FROM new_lines n) k
          -- one primary-key lookup per invoice (LIMIT 1 keeps the planner from
          -- hashing the whole table when its statistics predate a large run)
          CROSS JOIN LATERAL (SELECT i.* FROM subbilling.invoices i
                               WHERE i.account_id = k.account_id AND i.id = k.invoice_id LIMIT 1) i
          CROSS JOIN LATERAL (SELECT sum(l.net) AS net, sum(l.tax) AS tax
                                FROM subbilling.invoice_lines l
                               WHERE l.account_id = i.account_id AND l.invoice_id = i.id) t
         WHERE i.status <> 'draft' AND (t.net <> i.net OR t.tax <> i.tax)
         LIMIT 1;
        hit := FOUND;
    END IF;
    IF hit THEN
        RAISE EXCEPTION 'the totals of invoice % are not the sum of its lines', coalesce(bad.number, bad.id::text)
            USING ERRCODE = 'integrity_constraint_violation',
                  DETAIL = format('Invoice net %s, VAT %s; lines net %s, VAT %s.', bad.net, bad.tax, bad.lines_net, bad.lines_tax),
                  HINT = 'Issued invoices get no new lines; a credit note corrects them.';
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION subbilling_internal.invoice_lines_check_totals() IS 'trigger: after each insert of lines, every issued invoice that got lines has net and VAT equal to the sums of its lines';

CREATE TRIGGER invoice_lines_check_totals
    AFTER INSERT ON subbilling.invoice_lines
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling_internal.invoice_lines_check_totals();
