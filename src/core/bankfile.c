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
 * Both formats share the loop (parse_records: lines, record normalisation,
 * text after the end record, an empty file) and the whole-file checks
 * (parse_end); each format has a state struct, a record step that checks
 * the record order and hands the record to the function for its kind, and
 * an end-of-file check.
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

/* ---------- the parse loop, shared by both formats ---------- */

/*
 * What both parsers keep while reading: each format's state struct begins
 * with it, and its record step receives it.
 */
typedef struct ParseCommon
{
	BankFile   *f;
	BankFileError *err;
	bool		done;			/* the end record was read: only empty lines follow */
} ParseCommon;

/* One record (80 characters, padded) on line lineno; false on an error */
typedef bool (*RecordStep) (ParseCommon *pc, const char *rec, int lineno);

static void
parse_begin(ParseCommon *pc, BankFile *f, BankFileError *err, BankFileFormat format)
{
	memset(f, 0, sizeof(*f));
	memset(err, 0, sizeof(*err));
	f->format = format;
	pc->f = f;
	pc->err = err;
	pc->done = false;
}

/*
 * Read the file line by line, each record normalised by read_record and
 * handed to step; after the end record (end_record names it) only empty
 * lines may follow.  *lines is the number of lines read.  An empty file
 * is an error.  False on the first error.
 */
static bool
parse_records(ParseCommon *pc, const char *data, size_t len, const char *end_record,
			  RecordStep step, int *lines)
{
	LineReader	r = {data, len, 0, 0};
	const char *line;
	size_t		n;
	char		rec[BANKFILE_RECORD_LEN + 1];

	while (next_line(&r, &line, &n))
	{
		if (pc->done)
		{
			if (n == 0)
				continue;
			return report(pc->err, r.lineno, "text after the %s.", end_record);
		}
		if (!read_record(pc->f, line, n, r.lineno, pc->err, rec))
			return false;
		if (!step(pc, rec, r.lineno))
			return false;
	}
	*lines = r.lineno;
	if (!pc->done && r.lineno == 0)
		return report(pc->err, 1, "the file is empty.");
	return true;
}

/* The checks over the whole file, then the warnings; frees f on failure */
static bool
parse_end(ParseCommon *pc, bool ok)
{
	if (!ok || !check_unique_refs(pc->f, pc->err))
		return parse_failed(pc->f);
	finish_warnings(pc->f);
	return true;
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

/* What the BgMax parser keeps between records */
typedef struct BgParse
{
	ParseCommon pc;				/* first: the record step receives it */
	BgState		state;
	/* the current deposit section */
	int			section_line;	/* line of its opening record */
	int			section_first;	/* its first payment's index */
	int			section_count;	/* its 20 and 21 records */
	int64_t		section_sum;	/* payments less deductions */
	int			section_position;	/* payments so far in the deposit */
	char		section_currency_raw[4];
	char		currency[4];
	char		receiver_raw[11];
	char		receiver[11];
	/* the payment being read */
	int			cur;			/* its index, or -1 */
	int			rank;			/* rank of its last follower record */
	int			last_follower;	/* record type of that follower */
	BgAddress	addr;
	int			deposits;
} BgParse;

/* The legal record order: start, sections, followers of a payment */
static bool
bg_check_order(BgParse *s, int tk, const char *name, int ln)
{
	BankFileError *err = s->pc.err;
	int			newrank = bg_follower_rank(tk);

	if (s->state == BG_START && tk != 1)
		return report(err, ln, "the file must begin with a start record (01), not a %s.", name);
	if (tk == 1 && s->state != BG_START)
		return report(err, ln, "a second start record (01).");
	if (s->state == BG_FILE && tk != 5 && tk != 70)
		return report(err, ln, "%s outside a deposit section: expected an opening record (05) or the end record (70).",
					  name);
	if (s->state == BG_SECTION && (tk == 5 || tk == 70))
		return report(err, ln, "%s inside the deposit section opened on line %d, before its deposit record (15).",
					  name, s->section_line);
	if (newrank == 0)
		return true;
	if (s->cur < 0)
		return report(err, ln, "%s must follow a payment (20) or deduction (21) record.", name);
	if (newrank < s->rank)
		return report(err, ln, "%s after an %s: the records that follow a payment come in the order 22/23, 25, 26, 27, 28, 29.",
					  name, bg_record_name(s->last_follower));
	if (newrank == s->rank && newrank >= 3)
		return report(err, ln, "a second %s for the payment on line %d.",
					  name, s->pc.f->payments[s->cur].line);
	s->rank = newrank;
	s->last_follower = tk;
	return true;
}

/* Start record (01): layout, version, timestamp, test marker */
static bool
bg_start(BgParse *s, const char *line, int ln)
{
	BankFile   *f = s->pc.f;
	BankFileError *err = s->pc.err;
	char		layout[21];
	int64_t		v,
				hh,
				mi,
				ss;
	int32_t		date;

	copy_trimmed(FIELD(line, 3), 20, layout);
	if (strcmp(layout, "BGMAX") != 0)
		return report(err, ln, "layout name (positions 3-22) \"%s\" is not BGMAX.", layout);
	if (!numeric_field(line, 23, 2, "layout version", ln, err, &v))
		return false;
	if (v != 1)
		return report(err, ln, "layout version %02d is not supported; this parser reads version 01.",
					  (int) v);
	f->version = (int) v;
	if (!numeric_field(line, 25, 20, "timestamp", ln, err, &v) ||
		!date_yyyymmdd(line, 25, "timestamp's date", ln, err, &date))
		return false;
	hh = digits_value(FIELD(line, 33), 2);
	mi = digits_value(FIELD(line, 35), 2);
	ss = digits_value(FIELD(line, 37), 2);
	if (hh > 23 || mi > 59 || ss > 59)
		return report(err, ln, "timestamp's time (positions 33-38) is not a valid time: \"%.6s\".",
					  FIELD(line, 33));
	f->created_on = date;
	f->created_time_us = ((hh * 60 + mi) * 60 + ss) * 1000000 +
		digits_value(FIELD(line, 39), 6);
	if (line[44] != 'T' && line[44] != 'P')
		return report(err, ln, "test marker (position 45) \"%c\" is neither T (test) nor P (production).",
					  line[44]);
	f->test = (line[44] == 'T');
	s->state = BG_FILE;
	return true;
}

/* Opening record (05): the receiver and currency of a deposit section */
static bool
bg_opening(BgParse *s, const char *line, int ln)
{
	BankFileError *err = s->pc.err;
	char		plusgiro[11];
	int64_t		v;

	if (!numeric_field(line, 3, 10, "receiver's bankgiro number", ln, err, &v))
		return false;
	copy_verbatim(FIELD(line, 3), 10, s->receiver_raw);
	copy_number(FIELD(line, 3), 10, s->receiver);
	copy_trimmed(FIELD(line, 13), 10, plusgiro);
	if (!all_digits(plusgiro, (int) strlen(plusgiro)))
		return report(err, ln, "receiver's plusgiro number (positions 13-22) is not numeric: \"%.10s\".",
					  FIELD(line, 13));
	if (!bg_currency(FIELD(line, 23), ln, err, s->currency))
		return false;
	copy_verbatim(FIELD(line, 23), 3, s->section_currency_raw);
	s->state = BG_SECTION;
	s->section_line = ln;
	s->section_first = s->pc.f->npayments;
	s->section_count = 0;
	s->section_sum = 0;
	s->section_position = 0;
	s->cur = -1;
	return true;
}

/* Payment (20) or deduction (21) record: a new payment of the section */
static bool
bg_payment(BgParse *s, int tk, const char *line, int ln)
{
	BankFile   *f = s->pc.f;
	BankFileError *err = s->pc.err;
	BgTransaction t;
	BankPayment *p;

	if (!bg_transaction(f, line, ln, err, &t))
		return false;
	if (tk == 21 && (line[70] < '0' || line[70] > '9'))
		return report(err, ln, "deduction code (position 71) \"%c\" is not a digit.", line[70]);
	if (s->cur >= 0)
		bg_finish_address(&f->payments[s->cur], &s->addr);
	if ((p = add_payment(f)) == NULL)
		return out_of_memory(err, ln);
	p->line = ln;
	p->kind = tk;
	p->deposit_serial = ++s->section_position;	/* position, until 15 */
	p->amount = tk == 20 ? t.amount : -t.amount;
	strcpy(p->currency, s->currency);
	strcpy(p->reference, t.reference);
	strcpy(p->payer, t.sender);
	p->reference_code = t.reference_code;
	p->channel = t.channel;
	p->image = t.image;
	if (tk == 21)
		p->deduction_code = line[70] - '0';
	strcpy(p->bgc_serial, t.serial);
	strcpy(p->receiver, s->receiver);
	if (__builtin_add_overflow(s->section_sum, p->amount, &s->section_sum))
		return report(err, ln, "the sum of the deposit's payments overflows.");
	s->section_count++;
	if (tk == 20)
		f->payment_records++;
	else
		f->deduction_records++;
	s->cur = f->npayments - 1;
	s->rank = 0;
	s->last_follower = 0;
	return true;
}

/*
 * The records that follow a payment: extra references (22, 23),
 * information (25), name (26), address (27, 28), organisation number (29)
 */
static bool
bg_follower(BgParse *s, int tk, const char *line, int ln)
{
	BankFile   *f = s->pc.f;
	BankFileError *err = s->pc.err;
	BankPayment *p = &f->payments[s->cur];

	switch (tk)
	{
		case 22:
		case 23:
			{
				BgTransaction t;

				if (!bg_transaction(f, line, ln, err, &t))
					return false;
				if (t.reference[0] != '\0' &&
					!text_append(f, &p->extra_off, &p->extra_len, t.reference, strlen(t.reference)))
					return out_of_memory(err, ln);
				f->extra_reference_records++;
				break;
			}
		case 25:
			{
				char		info[51];
				size_t		ilen = copy_trimmed(FIELD(line, 3), 50, info);

				if (ilen > 0 && !text_append(f, &p->info_off, &p->info_len, info, ilen))
					return out_of_memory(err, ln);
				break;
			}
		case 26:
			{
				char		name1[36];
				char		name2[36];

				copy_trimmed(FIELD(line, 3), 35, name1);
				copy_trimmed(FIELD(line, 38), 35, name2);
				p->payer_name[0] = '\0';
				join_part(p->payer_name, sizeof(p->payer_name), " ", name1);
				join_part(p->payer_name, sizeof(p->payer_name), " ", name2);
				break;
			}
		case 27:
			copy_trimmed(FIELD(line, 3), 35, s->addr.street);
			copy_trimmed(FIELD(line, 38), 9, s->addr.postcode);
			break;
		case 28:
			copy_trimmed(FIELD(line, 3), 35, s->addr.city);
			copy_trimmed(FIELD(line, 38), 35, s->addr.country);
			copy_trimmed(FIELD(line, 73), 2, s->addr.country_code);
			break;
		case 29:
			{
				char		org[13];

				copy_trimmed(FIELD(line, 3), 12, org);
				if (!all_digits(org, (int) strlen(org)))
					return report(err, ln, "organisation number (positions 3-14) is not numeric: \"%.12s\".",
								  FIELD(line, 3));
				copy_number(org, (int) strlen(org), p->payer_org_no);
				break;
			}
	}
	return true;
}

/*
 * Deposit record (15): closes the section after checking its count and
 * sum, and gives each of its payments the deposit's date and bank_ref
 */
static bool
bg_deposit(BgParse *s, const char *line, int ln)
{
	BankFile   *f = s->pc.f;
	BankFileError *err = s->pc.err;
	int32_t		date;
	int64_t		v,
				serial,
				amount,
				count;
	char		a[32],
				b[32];
	int			i;

	if (!numeric_field(line, 3, 35, "receiver's bank account number", ln, err, &v) ||
		!date_yyyymmdd(line, 38, "payment date", ln, err, &date) ||
		!numeric_field(line, 46, 5, "deposit serial number", ln, err, &serial) ||
		!numeric_field(line, 51, 18, "deposit amount", ln, err, &amount))
		return false;
	if (memcmp(FIELD(line, 69), s->section_currency_raw, 3) != 0)
		return report(err, ln, "deposit currency \"%.3s\" differs from the opening record's \"%s\" on line %d.",
					  FIELD(line, 69), s->section_currency_raw, s->section_line);
	if (!numeric_field(line, 72, 8, "number of payments", ln, err, &count))
		return false;
	if (line[79] != 'K' && line[79] != 'D' && line[79] != 'S' && line[79] != ' ')
		return report(err, ln, "deposit type (position 80) \"%c\" is not K, D, S or blank.", line[79]);
	if (count != s->section_count)
		return report(err, ln, "deposit record count %lld does not match %d payment records.",
					  (long long) count, s->section_count);
	if (amount != s->section_sum)
	{
		bankfile_format_amount(amount, a);
		bankfile_format_amount(s->section_sum, b);
		return report(err, ln, "deposit amount %s does not match %s, the sum of the deposit's payments less its deductions.",
					  a, b);
	}
	if (s->cur >= 0)
		bg_finish_address(&f->payments[s->cur], &s->addr);
	for (i = s->section_first; i < f->npayments; i++)
	{
		BankPayment *p = &f->payments[i];
		int			position = p->deposit_serial;

		/*
		 * The deposit (receiver, payment date, deposit serial number) and
		 * the payment's place in it: BGC serial numbers repeat across
		 * deposits in real files.
		 */
		p->received_on = date;
		p->deposit_serial = (int) serial;
		snprintf(p->bank_ref, sizeof(p->bank_ref), "bgmax:%s:%08d:%05d:%d",
				 s->receiver_raw, (int) date, (int) serial, position);
	}
	s->deposits++;
	s->cur = -1;
	s->state = BG_FILE;
	return true;
}

/* End record (70): the file's counts */
static bool
bg_end(BgParse *s, const char *line, int ln)
{
	BankFile   *f = s->pc.f;
	BankFileError *err = s->pc.err;
	int64_t		np,
				nd,
				ne,
				ns;

	if (!numeric_field(line, 3, 8, "number of payment records", ln, err, &np) ||
		!numeric_field(line, 11, 8, "number of deduction records", ln, err, &nd) ||
		!numeric_field(line, 19, 8, "number of extra reference records", ln, err, &ne) ||
		!numeric_field(line, 27, 8, "number of deposit records", ln, err, &ns))
		return false;
	if (np != f->payment_records)
		return report(err, ln, "end record count of payment records %lld does not match %d payment records (20) in the file.",
					  (long long) np, f->payment_records);
	if (nd != f->deduction_records)
		return report(err, ln, "end record count of deduction records %lld does not match %d deduction records (21) in the file.",
					  (long long) nd, f->deduction_records);
	if (ns != s->deposits)
		return report(err, ln, "end record count of deposit records %lld does not match %d deposit records (15) in the file.",
					  (long long) ns, s->deposits);
	if (ne != f->extra_reference_records)
	{
		/* tolerated: informative, no money in it */
		f->warn_value[BANKFILE_W_EXTRA_COUNT] = ne;
		warn(f, BANKFILE_W_EXTRA_COUNT, ln);
	}
	f->records = ln;
	f->sections = s->deposits;
	s->state = BG_DONE;
	s->pc.done = true;
	return true;
}

/* One BgMax record: its type, its place in the order, its step */
static bool
bg_record(ParseCommon *pc, const char *line, int ln)
{
	BgParse    *s = (BgParse *) pc;
	int			tk;
	const char *name;

	if (!all_digits(line, 2) || (name = bg_record_name(tk = (int) digits_value(line, 2))) == NULL)
		return report(pc->err, ln, "unknown record type \"%.2s\".", line);
	if (!bg_check_order(s, tk, name, ln))
		return false;
	switch (tk)
	{
		case 1:
			return bg_start(s, line, ln);
		case 5:
			return bg_opening(s, line, ln);
		case 20:
		case 21:
			return bg_payment(s, tk, line, ln);
		case 15:
			return bg_deposit(s, line, ln);
		case 70:
			return bg_end(s, line, ln);
	}
	return bg_follower(s, tk, line, ln);
}

bool
bgmax_parse(const char *data, size_t len, BankFile *f, BankFileError *err)
{
	BgParse		s;
	int			lines;
	bool		ok;

	memset(&s, 0, sizeof(s));
	parse_begin(&s.pc, f, err, BANKFILE_BGMAX);
	s.state = BG_START;
	s.cur = -1;
	ok = parse_records(&s.pc, data, len, "end record (70)", bg_record, &lines);
	if (ok && !s.pc.done)
	{
		if (s.state == BG_SECTION)
			report(err, lines, "the file ends inside the deposit section opened on line %d, without its deposit record (15) and the end record (70).",
				   s.section_line);
		else
			report(err, lines, "the file ends without an end record (70).");
		ok = false;
	}
	return parse_end(&s.pc, ok);
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

/* What the Nets OCR parser keeps between records */
typedef struct NetsParse
{
	ParseCommon pc;				/* first: the record step receives it */
	NetsState	state;
	/* the current assignment */
	int			asg_line;
	int			asg_records;
	int			asg_transactions;
	int64_t		asg_sum;
	int32_t		asg_first_date;
	int32_t		asg_last_date;
	char		agreement[10];
	char		assignment[8];
	char		account[12];
	/* the current transaction */
	int			tx_type;
	int			tx_number;
	bool		item3;
} NetsParse;

/* Format code NY, the record type, and the service code it must carry */
static bool
nets_record_type(const char *line, int ln, BankFileError *err, int *rt, const char **name)
{
	const char *service;

	if (line[0] != 'N' || line[1] != 'Y')
		return report(err, ln, "the record does not begin with the format code NY: \"%.2s\".", line);
	if (!all_digits(FIELD(line, 7), 2) ||
		(*name = nets_record_name(*rt = (int) digits_value(FIELD(line, 7), 2))) == NULL)
		return report(err, ln, "unknown record type \"%.2s\" (positions 7-8).", FIELD(line, 7));
	service = (*rt == 10 || *rt == 89) ? "00" : "09";
	if (memcmp(FIELD(line, 3), service, 2) == 0)
		return true;
	if (*rt == 10 || *rt == 89)
		return report(err, ln, "service code (positions 3-4) of a %s is \"%.2s\", not 00.",
					  *name, FIELD(line, 3));
	return report(err, ln, "service code (positions 3-4) \"%.2s\" is not OCR giro (09).",
				  FIELD(line, 3));
}

/* The legal record order: transmission, assignments, amount items */
static bool
nets_check_order(NetsParse *s, int rt, const char *name, int ln)
{
	BankFileError *err = s->pc.err;
	NetsState	state = s->state;

	if (state == NE_START && rt != 10)
		return report(err, ln, "the file must begin with a start record for the transmission (10), not an %s.",
					  name);
	if (rt == 10 && state != NE_START)
		return report(err, ln, "a second start record for the transmission (10).");
	if (state == NE_TRANSMISSION && rt != 20 && rt != 89)
		return report(err, ln, "%s outside an assignment: expected a start record for an assignment (20) or the end record for the transmission (89).",
					  name);
	if (state == NE_ITEM1 && rt != 31)
		return report(err, ln, "%s where amount item 2 (31) of transaction %d was expected.",
					  name, s->tx_number);
	if ((state == NE_ASSIGNMENT || state == NE_ITEM2) && (rt == 20 || rt == 89))
		return report(err, ln, "%s inside the assignment opened on line %d, before its end record (88).",
					  name, s->asg_line);
	if (rt == 31 && state != NE_ITEM1)
		return report(err, ln, "amount item 2 (31) must follow amount item 1 (30).");
	if (rt == 32 && (state != NE_ITEM2 || s->item3))
		return report(err, ln, "amount item 3 (32) must follow amount item 2 (31).");
	return true;
}

/* Positions 5-6 of records 10, 20, 88 and 89: "00" */
static bool
nets_type_00(const char *line, int ln, BankFileError *err, bool transmission)
{
	if (memcmp(FIELD(line, 5), "00", 2) == 0)
		return true;
	if (transmission)
		return report(err, ln, "transmission type (positions 5-6) \"%.2s\" is not 00.", FIELD(line, 5));
	return report(err, ln, "assignment type (positions 5-6) \"%.2s\" is not a transaction assignment (00).",
				  FIELD(line, 5));
}

/* A numeric identifier of a start record (10, 20), kept as written */
typedef struct NetsIdField
{
	int			from;
	int			n;
	const char *what;
	char	   *out;			/* n + 1 bytes */
} NetsIdField;

/* The three identifiers of a start record, checked in order, then kept */
static bool
nets_id_fields(const char *line, int ln, BankFileError *err, const NetsIdField ids[3])
{
	int64_t		v;
	int			i;

	for (i = 0; i < 3; i++)
		if (!numeric_field(line, ids[i].from, ids[i].n, ids[i].what, ln, err, &v))
			return false;
	for (i = 0; i < 3; i++)
		copy_verbatim(FIELD(line, ids[i].from), ids[i].n, ids[i].out);
	return true;
}

/* Start record for the transmission (10): who sends it to whom */
static bool
nets_transmission_start(NetsParse *s, const char *line, int ln)
{
	BankFile   *f = s->pc.f;
	const NetsIdField ids[3] = {
		{9, 8, "data transmitter", f->data_transmitter},
		{17, 7, "transmission number", f->transmission_number},
		{24, 8, "data recipient", f->data_recipient}};

	if (!nets_type_00(line, ln, s->pc.err, true) ||
		!nets_id_fields(line, ln, s->pc.err, ids))
		return false;
	s->state = NE_TRANSMISSION;
	return true;
}

/* Start record for an assignment (20): agreement, number, account */
static bool
nets_assignment_start(NetsParse *s, const char *line, int ln)
{
	const NetsIdField ids[3] = {
		{9, 9, "agreement ID", s->agreement},
		{18, 7, "assignment number", s->assignment},
		{25, 11, "assignment account", s->account}};

	if (!nets_type_00(line, ln, s->pc.err, false) ||
		!nets_id_fields(line, ln, s->pc.err, ids))
		return false;
	s->asg_line = ln;
	s->asg_records = 1;
	s->asg_transactions = 0;
	s->asg_sum = 0;
	s->asg_first_date = s->asg_last_date = 0;
	s->state = NE_ASSIGNMENT;
	return true;
}

/* Amount item 1 (30): a new payment of the assignment */
static bool
nets_item1(NetsParse *s, const char *line, int ln)
{
	BankFile   *f = s->pc.f;
	BankFileError *err = s->pc.err;
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
		return false;
	if (type < 10 || type > 21)
		return report(err, ln, "transaction type %02d (positions 5-6) is not an OCR giro transaction type (10-21).",
					  (int) type);
	if (!numeric_field(line, 9, 7, "transaction number", ln, err, &number) ||
		!date_ddmmyy(line, 16, "Nets date", false, ln, err, &date) ||
		!numeric_field(line, 22, 2, "centre ID", ln, err, &centre) ||
		!numeric_field(line, 24, 2, "day code", ln, err, &day_code) ||
		!numeric_field(line, 26, 1, "partial settlement number", ln, err, &partial) ||
		!numeric_field(line, 27, 5, "partial settlement serial number", ln, err, &serial))
		return false;
	if (sign != '0' && sign != '-')
		return report(err, ln, "sign (position 32) \"%c\" is neither 0 nor -.", sign);
	if (!numeric_field(line, 33, 17, "amount", ln, err, &amount))
		return false;
	kidlen = copy_trimmed(FIELD(line, 50), 25, kid);
	for (i = 0; i < kidlen; i++)
		if ((kid[i] < '0' || kid[i] > '9') && kid[i] != '-')
			return report(err, ln, "KID (positions 50-74) has a character other than a digit or -: \"%.25s\".",
						  FIELD(line, 50));
	if ((p = add_payment(f)) == NULL)
		return out_of_memory(err, ln);
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
	strcpy(p->agreement_id, s->agreement);
	strcpy(p->assignment_number, s->assignment);
	strcpy(p->assignment_account, s->account);
	snprintf(p->bank_ref, sizeof(p->bank_ref), "nets:%s:%s:%.7s",
			 s->agreement, s->assignment, FIELD(line, 9));
	if (__builtin_add_overflow(s->asg_sum, p->amount, &s->asg_sum))
		return report(err, ln, "the sum of the assignment's amounts overflows.");
	if (s->asg_transactions == 0 || date < s->asg_first_date)
		s->asg_first_date = date;
	if (s->asg_transactions == 0 || date > s->asg_last_date)
		s->asg_last_date = date;
	s->asg_transactions++;
	s->asg_records++;
	s->tx_type = (int) type;
	s->tx_number = (int) number;
	s->state = NE_ITEM1;
	return true;
}

/*
 * Amount item 2 (31: form number, archive reference, payment date, debited
 * account) or 3 (32: a message) of the current transaction
 */
static bool
nets_item2_3(NetsParse *s, int rt, const char *name, const char *line, int ln)
{
	BankFile   *f = s->pc.f;
	BankFileError *err = s->pc.err;
	BankPayment *p = &f->payments[f->npayments - 1];
	int64_t		type,
				number,
				v;

	if (!numeric_field(line, 5, 2, "transaction type", ln, err, &type) ||
		!numeric_field(line, 9, 7, "transaction number", ln, err, &number))
		return false;
	if (type != s->tx_type || number != s->tx_number)
		return report(err, ln, "%s is for transaction %lld of type %02lld, but amount item 1 on line %d is for transaction %d of type %02d.",
					  name, (long long) number, (long long) type, p->line, s->tx_number, s->tx_type);
	if (rt == 31)
	{
		if (!numeric_field(line, 16, 10, "form number", ln, err, &v) ||
			!numeric_field(line, 26, 9, "archive reference", ln, err, &v) ||
			!date_ddmmyy(line, 42, "payment date", true, ln, err, &p->bank_date) ||
			!numeric_field(line, 48, 11, "debited account", ln, err, &v))
			return false;
		if (!all_char(FIELD(line, 16), 10, '0'))
			copy_verbatim(FIELD(line, 16), 10, p->form_number);
		if (!all_char(FIELD(line, 26), 9, '0'))
			copy_verbatim(FIELD(line, 26), 9, p->archive_reference);
		if (!all_char(FIELD(line, 48), 11, '0'))
			copy_verbatim(FIELD(line, 48), 11, p->payer);
		s->item3 = false;
		s->state = NE_ITEM2;
	}
	else
	{
		if (s->tx_type != 20 && s->tx_type != 21)
			return report(err, ln, "amount item 3 (32) is only for transaction types 20 and 21, not %02d.",
						  s->tx_type);
		copy_trimmed(FIELD(line, 16), 40, p->message);
		s->item3 = true;
	}
	s->asg_records++;
	return true;
}

/*
 * The counts and sum of an end record (88 or 89): number of transactions,
 * number of records, sum of amounts, then its Nets date (may be zero when
 * there is no transaction)
 */
static bool
nets_end_fields(const char *line, int ln, BankFileError *err, bool no_transactions,
				int64_t *ntx, int64_t *nrec, int64_t *sum, int32_t *nets_date)
{
	return numeric_field(line, 9, 8, "number of transactions", ln, err, ntx) &&
		numeric_field(line, 17, 8, "number of records", ln, err, nrec) &&
		numeric_field(line, 25, 17, "sum of amounts", ln, err, sum) &&
		date_ddmmyy(line, 42, "Nets date", no_transactions, ln, err, nets_date);
}

/*
 * End record for the assignment (88): its counts, sum and dates are
 * checked, and the assignment is added to the transmission's totals
 */
static bool
nets_assignment_end(NetsParse *s, const char *line, int ln)
{
	BankFile   *f = s->pc.f;
	BankFileError *err = s->pc.err;
	bool		none = s->asg_transactions == 0;
	int64_t		ntx,
				nrec,
				sum;
	int32_t		nets_date,
				first,
				last;
	char		a[32],
				b[32];

	s->asg_records++;
	if (!nets_type_00(line, ln, err, false))
		return false;
	if (!nets_end_fields(line, ln, err, none, &ntx, &nrec, &sum, &nets_date) ||
		!date_ddmmyy(line, 48, "earliest Nets date", none, ln, err, &first) ||
		!date_ddmmyy(line, 54, "latest Nets date", none, ln, err, &last))
		return false;
	bankfile_format_amount(sum, a);
	bankfile_format_amount(s->asg_sum, b);
	if (ntx != s->asg_transactions)
		return report(err, ln, "assignment end record count %lld does not match %d transactions in the assignment.",
					  (long long) ntx, s->asg_transactions);
	if (nrec != s->asg_records)
		return report(err, ln, "assignment end record counts %lld records; the assignment has %d.",
					  (long long) nrec, s->asg_records);
	if (sum != s->asg_sum)
		return report(err, ln, "assignment end record sum %s does not match %s, the sum of the assignment's amounts.",
					  a, b);
	if (!none && first != s->asg_first_date)
		return report(err, ln, "earliest Nets date %.6s does not match the earliest date of the assignment's transactions.",
					  FIELD(line, 48));
	if (!none && last != s->asg_last_date)
		return report(err, ln, "latest Nets date %.6s does not match the latest date of the assignment's transactions.",
					  FIELD(line, 54));
	if (__builtin_add_overflow(f->total, s->asg_sum, &f->total))
		return report(err, ln, "the sum of the transmission's amounts overflows.");
	f->transactions += s->asg_transactions;
	f->sections++;
	s->state = NE_TRANSMISSION;
	return true;
}

/* End record for the transmission (89): the file's counts and sum */
static bool
nets_transmission_end(NetsParse *s, const char *line, int ln)
{
	BankFile   *f = s->pc.f;
	BankFileError *err = s->pc.err;
	int64_t		ntx,
				nrec,
				sum;
	int32_t		nets_date;
	char		a[32],
				b[32];

	if (!nets_type_00(line, ln, err, true))
		return false;
	if (!nets_end_fields(line, ln, err, f->transactions == 0, &ntx, &nrec, &sum, &nets_date))
		return false;
	bankfile_format_amount(sum, a);
	bankfile_format_amount(f->total, b);
	if (ntx != f->transactions)
		return report(err, ln, "transmission end record count %lld does not match %d transactions in the file.",
					  (long long) ntx, f->transactions);
	if (nrec != ln)
		return report(err, ln, "transmission end record counts %lld records; the transmission has %d.",
					  (long long) nrec, ln);
	if (sum != f->total)
		return report(err, ln, "transmission end record sum %s does not match %s, the sum of the file's amounts.",
					  a, b);
	f->nets_date = nets_date;
	f->records = ln;
	s->state = NE_DONE;
	s->pc.done = true;
	return true;
}

/* One Nets OCR record: its type, its place in the order, its step */
static bool
nets_record(ParseCommon *pc, const char *line, int ln)
{
	NetsParse  *s = (NetsParse *) pc;
	int			rt = 0;
	const char *name = NULL;

	if (!nets_record_type(line, ln, pc->err, &rt, &name) ||
		!nets_check_order(s, rt, name, ln))
		return false;
	switch (rt)
	{
		case 10:
			return nets_transmission_start(s, line, ln);
		case 20:
			return nets_assignment_start(s, line, ln);
		case 30:
			return nets_item1(s, line, ln);
		case 31:
		case 32:
			return nets_item2_3(s, rt, name, line, ln);
		case 88:
			return nets_assignment_end(s, line, ln);
	}
	return nets_transmission_end(s, line, ln);
}

bool
nets_ocr_parse(const char *data, size_t len, BankFile *f, BankFileError *err)
{
	NetsParse	s;
	int			lines;
	bool		ok;

	memset(&s, 0, sizeof(s));
	parse_begin(&s.pc, f, err, BANKFILE_NETS_OCR);
	s.state = NE_START;
	ok = parse_records(&s.pc, data, len,
					   "end record for the transmission (89)", nets_record, &lines);
	if (ok && !s.pc.done)
	{
		if (s.state == NE_TRANSMISSION)
			report(err, lines, "the file ends without an end record for the transmission (89).");
		else
			report(err, lines, "the file ends inside the assignment opened on line %d, without its end record (88) and the end record for the transmission (89).",
				   s.asg_line);
		ok = false;
	}
	return parse_end(&s.pc, ok);
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
