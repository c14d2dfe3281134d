
-- ============================================================================
-- Invoice documents: the e-invoice (Peppol BIS Billing 3.0, UBL 2.1,
-- EN 16931) and the printable invoice (HTML).  docs/einvoice.md says what
-- each field is filled from and what an account and the seller need.
--
--   seller_invoice_details     the seller's registration, address, electronic
--                              address and payment accounts (one row)
--   account_invoice_details    a customer's legal name, registration, address,
--                              electronic address, references and language
--   invoice_ubl(invoice_id)    the issued invoice as a UBL Invoice (380) or
--                              CreditNote (381)
--   invoice_html(invoice_id)   the issued invoice as a printable HTML page
--
-- Both read the invoice as issued (its lines, amounts, VAT, legal texts and
-- buyer VAT number) and the parties' details as they are when called.
-- ============================================================================

-- ---------------------------------------------------------------- identifiers

-- GS1 check digit (GLN, 13 digits): weights 3 and 1 from the right.
CREATE FUNCTION subbilling_internal.gs1_valid(digits text) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN digits ~ '^[0-9]{8,14}$'
       AND (SELECT sum(substr(reverse(digits), k, 1)::int * CASE WHEN k % 2 = 0 THEN 3 ELSE 1 END) % 10 = 0
              FROM generate_series(1, length(digits)) AS k);
COMMENT ON FUNCTION subbilling_internal.gs1_valid(text) IS 'internal: true if digits is a GS1 number (GLN) with a right check digit';

-- A Peppol electronic address (EAS scheme, identifier): the schemes of the
-- Nordic registers and GLN are checked for format and check digits, any
-- other four-digit scheme for a non-blank identifier.
CREATE FUNCTION subbilling_internal.electronic_address_valid(scheme text, id text) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT scheme ~ '^[0-9]{4}$' AND id ~ '^[A-Za-z0-9][A-Za-z0-9:._-]*$' AND length(id) <= 100
       AND CASE scheme
           WHEN '0007' THEN id ~ '^[0-9]{10}$' AND vat_number_valid('SE' || id || '01')
           WHEN '0192' THEN id ~ '^[0-9]{9}$' AND vat_number_valid('NO' || id || 'MVA')
           WHEN '0184' THEN id ~ '^[0-9]{8}$' AND vat_number_valid('DK' || id)
           WHEN '0216' THEN id ~ '^0037[0-9]{8}[A-Za-z0-9]{0,5}$' AND vat_number_valid('FI' || substr(id, 5, 8))
           WHEN '0088' THEN id ~ '^[0-9]{13}$' AND subbilling_internal.gs1_valid(id)
           WHEN '9930' THEN vat_number_valid(id) AND id LIKE 'DE%'
           ELSE true END
$$;
COMMENT ON FUNCTION subbilling_internal.electronic_address_valid(text, text) IS 'internal: true for a valid Peppol electronic address: 0007 (SE org. no.), 0192 (NO), 0184 (DK CVR), 0216 (FI OVT), 0088 (GLN) and 9930 (DE VAT) checked with their check digits, other four-digit schemes for format';

-- The organisation number in a Nordic VAT number (SE, NO, DK, FI), else NULL.
CREATE FUNCTION subbilling_internal.org_number_of_vat(vat text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN CASE WHEN vat ~ '^SE[0-9]{10}01$' THEN substr(vat, 3, 10)
            WHEN vat ~ '^NO[0-9]{9}MVA$' THEN substr(vat, 3, 9)
            WHEN vat ~ '^(DK|FI)[0-9]{8}$' THEN substr(vat, 3, 8) END;
COMMENT ON FUNCTION subbilling_internal.org_number_of_vat(text) IS 'internal: the organisation number inside a Swedish, Norwegian, Danish or Finnish VAT number';

-- An organisation number without separators; checked for the Nordic
-- countries (22023 if bad).
CREATE FUNCTION subbilling_internal.org_number(number text, country text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    n   text := upper(regexp_replace(number, '[[:space:].-]', '', 'g'));
BEGIN
    IF n IS NULL THEN
        RETURN NULL;
    END IF;
    IF n = '' OR (country = 'SE' AND NOT (n ~ '^[0-9]{10}$' AND vat_number_valid('SE' || n || '01')))
       OR (country = 'NO' AND NOT (n ~ '^[0-9]{9}$' AND vat_number_valid('NO' || n || 'MVA')))
       OR (country = 'DK' AND NOT (n ~ '^[0-9]{8}$' AND vat_number_valid('DK' || n)))
       OR (country = 'FI' AND NOT (n ~ '^[0-9]{8}$' AND vat_number_valid('FI' || n))) THEN
        RAISE EXCEPTION 'invalid organisation number "%" for %', number, country
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Swedish numbers have 10 digits, Norwegian 9, Danish (CVR) and Finnish (Y-tunnus) 8, with their check digits.';
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling_internal.org_number(text, text) IS 'internal: an organisation number without spaces, dots and hyphens, checked for SE, NO, DK and FI (22023 if bad)';

-- The electronic address a party gets when none is set: its organisation
-- number in its country's register scheme, else a German VAT number (9930).
CREATE FUNCTION subbilling_internal.default_electronic_address(country text, org_number text, vat text,
                                                              OUT scheme text, OUT id text)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN org_number IS NOT NULL AND country = 'SE' THEN '0007'
                WHEN org_number IS NOT NULL AND country = 'NO' THEN '0192'
                WHEN org_number IS NOT NULL AND country = 'DK' THEN '0184'
                WHEN org_number IS NOT NULL AND country = 'FI' THEN '0216'
                WHEN vat LIKE 'DE%' THEN '9930' END,
           CASE WHEN org_number IS NOT NULL AND country IN ('SE', 'NO', 'DK') THEN org_number
                WHEN org_number IS NOT NULL AND country = 'FI' THEN '0037' || org_number
                WHEN vat LIKE 'DE%' THEN vat END
$$;
COMMENT ON FUNCTION subbilling_internal.default_electronic_address(text, text, text) IS 'internal: the Peppol electronic address of a party without one: its organisation number (0007 SE, 0192 NO, 0184 DK, 0216 FI as 0037 + number) or a German VAT number (9930)';

-- ---------------------------------------------------------------- the seller

CREATE TABLE subbilling.seller_invoice_details (
    id                          boolean PRIMARY KEY DEFAULT true
                                CONSTRAINT seller_invoice_details_one_row CHECK (id),
    org_number                  text,
    street                      text,
    postal_code                 text,
    city                        text,
    electronic_address          text,
    electronic_address_scheme   text,
    email                       text
                                CONSTRAINT seller_invoice_details_email_format CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    phone                       text,
    bankgiro                    text
                                CONSTRAINT seller_invoice_details_bankgiro_format CHECK (bankgiro ~ '^[0-9]{3,4}-?[0-9]{4}$'),
    plusgiro                    text
                                CONSTRAINT seller_invoice_details_plusgiro_format CHECK (plusgiro ~ '^[0-9]{1,7}-?[0-9]$'),
    iban                        text
                                CONSTRAINT seller_invoice_details_iban_format CHECK (iban ~ '^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$'),
    bic                         text
                                CONSTRAINT seller_invoice_details_bic_format CHECK (bic ~ '^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$'),
    bank_account                text
                                CONSTRAINT seller_invoice_details_bank_account_format CHECK (bank_account ~ '^[0-9][0-9 .-]{3,33}$'),
    CONSTRAINT seller_invoice_details_electronic_address_pair
        CHECK ((electronic_address IS NULL) = (electronic_address_scheme IS NULL))
);
COMMENT ON TABLE subbilling.seller_invoice_details IS 'the seller on its invoice documents (one row, beside seller_settings): organisation number (default: from the VAT number), postal address, Peppol electronic address (default: the organisation number in its country''s scheme), contact, and the accounts it is paid to (bankgiro, plusgiro, IBAN and BIC, domestic bank account)';
COMMENT ON COLUMN subbilling.seller_invoice_details.electronic_address_scheme IS 'Peppol EAS code of electronic_address: 0007 SE organisation number, 0192 NO, 0184 DK CVR, 0216 FI OVT, 0088 GLN ...';
COMMENT ON COLUMN subbilling.seller_invoice_details.bank_account IS 'a domestic account number (e.g. Norway''s 11 digits), for invoices paid by bank transfer with the KID or another reference';

-- ---------------------------------------------------------------- the customers

CREATE TABLE subbilling.account_invoice_details (
    account_id                  bigint PRIMARY KEY REFERENCES subbilling.accounts (id),
    legal_name                  text,
    org_number                  text,
    street                      text,
    postal_code                 text,
    city                        text,
    electronic_address          text,
    electronic_address_scheme   text,
    buyer_reference             text,
    order_reference             text,
    contact_name                text,
    language                    text
                                CONSTRAINT account_invoice_details_language_check
                                CHECK (language IN ('sv', 'nb', 'da', 'fi', 'en')),
    updated_at                  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT account_invoice_details_electronic_address_pair
        CHECK ((electronic_address IS NULL) = (electronic_address_scheme IS NULL))
);
COMMENT ON TABLE subbilling.account_invoice_details IS 'a customer on its invoice documents: legal name (default: the account''s name), organisation number (default: from its VAT number), postal address, Peppol electronic address (default: the organisation number in its country''s scheme), buyer reference and order reference (an e-invoice needs one of them), contact, and the language of its printed invoices (sv, nb, da, fi, en; default by country)';
COMMENT ON COLUMN subbilling.account_invoice_details.buyer_reference IS 'the reference the buyer asked for (BT-10: "Er referens", a public buyer''s reference code)';
COMMENT ON COLUMN subbilling.account_invoice_details.order_reference IS 'the buyer''s purchase order number (BT-13)';

-- Details in canonical form: organisation numbers without separators and
-- checked, electronic addresses checked (22023 if bad).
CREATE FUNCTION subbilling_internal.invoice_details_validate() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    c   text;
BEGIN
    IF TG_TABLE_NAME = 'account_invoice_details' THEN
        SELECT a.country INTO c FROM subbilling.accounts a WHERE a.id = NEW.account_id;
        IF TG_OP = 'UPDATE' THEN
            NEW.updated_at := now();        -- an insert keeps its value (a restore's)
        END IF;
    ELSE
        SELECT s.country INTO c FROM subbilling.seller_settings s;
    END IF;
    NEW.org_number := subbilling_internal.org_number(NEW.org_number, c);
    NEW.electronic_address := nullif(btrim(NEW.electronic_address), '');
    NEW.electronic_address_scheme := nullif(btrim(NEW.electronic_address_scheme), '');
    IF NEW.electronic_address IS NOT NULL AND NEW.electronic_address_scheme IS NOT NULL
       AND NOT subbilling_internal.electronic_address_valid(NEW.electronic_address_scheme, NEW.electronic_address) THEN
        RAISE EXCEPTION 'invalid electronic address "%" in scheme "%"', NEW.electronic_address, NEW.electronic_address_scheme
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A Peppol electronic address is a four-digit EAS scheme and an identifier: 0007 a Swedish organisation number (10 digits), 0192 a Norwegian one (9), 0184 a Danish CVR (8), 0216 a Finnish OVT code (0037 + 8 digits), 0088 a GLN (13), each with its check digits.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling_internal.invoice_details_validate() IS 'trigger: organisation numbers without separators and checked for SE, NO, DK, FI; electronic addresses checked (22023 if bad)';
REVOKE ALL ON FUNCTION subbilling_internal.invoice_details_validate() FROM PUBLIC;

CREATE TRIGGER seller_invoice_details_validate
    BEFORE INSERT OR UPDATE ON subbilling.seller_invoice_details
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.invoice_details_validate();
CREATE TRIGGER account_invoice_details_validate
    BEFORE INSERT OR UPDATE ON subbilling.account_invoice_details
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.invoice_details_validate();

-- ---------------------------------------------------------------- the parties of one invoice

-- Everything a document prints about the invoice's two parties, with the
-- defaults applied.
CREATE FUNCTION subbilling_internal.invoice_parties(inv subbilling.invoices,
    OUT seller_country text, OUT seller_currency text, OUT seller_vat text, OUT seller_name text,
    OUT seller_org text, OUT seller_street text, OUT seller_postal_code text, OUT seller_city text,
    OUT seller_address text, OUT seller_scheme text, OUT seller_endpoint text,
    OUT seller_email text, OUT seller_phone text, OUT f_skatt boolean, OUT foretaksregisteret boolean,
    OUT bankgiro text, OUT plusgiro text, OUT iban text, OUT bic text, OUT bank_account text,
    OUT buyer_country text, OUT buyer_name text, OUT buyer_legal_name text, OUT buyer_org text,
    OUT buyer_street text, OUT buyer_postal_code text, OUT buyer_city text, OUT buyer_email text,
    OUT buyer_scheme text, OUT buyer_endpoint text, OUT buyer_reference text, OUT order_reference text,
    OUT contact_name text, OUT language text)
    LANGUAGE sql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT s.country, s.currency, s.vat_number, s.legal_name,
           coalesce(sd.org_number, subbilling_internal.org_number_of_vat(s.vat_number)),
           sd.street, sd.postal_code, sd.city, s.address,
           coalesce(sd.electronic_address_scheme, sdef.scheme), coalesce(sd.electronic_address, sdef.id),
           sd.email, sd.phone, s.f_skatt, s.foretaksregisteret,
           sd.bankgiro, sd.plusgiro, sd.iban, sd.bic, sd.bank_account,
           a.country, a.name, coalesce(ad.legal_name, a.name),
           coalesce(ad.org_number, subbilling_internal.org_number_of_vat(inv.buyer_vat_number)),
           ad.street, ad.postal_code, ad.city, a.email,
           coalesce(ad.electronic_address_scheme, bdef.scheme), coalesce(ad.electronic_address, bdef.id),
           ad.buyer_reference, ad.order_reference, ad.contact_name,
           coalesce(ad.language, CASE WHEN a.country = 'SE' THEN 'sv' WHEN a.country = 'NO' THEN 'nb'
                                      WHEN a.country = 'DK' THEN 'da' WHEN a.country = 'FI' THEN 'fi'
                                      ELSE 'en' END)
      FROM subbilling.accounts a
      LEFT JOIN subbilling.seller_settings s ON true
      LEFT JOIN subbilling.seller_invoice_details sd ON true
      LEFT JOIN subbilling.account_invoice_details ad ON ad.account_id = a.id
      LEFT JOIN LATERAL subbilling_internal.default_electronic_address(
                    s.country, coalesce(sd.org_number, subbilling_internal.org_number_of_vat(s.vat_number)),
                    s.vat_number) sdef ON true
      LEFT JOIN LATERAL subbilling_internal.default_electronic_address(
                    a.country, coalesce(ad.org_number, subbilling_internal.org_number_of_vat(inv.buyer_vat_number)),
                    inv.buyer_vat_number) bdef ON true
     WHERE a.id = inv.account_id
$$;
COMMENT ON FUNCTION subbilling_internal.invoice_parties(subbilling.invoices) IS 'internal: the seller and the buyer of an invoice as its documents print them, defaults applied (organisation numbers from VAT numbers, electronic addresses from organisation numbers, language from the country)';

-- The issued invoice with this id (42704 if none, 55000 if a draft).
CREATE FUNCTION subbilling_internal.issued_invoice(invoice_id bigint) RETURNS subbilling.invoices
    LANGUAGE plpgsql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    i   subbilling.invoices;
BEGIN
    SELECT * INTO i FROM subbilling.invoices x WHERE x.id = issued_invoice.invoice_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'invoice % does not exist', coalesce(invoice_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    IF i.status = 'draft' THEN
        RAISE EXCEPTION 'invoice % is a draft', i.id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Only issued invoices (numbered, with a payment reference) have documents.',
                  HINT = 'Finalise it with finalize_invoice().';
    END IF;
    RETURN i;
END
$$;
COMMENT ON FUNCTION subbilling_internal.issued_invoice(bigint) IS 'internal: the issued invoice with this id; 42704 if none, 55000 if it is a draft';

-- ---------------------------------------------------------------- VAT categories

-- The UNCL5305 VAT category of a line (EN 16931): from its treatment, rate
-- and product category, and whether the seller is registered for VAT.
CREATE FUNCTION subbilling_internal.vat_category_code(treatment text, rate numeric, tax_category text,
                                                     seller_registered boolean) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN NOT seller_registered AND rate = 0 THEN 'O'
            WHEN treatment = 'exempt' THEN 'E'
            WHEN treatment = 'reverse_charge' AND tax_category = 'physical_goods' THEN 'K'
            WHEN treatment = 'reverse_charge' THEN 'AE'
            WHEN treatment = 'outside_scope' THEN 'G'
            WHEN rate = 0 THEN 'Z'
            ELSE 'S' END;
COMMENT ON FUNCTION subbilling_internal.vat_category_code(text, numeric, text, boolean) IS 'internal: the EN 16931 VAT category (UNCL5305) of a line: O (seller not VAT-registered, 0 %), E (exempt), K (reverse charge, goods to an EU business), AE (reverse charge), G (outside the EU), Z (0 %), S (standard)';

-- The exemption reason (VATEX code, text) of a VAT category.
CREATE FUNCTION subbilling_internal.vat_exemption(code text, OUT reason_code text, OUT reason text)
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE WHEN code = 'AE' THEN 'VATEX-EU-AE' WHEN code = 'K' THEN 'VATEX-EU-IC'
                WHEN code = 'G' THEN 'VATEX-EU-G' WHEN code = 'O' THEN 'VATEX-EU-O' END,
           CASE WHEN code = 'AE' THEN 'Reverse charge' WHEN code = 'K' THEN 'Intra-Community supply'
                WHEN code = 'G' THEN 'Export outside the EU' WHEN code = 'O' THEN 'Not subject to VAT'
                WHEN code = 'E' THEN 'Exempt from VAT' END
$$;
COMMENT ON FUNCTION subbilling_internal.vat_exemption(text) IS 'internal: the VATEX exemption reason code and text of a VAT category (none for S and Z)';

-- The lines of an invoice as documents print them: in document sign (a
-- credit note's amounts positive), with the VAT category.
CREATE FUNCTION subbilling_internal.document_lines(inv subbilling.invoices, seller_registered boolean)
    RETURNS TABLE (ord bigint, description text, plan_code text, period daterange, quantity numeric,
                   price numeric, net subbilling.price, tax subbilling.price, rate numeric, vat_code text)
    LANGUAGE sql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT row_number() OVER (ORDER BY l.id), l.description, p.code, l.period,
           q.qty * sign(minor_units(l.net) * s.s),
           -- the net unit price: at least two decimals, at most six
           round(pr0.price, greatest(2, scale(trim_scale(pr0.price)))),
           l.net * s.s, l.tax * s.s, l.tax_rate,
           subbilling_internal.vat_category_code(l.tax_treatment, l.tax_rate, coalesce(pr.tax_category, 'standard'),
                                                 seller_registered)
      FROM subbilling.invoice_lines l
      CROSS JOIN (SELECT CASE WHEN inv.kind = 'credit_note' THEN -1 ELSE 1 END AS s) s
      CROSS JOIN LATERAL (SELECT CASE WHEN l.quantity IS NULL OR l.quantity = 0 THEN 1::numeric
                                      ELSE abs(l.quantity) END AS qty) q
      CROSS JOIN LATERAL (SELECT round(CASE WHEN minor_units(l.net) = 0 THEN coalesce(abs(minor_units(l.unit_price)), 0)
                                            ELSE abs(minor_units(l.net)) / q.qty END
                                       / power(10::numeric, currency_exponent(inv.currency)), 6) AS price) pr0
      LEFT JOIN subbilling.plans p ON p.id = l.plan_id
      LEFT JOIN subbilling.products pr ON pr.id = p.product_id
     WHERE l.account_id = inv.account_id AND l.invoice_id = inv.id
$$;
COMMENT ON FUNCTION subbilling_internal.document_lines(subbilling.invoices, boolean) IS 'internal: an invoice''s lines as its documents print them: amounts in document sign (a credit note''s positive), quantity signed like the amount, net unit price, VAT category';

-- ---------------------------------------------------------------- UBL

CREATE FUNCTION subbilling_internal.ubl_amount(amount subbilling.price) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
RETURN (minor_units(amount)::numeric / power(10::numeric, currency_exponent(currency(amount))))::numeric(30, 2)::text;
COMMENT ON FUNCTION subbilling_internal.ubl_amount(subbilling.price) IS 'internal: an amount as a UBL decimal with two decimals';

-- A party (seller or buyer) of the document.
CREATE FUNCTION subbilling_internal.ubl_party(scheme text, endpoint text, name text, street text, city text,
                                              postal_code text, country text, vat text, tax_mark text,
                                              legal_name text, org text, org_scheme text, contact text, email text)
    RETURNS xml
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT xmlelement(name "cac:Party",
        xmlelement(name "cbc:EndpointID", xmlattributes(scheme AS "schemeID"), endpoint),
        xmlelement(name "cac:PartyName", xmlelement(name "cbc:Name", name)),
        xmlelement(name "cac:PostalAddress",
            CASE WHEN street IS NOT NULL THEN xmlelement(name "cbc:StreetName", street) END,
            CASE WHEN city IS NOT NULL THEN xmlelement(name "cbc:CityName", city) END,
            CASE WHEN postal_code IS NOT NULL THEN xmlelement(name "cbc:PostalZone", postal_code) END,
            xmlelement(name "cac:Country", xmlelement(name "cbc:IdentificationCode", country))),
        CASE WHEN vat IS NOT NULL THEN
            xmlelement(name "cac:PartyTaxScheme", xmlelement(name "cbc:CompanyID", vat),
                       xmlelement(name "cac:TaxScheme", xmlelement(name "cbc:ID", 'VAT'))) END,
        CASE WHEN tax_mark IS NOT NULL THEN
            xmlelement(name "cac:PartyTaxScheme", xmlelement(name "cbc:CompanyID", tax_mark),
                       xmlelement(name "cac:TaxScheme", xmlelement(name "cbc:ID", 'TAX'))) END,
        xmlelement(name "cac:PartyLegalEntity",
            xmlelement(name "cbc:RegistrationName", legal_name),
            CASE WHEN org IS NOT NULL AND org_scheme IS NOT NULL THEN
                     xmlelement(name "cbc:CompanyID", xmlattributes(org_scheme AS "schemeID"), org)
                 WHEN org IS NOT NULL THEN xmlelement(name "cbc:CompanyID", org) END),
        CASE WHEN coalesce(contact, email) IS NOT NULL THEN
            xmlelement(name "cac:Contact",
                CASE WHEN contact IS NOT NULL THEN xmlelement(name "cbc:Name", contact) END,
                CASE WHEN email IS NOT NULL THEN xmlelement(name "cbc:ElectronicMail", email) END) END)
$$;
COMMENT ON FUNCTION subbilling_internal.ubl_party(text, text, text, text, text, text, text, text, text, text, text, text, text, text) IS 'internal: a UBL cac:Party (endpoint, name, address, VAT and tax marks, legal entity, contact)';

-- The ICD scheme of a Nordic organisation number as a legal registration.
CREATE FUNCTION subbilling_internal.org_scheme(country text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN CASE WHEN country = 'SE' THEN '0007' WHEN country = 'NO' THEN '0192' WHEN country = 'DK' THEN '0184' END;
COMMENT ON FUNCTION subbilling_internal.org_scheme(text) IS 'internal: the ICD scheme of an organisation number in a country''s register (0007 SE, 0192 NO, 0184 DK)';

-- A VAT category element (cac:TaxCategory or cac:ClassifiedTaxCategory).
CREATE FUNCTION subbilling_internal.ubl_tax_category(classified boolean, code text, rate numeric, with_reason boolean)
    RETURNS xml
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE WHEN classified THEN
               xmlelement(name "cac:ClassifiedTaxCategory", xmlelement(name "cbc:ID", code),
                   CASE WHEN code <> 'O' THEN xmlelement(name "cbc:Percent", trim_scale(rate)::text) END,
                   xmlelement(name "cac:TaxScheme", xmlelement(name "cbc:ID", 'VAT')))
           ELSE
               xmlelement(name "cac:TaxCategory", xmlelement(name "cbc:ID", code),
                   CASE WHEN code <> 'O' THEN xmlelement(name "cbc:Percent", trim_scale(rate)::text) END,
                   CASE WHEN with_reason AND x.reason_code IS NOT NULL THEN xmlelement(name "cbc:TaxExemptionReasonCode", x.reason_code) END,
                   CASE WHEN with_reason AND x.reason IS NOT NULL THEN xmlelement(name "cbc:TaxExemptionReason", x.reason) END,
                   xmlelement(name "cac:TaxScheme", xmlelement(name "cbc:ID", 'VAT')))
           END
      FROM subbilling_internal.vat_exemption(code) x
$$;
COMMENT ON FUNCTION subbilling_internal.ubl_tax_category(boolean, text, numeric, boolean) IS 'internal: a UBL VAT category element: code, rate (none for O), exemption reason';

-- The document.
CREATE FUNCTION subbilling_internal.ubl_document(inv subbilling.invoices) RETURNS xml
    LANGUAGE plpgsql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    p       record;
    credit  boolean := inv.kind = 'credit_note';
    s       integer := CASE WHEN inv.kind = 'credit_note' THEN -1 ELSE 1 END;
    orig    subbilling.invoices;
    cur     text := inv.currency;
    ns      text;
    doc     xml;
    lines   xml;
    subtot  xml;
    period  daterange;
    has_k   boolean;
    pay     xml;
    foreign_ boolean;
BEGIN
    p := subbilling_internal.invoice_parties(inv);
    IF p.seller_name IS NULL THEN
        RAISE EXCEPTION 'the seller is not set'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'An e-invoice names the seller: its legal name, country and VAT number.',
                  HINT = 'Insert the seller into subbilling.seller_settings (docs/taxes.md).';
    END IF;
    IF p.seller_endpoint IS NULL THEN
        RAISE EXCEPTION 'the seller has no electronic address'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Peppol BIS Billing 3.0 requires the seller''s electronic address (BT-34).',
                  HINT = 'Set electronic_address and electronic_address_scheme, or a Nordic org_number, in subbilling.seller_invoice_details.';
    END IF;
    IF p.buyer_endpoint IS NULL THEN
        RAISE EXCEPTION 'account % has no electronic address', inv.account_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Peppol BIS Billing 3.0 requires the buyer''s electronic address (BT-49).',
                  HINT = 'Set electronic_address and electronic_address_scheme (or a Nordic org_number) in subbilling.account_invoice_details.';
    END IF;
    IF p.buyer_reference IS NULL AND p.order_reference IS NULL THEN
        RAISE EXCEPTION 'account % has no buyer reference or order reference', inv.account_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Peppol BIS Billing 3.0 requires a buyer reference (BT-10) or an order reference (BT-13).',
                  HINT = 'Set buyer_reference or order_reference in subbilling.account_invoice_details.';
    END IF;
    IF NOT credit AND coalesce(p.bankgiro, p.plusgiro, p.iban, p.bank_account) IS NULL THEN
        RAISE EXCEPTION 'the seller has no payment account'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'An invoice says where to pay: the seller''s bankgiro, plusgiro, IBAN or bank account (BT-84).',
                  HINT = 'Set bankgiro, plusgiro, iban or bank_account in subbilling.seller_invoice_details.';
    END IF;
    IF p.seller_vat IS NULL AND minor_units(inv.tax) <> 0 THEN
        RAISE EXCEPTION 'the seller has no VAT number'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Invoice %s charges VAT (%s); an e-invoice that charges VAT names the seller''s VAT number (BT-31).', inv.number, inv.tax),
                  HINT = 'Set vat_number in subbilling.seller_settings.';
    END IF;
    IF credit THEN
        SELECT * INTO orig FROM subbilling.invoices x
         WHERE x.account_id = inv.account_id AND x.id = inv.credits_invoice_id;
    END IF;
    foreign_ := p.seller_currency IS NOT NULL AND p.seller_currency <> cur AND inv.tax_seller_currency IS NOT NULL;

    SELECT CASE WHEN min(lower(l.period)) IS NOT NULL THEN daterange(min(lower(l.period)), max(upper(l.period))) END,
           coalesce(bool_or(l.vat_code = 'K'), false)
      INTO period, has_k
      FROM subbilling_internal.document_lines(inv, p.seller_vat IS NOT NULL) l;

    SELECT xmlagg(xmlelement(name "cac:TaxSubtotal",
               xmlelement(name "cbc:TaxableAmount", xmlattributes(cur AS "currencyID"), subbilling_internal.ubl_amount(g.net)),
               xmlelement(name "cbc:TaxAmount", xmlattributes(cur AS "currencyID"), subbilling_internal.ubl_amount(g.tax)),
               subbilling_internal.ubl_tax_category(false, g.vat_code, g.rate, true))
             ORDER BY g.vat_code, g.rate DESC)
      INTO subtot
      FROM (SELECT l.vat_code, l.rate, sum(l.net) AS net, sum(l.tax) AS tax
              FROM subbilling_internal.document_lines(inv, p.seller_vat IS NOT NULL) l
             GROUP BY l.vat_code, l.rate) g;

    SELECT xmlagg(xmlelement(name "cac:InvoiceLine",
               xmlelement(name "cbc:ID", l.ord),
               xmlelement(name "cbc:InvoicedQuantity", xmlattributes('C62' AS "unitCode"), trim_scale(l.quantity)::text),
               xmlelement(name "cbc:LineExtensionAmount", xmlattributes(cur AS "currencyID"), subbilling_internal.ubl_amount(l.net)),
               CASE WHEN l.period IS NOT NULL AND NOT isempty(l.period) THEN
                   xmlelement(name "cac:InvoicePeriod",
                       xmlelement(name "cbc:StartDate", lower(l.period)),
                       xmlelement(name "cbc:EndDate", upper(l.period) - 1)) END,
               xmlelement(name "cac:Item",
                   xmlelement(name "cbc:Name", left(l.description, 200)),
                   CASE WHEN l.plan_code IS NOT NULL THEN
                       xmlelement(name "cac:SellersItemIdentification", xmlelement(name "cbc:ID", l.plan_code)) END,
                   subbilling_internal.ubl_tax_category(true, l.vat_code, l.rate, false)),
               xmlelement(name "cac:Price",
                   xmlelement(name "cbc:PriceAmount", xmlattributes(cur AS "currencyID"), l.price::text)))
             ORDER BY l.ord)
      INTO lines
      FROM subbilling_internal.document_lines(inv, p.seller_vat IS NOT NULL) l;

    IF NOT credit THEN
        pay := xmlelement(name "cac:PaymentMeans",
            xmlelement(name "cbc:PaymentMeansCode", CASE WHEN p.seller_country = 'DK' THEN '31' ELSE '30' END),
            xmlelement(name "cbc:PaymentID", inv.reference),
            xmlelement(name "cac:PayeeFinancialAccount",
                CASE WHEN p.bankgiro IS NOT NULL AND (cur = 'SEK' OR coalesce(p.iban, p.bank_account) IS NULL) THEN
                         xmlconcat(xmlelement(name "cbc:ID", replace(p.bankgiro, '-', '')),
                                   xmlelement(name "cac:FinancialInstitutionBranch", xmlelement(name "cbc:ID", 'SE:BANKGIRO')))
                     WHEN p.plusgiro IS NOT NULL AND (cur = 'SEK' OR coalesce(p.iban, p.bank_account) IS NULL) THEN
                         xmlconcat(xmlelement(name "cbc:ID", replace(p.plusgiro, '-', '')),
                                   xmlelement(name "cac:FinancialInstitutionBranch", xmlelement(name "cbc:ID", 'SE:PLUSGIRO')))
                     WHEN p.iban IS NOT NULL THEN
                         xmlconcat(xmlelement(name "cbc:ID", p.iban),
                                   CASE WHEN p.bic IS NOT NULL THEN
                                       xmlelement(name "cac:FinancialInstitutionBranch", xmlelement(name "cbc:ID", p.bic)) END)
                     ELSE xmlelement(name "cbc:ID", regexp_replace(p.bank_account, '[^0-9]', '', 'g')) END));
    END IF;

    ns := CASE WHEN credit THEN 'urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2'
               ELSE 'urn:oasis:names:specification:ubl:schema:xsd:Invoice-2' END;

    doc := xmlelement(name "Invoice",
        xmlattributes(ns AS xmlns,
                      'urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2' AS "xmlns:cac",
                      'urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2' AS "xmlns:cbc"),
        xmlelement(name "cbc:CustomizationID", 'urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0'),
        xmlelement(name "cbc:ProfileID", 'urn:fdc:peppol.eu:2017:poacc:billing:01:1.0'),
        xmlelement(name "cbc:ID", inv.number),
        xmlelement(name "cbc:IssueDate", inv.issue_date),
        CASE WHEN NOT credit THEN xmlelement(name "cbc:DueDate", inv.due_date) END,
        CASE WHEN credit THEN xmlelement(name "cbc:CreditNoteTypeCode", '381')
             ELSE xmlelement(name "cbc:InvoiceTypeCode", '380') END,
        CASE WHEN credit AND inv.reason IS NOT NULL THEN xmlelement(name "cbc:Note", inv.reason) END,
        xmlelement(name "cbc:DocumentCurrencyCode", cur),
        CASE WHEN foreign_ THEN xmlelement(name "cbc:TaxCurrencyCode", p.seller_currency) END,
        CASE WHEN p.buyer_reference IS NOT NULL THEN xmlelement(name "cbc:BuyerReference", p.buyer_reference) END,
        CASE WHEN period IS NOT NULL AND NOT isempty(period) THEN
            xmlelement(name "cac:InvoicePeriod",
                xmlelement(name "cbc:StartDate", lower(period)),
                xmlelement(name "cbc:EndDate", upper(period) - 1)) END,
        CASE WHEN p.order_reference IS NOT NULL THEN
            xmlelement(name "cac:OrderReference", xmlelement(name "cbc:ID", p.order_reference)) END,
        CASE WHEN credit AND orig.number IS NOT NULL THEN
            xmlelement(name "cac:BillingReference",
                xmlelement(name "cac:InvoiceDocumentReference",
                    xmlelement(name "cbc:ID", orig.number),
                    xmlelement(name "cbc:IssueDate", orig.issue_date))) END,
        xmlelement(name "cac:AccountingSupplierParty",
            subbilling_internal.ubl_party(p.seller_scheme, p.seller_endpoint, p.seller_name,
                coalesce(p.seller_street, p.seller_address), p.seller_city, p.seller_postal_code, p.seller_country,
                p.seller_vat,
                CASE WHEN p.seller_country = 'SE' AND p.f_skatt THEN 'Godkänd för F-skatt'
                     WHEN p.seller_country = 'NO' AND p.foretaksregisteret THEN 'Foretaksregisteret' END,
                p.seller_name, p.seller_org, subbilling_internal.org_scheme(p.seller_country), NULL, p.seller_email)),
        xmlelement(name "cac:AccountingCustomerParty",
            subbilling_internal.ubl_party(p.buyer_scheme, p.buyer_endpoint, p.buyer_name,
                p.buyer_street, p.buyer_city, p.buyer_postal_code, p.buyer_country,
                inv.buyer_vat_number, NULL,
                p.buyer_legal_name, p.buyer_org, subbilling_internal.org_scheme(p.buyer_country),
                p.contact_name, p.buyer_email)),
        CASE WHEN has_k THEN
            xmlelement(name "cac:Delivery",
                CASE WHEN period IS NULL THEN xmlelement(name "cbc:ActualDeliveryDate", inv.issue_date) END,
                xmlelement(name "cac:DeliveryLocation",
                    xmlelement(name "cac:Address",
                        CASE WHEN p.buyer_street IS NOT NULL THEN xmlelement(name "cbc:StreetName", p.buyer_street) END,
                        CASE WHEN p.buyer_city IS NOT NULL THEN xmlelement(name "cbc:CityName", p.buyer_city) END,
                        CASE WHEN p.buyer_postal_code IS NOT NULL THEN xmlelement(name "cbc:PostalZone", p.buyer_postal_code) END,
                        xmlelement(name "cac:Country", xmlelement(name "cbc:IdentificationCode", p.buyer_country))))) END,
        pay,
        xmlelement(name "cac:TaxTotal",
            xmlelement(name "cbc:TaxAmount", xmlattributes(cur AS "currencyID"), subbilling_internal.ubl_amount(inv.tax * s)),
            subtot),
        CASE WHEN foreign_ THEN
            xmlelement(name "cac:TaxTotal",
                xmlelement(name "cbc:TaxAmount", xmlattributes(p.seller_currency AS "currencyID"),
                           subbilling_internal.ubl_amount(inv.tax_seller_currency * s))) END,
        xmlelement(name "cac:LegalMonetaryTotal",
            xmlelement(name "cbc:LineExtensionAmount", xmlattributes(cur AS "currencyID"), subbilling_internal.ubl_amount(inv.net * s)),
            xmlelement(name "cbc:TaxExclusiveAmount", xmlattributes(cur AS "currencyID"), subbilling_internal.ubl_amount(inv.net * s)),
            xmlelement(name "cbc:TaxInclusiveAmount", xmlattributes(cur AS "currencyID"), subbilling_internal.ubl_amount(inv.total * s)),
            xmlelement(name "cbc:PayableAmount", xmlattributes(cur AS "currencyID"), subbilling_internal.ubl_amount(inv.total * s))),
        lines);
    IF credit THEN
        -- the same document as a credit note: root CreditNote, lines CreditNoteLine with
        -- CreditedQuantity (element names only: text content has its < and > escaped)
        RETURN replace(replace(replace(replace(replace(replace(doc::text,
                   '<Invoice ', '<CreditNote '), '</Invoice>', '</CreditNote>'),
                   '<cac:InvoiceLine>', '<cac:CreditNoteLine>'), '</cac:InvoiceLine>', '</cac:CreditNoteLine>'),
                   '<cbc:InvoicedQuantity ', '<cbc:CreditedQuantity '), '</cbc:InvoicedQuantity>', '</cbc:CreditedQuantity>')::xml;
    END IF;
    RETURN doc;
END
$$;
COMMENT ON FUNCTION subbilling_internal.ubl_document(subbilling.invoices) IS 'internal: the UBL 2.1 Invoice or CreditNote (Peppol BIS Billing 3.0) of an issued invoice; 55000 naming what the seller or the account lacks';

CREATE FUNCTION subbilling.invoice_ubl(invoice_id bigint) RETURNS xml
    LANGUAGE sql STABLE STRICT SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT subbilling_internal.ubl_document(subbilling_internal.issued_invoice(invoice_id))
$$;
COMMENT ON FUNCTION subbilling.invoice_ubl(bigint) IS 'the issued invoice as a Peppol BIS Billing 3.0 document (UBL 2.1 Invoice 380, or CreditNote 381 referencing the original); 42704 if no such invoice, 55000 for a draft or naming what the seller or the account lacks (electronic address, buyer or order reference, payment account)';

-- ---------------------------------------------------------------- HTML

CREATE FUNCTION subbilling_internal.html_escape(t text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN replace(replace(replace(replace(replace(coalesce(t, ''), '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), '''', '&#39;');
COMMENT ON FUNCTION subbilling_internal.html_escape(text) IS 'internal: text escaped for HTML content and attribute values (& < > " '' ); NULL as empty';

-- A number as a language writes it: groups of three (space, or . in Danish,
-- , in English) and the decimal comma (point in English).
CREATE FUNCTION subbilling_internal.html_number(x numeric, decimals integer, lang text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN x < 0 THEN '−' ELSE '' END
           || replace(to_char(trunc(abs(r)), 'FM999,999,999,999,999,990'), ',',
                      CASE WHEN lang = 'en' THEN ',' WHEN lang = 'da' THEN '.' ELSE ' ' END)
           || CASE WHEN scale(r) > 0 THEN (CASE WHEN lang = 'en' THEN '.' ELSE ',' END) || split_part(r::text, '.', 2)
                   ELSE '' END
      FROM (SELECT CASE WHEN decimals IS NULL THEN trim_scale(abs(x)) ELSE round(abs(x), decimals) END AS r) v
     WHERE x IS NOT NULL
$$;
COMMENT ON FUNCTION subbilling_internal.html_number(numeric, integer, text) IS 'internal: a number formatted for a language (sv, nb, da, fi: decimal comma; en: point), decimals NULL = as many as it has; NULL for NULL';

CREATE FUNCTION subbilling_internal.html_money(amount subbilling.price, lang text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
RETURN subbilling_internal.html_number(minor_units(amount)::numeric / power(10::numeric, currency_exponent(currency(amount))),
                                       currency_exponent(currency(amount)), lang) || ' ' || currency(amount);
COMMENT ON FUNCTION subbilling_internal.html_money(subbilling.price, text) IS 'internal: an amount with its currency, formatted for a language';

-- The words of the printed invoice in sv, nb, da, fi and en.
CREATE FUNCTION subbilling_internal.document_label(lang text, key text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN ('{
 "invoice":        ["Faktura", "Faktura", "Faktura", "Lasku", "Invoice"],
 "credit_note":    ["Kreditfaktura", "Kreditnota", "Kreditnota", "Hyvityslasku", "Credit note"],
 "number":         ["Nummer", "Nummer", "Nummer", "Numero", "Number"],
 "issue_date":     ["Fakturadatum", "Fakturadato", "Fakturadato", "Laskun päivämäärä", "Invoice date"],
 "due_date":       ["Förfallodatum", "Forfallsdato", "Forfaldsdato", "Eräpäivä", "Due date"],
 "reference":      ["OCR-nummer", "KID", "Betalings-ID", "Viitenumero", "Payment reference"],
 "buyer_reference":["Er referens", "Deres referanse", "Deres reference", "Viitteenne", "Your reference"],
 "order_reference":["Ordernummer", "Bestillingsnummer", "Ordrenummer", "Tilausnumero", "Order number"],
 "customer_number":["Kundnummer", "Kundenummer", "Kundenummer", "Asiakasnumero", "Customer number"],
 "customer":       ["Kund", "Kunde", "Kunde", "Asiakas", "Customer"],
 "seller":         ["Säljare", "Selger", "Sælger", "Myyjä", "Seller"],
 "description":    ["Beskrivning", "Beskrivelse", "Beskrivelse", "Kuvaus", "Description"],
 "period":         ["Period", "Periode", "Periode", "Jakso", "Period"],
 "quantity":       ["Antal", "Antall", "Antal", "Määrä", "Quantity"],
 "unit_price":     ["À-pris", "Enhetspris", "Enhedspris", "Yksikköhinta", "Unit price"],
 "vat_rate":       ["Moms %", "MVA %", "Moms %", "ALV %", "VAT %"],
 "amount":         ["Belopp", "Beløp", "Beløb", "Summa", "Amount"],
 "net_total":      ["Summa exkl. moms", "Sum ekskl. mva.", "I alt ekskl. moms", "Veroton yhteensä", "Total excl. VAT"],
 "vat":            ["Moms", "MVA", "Moms", "ALV", "VAT"],
 "taxable":        ["Underlag", "Grunnlag", "Grundlag", "Veron peruste", "Taxable amount"],
 "vat_breakdown":  ["Momsspecifikation", "MVA-spesifikasjon", "Momsspecifikation", "ALV-erittely", "VAT breakdown"],
 "total":          ["Att betala", "Å betale", "At betale", "Maksettava", "Amount due"],
 "credit_total":   ["Att återfå", "Til gode", "Til gode", "Hyvitys", "Amount credited"],
 "credits":        ["Avser faktura", "Gjelder faktura", "Vedrører faktura", "Koskee laskua", "Credits invoice"],
 "reason":         ["Orsak", "Årsak", "Årsag", "Syy", "Reason"],
 "payment":        ["Betalning", "Betaling", "Betaling", "Maksutiedot", "Payment"],
 "account_number": ["Kontonummer", "Kontonummer", "Kontonummer", "Tilinumero", "Account number"],
 "org_number":     ["Org.nr", "Org.nr.", "CVR-nr.", "Y-tunnus", "Reg. no."],
 "vat_number":     ["Momsreg.nr", "MVA-nr.", "Momsnr.", "ALV-numero", "VAT no."],
 "vat_in":         ["Moms i", "MVA i", "Moms i", "ALV valuutassa", "VAT in"],
 "exchange_rate":  ["kurs", "kurs", "kurs", "kurssi", "rate"],
 "email":          ["E-post", "E-post", "E-mail", "Sähköposti", "Email"],
 "phone":          ["Telefon", "Telefon", "Telefon", "Puhelin", "Phone"]
}'::jsonb -> key ->> (CASE lang WHEN 'sv' THEN 0 WHEN 'nb' THEN 1 WHEN 'da' THEN 2 WHEN 'fi' THEN 3 ELSE 4 END));
COMMENT ON FUNCTION subbilling_internal.document_label(text, text) IS 'internal: a word of the printed invoice in sv, nb, da, fi or en (anything else: en)';

-- The printed invoice.
CREATE FUNCTION subbilling_internal.html_document(inv subbilling.invoices) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    p       record;
    credit  boolean := inv.kind = 'credit_note';
    s       integer := CASE WHEN inv.kind = 'credit_note' THEN -1 ELSE 1 END;
    lang    text;
    orig    subbilling.invoices;
    ext     text;
    lines   text;
    vat     text;
    pay     text;
    title   text;
BEGIN
    p := subbilling_internal.invoice_parties(inv);
    IF p.seller_name IS NULL THEN
        RAISE EXCEPTION 'the seller is not set'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'An invoice names the seller: its legal name, address and VAT number.',
                  HINT = 'Insert the seller into subbilling.seller_settings (docs/taxes.md).';
    END IF;
    lang := p.language;
    IF credit THEN
        SELECT * INTO orig FROM subbilling.invoices x
         WHERE x.account_id = inv.account_id AND x.id = inv.credits_invoice_id;
    END IF;
    SELECT a.external_id INTO ext FROM subbilling.accounts a WHERE a.id = inv.account_id;
    title := subbilling_internal.document_label(lang, CASE WHEN credit THEN 'credit_note' ELSE 'invoice' END);

    SELECT string_agg(format('<tr><td>%s</td><td class="nw">%s</td><td class="num">%s</td><td class="num">%s</td><td class="num">%s</td><td class="num">%s</td></tr>',
                             subbilling_internal.html_escape(l.description),
                             CASE WHEN l.period IS NULL OR isempty(l.period) THEN ''
                                  ELSE format('%s – %s', lower(l.period), upper(l.period) - 1) END,
                             subbilling_internal.html_number(l.quantity, NULL, lang),
                             subbilling_internal.html_number(l.price, CASE WHEN l.price = round(l.price, 2) THEN 2 END, lang),
                             subbilling_internal.html_number(l.rate, NULL, lang),
                             subbilling_internal.html_money(l.net, lang)), E'\n' ORDER BY l.ord)
      INTO lines
      FROM subbilling_internal.document_lines(inv, p.seller_vat IS NOT NULL) l;

    SELECT string_agg(format('<tr><td>%s %%</td><td class="num">%s</td><td class="num">%s</td></tr>',
                             subbilling_internal.html_number(g.rate, NULL, lang),
                             subbilling_internal.html_money(g.net, lang), subbilling_internal.html_money(g.tax, lang)),
                      E'\n' ORDER BY g.rate DESC)
      INTO vat
      FROM (SELECT l.rate, sum(l.net) AS net, sum(l.tax) AS tax
              FROM subbilling_internal.document_lines(inv, p.seller_vat IS NOT NULL) l GROUP BY l.rate) g;

    IF NOT credit THEN
        pay := concat_ws(E'\n',
            format('<tr><th>%s</th><td><strong>%s</strong></td></tr>', subbilling_internal.document_label(lang, 'reference'),
                   subbilling_internal.html_escape(inv.reference)),
            format('<tr><th>%s</th><td><strong>%s</strong></td></tr>', subbilling_internal.document_label(lang, 'total'),
                   subbilling_internal.html_money(inv.total, lang)),
            format('<tr><th>%s</th><td><strong>%s</strong></td></tr>', subbilling_internal.document_label(lang, 'due_date'), inv.due_date),
            CASE WHEN p.bankgiro IS NOT NULL THEN format('<tr><th>Bankgiro</th><td>%s</td></tr>', subbilling_internal.html_escape(p.bankgiro)) END,
            CASE WHEN p.plusgiro IS NOT NULL THEN format('<tr><th>Plusgiro</th><td>%s</td></tr>', subbilling_internal.html_escape(p.plusgiro)) END,
            CASE WHEN p.bank_account IS NOT NULL THEN format('<tr><th>%s</th><td>%s</td></tr>',
                     subbilling_internal.document_label(lang, 'account_number'), subbilling_internal.html_escape(p.bank_account)) END,
            CASE WHEN p.iban IS NOT NULL THEN format('<tr><th>IBAN</th><td>%s</td></tr>', subbilling_internal.html_escape(p.iban)) END,
            CASE WHEN p.bic IS NOT NULL THEN format('<tr><th>BIC</th><td>%s</td></tr>', subbilling_internal.html_escape(p.bic)) END);
    END IF;

    RETURN concat_ws(E'\n',
        '<!DOCTYPE html>',
        format('<html lang="%s">', CASE WHEN lang = 'nb' THEN 'nb' ELSE lang END),
        '<head>',
        '<meta charset="utf-8">',
        format('<title>%s %s</title>', title, subbilling_internal.html_escape(inv.number)),
        '<style>',
        '@page { size: A4; margin: 15mm; }',
        'body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10pt; color: #000; background: #fff; margin: 0 auto; max-width: 180mm; }',
        'h1 { font-size: 20pt; margin: 0 0 4mm 0; }',
        'table { border-collapse: collapse; width: 100%; margin: 3mm 0; }',
        'th, td { text-align: left; vertical-align: top; padding: 1mm 2mm; }',
        'table.lines th, table.lines td { border-bottom: 0.3mm solid #888; }',
        'td.num, th.num { text-align: right; white-space: nowrap; }',
        'td.nw { white-space: nowrap; }',
        '.parties { display: flex; justify-content: space-between; gap: 10mm; }',
        '.parties > div { flex: 1; }',
        '.totals { width: 50%; margin-left: 50%; }',
        '.totals tr.due td, .totals tr.due th { font-size: 12pt; font-weight: bold; border-top: 0.5mm solid #000; }',
        '.note { font-weight: bold; }',
        'footer { margin-top: 8mm; border-top: 0.3mm solid #888; padding-top: 2mm; font-size: 8.5pt; }',
        '</style>',
        '</head>',
        '<body>',
        format('<h1>%s</h1>', title),
        '<div class="parties">',
        format('<div class="seller"><h2>%s</h2><p>%s<br>%s</p></div>', subbilling_internal.document_label(lang, 'seller'),
               subbilling_internal.html_escape(p.seller_name),
               CASE WHEN p.seller_street IS NOT NULL
                    THEN subbilling_internal.html_escape(p.seller_street) || '<br>'
                         || subbilling_internal.html_escape(concat_ws(' ', p.seller_postal_code, p.seller_city)) || '<br>'
                         || subbilling_internal.html_escape(p.seller_country)
                    ELSE subbilling_internal.html_escape(p.seller_address) END),
        format('<div class="buyer"><h2>%s</h2><p>%s<br>%s%s</p>%s%s</div>', subbilling_internal.document_label(lang, 'customer'),
               subbilling_internal.html_escape(p.buyer_legal_name),
               CASE WHEN p.contact_name IS NOT NULL THEN subbilling_internal.html_escape(p.contact_name) || '<br>' ELSE '' END,
               concat_ws('<br>', subbilling_internal.html_escape(p.buyer_street),
                         subbilling_internal.html_escape(concat_ws(' ', p.buyer_postal_code, p.buyer_city)),
                         subbilling_internal.html_escape(p.buyer_country)),
               CASE WHEN p.buyer_org IS NOT NULL THEN format('<p>%s %s</p>', subbilling_internal.document_label(lang, 'org_number'),
                                                             subbilling_internal.html_escape(p.buyer_org)) ELSE '' END,
               CASE WHEN inv.buyer_vat_number IS NOT NULL THEN format('<p>%s %s</p>', subbilling_internal.document_label(lang, 'vat_number'),
                                                                      subbilling_internal.html_escape(inv.buyer_vat_number)) ELSE '' END),
        '</div>',
        '<table class="meta">',
        format('<tr><th>%s</th><td>%s</td></tr>', subbilling_internal.document_label(lang, 'number'), subbilling_internal.html_escape(inv.number)),
        format('<tr><th>%s</th><td>%s</td></tr>', subbilling_internal.document_label(lang, 'issue_date'), inv.issue_date),
        CASE WHEN NOT credit THEN format('<tr><th>%s</th><td>%s</td></tr>', subbilling_internal.document_label(lang, 'due_date'), inv.due_date) END,
        CASE WHEN NOT credit THEN format('<tr><th>%s</th><td>%s</td></tr>', subbilling_internal.document_label(lang, 'reference'),
                                         subbilling_internal.html_escape(inv.reference)) END,
        CASE WHEN credit AND orig.number IS NOT NULL THEN
            format('<tr><th>%s</th><td>%s (%s)</td></tr>', subbilling_internal.document_label(lang, 'credits'),
                   subbilling_internal.html_escape(orig.number), orig.issue_date) END,
        CASE WHEN credit AND inv.reason IS NOT NULL THEN
            format('<tr><th>%s</th><td>%s</td></tr>', subbilling_internal.document_label(lang, 'reason'), subbilling_internal.html_escape(inv.reason)) END,
        format('<tr><th>%s</th><td>%s</td></tr>', subbilling_internal.document_label(lang, 'customer_number'),
               subbilling_internal.html_escape(coalesce(ext, inv.account_id::text))),
        CASE WHEN p.buyer_reference IS NOT NULL THEN format('<tr><th>%s</th><td>%s</td></tr>',
            subbilling_internal.document_label(lang, 'buyer_reference'), subbilling_internal.html_escape(p.buyer_reference)) END,
        CASE WHEN p.order_reference IS NOT NULL THEN format('<tr><th>%s</th><td>%s</td></tr>',
            subbilling_internal.document_label(lang, 'order_reference'), subbilling_internal.html_escape(p.order_reference)) END,
        '</table>',
        '<table class="lines">',
        format('<thead><tr><th>%s</th><th>%s</th><th class="num">%s</th><th class="num">%s</th><th class="num">%s</th><th class="num">%s</th></tr></thead>',
               subbilling_internal.document_label(lang, 'description'), subbilling_internal.document_label(lang, 'period'),
               subbilling_internal.document_label(lang, 'quantity'), subbilling_internal.document_label(lang, 'unit_price'),
               subbilling_internal.document_label(lang, 'vat_rate'), subbilling_internal.document_label(lang, 'amount')),
        '<tbody>', lines, '</tbody>',
        '</table>',
        format('<h2>%s</h2>', subbilling_internal.document_label(lang, 'vat_breakdown')),
        '<table class="vat">',
        format('<thead><tr><th>%s</th><th class="num">%s</th><th class="num">%s</th></tr></thead>',
               subbilling_internal.document_label(lang, 'vat_rate'), subbilling_internal.document_label(lang, 'taxable'),
               subbilling_internal.document_label(lang, 'vat')),
        '<tbody>', vat, '</tbody>',
        '</table>',
        '<table class="totals">',
        format('<tr><th>%s</th><td class="num">%s</td></tr>', subbilling_internal.document_label(lang, 'net_total'),
               subbilling_internal.html_money(inv.net * s, lang)),
        format('<tr><th>%s</th><td class="num">%s</td></tr>', subbilling_internal.document_label(lang, 'vat'),
               subbilling_internal.html_money(inv.tax * s, lang)),
        CASE WHEN inv.tax_seller_currency IS NOT NULL AND currency(inv.tax_seller_currency) <> inv.currency THEN
            format('<tr><th>%s %s (%s %s)</th><td class="num">%s</td></tr>', subbilling_internal.document_label(lang, 'vat_in'),
                   currency(inv.tax_seller_currency), subbilling_internal.document_label(lang, 'exchange_rate'),
                   subbilling_internal.html_number(inv.exchange_rate, NULL, lang),
                   subbilling_internal.html_money(inv.tax_seller_currency * s, lang)) END,
        format('<tr class="due"><th>%s</th><td class="num">%s</td></tr>',
               subbilling_internal.document_label(lang, CASE WHEN credit THEN 'credit_total' ELSE 'total' END),
               subbilling_internal.html_money(inv.total * s, lang)),
        '</table>',
        (SELECT string_agg(format('<p class="note">%s</p>', subbilling_internal.html_escape(n)), E'\n')
           FROM unnest(inv.tax_notes) AS n),
        CASE WHEN NOT credit THEN
            format('<h2>%s</h2>', subbilling_internal.document_label(lang, 'payment')) || E'\n<table class="payment">\n' || pay || E'\n</table>' END,
        '<footer>',
        format('<p>%s · %s</p>', subbilling_internal.html_escape(p.seller_name),
               subbilling_internal.html_escape(coalesce(concat_ws(', ', p.seller_street, concat_ws(' ', p.seller_postal_code, p.seller_city)),
                                                        p.seller_address))),
        format('<p>%s</p>', concat_ws(' · ',
            CASE WHEN p.seller_org IS NOT NULL THEN subbilling_internal.document_label(lang, 'org_number') || ' ' || subbilling_internal.html_escape(p.seller_org) END,
            CASE WHEN p.seller_vat IS NOT NULL THEN subbilling_internal.document_label(lang, 'vat_number') || ' ' || subbilling_internal.html_escape(p.seller_vat) END,
            CASE WHEN p.seller_country = 'SE' AND p.f_skatt THEN 'Godkänd för F-skatt' END,
            CASE WHEN p.seller_country = 'NO' AND p.foretaksregisteret THEN 'Foretaksregisteret' END,
            CASE WHEN p.seller_email IS NOT NULL THEN subbilling_internal.document_label(lang, 'email') || ' ' || subbilling_internal.html_escape(p.seller_email) END,
            CASE WHEN p.seller_phone IS NOT NULL THEN subbilling_internal.document_label(lang, 'phone') || ' ' || subbilling_internal.html_escape(p.seller_phone) END)),
        '</footer>',
        '</body>',
        '</html>');
END
$$;
COMMENT ON FUNCTION subbilling_internal.html_document(subbilling.invoices) IS 'internal: the printable HTML page of an issued invoice or credit note in the account''s language';

CREATE FUNCTION subbilling.invoice_html(invoice_id bigint) RETURNS text
    LANGUAGE sql STABLE STRICT SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT subbilling_internal.html_document(subbilling_internal.issued_invoice(invoice_id))
$$;
COMMENT ON FUNCTION subbilling.invoice_html(bigint) IS 'the issued invoice or credit note as a printable HTML page (A4, every text escaped) in the account''s language (sv, nb, da, fi, en), with everything an invoice must state; 42704 if no such invoice, 55000 for a draft or without a seller';

-- ---------------------------------------------------------------- privileges

-- The documents hold customer data: the operator fetches them (and keeps the
-- details they are made from), the reader does not.
GRANT SELECT, INSERT, UPDATE, DELETE ON subbilling.account_invoice_details TO subbilling_operator;
GRANT SELECT, INSERT, UPDATE ON subbilling.seller_invoice_details TO subbilling_operator;
REVOKE ALL ON FUNCTION subbilling.invoice_ubl(bigint), subbilling.invoice_html(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.invoice_ubl(bigint), subbilling.invoice_html(bigint) TO subbilling_operator;
REVOKE ALL ON FUNCTION
    subbilling_internal.gs1_valid(text),
    subbilling_internal.electronic_address_valid(text, text),
    subbilling_internal.org_number_of_vat(text),
    subbilling_internal.org_number(text, text),
    subbilling_internal.default_electronic_address(text, text, text),
    subbilling_internal.invoice_parties(subbilling.invoices),
    subbilling_internal.issued_invoice(bigint),
    subbilling_internal.vat_category_code(text, numeric, text, boolean),
    subbilling_internal.vat_exemption(text),
    subbilling_internal.document_lines(subbilling.invoices, boolean),
    subbilling_internal.ubl_amount(subbilling.price),
    subbilling_internal.ubl_party(text, text, text, text, text, text, text, text, text, text, text, text, text, text),
    subbilling_internal.org_scheme(text),
    subbilling_internal.ubl_tax_category(boolean, text, numeric, boolean),
    subbilling_internal.ubl_document(subbilling.invoices),
    subbilling_internal.html_escape(text),
    subbilling_internal.html_number(numeric, integer, text),
    subbilling_internal.html_money(subbilling.price, text),
    subbilling_internal.document_label(text, text),
    subbilling_internal.html_document(subbilling.invoices)
    FROM PUBLIC;
