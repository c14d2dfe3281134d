/*-------------------------------------------------------------------------
 *
 * money.c
 *	  Exact money in integer minor units: the ISO 4217 table, parsing,
 *	  formatting, the one rounding rule (half away from zero) and
 *	  allocation by largest remainder.
 *
 * Plain C (no PostgreSQL headers), so that it can be unit-tested and
 * fuzzed on its own.  No floating point and no locale anywhere.
 *
 *-------------------------------------------------------------------------
 */
#include "money.h"

#include <stdlib.h>
#include <string.h>

#define MONEY_INT128_MIN ((__int128) ((unsigned __int128) 1 << 127))

/*
 * Active ISO 4217 currencies (List One) that have a minor unit, sorted by
 * alphabetic code for binary search.  Left out on purpose: codes whose
 * minor unit is "N.A." (precious metals XAU XAG XPD XPT, the SDR XDR, the
 * bond-market units XBA..XBD, XSU, XUA, the testing code XTS and XXX), and
 * withdrawn codes (HRK, SLL, ZWL, ...).
 *
 * Exponent 0: BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF
 * XOF XPF.  Exponent 3: BHD IQD JOD KWD LYD OMR TND.  Exponent 4: CLF UYW.
 * Everything else: 2.
 */
static const CurrencyInfo currencies[] = {
	{"AED", 784, 2},
	{"AFN", 971, 2},
	{"ALL", 8, 2},
	{"AMD", 51, 2},
	{"ANG", 532, 2},
	{"AOA", 973, 2},
	{"ARS", 32, 2},
	{"AUD", 36, 2},
	{"AWG", 533, 2},
	{"AZN", 944, 2},
	{"BAM", 977, 2},
	{"BBD", 52, 2},
	{"BDT", 50, 2},
	{"BGN", 975, 2},
	{"BHD", 48, 3},
	{"BIF", 108, 0},
	{"BMD", 60, 2},
	{"BND", 96, 2},
	{"BOB", 68, 2},
	{"BOV", 984, 2},
	{"BRL", 986, 2},
	{"BSD", 44, 2},
	{"BTN", 64, 2},
	{"BWP", 72, 2},
	{"BYN", 933, 2},
	{"BZD", 84, 2},
	{"CAD", 124, 2},
	{"CDF", 976, 2},
	{"CHE", 947, 2},
	{"CHF", 756, 2},
	{"CHW", 948, 2},
	{"CLF", 990, 4},
	{"CLP", 152, 0},
	{"CNY", 156, 2},
	{"COP", 170, 2},
	{"COU", 970, 2},
	{"CRC", 188, 2},
	{"CUC", 931, 2},
	{"CUP", 192, 2},
	{"CVE", 132, 2},
	{"CZK", 203, 2},
	{"DJF", 262, 0},
	{"DKK", 208, 2},
	{"DOP", 214, 2},
	{"DZD", 12, 2},
	{"EGP", 818, 2},
	{"ERN", 232, 2},
	{"ETB", 230, 2},
	{"EUR", 978, 2},
	{"FJD", 242, 2},
	{"FKP", 238, 2},
	{"GBP", 826, 2},
	{"GEL", 981, 2},
	{"GHS", 936, 2},
	{"GIP", 292, 2},
	{"GMD", 270, 2},
	{"GNF", 324, 0},
	{"GTQ", 320, 2},
	{"GYD", 328, 2},
	{"HKD", 344, 2},
	{"HNL", 340, 2},
	{"HTG", 332, 2},
	{"HUF", 348, 2},
	{"IDR", 360, 2},
	{"ILS", 376, 2},
	{"INR", 356, 2},
	{"IQD", 368, 3},
	{"IRR", 364, 2},
	{"ISK", 352, 0},
	{"JMD", 388, 2},
	{"JOD", 400, 3},
	{"JPY", 392, 0},
	{"KES", 404, 2},
	{"KGS", 417, 2},
	{"KHR", 116, 2},
	{"KMF", 174, 0},
	{"KPW", 408, 2},
	{"KRW", 410, 0},
	{"KWD", 414, 3},
	{"KYD", 136, 2},
	{"KZT", 398, 2},
	{"LAK", 418, 2},
	{"LBP", 422, 2},
	{"LKR", 144, 2},
	{"LRD", 430, 2},
	{"LSL", 426, 2},
	{"LYD", 434, 3},
	{"MAD", 504, 2},
	{"MDL", 498, 2},
	{"MGA", 969, 2},
	{"MKD", 807, 2},
	{"MMK", 104, 2},
	{"MNT", 496, 2},
	{"MOP", 446, 2},
	{"MRU", 929, 2},
	{"MUR", 480, 2},
	{"MVR", 462, 2},
	{"MWK", 454, 2},
	{"MXN", 484, 2},
	{"MXV", 979, 2},
	{"MYR", 458, 2},
	{"MZN", 943, 2},
	{"NAD", 516, 2},
	{"NGN", 566, 2},
	{"NIO", 558, 2},
	{"NOK", 578, 2},
	{"NPR", 524, 2},
	{"NZD", 554, 2},
	{"OMR", 512, 3},
	{"PAB", 590, 2},
	{"PEN", 604, 2},
	{"PGK", 598, 2},
	{"PHP", 608, 2},
	{"PKR", 586, 2},
	{"PLN", 985, 2},
	{"PYG", 600, 0},
	{"QAR", 634, 2},
	{"RON", 946, 2},
	{"RSD", 941, 2},
	{"RUB", 643, 2},
	{"RWF", 646, 0},
	{"SAR", 682, 2},
	{"SBD", 90, 2},
	{"SCR", 690, 2},
	{"SDG", 938, 2},
	{"SEK", 752, 2},
	{"SGD", 702, 2},
	{"SHP", 654, 2},
	{"SLE", 925, 2},
	{"SOS", 706, 2},
	{"SRD", 968, 2},
	{"SSP", 728, 2},
	{"STN", 930, 2},
	{"SVC", 222, 2},
	{"SYP", 760, 2},
	{"SZL", 748, 2},
	{"THB", 764, 2},
	{"TJS", 972, 2},
	{"TMT", 934, 2},
	{"TND", 788, 3},
	{"TOP", 776, 2},
	{"TRY", 949, 2},
	{"TTD", 780, 2},
	{"TWD", 901, 2},
	{"TZS", 834, 2},
	{"UAH", 980, 2},
	{"UGX", 800, 0},
	{"USD", 840, 2},
	{"USN", 997, 2},
	{"UYI", 940, 0},
	{"UYU", 858, 2},
	{"UYW", 927, 4},
	{"UZS", 860, 2},
	{"VED", 926, 2},
	{"VES", 928, 2},
	{"VND", 704, 0},
	{"VUV", 548, 0},
	{"WST", 882, 2},
	{"XAF", 950, 0},
	{"XCD", 951, 2},
	{"XCG", 532, 2},
	{"XOF", 952, 0},
	{"XPF", 953, 0},
	{"YER", 886, 2},
	{"ZAR", 710, 2},
	{"ZMW", 967, 2},
	{"ZWG", 924, 2},
};

#define NCURRENCIES ((int) (sizeof(currencies) / sizeof(currencies[0])))

static inline bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static inline bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static inline bool
is_alpha(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static inline char
to_upper(char c)
{
	return (c >= 'a' && c <= 'z') ? (char) (c - 'a' + 'A') : c;
}

int
money_currency_count(void)
{
	return NCURRENCIES;
}

const CurrencyInfo *
money_currency_at(int i)
{
	if (i < 0 || i >= NCURRENCIES)
		return NULL;
	return &currencies[i];
}

const CurrencyInfo *
money_currency(const char *code, size_t len)
{
	char		key[4];
	int			lo = 0,
				hi = NCURRENCIES - 1;

	if (code == NULL || len != 3)
		return NULL;
	for (int i = 0; i < 3; i++)
	{
		if (!is_alpha(code[i]))
			return NULL;
		key[i] = to_upper(code[i]);
	}
	key[3] = '\0';

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int			c = memcmp(key, currencies[mid].code, 3);

		if (c == 0)
			return &currencies[mid];
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return NULL;
}

/*
 * Grammar: [ws] [+|-] digits [. digits] ws+ CODE [ws], CODE = 3 letters.
 *
 * The value is accumulated as a negative number (the int64 range is
 * asymmetric), so that the most negative value parses; it is negated at the
 * end for a positive sign.
 */
MoneyParseStatus
money_parse(const char *str, int64_t *units, const CurrencyInfo **currency)
{
	const char *p = str;
	bool		negative = false;
	const char *int_start,
			   *int_end,
			   *frac_start = NULL,
			   *frac_end = NULL,
			   *code;
	const CurrencyInfo *cur;
	int			nfrac;
	int64_t		acc = 0;
	bool		overflow = false;

	if (str == NULL)
		return MONEY_PARSE_SYNTAX;

	while (is_space(*p))
		p++;
	if (*p == '+' || *p == '-')
	{
		negative = (*p == '-');
		p++;
	}

	int_start = p;
	while (is_digit(*p))
		p++;
	int_end = p;
	if (int_end == int_start)
		return MONEY_PARSE_SYNTAX;

	if (*p == '.')
	{
		p++;
		frac_start = p;
		while (is_digit(*p))
			p++;
		frac_end = p;
		if (frac_end == frac_start)
			return MONEY_PARSE_SYNTAX;
	}

	if (!is_space(*p))
		return MONEY_PARSE_SYNTAX;
	while (is_space(*p))
		p++;

	code = p;
	while (is_alpha(*p))
		p++;
	if (p - code != 3)
		return MONEY_PARSE_SYNTAX;
	while (is_space(*p))
		p++;
	if (*p != '\0')
		return MONEY_PARSE_SYNTAX;

	cur = money_currency(code, 3);
	if (cur == NULL)
		return MONEY_PARSE_UNKNOWN_CURRENCY;

	nfrac = frac_start ? (int) (frac_end - frac_start) : 0;
	if (nfrac > cur->exponent)
		return MONEY_PARSE_TOO_MANY_DECIMALS;

	/* integer digits, then fraction digits, then pad with zeros */
	for (const char *d = int_start; d < int_end && !overflow; d++)
		overflow = __builtin_mul_overflow(acc, 10, &acc) ||
			__builtin_sub_overflow(acc, (int64_t) (*d - '0'), &acc);
	for (int i = 0; i < nfrac && !overflow; i++)
		overflow = __builtin_mul_overflow(acc, 10, &acc) ||
			__builtin_sub_overflow(acc, (int64_t) (frac_start[i] - '0'), &acc);
	for (int i = nfrac; i < cur->exponent && !overflow; i++)
		overflow = __builtin_mul_overflow(acc, 10, &acc);
	if (!overflow && !negative)
		overflow = __builtin_sub_overflow((int64_t) 0, acc, &acc);
	if (overflow)
		return MONEY_PARSE_OVERFLOW;

	*units = acc;				/* "-0.00" gives 0: there is no negative zero */
	*currency = cur;
	return MONEY_PARSE_OK;
}

size_t
money_format(int64_t units, const CurrencyInfo *currency, char *buf)
{
	char		digits[24];
	int			nd = 0;
	uint64_t	mag;
	size_t		len = 0;
	int			exponent = currency->exponent;

	/* magnitude as unsigned, so that INT64_MIN works */
	mag = units < 0 ? (uint64_t) 0 - (uint64_t) units : (uint64_t) units;
	do
	{
		digits[nd++] = (char) ('0' + mag % 10);
		mag /= 10;
	} while (mag != 0);
	/* at least one integer digit in front of the fraction */
	while (nd <= exponent)
		digits[nd++] = '0';

	if (units < 0)
		buf[len++] = '-';
	for (int i = nd - 1; i >= 0; i--)
	{
		buf[len++] = digits[i];
		if (i == exponent && exponent > 0)
			buf[len++] = '.';
	}
	buf[len++] = ' ';
	memcpy(buf + len, currency->code, 3);
	len += 3;
	buf[len] = '\0';
	return len;
}

bool
money_div_round128(__int128 num, int64_t den, int64_t *result)
{
	__int128	q,
				r,
				absr,
				absden;

	if (den == 0 || num == MONEY_INT128_MIN)
		return false;
	q = num / den;
	r = num % den;
	absr = r < 0 ? -r : r;
	absden = den < 0 ? -(__int128) den : (__int128) den;
	/* half away from zero: |r| >= |den| - |r| means the fraction is >= 1/2 */
	if (absr >= absden - absr)
		q += ((num < 0) != (den < 0)) ? -1 : 1;
	if (q > INT64_MAX || q < INT64_MIN)
		return false;
	*result = (int64_t) q;
	return true;
}

bool
money_muldiv(int64_t units, int64_t num, int64_t den, int64_t *result)
{
	/* |units * num| <= 2^126: no overflow in 128 bits */
	if (den == 0)
		return false;
	return money_div_round128((__int128) units * num, den, result);
}

typedef struct AllocSlot
{
	unsigned __int128 rem;		/* remainder of |total| * weight / sum */
	int			index;
} AllocSlot;

static int
alloc_slot_cmp(const void *a, const void *b)
{
	const AllocSlot *x = a;
	const AllocSlot *y = b;

	if (x->rem != y->rem)
		return x->rem > y->rem ? -1 : 1;	/* larger remainder first */
	return x->index < y->index ? -1 : (x->index > y->index);	/* then earlier */
}

bool
money_allocate(int64_t total, const int64_t *weights, int n, int64_t *parts)
{
	unsigned __int128 wsum = 0;
	uint64_t	mag;
	uint64_t	given = 0;
	uint64_t	left;
	AllocSlot  *slots;

	if (n <= 0 || weights == NULL || parts == NULL)
		return false;
	for (int i = 0; i < n; i++)
	{
		if (weights[i] < 0)
			return false;
		/* n < 2^31 weights below 2^63 each: the sum stays below 2^94 */
		wsum += (unsigned __int128) weights[i];
	}
	if (wsum == 0)
		return false;

	slots = malloc(sizeof(AllocSlot) * (size_t) n);
	if (slots == NULL)
		return false;

	/*
	 * Work on the magnitude of the total (2^63 fits in uint64) and give the
	 * parts its sign at the end: a negative total splits as the mirror image
	 * of the positive one.  |total| * weight < 2^126 fits in 128 bits.
	 */
	mag = total < 0 ? (uint64_t) 0 - (uint64_t) total : (uint64_t) total;
	for (int i = 0; i < n; i++)
	{
		unsigned __int128 prod = (unsigned __int128) mag * (uint64_t) weights[i];
		uint64_t	base = (uint64_t) (prod / wsum);	/* <= mag */

		slots[i].rem = prod % wsum;
		slots[i].index = i;
		parts[i] = (int64_t) 0;
		/* keep the magnitude in parts as unsigned bits for now */
		memcpy(&parts[i], &base, sizeof(base));
		given += base;			/* sum of floors <= mag: no wrap */
	}

	/* fewer than n units are left; the largest remainders get one each */
	left = mag - given;
	if (left > 0)
	{
		qsort(slots, (size_t) n, sizeof(AllocSlot), alloc_slot_cmp);
		for (uint64_t k = 0; k < left; k++)
		{
			uint64_t	v;

			memcpy(&v, &parts[slots[k].index], sizeof(v));
			v++;
			memcpy(&parts[slots[k].index], &v, sizeof(v));
		}
	}
	free(slots);

	for (int i = 0; i < n; i++)
	{
		uint64_t	v;

		memcpy(&v, &parts[i], sizeof(v));
		/* v <= 2^63, and v == 2^63 only for the most negative total */
		parts[i] = total < 0 ? (int64_t) ((uint64_t) 0 - v) : (int64_t) v;
	}
	return true;
}
