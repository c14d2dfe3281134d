
-- ============================================================================
-- The VAT return from the journal: vat_report (the Swedish return's boxes)
-- and eu_sales_list (reverse-charge sales per customer VAT number), in the
-- seller's currency; the accounts and mappings that non-domestic sales book
-- to; privileges of the tax tables and functions.  docs/taxes.md.
-- ============================================================================

INSERT INTO subbilling.ledger_accounts (code, name, kind, description, origin) VALUES
    ('3305', 'Försäljning tjänster till land utanför EU', 'revenue', 'sales outside the scope of EU VAT (customer outside the EU)', 'shipped'),
    ('3308', 'Försäljning tjänster till annat EU-land', 'revenue', 'reverse-charge sales to businesses in other EU member states', 'shipped'),
    ('3109', 'Försäljning till konsumenter i andra EU-länder (OSS)', 'revenue', 'sales taxed in the customer''s member state under the One-Stop Shop (not a BAS default; rename freely)', 'shipped'),
    ('2619', 'Utgående moms OSS', 'liability', 'VAT of other member states declared under the One-Stop Shop (not a BAS default; rename freely)', 'shipped');

INSERT INTO subbilling.ledger_mappings (purpose, detail, code, description, origin) VALUES
    ('revenue_rate', 'reverse_charge', '3308', 'reverse-charge sales (VAT return box 39)', 'shipped'),
    ('revenue_rate', 'outside_scope',  '3305', 'sales outside the EU (VAT return box 40)', 'shipped'),
    ('revenue_rate', 'oss',            '3109', 'OSS sales (OSS return, not the Swedish one)', 'shipped'),
    ('vat',          'oss',            '2619', 'OSS VAT', 'shipped');

-- Which ledger account goes to which box of the VAT return.
CREATE TABLE subbilling.vat_boxes (
    ledger_code text PRIMARY KEY REFERENCES subbilling.ledger_accounts (code),
    box         text NOT NULL
                CONSTRAINT vat_boxes_box_check CHECK (box IN ('05', '06', '07', '08', '10', '11', '12', '35', '36',
                                                              '39', '40', '41', '42')),
    origin      text NOT NULL DEFAULT 'user'
                CONSTRAINT vat_boxes_origin_check CHECK (origin IN ('shipped', 'user', 'edited'))
);
COMMENT ON TABLE subbilling.vat_boxes IS 'ledger account -> box of the Swedish VAT return (revenue accounts: the net of sales; VAT accounts: the VAT); every revenue account the seller books to belongs here';
SELECT pg_catalog.pg_extension_config_dump('subbilling.vat_boxes', 'WHERE origin <> ''shipped''');
COMMENT ON COLUMN subbilling.vat_boxes.origin IS 'shipped: installed with the extension (not dumped); user: added by an operator; edited: shipped, then changed (dumped, restored over the shipped row)';
CREATE TRIGGER vat_boxes_shipped_row BEFORE INSERT OR UPDATE ON subbilling.vat_boxes
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.shipped_row();

INSERT INTO subbilling.vat_boxes (ledger_code, box, origin) VALUES
    ('3001', '05', 'shipped'), ('3002', '05', 'shipped'), ('3003', '05', 'shipped'),
    ('2611', '10', 'shipped'), ('2621', '11', 'shipped'), ('2631', '12', 'shipped'),
    ('3308', '39', 'shipped'), ('3305', '40', 'shipped'), ('3004', '42', 'shipped');

-- A journal line's amount in the seller's currency: foreign-currency
-- documents at their invoice's exchange rate.
CREATE FUNCTION subbilling_internal.in_seller_currency(amount subbilling.price, seller_currency text, rate numeric,
                                              booked_on date)
    RETURNS subbilling.price
    LANGUAGE sql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN currency(amount) = seller_currency THEN amount
                ELSE subbilling_internal.convert_price(amount, coalesce(rate, subbilling_internal.exchange_rate_for(currency(amount), booked_on)), seller_currency) END
$$;
COMMENT ON FUNCTION subbilling_internal.in_seller_currency(subbilling.price, text, numeric, date) IS 'internal: a journal amount in the seller''s currency (its invoice''s exchange rate, else the rate of its booking date)';

CREATE FUNCTION subbilling_internal.seller_currency() RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    c   text;
BEGIN
    SELECT s.currency INTO c FROM subbilling.seller_settings s;
    IF c IS NULL THEN
        RAISE EXCEPTION 'the seller is not set up'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Insert the seller''s country, currency and VAT number into subbilling.seller_settings.';
    END IF;
    RETURN c;
END
$$;
COMMENT ON FUNCTION subbilling_internal.seller_currency() IS 'internal: the seller''s currency; 55000 without a seller_settings row';

CREATE FUNCTION subbilling_internal.check_report_dates(from_date date, to_date date) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF from_date IS NULL OR to_date IS NULL OR NOT isfinite(from_date) OR NOT isfinite(to_date) OR from_date > to_date THEN
        RAISE EXCEPTION 'a report period needs two finite dates, from_date on or before to_date'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s to %s.', coalesce(from_date::text, 'NULL'), coalesce(to_date::text, 'NULL'));
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling_internal.check_report_dates(date, date) IS 'internal: 22023 unless from_date <= to_date, both finite';

-- The Swedish VAT return: per box the journal's amounts booked from
-- from_date to to_date (both inclusive) on the box's accounts, sign turned
-- so that sales and output VAT are positive; 48 (input VAT) is 0, the
-- extension books no purchases; 49 = 10 + 11 + 12 - 48.
CREATE FUNCTION subbilling.vat_report(from_date date, to_date date)
    RETURNS TABLE (box text, amount subbilling.price)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    cur text := subbilling_internal.seller_currency();
BEGIN
    PERFORM subbilling_internal.check_report_dates(vat_report.from_date, vat_report.to_date);
    RETURN QUERY
    WITH j AS (
        SELECT b.box, -subbilling_internal.in_seller_currency(l.amount, cur, i.exchange_rate, e.booked_on) AS amount
          FROM subbilling.journal_entries e
          JOIN subbilling.journal_lines l ON l.account_id = e.account_id AND l.entry_id = e.id
          JOIN subbilling.vat_boxes b ON b.ledger_code = l.ledger_code
          LEFT JOIN subbilling.invoices i ON i.account_id = e.account_id AND i.id = e.invoice_id
         WHERE e.booked_on BETWEEN vat_report.from_date AND vat_report.to_date
    ),
    boxes AS (
        SELECT x.box, coalesce((SELECT sum(j.amount) FROM j WHERE j.box = x.box), price_minor(0, cur)) AS amount
          FROM unnest('{05,06,07,08,10,11,12,35,36,39,40,41,42}'::text[]) AS x(box)
    )
    SELECT boxes.box, boxes.amount FROM boxes
    UNION ALL
    SELECT '48', price_minor(0, cur)
    UNION ALL
    SELECT '49', (SELECT sum(boxes.amount) FROM boxes WHERE boxes.box IN ('10', '11', '12'))
    ORDER BY 1;
END
$$;
COMMENT ON FUNCTION subbilling.vat_report(date, date) IS 'the Swedish VAT return''s boxes (05 ... 42, 48, 49) from the journal between two dates (inclusive), in the seller''s currency';

-- Reverse-charge sales per customer VAT number (the EU sales list,
-- periodisk sammanställning), from the journal lines on box 39's accounts.
CREATE FUNCTION subbilling.eu_sales_list(from_date date, to_date date)
    RETURNS TABLE (vat_number text, amount subbilling.price)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    cur text := subbilling_internal.seller_currency();
BEGIN
    PERFORM subbilling_internal.check_report_dates(eu_sales_list.from_date, eu_sales_list.to_date);
    RETURN QUERY
    SELECT i.buyer_vat_number, sum(-subbilling_internal.in_seller_currency(l.amount, cur, i.exchange_rate, e.booked_on))
      FROM subbilling.journal_entries e
      JOIN subbilling.journal_lines l ON l.account_id = e.account_id AND l.entry_id = e.id
      JOIN subbilling.vat_boxes b ON b.ledger_code = l.ledger_code AND b.box = '39'
      JOIN subbilling.invoices i ON i.account_id = e.account_id AND i.id = e.invoice_id
     WHERE e.booked_on BETWEEN eu_sales_list.from_date AND eu_sales_list.to_date
     GROUP BY i.buyer_vat_number
     ORDER BY 1;
END
$$;
COMMENT ON FUNCTION subbilling.eu_sales_list(date, date) IS 'reverse-charge sales per customer VAT number from the journal between two dates (inclusive), in the seller''s currency';

-- ---------------------------------------------------------------- privileges

GRANT SELECT ON subbilling.seller_settings, subbilling.tax_categories, subbilling.tax_rates,
                subbilling.exchange_rates, subbilling.vat_boxes TO subbilling_operator;
GRANT INSERT, UPDATE ON subbilling.seller_settings, subbilling.tax_categories, subbilling.tax_rates,
                subbilling.exchange_rates, subbilling.vat_boxes TO subbilling_operator;
GRANT DELETE ON subbilling.exchange_rates, subbilling.tax_rates, subbilling.vat_boxes TO subbilling_operator;

REVOKE ALL ON FUNCTION
    subbilling.vat_report(date, date),
    subbilling.eu_sales_list(date, date)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    subbilling.vat_report(date, date),
    subbilling.eu_sales_list(date, date)
    TO subbilling_operator, subbilling_reader;

REVOKE ALL ON FUNCTION
    subbilling.tax_rate_missing(text, text, date),
    subbilling_internal.exchange_rate_for(text, date),
    subbilling_internal.line_tax(boolean, text, text, text, numeric, date),
    subbilling_internal.seller_settings_validate(),
    subbilling_internal.accounts_vat_number(),
    subbilling_internal.in_seller_currency(subbilling.price, text, numeric, date),
    subbilling_internal.seller_currency(),
    subbilling_internal.check_report_dates(date, date)
    FROM PUBLIC;
-- tax_rate_at (executable by PUBLIC) raises its error through tax_rate_missing: whoever may ask
-- for a rate gets the 42704 of a missing one
GRANT EXECUTE ON FUNCTION subbilling.tax_rate_missing(text, text, date) TO PUBLIC;
