\echo
\echo '== subbilling: what is installed'
SELECT extname AS extension, extversion AS version, extnamespace::regnamespace AS schema
  FROM pg_extension WHERE extname = 'subbilling';

SET search_path = subbilling, public;

\echo
\echo '== exact money: integer minor units, canonical text, one rounding rule (half away from zero)'
SELECT p AS price, minor_units(p) AS minor_units, currency(p) AS currency, amount(p) AS amount
  FROM (VALUES ('1234.5 sek'::price), ('-0.05 EUR'), ('100 JPY'), ('1.234 KWD')) AS v(p);

SELECT '0.05 SEK'::price / 2       AS "0.05 SEK / 2",
       '-0.05 SEK'::price / 2      AS "-0.05 SEK / 2",
       '100.00 SEK'::price / 3     AS "100.00 SEK / 3",
       '100.00 SEK'::price * 1.125 AS "100.00 SEK * 1.125";

\echo
\echo '== allocate: 100.00 SEK split in three, nothing lost'
SELECT parts, (SELECT sum(x) FROM unnest(parts) AS x) AS sum_of_parts
  FROM (SELECT allocate('100.00 SEK', '{1,1,1}') AS parts) AS a;

\echo
\echo '== VAT at 25 %: tax on net, and net out of gross (net + VAT = gross exactly)'
SELECT tax('80.00 SEK', 25) AS vat_on_80, net_of('100.00 SEK', 25) AS net_of_100,
       '100.00 SEK'::price - net_of('100.00 SEK', 25) AS vat_in_100;

\echo
\echo '== billing periods: a month-end anchor does not drift (each boundary computed from the anchor)'
SELECT n, period_start('2024-01-31', 'monthly', n) AS boundary
  FROM generate_series(0, 4) AS n;
SELECT 'P3M'::billing_period AS iso, 'annually'::billing_period AS alias,
       periods_per_year('2 weeks') AS per_year_biweekly,
       monthly('1200.00 SEK', '1 year') AS yearly_1200_as_mrr;

\echo
\echo '== proration: an upgrade on day 11 of a 30-day period'
SELECT prorate('300.00 SEK', daterange('2024-04-01', '2024-05-01'), daterange('2024-04-11', '2024-05-01')) AS unused_credit,
       prorate('600.00 SEK', daterange('2024-04-01', '2024-05-01'), daterange('2024-04-11', '2024-05-01')) AS new_plan_charge;

\echo
\echo '== pricing models: 60 units graduated (10 at 1.00, 40 at 0.80, rest at 0.50) and in packages of 25'
SELECT tiered_price(60, ARRAY[tier(10, '1.00 SEK'), tier(50, '0.80 SEK'), tier(NULL, '0.50 SEK')], 'graduated') AS graduated,
       tiered_price(60, ARRAY[tier(10, '1.00 SEK'), tier(50, '0.80 SEK'), tier(NULL, '0.50 SEK')], 'volume') AS volume,
       package_price(60, 25, '100.00 SEK') AS packages;

\echo
\echo '== payment references: Swedish OCR (length + Luhn digit) and Norwegian KID (mod 11)'
SELECT ocr_reference('1234567') AS ocr, ocr_valid(ocr_reference('1234567')) AS ocr_ok,
       kid_reference('1234567', 'mod11') AS kid, kid_valid(kid_reference('1234567', 'mod11'), 'mod11') AS kid_ok;
