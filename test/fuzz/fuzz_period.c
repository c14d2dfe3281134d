/*
 * libFuzzer harness for the billing_period parser and calendar
 * (src/core/period.c).
 *
 For any input: parsing never crashes; a successful parse yields a valid
 * value whose canonical text parses back to the same value and formats to
 * the same text; the packed form round-trips.  An input that starts with
 * byte 0xFF carries 8 more bytes that pick an anchor day and a day d (within
 * the PostgreSQL date range) before the text: then the harness also checks
 * that period_index_of() brackets d between two consecutive boundaries,
 * each on the anchor's day clamped to its month.  Any violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "period.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DAY_MIN		(-2451545)		/* 4714-11-24 BC */
#define DAY_SPAN	2147483494		/* days up to 5874898-01-01 */

static void
check_boundary(int64_t anchor, BillingPeriod bp, int64_t n, int64_t start)
{
	int64_t		ya,
				ys;
	int			ma,
				da,
				ms,
				ds;

	if (bp.unit == BILLING_UNIT_DAY)
	{
		if (start != anchor + n * bp.count)
			abort();
		return;
	}
	period_civil_from_days(anchor, &ya, &ma, &da);
	period_civil_from_days(start, &ys, &ms, &ds);
	if (ys * 12 + ms - 1 != ya * 12 + ma - 1 + n * bp.count)
		abort();
	if (ds != (da < period_days_in_month(ys, ms) ? da : period_days_in_month(ys, ms)))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	BillingPeriod bp,
				again;
	char		text[PERIOD_FORMAT_MAX];
	char		text2[PERIOD_FORMAT_MAX];
	size_t		len;
	const uint8_t *dates = NULL;

	if (size >= 9 && data[0] == 0xFF)
	{
		dates = data + 1;
		data += 9;
		size -= 9;
	}
	if (period_parse((const char *) data, size, &bp) != PERIOD_PARSE_OK)
		return 0;
	if (!period_is_valid(bp))
		abort();
	len = period_format(bp, text);
	if (len == 0 || len >= PERIOD_FORMAT_MAX || strlen(text) != len)
		abort();
	if (period_parse(text, len, &again) != PERIOD_PARSE_OK)
		abort();
	if (again.count != bp.count || again.unit != bp.unit || period_cmp(again, bp) != 0)
		abort();
	if (period_format(again, text2) != len || memcmp(text, text2, len) != 0)
		abort();
	if (!period_unpack(period_pack(bp), &again) || again.count != bp.count || again.unit != bp.unit)
		abort();

	if (dates != NULL)
	{
		uint32_t	a,
					b;
		int64_t		anchor,
					d,
					n,
					lo,
					hi;

		memcpy(&a, dates, 4);
		memcpy(&b, dates + 4, 4);
		anchor = DAY_MIN + (int64_t) (a % DAY_SPAN);
		d = DAY_MIN + (int64_t) (b % DAY_SPAN);
		n = period_index_of(anchor, bp, d);
		lo = period_start_days(anchor, bp, n);
		hi = period_start_days(anchor, bp, n + 1);
		if (!(lo <= d && d < hi) || (n >= 0) != (d >= anchor))
			abort();
		check_boundary(anchor, bp, n, lo);
		check_boundary(anchor, bp, n + 1, hi);
	}
	return 0;
}
