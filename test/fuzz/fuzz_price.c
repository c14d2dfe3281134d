/*
 * libFuzzer harness for src/core/money.c.
 *
 * Any input is parsed with money_parse (which must not crash or read past
 * the string).  Whenever it parses, the canonical form must parse back to
 * the same value and currency and format to the same text again; any
 * mismatch abort()s.  The same bytes, read as integers, also drive
 * money_muldiv (checked against the rounding rule) and money_allocate
 * (parts must sum to the total, each within one unit of its share).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned __int128
uabs128(__int128 a)
{
	return a < 0 ? (unsigned __int128) 0 - (unsigned __int128) a : (unsigned __int128) a;
}

static void
check_parse(const uint8_t *data, size_t size)
{
	char	   *str = malloc(size + 1);
	int64_t		units = 0,
				again = 0;
	const CurrencyInfo *cur = NULL,
			   *cur2 = NULL;
	char		buf[MONEY_FORMAT_MAX],
				buf2[MONEY_FORMAT_MAX];
	size_t		len;

	if (str == NULL)
		return;
	memcpy(str, data, size);
	str[size] = '\0';

	if (money_parse(str, &units, &cur) == MONEY_PARSE_OK)
	{
		if (cur == NULL || money_currency(cur->code, 3) != cur)
			abort();
		len = money_format(units, cur, buf);
		if (len != strlen(buf) || len + 1 > MONEY_FORMAT_MAX)
			abort();
		if (money_parse(buf, &again, &cur2) != MONEY_PARSE_OK || again != units || cur2 != cur)
			abort();
		money_format(again, cur2, buf2);
		if (strcmp(buf, buf2) != 0)
			abort();
	}
	free(str);
}

static void
check_arith(const uint8_t *data, size_t size)
{
	int64_t		v[6];
	int64_t		r;
	int			n;
	int64_t		parts[4];
	__int128	psum = 0;
	unsigned __int128 wsum = 0;

	if (size < sizeof(v))
		return;
	memcpy(v, data, sizeof(v));

	/* muldiv: the result, when given, is round half away from zero */
	if (v[2] != 0 && money_muldiv(v[0], v[1], v[2], &r))
	{
		__int128	p = (__int128) v[0] * v[1];
		__int128	err = p - (__int128) r * v[2];
		unsigned __int128 twice = uabs128(err) * 2,
					ad = uabs128(v[2]);

		if (twice > ad)
			abort();
		if (twice == ad && err != 0 && uabs128((__int128) r * v[2]) <= uabs128(p))
			abort();
	}

	/* allocate among up to 3 non-negative weights */
	n = 1 + (int) ((uint64_t) v[5] % 3);
	for (int i = 0; i < n; i++)
	{
		v[2 + i] = (int64_t) ((uint64_t) v[2 + i] >> 1);
		wsum += (uint64_t) v[2 + i];
	}
	if (wsum == 0)
		return;
	if (!money_allocate(v[0], &v[2], n, parts))
		abort();
	for (int i = 0; i < n; i++)
	{
		unsigned __int128 mag = uabs128(v[0]);
		unsigned __int128 fl = mag * (uint64_t) v[2 + i] / wsum;
		unsigned __int128 pm = uabs128(parts[i]);

		if (pm != fl && pm != fl + 1)
			abort();
		psum += parts[i];
	}
	if (psum != v[0])
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_parse(data, size);
	check_arith(data, size);
	return 0;
}
