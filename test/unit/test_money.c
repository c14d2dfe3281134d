/*
 * Unit tests of src/core/money.c (TAP output).
 *
 *   gcc -Isrc/core test/unit/test_money.c src/core/money.c && ./a.out
 *
 * Examples for every parse status, canonical formatting, the rounding rule
 * of money_muldiv / money_div_round128 and allocation, then deterministic
 * random properties (a fixed-seed xorshift generator).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"
#include "tap.h"

/* an int64 spread over all magnitudes, with the extremes and small values often */
static int64_t
rand_units(void)
{
	uint64_t	r = tap_rng();

	switch (r % 8)
	{
		case 0:
			return INT64_MIN;
		case 1:
			return INT64_MAX;
		case 2:
			return (int64_t) (tap_rng() % 201) - 100;
		case 3:
			return (int64_t) tap_rng();		/* any bits */
		default:
			{
				int			bits = 1 + (int) (tap_rng() % 63);
				int64_t		v = (int64_t) (tap_rng() >> (64 - bits));

				return (r & 16) ? -v : v;
			}
	}
}

static const CurrencyInfo *
cur(const char *code)
{
	return money_currency(code, strlen(code));
}

/* printable form of a test input (TAP lines must not break) */
static const char *
show(const char *in)
{
	static char buf[4][128];
	static int	slot = 0;
	char	   *out = buf[slot = (slot + 1) % 4];
	size_t		o = 0;

	for (; *in && o < sizeof(buf[0]) - 5; in++)
	{
		unsigned char c = (unsigned char) *in;

		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[o++] = (char) c;
		else
			o += (size_t) snprintf(out + o, 5, "\\x%02x", c);
	}
	out[o] = '\0';
	return out;
}

static void
parse_ok(const char *in, int64_t want_units, const char *want_code)
{
	int64_t		units = 12345;
	const CurrencyInfo *c = NULL;
	MoneyParseStatus st = money_parse(in, &units, &c);

	okf(st == MONEY_PARSE_OK && units == want_units && c != NULL && strcmp(c->code, want_code) == 0,
	   "parse \"%s\" = %" PRId64 " %s (got status %d, %" PRId64 " %s)",
	   show(in), want_units, want_code, (int) st, units, c ? c->code : "-");
}

static void
parse_err(const char *in, MoneyParseStatus want)
{
	int64_t		units = 0;
	const CurrencyInfo *c = NULL;
	MoneyParseStatus st = money_parse(in, &units, &c);

	okf(st == want, "parse \"%s\" fails with status %d (got %d)", show(in), (int) want, (int) st);
}

static void
format_is(int64_t units, const char *code, const char *want)
{
	char		buf[MONEY_FORMAT_MAX];
	size_t		len = money_format(units, cur(code), buf);

	okf(strcmp(buf, want) == 0 && len == strlen(want), "format %" PRId64 " %s = \"%s\" (got \"%s\")",
	   units, code, want, buf);
}

static void
muldiv_is(int64_t u, int64_t n, int64_t d, int64_t want)
{
	int64_t		r = 0;
	bool		res = money_muldiv(u, n, d, &r);

	okf(res && r == want, "muldiv(%" PRId64 ", %" PRId64 ", %" PRId64 ") = %" PRId64 " (got %s %" PRId64 ")",
	   u, n, d, want, res ? "true" : "false", r);
}

static void
muldiv_fails(int64_t u, int64_t n, int64_t d)
{
	int64_t		r = 0;

	okf(!money_muldiv(u, n, d, &r), "muldiv(%" PRId64 ", %" PRId64 ", %" PRId64 ") fails", u, n, d);
}

static void
allocate_is(int64_t total, const int64_t *w, int n, const int64_t *want, const char *what)
{
	int64_t		parts[16];
	bool		res = money_allocate(total, w, n, parts);
	bool		same = res;

	for (int i = 0; res && i < n; i++)
		same = same && parts[i] == want[i];
	okf(same, "allocate %" PRId64 ": %s", total, what);
}

/* |a| as unsigned 128 */
static unsigned __int128
uabs128(__int128 a)
{
	return a < 0 ? (unsigned __int128) 0 - (unsigned __int128) a : (unsigned __int128) a;
}

/* r is round(p / d) half away from zero: 2|p - r d| <= |d|, ties away from zero */
static bool
is_rounded_quotient(__int128 p, int64_t d, int64_t r)
{
	__int128	err = p - (__int128) r * d;
	unsigned __int128 twice = uabs128(err) * 2;
	unsigned __int128 ad = uabs128(d);

	if (twice > ad)
		return false;
	if (twice == ad && err != 0)
		/* a tie: r must be the one farther from zero, i.e. |r d| > |p| */
		return uabs128((__int128) r * d) > uabs128(p);
	return true;
}

int
main(void)
{
	/* ------------------------------------------------------------ currencies */
	{
		int			n = money_currency_count();
		bool		sorted = true,
					sane = true;

		for (int i = 0; i < n; i++)
		{
			const CurrencyInfo *c = money_currency_at(i);

			if (i > 0 && strcmp(money_currency_at(i - 1)->code, c->code) >= 0)
				sorted = false;
			if (strlen(c->code) != 3 || c->number <= 0 || c->number > 999 ||
				!(c->exponent == 0 || c->exponent == 2 || c->exponent == 3 || c->exponent == 4) ||
				money_currency(c->code, 3) != c)
				sane = false;
		}
		okf(n >= 150 && n <= 200, "table has %d currencies", n);
		okf(sorted, "table sorted by code, no duplicates");
		okf(sane, "every entry: 3-letter code, numeric code 1..999, exponent 0/2/3/4, found by lookup");
		okf(money_currency_at(-1) == NULL && money_currency_at(n) == NULL, "money_currency_at out of range is NULL");
	}
	{
		const char *zero[] = {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF",
		"UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"};
		const char *three[] = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"};
		const char *four[] = {"CLF", "UYW"};
		const char *two[] = {"SEK", "EUR", "USD", "GBP", "NOK", "DKK", "CHF", "CAD", "AUD", "CNY",
		"INR", "BRL", "MXN", "ZAR", "HUF", "IDR", "TWD", "MGA", "MRU", "XCD", "COU", "BOV", "CHE", "CHW", "MXV", "USN", "ZWG", "XCG", "SLE", "VES", "VED"};
		const char *absent[] = {"XAU", "XAG", "XPD", "XPT", "XDR", "XBA", "XBB", "XBC", "XBD", "XSU",
		"XUA", "XTS", "XXX", "HRK", "SLL", "ZWL", "VEF", "MRO", "STD", "BYR", "LTL", "EEK", "ABC"};
		bool		good = true;

		for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++)
			good = good && cur(zero[i]) && cur(zero[i])->exponent == 0;
		okf(good, "exponent 0 currencies");
		good = true;
		for (size_t i = 0; i < sizeof(three) / sizeof(three[0]); i++)
			good = good && cur(three[i]) && cur(three[i])->exponent == 3;
		okf(good, "exponent 3 currencies");
		good = true;
		for (size_t i = 0; i < sizeof(four) / sizeof(four[0]); i++)
			good = good && cur(four[i]) && cur(four[i])->exponent == 4;
		okf(good, "exponent 4 currencies");
		good = true;
		for (size_t i = 0; i < sizeof(two) / sizeof(two[0]); i++)
			good = good && cur(two[i]) && cur(two[i])->exponent == 2;
		okf(good, "exponent 2 currencies");
		good = true;
		for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
			good = good && cur(absent[i]) == NULL;
		okf(good, "no-minor-unit, withdrawn and made-up codes are unknown");
	}
	okf(cur("SEK") && cur("SEK")->number == 752, "SEK is 752");
	okf(cur("EUR") && cur("EUR")->number == 978, "EUR is 978");
	okf(cur("sek") == cur("SEK") && cur("sEk") == cur("SEK"), "lookup is case-insensitive");
	okf(money_currency("SEKX", 3) == cur("SEK"), "lookup uses len, not NUL");
	okf(money_currency("SE", 2) == NULL && money_currency("SEKK", 4) == NULL && money_currency("", 0) == NULL,
	   "lookup needs exactly 3 letters");
	okf(money_currency("S1K", 3) == NULL && money_currency("SE ", 3) == NULL && money_currency(NULL, 3) == NULL,
	   "lookup rejects non-letters and NULL");
	okf(money_currency("\xc3\x89UR", 3) == NULL, "lookup rejects non-ASCII bytes");

	/* ------------------------------------------------------------ parse */
	parse_ok("1234.50 SEK", 123450, "SEK");
	parse_ok("1234.5 SEK", 123450, "SEK");
	parse_ok("1234 SEK", 123400, "SEK");
	parse_ok("-0.05 EUR", -5, "EUR");
	parse_ok("+0.05 eur", 5, "EUR");
	parse_ok("-0.00 SEK", 0, "SEK");
	parse_ok("-0 JPY", 0, "JPY");
	parse_ok("100 JPY", 100, "JPY");
	parse_ok("1.234 KWD", 1234, "KWD");
	parse_ok("1.2345 CLF", 12345, "CLF");
	parse_ok("0.0001 UYW", 1, "UYW");
	parse_ok("  7 usd  ", 700, "USD");
	parse_ok("\t7\t\tUsd\n", 700, "USD");
	parse_ok("00000000000000000000000000001 JPY", 1, "JPY");
	parse_ok("92233720368547758.07 SEK", INT64_MAX, "SEK");
	parse_ok("-92233720368547758.08 SEK", INT64_MIN, "SEK");
	parse_ok("9223372036854775807 JPY", INT64_MAX, "JPY");
	parse_ok("-9223372036854775808 JPY", INT64_MIN, "JPY");
	parse_ok("922337203685477.5807 CLF", INT64_MAX, "CLF");
	parse_ok("-922337203685477.5808 CLF", INT64_MIN, "CLF");
	parse_ok("9223372036854775.807 KWD", INT64_MAX, "KWD");

	parse_err("", MONEY_PARSE_SYNTAX);
	parse_err("   ", MONEY_PARSE_SYNTAX);
	parse_err("abc", MONEY_PARSE_SYNTAX);
	parse_err("12", MONEY_PARSE_SYNTAX);
	parse_err("12 ", MONEY_PARSE_SYNTAX);
	parse_err("SEK", MONEY_PARSE_SYNTAX);
	parse_err("12SEK", MONEY_PARSE_SYNTAX);
	parse_err("12 SE", MONEY_PARSE_SYNTAX);
	parse_err("12 SEKK", MONEY_PARSE_SYNTAX);
	parse_err("12 S1K", MONEY_PARSE_SYNTAX);
	parse_err("12 SEK x", MONEY_PARSE_SYNTAX);
	parse_err("12.", MONEY_PARSE_SYNTAX);
	parse_err("12. SEK", MONEY_PARSE_SYNTAX);
	parse_err(".5 SEK", MONEY_PARSE_SYNTAX);
	parse_err("--1 SEK", MONEY_PARSE_SYNTAX);
	parse_err("+-1 SEK", MONEY_PARSE_SYNTAX);
	parse_err("- 1 SEK", MONEY_PARSE_SYNTAX);
	parse_err("1,50 SEK", MONEY_PARSE_SYNTAX);
	parse_err("1.5.0 SEK", MONEY_PARSE_SYNTAX);
	parse_err("1e3 SEK", MONEY_PARSE_SYNTAX);
	parse_err("\xc3\x89 SEK", MONEY_PARSE_SYNTAX);
	parse_err("12 \xc3\x89UR", MONEY_PARSE_SYNTAX);
	parse_err("12 ABC", MONEY_PARSE_UNKNOWN_CURRENCY);
	parse_err("12 xau", MONEY_PARSE_UNKNOWN_CURRENCY);
	parse_err("1.234 SEK", MONEY_PARSE_TOO_MANY_DECIMALS);
	parse_err("1.230 SEK", MONEY_PARSE_TOO_MANY_DECIMALS);
	parse_err("1.0 JPY", MONEY_PARSE_TOO_MANY_DECIMALS);
	parse_err("1.2345 KWD", MONEY_PARSE_TOO_MANY_DECIMALS);
	parse_err("1.23456 CLF", MONEY_PARSE_TOO_MANY_DECIMALS);
	parse_err("99999999999999999999999.999 SEK", MONEY_PARSE_TOO_MANY_DECIMALS);
	parse_err("92233720368547758.08 SEK", MONEY_PARSE_OVERFLOW);
	parse_err("-92233720368547758.09 SEK", MONEY_PARSE_OVERFLOW);
	parse_err("9223372036854775808 JPY", MONEY_PARSE_OVERFLOW);
	parse_err("-9223372036854775809 JPY", MONEY_PARSE_OVERFLOW);
	parse_err("92233720368547759 SEK", MONEY_PARSE_OVERFLOW);
	parse_err("99999999999999999999999999999999999999 EUR", MONEY_PARSE_OVERFLOW);
	parse_err("-99999999999999999999999999999999999999 EUR", MONEY_PARSE_OVERFLOW);
	okf(money_parse(NULL, NULL, NULL) == MONEY_PARSE_SYNTAX, "parse NULL is a syntax error");

	/* ------------------------------------------------------------ format */
	format_is(123450, "SEK", "1234.50 SEK");
	format_is(-5, "EUR", "-0.05 EUR");
	format_is(0, "EUR", "0.00 EUR");
	format_is(100, "JPY", "100 JPY");
	format_is(0, "JPY", "0 JPY");
	format_is(-1, "JPY", "-1 JPY");
	format_is(1234, "KWD", "1.234 KWD");
	format_is(-1, "KWD", "-0.001 KWD");
	format_is(12345, "CLF", "1.2345 CLF");
	format_is(1, "UYW", "0.0001 UYW");
	format_is(INT64_MAX, "SEK", "92233720368547758.07 SEK");
	format_is(INT64_MIN, "SEK", "-92233720368547758.08 SEK");
	format_is(INT64_MIN, "JPY", "-9223372036854775808 JPY");
	format_is(INT64_MIN, "CLF", "-922337203685477.5808 CLF");
	{
		char		buf[MONEY_FORMAT_MAX];

		okf(money_format(INT64_MIN, cur("JPY"), buf) + 1 <= MONEY_FORMAT_MAX,
		   "longest text form fits MONEY_FORMAT_MAX");
	}

	/* ------------------------------------------------------------ muldiv */
	muldiv_is(5, 1, 2, 3);
	muldiv_is(-5, 1, 2, -3);
	muldiv_is(5, 1, -2, -3);
	muldiv_is(-5, 1, -2, 3);
	muldiv_is(5, 1, 3, 2);
	muldiv_is(4, 1, 3, 1);
	muldiv_is(-4, 1, 3, -1);
	muldiv_is(1, 1, 3, 0);
	muldiv_is(2, 1, 3, 1);
	muldiv_is(1000, 31, 30, 1033);
	muldiv_is(1, 1, 2, 1);
	muldiv_is(-1, 1, 2, -1);
	muldiv_is(0, 5, 7, 0);
	muldiv_is(INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX);
	muldiv_is(INT64_MIN, INT64_MIN, INT64_MIN, INT64_MIN);
	muldiv_is(INT64_MIN, 1, 2, INT64_MIN / 2);
	muldiv_is(INT64_MAX, 1, 2, INT64_MAX / 2 + 1);
	muldiv_is(INT64_MIN, INT64_MAX, INT64_MIN, INT64_MAX);
	muldiv_is(INT64_MAX, 3, 4, 6917529027641081855);		/* 6917529027641081855.25 */
	muldiv_fails(INT64_MIN, -1, 1);
	muldiv_fails(INT64_MIN, 1, -1);
	muldiv_fails(INT64_MAX, 2, 1);
	muldiv_fails(INT64_MAX, INT64_MAX, 1);
	muldiv_fails(1, 1, 0);
	{
		int64_t		r;

		okf(money_div_round128(((__int128) 1 << 100) + 1, (int64_t) 1 << 40, &r) && r == (int64_t) 1 << 60,
		   "div_round128: (2^100 + 1) / 2^40 = 2^60");
		okf(!money_div_round128((__int128) 1 << 100, 2, &r), "div_round128: 2^99 does not fit");
		okf(money_div_round128(((__int128) INT64_MAX) * 3 + 1, 3, &r) && r == INT64_MAX,
		   "div_round128: (3 max + 1) / 3 = max");
		okf(money_div_round128(-((__int128) 5), 2, &r) && r == -3, "div_round128: -5 / 2 = -3");
		okf(!money_div_round128(5, 0, &r), "div_round128: division by zero is false");
		okf(!money_div_round128((__int128) ((unsigned __int128) 1 << 127), -1, &r),
		   "div_round128: the most negative 128-bit value is refused");
	}

	/* ------------------------------------------------------------ allocate examples */
	{
		int64_t		w111[] = {1, 1, 1};
		int64_t		w211[] = {2, 1, 1};
		int64_t		w112[] = {1, 1, 2};
		int64_t		w010[] = {0, 1, 0};
		int64_t		w1[] = {7};
		int64_t		wbig[] = {INT64_MAX, INT64_MAX, INT64_MAX};
		int64_t		wmax1[] = {INT64_MAX, 1};
		int64_t		parts[4];

		allocate_is(10000, w111, 3, (int64_t[]) {3334, 3333, 3333}, "100.00 in thirds, ties to the earlier");
		allocate_is(-10000, w111, 3, (int64_t[]) {-3334, -3333, -3333}, "-100.00 mirrors");
		allocate_is(5, w211, 3, (int64_t[]) {3, 1, 1}, "5 by 2:1:1 = 2.5, 1.25, 1.25");
		allocate_is(5, w112, 3, (int64_t[]) {1, 1, 3}, "5 by 1:1:2: the largest remainder wins");
		allocate_is(1, w111, 3, (int64_t[]) {1, 0, 0}, "1 in thirds");
		allocate_is(2, w111, 3, (int64_t[]) {1, 1, 0}, "2 in thirds");
		allocate_is(-2, w111, 3, (int64_t[]) {-1, -1, 0}, "-2 in thirds");
		allocate_is(12345, w010, 3, (int64_t[]) {0, 12345, 0}, "zero weights get nothing");
		allocate_is(INT64_MIN, w1, 1, (int64_t[]) {INT64_MIN}, "the most negative total to one part");
		allocate_is(INT64_MIN, w010, 3, (int64_t[]) {0, INT64_MIN, 0}, "the most negative total, zero weights around");
		allocate_is(INT64_MAX, w111, 3, (int64_t[]) {3074457345618258603, 3074457345618258602, 3074457345618258602},
					"the largest total in thirds");
		allocate_is(100, wbig, 3, (int64_t[]) {34, 33, 33}, "weights summing beyond int64");
		allocate_is(INT64_MAX, wmax1, 2, (int64_t[]) {INT64_MAX - 1, 1}, "extreme total and weights");
		okf(!money_allocate(1, w111, 0, parts), "allocate: no weights is refused");
		okf(!money_allocate(1, (int64_t[]) {1, -1}, 2, parts), "allocate: a negative weight is refused");
		okf(!money_allocate(1, (int64_t[]) {0, 0}, 2, parts), "allocate: all-zero weights are refused");
		okf(!money_allocate(1, NULL, 2, parts) && !money_allocate(1, w111, 3, NULL), "allocate: NULL arrays are refused");
	}

	/* ------------------------------------------------------------ random properties */
	{
		const char *codes[] = {"SEK", "JPY", "KWD", "CLF"};
		int			bad_roundtrip = 0,
					bad_muldiv = 0,
					bad_muldiv_overflow = 0;

		for (int i = 0; i < 200000; i++)
		{
			int64_t		u = rand_units(),
						v = 0;
			const CurrencyInfo *c = cur(codes[tap_rng() % 4]),
					   *c2 = NULL;
			char		buf[MONEY_FORMAT_MAX];

			money_format(u, c, buf);
			if (money_parse(buf, &v, &c2) != MONEY_PARSE_OK || v != u || c2 != c)
				bad_roundtrip++;
		}
		okf(bad_roundtrip == 0, "200000 random format -> parse round trips (%d bad)", bad_roundtrip);

		for (int i = 0; i < 200000; i++)
		{
			int64_t		u = rand_units(),
						n = rand_units(),
						d = rand_units(),
						r = 0;
			__int128	p;
			bool		fits;

			if (i % 2 == 0)
				n = (int64_t) (tap_rng() % 2001) - 1000;
			if (i % 3 == 0)
				d = (int64_t) (tap_rng() % 2001) - 1000;
			if (d == 0)
				d = 7;
			p = (__int128) u * n;
			/* does the exact rounded quotient fit?  check against floor division */
			{
				__int128	q = p / d;

				fits = q >= INT64_MIN - (__int128) 1 && q <= INT64_MAX + (__int128) 1;
			}
			if (money_muldiv(u, n, d, &r))
			{
				if (!is_rounded_quotient(p, d, r))
					bad_muldiv++;
			}
			else if (fits)
			{
				/* refused: the rounded result must really be out of range */
				__int128	q = p / d;

				if (q > INT64_MIN && q < INT64_MAX)
					bad_muldiv_overflow++;
			}
		}
		okf(bad_muldiv == 0, "200000 random muldiv results are round half away from zero (%d bad)", bad_muldiv);
		okf(bad_muldiv_overflow == 0, "muldiv refuses only results outside int64 (%d bad)", bad_muldiv_overflow);
	}
	{
		int			bad_sum = 0,
					bad_share = 0,
					bad_mirror = 0,
					bad_sign = 0,
					refused = 0;

		for (int i = 0; i < 50000; i++)
		{
			int			n = 1 + (int) (tap_rng() % 12);
			int64_t		w[12],
						parts[12],
						mparts[12];
			int64_t		total = rand_units();
			__int128	wsum = 0,
						psum = 0;

			for (int k = 0; k < n; k++)
			{
				switch (tap_rng() % 4)
				{
					case 0:
						w[k] = 0;
						break;
					case 1:
						w[k] = (int64_t) (tap_rng() % 10);
						break;
					case 2:
						w[k] = (int64_t) (tap_rng() % 1000000);
						break;
					default:
						w[k] = (int64_t) (tap_rng() >> 1);
						break;
				}
				wsum += w[k];
			}
			if (wsum == 0)
			{
				w[0] = 1;
				wsum = 1;
			}
			if (!money_allocate(total, w, n, parts))
			{
				refused++;
				continue;
			}
			for (int k = 0; k < n; k++)
			{
				/* compare magnitudes: floor(|total| w / W) fits in 128 bits */
				unsigned __int128 mag = uabs128(total);
				unsigned __int128 share_floor = (mag * (uint64_t) w[k]) / (unsigned __int128) wsum;
				unsigned __int128 pmag = uabs128(parts[k]);

				psum += parts[k];
				/* the part's magnitude is floor or floor + 1 of the exact share's magnitude */
				if (!(pmag == share_floor || pmag == share_floor + 1))
					bad_share++;
				/* and exactly the floor if the share is whole */
				if (pmag == share_floor + 1 && (mag * (uint64_t) w[k]) % (unsigned __int128) wsum == 0)
					bad_share++;
				if (parts[k] != 0 && ((parts[k] < 0) != (total < 0)))
					bad_sign++;
			}
			if (psum != total)
				bad_sum++;
			if (total != INT64_MIN && money_allocate(-total, w, n, mparts))
			{
				for (int k = 0; k < n; k++)
					if (mparts[k] != -parts[k])
						bad_mirror++;
			}
		}
		okf(refused == 0, "50000 random allocations, none refused (%d)", refused);
		okf(bad_sum == 0, "parts always sum to the total (%d bad)", bad_sum);
		okf(bad_share == 0, "every part is within one minor unit of its exact share (%d bad)", bad_share);
		okf(bad_sign == 0, "no part has the opposite sign (%d bad)", bad_sign);
		okf(bad_mirror == 0, "allocate(-t) mirrors allocate(t) (%d bad)", bad_mirror);
	}

	return tap_done();
}
