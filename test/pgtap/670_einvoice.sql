-- E-invoices and printed invoices: invoice_ubl (Peppol BIS Billing 3.0, UBL
-- 2.1) and invoice_html over the documents of test/pgtap/670_fixture.psql:
-- the EN 16931 arithmetic (BR-CO-10 to BR-CO-17, exactly, by XPath), the VAT
-- categories (S, Z, AE, K, G), parties, references and payment means, the
-- credit note's reference to its invoice, the Norwegian seller, the errors
-- naming what is missing, privileges, and the HTML page (escaping, legal
-- texts, languages).  test/einvoice.sh validates the same documents against
-- the UBL 2.1 schema and renders the pages with Chromium.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
SET LOCAL subbilling.notify = off;

SELECT plan(120);

\ir 670_fixture.psql

-- XPath with the UBL namespaces
CREATE FUNCTION pg_temp.x(path text, doc xml) RETURNS text[]
    LANGUAGE sql IMMUTABLE
RETURN (SELECT array_agg(v::text) FROM unnest(xpath(path, doc, ARRAY[
            ARRAY['inv', 'urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'],
            ARRAY['cn', 'urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2'],
            ARRAY['cac', 'urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2'],
            ARRAY['cbc', 'urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2']])) AS v);
CREATE FUNCTION pg_temp.x1(path text, doc xml) RETURNS text
    LANGUAGE sql IMMUTABLE RETURN (pg_temp.x(path, doc))[1];
CREATE FUNCTION pg_temp.num(path text, doc xml) RETURNS numeric
    LANGUAGE sql IMMUTABLE RETURN coalesce((SELECT sum(v::numeric) FROM unnest(pg_temp.x(path, doc)) AS v), 0);

-- The EN 16931 arithmetic of a document, each rule exactly (amounts of two
-- decimals; VAT of a category and rate = its taxable amount times its rate,
-- rounded half away from zero to the cent): the rules it breaks, '{}' if none.
CREATE FUNCTION pg_temp.br_co(doc xml) RETURNS text[]
    LANGUAGE sql IMMUTABLE
AS $$
    WITH d AS (
        SELECT CASE WHEN pg_temp.x1('local-name(/*)', doc) = 'CreditNote' THEN 'CreditNoteLine' ELSE 'InvoiceLine' END AS line,
               pg_temp.x1('/*/cbc:DocumentCurrencyCode/text()', doc) AS cur
    ), t AS (
        SELECT pg_temp.num('/*/cac:' || d.line || '/cbc:LineExtensionAmount/text()', doc) AS lines_sum,
               pg_temp.num('/*/cac:LegalMonetaryTotal/cbc:LineExtensionAmount/text()', doc) AS line_ext,
               pg_temp.num('/*/cac:AllowanceCharge[cbc:ChargeIndicator="false"]/cbc:Amount/text()', doc) AS allowances,
               pg_temp.num('/*/cac:AllowanceCharge[cbc:ChargeIndicator="true"]/cbc:Amount/text()', doc) AS charges,
               pg_temp.num('/*/cac:LegalMonetaryTotal/cbc:AllowanceTotalAmount/text()', doc) AS allowance_total,
               pg_temp.num('/*/cac:LegalMonetaryTotal/cbc:ChargeTotalAmount/text()', doc) AS charge_total,
               pg_temp.num('/*/cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount/text()', doc) AS tax_excl,
               pg_temp.num('/*/cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount/text()', doc) AS tax_incl,
               pg_temp.num('/*/cac:LegalMonetaryTotal/cbc:PrepaidAmount/text()', doc) AS prepaid,
               pg_temp.num('/*/cac:LegalMonetaryTotal/cbc:PayableRoundingAmount/text()', doc) AS rounding,
               pg_temp.num('/*/cac:LegalMonetaryTotal/cbc:PayableAmount/text()', doc) AS payable,
               pg_temp.num('/*/cac:TaxTotal/cbc:TaxAmount[@currencyID="' || d.cur || '"]/text()', doc) AS tax_total,
               pg_temp.num('/*/cac:TaxTotal/cac:TaxSubtotal/cbc:TaxAmount/text()', doc) AS tax_subtotals,
               d.line
          FROM d
    ), sub AS (
        SELECT (pg_temp.x('/*/cbc:TaxableAmount/text()', s))[1]::numeric AS taxable,
               (pg_temp.x('/*/cbc:TaxAmount/text()', s))[1]::numeric AS tax,
               coalesce((pg_temp.x('/*/cac:TaxCategory/cbc:Percent/text()', s))[1]::numeric, 0) AS rate,
               (pg_temp.x('/*/cac:TaxCategory/cbc:ID/text()', s))[1] AS code
          FROM unnest(pg_temp.x('/*/cac:TaxTotal/cac:TaxSubtotal', doc)) AS s0, LATERAL (SELECT s0::xml AS s) s1
    ), lines AS (
        SELECT (pg_temp.x('/*/cbc:LineExtensionAmount/text()', l))[1]::numeric AS amount,
               coalesce((pg_temp.x('/*/cac:Item/cac:ClassifiedTaxCategory/cbc:Percent/text()', l))[1]::numeric, 0) AS rate,
               (pg_temp.x('/*/cac:Item/cac:ClassifiedTaxCategory/cbc:ID/text()', l))[1] AS code
          FROM t, unnest(pg_temp.x('/*/cac:' || t.line, doc)) AS l0, LATERAL (SELECT l0::xml AS l) l1
    )
    SELECT array_remove(ARRAY[
        CASE WHEN t.lines_sum <> t.line_ext THEN 'BR-CO-10' END,
        CASE WHEN t.allowances <> t.allowance_total THEN 'BR-CO-11' END,
        CASE WHEN t.charges <> t.charge_total THEN 'BR-CO-12' END,
        CASE WHEN t.tax_excl <> t.line_ext - t.allowance_total + t.charge_total THEN 'BR-CO-13' END,
        CASE WHEN t.tax_total <> t.tax_subtotals THEN 'BR-CO-14' END,
        CASE WHEN t.tax_incl <> t.tax_excl + t.tax_total THEN 'BR-CO-15' END,
        CASE WHEN t.payable <> t.tax_incl - t.prepaid + t.rounding THEN 'BR-CO-16' END,
        CASE WHEN EXISTS (SELECT FROM sub WHERE sub.tax <> round(sub.taxable * sub.rate / 100, 2)) THEN 'BR-CO-17' END,
        CASE WHEN EXISTS (SELECT FROM sub WHERE sub.taxable <> (SELECT coalesce(sum(l.amount), 0) FROM lines l
                                                                 WHERE l.code = sub.code AND l.rate = sub.rate))
                  OR EXISTS (SELECT FROM lines l WHERE NOT EXISTS (SELECT FROM sub WHERE sub.code = l.code AND sub.rate = l.rate))
             THEN 'BR-x-08 (taxable amount per category and rate = its lines)' END,
        CASE WHEN EXISTS (SELECT FROM unnest(pg_temp.x('//*[@currencyID]/text()', doc)) AS a WHERE a !~ '^-?[0-9]+\.[0-9]{2}$'
                                                                                             AND a NOT IN (SELECT unnest(pg_temp.x('//cbc:PriceAmount/text()', doc))))
             THEN 'BR-DEC (two decimals)' END], NULL)
      FROM t
$$;

CREATE TEMP TABLE docs AS
SELECT a.external_id AS ext, i.id, i.kind, i.number, i.reference, i.total, i.tax, i.tax_seller_currency,
       invoice_ubl(i.id) AS doc
  FROM invoices i JOIN accounts a ON a.id = i.account_id
 WHERE a.external_id IN ('se_two', 'de_rc', 'de_goods', 'no_export', 'se_zero', 'se_multi');
CREATE FUNCTION pg_temp.d(ext text, kind text DEFAULT 'invoice') RETURNS xml
    LANGUAGE sql STABLE RETURN (SELECT doc FROM docs WHERE docs.ext = d.ext AND docs.kind = d.kind);

-- ---------------------------------------------------------------- every document
SELECT is((SELECT count(*) FROM docs), 7::bigint, 'seven documents: six invoices and a credit note');
SELECT ok(bool_and(xml_is_well_formed_document(doc::text)), 'every document is a well-formed XML document') FROM docs;
SELECT is(array_agg(ext || ':' || kind || ':' || array_to_string(pg_temp.br_co(doc), ',') ORDER BY ext, kind),
          array_agg(ext || ':' || kind || ':' ORDER BY ext, kind),
          'BR-CO-10 to BR-CO-17, taxable amount per category, two decimals: exact in every document') FROM docs;
SELECT is(array_agg(DISTINCT pg_temp.x1('/*/cbc:CustomizationID/text()', doc)),
          '{urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0}', 'CustomizationID of BIS Billing 3.0') FROM docs;
SELECT is(array_agg(DISTINCT pg_temp.x1('/*/cbc:ProfileID/text()', doc)),
          '{urn:fdc:peppol.eu:2017:poacc:billing:01:1.0}', 'ProfileID of BIS Billing 3.0') FROM docs;
SELECT is(array_agg(pg_temp.x1('/*/cbc:ID/text()', doc) ORDER BY id), array_agg(number ORDER BY id), 'cbc:ID is the invoice number') FROM docs;
SELECT is(array_agg(pg_temp.x1('/*/cac:LegalMonetaryTotal/cbc:PayableAmount/text()', doc)::numeric ORDER BY id),
          array_agg(abs(minor_units(total)) / 100.0 ORDER BY id), 'payable amount = the invoice''s total (a credit note''s positive)') FROM docs;
SELECT is(array_agg(pg_temp.x1('/*/cac:AccountingSupplierParty/cac:Party/cbc:EndpointID/@schemeID', doc)
                    || ':' || pg_temp.x1('/*/cac:AccountingSupplierParty/cac:Party/cbc:EndpointID/text()', doc)),
          array_fill('0007:5566778899'::text, ARRAY[7]), 'the seller''s electronic address: its organisation number (0007), from its VAT number') FROM docs;
SELECT ok(bool_and(pg_temp.x('/*/cbc:BuyerReference|/*/cac:OrderReference/cbc:ID', doc) IS NOT NULL),
          'every document has a buyer reference or an order reference') FROM docs;
SELECT is(array_agg(DISTINCT pg_temp.x1('/*/cac:AccountingSupplierParty/cac:Party/cac:PartyTaxScheme[cac:TaxScheme/cbc:ID="TAX"]/cbc:CompanyID/text()', doc)),
          '{Godkänd för F-skatt}', 'the Swedish seller''s F-skatt mark (PartyTaxScheme TAX)') FROM docs;
SELECT is(array_agg(DISTINCT pg_temp.x1('/*/cac:AccountingSupplierParty/cac:Party/cac:PartyTaxScheme[cac:TaxScheme/cbc:ID="VAT"]/cbc:CompanyID/text()', doc)),
          '{SE556677889901}', 'the seller''s VAT number') FROM docs;
SELECT ok(bool_and(pg_temp.x('//*[not(node())]', doc) IS NULL), 'no empty elements (PEPPOL-EN16931-R008)') FROM docs;

-- ---------------------------------------------------------------- domestic, two VAT rates
SELECT is(pg_temp.x1('local-name(/*)', pg_temp.d('se_two')) || ' ' || pg_temp.x1('/*/cbc:InvoiceTypeCode/text()', pg_temp.d('se_two')),
          'Invoice 380', 'an invoice is an Invoice of type 380');
SELECT is(pg_temp.x('/*/cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:ID/text()', pg_temp.d('se_two'))
          || pg_temp.x('/*/cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:Percent/text()', pg_temp.d('se_two')),
          '{S,S,25,12}', 'se_two: VAT subtotals S 25 % and S 12 %');
SELECT is(pg_temp.x('/*/cac:TaxTotal/cac:TaxSubtotal/cbc:TaxAmount/text()', pg_temp.d('se_two')), '{149.25,41.88}',
          'se_two: 597.00 at 25 % = 149.25, 349.00 at 12 % = 41.88');
SELECT is(pg_temp.x1('/*/cac:TaxTotal/cbc:TaxAmount/text()', pg_temp.d('se_two')), '191.13', 'se_two: VAT 191.13');
SELECT is(pg_temp.x1('/*/cac:AccountingCustomerParty/cac:Party/cbc:EndpointID/@schemeID', pg_temp.d('se_two'))
          || ':' || pg_temp.x1('/*/cac:AccountingCustomerParty/cac:Party/cbc:EndpointID/text()', pg_temp.d('se_two')),
          '0007:2021000001', 'se_two: the buyer''s electronic address from its organisation number (given as 202100-0001)');
SELECT is(pg_temp.x1('/*/cac:AccountingCustomerParty/cac:Party/cac:PartyLegalEntity/cbc:CompanyID/text()', pg_temp.d('se_two')),
          '2021000001', 'se_two: the buyer''s legal registration');
SELECT is(pg_temp.x1('/*/cbc:BuyerReference/text()', pg_temp.d('se_two')), 'KOM-4711', 'se_two: buyer reference');
SELECT is(pg_temp.x1('/*/cac:AccountingCustomerParty/cac:Party/cac:Contact/cbc:Name/text()', pg_temp.d('se_two')), 'Eva Ek',
          'se_two: the buyer''s contact');
SELECT is(pg_temp.x1('/*/cac:PaymentMeans/cbc:PaymentID/text()', pg_temp.d('se_two')),
          (SELECT reference FROM docs WHERE ext = 'se_two' AND kind = 'invoice'), 'se_two: PaymentID is the OCR reference');
SELECT ok(ocr_valid(pg_temp.x1('/*/cac:PaymentMeans/cbc:PaymentID/text()', pg_temp.d('se_two'))), 'se_two: ... a valid OCR number');
SELECT is(pg_temp.x('/*/cac:PaymentMeans/cbc:PaymentMeansCode/text()|/*/cac:PaymentMeans/cac:PayeeFinancialAccount/cbc:ID/text()|/*/cac:PaymentMeans/cac:PayeeFinancialAccount/cac:FinancialInstitutionBranch/cbc:ID/text()',
                    pg_temp.d('se_two')), '{30,50501055,SE:BANKGIRO}', 'se_two: credit transfer to the seller''s bankgiro');
SELECT is(pg_temp.x('/*/cac:InvoicePeriod/*/text()', pg_temp.d('se_two')), '{2026-03-02,2026-04-01}', 'se_two: invoice period');
SELECT is(pg_temp.x('/*/cac:InvoiceLine[1]/cac:InvoicePeriod/*/text()', pg_temp.d('se_two')), '{2026-03-02,2026-04-01}',
          'se_two: line period (last day inclusive)');
SELECT is(pg_temp.x('/*/cac:InvoiceLine[1]/cbc:InvoicedQuantity/text()|/*/cac:InvoiceLine[1]/cac:Price/cbc:PriceAmount/text()|/*/cac:InvoiceLine[1]/cac:Item/cac:SellersItemIdentification/cbc:ID/text()',
                    pg_temp.d('se_two')), '{3,e_team,199.00}', 'se_two: quantity 3, the plan code, unit price 199');
SELECT is(pg_temp.x1('/*/cbc:DueDate/text()', pg_temp.d('se_two')), '2026-04-01', 'se_two: due date');
SELECT is(pg_temp.x1('/*/cac:InvoiceLine[1]/cac:Item/cbc:Name/text()', pg_temp.d('se_two')),
          'Team &lt;plan&gt; &amp; "more" 2026-03-02 – 2026-04-01', 'a line''s text is escaped in the XML');
SELECT is(pg_temp.x('/*/cbc:TaxCurrencyCode', pg_temp.d('se_two')), NULL, 'a document in the seller''s currency has no TaxCurrencyCode');

-- ---------------------------------------------------------------- credit note
SELECT is(pg_temp.x1('local-name(/*)', pg_temp.d('se_two', 'credit_note')) || ' ' || pg_temp.x1('/*/cbc:CreditNoteTypeCode/text()', pg_temp.d('se_two', 'credit_note')),
          'CreditNote 381', 'a credit note is a CreditNote of type 381');
SELECT is(pg_temp.x1('/*/cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID/text()', pg_temp.d('se_two', 'credit_note')),
          (SELECT number FROM docs WHERE ext = 'se_two' AND kind = 'invoice'), 'the credit note references the invoice''s number');
SELECT is(pg_temp.x1('/*/cac:BillingReference/cac:InvoiceDocumentReference/cbc:IssueDate/text()', pg_temp.d('se_two', 'credit_note')),
          '2026-03-02', '... and its issue date');
SELECT is(pg_temp.x('/*/cac:TaxTotal/cac:TaxSubtotal/cbc:TaxAmount/text()|/*/cac:LegalMonetaryTotal/cbc:PayableAmount/text()', pg_temp.d('se_two', 'credit_note')),
          '{149.25,41.88,1137.13}', 'the credit note''s amounts are the invoice''s, positive');
SELECT is(pg_temp.x('/*/cac:CreditNoteLine/cbc:CreditedQuantity/text()', pg_temp.d('se_two', 'credit_note')), '{3,1}',
          'credit note lines: CreditNoteLine with CreditedQuantity');
SELECT is(pg_temp.x('/*/cac:PaymentMeans|/*/cbc:DueDate|/*/cac:InvoiceLine', pg_temp.d('se_two', 'credit_note')), NULL,
          'a credit note asks for no payment and has no invoice elements');
SELECT is(pg_temp.x1('/*/cbc:Note/text()', pg_temp.d('se_two', 'credit_note')), 'Ordered by mistake', 'the credit note''s reason');

-- ---------------------------------------------------------------- reverse charge (AE), foreign currency
SELECT is(pg_temp.x('/*/cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/*[not(self::cac:TaxScheme)]/text()', pg_temp.d('de_rc')),
          '{AE,0,VATEX-EU-AE,"Reverse charge"}', 'de_rc: VAT category AE at 0 % with its exemption reason code and text');
SELECT is(pg_temp.x1('/*/cac:InvoiceLine/cac:Item/cac:ClassifiedTaxCategory/cbc:ID/text()', pg_temp.d('de_rc')), 'AE', 'de_rc: the line is AE');
SELECT is(pg_temp.x1('/*/cac:AccountingCustomerParty/cac:Party/cac:PartyTaxScheme/cbc:CompanyID/text()', pg_temp.d('de_rc')),
          'DE136695976', 'de_rc: the buyer''s VAT number');
SELECT is(pg_temp.x1('/*/cac:AccountingCustomerParty/cac:Party/cbc:EndpointID/@schemeID', pg_temp.d('de_rc'))
          || ':' || pg_temp.x1('/*/cac:AccountingCustomerParty/cac:Party/cbc:EndpointID/text()', pg_temp.d('de_rc')),
          '9930:DE136695976', 'de_rc: a German buyer is addressed by its VAT number (9930)');
SELECT is(pg_temp.x1('/*/cac:OrderReference/cbc:ID/text()', pg_temp.d('de_rc')), 'PO-2026-17', 'de_rc: order reference');
SELECT is(pg_temp.x1('/*/cbc:TaxCurrencyCode/text()', pg_temp.d('de_rc')), 'SEK', 'de_rc: a euro invoice states its VAT accounting currency SEK');
SELECT is(pg_temp.x('/*/cac:TaxTotal[2]/cbc:TaxAmount/@currencyID|/*/cac:TaxTotal[2]/cbc:TaxAmount/text()', pg_temp.d('de_rc')),
          '{SEK,0.00}', '... and a second TaxTotal in SEK without subtotals');
SELECT is(pg_temp.x('/*/cac:TaxTotal[2]/cac:TaxSubtotal', pg_temp.d('de_rc')), NULL, '... (no subtotals)');
SELECT is(pg_temp.x('/*/cac:PaymentMeans/cac:PayeeFinancialAccount//cbc:ID/text()', pg_temp.d('de_rc')),
          '{SE4550000000058398257466,ESSESESS}', 'de_rc: a euro invoice is paid to the IBAN, with the BIC');

-- ---------------------------------------------------------------- intra-Community supply of goods (K)
SELECT is(pg_temp.x('/*/cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:TaxExemptionReasonCode/text()|/*/cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:ID/text()', pg_temp.d('de_goods')),
          '{K,VATEX-EU-IC}', 'de_goods: goods to an EU business are K (VATEX-EU-IC)');
SELECT is(pg_temp.x1('/*/cac:Delivery/cac:DeliveryLocation/cac:Address/cac:Country/cbc:IdentificationCode/text()', pg_temp.d('de_goods')),
          'DE', 'de_goods: the deliver-to country (BR-IC-12)');

-- ---------------------------------------------------------------- export (G), KID
SELECT is(pg_temp.x('/*/cac:TaxTotal[1]/cac:TaxSubtotal/cac:TaxCategory/*[not(self::cac:TaxScheme)]/text()', pg_temp.d('no_export')),
          '{G,0,VATEX-EU-G,"Export outside the EU"}', 'no_export: outside the EU is G with its exemption reason');
SELECT ok(kid_valid(pg_temp.x1('/*/cac:PaymentMeans/cbc:PaymentID/text()', pg_temp.d('no_export'))), 'no_export: PaymentID is a valid KID');
SELECT is(pg_temp.x1('/*/cac:AccountingCustomerParty/cac:Party/cbc:EndpointID/@schemeID', pg_temp.d('no_export'))
          || ':' || pg_temp.x1('/*/cac:AccountingCustomerParty/cac:Party/cbc:EndpointID/text()', pg_temp.d('no_export')),
          '0192:988077917', 'no_export: the Norwegian buyer''s electronic address from its VAT number (0192)');
SELECT is(pg_temp.x('/*/cac:TaxTotal/cbc:TaxAmount/@currencyID', pg_temp.d('no_export')), '{NOK,SEK}', 'no_export: VAT in NOK and in SEK');

-- ---------------------------------------------------------------- zero-rated (Z)
SELECT is(pg_temp.x('/*/cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:ID/text()|/*/cac:TaxTotal/cac:TaxSubtotal/cbc:TaxableAmount/text()', pg_temp.d('se_zero')),
          '{199.00,S,120.00,Z}', 'se_zero: the zero-rated line is Z beside S');
SELECT is(pg_temp.x('/*/cac:TaxTotal/cac:TaxSubtotal[cac:TaxCategory/cbc:ID="Z"]/cbc:TaxAmount/text()|/*/cac:TaxTotal/cac:TaxSubtotal[cac:TaxCategory/cbc:ID="Z"]/cac:TaxCategory/cbc:Percent/text()', pg_temp.d('se_zero')),
          '{0.00,0}', 'se_zero: Z at 0 %, no VAT, no exemption reason');
SELECT is(pg_temp.x('/*/cac:TaxTotal/cac:TaxSubtotal[cac:TaxCategory/cbc:ID="Z"]/cac:TaxCategory/cbc:TaxExemptionReason', pg_temp.d('se_zero')), NULL,
          'se_zero: ... (no exemption reason)');
SELECT is(pg_temp.x1('/*/cac:AccountingCustomerParty/cac:Party/cbc:EndpointID/text()', pg_temp.d('se_zero')), '5560000001',
          'se_zero: the electronic address from the buyer''s VAT number');

-- ---------------------------------------------------------------- several periods, discounts
SELECT is(cardinality(pg_temp.x('/*/cac:InvoiceLine', pg_temp.d('se_multi'))), 14, 'se_multi: 14 lines over four months');
SELECT is(pg_temp.x('/*/cac:InvoicePeriod/*/text()', pg_temp.d('se_multi')), '{2025-12-01,2026-03-31}', 'se_multi: the invoice period spans the lines');
SELECT is(pg_temp.x('/*/cac:InvoiceLine[3]/cbc:InvoicedQuantity/text()|/*/cac:InvoiceLine[3]/cbc:LineExtensionAmount/text()|/*/cac:InvoiceLine[3]/cac:Price/cbc:PriceAmount/text()',
                    pg_temp.d('se_multi')), '{-1,-59.70,59.70}', 'se_multi: a discount is a negative quantity at a positive price (BR-27)');
SELECT is(pg_temp.x('/*/cac:InvoiceLine[2]/cbc:LineExtensionAmount/text()|/*/cac:InvoiceLine[2]/cac:Price/cbc:PriceAmount/text()',
                    pg_temp.d('se_multi')), '{292.71,292.71}', 'se_multi: a prorated line''s price is its amount per unit');
SELECT ok(NOT EXISTS (SELECT FROM unnest(pg_temp.x('//cac:Price/cbc:PriceAmount/text()', doc)) AS p WHERE p::numeric < 0),
          'no negative price in any document') FROM docs WHERE ext = 'se_multi';
SELECT is(pg_temp.x('/*/cac:TaxTotal/cac:TaxSubtotal/cbc:TaxableAmount/text()|/*/cac:TaxTotal/cac:TaxSubtotal/cbc:TaxAmount/text()', pg_temp.d('se_multi')),
          '{2208.90,552.23,1240.64,148.88}', 'se_multi: 2208.90 x 25 % = 552.225 -> 552.23; 1240.64 x 12 % = 148.8768 -> 148.88');
SELECT is(pg_temp.x1('/*/cac:AccountingCustomerParty/cac:Party/cbc:EndpointID/@schemeID', pg_temp.d('se_multi'))
          || ':' || pg_temp.x1('/*/cac:AccountingCustomerParty/cac:Party/cbc:EndpointID/text()', pg_temp.d('se_multi')),
          '0088:7300010000001', 'se_multi: an explicit electronic address (GLN)');

-- ---------------------------------------------------------------- the check itself can fail
SELECT is(pg_temp.br_co(replace(pg_temp.d('se_two')::text, '<cbc:PayableAmount currencyID="SEK">1137.13', '<cbc:PayableAmount currencyID="SEK">1137.14')::xml),
          '{BR-CO-16}', 'the arithmetic check finds a payable amount off by 0.01');
SELECT is(pg_temp.br_co(replace(pg_temp.d('se_two')::text, '<cbc:TaxAmount currencyID="SEK">41.88</cbc:TaxAmount>', '<cbc:TaxAmount currencyID="SEK">41.89</cbc:TaxAmount>')::xml),
          '{BR-CO-14,BR-CO-17}', '... and a VAT subtotal off by 0.01');

-- ---------------------------------------------------------------- VAT categories
SELECT is(ARRAY[subbilling_internal.vat_category_code('domestic', 25, 'standard', true),
                subbilling_internal.vat_category_code('domestic', 0, 'zero_rated', true),
                subbilling_internal.vat_category_code('oss', 25.5, 'digital_service', true),
                subbilling_internal.vat_category_code('exempt', 0, 'exempt', true),
                subbilling_internal.vat_category_code('reverse_charge', 0, 'standard', true),
                subbilling_internal.vat_category_code('reverse_charge', 0, 'physical_goods', true),
                subbilling_internal.vat_category_code('outside_scope', 0, 'standard', true),
                subbilling_internal.vat_category_code('domestic', 0, 'standard', false),
                subbilling_internal.vat_category_code('domestic', 25, 'standard', false)],
          '{S,Z,S,E,AE,K,G,O,S}', 'VAT categories: S, Z, S (OSS), E, AE, K, G, O for a seller without a VAT number at 0 % (S at 25 %)');
SELECT is(subbilling_internal.ubl_tax_category(false, 'E', 0, true)::text,
          '<cac:TaxCategory><cbc:ID>E</cbc:ID><cbc:Percent>0</cbc:Percent><cbc:TaxExemptionReason>Exempt from VAT</cbc:TaxExemptionReason><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory>',
          'E carries its exemption reason (BR-E-10)');
SELECT is(subbilling_internal.ubl_tax_category(false, 'O', 0, true)::text,
          '<cac:TaxCategory><cbc:ID>O</cbc:ID><cbc:TaxExemptionReasonCode>VATEX-EU-O</cbc:TaxExemptionReasonCode><cbc:TaxExemptionReason>Not subject to VAT</cbc:TaxExemptionReason><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory>',
          'O has no rate and its exemption reason');

-- ---------------------------------------------------------------- what is missing
SELECT throws_ok(format('SELECT invoice_ubl(%s)', pg_temp.doc('se_bare')), '55000',
                 format('account %s has no electronic address', pg_temp.acct('se_bare')), 'a buyer without an electronic address: 55000 naming it');
INSERT INTO account_invoice_details (account_id, electronic_address, electronic_address_scheme)
VALUES (pg_temp.acct('se_bare'), '7300010000001', '0088');
SELECT throws_ok(format('SELECT invoice_ubl(%s)', pg_temp.doc('se_bare')), '55000',
                 format('account %s has no buyer reference or order reference', pg_temp.acct('se_bare')), 'a buyer without a reference: 55000 naming it');
UPDATE account_invoice_details SET buyer_reference = 'Anna' WHERE account_id = pg_temp.acct('se_bare');
SELECT lives_ok(format('SELECT invoice_ubl(%s)', pg_temp.doc('se_bare')), '... with both, the document is made');
SAVEPOINT s;
UPDATE seller_invoice_details SET bankgiro = NULL, iban = NULL, bic = NULL;
SELECT throws_ok(format('SELECT invoice_ubl(%s)', pg_temp.doc('se_bare')), '55000', 'the seller has no payment account',
                 'a seller without a payment account: 55000 naming it');
SELECT lives_ok(format('SELECT invoice_ubl(%s)', (SELECT id FROM docs WHERE ext = 'se_two' AND kind = 'credit_note')),
                '... a credit note needs none');
UPDATE seller_settings SET vat_number = NULL;
UPDATE seller_invoice_details SET org_number = '5566778899', bankgiro = '5050-1055';
SELECT throws_ok(format('SELECT invoice_ubl(%s)', pg_temp.doc('se_bare')), '55000', 'the seller has no VAT number',
                 'VAT charged by a seller without a VAT number: 55000 naming it');
DELETE FROM seller_invoice_details;
SELECT throws_ok(format('SELECT invoice_ubl(%s)', pg_temp.doc('se_bare')), '55000', 'the seller has no electronic address',
                 'a seller without an electronic address (nor an organisation number): 55000 naming it');
ROLLBACK TO SAVEPOINT s;
SELECT throws_ok('SELECT invoice_ubl(-1)', '42704', 'invoice -1 does not exist', 'an unknown invoice: 42704');
SELECT throws_ok('SELECT invoice_html(-1)', '42704', 'invoice -1 does not exist', 'an unknown invoice: 42704 (HTML)');
INSERT INTO invoices (account_id, currency, net, tax, total) VALUES (pg_temp.acct('se_bare'), 'SEK', '0 SEK', '0 SEK', '0 SEK');
SELECT throws_ok(format('SELECT invoice_ubl(%s)', (SELECT max(id) FROM invoices)), '55000', NULL, 'a draft has no e-invoice: 55000');
SELECT throws_ok(format('SELECT invoice_html(%s)', (SELECT max(id) FROM invoices)), '55000', NULL, 'a draft has no printed invoice: 55000');
SELECT throws_ok($$ UPDATE account_invoice_details SET electronic_address = '7300010000002' WHERE account_id = pg_temp.acct('se_bare') $$,
                 '22023', 'invalid electronic address "7300010000002" in scheme "0088"', 'a GLN with a wrong check digit is refused (22023)');
SELECT throws_ok($$ UPDATE account_invoice_details SET electronic_address = '2021000002', electronic_address_scheme = '0007' WHERE account_id = pg_temp.acct('se_bare') $$,
                 '22023', NULL, 'a Swedish organisation number with a wrong check digit is refused');
SELECT throws_ok($$ UPDATE account_invoice_details SET electronic_address = '7300010000001', electronic_address_scheme = NULL WHERE account_id = pg_temp.acct('se_bare') $$,
                 '23514', NULL, 'an electronic address without its scheme is refused');
SELECT throws_ok($$ UPDATE account_invoice_details SET org_number = '556677-8898' WHERE account_id = pg_temp.acct('se_bare') $$,
                 '22023', 'invalid organisation number "556677-8898" for SE', 'a bad organisation number is refused (22023)');
SELECT throws_ok($$ UPDATE account_invoice_details SET language = 'de' WHERE account_id = pg_temp.acct('se_bare') $$,
                 '23514', NULL, 'a language without translations is refused');
SELECT is((SELECT buyer_reference FROM account_invoice_details WHERE account_id = pg_temp.acct('se_bare')), 'Anna', 'a refused change changes nothing');

-- ---------------------------------------------------------------- the printed invoice
SELECT ok(invoice_html(pg_temp.doc('se_multi')) LIKE '<!DOCTYPE html>%</html>', 'the page is a whole HTML document');
SELECT ok(invoice_html(pg_temp.doc('se_multi')) LIKE '%Team &lt;plan&gt; &amp; &quot;more&quot;%'
          AND invoice_html(pg_temp.doc('se_multi')) NOT LIKE '%<plan>%', 'every text is escaped');
SELECT ok(invoice_html(pg_temp.doc('se_multi')) LIKE '%<html lang="sv">%<h1>Faktura</h1>%', 'a Swedish account''s invoice is in Swedish');
SELECT ok(invoice_html(id) LIKE '%Fakturadatum</th><td>2026-03-02%Förfallodatum</th><td>2026-04-01%OCR-nummer</th><td>' || reference || '%',
          'dates and the OCR reference') FROM docs WHERE ext = 'se_two' AND kind = 'invoice';
SELECT ok(invoice_html(pg_temp.doc('se_multi')) LIKE '%<td class="num">2 208,90 SEK</td><td class="num">552,23 SEK</td>%',
          'VAT per rate, amounts written the Swedish way');
SELECT ok(invoice_html(pg_temp.doc('se_multi')) LIKE '%Att betala</th><td class="num">4 150,65 SEK%', 'the total to pay');
SELECT ok(invoice_html(pg_temp.doc('se_multi')) LIKE '%Bankgiro</th><td>5050-1055%', 'how to pay: the bankgiro');
SELECT ok(invoice_html(pg_temp.doc('se_multi')) LIKE '%2025-12-01 – 2025-12-31%', 'line periods');
SELECT ok(invoice_html(pg_temp.doc('se_multi')) LIKE '%Org.nr 5566778899 · Momsreg.nr SE556677889901 · Godkänd för F-skatt%',
          'the seller''s organisation number, VAT number and F-skatt');
SELECT ok(invoice_html(pg_temp.doc('de_rc')) LIKE '%Omvänd betalningsskyldighet / Reverse charge%'
          AND invoice_html(pg_temp.doc('de_rc')) LIKE '%DE136695976%', 'reverse charge: the legal text and the buyer''s VAT number');
SELECT ok(invoice_html(pg_temp.doc('de_rc')) LIKE '%<html lang="en">%Moms i SEK%' IS FALSE
          AND invoice_html(pg_temp.doc('de_rc')) LIKE '%VAT in SEK (rate 11.5)</th><td class="num">0.00 SEK%',
          'a German account''s invoice is in English, with the VAT in SEK and the rate');
SELECT ok(invoice_html(pg_temp.doc('no_export')) LIKE '%<html lang="nb">%<h1>Faktura</h1>%KID</th>%Å betale%', 'a Norwegian account''s invoice is in Norwegian, with the KID');
SELECT ok(invoice_html(pg_temp.doc('no_export')) LIKE '%Utanför EU:s momsområde%', 'export: the legal text');
SELECT ok(invoice_html(id) LIKE '%<h1>Kreditfaktura</h1>%Avser faktura</th><td>' || (SELECT number FROM docs WHERE ext = 'se_two' AND kind = 'invoice') || ' (2026-03-02)%Att återfå</th><td class="num">1 137,13 SEK%',
          'a credit note names its invoice and the amount credited') FROM docs WHERE ext = 'se_two' AND kind = 'credit_note';
SELECT ok(invoice_html(id) NOT LIKE '%OCR-nummer%', 'a credit note asks for no payment') FROM docs WHERE ext = 'se_two' AND kind = 'credit_note';
UPDATE account_invoice_details SET language = 'da' WHERE account_id = pg_temp.acct('se_zero');
SELECT ok(invoice_html(pg_temp.doc('se_zero')) LIKE '%<html lang="da">%Fakturadato%At betale</th><td class="num">368,75 SEK%', 'Danish');
UPDATE account_invoice_details SET language = 'fi' WHERE account_id = pg_temp.acct('se_zero');
SELECT ok(invoice_html(pg_temp.doc('se_zero')) LIKE '%<html lang="fi">%<h1>Lasku</h1>%Eräpäivä%Maksettava</th><td class="num">368,75 SEK%', 'Finnish');
UPDATE account_invoice_details SET language = 'en' WHERE account_id = pg_temp.acct('se_zero');
SELECT ok(invoice_html(pg_temp.doc('se_zero')) LIKE '%<html lang="en">%<h1>Invoice</h1>%Amount due</th><td class="num">368.75 SEK%', 'English');
SELECT is(subbilling_internal.html_escape('<a href="x">Tom & Jerry''s</a>'), '&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;',
          'HTML escaping of & < > " and ''');
SELECT is(ARRAY[subbilling_internal.html_number(-1234567.5, 2, 'sv'), subbilling_internal.html_number(1234567.5, 2, 'da'),
                subbilling_internal.html_number(1234567.5, 2, 'en'), subbilling_internal.html_number(25.5, NULL, 'fi')],
          '{"−1 234 567,50","1.234.567,50","1,234,567.50","25,5"}', 'numbers as each language writes them');

-- ---------------------------------------------------------------- a consumer of invoice.finalized
SELECT is((SELECT count(*) FROM events e WHERE e.type = 'invoice.finalized'
              AND invoice_ubl((e.payload ->> 'invoice_id')::bigint) IS NOT NULL
              AND invoice_html((e.payload ->> 'invoice_id')::bigint) IS NOT NULL
              AND e.account_id <> pg_temp.acct('se_bare')),
          7::bigint, 'every invoice.finalized event''s invoice_id fetches both documents');

-- ---------------------------------------------------------------- privileges
SELECT ok(has_function_privilege('subbilling_operator', 'subbilling.invoice_ubl(bigint)', 'EXECUTE')
          AND has_function_privilege('subbilling_operator', 'subbilling.invoice_html(bigint)', 'EXECUTE'),
          'the operator fetches both documents');
SELECT ok(NOT has_function_privilege('subbilling_reader', 'subbilling.invoice_ubl(bigint)', 'EXECUTE')
          AND NOT has_function_privilege('subbilling_reader', 'subbilling.invoice_html(bigint)', 'EXECUTE'),
          'the reader does not (they hold customer data)');
SELECT ok(NOT has_table_privilege('subbilling_reader', 'subbilling.account_invoice_details', 'SELECT')
          AND NOT has_table_privilege('subbilling_reader', 'subbilling.seller_invoice_details', 'SELECT'),
          'the reader reads no invoice details');
SELECT pg_temp.doc('se_two') AS se_two_doc, pg_temp.acct('se_bare') AS se_bare_acct \gset
CREATE ROLE einvoice_op LOGIN IN ROLE subbilling_operator;
CREATE ROLE einvoice_rd LOGIN IN ROLE subbilling_reader;
CREATE ROLE einvoice_nobody LOGIN;
SET LOCAL ROLE einvoice_op;
SELECT ok(invoice_ubl(:se_two_doc) IS NOT NULL AND invoice_html(:se_two_doc) IS NOT NULL,
          'as the operator: both documents');
UPDATE account_invoice_details SET buyer_reference = 'by operator' WHERE account_id = :se_bare_acct;
SELECT is((SELECT buyer_reference FROM account_invoice_details WHERE account_id = :se_bare_acct), 'by operator',
          'as the operator: account details are maintained');
RESET ROLE;
SET LOCAL ROLE einvoice_rd;
SELECT throws_ok('SELECT invoice_ubl(' || :se_two_doc || ')', '42501', NULL, 'as the reader: no e-invoice (42501)');
SELECT throws_ok('SELECT invoice_html(' || :se_two_doc || ')', '42501', NULL, 'as the reader: no printed invoice (42501)');
RESET ROLE;
SET LOCAL ROLE einvoice_nobody;
SELECT throws_ok('SELECT subbilling.invoice_ubl(' || :se_two_doc || ')', '42501', NULL, 'PUBLIC: no e-invoice (42501)');
RESET ROLE;

-- ---------------------------------------------------------------- a Norwegian seller
\ir 670_fixture_no.psql
CREATE TEMP TABLE no_doc AS SELECT invoice_ubl(pg_temp.doc('no_domestic')) AS doc;
SELECT is(pg_temp.br_co(doc), '{}', 'no_domestic: the arithmetic is exact') FROM no_doc;
SELECT is(pg_temp.x('/*/cac:AccountingSupplierParty/cac:Party/cbc:EndpointID/@schemeID|/*/cac:AccountingSupplierParty/cac:Party/cbc:EndpointID/text()', doc),
          '{0192,923609016}', 'no_domestic: the Norwegian seller''s electronic address (0192)') FROM no_doc;
SELECT is(pg_temp.x('/*/cac:AccountingSupplierParty/cac:Party/cac:PartyTaxScheme/cbc:CompanyID/text()', doc),
          '{NO923609016MVA,Foretaksregisteret}', 'no_domestic: MVA number and Foretaksregisteret') FROM no_doc;
SELECT is(pg_temp.x('/*/cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:ID/text()|/*/cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:Percent/text()|/*/cac:TaxTotal/cbc:TaxAmount/text()', doc),
          '{109.50,S,25}', 'no_domestic: 438.00 NOK at 25 % MVA = 109.50') FROM no_doc;
SELECT ok(kid_valid(pg_temp.x1('/*/cac:PaymentMeans/cbc:PaymentID/text()', doc)), 'no_domestic: PaymentID is a valid KID') FROM no_doc;
SELECT is(pg_temp.x('/*/cac:PaymentMeans/cac:PayeeFinancialAccount//cbc:ID/text()', doc), '{15031234567}',
          'no_domestic: paid to the Norwegian bank account') FROM no_doc;
SELECT ok(invoice_html(pg_temp.doc('no_domestic')) LIKE '%Kontonummer</th><td>1503.12.34567%Org.nr. 923609016 · MVA-nr. NO923609016MVA · Foretaksregisteret%',
          'no_domestic: the printed invoice in Norwegian, Foretaksregisteret and the account');

SELECT * FROM finish();
ROLLBACK;
