/*-------------------------------------------------------------------------
 *
 * autogiro.h
 *	  Bankgirot Autogiro (Swedish direct debit) files, new layout: the
 *	  payment-claim file a payee sends (opening record 01, claims 82), and
 *	  the files Bankgirot sends back: the payment specification ("BET. SPEC
 *	  & STOPP TK": approved and rejected claims, 01/15/82/16/32/17/77/09)
 *	  the mandate advice ("AG-MEDAVI": mandate changes, 01/73/09) and the
 *	  report of rejected payment orders ("AVVISADE BET UPPDR": claims
 *	  refused before their payment date, with a comment code, 01/82/32/09).
 *
 * Plain C, no PostgreSQL headers; unit-tested (test/unit/test_autogiro.c)
 * and fuzzed (test/fuzz/fuzz_autogiro.c).  Records are 80 characters of
 * ISO-8859-1, read as bank files are (bankfile.h): CR LF or LF, a
 * right-trimmed record padded back with blanks.  Field positions are
 * 1-based, as in Bankgirot's technical manual; docs/directdebit.md.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SUBBILLING_CORE_AUTOGIRO_H
#define SUBBILLING_CORE_AUTOGIRO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bankfile.h"

/* Largest amount of a claim: 12 digits of öre */
#define AUTOGIRO_MAX_AMOUNT INT64_C(999999999999)

/*
 * One payment order: a claim (transaction code 82, incoming payment), or
 * with outgoing set a payment to the payer (32, e.g. a refund)
 */
typedef struct AutogiroClaim
{
	int32_t		due_date;		/* packed YYYYMMDD */
	char		payer_number[17];	/* 1-16 digits */
	int64_t		amount;			/* öre, 1 .. AUTOGIRO_MAX_AMOUNT */
	char		reference[17];	/* 0-16 characters, printed on the payer's
								 * statement */
	bool		outgoing;		/* 32 instead of 82 */
} AutogiroClaim;

/*
 * Write a payment-claim file: the opening record (written_on, the payee's
 * six-digit customer number at Bankgirot and bankgiro number) and one 82
 * record per claim (32 per outgoing payment), each line ended by CR LF.  *out is malloc'ed (free it).
 * False with err (line = 1-based claim number, 0 for the opening) if a
 * value does not fit its field.
 */
extern bool autogiro_write_claims(int32_t written_on, const char *customer_number,
								  const char *bankgiro, const AutogiroClaim *claims, int nclaims,
								  char **out, size_t *outlen, BankFileError *err);

/* One row of a result file */
typedef struct AutogiroRecord
{
	int			line;
	int			code;			/* 82 incoming payment, 32 outgoing payment,
								 * 77 refund; 73 mandate */
	int32_t		date;			/* payment (due) date; 73: the change's date */
	char		payer_number[17];	/* without leading zeros */
	int64_t		amount;			/* öre (0 for 73) */
	char		bankgiro[11];	/* payee's bankgiro, without leading zeros */
	char		reference[17];	/* trimmed */
	int			status;			/* 82/32: 0 approved, 1 insufficient funds, 2
								 * no mandate / account closed, 9 renewed
								 * attempt; 77: refund code; 73: status code;
								 * rejection report: the comment code (01
								 * no mandate, 02 account closed, ...) */
	int			info;			/* 73: information code; else 0 */
	char		account[17];	/* 73: payer's account, without leading zeros */
	char		id_number[13];	/* 73: payer's personal / organisation number */
	int32_t		settled_on;		/* 82/32/77: the section's (15/16/17) date */
	int			section_serial; /* the section's serial number */
} AutogiroRecord;

typedef enum AutogiroFileKind
{
	AUTOGIRO_PAYMENTS = 1,		/* BET. SPEC & STOPP TK */
	AUTOGIRO_MANDATES = 2,		/* AG-MEDAVI */
	AUTOGIRO_REJECTIONS = 3		/* AVVISADE BET UPPDR */
} AutogiroFileKind;

typedef struct AutogiroFile
{
	AutogiroFileKind kind;
	int32_t		written_on;
	char		customer_number[7];
	char		bankgiro[11];
	AutogiroRecord *records;
	int			nrecords;
	int			capacity;
	int			lines;			/* up to and including the end record 09 */
	int			sections;
	int			padded;			/* right-trimmed records padded back */
	int			padded_line;	/* the first of them */
} AutogiroFile;

/*
 * Parse a payment specification, a mandate advice or a report of rejected
 * payment orders (recognised by its opening record).  On success fills *f (release with autogiro_free);
 * else err with the line and the reason, *f left empty.
 */
extern bool autogiro_parse(const char *data, size_t len, AutogiroFile *f, BankFileError *err);
extern void autogiro_free(AutogiroFile *f);

#endif							/* SUBBILLING_CORE_AUTOGIRO_H */
