/*-------------------------------------------------------------------------
 *
 * avtalegiro.h
 *	  Nets AvtaleGiro (Norwegian direct debit) files: the reader of the
 *	  agreements file Nets sends (service code 21, assignment type 24:
 *	  agreement records 70 of transaction type 94 with the payer's KID and
 *	  whether the bank notifies the payer) and the writer of the payment
 *	  claims a payee sends (service code 21, assignment type 00: amount
 *	  items 30/31 and specification lines 49 per claim).
 *
 * Plain C, no PostgreSQL headers; unit-tested (test/unit/test_avtalegiro.c)
 * and fuzzed (test/fuzz/fuzz_avtalegiro.c).  80-character records of
 * ISO-8859-1; positions 1-based as in Nets' "AvtaleGiro - System
 * specification"; docs/directdebit.md.  The money comes back in the OCR
 * giro settlement file (bankfile.h, transaction type 15).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SUBBILLING_CORE_AVTALEGIRO_H
#define SUBBILLING_CORE_AVTALEGIRO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bankfile.h"

/* One agreement of an agreements file */
typedef struct AvtaleGiroAgreement
{
	int			line;
	int			transaction_number;
	int			registration_type;	/* 0 all agreements, 1 new or changed,
									 * 2 deleted */
	char		kid[26];
	bool		notify;			/* J: the bank notifies the payer */
} AvtaleGiroAgreement;

typedef struct AvtaleGiroAgreements
{
	char		data_transmitter[9];
	char		transmission_number[8];
	char		data_recipient[9];
	char		agreement_id[10];
	char		assignment_number[8];
	char		assignment_account[12];
	int32_t		nets_date;		/* end record's date, packed YYYYMMDD */
	AvtaleGiroAgreement *agreements;
	int			nagreements;
	int			capacity;
	int			records;
} AvtaleGiroAgreements;

extern bool avtalegiro_parse_agreements(const char *data, size_t len, AvtaleGiroAgreements *f,
										BankFileError *err);
extern void avtalegiro_free(AvtaleGiroAgreements *f);

/* A specification line of a claim (record 49) */
typedef struct AvtaleGiroSpec
{
	int			line;			/* 1..999 */
	int			column;			/* 1 or 2 */
	char		text[41];
} AvtaleGiroSpec;

/* One payment claim */
typedef struct AvtaleGiroClaim
{
	int32_t		due_date;		/* packed YYYYMMDD, 2000-2069 (DDMMYY) */
	int64_t		amount;			/* øre, 1 .. 17 digits */
	char		kid[26];		/* 2-25 digits */
	bool		notify;			/* transaction type 21 (the bank notifies)
								 * rather than 02 */
	char		payer_name[11]; /* short name, up to 10 characters */
	const AvtaleGiroSpec *specs;
	int			nspecs;
} AvtaleGiroClaim;

typedef struct AvtaleGiroHeader
{
	const char *data_transmitter;	/* 8 digits */
	const char *transmission_number;	/* 7 digits */
	const char *data_recipient; /* 8 digits (Nets: 00008080) */
	const char *agreement_id;	/* 9 digits */
	const char *assignment_number;	/* 7 digits */
	const char *assignment_account; /* 11 digits */
} AvtaleGiroHeader;

/*
 * Write a payment-claim transmission: 10, 20, per claim 30, 31 and its 49
 * lines, 88, 89 (the end record's date: the earliest due date), LF line
 * ends.  *out is malloc'ed.  False with err (line = 1-based claim, 0 for
 * the header) if a value does not fit.
 */
extern bool avtalegiro_write_claims(const AvtaleGiroHeader *h, const AvtaleGiroClaim *claims,
									int nclaims, char **out, size_t *outlen, BankFileError *err);

#endif							/* SUBBILLING_CORE_AVTALEGIRO_H */
