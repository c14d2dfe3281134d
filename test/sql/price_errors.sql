-- price: every error class with its message and DETAIL as a client sees them
SET search_path = subbilling, public;
\set VERBOSITY default
-- after each failing statement, psql's LAST_ERROR_SQLSTATE shows the SQLSTATE
-- bad text (22P02) and out of range (22003)
SELECT 'twelve SEK'::price;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT '12 ABC'::price;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT '1.999 SEK'::price;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT '5.5 JPY'::price;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT '92233720368547758.08 SEK'::price;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- currency mismatch (22000)
SELECT '1.00 SEK'::price + '1.00 EUR'::price;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT sum(p) FROM (VALUES ('1.00 SEK'::price), ('1.00 EUR')) v(p);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- arithmetic overflow (22003) and division by zero (22012)
SELECT '92233720368547758.07 SEK'::price + '0.01 SEK'::price;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT '1.00 SEK'::price / 0;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- invalid parameters (22023)
SELECT price(1.001, 'SEK');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT price_minor(1, 'XXX');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tax('100.00 SEK', -25);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT allocate('100.00 SEK', '{0,0}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT '1.00 SEK'::price * 'NaN'::numeric;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- every error leaves the session usable
SELECT '1.00 SEK'::price AS still_fine;
