/*
 * libFuzzer harness for src/core/autogiro.c.
 *
 * Every input goes through the Autogiro reader.  Nothing may crash or trip
 * a sanitizer.  Whenever the reader accepts a file, the harness checks what
 * it returned against the raw lines (abort() otherwise): records in line
 * order, every amount within 12 digits, dates valid, payment statuses
 * 0/1/2/9, rejection reports' records 82 or 32 with a two-digit comment
 * code and the opening's bankgiro; and it writes the approved incoming and
 * outgoing payments back with autogiro_write_claims, whose output must be
 * exactly one opening record and one 82 (32 for an outgoing payment) record
 * per payment, each 80 characters and CR LF, that carry the same payer
 * numbers and amounts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "autogiro.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int64_t
num(const char *p, int n)
{
	int64_t		v = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		if (p[i] < '0' || p[i] > '9')
			abort();
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	AutogiroFile f;
	BankFileError err;
	AutogiroClaim *claims;
	int			i,
				n = 0;
	char	   *out;
	size_t		outlen;

	if (!autogiro_parse((const char *) data, size, &f, &err))
	{
		if (err.line < 1 || err.reason[0] == '\0' || f.records != NULL)
			abort();
		return 0;
	}
	claims = calloc((size_t) f.nrecords + 1, sizeof(AutogiroClaim));
	if (claims == NULL)
		abort();
	for (i = 0; i < f.nrecords; i++)
	{
		const AutogiroRecord *r = &f.records[i];

		if (r->line < 2 || r->line >= f.lines || (i > 0 && r->line <= f.records[i - 1].line))
			abort();
		if (r->amount < 0 || r->amount > AUTOGIRO_MAX_AMOUNT || r->date < 10101)
			abort();
		if (f.kind == AUTOGIRO_REJECTIONS &&
			((r->code != 82 && r->code != 32) || r->status < 0 || r->status > 99 || r->settled_on != 0 ||
			 strcmp(r->bankgiro, f.bankgiro) != 0))
			abort();
		if (f.kind == AUTOGIRO_PAYMENTS && r->code == 82 && r->status != 0 && r->status != 1 &&
			r->status != 2 && r->status != 9)
			abort();
		if (f.kind == AUTOGIRO_PAYMENTS && (r->code == 82 || r->code == 32) && r->status == 0 && r->amount > 0 && r->payer_number[0] != '\0')
		{
			claims[n].due_date = r->date;
			strcpy(claims[n].payer_number, r->payer_number);
			claims[n].amount = r->amount;
			/* a reference read from a file fits a claim */
			strcpy(claims[n].reference, r->reference);
			claims[n].outgoing = (r->code == 32);
			n++;
		}
	}
	if (!autogiro_write_claims(20250101, "123456", "9912346", claims, n, &out, &outlen, &err))
		abort();
	if (outlen != (size_t) (n + 1) * 82)
		abort();
	for (i = 0; i <= n; i++)
	{
		const char *rec = out + (size_t) i * 82;

		if (rec[80] != '\r' || rec[81] != '\n')
			abort();
		if (i > 0 && (memcmp(rec, claims[i - 1].outgoing ? "32" : "82", 2) != 0 || num(rec + 31, 12) != claims[i - 1].amount ||
					  num(rec + 15, 16) != strtoll(claims[i - 1].payer_number, NULL, 10)))
			abort();
	}
	free(out);
	free(claims);
	autogiro_free(&f);
	return 0;
}
