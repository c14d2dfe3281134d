-- price: text and binary input/output
SET search_path = subbilling, public;

-- err(sql): run a statement, show SQLSTATE, message and detail instead of failing
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	d text;
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || SQLERRM || CASE WHEN d <> '' THEN ' | ' || d ELSE '' END;
END
$$;

-- canonical output for exponents 0, 2, 3 and 4
SELECT p::text AS canonical, minor_units(p), currency(p), amount(p)
  FROM (VALUES ('100 JPY'::price), ('-7 KRW'), ('0 ISK'), ('1234.50 SEK'), ('-0.05 EUR'),
               ('0.5 USD'), ('7 GBP'), ('1.234 KWD'), ('-0.001 BHD'), ('3 TND'), ('1.2345 CLF'),
               ('-0.0001 UYW'), ('2 UYW')) v(p);

-- input is lenient about case, sign, spacing and missing trailing zeros; output is not
SELECT '+1 sek'::price, '  12.5   Sek  '::price, '-0.00 EUR'::price, '-0 JPY'::price,
       '007.10 usd'::price, E'\t5\tEUR\n'::price;

-- round trip text -> price -> text -> price
SELECT p, p::text::price = p AS round_trip
  FROM (VALUES ('92233720368547758.07 SEK'::price), ('-92233720368547758.08 SEK'),
               ('9223372036854775807 JPY'), ('-9223372036854775808 JPY'),
               ('9223372036854775.807 KWD'), ('-922337203685477.5808 CLF'),
               ('0.01 SEK'), ('-0.01 SEK')) v(p);

-- the int64 limits are exact
SELECT minor_units('92233720368547758.07 SEK') = 9223372036854775807 AS max_ok,
       minor_units('-92233720368547758.08 SEK') = -9223372036854775808 AS min_ok;

-- malformed input: 22P02 with a reason, out of range: 22003
SELECT s AS input, pg_temp.err(format('SELECT %L::subbilling.price', s)) AS result
  FROM (VALUES (''), ('   '), ('abc'), ('12'), ('12 '), ('SEK'), ('12SEK'), ('12 SE'),
               ('12 SEKK'), ('12 S1K'), ('12 SEK x'), ('12.'), ('12. SEK'), ('.5 SEK'),
               ('--1 SEK'), ('+-1 SEK'), ('- 1 SEK'), ('1,50 SEK'), ('1.5.0 SEK'),
               ('1e3 SEK'), ('0x10 SEK'), ('12 ABC'), ('12 XAU'), ('12 XXX'), ('12 HRK'),
               ('1.234 SEK'), ('1.230 sek'), ('1.0 JPY'), ('1.2345 KWD'), ('1.23456 CLF'),
               ('92233720368547758.08 SEK'), ('-92233720368547758.09 SEK'),
               ('9223372036854775808 JPY'), ('-9223372036854775809 JPY'),
               ('99999999999999999999999999 EUR'), ('-99999999999999999999999999 EUR'),
               ('922337203685477.5808 CLF'), ('  1.234 sek   '), ('-92233720368547758.09 sek  ')) v(s);

-- a NUL-free but non-ASCII code is garbage, not an unknown currency
SELECT pg_temp.err($$SELECT '12 SÉK'::subbilling.price$$);

-- constructors
SELECT price(12.5, 'sek'), price(-0.001, 'KWD'), price(100, 'JPY'), price(1.230, 'SEK'),
       price(92233720368547758.07, 'SEK'), price(-92233720368547758.08, 'SEK');
SELECT price_minor(150, 'sek'), price_minor(-9223372036854775808, 'JPY'),
       price_minor(9223372036854775807, 'CLF');
SELECT currency_exponent('JPY'), currency_exponent('sek'), currency_exponent('KWD'),
       currency_exponent('CLF');
SELECT stmt, pg_temp.err(stmt)
  FROM (VALUES ('SELECT subbilling.price(1.234, ''SEK'')'),
               ('SELECT subbilling.price(0.5, ''JPY'')'),
               ('SELECT subbilling.price(1, ''ABC'')'),
               ('SELECT subbilling.price(1, '' SEK'')'),
               ('SELECT subbilling.price(1, ''XAU'')'),
               ('SELECT subbilling.price(''NaN'', ''SEK'')'),
               ('SELECT subbilling.price(''Infinity'', ''SEK'')'),
               ('SELECT subbilling.price(92233720368547758.08, ''SEK'')'),
               ('SELECT subbilling.price(-92233720368547758.09, ''SEK'')'),
               ('SELECT subbilling.price_minor(1, ''sekk'')'),
               ('SELECT subbilling.currency_exponent(''XDR'')')) v(stmt);

-- binary: the wire format is int8 minor units, 4 bytes of code (NUL-terminated), int4 reserved
SELECT price_send('1.50 SEK'), price_send('-1 JPY');

-- binary round trip through COPY BINARY (a server-side file)
CREATE TEMP TABLE bin_src (id int, p price);
INSERT INTO bin_src VALUES (1, '92233720368547758.07 SEK'), (2, '-92233720368547758.08 SEK'),
	(3, '-9223372036854775808 JPY'), (4, '1.234 KWD'), (5, '-0.0001 CLF'), (6, NULL);
CREATE TEMP TABLE bin_dst (LIKE bin_src);
DO $$
DECLARE
	f text := '/tmp/subbilling_price_io_' || pg_backend_pid() || '.copy';
BEGIN
	EXECUTE format('COPY bin_src TO %L WITH (FORMAT binary)', f);
	EXECUTE format('COPY bin_dst FROM %L WITH (FORMAT binary)', f);
END
$$;
SELECT s.id, s.p, d.p AS copied, s.p IS NOT DISTINCT FROM d.p AS same
  FROM bin_src s JOIN bin_dst d USING (id) ORDER BY id;

-- binary input is validated: write COPY BINARY files by hand (one price column)
CREATE TEMP TABLE bin_bad (p subbilling.price);
CREATE FUNCTION pg_temp.copy_bin(field bytea) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	f text := '/tmp/subbilling_price_io_' || pg_backend_pid() || '.bad';
	body bytea := '\x5047434f50590aff0d0a00'::bytea || '\x0000000000000000'::bytea
		|| '\x0001'::bytea || int4send(length(field)) || field || '\xffff'::bytea;
	lo oid;
	r text;
BEGIN
	lo := lo_from_bytea(0, body);
	PERFORM lo_export(lo, f);
	PERFORM lo_unlink(lo);
	TRUNCATE bin_bad;
	r := pg_temp.err(format('COPY bin_bad FROM %L WITH (FORMAT binary)', f));
	IF r = 'ok' THEN
		SELECT 'ok: ' || p::text INTO r FROM bin_bad;
	END IF;
	RETURN r;
END
$$;
SELECT what, pg_temp.copy_bin(field)
  FROM (VALUES ('valid 1.50 SEK', '\x0000000000000096' || '\x53454b00'::bytea || '\x00000000'::bytea),
               ('lower-case code', '\x0000000000000096' || '\x73656b00'::bytea || '\x00000000'::bytea),
               ('unknown code', '\x0000000000000096' || '\x41424300'::bytea || '\x00000000'::bytea),
               ('code without NUL', '\x0000000000000096' || '\x53454b4b'::bytea || '\x00000000'::bytea),
               ('reserved not zero', '\x0000000000000096' || '\x53454b00'::bytea || '\x00000001'::bytea),
               ('too short', '\x0000000000000096' || '\x53454b00'::bytea),
               ('too long', '\x0000000000000096' || '\x53454b00'::bytea || '\x0000000000'::bytea)
       ) v(what, field);

-- remove the two server-side files (the test runs as a superuser)
DO $$
BEGIN
	EXECUTE format('COPY (SELECT 1) TO PROGRAM %L',
		format('rm -f /tmp/subbilling_price_io_%s.copy /tmp/subbilling_price_io_%s.bad', pg_backend_pid(), pg_backend_pid()));
END
$$;
