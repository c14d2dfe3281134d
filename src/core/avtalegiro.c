/*-------------------------------------------------------------------------
 *
 * avtalegiro.c
 *	  Nets AvtaleGiro: the agreements reader and the payment-claim writer.
 *
 * Layouts (1-based positions):
 *   every record: 1-2 "NY", 3-4 service code (00 for 10/89, 21 AvtaleGiro),
 *     5-6 transaction or assignment type, 7-8 record type;
 *   10 transmission start: 9-16 data transmitter, 17-23 transmission
 *     number, 24-31 data recipient, zeros;
 *   20 assignment start: 5-6 assignment type (24 agreements, 00 claims),
 *     9-17 agreement ID, 18-24 assignment number, 25-35 assignment account;
 *   70 agreement (type 94): 9-15 transaction number, 16 registration type
 *     (0 all, 1 new/changed, 2 deleted), 17-41 KID (right-aligned), 42
 *     notification J/N;
 *   30 amount item 1 (type 21 notified by the bank, 02 not): 9-15
 *     transaction number, 16-21 due date DDMMYY, 22-32 blank, 33-49 amount
 *     in øre, 50-74 KID (right-aligned), 75-80 zeros;
 *   31 amount item 2: 9-15 transaction number, 16-25 payer's short name,
 *     26-75 blank, 76-80 zeros;
 *   49 specification: 9-15 transaction number, 16 "4", 17-19 line, 20
 *     column, 21-60 text, 61-80 zeros;
 *   88 assignment end: 9-16 transactions, 17-24 records (20 to 88), 25-41
 *     sum, 42-47 first and 48-53 last due date (claims; zeros otherwise);
 *   89 transmission end: 9-16 transactions, 17-24 records (10 to 89),
 *     25-41 sum, 42-47 date.
 *
 *-------------------------------------------------------------------------
 */
#include "avtalegiro.h"

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
digits(const char *p, size_t n)
{
	size_t		i;

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
numeric(const char *rec, int from, int n, const char *what, int line, BankFileError *err, int64_t *v)
{
	*v = 0;
	if (!digits(FIELD(rec, from), (size_t) n))
		return fail(err, line, "%s (positions %d-%d) is not numeric: \"%.*s\".",
					what, from, from + n - 1, n, FIELD(rec, from));
	*v = n <= 18 ? value(FIELD(rec, from), n) : 0;
	return true;
}

/* ---------- agreements ---------- */

void
avtalegiro_free(AvtaleGiroAgreements *f)
{
	free(f->agreements);
	memset(f, 0, sizeof(*f));
}

static bool
failed(AvtaleGiroAgreements *f)
{
	avtalegiro_free(f);
	return false;
}

typedef enum
{
	S_START, S_TRANSMISSION, S_ASSIGNMENT, S_DONE
} State;

bool
avtalegiro_parse_agreements(const char *data, size_t len, AvtaleGiroAgreements *f, BankFileError *err)
{
	size_t		pos = 0;
	int			ln = 0;
	State		st = S_START;
	int			asg_n = 0,
				asg_rec = 0,
				total = 0;

	memset(f, 0, sizeof(*f));
	memset(err, 0, sizeof(*err));
	while (pos < len)
	{
		const char *s = data + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t		l = nl ? (size_t) (nl - s) : len - pos;
		char		rec[REC + 1];
		size_t		i;
		int			rt;
		int64_t		v;

		pos += l + (nl ? 1 : 0);
		if (l > 0 && s[l - 1] == '\r')
			l--;
		if (ln == INT_MAX)
		{
			fail(err, ln, "too many lines.");
			return failed(f);
		}
		ln++;
		if (st == S_DONE)
		{
			if (l == 0)
				continue;
			fail(err, ln, "text after the end record for the transmission (89).");
			return failed(f);
		}
		if (l == 0 || l > REC)
		{
			fail(err, ln, "the line has %zu characters; a record has 80.", l);
			return failed(f);
		}
		memset(rec, ' ', REC);
		rec[REC] = '\0';
		for (i = 0; i < l; i++)
		{
			unsigned char c = (unsigned char) s[i];

			if (c < 0x20 || (c >= 0x7F && c <= 0x9F))
			{
				fail(err, ln, "character %zu is a control character (0x%02X).", i + 1, c);
				return failed(f);
			}
			rec[i] = (char) c;
		}
		if (rec[0] != 'N' || rec[1] != 'Y' || !digits(FIELD(rec, 3), 6))
		{
			fail(err, ln, "the record does not begin with NY and six digits.");
			return failed(f);
		}
		rt = (int) value(FIELD(rec, 7), 2);
		if (rt == 10 || rt == 89)
		{
			if (memcmp(FIELD(rec, 3), "0000", 4) != 0)
			{
				fail(err, ln, "a transmission record (%02d) has service code and type 0000, not \"%.4s\".", rt, FIELD(rec, 3));
				return failed(f);
			}
		}
		else if (memcmp(FIELD(rec, 3), "21", 2) != 0)
		{
			fail(err, ln, "service code (positions 3-4) \"%.2s\" is not AvtaleGiro (21).", FIELD(rec, 3));
			return failed(f);
		}
		if (st == S_START && rt != 10)
		{
			fail(err, ln, "the file must begin with a start record for the transmission (10).");
			return failed(f);
		}
		switch (rt)
		{
			case 10:
				if (st != S_START)
				{
					fail(err, ln, "a second start record for the transmission (10).");
					return failed(f);
				}
				if (!numeric(rec, 9, 8, "data transmitter", ln, err, &v) ||
					!numeric(rec, 17, 7, "transmission number", ln, err, &v) ||
					!numeric(rec, 24, 8, "data recipient", ln, err, &v))
					return failed(f);
				memcpy(f->data_transmitter, FIELD(rec, 9), 8);
				memcpy(f->transmission_number, FIELD(rec, 17), 7);
				memcpy(f->data_recipient, FIELD(rec, 24), 8);
				st = S_TRANSMISSION;
				break;
			case 20:
				if (st != S_TRANSMISSION)
				{
					fail(err, ln, "a start record for an assignment (20) inside another assignment.");
					return failed(f);
				}
				if (memcmp(FIELD(rec, 5), "24", 2) != 0)
				{
					fail(err, ln, "assignment type (positions 5-6) \"%.2s\" is not agreements (24).", FIELD(rec, 5));
					return failed(f);
				}
				if (!numeric(rec, 9, 9, "agreement ID", ln, err, &v) ||
					!numeric(rec, 18, 7, "assignment number", ln, err, &v) ||
					!numeric(rec, 25, 11, "assignment account", ln, err, &v))
					return failed(f);
				memcpy(f->agreement_id, FIELD(rec, 9), 9);
				memcpy(f->assignment_number, FIELD(rec, 18), 7);
				memcpy(f->assignment_account, FIELD(rec, 25), 11);
				asg_n = 0;
				asg_rec = 1;
				st = S_ASSIGNMENT;
				break;
			case 70:
				{
					AvtaleGiroAgreement *a;
					char		kid[26];
					int			b = 0;

					if (st != S_ASSIGNMENT)
					{
						fail(err, ln, "an agreement record (70) outside an assignment.");
						return failed(f);
					}
					if (memcmp(FIELD(rec, 5), "94", 2) != 0)
					{
						fail(err, ln, "transaction type (positions 5-6) \"%.2s\" is not an agreement (94).", FIELD(rec, 5));
						return failed(f);
					}
					if (!numeric(rec, 9, 7, "transaction number", ln, err, &v))
						return failed(f);
					if (rec[15] < '0' || rec[15] > '2')
					{
						fail(err, ln, "registration type (position 16) \"%c\" is not 0, 1 or 2.", rec[15]);
						return failed(f);
					}
					memcpy(kid, FIELD(rec, 17), 25);
					kid[25] = '\0';
					while (b < 25 && kid[b] == ' ')
						b++;
					if (b == 25 || !digits(kid + b, (size_t) (25 - b)))
					{
						fail(err, ln, "KID (positions 17-41) is not right-aligned digits: \"%.25s\".", FIELD(rec, 17));
						return failed(f);
					}
					if (rec[41] != 'J' && rec[41] != 'N')
					{
						fail(err, ln, "notification (position 42) \"%c\" is neither J nor N.", rec[41]);
						return failed(f);
					}
					if (f->nagreements == f->capacity)
					{
						int			cap = f->capacity ? f->capacity * 2 : 16;
						AvtaleGiroAgreement *g;

						if (f->capacity > INT_MAX / 2 ||
							(g = realloc(f->agreements, (size_t) cap * sizeof(*g))) == NULL)
						{
							fail(err, ln, "out of memory.");
							return failed(f);
						}
						f->agreements = g;
						f->capacity = cap;
					}
					a = &f->agreements[f->nagreements++];
					memset(a, 0, sizeof(*a));
					a->line = ln;
					a->transaction_number = (int) v;
					a->registration_type = rec[15] - '0';
					strcpy(a->kid, kid + b);
					a->notify = rec[41] == 'J';
					asg_n++;
					asg_rec++;
					break;
				}
			case 88:
				{
					int64_t		ntx,
								nrec;

					if (st != S_ASSIGNMENT)
					{
						fail(err, ln, "an end record for an assignment (88) outside an assignment.");
						return failed(f);
					}
					asg_rec++;
					if (!numeric(rec, 9, 8, "number of transactions", ln, err, &ntx) ||
						!numeric(rec, 17, 8, "number of records", ln, err, &nrec))
						return failed(f);
					if (ntx != asg_n || nrec != asg_rec)
					{
						fail(err, ln, "the assignment end record counts %lld transactions and %lld records; the assignment has %d and %d.",
							 (long long) ntx, (long long) nrec, asg_n, asg_rec);
						return failed(f);
					}
					total += asg_n;
					st = S_TRANSMISSION;
					break;
				}
			case 89:
				{
					int64_t		ntx,
								nrec,
								d;

					if (st != S_TRANSMISSION)
					{
						fail(err, ln, "the end record for the transmission (89) inside an assignment.");
						return failed(f);
					}
					if (!numeric(rec, 9, 8, "number of transactions", ln, err, &ntx) ||
						!numeric(rec, 17, 8, "number of records", ln, err, &nrec) ||
						!numeric(rec, 42, 6, "date", ln, err, &d))
						return failed(f);
					if (ntx != total || nrec != ln)
					{
						fail(err, ln, "the transmission end record counts %lld transactions and %lld records; the file has %d and %d.",
							 (long long) ntx, (long long) nrec, total, ln);
						return failed(f);
					}
					if (d != 0)
					{
						int64_t		dd = d / 10000,
									mm = d / 100 % 100,
									yy = d % 100 + 2000;

						if (mm < 1 || mm > 12 || dd < 1 || dd > period_days_in_month(yy, (int) mm))
						{
							fail(err, ln, "date (positions 42-47) is not a valid date (DDMMYY): \"%.6s\".", FIELD(rec, 42));
							return failed(f);
						}
						f->nets_date = (int32_t) (yy * 10000 + mm * 100 + dd);
					}
					f->records = ln;
					st = S_DONE;
					break;
				}
			default:
				fail(err, ln, "record type %02d is not in an agreements file (10, 20, 70, 88, 89).", rt);
				return failed(f);
		}
	}
	if (st != S_DONE)
	{
		fail(err, ln == 0 ? 1 : ln, ln == 0 ? "the file is empty." : "the file ends without an end record for the transmission (89).");
		return failed(f);
	}
	return true;
}

/* ---------- claims ---------- */

static bool
fixed_digits(const char *s, size_t n)
{
	return s != NULL && strlen(s) == n && digits(s, n);
}

static void
ddmmyy(int32_t d, char *out)
{
	char		b[16];

	snprintf(b, sizeof(b), "%02d%02d%02d", (int) (d % 100), (int) (d / 100 % 100), (int) (d / 10000 % 100));
	memcpy(out, b, 6);
}

static void
zeros_from(char *rec, int from)
{
	memset(FIELD(rec, from), '0', (size_t) (REC - from + 1));
}

bool
avtalegiro_write_claims(const AvtaleGiroHeader *h, const AvtaleGiroClaim *claims, int nclaims,
						char **out, size_t *outlen, BankFileError *err)
{
	RecordWriter o;
	char		rec[REC + 1];
	char		num[32];
	int			i,
				k;
	int64_t		sum = 0;
	int32_t		first = 0,
				last = 0;
	int			asg_start;

	*out = NULL;
	*outlen = 0;
	memset(err, 0, sizeof(*err));
	if (!fixed_digits(h->data_transmitter, 8) || !fixed_digits(h->transmission_number, 7) ||
		!fixed_digits(h->data_recipient, 8) || !fixed_digits(h->agreement_id, 9) ||
		!fixed_digits(h->assignment_number, 7) || !fixed_digits(h->assignment_account, 11))
		return fail(err, 0, "the transmitter (8 digits), transmission number (7), recipient (8), agreement ID (9), assignment number (7) and account (11) must be digits of those lengths.");
	if (nclaims > 9999999)
		return fail(err, 0, "more than 9999999 claims in one assignment.");
	for (i = 0; i < nclaims; i++)
	{
		const AvtaleGiroClaim *c = &claims[i];
		int64_t		y = c->due_date / 10000,
					m = c->due_date / 100 % 100,
					d = c->due_date % 100;
		size_t		kl = strlen(c->kid);

		if (y < 2000 || y > 2069 || m < 1 || m > 12 || d < 1 || d > period_days_in_month(y, (int) m))
			return fail(err, i + 1, "the due date %d is not a valid date from 2000 to 2069.", (int) c->due_date);
		if (c->amount < 1 || c->amount > INT64_C(99999999999999999))
			return fail(err, i + 1, "the amount %lld øre is not 1 to 17 digits.", (long long) c->amount);
		if (kl < 2 || kl > 25 || !digits(c->kid, kl))
			return fail(err, i + 1, "the KID \"%s\" is not 2-25 digits.", c->kid);
		if (strlen(c->payer_name) > 10)
			return fail(err, i + 1, "the payer's short name \"%s\" is longer than 10 characters.", c->payer_name);
		for (k = 0; k < c->nspecs; k++)
			if (c->specs[k].line < 1 || c->specs[k].line > 999 ||
				(c->specs[k].column != 1 && c->specs[k].column != 2) || strlen(c->specs[k].text) > 40)
				return fail(err, i + 1, "specification line %d: line 1-999, column 1 or 2, text up to 40 characters.", k + 1);
		if (__builtin_add_overflow(sum, c->amount, &sum) || sum > INT64_C(99999999999999999))
			return fail(err, i + 1, "the sum of the claims does not fit 17 digits.");
		if (i == 0 || c->due_date < first)
			first = c->due_date;
		if (i == 0 || c->due_date > last)
			last = c->due_date;
	}

	record_writer_init(&o, REC, "\n");
#define PUT() do { if (!record_put(&o, rec)) { free(o.buf); return fail(err, 0, "out of memory."); } } while (0)
	memset(rec, '0', REC);
	rec[REC] = '\0';
	memcpy(rec, "NY000010", 8);
	memcpy(FIELD(rec, 9), h->data_transmitter, 8);
	memcpy(FIELD(rec, 17), h->transmission_number, 7);
	memcpy(FIELD(rec, 24), h->data_recipient, 8);
	PUT();
	asg_start = o.records;
	memset(rec, '0', REC);
	memcpy(rec, "NY210020", 8);
	memcpy(FIELD(rec, 9), h->agreement_id, 9);
	memcpy(FIELD(rec, 18), h->assignment_number, 7);
	memcpy(FIELD(rec, 25), h->assignment_account, 11);
	PUT();
	for (i = 0; i < nclaims; i++)
	{
		const AvtaleGiroClaim *c = &claims[i];
		const char *type = c->notify ? "21" : "02";
		char		txn[16];
		size_t		kl = strlen(c->kid);

		snprintf(txn, sizeof(txn), "%07d", i + 1);
		/* amount item 1 */
		memset(rec, ' ', REC);
		memcpy(rec, "NY21", 4);
		memcpy(FIELD(rec, 5), type, 2);
		memcpy(FIELD(rec, 7), "30", 2);
		memcpy(FIELD(rec, 9), txn, 7);
		ddmmyy(c->due_date, FIELD(rec, 16));
		snprintf(num, sizeof(num), "%017lld", (long long) c->amount);
		memcpy(FIELD(rec, 33), num, 17);
		memcpy(FIELD(rec, 50) + 25 - kl, c->kid, kl);
		zeros_from(rec, 75);
		PUT();
		/* amount item 2 */
		memset(rec, ' ', REC);
		memcpy(rec, "NY21", 4);
		memcpy(FIELD(rec, 5), type, 2);
		memcpy(FIELD(rec, 7), "31", 2);
		memcpy(FIELD(rec, 9), txn, 7);
		memcpy(FIELD(rec, 16), c->payer_name, strlen(c->payer_name));
		zeros_from(rec, 76);
		PUT();
		for (k = 0; k < c->nspecs; k++)
		{
			const AvtaleGiroSpec *sp = &c->specs[k];

			memset(rec, ' ', REC);
			memcpy(rec, "NY21", 4);
			memcpy(FIELD(rec, 5), type, 2);
			memcpy(FIELD(rec, 7), "49", 2);
			memcpy(FIELD(rec, 9), txn, 7);
			snprintf(num, sizeof(num), "4%03d%d", sp->line, sp->column);
			memcpy(FIELD(rec, 16), num, 5);
			memcpy(FIELD(rec, 21), sp->text, strlen(sp->text));
			zeros_from(rec, 61);
			PUT();
		}
	}
	memset(rec, '0', REC);
	memcpy(rec, "NY210088", 8);
	snprintf(num, sizeof(num), "%08d", nclaims);
	memcpy(FIELD(rec, 9), num, 8);
	snprintf(num, sizeof(num), "%08d", o.records - asg_start + 1);
	memcpy(FIELD(rec, 17), num, 8);
	snprintf(num, sizeof(num), "%017lld", (long long) sum);
	memcpy(FIELD(rec, 25), num, 17);
	if (nclaims > 0)
	{
		ddmmyy(first, FIELD(rec, 42));
		ddmmyy(last, FIELD(rec, 48));
	}
	PUT();
	memset(rec, '0', REC);
	memcpy(rec, "NY000089", 8);
	snprintf(num, sizeof(num), "%08d", nclaims);
	memcpy(FIELD(rec, 9), num, 8);
	snprintf(num, sizeof(num), "%08d", o.records + 1);
	memcpy(FIELD(rec, 17), num, 8);
	snprintf(num, sizeof(num), "%017lld", (long long) sum);
	memcpy(FIELD(rec, 25), num, 17);
	if (nclaims > 0)
		ddmmyy(first, FIELD(rec, 42));
	PUT();
#undef PUT
	*out = o.buf;
	*outlen = o.len;
	return true;
}
