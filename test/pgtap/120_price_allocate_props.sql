-- allocate(): examples, argument errors, and generated properties (deterministic: setseed);
-- tax() / net_of(): generated properties
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(47);

-- ---------------------------------------------------------------- examples
SELECT is(allocate('100.00 SEK', '{1,1,1}'), '{"33.34 SEK","33.33 SEK","33.33 SEK"}'::price[],
          'three equal parts: the first gets the extra cent (ties go to the earlier weight)');
SELECT is(allocate('-100.00 SEK', '{1,1,1}'), '{"-33.34 SEK","-33.33 SEK","-33.33 SEK"}'::price[],
          'a negative total splits as the mirror image');
SELECT is(allocate('0.05 SEK', '{0.5,0.25,0.25}'), '{"0.03 SEK","0.01 SEK","0.01 SEK"}'::price[],
          'fractional weights: 2.5 / 1.25 / 1.25 -> 3 / 1 / 1');
SELECT is(allocate('0.05 SEK', '{0.25,0.25,0.5}'), '{"0.01 SEK","0.01 SEK","0.03 SEK"}'::price[],
          'the largest remainder wins, not the position');
SELECT is(allocate('10 JPY', '{1,2,3,4}'), '{"1 JPY","2 JPY","3 JPY","4 JPY"}'::price[], 'exact split');
SELECT is(allocate('1 JPY', '{1,1,1}'), '{"1 JPY","0 JPY","0 JPY"}'::price[], 'one unit among three');
SELECT is(allocate('1.000 KWD', '{0,1,0}'), '{"0.000 KWD","1.000 KWD","0.000 KWD"}'::price[], 'zero weights get nothing');
SELECT is(allocate('99.99 EUR', '{1}'), '{"99.99 EUR"}'::price[], 'one weight takes all');
SELECT is(allocate('0.00 SEK', '{3,4}'), '{"0.00 SEK","0.00 SEK"}'::price[], 'zero total');
SELECT is(allocate('-92233720368547758.08 SEK', '{1,1}'), '{"-46116860184273879.04 SEK","-46116860184273879.04 SEK"}'::price[],
          'the most negative total');
SELECT is(allocate('-92233720368547758.08 SEK', '{0,5}'), '{"0.00 SEK","-92233720368547758.08 SEK"}'::price[],
          'the most negative total to one part');
SELECT is(allocate('92233720368547758.07 SEK', '{1,1}'), '{"46116860184273879.04 SEK","46116860184273879.03 SEK"}'::price[],
          'the largest total');
SELECT is(allocate('1.00 SEK', '{1e-30,1e-30}'), '{"0.50 SEK","0.50 SEK"}'::price[], 'tiny weights: only ratios matter');
SELECT is(allocate('1.00 SEK', '{1e30,3e30}'), '{"0.25 SEK","0.75 SEK"}'::price[], 'huge weights: only ratios matter');
SELECT is(allocate('1.00 SEK', '{1.50,1.5}'), '{"0.50 SEK","0.50 SEK"}'::price[], 'the scale of a weight does not matter');
SELECT is(allocate('1.00 SEK', '{9223372036854775807,9223372036854775807,9223372036854775807}'),
          '{"0.34 SEK","0.33 SEK","0.33 SEK"}'::price[], 'weights near the bigint limit (128-bit weight sum)');
SELECT is(allocate('92233720368547758.07 SEK', '{9223372036854775807,1}'),
          '{"92233720368547758.06 SEK","0.01 SEK"}'::price[], 'extreme total and weights: 128-bit products');
SELECT is(array_length(allocate('1.00 SEK', array_fill(1::numeric, ARRAY[1000])), 1), 1000, '1000 parts');
SELECT is((SELECT sum(x) FROM unnest(allocate('1.00 SEK', array_fill(1::numeric, ARRAY[1000]))) x), '1.00 SEK'::price,
          '1000 parts sum to the whole');

-- ---------------------------------------------------------------- argument errors
SELECT throws_ok($$SELECT subbilling.allocate('1.00 SEK', '{}')$$, '22023', 'weights must not be empty', 'empty weights');
SELECT throws_ok($$SELECT subbilling.allocate('1.00 SEK', '{1,NULL}')$$, '22023', 'weights must not contain NULL', 'NULL weight');
SELECT throws_ok($$SELECT subbilling.allocate('1.00 SEK', '{1,-1}')$$, '22023', 'weights must be finite numbers >= 0', 'negative weight');
SELECT throws_ok($$SELECT subbilling.allocate('1.00 SEK', '{0,0.00}')$$, '22023', 'weights must not all be zero', 'all zero');
SELECT throws_ok($$SELECT subbilling.allocate('1.00 SEK', '{1,NaN}')$$, '22023', 'weights must be finite numbers >= 0', 'NaN weight');
SELECT throws_ok($$SELECT subbilling.allocate('1.00 SEK', '{1,Infinity}')$$, '22023', 'weights must be finite numbers >= 0', 'infinite weight');
SELECT throws_ok($$SELECT subbilling.allocate('1.00 SEK', '{{1,2},{3,4}}')$$, '22023', 'weights must be a one-dimensional array', '2-D weights');
SELECT throws_ok($$SELECT subbilling.allocate('1.00 SEK', '{1e-30,1e30}')$$, '22003', 'weights out of range', 'ratios beyond bigint');
SELECT is(allocate('1.00 SEK', NULL), NULL::price[], 'NULL weights: NULL (strict)');

-- ---------------------------------------------------------------- generated allocate cases
SELECT setseed(0.4217);
CREATE TEMP TABLE alloc_cases AS
WITH c AS (
	SELECT i,
	       (ARRAY['SEK', 'JPY', 'KWD', 'CLF', 'EUR'])[1 + floor(random() * 5)::int] AS cur,
	       CASE (random() * 9)::int
	            WHEN 0 THEN -9223372036854775808
	            WHEN 1 THEN 9223372036854775807
	            WHEN 2 THEN ((random() - 0.5) * 18446744073709551615::numeric)::bigint
	            WHEN 3 THEN ((random() - 0.5) * 20)::bigint
	            ELSE ((random() - 0.5) * 2000000)::bigint
	       END AS units,
	       1 + (random() * 11)::int AS n,
	       (random() * 3)::int AS scale
	  FROM generate_series(1, 4000) i
)
SELECT c.i, price_minor(c.units, c.cur) AS total,
       (SELECT array_agg(CASE WHEN random() < 0.2 THEN 0 ELSE round((random() * 1000)::numeric, c.scale) END ORDER BY k)
          FROM generate_series(1, c.n) k) AS weights
  FROM c;
-- make sure no case has only zero weights
UPDATE alloc_cases SET weights[1] = 1
 WHERE NOT EXISTS (SELECT 1 FROM unnest(weights) w WHERE w > 0);
CREATE TEMP TABLE alloc_parts AS
SELECT a.i, a.total, a.weights, p.k, p.part, a.weights[p.k] AS w,
       (SELECT sum(x) FROM unnest(a.weights) x) AS wsum
  FROM alloc_cases a, LATERAL unnest(allocate(a.total, a.weights)) WITH ORDINALITY p(part, k);

SELECT is((SELECT count(*) FROM alloc_cases), 4000::bigint, '4000 generated cases');
SELECT is((SELECT count(*) FROM alloc_cases WHERE total IS NULL OR weights IS NULL OR array_position(weights, NULL) IS NOT NULL),
          0::bigint, 'no generated case has a NULL');
SELECT is((SELECT count(DISTINCT i) FROM alloc_parts), 4000::bigint, 'every case allocated');
SELECT is((SELECT count(*) FROM alloc_cases a
            WHERE cardinality(allocate(a.total, a.weights)) <> cardinality(a.weights)), 0::bigint,
          'one part per weight');
SELECT is((SELECT count(*) FROM (SELECT i, total, sum(minor_units(part)::numeric) AS s FROM alloc_parts GROUP BY i, total) t
            WHERE s <> minor_units(total)), 0::bigint,
          'the parts always sum exactly to the whole');
SELECT is((SELECT count(*) FROM alloc_parts
            WHERE abs(minor_units(part)::numeric * wsum - minor_units(total)::numeric * w) >= wsum), 0::bigint,
          'no part is a minor unit or more away from its exact share');
SELECT is((SELECT count(*) FROM alloc_parts WHERE currency(part) <> currency(total)), 0::bigint,
          'parts keep the currency');
SELECT is((SELECT count(*) FROM alloc_parts WHERE w = 0 AND minor_units(part) <> 0), 0::bigint,
          'a zero weight always gets zero');
SELECT is((SELECT count(*) FROM alloc_parts WHERE minor_units(part) <> 0 AND sign(minor_units(part)) <> sign(minor_units(total))), 0::bigint,
          'no part has the opposite sign of the total');
SELECT is((SELECT count(*) FROM alloc_cases
            WHERE minor_units(total) > -9223372036854775808
              AND allocate(-total, weights) <> (SELECT array_agg(-x ORDER BY k) FROM unnest(allocate(total, weights)) WITH ORDINALITY u(x, k))),
          0::bigint, 'allocate(-t) is the mirror image of allocate(t)');
SELECT is((SELECT count(*) FROM alloc_cases
            WHERE allocate(total, weights) <> allocate(total, (SELECT array_agg(x * 7 ORDER BY k) FROM unnest(weights) WITH ORDINALITY u(x, k)))),
          0::bigint, 'scaling all weights by one factor changes nothing');

-- ---------------------------------------------------------------- generated VAT cases
SELECT setseed(0.25);
CREATE TEMP TABLE vat_cases AS
SELECT price_minor(CASE WHEN i % 50 = 0 THEN ((random() - 0.5) * 2e15)::bigint
                        ELSE ((random() - 0.5) * 2000000)::bigint END,
                   (ARRAY['SEK', 'JPY', 'KWD'])[1 + i % 3]) AS x,
       (ARRAY[0, 6, 12, 25, 12.5, 7.7, 8, 15, 21, 24, 100, 0.1])[1 + floor(random() * 12)::int]::numeric AS rate
  FROM generate_series(1, 6000) i;

SELECT is((SELECT count(*) FROM vat_cases WHERE x IS NULL OR rate IS NULL), 0::bigint, 'no generated VAT case has a NULL');
SELECT is((SELECT count(*) FROM vat_cases
            WHERE abs(minor_units(tax(x, rate)) * 100 - minor_units(x) * rate) > 50), 0::bigint,
          'tax(net) is within half a minor unit of net * rate / 100');
SELECT is((SELECT count(*) FROM vat_cases
            WHERE abs((minor_units(x) - minor_units(net_of(x, rate))) * (100 + rate) - minor_units(x) * rate) > (100 + rate) / 2),
          0::bigint, 'the VAT in net_of(gross) is within half a minor unit of gross * rate / (100 + rate)');
SELECT is((SELECT count(*) FROM vat_cases WHERE net_of(x + tax(x, rate), rate) <> x), 0::bigint,
          'net -> gross -> net is exact: net_of(net + tax(net)) = net');
SELECT is((SELECT count(*) FROM vat_cases
            WHERE abs(minor_units(tax(net_of(x, rate), rate)) - (minor_units(x) - minor_units(net_of(x, rate)))) > 1),
          0::bigint, 'gross -> net -> gross differs by at most one minor unit');
SELECT is((SELECT count(*) FROM vat_cases WHERE tax(-x, rate) <> -tax(x, rate) OR net_of(-x, rate) <> -net_of(x, rate)),
          0::bigint, 'tax and net_of are symmetric in the sign');
SELECT is((SELECT count(*) FROM vat_cases WHERE (rate = 0 AND (tax(x, rate) <> x * 0 OR net_of(x, rate) <> x))),
          0::bigint, 'rate 0: no tax, net = gross');
SELECT ok((SELECT count(*) FROM vat_cases
            WHERE tax(net_of(x, rate), rate) <> x - net_of(x, rate)) > 0,
          'gross -> net -> gross does differ by one minor unit in some cases (documented)');

SELECT * FROM finish();
ROLLBACK;
