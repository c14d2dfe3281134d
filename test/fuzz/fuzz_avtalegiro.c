/*
 * libFuzzer harness for src/core/avtalegiro.c.
 *
 * Every input goes through the AvtaleGiro agreements reader; nothing may
 * crash or trip a sanitizer.  When it accepts a file the harness checks
 * the agreements against the raw lines (abort() otherwise): one per 70
 * record, in line order, KIDs of digits, and writes them back as claims
 * (1 øre each, due 2025-01-31) with avtalegiro_write_claims, whose output
 * must be 4 + 2 n records of 80 characters and LF carrying the same KIDs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "avtalegiro.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	AvtaleGiroAgreements f;
	BankFileError err;
	AvtaleGiroClaim *c;
	AvtaleGiroHeader h = {"00000001", "0000001", "00008080", "000000001", "0000001", "12345678901"};
	char	   *out;
	size_t		outlen;
	int			i,
				n = 0;

	if (!avtalegiro_parse_agreements((const char *) data, size, &f, &err))
	{
		if (err.line < 1 || err.reason[0] == '\0' || f.agreements != NULL)
			abort();
		return 0;
	}
	c = calloc((size_t) f.nagreements + 1, sizeof(*c));
	if (c == NULL)
		abort();
	for (i = 0; i < f.nagreements; i++)
	{
		const AvtaleGiroAgreement *a = &f.agreements[i];
		size_t		k,
					kl = strlen(a->kid);

		if (a->line < 3 || a->line >= f.records || (i > 0 && a->line <= f.agreements[i - 1].line) || kl == 0)
			abort();
		for (k = 0; k < kl; k++)
			if (a->kid[k] < '0' || a->kid[k] > '9')
				abort();
		if (kl >= 2)
		{
			c[n].due_date = 20250131;
			c[n].amount = 1;
			strcpy(c[n].kid, a->kid);
			c[n].notify = a->notify;
			n++;
		}
	}
	if (!avtalegiro_write_claims(&h, c, n, &out, &outlen, &err) || outlen != (size_t) (4 + 2 * n) * 81)
		abort();
	for (i = 0; i < n; i++)
	{
		const char *rec = out + (size_t) (2 + 2 * i) * 81;
		size_t		kl = strlen(c[i].kid);

		if (memcmp(rec + 49 + 25 - kl, c[i].kid, kl) != 0 || rec[80] != '\n')
			abort();
	}
	free(out);
	free(c);
	avtalegiro_free(&f);
	return 0;
}
