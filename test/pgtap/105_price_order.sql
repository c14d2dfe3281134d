-- price comparison: total order (currency code, then amount), btree and hash opclasses,
-- index scans, ORDER BY, GROUP BY, DISTINCT, hash and merge joins, UNIQUE
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(47);

CREATE FUNCTION pg_temp.plan_text(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	l text;
	r text := '';
BEGIN
	FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
		r := r || l || E'\n';
	END LOOP;
	RETURN r;
END
$$;

-- ---------------------------------------------------------------- operators
SELECT ok('1.00 SEK'::price < '1.01 SEK', '<');
SELECT ok('-1.00 SEK'::price < '0.00 SEK', '< with a negative');
SELECT ok(NOT ('1.01 SEK'::price < '1.01 SEK'), 'not < itself');
SELECT ok('1.01 SEK'::price <= '1.01 SEK', '<= itself');
SELECT ok('1.01 SEK'::price = ' 1.01  sek '::price, '= is on the value, not the spelling');
SELECT ok('1.00 SEK'::price <> '1.00 EUR', '<> across currencies');
SELECT ok(NOT ('1.00 SEK'::price = '1.00 EUR'), 'same amount, different currency: not equal');
SELECT ok('2.00 SEK'::price >= '1.99 SEK', '>=');
SELECT ok('2.00 SEK'::price > '1.99 SEK', '>');
SELECT ok('999.00 EUR'::price < '1.00 SEK', 'currency code first: EUR < SEK whatever the amounts');
SELECT ok('-5 JPY'::price > '1000000.00 EUR', 'JPY sorts after EUR');
SELECT is(price_cmp('1.00 SEK', '1.00 SEK'), 0, 'price_cmp equal');
SELECT is(price_cmp('1.00 SEK', '1.01 SEK'), -1, 'price_cmp less');
SELECT is(price_cmp('1.00 SEK', '1.00 EUR'), 1, 'price_cmp by currency');
SELECT is(price_cmp('-92233720368547758.08 SEK', '92233720368547758.07 SEK'), -1, 'price_cmp at the extremes');
SELECT is(price_hash('1.00 SEK'), price_hash('1.0 sek'), 'equal prices hash equally');
SELECT is(price_hash_extended('1.00 SEK', 42), price_hash_extended('1.0 sek', 42), 'equal prices hash equally (extended)');
SELECT isnt(price_hash_extended('1.00 SEK', 0), price_hash_extended('1.00 SEK', 1), 'the seed changes the extended hash');

-- ---------------------------------------------------------------- a table of 20000 distinct prices
CREATE TEMP TABLE prices (id int PRIMARY KEY, p price NOT NULL);
INSERT INTO prices
SELECT i, price_minor(((i * 7919) % 20001) - 10000, (ARRAY['SEK', 'EUR', 'JPY', 'KWD'])[1 + i % 4])
  FROM generate_series(1, 20000) i;
CREATE TEMP TABLE dup AS SELECT p FROM prices UNION ALL SELECT p FROM prices WHERE id % 3 = 0;
ANALYZE prices;
ANALYZE dup;

SELECT results_eq(
	$$SELECT p FROM prices ORDER BY p$$,
	$$SELECT p FROM prices ORDER BY currency(p), minor_units(p)$$,
	'ORDER BY price = ORDER BY currency code, then amount');
SELECT results_eq(
	$$SELECT p FROM prices ORDER BY p DESC$$,
	$$SELECT p FROM prices ORDER BY currency(p) DESC, minor_units(p) DESC$$,
	'ORDER BY price DESC');
SELECT results_eq(
	$$SELECT p FROM prices ORDER BY p LIMIT 1$$,
	$$SELECT min(p) FROM prices$$,
	'min() agrees with ORDER BY');
SELECT set_eq(
	$$SELECT currency(p), count(*) FROM prices GROUP BY currency(p)$$,
	$$VALUES ('EUR', 5000::bigint), ('JPY', 5000), ('KWD', 5000), ('SEK', 5000)$$,
	'GROUP BY currency');

-- GROUP BY / DISTINCT by hashing and by sorting give the same groups
SET LOCAL enable_sort = off;
SELECT ok(pg_temp.plan_text('SELECT p, count(*) FROM dup GROUP BY p') ~ 'HashAggregate', 'GROUP BY price can hash');
SELECT is((SELECT count(*) FROM (SELECT p FROM dup GROUP BY p) s), 20000::bigint, 'GROUP BY price (hashed): 20000 groups');
SELECT bag_eq($$SELECT p, count(*) FROM dup GROUP BY p$$,
              $$SELECT p, CASE WHEN id % 3 = 0 THEN 2::bigint ELSE 1::bigint END FROM prices$$,
              'hashed groups hold exactly the duplicates');
RESET enable_sort;
SET LOCAL enable_hashagg = off;
SELECT ok(pg_temp.plan_text('SELECT p, count(*) FROM dup GROUP BY p') ~ 'GroupAggregate', 'GROUP BY price can sort');
SELECT is((SELECT count(*) FROM (SELECT p FROM dup GROUP BY p) s), 20000::bigint, 'GROUP BY price (sorted): 20000 groups');
SELECT is((SELECT count(*) FROM (SELECT DISTINCT p FROM dup) s), 20000::bigint, 'DISTINCT price (sorted)');
RESET enable_hashagg;
SELECT is((SELECT count(DISTINCT p) FROM dup), 20000::bigint, 'count(DISTINCT price)');

-- ---------------------------------------------------------------- indexes
CREATE INDEX prices_p_btree ON prices (p);
SET LOCAL enable_seqscan = off;
SET LOCAL enable_bitmapscan = off;
SELECT ok(pg_temp.plan_text($$SELECT id FROM prices WHERE p = '12.34 SEK'$$) ~ 'Index Scan using prices_p_btree',
          'btree index used for =');
SELECT ok(pg_temp.plan_text($$SELECT id FROM prices WHERE p BETWEEN '10.00 SEK' AND '20.00 SEK'$$)
          ~ 'Index Scan using prices_p_btree.*\n.*Index Cond: \(\(p >= ',
          'btree index used for a range');
SELECT ok(pg_temp.plan_text($$SELECT p FROM prices ORDER BY p LIMIT 5$$) ~ 'Index Only Scan using prices_p_btree',
          'btree index used for ORDER BY');
SELECT ok(pg_temp.plan_text($$SELECT max(p) FROM prices$$) ~ 'Index Only Scan Backward using prices_p_btree',
          'max() uses the btree index (SORTOP)');
SELECT set_eq($$SELECT id FROM prices WHERE p BETWEEN '10.00 SEK' AND '20.00 SEK'$$,
              $$SELECT id FROM prices WHERE currency(p) = 'SEK' AND minor_units(p) BETWEEN 1000 AND 2000$$,
              'range scan through the index finds exactly the SEK rows in range');
SELECT set_eq($$SELECT id FROM prices WHERE p >= '0.000 KWD' AND p < '-100.00 SEK'$$,
              $$SELECT id FROM prices WHERE currency(p) = 'KWD' AND minor_units(p) >= 0$$,
              'range up to below every SEK row: the non-negative KWD rows');
SELECT set_eq($$SELECT id FROM prices WHERE p > '10.000 KWD' AND p < '0.00 SEK'$$,
              $$SELECT id FROM prices WHERE currency(p) = 'SEK' AND minor_units(p) < 0$$,
              'range across the currency boundary: the negative SEK rows');
DROP INDEX prices_p_btree;

CREATE INDEX prices_p_hash ON prices USING hash (p);
SELECT ok(pg_temp.plan_text($$SELECT id FROM prices WHERE p = '12.34 SEK'$$) ~ 'Index Scan using prices_p_hash',
          'hash index used for =');
SELECT results_eq($$SELECT id FROM prices WHERE p = '719 JPY'$$,
                  $$VALUES (4242)$$,
                  'hash index lookup finds the right row');
RESET enable_seqscan;
RESET enable_bitmapscan;
DROP INDEX prices_p_hash;

-- ---------------------------------------------------------------- joins
SET LOCAL enable_mergejoin = off;
SET LOCAL enable_nestloop = off;
SELECT ok(pg_temp.plan_text('SELECT count(*) FROM prices a JOIN dup b ON a.p = b.p') ~ 'Hash Join', 'hash join on price');
SELECT is((SELECT count(*) FROM prices a JOIN dup b ON a.p = b.p), 26666::bigint, 'hash join result');
RESET enable_mergejoin;
SET LOCAL enable_hashjoin = off;
SELECT ok(pg_temp.plan_text('SELECT count(*) FROM prices a JOIN dup b ON a.p = b.p') ~ 'Merge Join', 'merge join on price');
SELECT is((SELECT count(*) FROM prices a JOIN dup b ON a.p = b.p), 26666::bigint, 'merge join result');
RESET enable_hashjoin;
RESET enable_nestloop;

-- ---------------------------------------------------------------- hash partitioning (extended hash)
CREATE TEMP TABLE hparts (p price) PARTITION BY HASH (p);
CREATE TEMP TABLE hparts_0 PARTITION OF hparts FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TEMP TABLE hparts_1 PARTITION OF hparts FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO hparts SELECT p FROM prices;
SELECT ok((SELECT count(*) FROM hparts_0) BETWEEN 9000 AND 11000 AND (SELECT count(*) FROM hparts) = 20000,
          'PARTITION BY HASH on price spreads the rows');
SELECT is((SELECT count(*) FROM hparts WHERE p = (SELECT p FROM prices WHERE id = 4242)), 1::bigint,
          'lookup in the hash-partitioned table finds an equal price');
SELECT is((SELECT count(*) FROM hparts WHERE p = '719 JPY'), 1::bigint, 'partition pruning with a constant finds it');

-- ---------------------------------------------------------------- UNIQUE through the btree opclass
CREATE TEMP TABLE uniq (p price UNIQUE);
INSERT INTO uniq VALUES ('1.00 SEK'), ('1.00 EUR');
SELECT throws_ok($$INSERT INTO uniq VALUES ('1.0 sek')$$, '23505', NULL, 'UNIQUE on price rejects an equal value');
SELECT lives_ok($$INSERT INTO uniq VALUES ('1.00 NOK')$$, 'UNIQUE on price accepts another currency');

SELECT * FROM finish();
ROLLBACK;
