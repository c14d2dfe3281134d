/*-------------------------------------------------------------------------
 *
 * bankfile.c
 *	  Parsers of Bankgirot BgMax and Nets OCR giro files.
 *
 * Field positions below are 1-based and inclusive, as in the banks'
 * manuals and in docs/bankfiles.md.  Each parser reads the file once, line
 * by line, with a small state machine for the legal record order; counts
 * and sums are checked against each section's end record as soon as it is
 * read, the file's end record last, then the bank identifiers of all
 * payments are checked to be unique.  The first failing check stops the
 * parse with its line number and reason.
 *
 * Plain C, no PostgreSQL headers.
 *
 *-------------------------------------------------------------------------
 */
#include "bankfile.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"
#include "period.h"

/* ---------- errors ---------- */

static bool
report(BankFileError *err, int line, const char *fmt,...)
__attribute__((format(printf, 3, 4)));

static bool
report(BankFileError *err, int line, const char *fmt,...)
{
	va_list		ap;

	err->line = line;
	va_start(ap, fmt);
	vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
	va_end(ap);
	return false;
}

void
bankfile_format_amount(int64_t units, char *buf)
{
	uint64_t	u = units < 0 ? (uint64_t) 0 - (uint64_t) units : (uint64_t) units;

	snprintf(buf, 32, "%s%llu.%02llu", units < 0 ? "-" : "",
			 (unsigned long long) (u / 100), (unsigned long long) (u % 100));
}

/* ---------- memory ---------- */

void
bankfile_free(BankFile *file)
{
	free(file->payments);
	free(file->text);
	memset(file, 0, sizeof(*file));
}

/* A new zeroed payment at the end of the list; NULL if out of memory. */
static BankPayment *
add_payment(BankFile *f)
{
	BankPayment *p;

	if (f->npayments == f->capacity)
	{
		int			newcap = f->capacity ? f->capacity * 2 : 16;
		BankPayment *grown;

		if (f->capacity > INT_MAX / 2 ||
			(size_t) newcap > SIZE_MAX / sizeof(BankPayment))
			return NULL;
		grown = realloc(f->payments, (size_t) newcap * sizeof(BankPayment));
		if (grown == NULL)
			return NULL;
		f->payments = grown;
		f->capacity = newcap;
	}
	p = &f->payments[f->npayments++];
	memset(p, 0, sizeof(*p));
	p->deduction_code = -1;
	return p;
}

/*
 * Append s[0..n) to the '\n'-separated list (*off, *len) kept in f->text.
 * The list is moved to the end of the buffer if something else was
 * appended after it.  False if out of memory.
 */
static bool
text_append(BankFile *f, size_t *off, size_t *len, const char *s, size_t n)
{
	bool		at_end = (*len == 0) || (*off + *len == f->text_len);
	size_t		need = n + (*len > 0 ? 1 : 0) + (at_end ? 0 : *len);

	if (need > SIZE_MAX - f->text_len)
		return false;
	if (f->text_len + need > f->text_cap)
	{
		size_t		newcap = f->text_cap ? f->text_cap : 256;
		char	   *grown;

		while (newcap < f->text_len + need)
		{
			if (newcap > SIZE_MAX / 2)
				return false;
			newcap *= 2;
		}
		grown = realloc(f->text, newcap);
		if (grown == NULL)
			return false;
		f->text = grown;
		f->text_cap = newcap;
	}
	if (!at_end)
	{
		memcpy(f->text + f->text_len, f->text + *off, *len);
		*off = f->text_len;
		f->text_len += *len;
	}
	else if (*len == 0)
		*off = f->text_len;
	if (*len > 0)
	{
		f->text[f->text_len++] = '\n';
		(*len)++;
	}
	memcpy(f->text + f->text_len, s, n);
	f->text_len += n;
	*len += n;
	return true;
}

/* ---------- lines and fields ---------- */

typedef struct LineReader
{
	const char *data;
	size_t		len;
	size_t		pos;
	int			lineno;			/* of the line last returned */
} LineReader;

/* The next line without its LF or CR LF; false at the end of the data. */
static bool
next_line(LineReader *r, const char **line, size_t *linelen)
{
	const char *start;
	const char *nl;
	size_t		rest;

	if (r->pos >= r->len || r->lineno == INT_MAX)
		return false;
	start = r->data + r->pos;
	rest = r->len - r->pos;
	nl = memchr(start, '\n', rest);
	if (nl != NULL)
	{
		*linelen = (size_t) (nl - start);
		r->pos += *linelen + 1;
	}
	else
	{
		*linelen = rest;
		r->pos = r->len;
	}
	if (*linelen > 0 && start[*linelen - 1] == '\r')
		(*linelen)--;
	*line = start;
	r->lineno++;
	return true;
}

/* Note a tolerated irregularity of the given kind on line lineno */
static void
warn(BankFile *f, BankFileWarningKind kind, int lineno)
{
	if (f->warn_count[kind] == 0)
		f->warn_line[kind] = lineno;
	if (f->warn_count[kind] < INT_MAX)
		f->warn_count[kind]++;
}

/* The warnings noted while parsing, as sentences, in kind order */
static void
finish_warnings(BankFile *f)
{
	int			k;

	f->nwarnings = 0;
	for (k = 0; k < BANKFILE_W_KINDS; k++)
	{
		BankFileWarning *w;
		int			c = f->warn_count[k];

		if (c == 0)
			continue;
		w = &f->warnings[f->nwarnings++];
		w->line = f->warn_line[k];
		w->count = c;
		switch ((BankFileWarningKind) k)
		{
			case BANKFILE_W_PADDED:
				snprintf(w->reason, sizeof(w->reason),
						 "%d record%s shorter than 80 characters (right-trimmed), padded back to 80 with blanks.",
						 c, c == 1 ? "" : "s");
				break;
			case BANKFILE_W_TABS:
				snprintf(w->reason, sizeof(w->reason),
						 "%d record%s with a TAB, expanded to blanks up to the next multiple of 8 columns.",
						 c, c == 1 ? "" : "s");
				break;
			case BANKFILE_W_BLANK_SERIAL:
				snprintf(w->reason, sizeof(w->reason),
						 "%d payment record%s without a BGC serial number (positions 58-69 blank).",
						 c, c == 1 ? "" : "s");
				break;
			case BANKFILE_W_BLANK_IMAGE:
				snprintf(w->reason, sizeof(w->reason),
						 "%d payment record%s with a blank image marker (position 70), read as 0 (no image).",
						 c, c == 1 ? "" : "s");
				break;
			case BANKFILE_W_EXTRA_COUNT:
				snprintf(w->reason, sizeof(w->reason),
						 "the end record counts %lld extra reference records (22, 23); the file has %lld (they carry no money: every deposit's count and amount match).",
						 (long long) f->warn_value[k], (long long) f->extra_reference_records);
				break;
			case BANKFILE_W_KINDS:
				break;
		}
	}
}

/*
 * The record on a line, as 80 characters in rec: TABs expanded to the next
 * multiple of 8 columns, a shorter (right-trimmed) line padded with blanks
 * (each noted as a warning); no control character of ISO-8859-1.  An empty
 * or blank line, or one longer than 80 columns, is an error.
 */
static bool
read_record(BankFile *f, const char *line, size_t len, int lineno, BankFileError *err,
			char *rec)
{
	size_t		i;
	size_t		col = 0;
	size_t		used = 0;		/* columns up to the last non-blank one */
	bool		tabs = false;

	if (len == 0)
		return report(err, lineno, "the line is empty; a record has %d characters.",
					  BANKFILE_RECORD_LEN);
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) line[i];

		if (c == '\t')
		{
			size_t		next = (col / 8 + 1) * 8;

			tabs = true;
			for (; col < next; col++)
				if (col < BANKFILE_RECORD_LEN)
					rec[col] = ' ';
			continue;
		}
		if (c < 0x20 || (c >= 0x7F && c <= 0x9F))
			return report(err, lineno, "character %zu is a control character (0x%02X).",
						  i + 1, c);
		if (col < BANKFILE_RECORD_LEN)
			rec[col] = (char) c;
		col++;
		if (c != ' ')
			used = col;
	}
	if (used == 0)
		return report(err, lineno, "the line is blank; a record has %d characters.",
					  BANKFILE_RECORD_LEN);
	if (col > BANKFILE_RECORD_LEN)
	{
		/* longer: never guessed at, the fields would be misplaced */
		const char *hint = "";

		for (i = 0; i + 1 < len; i++)
			if ((unsigned char) line[i] == 0xC3 &&
				(unsigned char) line[i + 1] >= 0x80 && (unsigned char) line[i + 1] <= 0xBF)
				hint = " (its letters look like UTF-8: read the file as UTF-8, not as ISO-8859-1)";
		if (tabs)
			return report(err, lineno, "the line has %zu characters with its TABs expanded; a record has %d.",
						  col, BANKFILE_RECORD_LEN);
		return report(err, lineno, "the line has %zu characters; a record has %d%s.",
					  len, BANKFILE_RECORD_LEN, hint);
	}
	if (tabs)
		warn(f, BANKFILE_W_TABS, lineno);
	if (col < BANKFILE_RECORD_LEN)
		warn(f, BANKFILE_W_PADDED, lineno);
	for (; col < BANKFILE_RECORD_LEN; col++)
		rec[col] = ' ';
	rec[BANKFILE_RECORD_LEN] = '\0';
	return true;
}

/* The field at 1-based position from, of n characters */
#define FIELD(line, from) ((line) + (from) - 1)

static bool
all_digits(const char *p, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return true;
}

static bool
all_char(const char *p, int n, char c)
{
	int			i;

	for (i = 0; i < n; i++)
		if (p[i] != c)
			return false;
	return true;
}

/* Value of n (<= 18) digits */
static int64_t
digits_value(const char *p, int n)
{
	int64_t		v = 0;
	int			i;

	for (i = 0; i < n; i++)
		v = v * 10 + (p[i] - '0');
	return v;
}

/* Numeric field: all digits, else an error naming it */
static bool
numeric_field(const char *line, int from, int n, const char *what, int lineno,
			  BankFileError *err, int64_t *value)
{
	const char *p = FIELD(line, from);

	*value = 0;
	if (!all_digits(p, n))
		return report(err, lineno, "%s (positions %d-%d) is not numeric: \"%.*s\".",
					  what, from, from + n - 1, n, p);
	*value = n <= 18 ? digits_value(p, n) : 0;	/* longer fields: digits only */
	return true;
}

/* Copy p[0..n) without leading and trailing blanks into out (> n bytes) */
static size_t
copy_trimmed(const char *p, int n, char *out)
{
	int			b = 0,
				e = n;

	while (b < e && p[b] == ' ')
		b++;
	while (e > b && p[e - 1] == ' ')
		e--;
	memcpy(out, p + b, (size_t) (e - b));
	out[e - b] = '\0';
	return (size_t) (e - b);
}

/* Copy the digits p[0..n) without leading zeros; "" if all zeros */
static void
copy_number(const char *p, int n, char *out)
{
	int			b = 0;

	while (b < n && p[b] == '0')
		b++;
	memcpy(out, p + b, (size_t) (n - b));
	out[n - b] = '\0';
}

static void
copy_verbatim(const char *p, int n, char *out)
{
	memcpy(out, p, (size_t) n);
	out[n] = '\0';
}

static bool
valid_date(int64_t y, int64_t m, int64_t d)
{
	return y >= 1 && m >= 1 && m <= 12 && d >= 1 && d <= period_days_in_month(y, (int) m);
}

/* YYYYMMDD at from: a valid date, packed into *date */
static bool
date_yyyymmdd(const char *line, int from, const char *what, int lineno, BankFileError *err,
			  int32_t *date)
{
	int64_t		v;

	*date = 0;
	if (!numeric_field(line, from, 8, what, lineno, err, &v))
		return false;
	if (!valid_date(v / 10000, v / 100 % 100, v % 100))
		return report(err, lineno, "%s (positions %d-%d) is not a valid date: \"%.8s\".",
					  what, from, from + 7, FIELD(line, from));
	*date = (int32_t) v;
	return true;
}

/*
 * DDMMYY at from: a valid date (years 70-99 are 1970-1999, 00-69 are
 * 2000-2069), packed into *date; all zeros give 0 if allow_zero.
 */
static bool
date_ddmmyy(const char *line, int from, const char *what, bool allow_zero, int lineno,
			BankFileError *err, int32_t *date)
{
	int64_t		v,
				d,
				m,
				y;

	*date = 0;
	if (!numeric_field(line, from, 6, what, lineno, err, &v))
		return false;
	if (v == 0 && allow_zero)
	{
		*date = 0;
		return true;
	}
	d = v / 10000;
	m = v / 100 % 100;
	y = v % 100;
	y += y < 70 ? 2000 : 1900;
	if (!valid_date(y, m, d))
		return report(err, lineno, "%s (positions %d-%d) is not a valid date (DDMMYY): \"%.6s\".",
					  what, from, from + 5, FIELD(line, from));
	*date = (int32_t) (y * 10000 + m * 100 + d);
	return true;
}

static bool
out_of_memory(BankFileError *err, int lineno)
{
	return report(err, lineno, "out of memory.");
}

/* Cross-check: bank_ref unique over all payments (in line order of the repeat) */
static int
compare_refs(const void *a, const void *b)
{
	const BankPayment *pa = *(const BankPayment *const *) a;
	const BankPayment *pb = *(const BankPayment *const *) b;
	int			c = strcmp(pa->bank_ref, pb->bank_ref);

	if (c != 0)
		return c;
	return (pa->line > pb->line) - (pa->line < pb->line);
}

static bool
check_unique_refs(BankFile *f, BankFileError *err)
{
	const BankPayment **sorted;
	const BankPayment *repeat = NULL;
	const BankPayment *first = NULL;
	int			i;

	if (f->npayments < 2)
		return true;
	sorted = malloc((size_t) f->npayments * sizeof(*sorted));
	if (sorted == NULL)
		return out_of_memory(err, f->records);
	for (i = 0; i < f->npayments; i++)
		sorted[i] = &f->payments[i];
	qsort(sorted, (size_t) f->npayments, sizeof(*sorted), compare_refs);
	for (i = 1; i < f->npayments; i++)
	{
		/* the second of a run of equal refs is its first repeat */
		if (strcmp(sorted[i]->bank_ref, sorted[i - 1]->bank_ref) == 0 &&
			(i == 1 || strcmp(sorted[i - 1]->bank_ref, sorted[i - 2]->bank_ref) != 0) &&
			(repeat == NULL || sorted[i]->line < repeat->line))
		{
			repeat = sorted[i];
			first = sorted[i - 1];
		}
	}
	free(sorted);
	if (repeat != NULL)
		return report(err, repeat->line,
					  "the payment repeats the bank's identifiers %s of the payment on line %d.",
					  repeat->bank_ref, first->line);
	return true;
}

/* Common epilogue of a failed parse */
static bool
parse_failed(BankFile *f)
{
	bankfile_free(f);
	return false;
}

/* ---------- BgMax ---------- */

typedef enum BgState
{
	BG_START,					/* expecting the start record 01 */
	BG_FILE,					/* expecting 05 or 70 */
	BG_SECTION,					/* inside a deposit section: 20-29 or 15 */
	BG_DONE						/* after 70: only empty lines */
} BgState;

static const char *
bg_record_name(int tk)
{
	switch (tk)
	{
		case 1:
			return "start record (01)";
		case 5:
			return "opening record (05)";
		case 15:
			return "deposit record (15)";
		case 20:
			return "payment record (20)";
		case 21:
			return "deduction record (21)";
		case 22:
			return "extra reference record (22)";
		case 23:
			return "extra reference record (23)";
		case 25:
			return "information record (25)";
		case 26:
			return "name record (26)";
		case 27:
			return "address record (27)";
		case 28:
			return "address record (28)";
		case 29:
			return "organisation number record (29)";
		case 70:
			return "end record (70)";
	}
	return NULL;
}

/* Order of the records that follow a payment: 22/23, 25, 26, 27, 28, 29 */
static int
bg_follower_rank(int tk)
{
	switch (tk)
	{
		case 22:
		case 23:
			return 1;
		case 25:
			return 2;
		case 26:
			return 3;
		case 27:
			return 4;
		case 28:
			return 5;
		case 29:
			return 6;
	}
	return 0;
}

/* Name and address parts of the current payment, joined at its end */
typedef struct BgAddress
{
	char		street[36];
	char		postcode[10];
	char		city[36];
	char		country[36];
	char		country_code[3];
} BgAddress;

static void
join_part(char *out, size_t outsz, const char *sep, const char *part)
{
	size_t		used = strlen(out);

	if (part[0] == '\0')
		return;
	snprintf(out + used, outsz - used, "%s%s", used > 0 ? sep : "", part);
}

/* "street, postcode city, country" with the empty parts left out */
static void
bg_finish_address(BankPayment *p, BgAddress *a)
{
	char		town[48] = "";

	p->payer_address[0] = '\0';
	join_part(p->payer_address, sizeof(p->payer_address), ", ", a->street);
	join_part(town, sizeof(town), " ", a->postcode);
	join_part(town, sizeof(town), " ", a->city);
	join_part(p->payer_address, sizeof(p->payer_address), ", ", town);
	join_part(p->payer_address, sizeof(p->payer_address), ", ",
			  a->country[0] ? a->country : a->country_code);
	memset(a, 0, sizeof(*a));
}

/* Fields common to records 20, 21, 22 and 23 (positions 3-70) */
typedef struct BgTransaction
{
	char		sender[11];
	char		reference[26];
	int64_t		amount;
	int			reference_code;
	int			channel;
	char		serial[13];
	bool		image;
} BgTransaction;

static bool
bg_transaction(BankFile *f, const char *line, int lineno, BankFileError *err, BgTransaction *t)
{
	int64_t		v;
	char		c;

	if (!numeric_field(line, 3, 10, "sender's bankgiro number", lineno, err, &v))
		return false;
	copy_number(FIELD(line, 3), 10, t->sender);
	copy_trimmed(FIELD(line, 13), 25, t->reference);
	if (!numeric_field(line, 38, 18, "amount", lineno, err, &t->amount))
		return false;
	c = line[55];
	if (c < '0' || c > '5')
		return report(err, lineno, "reference code (position 56) \"%c\" is not 0-5.", c);
	t->reference_code = c - '0';
	c = line[56];
	if (c < '1' || c > '4')
		return report(err, lineno, "payment channel code (position 57) \"%c\" is not 1-4.", c);
	t->channel = c - '0';
	/* blank in files that trim their records (Autogiro payments in BgMax) */
	if (all_char(FIELD(line, 58), 12, ' '))
	{
		t->serial[0] = '\0';
		warn(f, BANKFILE_W_BLANK_SERIAL, lineno);
	}
	else
	{
		if (!numeric_field(line, 58, 12, "BGC serial number", lineno, err, &v))
			return false;
		copy_verbatim(FIELD(line, 58), 12, t->serial);
	}
	c = line[69];
	if (c == ' ')
		warn(f, BANKFILE_W_BLANK_IMAGE, lineno);
	else if (c != '0' && c != '1')
		return report(err, lineno, "image marker (position 70) \"%c\" is not 0 or 1.", c);
	t->image = (c == '1');
	return true;
}

/* Currency of an opening record: blank is SEK; two decimals required */
static bool
bg_currency(const char *p, int lineno, BankFileError *err, char *out)
{
	const CurrencyInfo *cur;

	if (all_char(p, 3, ' '))
	{
		strcpy(out, "SEK");
		return true;
	}
	cur = money_currency(p, 3);
	if (cur == NULL || memcmp(cur->code, p, 3) != 0)
		return report(err, lineno, "currency (positions 23-25) \"%.3s\" is not an ISO 4217 code.", p);
	if (cur->exponent != 2)
		return report(err, lineno,
					  "currency %s has %d decimals; BgMax amounts are in hundredths.",
					  cur->code, cur->exponent);
	strcpy(out, cur->code);
	return true;
}

bool
bgmax_parse(const char *data, size_t len, BankFile *f, BankFileError *err)
{
	LineReader	r = {data, len, 0, 0};
	const char *line;
	size_t		n;
	BgState		state = BG_START;
	int			section_line = 0;	/* line of the current opening record */
	int			section_first = 0;	/* its first payment's index */
	int			section_count = 0;	/* its 20 and 21 records */
	int64_t		section_sum = 0;	/* payments less deductions */
	char		section_currency_raw[4] = "";
	char		currency[4] = "";
	char		receiver_raw[11] = "";
	char		receiver[11] = "";
	int			cur = -1;		/* index of the payment being read, or -1 */
	int			rank = 0;		/* rank of its last follower record */
	int			last_follower = 0;	/* record type of that follower */
	BgAddress	addr;
	int			deposits = 0;
	int			section_position = 0;	/* payments so far in the deposit */
	char		rec[BANKFILE_RECORD_LEN + 1];

	memset(f, 0, sizeof(*f));
	memset(err, 0, sizeof(*err));
	memset(&addr, 0, sizeof(addr));
	f->format = BANKFILE_BGMAX;

	while (next_line(&r, &line, &n))
	{
		int			ln = r.lineno;
		int			tk;
		const char *name;
		int64_t		v;

		if (state == BG_DONE)
		{
			if (n == 0)
				continue;
			report(err, ln, "text after the end record (70).");
			return parse_failed(f);
		}
		if (!read_record(f, line, n, ln, err, rec))
			return parse_failed(f);
		line = rec;
		if (!all_digits(line, 2) || (name = bg_record_name(tk = (int) digits_value(line, 2))) == NULL)
		{
			report(err, ln, "unknown record type \"%.2s\".", line);
			return parse_failed(f);
		}
		if (state == BG_START && tk != 1)
		{
			report(err, ln, "the file must begin with a start record (01), not a %s.", name);
			return parse_failed(f);
		}
		if (tk == 1 && state != BG_START)
		{
			report(err, ln, "a second start record (01).");
			return parse_failed(f);
		}
		if (state == BG_FILE && tk != 5 && tk != 70)
		{
			report(err, ln, "%s outside a deposit section: expected an opening record (05) or the end record (70).",
				   name);
			return parse_failed(f);
		}
		if (state == BG_SECTION && (tk == 5 || tk == 70))
		{
			report(err, ln, "%s inside the deposit section opened on line %d, before its deposit record (15).",
				   name, section_line);
			return parse_failed(f);
		}
		if (bg_follower_rank(tk) > 0)
		{
			int			newrank = bg_follower_rank(tk);

			if (cur < 0)
			{
				report(err, ln, "%s must follow a payment (20) or deduction (21) record.", name);
				return parse_failed(f);
			}
			if (newrank < rank)
			{
				report(err, ln, "%s after an %s: the records that follow a payment come in the order 22/23, 25, 26, 27, 28, 29.",
					   name, bg_record_name(last_follower));
				return parse_failed(f);
			}
			if (newrank == rank && newrank >= 3)
			{
				report(err, ln, "a second %s for the payment on line %d.",
					   name, f->payments[cur].line);
				return parse_failed(f);
			}
			rank = newrank;
			last_follower = tk;
		}

		switch (tk)
		{
			case 1:
				{
					char		layout[21];
					int64_t		hh,
								mi,
								ss;
					int32_t		date;

					copy_trimmed(FIELD(line, 3), 20, layout);
					if (strcmp(layout, "BGMAX") != 0)
					{
						report(err, ln, "layout name (positions 3-22) \"%s\" is not BGMAX.", layout);
						return parse_failed(f);
					}
					if (!numeric_field(line, 23, 2, "layout version", ln, err, &v))
						return parse_failed(f);
					if (v != 1)
					{
						report(err, ln, "layout version %02d is not supported; this parser reads version 01.",
							   (int) v);
						return parse_failed(f);
					}
					f->version = (int) v;
					if (!numeric_field(line, 25, 20, "timestamp", ln, err, &v) ||
						!date_yyyymmdd(line, 25, "timestamp's date", ln, err, &date))
						return parse_failed(f);
					hh = digits_value(FIELD(line, 33), 2);
					mi = digits_value(FIELD(line, 35), 2);
					ss = digits_value(FIELD(line, 37), 2);
					if (hh > 23 || mi > 59 || ss > 59)
					{
						report(err, ln, "timestamp's time (positions 33-38) is not a valid time: \"%.6s\".",
							   FIELD(line, 33));
						return parse_failed(f);
					}
					f->created_on = date;
					f->created_time_us = ((hh * 60 + mi) * 60 + ss) * 1000000 +
						digits_value(FIELD(line, 39), 6);
					if (line[44] != 'T' && line[44] != 'P')
					{
						report(err, ln, "test marker (position 45) \"%c\" is neither T (test) nor P (production).",
							   line[44]);
						return parse_failed(f);
					}
					f->test = (line[44] == 'T');
					state = BG_FILE;
					break;
				}
			case 5:
				{
					char		plusgiro[11];

					if (!numeric_field(line, 3, 10, "receiver's bankgiro number", ln, err, &v))
						return parse_failed(f);
					copy_verbatim(FIELD(line, 3), 10, receiver_raw);
					copy_number(FIELD(line, 3), 10, receiver);
					copy_trimmed(FIELD(line, 13), 10, plusgiro);
					if (!all_digits(plusgiro, (int) strlen(plusgiro)))
					{
						report(err, ln, "receiver's plusgiro number (positions 13-22) is not numeric: \"%.10s\".",
							   FIELD(line, 13));
						return parse_failed(f);
					}
					if (!bg_currency(FIELD(line, 23), ln, err, currency))
						return parse_failed(f);
					copy_verbatim(FIELD(line, 23), 3, section_currency_raw);
					state = BG_SECTION;
					section_line = ln;
					section_first = f->npayments;
					section_count = 0;
					section_sum = 0;
					section_position = 0;
					cur = -1;
					break;
				}
			case 20:
			case 21:
				{
					BgTransaction t;
					BankPayment *p;

					if (!bg_transaction(f, line, ln, err, &t))
						return parse_failed(f);
					if (tk == 21 && (line[70] < '0' || line[70] > '9'))
					{
						report(err, ln, "deduction code (position 71) \"%c\" is not a digit.", line[70]);
						return parse_failed(f);
					}
					if (cur >= 0)
						bg_finish_address(&f->payments[cur], &addr);
					if ((p = add_payment(f)) == NULL)
					{
						out_of_memory(err, ln);
						return parse_failed(f);
					}
					p->line = ln;
					p->kind = tk;
					p->deposit_serial = ++section_position;	/* position, until 15 */
					p->amount = tk == 20 ? t.amount : -t.amount;
					strcpy(p->currency, currency);
					strcpy(p->reference, t.reference);
					strcpy(p->payer, t.sender);
					p->reference_code = t.reference_code;
					p->channel = t.channel;
					p->image = t.image;
					if (tk == 21)
						p->deduction_code = line[70] - '0';
					strcpy(p->bgc_serial, t.serial);
					strcpy(p->receiver, receiver);
					if (__builtin_add_overflow(section_sum, p->amount, &section_sum))
					{
						report(err, ln, "the sum of the deposit's payments overflows.");
						return parse_failed(f);
					}
					section_count++;
					if (tk == 20)
						f->payment_records++;
					else
						f->deduction_records++;
					cur = f->npayments - 1;
					rank = 0;
					last_follower = 0;
					break;
				}
			case 22:
			case 23:
				{
					BgTransaction t;
					BankPayment *p = &f->payments[cur];

					if (!bg_transaction(f, line, ln, err, &t))
						return parse_failed(f);
					if (t.reference[0] != '\0' &&
						!text_append(f, &p->extra_off, &p->extra_len, t.reference, strlen(t.reference)))
					{
						out_of_memory(err, ln);
						return parse_failed(f);
					}
					f->extra_reference_records++;
					break;
				}
			case 25:
				{
					char		info[51];
					size_t		ilen = copy_trimmed(FIELD(line, 3), 50, info);
					BankPayment *p = &f->payments[cur];

					if (ilen > 0 && !text_append(f, &p->info_off, &p->info_len, info, ilen))
					{
						out_of_memory(err, ln);
						return parse_failed(f);
					}
					break;
				}
			case 26:
				{
					char		name1[36];
					char		name2[36];
					BankPayment *p = &f->payments[cur];

					copy_trimmed(FIELD(line, 3), 35, name1);
					copy_trimmed(FIELD(line, 38), 35, name2);
					p->payer_name[0] = '\0';
					join_part(p->payer_name, sizeof(p->payer_name), " ", name1);
					join_part(p->payer_name, sizeof(p->payer_name), " ", name2);
					break;
				}
			case 27:
				copy_trimmed(FIELD(line, 3), 35, addr.street);
				copy_trimmed(FIELD(line, 38), 9, addr.postcode);
				break;
			case 28:
				copy_trimmed(FIELD(line, 3), 35, addr.city);
				copy_trimmed(FIELD(line, 38), 35, addr.country);
				copy_trimmed(FIELD(line, 73), 2, addr.country_code);
				break;
			case 29:
				{
					char		org[13];

					copy_trimmed(FIELD(line, 3), 12, org);
					if (!all_digits(org, (int) strlen(org)))
					{
						report(err, ln, "organisation number (positions 3-14) is not numeric: \"%.12s\".",
							   FIELD(line, 3));
						return parse_failed(f);
					}
					copy_number(org, (int) strlen(org), f->payments[cur].payer_org_no);
					break;
				}
			case 15:
				{
					int32_t		date;
					int64_t		serial,
								amount,
								count;
					char		a[32],
								b[32];
					int			i;

					if (!numeric_field(line, 3, 35, "receiver's bank account number", ln, err, &v) ||
						!date_yyyymmdd(line, 38, "payment date", ln, err, &date) ||
						!numeric_field(line, 46, 5, "deposit serial number", ln, err, &serial) ||
						!numeric_field(line, 51, 18, "deposit amount", ln, err, &amount))
						return parse_failed(f);
					if (memcmp(FIELD(line, 69), section_currency_raw, 3) != 0)
					{
						report(err, ln, "deposit currency \"%.3s\" differs from the opening record's \"%s\" on line %d.",
							   FIELD(line, 69), section_currency_raw, section_line);
						return parse_failed(f);
					}
					if (!numeric_field(line, 72, 8, "number of payments", ln, err, &count))
						return parse_failed(f);
					if (line[79] != 'K' && line[79] != 'D' && line[79] != 'S' && line[79] != ' ')
					{
						report(err, ln, "deposit type (position 80) \"%c\" is not K, D, S or blank.", line[79]);
						return parse_failed(f);
					}
					if (count != section_count)
					{
						report(err, ln, "deposit record count %lld does not match %d payment records.",
							   (long long) count, section_count);
						return parse_failed(f);
					}
					if (amount != section_sum)
					{
						bankfile_format_amount(amount, a);
						bankfile_format_amount(section_sum, b);
						report(err, ln, "deposit amount %s does not match %s, the sum of the deposit's payments less its deductions.",
							   a, b);
						return parse_failed(f);
					}
					if (cur >= 0)
						bg_finish_address(&f->payments[cur], &addr);
					for (i = section_first; i < f->npayments; i++)
					{
						BankPayment *p = &f->payments[i];

						int			position = p->deposit_serial;

						/*
						 * The deposit (receiver, payment date, deposit serial
						 * number) and the payment's place in it: BGC serial
						 * numbers repeat across deposits in real files.
						 */
						p->received_on = date;
						p->deposit_serial = (int) serial;
						snprintf(p->bank_ref, sizeof(p->bank_ref), "bgmax:%s:%08d:%05d:%d",
								 receiver_raw, (int) date, (int) serial, position);
					}
					deposits++;
					cur = -1;
					state = BG_FILE;
					break;
				}
			case 70:
				{
					int64_t		np,
								nd,
								ne,
								ns;

					if (!numeric_field(line, 3, 8, "number of payment records", ln, err, &np) ||
						!numeric_field(line, 11, 8, "number of deduction records", ln, err, &nd) ||
						!numeric_field(line, 19, 8, "number of extra reference records", ln, err, &ne) ||
						!numeric_field(line, 27, 8, "number of deposit records", ln, err, &ns))
						return parse_failed(f);
					if (np != f->payment_records)
						report(err, ln, "end record count of payment records %lld does not match %d payment records (20) in the file.",
							   (long long) np, f->payment_records);
					else if (nd != f->deduction_records)
						report(err, ln, "end record count of deduction records %lld does not match %d deduction records (21) in the file.",
							   (long long) nd, f->deduction_records);
					else if (ns != deposits)
						report(err, ln, "end record count of deposit records %lld does not match %d deposit records (15) in the file.",
							   (long long) ns, deposits);
					if (err->line != 0)
						return parse_failed(f);
					if (ne != f->extra_reference_records)
					{
						/* tolerated: informative, no money in it */
						f->warn_value[BANKFILE_W_EXTRA_COUNT] = ne;
						warn(f, BANKFILE_W_EXTRA_COUNT, ln);
					}
					f->records = ln;
					f->sections = deposits;
					state = BG_DONE;
					break;
				}
		}
	}

	if (state != BG_DONE)
	{
		if (r.lineno == 0)
			report(err, 1, "the file is empty.");
		else if (state == BG_SECTION)
			report(err, r.lineno, "the file ends inside the deposit section opened on line %d, without its deposit record (15) and the end record (70).",
				   section_line);
		else
			report(err, r.lineno, "the file ends without an end record (70).");
		return parse_failed(f);
	}
	if (!check_unique_refs(f, err))
		return parse_failed(f);
	finish_warnings(f);
	return true;
}

/* ---------- Nets OCR giro ---------- */

typedef enum NetsState
{
	NE_START,					/* expecting the transmission start 10 */
	NE_TRANSMISSION,			/* expecting 20 or 89 */
	NE_ASSIGNMENT,				/* after 20: expecting 30 or 88 */
	NE_ITEM1,					/* after 30: expecting 31 */
	NE_ITEM2,					/* after 31 or 32: expecting 30, 32 or 88 */
	NE_DONE						/* after 89: only empty lines */
} NetsState;

static const char *
nets_record_name(int rt)
{
	switch (rt)
	{
		case 10:
			return "start record for the transmission (10)";
		case 20:
			return "start record for an assignment (20)";
		case 30:
			return "amount item 1 (30)";
		case 31:
			return "amount item 2 (31)";
		case 32:
			return "amount item 3 (32)";
		case 88:
			return "end record for the assignment (88)";
		case 89:
			return "end record for the transmission (89)";
	}
	return NULL;
}

bool
nets_ocr_parse(const char *data, size_t len, BankFile *f, BankFileError *err)
{
	LineReader	r = {data, len, 0, 0};
	const char *line;
	size_t		n;
	NetsState	state = NE_START;
	/* the current assignment */
	int			asg_line = 0;
	int			asg_records = 0;
	int			asg_transactions = 0;
	int64_t		asg_sum = 0;
	int32_t		asg_first_date = 0;
	int32_t		asg_last_date = 0;
	char		agreement[10] = "";
	char		assignment[8] = "";
	char		account[12] = "";
	/* the current transaction */
	int			tx_type = 0;
	int			tx_number = 0;
	bool		item3 = false;
	char		rec[BANKFILE_RECORD_LEN + 1];

	memset(f, 0, sizeof(*f));
	memset(err, 0, sizeof(*err));
	f->format = BANKFILE_NETS_OCR;

	while (next_line(&r, &line, &n))
	{
		int			ln = r.lineno;
		int			rt;
		const char *name;
		int64_t		v;
		const char *service;

		if (state == NE_DONE)
		{
			if (n == 0)
				continue;
			report(err, ln, "text after the end record for the transmission (89).");
			return parse_failed(f);
		}
		if (!read_record(f, line, n, ln, err, rec))
			return parse_failed(f);
		line = rec;
		if (line[0] != 'N' || line[1] != 'Y')
		{
			report(err, ln, "the record does not begin with the format code NY: \"%.2s\".", line);
			return parse_failed(f);
		}
		if (!all_digits(FIELD(line, 7), 2) ||
			(name = nets_record_name(rt = (int) digits_value(FIELD(line, 7), 2))) == NULL)
		{
			report(err, ln, "unknown record type \"%.2s\" (positions 7-8).", FIELD(line, 7));
			return parse_failed(f);
		}
		service = (rt == 10 || rt == 89) ? "00" : "09";
		if (memcmp(FIELD(line, 3), service, 2) != 0)
		{
			if (rt == 10 || rt == 89)
				report(err, ln, "service code (positions 3-4) of a %s is \"%.2s\", not 00.",
					   name, FIELD(line, 3));
			else
				report(err, ln, "service code (positions 3-4) \"%.2s\" is not OCR giro (09).",
					   FIELD(line, 3));
			return parse_failed(f);
		}

		/* legal order */
		if (state == NE_START && rt != 10)
		{
			report(err, ln, "the file must begin with a start record for the transmission (10), not an %s.",
				   name);
			return parse_failed(f);
		}
		if (rt == 10 && state != NE_START)
		{
			report(err, ln, "a second start record for the transmission (10).");
			return parse_failed(f);
		}
		if (state == NE_TRANSMISSION && rt != 20 && rt != 89)
		{
			report(err, ln, "%s outside an assignment: expected a start record for an assignment (20) or the end record for the transmission (89).",
				   name);
			return parse_failed(f);
		}
		if (state == NE_ITEM1 && rt != 31)
		{
			report(err, ln, "%s where amount item 2 (31) of transaction %d was expected.",
				   name, tx_number);
			return parse_failed(f);
		}
		if ((state == NE_ASSIGNMENT || state == NE_ITEM2) && (rt == 20 || rt == 89))
		{
			report(err, ln, "%s inside the assignment opened on line %d, before its end record (88).",
				   name, asg_line);
			return parse_failed(f);
		}
		if (rt == 31 && state != NE_ITEM1)
		{
			report(err, ln, "amount item 2 (31) must follow amount item 1 (30).");
			return parse_failed(f);
		}
		if (rt == 32 && (state != NE_ITEM2 || item3))
		{
			report(err, ln, "amount item 3 (32) must follow amount item 2 (31).");
			return parse_failed(f);
		}

		switch (rt)
		{
			case 10:
				if (memcmp(FIELD(line, 5), "00", 2) != 0)
				{
					report(err, ln, "transmission type (positions 5-6) \"%.2s\" is not 00.", FIELD(line, 5));
					return parse_failed(f);
				}
				if (!numeric_field(line, 9, 8, "data transmitter", ln, err, &v) ||
					!numeric_field(line, 17, 7, "transmission number", ln, err, &v) ||
					!numeric_field(line, 24, 8, "data recipient", ln, err, &v))
					return parse_failed(f);
				copy_verbatim(FIELD(line, 9), 8, f->data_transmitter);
				copy_verbatim(FIELD(line, 17), 7, f->transmission_number);
				copy_verbatim(FIELD(line, 24), 8, f->data_recipient);
				state = NE_TRANSMISSION;
				break;

			case 20:
				if (memcmp(FIELD(line, 5), "00", 2) != 0)
				{
					report(err, ln, "assignment type (positions 5-6) \"%.2s\" is not a transaction assignment (00).",
						   FIELD(line, 5));
					return parse_failed(f);
				}
				if (!numeric_field(line, 9, 9, "agreement ID", ln, err, &v) ||
					!numeric_field(line, 18, 7, "assignment number", ln, err, &v) ||
					!numeric_field(line, 25, 11, "assignment account", ln, err, &v))
					return parse_failed(f);
				copy_verbatim(FIELD(line, 9), 9, agreement);
				copy_verbatim(FIELD(line, 18), 7, assignment);
				copy_verbatim(FIELD(line, 25), 11, account);
				asg_line = ln;
				asg_records = 1;
				asg_transactions = 0;
				asg_sum = 0;
				asg_first_date = asg_last_date = 0;
				state = NE_ASSIGNMENT;
				break;

			case 30:
				{
					BankPayment *p;
					int64_t		type,
								number,
								amount,
								day_code,
								partial,
								centre,
								serial;
					int32_t		date;
					char		kid[26];
					size_t		kidlen,
								i;
					char		sign = line[31];

					if (!numeric_field(line, 5, 2, "transaction type", ln, err, &type))
						return parse_failed(f);
					if (type < 10 || type > 21)
					{
						report(err, ln, "transaction type %02d (positions 5-6) is not an OCR giro transaction type (10-21).",
							   (int) type);
						return parse_failed(f);
					}
					if (!numeric_field(line, 9, 7, "transaction number", ln, err, &number) ||
						!date_ddmmyy(line, 16, "Nets date", false, ln, err, &date) ||
						!numeric_field(line, 22, 2, "centre ID", ln, err, &centre) ||
						!numeric_field(line, 24, 2, "day code", ln, err, &day_code) ||
						!numeric_field(line, 26, 1, "partial settlement number", ln, err, &partial) ||
						!numeric_field(line, 27, 5, "partial settlement serial number", ln, err, &serial))
						return parse_failed(f);
					if (sign != '0' && sign != '-')
					{
						report(err, ln, "sign (position 32) \"%c\" is neither 0 nor -.", sign);
						return parse_failed(f);
					}
					if (!numeric_field(line, 33, 17, "amount", ln, err, &amount))
						return parse_failed(f);
					kidlen = copy_trimmed(FIELD(line, 50), 25, kid);
					for (i = 0; i < kidlen; i++)
						if ((kid[i] < '0' || kid[i] > '9') && kid[i] != '-')
						{
							report(err, ln, "KID (positions 50-74) has a character other than a digit or -: \"%.25s\".",
								   FIELD(line, 50));
							return parse_failed(f);
						}
					if ((p = add_payment(f)) == NULL)
					{
						out_of_memory(err, ln);
						return parse_failed(f);
					}
					p->line = ln;
					p->kind = (int) type;
					p->amount = sign == '-' ? -amount : amount;
					strcpy(p->currency, "NOK");
					p->received_on = date;
					strcpy(p->reference, kid);
					p->transaction_number = (int) number;
					copy_verbatim(FIELD(line, 22), 2, p->centre_id);
					p->day_code = (int) day_code;
					p->partial_settlement = (int) partial;
					copy_verbatim(FIELD(line, 27), 5, p->settlement_serial);
					strcpy(p->agreement_id, agreement);
					strcpy(p->assignment_number, assignment);
					strcpy(p->assignment_account, account);
					snprintf(p->bank_ref, sizeof(p->bank_ref), "nets:%s:%s:%.7s",
							 agreement, assignment, FIELD(line, 9));
					if (__builtin_add_overflow(asg_sum, p->amount, &asg_sum))
					{
						report(err, ln, "the sum of the assignment's amounts overflows.");
						return parse_failed(f);
					}
					if (asg_transactions == 0 || date < asg_first_date)
						asg_first_date = date;
					if (asg_transactions == 0 || date > asg_last_date)
						asg_last_date = date;
					asg_transactions++;
					asg_records++;
					tx_type = (int) type;
					tx_number = (int) number;
					state = NE_ITEM1;
					break;
				}

			case 31:
			case 32:
				{
					BankPayment *p = &f->payments[f->npayments - 1];
					int64_t		type,
								number;

					if (!numeric_field(line, 5, 2, "transaction type", ln, err, &type) ||
						!numeric_field(line, 9, 7, "transaction number", ln, err, &number))
						return parse_failed(f);
					if (type != tx_type || number != tx_number)
					{
						report(err, ln, "%s is for transaction %lld of type %02lld, but amount item 1 on line %d is for transaction %d of type %02d.",
							   name, (long long) number, (long long) type, p->line, tx_number, tx_type);
						return parse_failed(f);
					}
					if (rt == 31)
					{
						if (!numeric_field(line, 16, 10, "form number", ln, err, &v) ||
							!numeric_field(line, 26, 9, "archive reference", ln, err, &v) ||
							!date_ddmmyy(line, 42, "payment date", true, ln, err, &p->bank_date) ||
							!numeric_field(line, 48, 11, "debited account", ln, err, &v))
							return parse_failed(f);
						if (!all_char(FIELD(line, 16), 10, '0'))
							copy_verbatim(FIELD(line, 16), 10, p->form_number);
						if (!all_char(FIELD(line, 26), 9, '0'))
							copy_verbatim(FIELD(line, 26), 9, p->archive_reference);
						if (!all_char(FIELD(line, 48), 11, '0'))
							copy_verbatim(FIELD(line, 48), 11, p->payer);
						item3 = false;
						state = NE_ITEM2;
					}
					else
					{
						if (tx_type != 20 && tx_type != 21)
						{
							report(err, ln, "amount item 3 (32) is only for transaction types 20 and 21, not %02d.",
								   tx_type);
							return parse_failed(f);
						}
						copy_trimmed(FIELD(line, 16), 40, p->message);
						item3 = true;
					}
					asg_records++;
					break;
				}

			case 88:
				{
					int64_t		ntx,
								nrec,
								sum;
					int32_t		nets_date,
								first,
								last;
					char		a[32],
								b[32];

					asg_records++;
					if (memcmp(FIELD(line, 5), "00", 2) != 0)
					{
						report(err, ln, "assignment type (positions 5-6) \"%.2s\" is not a transaction assignment (00).",
							   FIELD(line, 5));
						return parse_failed(f);
					}
					if (!numeric_field(line, 9, 8, "number of transactions", ln, err, &ntx) ||
						!numeric_field(line, 17, 8, "number of records", ln, err, &nrec) ||
						!numeric_field(line, 25, 17, "sum of amounts", ln, err, &sum) ||
						!date_ddmmyy(line, 42, "Nets date", asg_transactions == 0, ln, err, &nets_date) ||
						!date_ddmmyy(line, 48, "earliest Nets date", asg_transactions == 0, ln, err, &first) ||
						!date_ddmmyy(line, 54, "latest Nets date", asg_transactions == 0, ln, err, &last))
						return parse_failed(f);
					bankfile_format_amount(sum, a);
					bankfile_format_amount(asg_sum, b);
					if (ntx != asg_transactions)
						report(err, ln, "assignment end record count %lld does not match %d transactions in the assignment.",
							   (long long) ntx, asg_transactions);
					else if (nrec != asg_records)
						report(err, ln, "assignment end record counts %lld records; the assignment has %d.",
							   (long long) nrec, asg_records);
					else if (sum != asg_sum)
						report(err, ln, "assignment end record sum %s does not match %s, the sum of the assignment's amounts.",
							   a, b);
					else if (asg_transactions > 0 && first != asg_first_date)
						report(err, ln, "earliest Nets date %.6s does not match the earliest date of the assignment's transactions.",
							   FIELD(line, 48));
					else if (asg_transactions > 0 && last != asg_last_date)
						report(err, ln, "latest Nets date %.6s does not match the latest date of the assignment's transactions.",
							   FIELD(line, 54));
					if (err->line != 0)
						return parse_failed(f);
					if (__builtin_add_overflow(f->total, asg_sum, &f->total))
					{
						report(err, ln, "the sum of the transmission's amounts overflows.");
						return parse_failed(f);
					}
					f->transactions += asg_transactions;
					f->sections++;
					state = NE_TRANSMISSION;
					break;
				}

			case 89:
				{
					int64_t		ntx,
								nrec,
								sum;
					int32_t		nets_date;
					char		a[32],
								b[32];

					if (memcmp(FIELD(line, 5), "00", 2) != 0)
					{
						report(err, ln, "transmission type (positions 5-6) \"%.2s\" is not 00.", FIELD(line, 5));
						return parse_failed(f);
					}
					if (!numeric_field(line, 9, 8, "number of transactions", ln, err, &ntx) ||
						!numeric_field(line, 17, 8, "number of records", ln, err, &nrec) ||
						!numeric_field(line, 25, 17, "sum of amounts", ln, err, &sum) ||
						!date_ddmmyy(line, 42, "Nets date", f->transactions == 0, ln, err, &nets_date))
						return parse_failed(f);
					bankfile_format_amount(sum, a);
					bankfile_format_amount(f->total, b);
					if (ntx != f->transactions)
						report(err, ln, "transmission end record count %lld does not match %d transactions in the file.",
							   (long long) ntx, f->transactions);
					else if (nrec != ln)
						report(err, ln, "transmission end record counts %lld records; the transmission has %d.",
							   (long long) nrec, ln);
					else if (sum != f->total)
						report(err, ln, "transmission end record sum %s does not match %s, the sum of the file's amounts.",
							   a, b);
					if (err->line != 0)
						return parse_failed(f);
					f->nets_date = nets_date;
					f->records = ln;
					state = NE_DONE;
					break;
				}
		}
	}

	if (state != NE_DONE)
	{
		if (r.lineno == 0)
			report(err, 1, "the file is empty.");
		else if (state == NE_TRANSMISSION)
			report(err, r.lineno, "the file ends without an end record for the transmission (89).");
		else
			report(err, r.lineno, "the file ends inside the assignment opened on line %d, without its end record (88) and the end record for the transmission (89).",
				   asg_line);
		return parse_failed(f);
	}
	if (!check_unique_refs(f, err))
		return parse_failed(f);
	finish_warnings(f);
	return true;
}

/* ---------- encoding ---------- */

bool
bankfile_utf8_to_latin1(const char *in, size_t len, char *out, size_t *outlen,
						BankFileError *err)
{
	size_t		i = 0,
				o = 0;
	int			line = 1;

	memset(err, 0, sizeof(*err));
	while (i < len)
	{
		unsigned char c = (unsigned char) in[i];

		if (c < 0x80)
		{
			if (c == '\n')
				line++;
			out[o++] = (char) c;
			i++;
		}
		else if (c == 0xC2 || c == 0xC3)
		{
			unsigned char c2;

			if (i + 1 >= len || ((c2 = (unsigned char) in[i + 1]) & 0xC0) != 0x80)
				return report(err, line, "the text is not valid UTF-8.");
			out[o++] = (char) (((c & 0x03) << 6) | (c2 & 0x3F));
			i += 2;
		}
		else
		{
			/* a code point above U+00FF, or malformed: name it if well formed */
			unsigned int cp = 0;
			int			extra = c >= 0xF0 && c <= 0xF4 ? 3 : c >= 0xE0 && c <= 0xEF ? 2 :
				c >= 0xC4 && c <= 0xDF ? 1 : -1;
			int			k;

			if (extra < 0 || i + (size_t) extra >= len)
				return report(err, line, "the text is not valid UTF-8.");
			cp = c & (0x3F >> extra);
			for (k = 1; k <= extra; k++)
			{
				unsigned char ck = (unsigned char) in[i + (size_t) k];

				if ((ck & 0xC0) != 0x80)
					return report(err, line, "the text is not valid UTF-8.");
				cp = (cp << 6) | (ck & 0x3F);
			}
			return report(err, line, "character U+%04X is not in ISO-8859-1, the character set of bank files.",
						  cp);
		}
	}
	*outlen = o;
	return true;
}
