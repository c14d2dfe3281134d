-- pricing models: tiered_price (graduated, volume) and package_price
SET search_path = subbilling, public;

CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
    hint text;
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' | ' || nullif(detail, ''), '')
           || coalesce(' | ' || nullif(hint, ''), '');
END
$$;

-- the tier type and its constructor
SELECT tier(10, '1.00 SEK') AS plain, tier(NULL, '0.50 SEK', '100.00 SEK') AS open_with_fee,
       '(50,0.80 SEK,)'::tier AS from_text;

-- three tiers: 1-10 at 1.00, 11-50 at 0.80, 51+ at 0.50 SEK
CREATE TEMP TABLE t3 AS
    SELECT ARRAY[tier(10, '1.00 SEK'), tier(50, '0.80 SEK'), tier(NULL, '0.50 SEK')] AS tiers;
SELECT q, tiered_price(q, tiers, 'graduated') AS graduated, tiered_price(q, tiers, 'volume') AS volume
  FROM t3, unnest('{0, 1, 9.5, 10, 10.5, 11, 50, 51, 60, 1000}'::numeric[]) AS q;
-- 60 graduated: 10 * 1.00 + 40 * 0.80 + 10 * 0.50 = 10 + 32 + 5 = 47.00; volume: 60 * 0.50 = 30.00

-- flat fees: a base fee of 100.00 that includes 10 users, then 50.00 a user,
-- and from 100 users a second fee of 500.00 with 40.00 a user
CREATE TEMP TABLE fees AS
    SELECT ARRAY[tier(10, NULL, '100.00 SEK'), tier(100, '50.00 SEK'), tier(NULL, '40.00 SEK', '500.00 SEK')] AS tiers;
SELECT q, tiered_price(q, tiers, 'graduated') AS graduated, tiered_price(q, tiers, 'volume') AS volume
  FROM fees, unnest('{0, 10, 11, 100, 101, 150}'::numeric[]) AS q;
-- 150 graduated: 100 + 90 * 50 + 500 + 50 * 40 = 100 + 4500 + 500 + 2000 = 7100.00
-- 150 volume: 500 + 150 * 40 = 6500.00

-- the exact total is rounded once, half away from zero
SELECT tiered_price(3, ARRAY[tier(NULL, '0.01 EUR')], 'graduated') AS one_cent_each,
       tiered_price(0.5, ARRAY[tier(NULL, '0.01 EUR')], 'graduated') AS half_unit_rounds_up,
       tiered_price(0.49, ARRAY[tier(NULL, '0.01 EUR')], 'graduated') AS rounds_down,
       tiered_price(1.25, ARRAY[tier(1, '0.01 EUR'), tier(NULL, '0.02 EUR')], 'graduated') AS half_cent,
       tiered_price(1, ARRAY[tier(0.5, '0.01 EUR'), tier(NULL, '0.01 EUR')], 'graduated') AS one_rounding;
-- 1 * 0.01 + 0.25 * 0.02 = 0.015 -> 0.02
-- 0.5 * 0.01 + 0.5 * 0.01 = 0.01 exactly (rounding each tier would give 0.01 + 0.01 = 0.02)

-- a last tier with a limit: quantities up to it are fine
SELECT tiered_price(50, ARRAY[tier(10, '1.00 SEK'), tier(50, '0.80 SEK')], 'graduated') AS at_the_limit;

-- negative prices (discount tiers) and other currencies
SELECT tiered_price(20, ARRAY[tier(10, '10 JPY'), tier(NULL, '-1 JPY', '-5 JPY')], 'graduated') AS jpy,
       tiered_price(3, ARRAY[tier(NULL, '0.125 KWD')], 'volume') AS kwd;

-- mode is case-insensitive
SELECT tiered_price(60, tiers, 'GRADUATED') AS g, tiered_price(60, tiers, 'Volume') AS v FROM t3;

-- errors
SELECT call, pg_temp.try('SELECT subbilling.' || call) AS result
  FROM (VALUES ($$tiered_price(1, ARRAY[subbilling.tier(NULL, '1.00 SEK')], 'stairstep')$$),
               ($$tiered_price(-1, ARRAY[subbilling.tier(NULL, '1.00 SEK')], 'graduated')$$),
               ($$tiered_price('NaN', ARRAY[subbilling.tier(NULL, '1.00 SEK')], 'graduated')$$),
               ($$tiered_price('Infinity', ARRAY[subbilling.tier(NULL, '1.00 SEK')], 'volume')$$),
               ($$tiered_price(1, '{}'::subbilling.tier[], 'graduated')$$),
               ($$tiered_price(1, ARRAY[NULL::subbilling.tier], 'graduated')$$),
               ($$tiered_price(1, ARRAY[subbilling.tier(10, '1.00 SEK'), NULL], 'graduated')$$),
               ($$tiered_price(1, ARRAY[[subbilling.tier(10, '1.00 SEK')], [subbilling.tier(NULL, '1.00 SEK')]], 'graduated')$$),
               ($$tiered_price(1, ARRAY[subbilling.tier(NULL, '1.00 SEK'), subbilling.tier(10, '1.00 SEK')], 'graduated')$$),
               ($$tiered_price(1, ARRAY[subbilling.tier(10, '1.00 SEK'), subbilling.tier(10, '0.50 SEK')], 'graduated')$$),
               ($$tiered_price(1, ARRAY[subbilling.tier(10, '1.00 SEK'), subbilling.tier(5, '0.50 SEK')], 'volume')$$),
               ($$tiered_price(1, ARRAY[subbilling.tier(0, '1.00 SEK'), subbilling.tier(NULL, '0.50 SEK')], 'graduated')$$),
               ($$tiered_price(1, ARRAY[subbilling.tier(-5, '1.00 SEK'), subbilling.tier(NULL, '0.50 SEK')], 'graduated')$$),
               ($$tiered_price(1, ARRAY[subbilling.tier('NaN', '1.00 SEK'), subbilling.tier(NULL, '0.50 SEK')], 'graduated')$$),
               ($$tiered_price(1, ARRAY[subbilling.tier(10, '1.00 SEK'), subbilling.tier('Infinity', '0.50 SEK')], 'graduated')$$),
               ($$tiered_price(51, ARRAY[subbilling.tier(10, '1.00 SEK'), subbilling.tier(50, '0.80 SEK')], 'graduated')$$),
               ($$tiered_price(50.01, ARRAY[subbilling.tier(10, '1.00 SEK'), subbilling.tier(50, '0.80 SEK')], 'volume')$$),
               ($$tiered_price(1, ARRAY[subbilling.tier(10, '1.00 SEK'), subbilling.tier(NULL, '0.80 EUR')], 'graduated')$$),
               ($$tiered_price(1, ARRAY[subbilling.tier(NULL, '1.00 SEK', '1.00 NOK')], 'graduated')$$),
               ($$tiered_price(1, ARRAY[subbilling.tier(10, NULL), subbilling.tier(NULL, NULL)], 'graduated')$$),
               ($$tiered_price(10000000000000000000, ARRAY[subbilling.tier(NULL, '1.00 SEK')], 'graduated')$$)
       ) AS t(call);

-- package_price: ceil(quantity / package_size) packages
SELECT q, size, package_price(q, size, '5.00 EUR')
  FROM (VALUES (0, 100), (1, 100), (99, 100), (100, 100), (100.0001, 100), (101, 100), (250, 100),
               (1, 0.3), (0.9, 0.3), (0.90000000000000000001, 0.3), (10, 3.3333333333333333333333)) AS t(q, size);
SELECT call, pg_temp.try('SELECT subbilling.' || call) AS result
  FROM (VALUES ($$package_price(1, 0, '5.00 EUR')$$), ($$package_price(1, -1, '5.00 EUR')$$),
               ($$package_price(1, 'NaN', '5.00 EUR')$$), ($$package_price(1, 'Infinity', '5.00 EUR')$$),
               ($$package_price(-1, 10, '5.00 EUR')$$), ($$package_price('NaN', 10, '5.00 EUR')$$),
               ($$package_price(1e30, 1, '5.00 EUR')$$)) AS t(call);

-- STRICT
SELECT tiered_price(NULL, tiers, 'graduated') IS NULL AS a, tiered_price(1, NULL, 'graduated') IS NULL AS b,
       tiered_price(1, tiers, NULL) IS NULL AS c, package_price(NULL, 1, '1.00 SEK') IS NULL AS d
  FROM t3;
