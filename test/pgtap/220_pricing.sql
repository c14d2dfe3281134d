-- pricing models: catalogue, worked examples and properties against brute force
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(31);

SELECT has_type('subbilling', 'tier', 'composite type tier exists');
SELECT col_type_is('subbilling', 'tier', 'up_to', 'numeric', 'tier.up_to is numeric');
SELECT col_type_is('subbilling', 'tier', 'unit_price', 'subbilling', 'price', 'tier.unit_price is price');
SELECT col_type_is('subbilling', 'tier', 'flat_price', 'subbilling', 'price', 'tier.flat_price is price');
SELECT function_returns('subbilling', 'tiered_price', ARRAY['numeric', 'tier[]', 'text'], 'price');
SELECT function_returns('subbilling', 'package_price', ARRAY['numeric', 'numeric', 'price'], 'price');
SELECT volatility_is('subbilling', 'tiered_price', ARRAY['numeric', 'tier[]', 'text'], 'immutable', 'tiered_price is IMMUTABLE');
SELECT volatility_is('subbilling', 'package_price', ARRAY['numeric', 'numeric', 'price'], 'immutable', 'package_price is IMMUTABLE');
SELECT is_strict('subbilling', 'tiered_price', ARRAY['numeric', 'tier[]', 'text'], 'tiered_price is STRICT');
SELECT is_strict('subbilling', 'package_price', ARRAY['numeric', 'numeric', 'price'], 'package_price is STRICT');
SELECT is((SELECT count(*) FROM pg_proc WHERE pronamespace = 'subbilling'::regnamespace
              AND proname IN ('tier', 'tiered_price', 'package_price')
              AND proparallel = 's' AND obj_description(oid, 'pg_proc') IS NOT NULL), 3::bigint,
          'tier, tiered_price and package_price are PARALLEL SAFE and commented');

-- worked examples (docs/pricing.md)
CREATE TEMP TABLE t3 ON COMMIT DROP AS
    SELECT ARRAY[tier(10, '1.00 SEK'), tier(50, '0.80 SEK'), tier(NULL, '0.50 SEK')] AS tiers;
SELECT is(tiered_price(60, tiers, 'graduated'), '47.00 SEK'::price, 'graduated 60: 10 * 1.00 + 40 * 0.80 + 10 * 0.50 = 47.00') FROM t3;
SELECT is(tiered_price(60, tiers, 'volume'), '30.00 SEK'::price, 'volume 60: 60 * 0.50 = 30.00') FROM t3;
SELECT is(tiered_price(10, tiers, 'graduated'), '10.00 SEK'::price, 'graduated 10: all in the first tier') FROM t3;
SELECT is(tiered_price(11, tiers, 'volume'), '8.80 SEK'::price, 'volume 11: 11 * 0.80') FROM t3;
SELECT is(tiered_price(0, tiers, 'graduated'), '0.00 SEK'::price, 'quantity 0: nothing') FROM t3;
SELECT is(tiered_price(150, ARRAY[tier(10, NULL, '100.00 SEK'), tier(100, '50.00 SEK'), tier(NULL, '40.00 SEK', '500.00 SEK')], 'graduated'),
          '7100.00 SEK'::price, 'graduated with flat fees: 100 + 90 * 50 + 500 + 50 * 40 = 7100.00');
SELECT is(tiered_price(150, ARRAY[tier(10, NULL, '100.00 SEK'), tier(100, '50.00 SEK'), tier(NULL, '40.00 SEK', '500.00 SEK')], 'volume'),
          '6500.00 SEK'::price, 'volume with flat fees: 500 + 150 * 40 = 6500.00');
SELECT is(tiered_price(1, ARRAY[tier(0.5, '0.01 EUR'), tier(NULL, '0.01 EUR')], 'graduated'), '0.01 EUR'::price,
          'rounded once: 0.005 + 0.005 = 0.01');
SELECT is(package_price(101, 100, '5.00 EUR'), '10.00 EUR'::price, '101 units in packages of 100: 2 packages');
SELECT is(package_price(0, 100, '5.00 EUR'), '0.00 EUR'::price, 'no units: no package');
SELECT throws_ok($$SELECT subbilling.tiered_price(1, ARRAY[subbilling.tier(NULL, '1.00 SEK')], 'flat')$$, '22023',
                 'unknown pricing mode "flat"', 'unknown mode: 22023');
SELECT throws_ok($$SELECT subbilling.tiered_price(1, ARRAY[subbilling.tier(5, '1.00 SEK'), subbilling.tier(5, '1.00 SEK')], 'volume')$$,
                 '22023', 'up_to must be strictly ascending', 'up_to not ascending: 22023');
SELECT throws_ok($$SELECT subbilling.tiered_price(6, ARRAY[subbilling.tier(5, '1.00 SEK')], 'volume')$$,
                 '22023', 'quantity 6 exceeds the last tier', 'quantity beyond a bounded last tier: 22023');
SELECT throws_ok($$SELECT subbilling.tiered_price(1, ARRAY[subbilling.tier(5, '1.00 SEK'), subbilling.tier(NULL, '1.00 EUR')], 'volume')$$,
                 '22000', 'currency mismatch: SEK and EUR', 'mixed currencies: 22000');
SELECT throws_ok($$SELECT subbilling.package_price(1, 0, '1.00 SEK')$$, '22023', 'package size must be positive, not 0',
                 'package size 0: 22023');

-- PROPERTY setup: 60 deterministic tier sets of 1 to 4 tiers (limits ascending, the last
-- open or not, unit and flat prices from -0.50 to 9.99 SEK, some NULL), quantities 0 .. 120
-- in steps of 0.5
CREATE TEMP TABLE tier_rows ON COMMIT DROP AS
    SELECT s, t, n,
           CASE WHEN t = n AND s % 3 <> 0 THEN NULL ELSE (t * (5 + s % 23) + s % 7)::numeric END AS up_to,
           CASE WHEN (s + t) % 5 = 0 THEN NULL ELSE (((s * 31 + t * 17) % 1050) - 50)::bigint END AS unit_minor,
           CASE WHEN (s * t) % 4 = 0 THEN ((s * 13 + t * 7) % 999)::bigint ELSE NULL END AS flat_minor
      FROM generate_series(1, 60) AS s,
           LATERAL (SELECT 1 + s % 4 AS n) AS c,
           generate_series(1, c.n) AS t;
CREATE TEMP TABLE tier_sets ON COMMIT DROP AS
    SELECT s, array_agg(tier(up_to, price_minor(unit_minor, 'SEK'), price_minor(flat_minor, 'SEK')) ORDER BY t) AS tiers,
           max(n) AS n, max(up_to) FILTER (WHERE t = n) AS last_limit
      FROM tier_rows GROUP BY s;
-- the tier a quantity falls in: the first whose up_to is NULL or >= q (unless beyond the last)
CREATE TEMP TABLE quantities ON COMMIT DROP AS
    SELECT s, q, (SELECT min(t) FROM tier_rows AS r WHERE r.s = ts.s AND (r.up_to IS NULL OR q <= r.up_to)) AS k
      FROM tier_sets AS ts, generate_series(0, 240) AS h, LATERAL (SELECT h / 2.0 AS q) AS x
     WHERE ts.last_limit IS NULL OR q <= ts.last_limit;

SELECT ok((SELECT count(*) FROM quantities) > 5000 AND (SELECT count(DISTINCT s) FROM quantities) = 60,
          'more than 5000 (tier set, quantity) cases over 60 tier sets');
-- graduated, independently: each tier's units clamp(q - lower, 0, up_to - lower) at its unit
-- price, plus the flat price of every tier up to the one holding q
SELECT is((SELECT count(*) FROM quantities AS qq
            WHERE minor_units(tiered_price(qq.q, (SELECT tiers FROM tier_sets WHERE s = qq.s), 'graduated'))
                  = round((SELECT sum(coalesce(r.unit_minor, 0)
                                      * greatest(0, least(qq.q, coalesce(r.up_to, qq.q)) - coalesce(prev.up_to, 0)))
                                  + sum(coalesce(r.flat_minor, 0)) FILTER (WHERE r.t <= qq.k)
                             FROM tier_rows AS r
                             LEFT JOIN tier_rows AS prev ON prev.s = r.s AND prev.t = r.t - 1
                            WHERE r.s = qq.s))),
          (SELECT count(*) FROM quantities),
          'PROPERTY graduated = sum over tiers of units in the tier * unit price + flat price of tiers reached, rounded once');
-- volume, independently: the whole quantity at the unit price of the tier holding q, plus its flat price
SELECT is((SELECT count(*) FROM quantities AS qq JOIN tier_rows AS r ON r.s = qq.s AND r.t = qq.k
            WHERE minor_units(tiered_price(qq.q, (SELECT tiers FROM tier_sets WHERE s = qq.s), 'volume'))
                  = round(coalesce(r.unit_minor, 0) * qq.q + coalesce(r.flat_minor, 0))),
          (SELECT count(*) FROM quantities),
          'PROPERTY volume = quantity * unit price of the tier reached + its flat price, rounded once');
-- with non-negative prices and no flat fees, graduated is never above volume at the first
-- tier's price when tiers get cheaper (the usual shape), and grows with the quantity
SELECT is((SELECT count(*) FROM generate_series(0, 1000) AS q
            WHERE tiered_price(q, tiers, 'graduated') <= tiered_price(q + 1, tiers, 'graduated')
              AND tiered_price(q, tiers, 'graduated') >= tiered_price(q, tiers, 'volume')
              AND tiered_price(q, tiers, 'graduated') <= q * '1.00 SEK'::price),
          1001::bigint,
          'PROPERTY decreasing unit prices: graduated grows with q, lies between volume and q * first price')
  FROM t3;

-- PROPERTY: package_price = ceil(q / size) * package, checked against numeric ceil
SELECT is((SELECT count(*) FROM generate_series(0, 500) AS q, unnest('{1, 3, 7, 10, 100, 0.25, 2.5}'::numeric[]) AS size
            WHERE package_price(q, size, '4.99 EUR') = ceil(q / size)::int * '4.99 EUR'::price
              AND package_price(q + 0.001, size, '4.99 EUR') = (floor(q / size)::int + 1) * '4.99 EUR'::price),
          (501 * 7)::bigint,
          'PROPERTY package_price = ceil(q / size) packages, and one more for any fraction above');

SELECT * FROM finish();
ROLLBACK;
