/*
 * Unit tests of src/core/avtalegiro.c: the AvtaleGiro payment-claim writer
 * (positions of every record; and, when ../shared/fixtures exists, Nets'
 * example payment-request file rebuilt byte for byte from the values it
 * holds) and the agreements reader (Nets' example agreements file, when
 * present; our own mutations of a file written here).  Prints TAP; run
 * from the top of the tree.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avtalegiro.h"
#include "tap.h"

static char *
load_fixture(const char *name, size_t *len)
{
	char		path[256];
	FILE	   *fp;
	char	   *buf;
	long		size;

	snprintf(path, sizeof(path), "../shared/fixtures/nets-ocr/%s", name);
	fp = fopen(path, "rb");
	if (fp == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) != 0 || (size = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0 ||
		(buf = malloc((size_t) size + 1)) == NULL || fread(buf, 1, (size_t) size, fp) != (size_t) size)
	{
		printf("Bail out! cannot read %s\n", path);
		exit(1);
	}
	fclose(fp);
	buf[size] = '\0';
	*len = (size_t) size;
	return buf;
}

static const AvtaleGiroHeader header = {"55555555", "1000081", "00008080", "000000000", "4000086", "88888888888"};

/*
 * Nets' example payment request (python-netsgiro's avtalegiro_payment_request.txt):
 * six claims of 1.00 NOK due 17.06.04, KIDs 00800001168837x .. ; claims 1-5
 * of transaction type 21 (the bank notifies), claim 6 of type 02; payer
 * name NAVN; claims 1, 2 and 5 with two specification columns on line 1.
 */
static void
test_fixture_request(void)
{
	size_t		len;
	char	   *want = load_fixture("python-netsgiro__avtalegiro_payment_request.txt", &len);
	static const char *const kids[6] = {"008000011688373", "008000021688389", "008000031688395",
	"008000041688401", "008000051688416", "008000061688422"};
	AvtaleGiroSpec specs[3][2] = {
		{{1, 1, " Gjelder Faktura: 168837  Dato: 19/03/04"}, {1, 2, "                  ForfallsDato: 17/06/04"}},
		{{1, 1, " Gjelder Faktura: 168838  Dato: 19/03/04"}, {1, 2, "                  ForfallsDato: 17/06/04"}},
		{{1, 1, " Gjelder Faktura: 168841  Dato: 19/03/04"}, {1, 2, "                  ForfallsDato: 17/06/04"}},
	};
	AvtaleGiroClaim c[6];
	char	   *out;
	size_t		outlen;
	BankFileError err;
	int			i;

	if (want == NULL)
	{
		printf("ok %d # skip ../shared/fixtures is absent: Nets' example payment request not compared\n", ++tap_tests);
		return;
	}
	memset(c, 0, sizeof(c));
	for (i = 0; i < 6; i++)
	{
		c[i].due_date = 20040617;
		c[i].amount = 100;
		strcpy(c[i].kid, kids[i]);
		c[i].notify = i < 5;
		strcpy(c[i].payer_name, "NAVN");
	}
	c[0].specs = specs[0];
	c[0].nspecs = 2;
	c[1].specs = specs[1];
	c[1].nspecs = 2;
	c[4].specs = specs[2];
	c[4].nspecs = 2;
	if (ok(avtalegiro_write_claims(&header, c, 6, &out, &outlen, &err), "Nets' example request: written"))
	{
		size_t		k;

		is_int((long long) outlen, (long long) len, "  as many bytes as Nets' example (22 records, LF)");
		for (k = 0; k < outlen && k < len && out[k] == want[k]; k++)
			;
		if (!ok(outlen == len && k == len, "  byte for byte Nets' example payment request"))
			printf("#   first difference at byte %zu (line %zu)\n", k, k / 81 + 1);
		free(out);
	}
	free(want);
}

static void
test_writer(void)
{
	AvtaleGiroSpec sp = {2, 1, "Faktura 2025-000011"};
	AvtaleGiroClaim c[2];
	char	   *out;
	size_t		len;
	BankFileError err;

	memset(c, 0, sizeof(c));
	c[0].due_date = 20250331;
	c[0].amount = 125000;
	strcpy(c[0].kid, "1234567890123");
	c[0].notify = true;
	strcpy(c[0].payer_name, "Nordmann");
	c[0].specs = &sp;
	c[0].nspecs = 1;
	c[1].due_date = 20250415;
	c[1].amount = 99999999999;
	strcpy(c[1].kid, "50013");
	if (!ok(avtalegiro_write_claims(&header, c, 2, &out, &len, &err), "two claims written"))
		return;
	is_int((long long) len, 9 * 81, "10, 20, 30, 31, 49, 30, 31, 88, 89: nine records of 80 and LF");
	ok(memcmp(out + 81 * 2, "NY2121300000001310325           00000000000125000            1234567890123000000\n", 81) == 0,
	   "30: type 21 (notified), transaction 1, due DDMMYY, blanks, amount in øre (33-49), KID right-aligned (50-74), zeros");
	ok(memcmp(out + 81 * 3, "NY2121310000001Nordmann  ", 25) == 0 && memcmp(out + 81 * 3 + 75, "00000\n", 6) == 0,
	   "31: the payer's short name (16-25), zeros 76-80");
	ok(memcmp(out + 81 * 4, "NY21214900000014002" "1Faktura 2025-000011", 39) == 0,
	   "49: 4, line 002, column 1, text from 21");
	ok(memcmp(out + 81 * 5, "NY2102300000002150425", 21) == 0, "30 of the second claim: type 02 (not notified), transaction 2");
	ok(memcmp(out + 81 * 7, "NY210088000000020000000700000100000124999310325150425", 53) == 0,
	   "88: 2 transactions, 7 records, the sum, first and last due date");
	ok(memcmp(out + 81 * 8, "NY000089000000020000000900000100000124999310325", 47) == 0,
	   "89: 2 transactions, 9 records, the sum, the earliest due date");
	free(out);

	c[1].amount = 0;
	ok(!avtalegiro_write_claims(&header, c, 2, &out, &len, &err) && err.line == 2 &&
	   strstr(err.reason, "amount 0 øre") != NULL, "amount 0 refused, claim 2");
	c[1].amount = 100;
	strcpy(c[1].kid, "5");
	ok(!avtalegiro_write_claims(&header, c, 2, &out, &len, &err) && strstr(err.reason, "KID \"5\" is not 2-25 digits") != NULL,
	   "a KID of one digit refused");
	strcpy(c[1].kid, "50013");
	c[1].due_date = 20700101;
	ok(!avtalegiro_write_claims(&header, c, 2, &out, &len, &err) && strstr(err.reason, "from 2000 to 2069") != NULL,
	   "a due date DDMMYY cannot hold (2070) refused");
	c[1].due_date = 20250415;
	strcpy(c[1].payer_name, "Nordmann AS");
	ok(!avtalegiro_write_claims(&header, c, 2, &out, &len, &err) && strstr(err.reason, "longer than 10") != NULL,
	   "a short name of 11 characters refused");
	{
		AvtaleGiroHeader bad = header;

		bad.agreement_id = "12345678";
		ok(!avtalegiro_write_claims(&bad, c, 0, &out, &len, &err) && err.line == 0, "an agreement ID of 8 digits refused");
	}
	ok(avtalegiro_write_claims(&header, c, 0, &out, &len, &err) && len == 4 * 81, "no claims: 10, 20, 88, 89");
	free(out);
}

static void
test_agreements(void)
{
	size_t		len;
	char	   *d = load_fixture("python-netsgiro__avtalegiro_agreements.txt", &len);
	AvtaleGiroAgreements f;
	BankFileError err;

	if (d == NULL)
	{
		printf("ok %d # skip ../shared/fixtures is absent: Nets' example agreements not read\n", ++tap_tests);
		return;
	}
	/* 88 and 89 say 16 agreements, 18 and 20 records; the first is KID 000112000507155, J */
	if (!ok(avtalegiro_parse_agreements(d, len, &f, &err), "Nets' example agreements: accepted"))
		printf("#   line %d: %s\n", err.line, err.reason);
	else
	{
		int			i,
					notify = 0;

		is_int(f.nagreements, 16, "16 agreements (88: 00000016)");
		is_int(f.records, 20, "20 records (89: 00000020)");
		is_str(f.agreements[0].kid, "000112000507155", "first KID (17-41, right-aligned)");
		ok(f.agreements[0].notify && !f.agreements[1].notify, "first J (notified by the bank), second N");
		is_int(f.agreements[0].registration_type, 1, "registration type 1: new or changed");
		is_str(f.agreements[15].kid, "001186100509492", "last KID");
		for (i = 0; i < f.nagreements; i++)
			notify += f.agreements[i].notify;
		is_int(notify, 11, "11 of the 16 want the bank's notice (J)");
		is_int(f.nets_date, 20170419, "end record's date 190417");
		is_str(f.data_transmitter, "00008080", "sent by Nets (00008080)");
		avtalegiro_free(&f);
	}
	if (len >= 81 * 20 && len < 4096)
	{
		static char m[4096];

		memcpy(m, d, len);
		memcpy(m + 81 * 18 + 8, "00000017", 8);
		ok(!avtalegiro_parse_agreements(m, len, &f, &err) && err.line == 19 &&
		   strstr(err.reason, "counts 17 transactions and 18 records; the assignment has 16 and 18") != NULL,
		   "a wrong count in the assignment end record: refused on its line");
		memcpy(m, d, len);
		m[81 * 2 + 41] = 'X';
		ok(!avtalegiro_parse_agreements(m, len, &f, &err) && err.line == 3 &&
		   strstr(err.reason, "notification (position 42) \"X\"") != NULL, "a notification flag other than J/N refused");
		memcpy(m, d, len);
		memcpy(m + 81 * 1 + 4, "00", 2);
		ok(!avtalegiro_parse_agreements(m, len, &f, &err) && err.line == 2 &&
		   strstr(err.reason, "is not agreements (24)") != NULL, "a claims assignment is not an agreements file");
	}
	free(d);
}

int
main(void)
{
	test_writer();
	test_fixture_request();
	test_agreements();
	return tap_done();
}
