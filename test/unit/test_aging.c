/*
 * Unit tests of src/core/aging.c: the aging buckets from running totals,
 * against a plain sum over the open items (random, seeded), the edges of
 * each bucket, and the refusals.  Prints TAP.
 */
#include <stdint.h>
#include <stdio.h>

#include "aging.h"
#include "tap.h"

/* the buckets summed item by item, as the definition (open_items) does */
static void
by_items(const int32_t *due, const int64_t *amount, int n, int64_t undated, int32_t today, int64_t out[AGING_BUCKETS])
{
	for (int b = 0; b < AGING_BUCKETS; b++)
		out[b] = 0;
	for (int k = 0; k < n; k++)
	{
		int32_t		days = today - due[k];
		int			b = days <= 0 ? 0 : days <= 30 ? 1 : days <= 60 ? 2 : days <= 90 ? 3 : 4;

		out[b] += amount[k];
		out[5] += amount[k];
	}
	out[5] += undated;
}

int
main(void)
{
	int32_t		due[64];
	int64_t		amount[64];
	int64_t		cum[65];
	int64_t		got[AGING_BUCKETS];
	int64_t		want[AGING_BUCKETS];
	int			bad = 0;

	/* one item of 100 due on day 1000, today at each edge of the buckets */
	{
		static const int32_t today[] = {1000, 1001, 1030, 1031, 1060, 1061, 1090, 1091, 999};
		static const int	bucket[] = {0, 1, 1, 2, 2, 3, 3, 4, 0};

		due[0] = 1000;
		cum[0] = 0;
		cum[1] = 100;
		for (int i = 0; i < 9; i++)
		{
			int			st = aging_buckets(due, 1, cum, 7, today[i], got);

			okf(st == AGING_OK && got[bucket[i]] == 100 && got[5] == 107,
				"due on day 1000, today %d: in bucket %d, total with the undated 7", today[i], bucket[i]);
		}
	}
	/* no dated item: everything 0 but the total */
	cum[0] = 0;
	ok(aging_buckets(due, 0, cum, -5, 20000, got) == AGING_OK && got[0] == 0 && got[4] == 0 && got[5] == -5,
	   "no due dates: only the undated amount, in the total");

	/* random open items (credits too) against the sum item by item */
	for (int round = 0; round < 2000; round++)
	{
		int			n = (int) (tap_rng() % 40);
		int32_t		day = 19000 + (int32_t) (tap_rng() % 30);
		int32_t		today = 19000 + (int32_t) (tap_rng() % 300);
		int64_t		undated = (int64_t) (tap_rng() % 1000) - 500;

		cum[0] = 0;
		for (int k = 0; k < n; k++)
		{
			due[k] = day;
			day += 1 + (int32_t) (tap_rng() % 20);
			amount[k] = (int64_t) (tap_rng() % 200000) - 50000;
			cum[k + 1] = cum[k] + amount[k];
		}
		by_items(due, amount, n, undated, today, want);
		if (aging_buckets(due, n, cum, undated, today, got) != AGING_OK)
			bad++;
		else
			for (int b = 0; b < AGING_BUCKETS; b++)
				if (got[b] != want[b])
					bad++;
	}
	is_int(bad, 0, "2000 random accounts: the buckets equal the sums item by item");

	/* refusals, nothing written */
	due[0] = 5;
	due[1] = 5;
	cum[0] = 0;
	cum[1] = 1;
	cum[2] = 2;
	got[0] = 42;
	ok(aging_buckets(due, 2, cum, 0, 100, got) == AGING_NOT_ASCENDING && got[0] == 42,
	   "due dates not ascending: refused, nothing written");
	ok(aging_buckets(due, 1, cum, 0, INT32_MIN + 5, got) == AGING_BAD_TODAY, "today at the end of the range: refused");
	cum[1] = INT64_MAX;
	ok(aging_buckets(due, 1, cum, 1, 100, got) == AGING_OVERFLOW, "a total past int64: refused");
	due[1] = 100;
	cum[1] = INT64_MAX;
	cum[2] = -2;
	ok(aging_buckets(due, 2, cum, 0, 6, got) == AGING_OVERFLOW, "a bucket difference past int64: refused");
	return tap_done();
}
