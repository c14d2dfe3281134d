-- price: catalog shape: type, functions and their labels, operators, opclasses, aggregates,
-- and a comment on every object
BEGIN;
SET LOCAL search_path = subbilling, public;

CREATE TEMP TABLE my_funcs (sig regprocedure PRIMARY KEY, strict bool);
INSERT INTO my_funcs VALUES
	('subbilling.price_in(cstring)', true), ('subbilling.price_out(subbilling.price)', true),
	('subbilling.price_recv(internal)', true), ('subbilling.price_send(subbilling.price)', true),
	('subbilling.price(numeric, text)', true), ('subbilling.price_minor(bigint, text)', true),
	('subbilling.minor_units(subbilling.price)', true), ('subbilling.currency(subbilling.price)', true),
	('subbilling.amount(subbilling.price)', true), ('subbilling.currency_exponent(text)', true),
	('subbilling.price_add(subbilling.price, subbilling.price)', true),
	('subbilling.price_sub(subbilling.price, subbilling.price)', true),
	('subbilling.price_uminus(subbilling.price)', true), ('subbilling.abs(subbilling.price)', true),
	('subbilling.price_mul_numeric(subbilling.price, numeric)', true),
	('subbilling.numeric_mul_price(numeric, subbilling.price)', true),
	('subbilling.price_mul_int4(subbilling.price, integer)', true),
	('subbilling.int4_mul_price(integer, subbilling.price)', true),
	('subbilling.price_mul_int8(subbilling.price, bigint)', true),
	('subbilling.int8_mul_price(bigint, subbilling.price)', true),
	('subbilling.price_div_numeric(subbilling.price, numeric)', true),
	('subbilling.price_div_int4(subbilling.price, integer)', true),
	('subbilling.price_div_int8(subbilling.price, bigint)', true),
	('subbilling.price_div_price(subbilling.price, subbilling.price)', true),
	('subbilling.tax(subbilling.price, numeric)', true),
	('subbilling.net_of(subbilling.price, numeric)', true),
	('subbilling.price_cmp(subbilling.price, subbilling.price)', true),
	('subbilling.price_lt(subbilling.price, subbilling.price)', true),
	('subbilling.price_le(subbilling.price, subbilling.price)', true),
	('subbilling.price_eq(subbilling.price, subbilling.price)', true),
	('subbilling.price_ne(subbilling.price, subbilling.price)', true),
	('subbilling.price_ge(subbilling.price, subbilling.price)', true),
	('subbilling.price_gt(subbilling.price, subbilling.price)', true),
	('subbilling.price_hash(subbilling.price)', true),
	('subbilling.price_hash_extended(subbilling.price, bigint)', true),
	('subbilling.price_smaller(subbilling.price, subbilling.price)', true),
	('subbilling.price_larger(subbilling.price, subbilling.price)', true),
	('subbilling.price_accum(internal, subbilling.price)', false),
	('subbilling.price_accum_inv(internal, subbilling.price)', false),
	('subbilling.price_accum_combine(internal, internal)', false),
	('subbilling.price_accum_serialize(internal)', true),
	('subbilling.price_accum_deserialize(bytea, internal)', true),
	('subbilling.price_sum_final(internal)', false),
	('subbilling.price_avg_final(internal)', false),
	('subbilling.allocate(subbilling.price, numeric[])', true);

SELECT plan(31);

SELECT has_type('subbilling', 'price', 'type price exists');
SELECT is((SELECT typlen::int FROM pg_type WHERE oid = 'subbilling.price'::regtype), 16, 'price is 16 bytes');
SELECT is((SELECT typbyval FROM pg_type WHERE oid = 'subbilling.price'::regtype), false, 'price is passed by reference');
SELECT is((SELECT typalign FROM pg_type WHERE oid = 'subbilling.price'::regtype), 'd'::"char", 'price is double-aligned');
SELECT isnt((SELECT typreceive FROM pg_type WHERE oid = 'subbilling.price'::regtype), 0::regproc, 'price has binary input');
SELECT isnt((SELECT typsend FROM pg_type WHERE oid = 'subbilling.price'::regtype), 0::regproc, 'price has binary output');

SELECT is((SELECT count(*) FROM my_funcs f JOIN pg_proc p ON p.oid = f.sig), 45::bigint, 'all 45 functions exist');
SELECT is((SELECT array_agg(sig::text) FROM my_funcs f JOIN pg_proc p ON p.oid = f.sig WHERE p.provolatile <> 'i'),
          NULL, 'every price function is IMMUTABLE');
SELECT is((SELECT array_agg(sig::text) FROM my_funcs f JOIN pg_proc p ON p.oid = f.sig WHERE p.proparallel <> 's'),
          NULL, 'every price function is PARALLEL SAFE');
SELECT is((SELECT array_agg(sig::text) FROM my_funcs f JOIN pg_proc p ON p.oid = f.sig WHERE p.proisstrict <> f.strict),
          NULL, 'STRICT everywhere except the aggregate support functions that handle NULL state');
SELECT is((SELECT array_agg(sig::text) FROM my_funcs f JOIN pg_proc p ON p.oid = f.sig WHERE p.proleakproof),
          NULL, 'nothing is LEAKPROOF (errors can reveal values)');
SELECT is((SELECT array_agg(sig::text) FROM my_funcs f WHERE obj_description(f.sig, 'pg_proc') IS NULL),
          NULL, 'every function has a comment');
SELECT isnt(obj_description('subbilling.price'::regtype, 'pg_type'), NULL, 'the type has a comment');

-- operators
SELECT is((SELECT count(*) FROM pg_operator o
            WHERE o.oprnamespace = 'subbilling'::regnamespace
              AND 'subbilling.price'::regtype IN (o.oprleft, o.oprright)), 19::bigint,
          '19 operators on price: + - (binary and unary), six *, four /, six comparisons');
SELECT is((SELECT array_agg(o.oid::regoperator::text) FROM pg_operator o
            WHERE o.oprnamespace = 'subbilling'::regnamespace
              AND 'subbilling.price'::regtype IN (o.oprleft, o.oprright)
              AND obj_description(o.oid, 'pg_operator') IS NULL),
          NULL, 'every operator has a comment');
SELECT is((SELECT array_agg(o.oprname ORDER BY o.oprname) FROM pg_operator o
            WHERE o.oprleft = 'subbilling.price'::regtype AND o.oprright = 'subbilling.price'::regtype
              AND o.oprresult = 'boolean'::regtype AND (o.oprcom = 0 OR o.oprnegate = 0 OR o.oprrest = 0 OR o.oprjoin = 0)),
          NULL, 'comparison operators have COMMUTATOR, NEGATOR, RESTRICT and JOIN');
SELECT ok((SELECT oprcanhash AND oprcanmerge FROM pg_operator
            WHERE oprname = '=' AND oprleft = 'subbilling.price'::regtype AND oprright = 'subbilling.price'::regtype),
          '= is HASHES and MERGES');
SELECT is((SELECT count(*) FROM pg_operator o
            WHERE o.oprname = '*' AND 'subbilling.price'::regtype IN (o.oprleft, o.oprright) AND o.oprcom = 0),
          0::bigint, 'every * has its commutator');

-- operator classes
SELECT has_opclass('subbilling', 'price_ops', 'btree opclass price_ops');
SELECT has_opclass('subbilling', 'price_hash_ops', 'hash opclass price_hash_ops');
SELECT ok((SELECT opcdefault FROM pg_opclass WHERE opcname = 'price_ops' AND opcmethod = (SELECT oid FROM pg_am WHERE amname = 'btree')),
          'price_ops is the default btree opclass');
SELECT ok((SELECT opcdefault FROM pg_opclass WHERE opcname = 'price_hash_ops' AND opcmethod = (SELECT oid FROM pg_am WHERE amname = 'hash')),
          'price_hash_ops is the default hash opclass');
SELECT is((SELECT count(*) FROM pg_opclass c WHERE c.opcname IN ('price_ops', 'price_hash_ops')
            AND obj_description(c.oid, 'pg_opclass') IS NULL), 0::bigint, 'opclasses have comments');

-- aggregates
SELECT is((SELECT array_agg(p.proname::text ORDER BY p.proname) FROM pg_aggregate a
            JOIN pg_proc p ON p.oid = a.aggfnoid
           WHERE p.pronamespace = 'subbilling'::regnamespace
             AND p.proargtypes[0] = 'subbilling.price'::regtype AND p.pronargs = 1),
          ARRAY['avg', 'max', 'min', 'sum'],
          'aggregates sum, avg, min, max');
SELECT is((SELECT count(*) FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
            WHERE p.pronamespace = 'subbilling'::regnamespace AND p.proargtypes[0] = 'subbilling.price'::regtype
              AND p.pronargs = 1 AND p.proparallel = 's' AND a.aggcombinefn <> 0), 4::bigint,
          'all four are PARALLEL SAFE with a combine function');
SELECT is((SELECT count(*) FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
            WHERE p.proname IN ('sum', 'avg') AND p.pronamespace = 'subbilling'::regnamespace
              AND p.proargtypes[0] = 'subbilling.price'::regtype
              AND a.aggtranstype = 'internal'::regtype AND a.aggserialfn <> 0 AND a.aggdeserialfn <> 0), 2::bigint,
          'sum and avg (internal state) have serial/deserial functions');
SELECT is((SELECT count(*) FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
            WHERE p.proname IN ('sum', 'avg') AND p.pronamespace = 'subbilling'::regnamespace
              AND p.proargtypes[0] = 'subbilling.price'::regtype
              AND a.aggmtransfn <> 0 AND a.aggminvtransfn <> 0), 2::bigint,
          'sum and avg have moving-aggregate support (inverse transition)');
SELECT is((SELECT count(*) FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
            WHERE p.proname IN ('min', 'max') AND p.pronamespace = 'subbilling'::regnamespace
              AND p.proargtypes[0] = 'subbilling.price'::regtype AND a.aggsortop <> 0), 2::bigint,
          'min and max have a sort operator (index optimisation)');
SELECT is((SELECT count(*) FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
            WHERE p.pronamespace = 'subbilling'::regnamespace AND p.proargtypes[0] = 'subbilling.price'::regtype
              AND p.pronargs = 1 AND obj_description(p.oid, 'pg_proc') IS NULL), 0::bigint,
          'aggregates have comments');

-- the C interface of price.h is reachable from SQL through the same code
SELECT function_returns('subbilling', 'allocate', ARRAY['price', 'numeric[]'], 'price[]', 'allocate returns price[]');
SELECT function_returns('subbilling', 'amount', ARRAY['price'], 'numeric', 'amount returns numeric');

SELECT * FROM finish();
ROLLBACK;
