/*-------------------------------------------------------------------------
 *
 * autogiro.c
 *	  SQL access to the Autogiro files of src/core/autogiro.c:
 *	  parse_autogiro(file) reads a payment specification or a mandate
 *	  advice into rows; autogiro_claims_text(...) writes a payment-claim
 *	  file.  Files are text in the database encoding, handled as
 *	  ISO-8859-1 as the bank files are (src/bankfile.c); an invalid file
 *	  raises 22P02 with the line and the reason.  docs/directdebit.md.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <string.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/tuplestore.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

#include "autogiro.h"

PG_FUNCTION_INFO_V1(parse_autogiro);
PG_FUNCTION_INFO_V1(autogiro_claims_text);

#define AUTOGIRO_COLUMNS 15

static char *
LatinBytes(text *t, size_t *len)
{
	char	   *s = VARDATA_ANY(t);
	int			n = VARSIZE_ANY_EXHDR(t);
	int			enc = GetDatabaseEncoding();

	if (enc == PG_UTF8)
	{
		char	   *out = palloc((Size) n + 1);
		BankFileError err;

		if (!bankfile_utf8_to_latin1(s, (size_t) n, out, len, &err))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid Autogiro file"),
					 errdetail("Line %d: %s", err.line, err.reason)));
		return out;
	}
	if (enc == PG_LATIN1 || enc == PG_SQL_ASCII)
	{
		*len = (size_t) n;
		return s;
	}
	s = pg_server_to_any(s, n, PG_LATIN1);
	*len = strlen(s);
	return s;
}

static Datum
Latin(const char *s, bool *isnull)
{
	*isnull = (s[0] == '\0');
	if (*isnull)
		return (Datum) 0;
	return PointerGetDatum(cstring_to_text(pg_any_to_server(s, (int) strlen(s), PG_LATIN1)));
}

static Datum
Packed(int32 d, bool *isnull)
{
	*isnull = (d == 0);
	if (*isnull)
		return (Datum) 0;
	return DateADTGetDatum(date2j(d / 10000, d / 100 % 100, d % 100) - POSTGRES_EPOCH_JDATE);
}

static int32
PackDate(DateADT d)
{
	int			y,
				m,
				day;

	if (DATE_NOT_FINITE(d))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an Autogiro date must be finite")));
	j2date(d + POSTGRES_EPOCH_JDATE, &y, &m, &day);
	if (y < 1 || y > 9999)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an Autogiro date has four digits of year")));
	return (int32) (y * 10000 + m * 100 + day);
}

/*
 * parse_autogiro(file): the rows of a payment specification or a mandate
 * advice: kind, line, code, date, payer number, amount (öre), bankgiro,
 * reference, status, info, account, id number, settled_on, section
 * serial, written_on.
 */
Datum
parse_autogiro(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	size_t		len;
	char	   *bytes;
	AutogiroFile f;
	BankFileError err;

	InitMaterializedSRF(fcinfo, 0);
	bytes = LatinBytes(PG_GETARG_TEXT_PP(0), &len);
	if (!autogiro_parse(bytes, len, &f, &err))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid Autogiro file"),
				 errdetail("Line %d: %s", err.line,
						   pg_any_to_server(err.reason, (int) strlen(err.reason), PG_LATIN1))));
	PG_TRY();
	{
		int			i;

		for (i = 0; i < f.nrecords; i++)
		{
			AutogiroRecord *r = &f.records[i];
			Datum		v[AUTOGIRO_COLUMNS];
			bool		n[AUTOGIRO_COLUMNS];

			memset(n, false, sizeof(n));
			v[0] = CStringGetTextDatum(f.kind == AUTOGIRO_PAYMENTS ? "payments" : "mandates");
			v[1] = Int32GetDatum(r->line);
			v[2] = Int32GetDatum(r->code);
			v[3] = Packed(r->date, &n[3]);
			v[4] = Latin(r->payer_number, &n[4]);
			v[5] = Int64GetDatum(r->amount);
			v[6] = Latin(r->bankgiro, &n[6]);
			v[7] = Latin(r->reference, &n[7]);
			v[8] = Int32GetDatum(r->status);
			v[9] = Int32GetDatum(r->info);
			n[9] = (r->code != 73);
			v[10] = Latin(r->account, &n[10]);
			v[11] = Latin(r->id_number, &n[11]);
			v[12] = Packed(r->settled_on, &n[12]);
			v[13] = Int32GetDatum(r->section_serial);
			n[13] = (r->code == 73);
			v[14] = Packed(f.written_on, &n[14]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
		}
	}
	PG_FINALLY();
	{
		autogiro_free(&f);
	}
	PG_END_TRY();
	return (Datum) 0;
}

/*
 * autogiro_claims_text(written_on, customer_number, bankgiro, due_dates,
 * payer_numbers, amounts (öre), references): the payment-claim file.
 */
Datum
autogiro_claims_text(PG_FUNCTION_ARGS)
{
	DateADT		written = PG_GETARG_DATEADT(0);
	char	   *customer = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *bankgiro = text_to_cstring(PG_GETARG_TEXT_PP(2));
	ArrayType  *a_due = PG_GETARG_ARRAYTYPE_P(3);
	ArrayType  *a_payer = PG_GETARG_ARRAYTYPE_P(4);
	ArrayType  *a_amount = PG_GETARG_ARRAYTYPE_P(5);
	ArrayType  *a_ref = PG_GETARG_ARRAYTYPE_P(6);
	Datum	   *due,
			   *payer,
			   *amount,
			   *ref;
	bool	   *nd,
			   *np,
			   *na,
			   *nr;
	int			n1,
				n2,
				n3,
				n4,
				i;
	AutogiroClaim *claims;
	char	   *out;
	size_t		outlen;
	BankFileError err;
	text	   *result;

	deconstruct_array(a_due, DATEOID, sizeof(DateADT), true, TYPALIGN_INT, &due, &nd, &n1);
	deconstruct_array(a_payer, TEXTOID, -1, false, TYPALIGN_INT, &payer, &np, &n2);
	deconstruct_array(a_amount, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &amount, &na, &n3);
	deconstruct_array(a_ref, TEXTOID, -1, false, TYPALIGN_INT, &ref, &nr, &n4);
	if (n1 != n2 || n1 != n3 || n1 != n4)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("the claim arrays differ in length")));
	claims = palloc0(sizeof(AutogiroClaim) * (Size) (n1 + 1));
	for (i = 0; i < n1; i++)
	{
		char	   *p,
				   *r;
		size_t		rl;
		BankFileError e;

		if (nd[i] || np[i] || na[i] || nr[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("claim %d has a NULL field", i + 1)));
		claims[i].due_date = PackDate(DatumGetDateADT(due[i]));
		p = TextDatumGetCString(payer[i]);
		if (strlen(p) > 16)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("claim %d: the payer number \"%s\" is not 1-16 digits", i + 1, p)));
		strcpy(claims[i].payer_number, p);
		claims[i].amount = DatumGetInt64(amount[i]);
		r = TextDatumGetCString(ref[i]);
		{
			char	   *lat = palloc(strlen(r) + 1);

			if (!bankfile_utf8_to_latin1(r, strlen(r), lat, &rl, &e) || rl > 16)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("claim %d: the reference \"%s\" is not 0-16 ISO-8859-1 characters", i + 1, r)));
			memcpy(claims[i].reference, lat, rl);
			claims[i].reference[rl] = '\0';
		}
	}
	if (!autogiro_write_claims(PackDate(written), customer, bankgiro, claims, n1, &out, &outlen, &err))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot write the Autogiro claim file"),
				 errdetail("%s%s", err.line > 0 ? psprintf("Claim %d: ", err.line) : "",
						   pg_any_to_server(err.reason, (int) strlen(err.reason), PG_LATIN1))));
	{
		char	   *copy = pnstrdup(out, outlen);

		free(out);
		result = cstring_to_text(pg_any_to_server(copy, (int) outlen, PG_LATIN1));
	}
	PG_RETURN_TEXT_P(result);
}
