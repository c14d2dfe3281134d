/*-------------------------------------------------------------------------
 *
 * aging.c
 *	  Receivables aging buckets from running totals over due dates
 *	  (see aging.h).
 *
 *-------------------------------------------------------------------------
 */
#include "aging.h"

/* the number of due dates <= x (due ascending) */
static int
due_count(const int32_t *due, int n, int32_t x)
{
	int			lo = 0,
				hi = n;

	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (due[mid] <= x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

AgingStatus
aging_buckets(const int32_t *due, int n, const int64_t *cum,
			  int64_t undated, int32_t today, int64_t out[AGING_BUCKETS])
{
	/* the boundaries: amounts due on or before t-1, t-31, t-61, t-91 */
	static const int32_t back[4] = {1, 31, 61, 91};
	int64_t		by[4];
	int64_t		r[AGING_BUCKETS];

	for (int k = 1; k < n; k++)
		if (due[k - 1] >= due[k])
			return AGING_NOT_ASCENDING;
	if (today < INT32_MIN + 91)
		return AGING_BAD_TODAY;
	for (int b = 0; b < 4; b++)
		by[b] = cum[due_count(due, n, today - back[b])];
	if (__builtin_sub_overflow(cum[n], by[0], &r[0]) ||
		__builtin_sub_overflow(by[0], by[1], &r[1]) ||
		__builtin_sub_overflow(by[1], by[2], &r[2]) ||
		__builtin_sub_overflow(by[2], by[3], &r[3]) ||
		__builtin_add_overflow(cum[n], undated, &r[5]))
		return AGING_OVERFLOW;
	r[4] = by[3];
	for (int b = 0; b < AGING_BUCKETS; b++)
		out[b] = r[b];
	return AGING_OK;
}
