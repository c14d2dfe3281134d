/*
 * libFuzzer harness for src/core/bankfile.c.
 *
 * Every input is given to both parsers (BgMax and Nets OCR giro), as it is
 * and after bankfile_utf8_to_latin1.  Nothing may crash or trip a
 * sanitizer.  Whenever a parser accepts a file, the harness re-reads the
 * raw lines on its own (a much simpler reading that trusts the record
 * types; TABs expanded, short records padded) and abort()s unless:
 *   - every section's end record (BgMax 15, Nets 88) and the file's end
 *     record (70, 89) agree with the counts and sums recomputed from the
 *     raw payment lines;
 *   - the parsed payments are exactly the raw payment lines: same number,
 *     same lines, same signed amounts, same total;
 *   - every payment has a valid date, a 3-letter currency and a bank
 *     identifier no other payment of the file has.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bankfile.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Value of n digits at 1-based position pos (the parser accepted them) */
static int64_t
num(const char *line, int pos, int n)
{
	int64_t		v = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		char		c = line[pos - 1 + i];

		if (c < '0' || c > '9')
			abort();
		v = v * 10 + (c - '0');
	}
	return v;
}

/*
 * The record of a raw line as banks' files are read: TABs to the next
 * multiple of 8 columns, padded with blanks to 80; into out (81 bytes).
 * Returns the record's columns before padding (> 80: too long).
 */
static size_t
normalise(const char *l, size_t len, char *out)
{
	size_t		col = 0,
				i;

	memset(out, ' ', 80);
	out[80] = '\0';
	for (i = 0; i < len; i++)
	{
		if (l[i] == '\t')
			col = (col / 8 + 1) * 8;
		else
		{
			if (col < 80)
				out[col] = l[i];
			col++;
		}
	}
	return col;
}

/* Split into lines (without LF / CR LF); returns the count, fills starts/lens */
static int
split(const char *d, size_t size, const char ***starts, size_t **lens)
{
	int			n = 0,
				cap = 64;
	size_t		pos = 0;

	*starts = malloc(sizeof(char *) * (size_t) cap);
	*lens = malloc(sizeof(size_t) * (size_t) cap);
	if (*starts == NULL || *lens == NULL)
		abort();
	while (pos < size)
	{
		const char *s = d + pos;
		const char *nl = memchr(s, '\n', size - pos);
		size_t		l = nl ? (size_t) (nl - s) : size - pos;

		pos += l + (nl ? 1 : 0);
		if (l > 0 && s[l - 1] == '\r')
			l--;
		if (n == cap)
		{
			cap *= 2;
			*starts = realloc(*starts, sizeof(char *) * (size_t) cap);
			*lens = realloc(*lens, sizeof(size_t) * (size_t) cap);
			if (*starts == NULL || *lens == NULL)
				abort();
		}
		(*starts)[n] = s;
		(*lens)[n] = l;
		n++;
	}
	return n;
}

static bool
valid_packed_date(int32_t d)
{
	int			y = d / 10000,
				m = d / 100 % 100,
				day = d % 100;

	return y >= 1 && m >= 1 && m <= 12 && day >= 1 && day <= 31;
}

static void
check_payments_common(const BankFile *f)
{
	int			i,
				j;

	for (i = 0; i < f->npayments; i++)
	{
		const BankPayment *p = &f->payments[i];

		if (!valid_packed_date(p->received_on) || strlen(p->currency) != 3 ||
			strlen(p->bank_ref) == 0 || p->line < 1 || p->line > f->records)
			abort();
		if (i > 0 && p->line <= f->payments[i - 1].line)
			abort();
		for (j = 0; j < i; j++)
			if (strcmp(p->bank_ref, f->payments[j].bank_ref) == 0)
				abort();
		if (p->info_len > 0 && p->info_off + p->info_len > f->text_len)
			abort();
		if (p->extra_len > 0 && p->extra_off + p->extra_len > f->text_len)
			abort();
	}
}

static void
check_bgmax(const char *d, size_t size, const BankFile *f)
{
	const char **lines;
	size_t	   *lens;
	int			n = split(d, size, &lines, &lens);
	int			i,
				k = 0;
	int64_t		sec_sum = 0,
				file_sum = 0,
				parsed_sum = 0;
	int			sec_n = 0,
				npay = 0,
				nded = 0,
				nextra = 0,
				ndep = 0;
	bool		ended = false;

	for (i = 0; i < n && !ended; i++)
	{
		char		l[81];

		if (lens[i] == 0 || normalise(lines[i], lens[i], l) > 80)
			abort();
		if (memcmp(l, "20", 2) == 0 || memcmp(l, "21", 2) == 0)
		{
			int64_t		a = num(l, 38, 18);

			if (l[1] == '1')
				a = -a;
			if (k >= f->npayments || f->payments[k].line != i + 1 || f->payments[k].amount != a)
				abort();
			k++;
			sec_sum += a;
			file_sum += a;
			sec_n++;
			if (l[1] == '0')
				npay++;
			else
				nded++;
		}
		else if (memcmp(l, "22", 2) == 0 || memcmp(l, "23", 2) == 0)
			nextra++;
		else if (memcmp(l, "15", 2) == 0)
		{
			if (num(l, 51, 18) != sec_sum || num(l, 72, 8) != sec_n)
				abort();
			ndep++;
			sec_sum = 0;
			sec_n = 0;
		}
		else if (memcmp(l, "70", 2) == 0)
		{
			if (num(l, 3, 8) != npay || num(l, 11, 8) != nded || num(l, 27, 8) != ndep ||
				i + 1 != f->records)
				abort();
			/* a wrong count of extra references is read, with its warning */
			if (num(l, 19, 8) != nextra &&
				(f->warn_count[BANKFILE_W_EXTRA_COUNT] != 1 ||
				 f->warn_value[BANKFILE_W_EXTRA_COUNT] != num(l, 19, 8)))
				abort();
			ended = true;
		}
	}
	for (; i < n; i++)
		if (lens[i] != 0)
			abort();
	if (!ended || k != f->npayments || ndep != f->sections)
		abort();
	for (i = 0; i < f->npayments; i++)
		parsed_sum += f->payments[i].amount;
	if (parsed_sum != file_sum)
		abort();
	check_payments_common(f);
	free(lines);
	free(lens);
}

static void
check_nets(const char *d, size_t size, const BankFile *f)
{
	const char **lines;
	size_t	   *lens;
	int			n = split(d, size, &lines, &lens);
	int			i,
				k = 0;
	int64_t		asg_sum = 0,
				file_sum = 0;
	int			asg_n = 0,
				asg_rec = 0,
				ntx = 0,
				nasg = 0;
	bool		ended = false;

	for (i = 0; i < n && !ended; i++)
	{
		char		l[81];

		if (lens[i] == 0 || normalise(lines[i], lens[i], l) > 80 || memcmp(l, "NY", 2) != 0)
			abort();
		asg_rec++;
		if (memcmp(l + 6, "20", 2) == 0)
		{
			asg_rec = 1;
			asg_sum = 0;
			asg_n = 0;
		}
		else if (memcmp(l + 6, "30", 2) == 0)
		{
			int64_t		a = num(l, 33, 17);

			if (l[31] == '-')
				a = -a;
			if (k >= f->npayments || f->payments[k].line != i + 1 || f->payments[k].amount != a)
				abort();
			k++;
			asg_sum += a;
			file_sum += a;
			asg_n++;
			ntx++;
		}
		else if (memcmp(l + 6, "88", 2) == 0)
		{
			if (num(l, 9, 8) != asg_n || num(l, 17, 8) != asg_rec || num(l, 25, 17) != asg_sum)
				abort();
			nasg++;
		}
		else if (memcmp(l + 6, "89", 2) == 0)
		{
			if (num(l, 9, 8) != ntx || num(l, 17, 8) != i + 1 || num(l, 25, 17) != file_sum ||
				i + 1 != f->records)
				abort();
			ended = true;
		}
	}
	for (; i < n; i++)
		if (lens[i] != 0)
			abort();
	if (!ended || k != f->npayments || nasg != f->sections || f->total != file_sum ||
		f->transactions != ntx)
		abort();
	check_payments_common(f);
	free(lines);
	free(lens);
}

static void
run(const char *d, size_t size)
{
	BankFile	f;
	BankFileError err;

	if (bgmax_parse(d, size, &f, &err))
	{
		check_bgmax(d, size, &f);
		bankfile_free(&f);
	}
	else if (err.line < 1 || err.reason[0] == '\0' || f.payments != NULL || f.text != NULL)
		abort();

	if (nets_ocr_parse(d, size, &f, &err))
	{
		check_nets(d, size, &f);
		bankfile_free(&f);
	}
	else if (err.line < 1 || err.reason[0] == '\0' || f.payments != NULL || f.text != NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *copy = malloc(size > 0 ? size : 1);
	char	   *latin1 = malloc(size + 1);
	size_t		outlen = 0;
	BankFileError err;

	if (copy == NULL || latin1 == NULL)
		abort();
	/* an exact-size copy, so that ASan sees any read past the end */
	memcpy(copy, data, size);
	run(copy, size);
	if (bankfile_utf8_to_latin1(copy, size, latin1, &outlen, &err))
	{
		if (outlen > size)
			abort();
		run(latin1, outlen);
	}
	else if (err.line < 1)
		abort();
	free(copy);
	free(latin1);
	return 0;
}
