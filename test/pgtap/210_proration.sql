-- proration: catalogue, behaviour and properties (partition + allocate)
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL datestyle = 'ISO, YMD';
SET LOCAL timezone = 'UTC';
SELECT plan(23);

SELECT function_returns('subbilling', 'prorate', ARRAY['price', 'daterange', 'daterange'], 'price');
SELECT function_returns('subbilling', 'prorate', ARRAY['price', 'tstzrange', 'tstzrange'], 'price');
SELECT volatility_is('subbilling', 'prorate', ARRAY['price', 'daterange', 'daterange'], 'immutable', 'prorate(daterange) is IMMUTABLE');
SELECT volatility_is('subbilling', 'prorate', ARRAY['price', 'tstzrange', 'tstzrange'], 'immutable', 'prorate(tstzrange) is IMMUTABLE');
SELECT is_strict('subbilling', 'prorate', ARRAY['price', 'daterange', 'daterange'], 'prorate(daterange) is STRICT');
SELECT is_strict('subbilling', 'prorate', ARRAY['price', 'tstzrange', 'tstzrange'], 'prorate(tstzrange) is STRICT');
SELECT is((SELECT count(*) FROM pg_proc WHERE pronamespace = 'subbilling'::regnamespace AND proname = 'prorate'
              AND proparallel = 's' AND obj_description(oid, 'pg_proc') IS NOT NULL), 2::bigint,
          'both prorate functions are PARALLEL SAFE and commented');

-- behaviour
SELECT is(prorate('100.00 SEK', '[2024-02-01,2024-03-01)'::daterange, '[2024-02-10,2024-03-01)'), '68.97 SEK'::price,
          '20 of 29 days of 100.00 SEK is 68.97 SEK');
SELECT is(prorate('0.01 EUR', '[2024-01-01,2024-01-03)'::daterange, '[2024-01-01,2024-01-02)'), '0.01 EUR'::price,
          'half a cent rounds away from zero');
SELECT is(prorate('-0.01 EUR', '[2024-01-01,2024-01-03)'::daterange, '[2024-01-01,2024-01-02)'), '-0.01 EUR'::price,
          'minus half a cent rounds away from zero');
SELECT is(prorate('100.00 SEK', '[2024-02-01,2024-03-01)'::daterange, 'empty'), '0.00 SEK'::price, 'empty part: zero');
SELECT is(prorate('100.00 SEK', tstzrange('2024-02-01', '2024-02-02'), tstzrange('2024-02-01 06:00', '2024-02-01 14:00')),
          '33.33 SEK'::price, '8 of 24 hours of 100.00 SEK is 33.33 SEK');
SELECT throws_ok($$SELECT subbilling.prorate('1.00 SEK', '[2024-02-01,2024-03-01)'::daterange, '[2024-01-01,2024-02-02)')$$,
                 '22023', 'part is not within the period', 'part outside the period: 22023');
SELECT throws_ok($$SELECT subbilling.prorate('1.00 SEK', 'empty'::daterange, 'empty')$$,
                 '22012', 'cannot prorate over an empty period', 'empty period: 22012');
SELECT throws_ok($$SELECT subbilling.prorate('1.00 SEK', '[2024-02-01,)'::daterange, 'empty')$$,
                 '22023', 'period must be bounded', 'unbounded period: 22023');
SELECT throws_ok($$SELECT subbilling.prorate('1.00 SEK', '[2024-02-01,2024-02-01]'::tstzrange, 'empty')$$,
                 '22012', 'cannot prorate over an empty period', 'zero-length tstzrange period: 22012');

-- PROPERTY setup: for every anchor day 2023-01-01 .. 2028-12-31, its monthly period
-- [anchor, next boundary) is cut into 1 to 4 parts at deterministic offsets; the price
-- varies between -1000.00 and 8999.99 SEK (some odd, some negative)
CREATE TEMP TABLE cases ON COMMIT DROP AS
    SELECT i, r, len, total,
           (SELECT array_agg(DISTINCT c ORDER BY c)
              FROM unnest(ARRAY[0, len,
                                CASE WHEN i % 4 > 0 THEN 1 + (i * 7) % (len - 1) ELSE 0 END,
                                CASE WHEN i % 4 > 1 THEN 1 + (i * 13) % (len - 1) ELSE 0 END,
                                CASE WHEN i % 4 > 2 THEN 1 + (i * 29) % (len - 1) ELSE 0 END]) AS c) AS cuts
      FROM (SELECT i, r, upper(r) - lower(r) AS len, price_minor((i * 7919) % 1000000 - 100000, 'SEK') AS total
              FROM (SELECT (row_number() OVER (ORDER BY a))::int AS i,
                           period_of(a::date, 'monthly', a::date) AS r
                      FROM generate_series('2023-01-01'::date, '2028-12-31', '1 day') AS a) AS s) AS t;
CREATE TEMP TABLE parts ON COMMIT DROP AS
    SELECT c.i, j, daterange(lower(c.r) + cuts[j], lower(c.r) + cuts[j + 1]) AS part,
           cuts[j + 1] - cuts[j] AS days
      FROM cases AS c, generate_series(1, array_length(c.cuts, 1) - 1) AS j;
CREATE TEMP TABLE allocated ON COMMIT DROP AS
    SELECT c.i, p.j, p.part, p.days, c.total, c.r,
           (allocate(c.total, (SELECT array_agg(days::numeric ORDER BY j) FROM parts WHERE parts.i = c.i)))[p.j] AS share,
           prorate(c.total, c.r, p.part) AS prorated
      FROM cases AS c JOIN parts AS p USING (i);

SELECT is((SELECT count(*) FROM cases), 2192::bigint, '2192 monthly periods');
SELECT is((SELECT count(DISTINCT n) FROM (SELECT count(*) AS n FROM parts GROUP BY i) AS x), 4::bigint,
          'periods are cut into 1, 2, 3 and 4 parts');
SELECT is((SELECT count(*) FROM cases AS c
            WHERE (SELECT sum(days) FROM parts WHERE parts.i = c.i) = c.len
              AND (SELECT sum(share) FROM allocated WHERE allocated.i = c.i) = c.total
              AND prorate(c.total, c.r, c.r) = c.total),
          2192::bigint,
          'PROPERTY parts partition the period, allocate() by days sums exactly to the whole, prorate of the whole is the whole');
SELECT is((SELECT count(*) FROM allocated
            WHERE abs(minor_units(share) - minor_units(prorated)) <= 1
              AND minor_units(prorated) = round(minor_units(total)::numeric * days / (upper(r) - lower(r)))),
          (SELECT count(*) FROM parts),
          'PROPERTY each allocated part is within one minor unit of prorate(), and prorate() = round(price * days / period days) half away from zero');
SELECT ok((SELECT count(*) FROM cases AS c
            WHERE (SELECT sum(prorated) FROM allocated WHERE allocated.i = c.i) <> c.total) > 100,
          'independent rounding of the parts does not always sum to the whole (why allocate exists)');
SELECT is((SELECT count(*) FROM allocated
            WHERE prorate(total, tstzrange(lower(r)::timestamptz, upper(r)::timestamptz),
                          tstzrange(lower(part)::timestamptz, upper(part)::timestamptz)) = prorated),
          (SELECT count(*) FROM parts),
          'PROPERTY prorate by time over whole UTC days equals prorate by days');

-- PROPERTY: prorating by microseconds over parts cut at odd instants still allocates exactly
SELECT is((SELECT count(*) FROM (
             SELECT i, sum(share) = total AS exact,
                    bool_and(abs(minor_units(share) - minor_units(prorate(total, period, part))) <= 1) AS close
               FROM (SELECT i, total, period, part,
                            (allocate(total, array_agg(w) OVER (PARTITION BY i ORDER BY k
                                                                ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)))[k] AS share
                       FROM (SELECT i, total, period, k,
                                    tstzrange(cut[k], cut[k + 1]) AS part,
                                    extract(epoch FROM cut[k + 1] - cut[k]) * 1000000 AS w
                               FROM (SELECT i, price_minor(i * 104729 % 2000000, 'EUR') AS total,
                                            tstzrange('2024-01-01', '2024-01-01'::timestamptz + i * interval '1 hour') AS period,
                                            ARRAY['2024-01-01'::timestamptz,
                                                  '2024-01-01'::timestamptz + i * interval '17 minutes 0.000123 seconds',
                                                  '2024-01-01'::timestamptz + i * interval '41 minutes 0.5 seconds',
                                                  '2024-01-01'::timestamptz + i * interval '1 hour'] AS cut
                                       FROM generate_series(1, 1000) AS i) AS c,
                                    generate_series(1, 3) AS k) AS p) AS a
              GROUP BY i, total) AS x
            WHERE exact AND close),
          1000::bigint,
          'PROPERTY 1000 periods cut at microsecond instants: allocate by microseconds is exact and close to prorate');

SELECT * FROM finish();
ROLLBACK;
