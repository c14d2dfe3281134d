
-- ============================================================================
-- SIE export: the journal as an SIE 4 file for the accounting system
-- (Fortnox, Visma, BL Administration).  Type 4I (the default) holds the
-- vouchers only, as a feeder system writes them; 4E adds the chart of
-- accounts (#KONTO), opening and closing balances (#IB/#UB) and the
-- period's result per account (#RES).  The file is CP437 ("PC8"): the
-- text is built in the database's encoding and then mapped character by
-- character onto CP437 (PostgreSQL has no CP437 encoding); characters that
-- CP437 lacks become '?'.  docs/sie.md describes the file.
-- ============================================================================

-- The 128 characters of CP437's bytes 0x80 ... 0xFF, in byte order.
CREATE FUNCTION subbilling_internal.cp437_high() RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN U&'\00C7\00FC\00E9\00E2\00E4\00E0\00E5\00E7\00EA\00EB\00E8\00EF\00EE\00EC\00C4\00C5\00C9\00E6\00C6\00F4\00F6\00F2\00FB\00F9\00FF\00D6\00DC\00A2\00A3\00A5\20A7\0192\00E1\00ED\00F3\00FA\00F1\00D1\00AA\00BA\00BF\2310\00AC\00BD\00BC\00A1\00AB\00BB\2591\2592\2593\2502\2524\2561\2562\2556\2555\2563\2551\2557\255D\255C\255B\2510\2514\2534\252C\251C\2500\253C\255E\255F\255A\2554\2569\2566\2560\2550\256C\2567\2568\2564\2565\2559\2558\2552\2553\256B\256A\2518\250C\2588\2584\258C\2590\2580\03B1\00DF\0393\03C0\03A3\03C3\00B5\03C4\03A6\0398\03A9\03B4\221E\03C6\03B5\2229\2261\00B1\2265\2264\2320\2321\00F7\2248\00B0\2219\00B7\221A\207F\00B2\25A0\00A0';
COMMENT ON FUNCTION subbilling_internal.cp437_high() IS 'internal: the characters of CP437 bytes 0x80 to 0xFF, in byte order';

-- Text as CP437 bytes: ASCII as it is; a character of CP437's upper half
-- as its byte (å 0x86, ä 0x84, ö 0x94, Å 0x8F, Ä 0x8E, Ö 0x99, é 0x82,
-- ü 0x81); anything else as '?'.  The upper half is translated onto
-- U+0080 ... U+00FF, which LATIN1 writes as the bytes 0x80 ... 0xFF.
CREATE FUNCTION subbilling_internal.cp437(t text) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT convert_to(translate(regexp_replace(t, '[^\x01-\x7F' || subbilling_internal.cp437_high() || ']', '?', 'g'),
                                subbilling_internal.cp437_high(),
                                (SELECT string_agg(chr(c), '' ORDER BY c) FROM generate_series(128, 255) AS c)),
                      'LATIN1')
$$;
COMMENT ON FUNCTION subbilling_internal.cp437(text) IS 'internal: text as CP437 bytes; characters outside CP437 become ?';

-- A field in quotes as SIE 4 writes text: a quote and a backslash inside
-- are escaped with a backslash; control characters (line breaks, tabs)
-- become spaces.
CREATE FUNCTION subbilling_internal.sie_quote(t text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT '"' || replace(replace(regexp_replace(coalesce(t, ''), '[\x01-\x1F\x7F]', ' ', 'g'), '\', '\\'), '"', '\"') || '"'
$$;
COMMENT ON FUNCTION subbilling_internal.sie_quote(text) IS 'internal: a quoted SIE field (\" and \\ escaped, control characters as spaces)';

-- An amount as SIE writes it: decimal point, no thousands separator, minus
-- sign for credit, the currency's decimals (2 for SEK).
CREATE FUNCTION subbilling_internal.sie_amount(p subbilling.price) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
RETURN amount(p)::text;
COMMENT ON FUNCTION subbilling_internal.sie_amount(subbilling.price) IS 'internal: an amount as SIE writes it (decimal point, minus for credit)';

CREATE FUNCTION subbilling.sie_export(from_date date, to_date date, kind text DEFAULT '4I') RETURNS bytea
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    cur     text;
    seller  subbilling.seller_settings;
    orgnr   text;
    hdr     text;
    body    text;
    bal     text;
    ver     text;
BEGIN
    PERFORM subbilling_internal.check_report_dates(sie_export.from_date, sie_export.to_date);
    IF kind IS NULL OR kind NOT IN ('4I', '4E') THEN
        RAISE EXCEPTION 'unknown SIE file type %', coalesce(kind, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'The types are 4I (vouchers only) and 4E (with chart of accounts and balances).';
    END IF;
    cur := subbilling_internal.seller_currency();
    SELECT * INTO seller FROM subbilling.seller_settings;
    -- a Swedish VAT number is SE + the organisation number + 01
    IF seller.vat_number ~ '^SE[0-9]{10}01$' THEN
        orgnr := substr(seller.vat_number, 3, 6) || '-' || substr(seller.vat_number, 9, 4);
    END IF;

    hdr := '#FLAGGA 0' || E'\n'
        || '#FORMAT PC8' || E'\n'
        || '#SIETYP 4' || E'\n'
        || '#PROGRAM "subbilling" '
        || subbilling_internal.sie_quote((SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'subbilling')) || E'\n'
        || '#GEN ' || to_char(current_date, 'YYYYMMDD') || E'\n'
        || '#FNAMN ' || subbilling_internal.sie_quote(seller.legal_name) || E'\n'
        || CASE WHEN orgnr IS NOT NULL THEN '#ORGNR ' || orgnr || E'\n' ELSE '' END
        || CASE WHEN kind = '4E' THEN '#RAR 0 ' || to_char(from_date, 'YYYYMMDD') || ' ' || to_char(to_date, 'YYYYMMDD') || E'\n'
                                   || '#VALUTA ' || cur || E'\n'
                ELSE '' END;

    -- the vouchers: one per journal entry booked in the period, its lines in
    -- the seller's currency (the invoice's rate, else the booking date's);
    -- what converting the lines one by one leaves over goes to the rounding
    -- account, so every #VER balances
    WITH l AS (
        SELECT e.account_id, e.id AS entry_id, l.id AS line_id, l.ledger_code,
               subbilling_internal.in_seller_currency(l.amount, cur, i.exchange_rate, e.booked_on) AS amount
          FROM subbilling.journal_entries e
          JOIN subbilling.journal_lines l ON l.account_id = e.account_id AND l.entry_id = e.id
          LEFT JOIN subbilling.invoices i ON i.account_id = e.account_id AND i.id = e.invoice_id
         WHERE e.booked_on BETWEEN sie_export.from_date AND sie_export.to_date
    ),
    r AS (
        SELECT l.account_id, l.entry_id, -sum(l.amount) AS diff FROM l
         GROUP BY l.account_id, l.entry_id HAVING minor_units(sum(l.amount)) <> 0
    ),
    t AS (
        SELECT l.account_id, l.entry_id, l.line_id, l.ledger_code, l.amount FROM l
        UNION ALL
        SELECT r.account_id, r.entry_id, NULL, ledger_code('rounding', cur), r.diff FROM r
    ),
    v AS (
        SELECT e.account_id, e.id, e.booked_on, e.created_at,
               concat_ws(' ', CASE e.kind WHEN 'invoice' THEN 'Faktura' WHEN 'credit_note' THEN 'Kreditfaktura'
                                          WHEN 'payment' THEN 'Inbetalning' WHEN 'refund' THEN 'Återbetalning'
                                          WHEN 'fee' THEN 'Påminnelseavgift' WHEN 'interest' THEN 'Dröjsmålsränta'
                                          WHEN 'write_off' THEN 'Kundförlust' WHEN 'void' THEN 'Makulering'
                                          ELSE e.kind END,
                         i.number, a.external_id, '(' || e.id || ')') AS text
          FROM subbilling.journal_entries e
          JOIN subbilling.accounts a ON a.id = e.account_id
          LEFT JOIN subbilling.invoices i ON i.account_id = e.account_id AND i.id = e.invoice_id
         WHERE e.booked_on BETWEEN sie_export.from_date AND sie_export.to_date
           AND EXISTS (SELECT FROM t WHERE t.account_id = e.account_id AND t.entry_id = e.id)
    )
    SELECT string_agg('#VER "" "" ' || to_char(v.booked_on, 'YYYYMMDD') || ' ' || subbilling_internal.sie_quote(v.text)
                      || ' ' || to_char(v.created_at, 'YYYYMMDD') || E'\n{\n'
                      || (SELECT string_agg('#TRANS ' || t.ledger_code || ' {} ' || subbilling_internal.sie_amount(t.amount),
                                            E'\n' ORDER BY t.line_id NULLS LAST)
                            FROM t WHERE t.account_id = v.account_id AND t.entry_id = v.id)
                      || E'\n}\n', '' ORDER BY v.booked_on, v.id)
      INTO ver
      FROM v;

    IF kind = '4E' THEN
        -- accounts used, balances before and at the end of the period
        -- (assets, liabilities, equity) and the period's result (revenue,
        -- expense), in the seller's currency
        WITH j AS (
            SELECT l.ledger_code, e.booked_on,
                   subbilling_internal.in_seller_currency(l.amount, cur, i.exchange_rate, e.booked_on) AS amount
              FROM subbilling.journal_entries e
              JOIN subbilling.journal_lines l ON l.account_id = e.account_id AND l.entry_id = e.id
              LEFT JOIN subbilling.invoices i ON i.account_id = e.account_id AND i.id = e.invoice_id
             WHERE e.booked_on <= sie_export.to_date
        ),
        a AS (
            SELECT la.code, la.name, la.kind,
                   coalesce((SELECT sum(j.amount) FROM j WHERE j.ledger_code = la.code AND j.booked_on < sie_export.from_date),
                            price_minor(0, cur)) AS ib,
                   coalesce((SELECT sum(j.amount) FROM j WHERE j.ledger_code = la.code), price_minor(0, cur)) AS ub,
                   coalesce((SELECT sum(j.amount) FROM j WHERE j.ledger_code = la.code AND j.booked_on >= sie_export.from_date),
                            price_minor(0, cur)) AS res
              FROM subbilling.ledger_accounts la
        )
        SELECT coalesce(string_agg('#KONTO ' || a.code || ' ' || subbilling_internal.sie_quote(a.name), E'\n' ORDER BY a.code) || E'\n', '')
               || coalesce(string_agg('#IB 0 ' || a.code || ' ' || subbilling_internal.sie_amount(a.ib), E'\n' ORDER BY a.code)
                               FILTER (WHERE a.kind IN ('asset', 'liability', 'equity')) || E'\n', '')
               || coalesce(string_agg('#UB 0 ' || a.code || ' ' || subbilling_internal.sie_amount(a.ub), E'\n' ORDER BY a.code)
                               FILTER (WHERE a.kind IN ('asset', 'liability', 'equity')) || E'\n', '')
               || coalesce(string_agg('#RES 0 ' || a.code || ' ' || subbilling_internal.sie_amount(a.res), E'\n' ORDER BY a.code)
                               FILTER (WHERE a.kind IN ('revenue', 'expense')) || E'\n', '')
          INTO bal
          FROM a;
    END IF;

    body := hdr || coalesce(bal, '') || coalesce(ver, '');
    RETURN subbilling_internal.cp437(body);
END
$$;
COMMENT ON FUNCTION subbilling.sie_export(date, date, text) IS 'the journal from from_date to to_date (inclusive) as an SIE 4 file in CP437: type 4I (vouchers, the default) or 4E (with #KONTO, #IB, #UB, #RES); every #VER balances';

REVOKE ALL ON FUNCTION subbilling_internal.cp437_high(), subbilling_internal.cp437(text),
                       subbilling_internal.sie_quote(text), subbilling_internal.sie_amount(subbilling.price),
                       subbilling.sie_export(date, date, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.sie_export(date, date, text) TO subbilling_operator;
