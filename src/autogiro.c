/*-------------------------------------------------------------------------
 *
 * autogiro.c
 *	  SQL access to the Autogiro files of src/core/autogiro.c:
 *	  parse_autogiro(file) reads a payment specification, a mandate
 *	  advice or a rejection report into rows; autogiro_claims_text(...)
 *	  writes a payment-claim file.  Files are text in the database encoding, handled as
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
			v[0] = CStringGetTextDatum(f.kind == AUTOGIRO_PAYMENTS ? "payments" :
									   f.kind == AUTOGIRO_MANDATES ? "mandates" : "rejections");
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
			n[13] = (r->code == 73 || f.kind == AUTOGIRO_REJECTIONS);
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
 * payer_numbers, amounts (öre; negative: an outgoing payment, 32),
 * references): the payment-claim file.
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
		if (claims[i].amount < 0 && claims[i].amount >= -AUTOGIRO_MAX_AMOUNT)
		{
			/* a negative amount is money out: an outgoing payment (32) */
			claims[i].amount = -claims[i].amount;
			claims[i].outgoing = true;
		}
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

/* ---------- AvtaleGiro (Nets, Norway) ---------- */

#include "avtalegiro.h"

PG_FUNCTION_INFO_V1(parse_avtalegiro_agreements);
PG_FUNCTION_INFO_V1(avtalegiro_claims_text);

/*
 * parse_avtalegiro_agreements(file): line, transaction number, registration
 * type, KID, notify, the end record's date.
 */
Datum
parse_avtalegiro_agreements(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	size_t		len;
	char	   *bytes;
	AvtaleGiroAgreements f;
	BankFileError err;

	InitMaterializedSRF(fcinfo, 0);
	bytes = LatinBytes(PG_GETARG_TEXT_PP(0), &len);
	if (!avtalegiro_parse_agreements(bytes, len, &f, &err))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid AvtaleGiro agreements file"),
				 errdetail("Line %d: %s", err.line,
						   pg_any_to_server(err.reason, (int) strlen(err.reason), PG_LATIN1))));
	PG_TRY();
	{
		int			i;

		for (i = 0; i < f.nagreements; i++)
		{
			Datum		v[6];
			bool		n[6] = {false, false, false, false, false, false};

			v[0] = Int32GetDatum(f.agreements[i].line);
			v[1] = Int32GetDatum(f.agreements[i].transaction_number);
			v[2] = Int32GetDatum(f.agreements[i].registration_type);
			v[3] = CStringGetTextDatum(f.agreements[i].kid);
			v[4] = BoolGetDatum(f.agreements[i].notify);
			v[5] = Packed(f.nets_date, &n[5]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
		}
	}
	PG_FINALLY();
	{
		avtalegiro_free(&f);
	}
	PG_END_TRY();
	return (Datum) 0;
}

/*
 * avtalegiro_claims_text(header text[6], due_dates, amounts (øre), kids,
 * notify, payer_names, specs): a payment-claim transmission.  header:
 * transmitter, transmission number, recipient, agreement ID, assignment
 * number, assignment account.  specs: one text per claim, its lines
 * separated by newlines (each up to 40 characters, column 1), or ''.
 */
Datum
avtalegiro_claims_text(PG_FUNCTION_ARGS)
{
	ArrayType  *a_head = PG_GETARG_ARRAYTYPE_P(0);
	Datum	   *head,
			   *due,
			   *amount,
			   *kid,
			   *notify,
			   *name,
			   *spec;
	bool	   *nh,
			   *n1,
			   *n2,
			   *n3,
			   *n4,
			   *n5,
			   *n6;
	int			nhead,
				c1,
				c2,
				c3,
				c4,
				c5,
				c6,
				i;
	AvtaleGiroHeader h;
	AvtaleGiroClaim *claims;
	char	   *out;
	size_t		outlen;
	BankFileError err;

	deconstruct_array(a_head, TEXTOID, -1, false, TYPALIGN_INT, &head, &nh, &nhead);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), DATEOID, sizeof(DateADT), true, TYPALIGN_INT, &due, &n1, &c1);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &amount, &n2, &c2);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(3), TEXTOID, -1, false, TYPALIGN_INT, &kid, &n3, &c3);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(4), BOOLOID, 1, true, TYPALIGN_CHAR, &notify, &n4, &c4);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(5), TEXTOID, -1, false, TYPALIGN_INT, &name, &n5, &c5);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(6), TEXTOID, -1, false, TYPALIGN_INT, &spec, &n6, &c6);
	if (nhead != 6 || c1 != c2 || c1 != c3 || c1 != c4 || c1 != c5 || c1 != c6)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("the AvtaleGiro header has 6 elements and the claim arrays one length")));
	for (i = 0; i < 6; i++)
		if (nh[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("the AvtaleGiro header has a NULL element")));
	h.data_transmitter = TextDatumGetCString(head[0]);
	h.transmission_number = TextDatumGetCString(head[1]);
	h.data_recipient = TextDatumGetCString(head[2]);
	h.agreement_id = TextDatumGetCString(head[3]);
	h.assignment_number = TextDatumGetCString(head[4]);
	h.assignment_account = TextDatumGetCString(head[5]);
	claims = palloc0(sizeof(AvtaleGiroClaim) * (Size) (c1 + 1));
	for (i = 0; i < c1; i++)
	{
		char	   *k,
				   *nm,
				   *sp;
		size_t		l;
		BankFileError e;

		if (n1[i] || n2[i] || n3[i] || n4[i] || n5[i] || n6[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("claim %d has a NULL field", i + 1)));
		claims[i].due_date = PackDate(DatumGetDateADT(due[i]));
		claims[i].amount = DatumGetInt64(amount[i]);
		k = TextDatumGetCString(kid[i]);
		if (strlen(k) > 25)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("claim %d: the KID \"%s\" is not 2-25 digits", i + 1, k)));
		strcpy(claims[i].kid, k);
		claims[i].notify = DatumGetBool(notify[i]);
		nm = TextDatumGetCString(name[i]);
		{
			char	   *lat = palloc(strlen(nm) + 1);

			if (!bankfile_utf8_to_latin1(nm, strlen(nm), lat, &l, &e) || l > 10)
				l = 0;			/* a short name is optional: left out if it does not fit */
			memcpy(claims[i].payer_name, lat, l);
			claims[i].payer_name[l] = '\0';
		}
		sp = TextDatumGetCString(spec[i]);
		if (sp[0] != '\0')
		{
			AvtaleGiroSpec *specs = palloc0(sizeof(AvtaleGiroSpec) * 42);
			int			ns = 0;
			char	   *save = NULL,
					   *tok;

			for (tok = strtok_r(sp, "\n", &save); tok != NULL && ns < 42; tok = strtok_r(NULL, "\n", &save))
			{
				char	   *lat = palloc(strlen(tok) + 1);

				if (!bankfile_utf8_to_latin1(tok, strlen(tok), lat, &l, &e) || l > 40)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("claim %d: specification line \"%s\" is not up to 40 ISO-8859-1 characters", i + 1, tok)));
				specs[ns].line = ns + 1;
				specs[ns].column = 1;
				memcpy(specs[ns].text, lat, l);
				specs[ns].text[l] = '\0';
				ns++;
			}
			claims[i].specs = specs;
			claims[i].nspecs = ns;
		}
	}
	if (!avtalegiro_write_claims(&h, claims, c1, &out, &outlen, &err))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot write the AvtaleGiro claim file"),
				 errdetail("%s%s", err.line > 0 ? psprintf("Claim %d: ", err.line) : "",
						   pg_any_to_server(err.reason, (int) strlen(err.reason), PG_LATIN1))));
	{
		char	   *copy = pnstrdup(out, outlen);

		free(out);
		PG_RETURN_TEXT_P(cstring_to_text(pg_any_to_server(copy, (int) outlen, PG_LATIN1)));
	}
}
