/*-------------------------------------------------------------------------
 *
 * autogiro.c
 *	  Bankgirot Autogiro files: the payment-claim writer and the reader of
 *	  payment specifications and mandate advices (new layout).
 *
 * Layouts (1-based positions), from Bankgirot's "Autogiro technical
 * manual"; docs/directdebit.md has the tables:
 *
 *   claim file, 01: 3-10 date written, 11-22 "AUTOGIRO", 63-68 customer
 *     number, 69-78 payee's bankgiro;
 *   claim file, 82 (32 outgoing payment, the same fields): 3-10 due date, 11 period code (0: once), 12-14
 *     repetitions (blank), 16-31 payer number, 32-43 amount (öre), 44-53
 *     payee's bankgiro, 54-69 reference;
 *   payment specification, 01: 3-10 "AUTOGIRO", 25-44 timestamp (date
 *     first), 45-64 "BET. SPEC & STOPP TK", 65-70 customer number, 71-80
 *     bankgiro; 15/16/17 section openings (incoming, outgoing, refunds):
 *     38-45 date, 46-50 serial, 51-68 approved amount, 72-79 approved
 *     count; 82/32 as the claim plus 80 status; 77 refunds: 70-77 refund
 *     date, 78-79 code; 09: 3-10 date, 11-14 "9900", then six counts
 *     (sections and approved records of each kind: 6 and 12 digits);
 *   mandate advice, 01: 3-10 "AUTOGIRO", 25-32 date, 45-53 "AG-MEDAVI",
 *     65-70 customer number, 71-80 bankgiro; 73: 3-12 bankgiro, 13-28
 *     payer number, 29-44 account, 45-56 personal number, 62-63
 *     information code, 64-65 status, 66-73 date; 09: 3-10 date, 11-14
 *     "9900", 15-21 number of 73 records;
 *   rejected payment orders, 01: 3-10 "AUTOGIRO", 25-32 date, 45-64
 *     "AVVISADE BET UPPDR", 65-70 customer number, 71-80 bankgiro; 82/32:
 *     3-10 payment date, 11 period code, 12-14 repetitions, 15-30 payer
 *     number, 31-42 amount, 43-58 reference, 59-60 comment code; 09: 3-10
 *     date, 11-14 "9900", 15-20 number of 32 records, 21-32 their amount,
 *     33-38 number of 82 records, 39-50 their amount.
 *
 *-------------------------------------------------------------------------
 */
#include "autogiro.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "period.h"
#include "recordwriter.h"

#define REC 80
#define FIELD(line, from) ((line) + (from) - 1)

static bool
fail(BankFileError *err, int line, const char *fmt,...)
__attribute__((format(printf, 3, 4)));

static bool
fail(BankFileError *err, int line, const char *fmt,...)
{
	va_list		ap;

	err->line = line;
	va_start(ap, fmt);
	vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
	va_end(ap);
	return false;
}

static bool
digits(const char *p, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return true;
}

static int64_t
value(const char *p, int n)
{
	int64_t		v = 0;
	int			i;

	for (i = 0; i < n; i++)
		v = v * 10 + (p[i] - '0');
	return v;
}

static bool
valid_date(int64_t v)
{
	int64_t		y = v / 10000,
				m = v / 100 % 100,
				d = v % 100;

	return y >= 1 && m >= 1 && m <= 12 && d >= 1 && d <= period_days_in_month(y, (int) m);
}

/* ---------- writer ---------- */

/* s right-aligned, zero-filled, into n positions at p; false if too long or not digits */
static bool
put_digits(char *p, int n, const char *s)
{
	size_t		l = strlen(s);

	if (l == 0 || l > (size_t) n || !digits(s, (int) l))
		return false;
	memset(p, '0', (size_t) n);
	memcpy(p + n - (int) l, s, l);
	return true;
}

bool
autogiro_write_claims(int32_t written_on, const char *customer_number, const char *bankgiro,
					  const AutogiroClaim *claims, int nclaims, char **out, size_t *outlen,
					  BankFileError *err)
{
	RecordWriter o;
	char		rec[REC + 1];
	int			i;

	*out = NULL;
	*outlen = 0;
	memset(err, 0, sizeof(*err));
	record_writer_init(&o, REC, "\r\n");
	if (!valid_date(written_on))
		return fail(err, 0, "the file's date %d is not a valid date.", (int) written_on);
	memset(rec, ' ', REC);
	rec[0] = '0';
	rec[1] = '1';
	snprintf(rec + 2, 9, "%08d", (int) written_on);
	memcpy(rec + 10, "AUTOGIRO", 8);
	rec[18] = ' ';
	if (strlen(customer_number) != 6 || !digits(customer_number, 6))
		return fail(err, 0, "the customer number \"%s\" is not 6 digits.", customer_number);
	memcpy(FIELD(rec, 63), customer_number, 6);
	if (!put_digits(FIELD(rec, 69), 10, bankgiro))
		return fail(err, 0, "the bankgiro number \"%s\" is not 1-10 digits.", bankgiro);
	if (!record_put(&o, rec))
		return fail(err, 0, "out of memory.");
	for (i = 0; i < nclaims; i++)
	{
		const AutogiroClaim *c = &claims[i];
		char		amount[13];
		size_t		rl = strlen(c->reference),
					k;

		memset(rec, ' ', REC);
		rec[0] = c->outgoing ? '3' : '8';
		rec[1] = '2';
		if (!valid_date(c->due_date))
		{
			free(o.buf);
			return fail(err, i + 1, "the due date %d is not a valid date.", (int) c->due_date);
		}
		snprintf(FIELD(rec, 3), 9, "%08d", (int) c->due_date);
		rec[10] = '0';			/* period code: once */
		rec[11] = rec[12] = rec[13] = rec[14] = ' ';
		if (!put_digits(FIELD(rec, 16), 16, c->payer_number))
		{
			free(o.buf);
			return fail(err, i + 1, "the payer number \"%s\" is not 1-16 digits.", c->payer_number);
		}
		if (c->amount < 1 || c->amount > AUTOGIRO_MAX_AMOUNT)
		{
			free(o.buf);
			return fail(err, i + 1, "the amount %lld öre is not between 1 and %lld.",
						(long long) c->amount, (long long) AUTOGIRO_MAX_AMOUNT);
		}
		snprintf(amount, sizeof(amount), "%012lld", (long long) c->amount);
		memcpy(FIELD(rec, 32), amount, 12);
		memcpy(FIELD(rec, 44), FIELD(o.buf, 69), 10);
		if (rl > 16)
		{
			free(o.buf);
			return fail(err, i + 1, "the reference \"%s\" is longer than 16 characters.", c->reference);
		}
		for (k = 0; k < rl; k++)
		{
			unsigned char ch = (unsigned char) c->reference[k];

			if (ch < 0x20 || (ch >= 0x7F && ch <= 0x9F))
			{
				free(o.buf);
				return fail(err, i + 1, "the reference has a control character (0x%02X).", ch);
			}
		}
		memcpy(FIELD(rec, 54), c->reference, rl);
		if (!record_put(&o, rec))
		{
			free(o.buf);
			return fail(err, i + 1, "out of memory.");
		}
	}
	*out = o.buf;
	*outlen = o.len;
	return true;
}

/* ---------- reader ---------- */

void
autogiro_free(AutogiroFile *f)
{
	free(f->records);
	memset(f, 0, sizeof(*f));
}

static bool
parse_failed(AutogiroFile *f)
{
	autogiro_free(f);
	return false;
}

static AutogiroRecord *
add_record(AutogiroFile *f)
{
	AutogiroRecord *r;

	if (f->nrecords == f->capacity)
	{
		int			cap = f->capacity ? f->capacity * 2 : 16;
		AutogiroRecord *grown;

		if (f->capacity > INT_MAX / 2 || (size_t) cap > SIZE_MAX / sizeof(AutogiroRecord))
			return NULL;
		grown = realloc(f->records, (size_t) cap * sizeof(AutogiroRecord));
		if (grown == NULL)
			return NULL;
		f->records = grown;
		f->capacity = cap;
	}
	r = &f->records[f->nrecords++];
	memset(r, 0, sizeof(*r));
	return r;
}

/* n characters at p, without leading zeros (digits) into out */
static void
number_text(const char *p, int n, char *out)
{
	int			b = 0;

	while (b < n && p[b] == '0')
		b++;
	memmove(out, p + b, (size_t) (n - b));
	out[n - b] = '\0';
}

static void
trimmed(const char *p, int n, char *out)
{
	int			b = 0,
				e = n;

	while (b < e && p[b] == ' ')
		b++;
	while (e > b && p[e - 1] == ' ')
		e--;
	memcpy(out, p + b, (size_t) (e - b));
	out[e - b] = '\0';
}

/* numeric field check with a reason naming it */
static bool
numeric(const char *rec, int from, int n, const char *what, int line, BankFileError *err, int64_t *v)
{
	*v = 0;
	if (!digits(FIELD(rec, from), n))
		return fail(err, line, "%s (positions %d-%d) is not numeric: \"%.*s\".",
					what, from, from + n - 1, n, FIELD(rec, from));
	*v = n <= 18 ? value(FIELD(rec, from), n) : 0;	/* longer: digits only */
	return true;
}

static bool
date_field(const char *rec, int from, const char *what, int line, BankFileError *err, int32_t *d)
{
	int64_t		v = 0;

	if (!numeric(rec, from, 8, what, line, err, &v))
		return false;
	if (!valid_date(v))
		return fail(err, line, "%s (positions %d-%d) is not a valid date: \"%.8s\".",
					what, from, from + 7, FIELD(rec, from));
	*d = (int32_t) v;
	return true;
}

/* The claim fields common to 82, 32 and 77 (positions 3-69) */
static bool
claim_fields(const char *rec, int line, BankFileError *err, AutogiroRecord *r)
{
	int64_t		v;

	if (!date_field(rec, 3, "payment date", line, err, &r->date) ||
		!numeric(rec, 16, 16, "payer number", line, err, &v) ||
		!numeric(rec, 32, 12, "amount", line, err, &r->amount) ||
		!numeric(rec, 44, 10, "bankgiro number", line, err, &v))
		return false;
	number_text(FIELD(rec, 16), 16, r->payer_number);
	number_text(FIELD(rec, 44), 10, r->bankgiro);
	trimmed(FIELD(rec, 54), 16, r->reference);
	return true;
}

typedef struct Section
{
	int			code;			/* 15, 16, 17 or 0 */
	int			line;
	int64_t		amount;			/* the opening's approved amount */
	int64_t		count;			/* and count */
	int64_t		sum;			/* recomputed */
	int64_t		n;
	int32_t		date;
	int			serial;
} Section;

static bool
close_section(Section *s, int line, BankFileError *err)
{
	if (s->code == 0)
		return true;
	if (s->n != s->count)
		return fail(err, line, "the section opened on line %d counts %lld approved records; it has %lld.",
					s->line, (long long) s->count, (long long) s->n);
	if (s->sum != s->amount)
		return fail(err, line, "the section opened on line %d says %lld öre approved; its approved records add up to %lld.",
					s->line, (long long) s->amount, (long long) s->sum);
	s->code = 0;
	return true;
}

/* count and amount of the rejected records of one kind */
typedef struct Totals
{
	int64_t		n;
	int64_t		sum;
} Totals;

/* A record of the rejection report: 82 or 32 with its comment code */
static bool
rejection_fields(const char *rec, int line, BankFileError *err, AutogiroRecord *r, Totals *t)
{
	int64_t		v;

	if (!date_field(rec, 3, "payment date", line, err, &r->date) ||
		!numeric(rec, 15, 16, "payer number", line, err, &v) ||
		!numeric(rec, 31, 12, "amount", line, err, &r->amount) ||
		!numeric(rec, 59, 2, "comment code", line, err, &v))
		return false;
	r->status = (int) v;
	number_text(FIELD(rec, 15), 16, r->payer_number);
	trimmed(FIELD(rec, 43), 16, r->reference);
	if (__builtin_add_overflow(t->sum, r->amount, &t->sum))
		return fail(err, line, "the rejected amounts overflow.");
	t->n++;
	return true;
}

/* The end record of a rejection report: number and amount of 32, then of 82 */
static bool
rejection_totals(const char *rec, int line, const Totals *t, BankFileError *err)
{
	static const char *const what[2] = {"outgoing (32)", "incoming (82)"};
	int			k;

	for (k = 0; k < 2; k++)
	{
		int64_t		n,
					sum;

		if (!numeric(rec, 15 + 18 * k, 6, "number of rejected payments", line, err, &n) ||
			!numeric(rec, 21 + 18 * k, 12, "amount of rejected payments", line, err, &sum))
			return false;
		if (n != t[k].n)
			return fail(err, line, "the end record counts %lld rejected %s payments; the file has %lld.",
						(long long) n, what[k], (long long) t[k].n);
		if (sum != t[k].sum)
			return fail(err, line, "the end record says %lld öre of rejected %s payments; they add up to %lld.",
						(long long) sum, what[k], (long long) t[k].sum);
	}
	return true;
}

bool
autogiro_parse(const char *data, size_t len, AutogiroFile *f, BankFileError *err)
{
	size_t		pos = 0;
	int			ln = 0;
	bool		done = false;
	Section		sec = {0};
	int64_t		nsec[3] = {0, 0, 0};	/* sections 15, 16, 17 */
	int64_t		nrec[3] = {0, 0, 0};	/* approved 82, 32; all 77 */
	int			n73 = 0;
	Totals		rej[2] = {{0, 0}, {0, 0}};	/* rejected 32 and 82 */

	memset(f, 0, sizeof(*f));
	memset(err, 0, sizeof(*err));
	while (pos < len)
	{
		const char *s = data + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t		l = nl ? (size_t) (nl - s) : len - pos;
		char		rec[REC + 1];
		size_t		i;
		int			code;

		pos += l + (nl ? 1 : 0);
		if (l > 0 && s[l - 1] == '\r')
			l--;
		if (ln == INT_MAX)
			return parse_failed(f) || fail(err, ln, "too many lines.");
		ln++;
		if (done)
		{
			if (l == 0)
				continue;
			fail(err, ln, "text after the end record (09).");
			return parse_failed(f);
		}
		if (l == 0)
		{
			fail(err, ln, "the line is empty; a record has 80 characters.");
			return parse_failed(f);
		}
		if (l > REC)
		{
			fail(err, ln, "the line has %zu characters; a record has 80.", l);
			return parse_failed(f);
		}
		memset(rec, ' ', REC);
		rec[REC] = '\0';
		for (i = 0; i < l; i++)
		{
			unsigned char c = (unsigned char) s[i];

			if (c < 0x20 || (c >= 0x7F && c <= 0x9F))
			{
				fail(err, ln, "character %zu is a control character (0x%02X).", i + 1, c);
				return parse_failed(f);
			}
			rec[i] = (char) c;
		}
		if (l < REC)
		{
			if (f->padded++ == 0)
				f->padded_line = ln;
		}
		if (!digits(rec, 2))
		{
			fail(err, ln, "unknown transaction code \"%.2s\".", rec);
			return parse_failed(f);
		}
		code = (int) value(rec, 2);

		if (ln == 1)
		{
			int64_t		v;

			if (code != 1 || memcmp(FIELD(rec, 3), "AUTOGIRO", 8) != 0)
			{
				fail(err, ln, "the file must begin with an Autogiro opening record (01AUTOGIRO).");
				return parse_failed(f);
			}
			if (memcmp(FIELD(rec, 45), "BET. SPEC & STOPP TK", 20) == 0)
			{
				f->kind = AUTOGIRO_PAYMENTS;
				if (!date_field(rec, 25, "date written", ln, err, &f->written_on))
					return parse_failed(f);
			}
			else if (memcmp(FIELD(rec, 45), "AG-MEDAVI", 9) == 0)
			{
				f->kind = AUTOGIRO_MANDATES;
				if (!date_field(rec, 25, "date written", ln, err, &f->written_on))
					return parse_failed(f);
			}
			else if (memcmp(FIELD(rec, 45), "AVVISADE BET UPPDR", 18) == 0)
			{
				f->kind = AUTOGIRO_REJECTIONS;
				if (!date_field(rec, 25, "date written", ln, err, &f->written_on))
					return parse_failed(f);
			}
			else
			{
				fail(err, ln, "an Autogiro file of another kind (\"%.20s\", positions 45-64): this reads payment specifications (BET. SPEC & STOPP TK), mandate advices (AG-MEDAVI) and rejected payment orders (AVVISADE BET UPPDR).",
					 FIELD(rec, 45));
				return parse_failed(f);
			}
			if (!numeric(rec, 65, 6, "customer number", ln, err, &v) ||
				!numeric(rec, 71, 10, "bankgiro number", ln, err, &v))
				return parse_failed(f);
			memcpy(f->customer_number, FIELD(rec, 65), 6);
			f->customer_number[6] = '\0';
			number_text(FIELD(rec, 71), 10, f->bankgiro);
			continue;
		}

		if (code == 9)
		{
			int64_t		v,
						cnt[6];
			int32_t		d;

			if (!close_section(&sec, ln, err) ||
				!date_field(rec, 3, "date", ln, err, &d))
				return parse_failed(f);
			if (memcmp(FIELD(rec, 11), "9900", 4) != 0)
			{
				fail(err, ln, "positions 11-14 of the end record are \"%.4s\", not 9900.", FIELD(rec, 11));
				return parse_failed(f);
			}
			if (f->kind == AUTOGIRO_REJECTIONS)
			{
				if (!rejection_totals(rec, ln, rej, err))
					return parse_failed(f);
			}
			else if (f->kind == AUTOGIRO_MANDATES)
			{
				if (!numeric(rec, 15, 7, "number of mandate records", ln, err, &v))
					return parse_failed(f);
				if (v != n73)
				{
					fail(err, ln, "the end record counts %lld mandate records (73); the file has %d.",
						 (long long) v, n73);
					return parse_failed(f);
				}
			}
			else
			{
				static const char *const names[6] = {
					"number of incoming sections", "number of approved incoming payments",
					"number of outgoing sections", "number of approved outgoing payments",
					"number of refund sections", "number of refunds"};
				int			k,
							at = 15;

				for (k = 0; k < 6; k++)
				{
					int			w = k % 2 == 0 ? 6 : 12;

					if (!numeric(rec, at, w, names[k], ln, err, &cnt[k]))
						return parse_failed(f);
					if (cnt[k] != (k % 2 == 0 ? nsec[k / 2] : nrec[k / 2]))
					{
						fail(err, ln, "the end record's %s is %lld; the file has %lld.", names[k],
							 (long long) cnt[k], (long long) (k % 2 == 0 ? nsec[k / 2] : nrec[k / 2]));
						return parse_failed(f);
					}
					at += w;
				}
			}
			f->lines = ln;
			done = true;
			continue;
		}

		if (f->kind == AUTOGIRO_MANDATES)
		{
			AutogiroRecord *r;
			int64_t		v;

			if (code != 73)
			{
				fail(err, ln, "a mandate advice has mandate records (73) and an end record (09), not %02d.", code);
				return parse_failed(f);
			}
			if ((r = add_record(f)) == NULL)
			{
				fail(err, ln, "out of memory.");
				return parse_failed(f);
			}
			r->line = ln;
			r->code = 73;
			if (!numeric(rec, 3, 10, "bankgiro number", ln, err, &v) ||
				!numeric(rec, 13, 16, "payer number", ln, err, &v) ||
				!numeric(rec, 62, 2, "information code", ln, err, &v) ||
				!date_field(rec, 66, "date", ln, err, &r->date))
				return parse_failed(f);
			r->info = (int) v;
			if (!numeric(rec, 64, 2, "status code", ln, err, &v))
				return parse_failed(f);
			r->status = (int) v;
			number_text(FIELD(rec, 3), 10, r->bankgiro);
			number_text(FIELD(rec, 13), 16, r->payer_number);
			trimmed(FIELD(rec, 29), 16, r->account);
			number_text(r->account, (int) strlen(r->account), r->account);
			trimmed(FIELD(rec, 45), 12, r->id_number);
			n73++;
			continue;
		}

		if (f->kind == AUTOGIRO_REJECTIONS)
		{
			AutogiroRecord *r;

			if (code != 82 && code != 32)
			{
				fail(err, ln, "a report of rejected payment orders has rejected payments (82, 32) and an end record (09), not %02d.", code);
				return parse_failed(f);
			}
			if ((r = add_record(f)) == NULL)
			{
				fail(err, ln, "out of memory.");
				return parse_failed(f);
			}
			r->line = ln;
			r->code = code;
			strcpy(r->bankgiro, f->bankgiro);
			if (!rejection_fields(rec, ln, err, r, &rej[code == 32 ? 0 : 1]))
				return parse_failed(f);
			continue;
		}

		/* payment specification */
		if (code == 15 || code == 16 || code == 17)
		{
			int64_t		v;

			if (!close_section(&sec, ln, err))
				return parse_failed(f);
			sec.code = code;
			sec.line = ln;
			sec.sum = sec.n = 0;
			if (!numeric(rec, 3, 35, "account", ln, err, &v) ||
				!date_field(rec, 38, "payment date", ln, err, &sec.date) ||
				!numeric(rec, 46, 5, "serial number", ln, err, &v) ||
				!numeric(rec, 51, 18, "amount", ln, err, &sec.amount) ||
				!numeric(rec, 72, 8, "number of records", ln, err, &sec.count))
				return parse_failed(f);
			sec.serial = (int) value(FIELD(rec, 46), 5);
			nsec[code - 15]++;
			f->sections++;
			continue;
		}
		if (code == 82 || code == 32 || code == 77)
		{
			AutogiroRecord *r;
			int			want = code == 82 ? 15 : code == 32 ? 16 : 17;
			char		st = rec[79];

			if (sec.code != want)
			{
				fail(err, ln, "a %02d record outside a section opened by a %02d record.", code, want);
				return parse_failed(f);
			}
			if ((r = add_record(f)) == NULL)
			{
				fail(err, ln, "out of memory.");
				return parse_failed(f);
			}
			r->line = ln;
			r->code = code;
			if (!claim_fields(rec, ln, err, r))
				return parse_failed(f);
			if (code == 77)
			{
				int64_t		v;
				int32_t		d;

				if (!date_field(rec, 70, "refund date", ln, err, &d) ||
					!numeric(rec, 78, 2, "refund code", ln, err, &v))
					return parse_failed(f);
				r->status = (int) v;
			}
			else
			{
				if (st == ' ')
					st = '0';	/* old files leave an approval blank */
				if (st != '0' && st != '1' && st != '2' && st != '9')
				{
					fail(err, ln, "status (position 80) \"%c\" is not 0 (approved), 1 (insufficient funds), 2 (no mandate or account closed) or 9 (renewed attempt).", st);
					return parse_failed(f);
				}
				r->status = st - '0';
			}
			r->settled_on = sec.date;
			r->section_serial = sec.serial;
			if (code == 77 || r->status == 0)
			{
				if (__builtin_add_overflow(sec.sum, r->amount, &sec.sum))
				{
					fail(err, ln, "the section's sum overflows.");
					return parse_failed(f);
				}
				sec.n++;
				nrec[want - 15]++;
			}
			continue;
		}
		fail(err, ln, "unknown transaction code %02d in a payment specification.", code);
		return parse_failed(f);
	}
	if (!done)
	{
		fail(err, ln == 0 ? 1 : ln, ln == 0 ? "the file is empty." : "the file ends without an end record (09).");
		return parse_failed(f);
	}
	return true;
}
