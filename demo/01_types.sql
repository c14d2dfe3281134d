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
