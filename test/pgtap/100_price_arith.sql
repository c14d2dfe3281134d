-- price arithmetic: exact results, the rounding rule for both signs, currency mismatch,
-- overflow at both ends of every operator, VAT
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(115);

-- ---------------------------------------------------------------- + - unary - abs
SELECT is('1.50 SEK'::price + '2.75 SEK', '4.25 SEK'::price, '+ adds');
SELECT is('1.50 SEK'::price - '2.75 SEK', '-1.25 SEK'::price, '- subtracts, may go negative');
SELECT is(-'1.50 SEK'::price, '-1.50 SEK'::price, 'unary - negates');
SELECT is(-'-0.01 EUR'::price, '0.01 EUR'::price, 'unary - of a negative');
SELECT is(abs('-3.005 KWD'::price), '3.005 KWD'::price, 'abs of a negative');
SELECT is(abs('7 JPY'::price), '7 JPY'::price, 'abs of a positive');
SELECT is('92233720368547758.07 SEK'::price + '-92233720368547758.08 SEK', '-0.01 SEK'::price, 'max + min');
SELECT is(-'92233720368547758.07 SEK'::price, '-92233720368547758.07 SEK'::price, '- max is in range');

-- ---------------------------------------------------------------- * (exact for integers, rounded for numeric)
SELECT is('1.50 SEK'::price * 3, '4.50 SEK'::price, 'price * int4');
SELECT is(3 * '1.50 SEK'::price, '4.50 SEK'::price, 'int4 * price');
SELECT is('1.50 SEK'::price * 3000000000::bigint, '4500000000.00 SEK'::price, 'price * int8');
SELECT is(-2::bigint * '1.50 SEK'::price, '-3.00 SEK'::price, 'int8 * price');
SELECT is('19.99 EUR'::price * 1.5, '29.99 EUR'::price, 'price * numeric: 29.985 rounds up to 29.99');
SELECT is('-19.99 EUR'::price * 1.5, '-29.99 EUR'::price, 'price * numeric: -29.985 rounds to -29.99');
SELECT is(1.5 * '19.99 EUR'::price, '29.99 EUR'::price, 'numeric * price');
SELECT is('0.05 SEK'::price * 0.5, '0.03 SEK'::price, '0.05 * 0.5 = 0.025 -> 0.03 (half away from zero)');
SELECT is('-0.05 SEK'::price * 0.5, '-0.03 SEK'::price, '-0.05 * 0.5 = -0.025 -> -0.03 (half away from zero)');
SELECT is('0.05 SEK'::price * -0.5, '-0.03 SEK'::price, '0.05 * -0.5 = -0.025 -> -0.03');
SELECT is('0.01 SEK'::price * 0.4999999999999999999999999999, '0.00 SEK'::price, 'just below one half rounds down');
SELECT is('0.01 SEK'::price * 0.5000000000000000000000000001, '0.01 SEK'::price, 'just above one half rounds up');
SELECT is('3 JPY'::price * 0.5, '2 JPY'::price, 'exponent 0: 1.5 -> 2');
SELECT is('-3 JPY'::price * 0.5, '-2 JPY'::price, 'exponent 0: -1.5 -> -2');
SELECT is('92233720368547758.07 SEK'::price * 0.5, '46116860184273879.04 SEK'::price, 'max * 0.5 rounds exactly at full precision');
SELECT is('-92233720368547758.08 SEK'::price * 0.5, '-46116860184273879.04 SEK'::price, 'min * 0.5');
SELECT is('12.34 SEK'::price * 0, '0.00 SEK'::price, 'times zero');

-- ---------------------------------------------------------------- / (rounded half away from zero)
SELECT is('0.05 SEK'::price / 2, '0.03 SEK'::price, '0.05 / 2 = 0.025 -> 0.03');
SELECT is('-0.05 SEK'::price / 2, '-0.03 SEK'::price, '-0.05 / 2 = -0.025 -> -0.03');
SELECT is('0.05 SEK'::price / -2, '-0.03 SEK'::price, '0.05 / -2 -> -0.03');
SELECT is('-0.05 SEK'::price / -2, '0.03 SEK'::price, '-0.05 / -2 -> 0.03');
SELECT is('0.05 SEK'::price / 2::bigint, '0.03 SEK'::price, 'price / int8');
SELECT is('0.05 SEK'::price / 2.0, '0.03 SEK'::price, 'price / numeric');
SELECT is('-0.05 SEK'::price / 2.0, '-0.03 SEK'::price, 'negative price / numeric');
SELECT is('10.00 SEK'::price / 3, '3.33 SEK'::price, '10 / 3 -> 3.33');
SELECT is('-10.00 SEK'::price / 3, '-3.33 SEK'::price, '-10 / 3 -> -3.33');
SELECT is('0.02 SEK'::price / 3, '0.01 SEK'::price, '0.02 / 3 = 0.00667 -> 0.01');
SELECT is('0.01 SEK'::price / 3, '0.00 SEK'::price, '0.01 / 3 -> 0.00');
SELECT is('1 JPY'::price / 2, '1 JPY'::price, 'exponent 0: 0.5 -> 1');
SELECT is('-1 JPY'::price / 2, '-1 JPY'::price, 'exponent 0: -0.5 -> -1');
SELECT is('1.000 KWD'::price / 3, '0.333 KWD'::price, 'exponent 3');
SELECT is('2.0000 CLF'::price / 3, '0.6667 CLF'::price, 'exponent 4');
SELECT is('0.01 SEK'::price / 2.0000000000000000000000000001, '0.00 SEK'::price,
          'division is exact: 0.4999...9 does not round twice');
SELECT is('1200.00 SEK'::price / 12.5, '96.00 SEK'::price, 'price / fractional numeric');
SELECT is('100.00 SEK'::price / 0.03, '3333.33 SEK'::price, 'price / small numeric');
SELECT is('92233720368547758.07 SEK'::price / 2, '46116860184273879.04 SEK'::price, 'max / 2');
SELECT is('-92233720368547758.08 SEK'::price / 2, '-46116860184273879.04 SEK'::price, 'min / 2');

-- price / price: a plain numeric ratio
SELECT is('10.00 SEK'::price / '4.00 SEK'::price, 2.5, 'price / price = 2.5');
SELECT is('-1 JPY'::price / '3 JPY'::price, -0.33333333333333333333, 'price / price keeps numeric precision');

-- ---------------------------------------------------------------- currency mismatch (22000)
SELECT throws_ok($$SELECT '1.00 SEK'::subbilling.price + '1.00 EUR'::subbilling.price$$,
                 '22000', 'currency mismatch: SEK and EUR', '+ across currencies');
SELECT throws_ok($$SELECT '1.00 EUR'::subbilling.price - '1.00 SEK'::subbilling.price$$,
                 '22000', 'currency mismatch: EUR and SEK', '- across currencies');
SELECT throws_ok($$SELECT '1.00 EUR'::subbilling.price / '1 JPY'::subbilling.price$$,
                 '22000', 'currency mismatch: EUR and JPY', 'price / price across currencies');

-- ---------------------------------------------------------------- overflow at both ends (22003)
SELECT throws_ok($$SELECT '92233720368547758.07 SEK'::subbilling.price + '0.01 SEK'$$,
                 '22003', 'price out of range', 'max + 0.01');
SELECT throws_ok($$SELECT '-92233720368547758.08 SEK'::subbilling.price + '-0.01 SEK'$$,
                 '22003', 'price out of range', 'min + -0.01');
SELECT throws_ok($$SELECT '-92233720368547758.08 SEK'::subbilling.price - '0.01 SEK'$$,
                 '22003', 'price out of range', 'min - 0.01');
SELECT throws_ok($$SELECT '92233720368547758.07 SEK'::subbilling.price - '-0.01 SEK'$$,
                 '22003', 'price out of range', 'max - -0.01');
SELECT throws_ok($$SELECT -'-92233720368547758.08 SEK'::subbilling.price$$,
                 '22003', 'price out of range', 'unary - of min');
SELECT throws_ok($$SELECT subbilling.abs('-92233720368547758.08 SEK')$$,
                 '22003', 'price out of range', 'abs of min');
SELECT throws_ok($$SELECT '92233720368547758.07 SEK'::subbilling.price * 2$$,
                 '22003', 'price out of range', 'max * int4');
SELECT throws_ok($$SELECT '-92233720368547758.08 SEK'::subbilling.price * 2$$,
                 '22003', 'price out of range', 'min * int4');
SELECT throws_ok($$SELECT '-92233720368547758.08 SEK'::subbilling.price * -1$$,
                 '22003', 'price out of range', 'min * -1 (int4)');
SELECT throws_ok($$SELECT 2 * '92233720368547758.07 SEK'::subbilling.price$$,
                 '22003', 'price out of range', 'int4 * max');
SELECT throws_ok($$SELECT '92233720368547758.07 SEK'::subbilling.price * 2::bigint$$,
                 '22003', 'price out of range', 'max * int8');
SELECT throws_ok($$SELECT '-92233720368547758.08 SEK'::subbilling.price * 2::bigint$$,
                 '22003', 'price out of range', 'min * int8');
SELECT throws_ok($$SELECT -1::bigint * '-92233720368547758.08 SEK'::subbilling.price$$,
                 '22003', 'price out of range', 'int8 -1 * min');
SELECT throws_ok($$SELECT '92233720368547758.07 SEK'::subbilling.price * 1.5$$,
                 '22003', 'price out of range', 'max * numeric');
SELECT throws_ok($$SELECT '-92233720368547758.08 SEK'::subbilling.price * 1.5$$,
                 '22003', 'price out of range', 'min * numeric');
SELECT throws_ok($$SELECT -1.0 * '-92233720368547758.08 SEK'::subbilling.price$$,
                 '22003', 'price out of range', 'numeric -1.0 * min');
SELECT throws_ok($$SELECT '92233720368547758.07 SEK'::subbilling.price * 1.0000000000000000001$$,
                 '22003', 'price out of range', 'max * (1 + 1e-19) rounds past max');
SELECT throws_ok($$SELECT '92233720368547758.07 SEK'::subbilling.price * 1e1000$$,
                 '22003', 'price out of range', 'times a huge numeric');
SELECT throws_ok($$SELECT '-92233720368547758.08 SEK'::subbilling.price / -1$$,
                 '22003', 'price out of range', 'min / -1 (int4)');
SELECT throws_ok($$SELECT '-92233720368547758.08 SEK'::subbilling.price / -1::bigint$$,
                 '22003', 'price out of range', 'min / -1 (int8)');
SELECT throws_ok($$SELECT '-92233720368547758.08 SEK'::subbilling.price / -1.0$$,
                 '22003', 'price out of range', 'min / -1.0 (numeric)');
SELECT throws_ok($$SELECT '92233720368547758.07 SEK'::subbilling.price / 0.5$$,
                 '22003', 'price out of range', 'max / 0.5');
SELECT throws_ok($$SELECT '-92233720368547758.08 SEK'::subbilling.price / 0.5$$,
                 '22003', 'price out of range', 'min / 0.5');
SELECT throws_ok($$SELECT subbilling.tax('92233720368547758.07 SEK', 200)$$,
                 '22003', 'price out of range', 'tax of max at 200%');
SELECT throws_ok($$SELECT subbilling.tax('-92233720368547758.08 SEK', 200)$$,
                 '22003', 'price out of range', 'tax of min at 200%');
SELECT is('92233720368547758.07 SEK'::price * 1, '92233720368547758.07 SEK'::price, 'max * 1 is fine');
SELECT is('-92233720368547758.08 SEK'::price / 1, '-92233720368547758.08 SEK'::price, 'min / 1 is fine');

-- ---------------------------------------------------------------- division by zero (22012), non-finite (22023)
SELECT throws_ok($$SELECT '1.00 SEK'::subbilling.price / 0$$, '22012', 'division by zero', 'price / 0 (int4)');
SELECT throws_ok($$SELECT '1.00 SEK'::subbilling.price / 0::bigint$$, '22012', 'division by zero', 'price / 0 (int8)');
SELECT throws_ok($$SELECT '1.00 SEK'::subbilling.price / 0.00$$, '22012', 'division by zero', 'price / 0.00 (numeric)');
SELECT throws_ok($$SELECT '1.00 SEK'::subbilling.price / '0.00 SEK'::subbilling.price$$, '22012', 'division by zero', 'price / zero price');
SELECT throws_ok($$SELECT '1.00 SEK'::subbilling.price * 'NaN'::numeric$$, '22023', 'factor must be a finite number', 'price * NaN');
SELECT throws_ok($$SELECT '1.00 SEK'::subbilling.price * 'Infinity'::numeric$$, '22023', 'factor must be a finite number', 'price * Infinity');
SELECT throws_ok($$SELECT '1.00 SEK'::subbilling.price / '-Infinity'::numeric$$, '22023', 'divisor must be a finite number', 'price / -Infinity');

-- ---------------------------------------------------------------- VAT: tax and net_of
SELECT is(tax('100.00 SEK', 25), '25.00 SEK'::price, 'tax 25%');
SELECT is(tax('99.99 SEK', 12), '12.00 SEK'::price, 'tax 12% of 99.99 = 11.9988 -> 12.00');
SELECT is(tax('0.02 SEK', 25), '0.01 SEK'::price, 'tax 25% of 0.02 = 0.005 -> 0.01');
SELECT is(tax('-0.02 SEK', 25), '-0.01 SEK'::price, 'tax 25% of -0.02 = -0.005 -> -0.01 (credit notes)');
SELECT is(tax('0.01 SEK', 25), '0.00 SEK'::price, 'tax 25% of 0.01 = 0.0025 -> 0.00');
SELECT is(tax('10 JPY', 8), '1 JPY'::price, 'tax 8% of 10 JPY = 0.8 -> 1');
SELECT is(tax('80.00 EUR', 12.5), '10.00 EUR'::price, 'fractional rate');
SELECT is(tax('123.45 SEK', 0), '0.00 SEK'::price, 'rate 0');
SELECT is(net_of('125.00 SEK', 25), '100.00 SEK'::price, 'net_of 125 at 25% = 100');
SELECT is(net_of('100.00 SEK', 25), '80.00 SEK'::price, 'net_of 100 at 25% = 80');
SELECT is(net_of('106.00 SEK', 6), '100.00 SEK'::price, 'net_of at 6%');
SELECT is(net_of('0.01 SEK', 25), '0.01 SEK'::price, 'VAT 0.002 rounds to 0: net is the whole 0.01');
SELECT is(net_of('-125.00 SEK', 25), '-100.00 SEK'::price, 'net_of a negative gross');
SELECT is(net_of('99.99 SEK', 12.5), '88.88 SEK'::price, 'net_of at a fractional rate: VAT 11.11');
SELECT is(net_of('5.55 EUR', 0), '5.55 EUR'::price, 'net_of at 0% is the gross');
SELECT is(net_of('-92233720368547758.08 SEK', 25) + ('-92233720368547758.08 SEK'::price - net_of('-92233720368547758.08 SEK', 25)),
          '-92233720368547758.08 SEK'::price, 'net_of min: no overflow, net + VAT = gross');
SELECT throws_ok($$SELECT subbilling.tax('1.00 SEK', -1)$$, '22023', 'tax rate must be a finite number >= 0', 'negative rate (tax)');
SELECT throws_ok($$SELECT subbilling.net_of('1.00 SEK', -0.01)$$, '22023', 'tax rate must be a finite number >= 0', 'negative rate (net_of)');
SELECT throws_ok($$SELECT subbilling.tax('1.00 SEK', 'NaN')$$, '22023', 'tax rate must be a finite number >= 0', 'NaN rate');
SELECT throws_ok($$SELECT subbilling.net_of('1.00 SEK', 'Infinity')$$, '22023', 'tax rate must be a finite number >= 0', 'infinite rate');

-- ---------------------------------------------------------------- constructors and accessors
SELECT is(price(12.5, 'sek'), '12.50 SEK'::price, 'price(numeric, text)');
SELECT is(price(1.230, 'SEK'), '1.23 SEK'::price, 'price(): trailing zeros beyond the exponent are fine in a numeric');
SELECT throws_ok($$SELECT subbilling.price(1.234, 'SEK')$$, '22023',
                 'amount 1.234 is not a whole number of minor units of SEK', 'price() never rounds');
SELECT throws_ok($$SELECT subbilling.price(1, 'ABC')$$, '22023', 'unknown currency code "ABC"', 'price(): unknown currency');
SELECT is(price_minor(-150, 'EUR'), '-1.50 EUR'::price, 'price_minor');
SELECT is(minor_units('-1.50 EUR'), -150::bigint, 'minor_units');
SELECT is(currency('1 jpy'), 'JPY', 'currency');
SELECT is(amount('-1.50 EUR')::text, '-1.50', 'amount keeps the currency scale');
SELECT is(amount('5 JPY')::text, '5', 'amount of an exponent-0 currency');
SELECT is(amount('0.100 KWD')::text, '0.100', 'amount of an exponent-3 currency');
SELECT is(price(amount(p), currency(p)), p, 'price(amount(p), currency(p)) = p')
  FROM (VALUES ('-92233720368547758.08 SEK'::price)) v(p);

SELECT * FROM finish();
ROLLBACK;
