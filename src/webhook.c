/*-------------------------------------------------------------------------
 *
 * webhook.c
 *	  Webhooks: the signature, secrets, and the webhook worker that delivers
 *	  events to subbilling.webhook_endpoints over HTTP with libcurl.
 *
 * The worker ("subbilling webhooks", registered beside the billing worker
 * when the library is preloaded) connects to subbilling.database and loops:
 *
 *	 (a) drive the requests in flight (libcurl multi: many at once, each with
 *		 its own timeout, so a slow or dead endpoint never holds up another);
 *	 (b) when requests have finished or the poll interval has passed, one
 *		 short transaction: record the finished attempts
 *		 (subbilling_internal.webhook_record), queue deliveries of newly
 *		 committed events (webhook_fanout, which reads events_after), and
 *		 claim due deliveries for the free request slots (webhook_claim: the
 *		 oldest pending delivery of each endpoint without a request in flight;
 *		 the attempt row is written and the next attempt scheduled before
 *		 the request).  The requests are built and signed in that
 *		 transaction and started only after it has committed: no network I/O
 *		 happens while a transaction is open, and a crash after the commit
 *		 leaves a delivery that is simply due again.
 *	 (c) wait for the sockets (while requests are in flight) or the latch.
 *
 * Signals: SIGHUP reloads the settings between two steps; SIGTERM (die)
 * ends the process at the next interrupt check; requests in flight are
 * dropped, and their attempts are marked interrupted by the next start.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include <curl/curl.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "common/base64.h"
#include "common/hmac.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "webhook.h"
#include "worker.h"

/* Settings; see docs/webhooks.md */
static bool webhook_enabled = true;
static int	webhook_concurrency = 32;
static int	webhook_timeout_ms = 10000;
static int	webhook_retry_base_ms = 5000;
static int	webhook_max_attempts = 20;
static int	webhook_poll_ms = 1000;

#define WEBHOOK_MAX_CONCURRENCY 1000
#define WEBHOOK_FANOUT_EVENTS	1000
#define WEBHOOK_SECRET_BYTES	32
#define WEBHOOK_MAX_ERROR		300

PG_FUNCTION_INFO_V1(subbilling_webhook_signature);
PG_FUNCTION_INFO_V1(subbilling_webhook_new_secret);

/*
 * One request slot of the worker.  Everything a request needs lives here
 * (in TopMemoryContext or malloc'd by libcurl) from the claim until its
 * result is recorded.
 */
typedef struct Transfer
{
	bool		in_use;
	bool		done;			/* finished, result not yet recorded */
	CURL	   *easy;
	struct curl_slist *headers;
	int64		delivery_id;
	int64		endpoint_id;
	int32		attempt;
	char	   *url;
	char	   *body;
	size_t		body_len;
	TimestampTz started;
	/* result */
	long		status_code;	/* 0: no HTTP answer */
	char	   *error;			/* NULL: none */
	double		duration_ms;
	char		errbuf[CURL_ERROR_SIZE];
} Transfer;

static Transfer *transfers = NULL;	/* WEBHOOK_MAX_CONCURRENCY slots */
static int	n_in_flight = 0;
static int	n_done = 0;
static CURLM *multi = NULL;
static char *connected_database = NULL;
static bool extension_missing_logged = false;
static bool fanout_more = false;
static TimestampTz next_poll = 0;

static bool check_webhook_timeout(int *newval, void **extra, GucSource source);
static void webhook_reload(void);
static void webhook_step(void);
static bool webhook_extension_ready(void);
static void webhook_record_done(void);
static void webhook_claim(int max);
static void transfer_prepare(Transfer *t, const char *url, const char *msg_id, int64 ts,
							 const char *body, Datum secrets);
static void transfer_start(Transfer *t);
static void transfer_release(Transfer *t);
static void webhook_collect(void);
static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *userdata);

/*
 * Settings.  Called by _PG_init in every process that loads the library.
 */
void
subbilling_webhook_define_gucs(void)
{
	DefineCustomBoolVariable("subbilling.webhooks_enabled",
							 gettext_noop("Whether the subbilling webhook worker delivers webhooks."),
							 gettext_noop("When off, deliveries wait; nothing is lost."),
							 &webhook_enabled,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("subbilling.webhook_concurrency",
							gettext_noop("Largest number of webhook requests in flight at once."),
							gettext_noop("At most one per endpoint, so that each endpoint gets its events in order."),
							&webhook_concurrency,
							32, 1, WEBHOOK_MAX_CONCURRENCY,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("subbilling.webhook_timeout",
							gettext_noop("Time a webhook request may take, connection included."),
							gettext_noop("A request still unanswered then counts as a failed attempt."),
							&webhook_timeout_ms,
							10000, 100, 300000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							check_webhook_timeout, NULL, NULL);

	DefineCustomIntVariable("subbilling.webhook_retry_base",
							gettext_noop("Delay before the first retry of a webhook; it doubles with each attempt, capped at one hour, with jitter."),
							NULL,
							&webhook_retry_base_ms,
							5000, 10, 3600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("subbilling.webhook_max_attempts",
							gettext_noop("Attempts after which a webhook delivery is failed and a webhook.failed event written."),
							NULL,
							&webhook_max_attempts,
							20, 1, 1000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("subbilling.webhook_poll_interval",
							gettext_noop("How often the webhook worker looks for new events and due retries."),
							NULL,
							&webhook_poll_ms,
							1000, 10, 60000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
}

static bool
check_webhook_timeout(int *newval, void **extra pg_attribute_unused(),
					  GucSource source pg_attribute_unused())
{
	if (*newval < 100)
	{
		GUC_check_errdetail("subbilling.webhook_timeout must be at least 100 ms.");
		return false;
	}
	return true;
}

void
subbilling_webhook_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "subbilling");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "subbilling_webhook_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "subbilling webhooks");
	snprintf(worker.bgw_type, BGW_MAXLEN, "subbilling webhooks");
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = 0;

	RegisterBackgroundWorker(&worker);
}

/* ------------------------------------------------------------------------
 * The signature
 * ------------------------------------------------------------------------
 */

/*
 * Standard Webhooks: base64(HMAC-SHA256(key, "msg_id.timestamp.body")),
 * key = base64-decode(secret without "whsec_").  Needs a resource owner in
 * the backend (the OpenSSL HMAC context is tracked by one): call it inside
 * a transaction.
 */
bool
webhook_sign(const char *secret, const char *msg_id, int64 timestamp,
			 const char *body, size_t body_len, char *out, const char **error)
{
	const char *b64;
	int			b64_len;
	uint8	   *key;
	int			key_len;
	pg_hmac_ctx *ctx;
	uint8		mac[32];
	char		prefix[128];
	int			prefix_len;
	int			n;

	if (strncmp(secret, "whsec_", 6) != 0)
	{
		*error = "the secret does not start with whsec_";
		return false;
	}
	b64 = secret + 6;
	b64_len = (int) strlen(b64);
	if (b64_len == 0 || b64_len > 1024)
	{
		*error = "the secret has no key, or one longer than 1024 characters";
		return false;
	}
	key = palloc(pg_b64_dec_len(b64_len) + 1);
#if PG_VERSION_NUM >= 180000
	key_len = pg_b64_decode(b64, b64_len, key, pg_b64_dec_len(b64_len));
#else
	key_len = pg_b64_decode(b64, b64_len, (char *) key, pg_b64_dec_len(b64_len));
#endif
	if (key_len <= 0)
	{
		pfree(key);
		*error = "the secret after whsec_ is not base64";
		return false;
	}

	if (strlen(msg_id) > 100)
	{
		pfree(key);
		*error = "the message id is longer than 100 characters";
		return false;
	}
	prefix_len = snprintf(prefix, sizeof(prefix), "%s." INT64_FORMAT ".", msg_id, timestamp);

	ctx = pg_hmac_create(PG_SHA256);
	if (ctx == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	if (pg_hmac_init(ctx, key, key_len) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) prefix, prefix_len) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) body, body_len) < 0 ||
		pg_hmac_final(ctx, mac, sizeof(mac)) < 0)
	{
		const char *e = pg_hmac_error(ctx);

		pg_hmac_free(ctx);
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute HMAC-SHA256: %s", e)));
	}
	pg_hmac_free(ctx);
	pfree(key);

	memcpy(out, "v1,", 3);
#if PG_VERSION_NUM >= 180000
	n = pg_b64_encode(mac, sizeof(mac), out + 3, WEBHOOK_SIGNATURE_LEN - 4);
#else
	n = pg_b64_encode((const char *) mac, sizeof(mac), out + 3, WEBHOOK_SIGNATURE_LEN - 4);
#endif
	if (n < 0)
		elog(ERROR, "could not encode the webhook signature");
	out[3 + n] = '\0';
	return true;
}

/*
 * subbilling.webhook_signature(secret, msg_id, msg_timestamp, body) -> text
 */
Datum
subbilling_webhook_signature(PG_FUNCTION_ARGS)
{
	char	   *secret = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *msg_id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int64		ts = PG_GETARG_INT64(2);
	text	   *body = PG_GETARG_TEXT_PP(3);
	char		sig[WEBHOOK_SIGNATURE_LEN];
	const char *error = NULL;

	if (msg_id[0] == '\0' || strlen(msg_id) > 100 || strchr(msg_id, '.') != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid webhook message id"),
				 errdetail("A message id is 1 to 100 characters without a dot.")));
	if (ts < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid webhook timestamp " INT64_FORMAT, ts),
				 errdetail("The timestamp is in seconds since 1970-01-01 00:00 UTC.")));
	if (!webhook_sign(secret, msg_id, ts, VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body), sig, &error))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid webhook secret"),
				 errdetail("%s.", error),
				 errhint("A secret is whsec_ followed by the base64 of the key.")));

	PG_RETURN_TEXT_P(cstring_to_text(sig));
}

/*
 * subbilling_internal.webhook_new_secret() -> text: whsec_ + base64 of 32
 * bytes from the server's cryptographic random source.
 */
Datum
subbilling_webhook_new_secret(PG_FUNCTION_ARGS pg_attribute_unused())
{
	uint8		raw[WEBHOOK_SECRET_BYTES];
	char		out[6 + 4 * ((WEBHOOK_SECRET_BYTES + 2) / 3) + 1];
	int			n;

	if (!pg_strong_random(raw, sizeof(raw)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random webhook secret")));
	memcpy(out, "whsec_", 6);
#if PG_VERSION_NUM >= 180000
	n = pg_b64_encode(raw, sizeof(raw), out + 6, sizeof(out) - 7);
#else
	n = pg_b64_encode((const char *) raw, sizeof(raw), out + 6, sizeof(out) - 7);
#endif
	if (n < 0)
		elog(ERROR, "could not encode the webhook secret");
	out[6 + n] = '\0';
	explicit_bzero(raw, sizeof(raw));
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/* ------------------------------------------------------------------------
 * The worker
 * ------------------------------------------------------------------------
 */

void
subbilling_webhook_main(Datum main_arg pg_attribute_unused())
{
	MemoryContext loop_context;
	CURLcode	rc;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(subbilling_database, NULL, 0);
	connected_database = MemoryContextStrdup(TopMemoryContext, subbilling_database);
	pgstat_report_appname("subbilling webhooks");

	/*
	 * The worker's transactions commit synchronously (the server's setting):
	 * an attempt is recorded before its request is sent, and a crash must not
	 * lose that record (every attempt is kept, the interrupted one included).
	 */

	rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (rc != CURLE_OK)
		ereport(FATAL,
				(errmsg("subbilling webhooks: could not initialize libcurl: %s", curl_easy_strerror(rc))));
	multi = curl_multi_init();
	if (multi == NULL)
		ereport(FATAL, (errmsg("subbilling webhooks: could not create a libcurl multi handle")));
	transfers = MemoryContextAllocZero(TopMemoryContext, sizeof(Transfer) * WEBHOOK_MAX_CONCURRENCY);

	loop_context = AllocSetContextCreate(TopMemoryContext, "subbilling webhooks loop",
										 ALLOCSET_DEFAULT_SIZES);

	ereport(LOG,
			(errmsg("subbilling webhooks worker started in database \"%s\"", connected_database),
			 errdetail("concurrency %d, timeout %d ms, retry base %d ms, max attempts %d, poll interval %d ms, %s.",
					   webhook_concurrency, webhook_timeout_ms, webhook_retry_base_ms,
					   webhook_max_attempts, webhook_poll_ms,
					   webhook_enabled ? "enabled" : "disabled")));

	next_poll = GetCurrentTimestamp();

	for (;;)
	{
		long		timeout;

		CHECK_FOR_INTERRUPTS();
		if (!PostmasterIsAlive())
			proc_exit(1);
		if (ConfigReloadPending)
			webhook_reload();

		MemoryContextSwitchTo(loop_context);
		MemoryContextReset(loop_context);

		if (n_in_flight > 0)
			webhook_collect();

		if (n_done > 0 || fanout_more || GetCurrentTimestamp() >= next_poll)
		{
			PG_TRY();
			{
				webhook_step();
			}
			PG_CATCH();
			{
				int			i;

				HOLD_INTERRUPTS();
				MemoryContextSwitchTo(loop_context);
				EmitErrorReport();
				AbortOutOfAnyTransaction();
				FlushErrorState();
				pgstat_report_activity(STATE_IDLE, NULL);
				RESUME_INTERRUPTS();

				/*
				 * Results not recorded are dropped, and so are requests
				 * claimed by the rolled-back transaction: their deliveries are due
				 * again at the time the claim scheduled (at least once).
				 */
				for (i = 0; i < WEBHOOK_MAX_CONCURRENCY; i++)
					if (transfers[i].in_use && (transfers[i].done || transfers[i].easy == NULL))
						transfer_release(&transfers[i]);
				n_done = 0;
				fanout_more = false;
				next_poll = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), webhook_poll_ms);
			}
			PG_END_TRY();
		}

		/* wait for the sockets, the latch or the next poll */
		timeout = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_poll);
		if (fanout_more || n_done > 0)
			timeout = 0;
		if (n_in_flight > 0)
		{
			int			numfds;

			/* short waits: the latch (SIGTERM, SIGHUP) is looked at in between */
			(void) curl_multi_wait(multi, NULL, 0, (int) Min(timeout, 100), &numfds);
		}
		else if (timeout > 0)
		{
			(void) WaitLatch(MyLatch,
							 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Min(timeout, 60000L),
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
}

static void
webhook_reload(void)
{
	bool		old_enabled = webhook_enabled;

	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);

	if (strcmp(subbilling_database, connected_database) != 0)
	{
		ereport(LOG,
				(errmsg("subbilling webhooks: subbilling.database changed from \"%s\" to \"%s\", exiting to be restarted there",
						connected_database, subbilling_database)));
		proc_exit(1);
	}
	if (webhook_enabled != old_enabled)
		ereport(LOG,
				(errmsg("subbilling webhooks: %s", webhook_enabled ? "enabled" : "disabled")));
	next_poll = GetCurrentTimestamp();
}

/*
 * Whether the extension is installed; logs its absence once.
 */
static bool
webhook_extension_ready(void)
{
	bool		ready = OidIsValid(get_extension_oid("subbilling", true));

	if (!ready && !extension_missing_logged)
	{
		ereport(LOG,
				(errmsg("subbilling webhooks: extension \"subbilling\" is not installed in database \"%s\", waiting for it",
						connected_database)));
		extension_missing_logged = true;
	}
	else if (ready && extension_missing_logged)
	{
		ereport(LOG,
				(errmsg("subbilling webhooks: extension \"subbilling\" found in database \"%s\"",
						connected_database)));
		extension_missing_logged = false;
	}
	return ready;
}

/*
 * Step (b): one transaction recording results, queueing and claiming;
 * the claimed requests start after the commit.
 */
static void
webhook_step(void)
{
	static bool mark_interrupted = true;
	bool		poll = GetCurrentTimestamp() >= next_poll;
	int			free_slots;
	int			i;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "subbilling webhooks: recording and claiming");

	if (!webhook_extension_ready())
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgstat_report_activity(STATE_IDLE, NULL);
		next_poll = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), webhook_poll_ms);
		fanout_more = false;
		return;
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	if (mark_interrupted)
	{
		/* attempts a previous worker process left in flight */
		if (SPI_execute("SELECT subbilling_internal.webhook_mark_interrupted()", false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not mark interrupted webhook attempts");
	}

	if (n_done > 0)
		webhook_record_done();

	if (webhook_enabled && (poll || fanout_more))
	{
		bool		any;
		bool		isnull;

		/* nothing to do (and nothing written) while there is no active endpoint */
		if (SPI_execute("SELECT EXISTS (SELECT FROM subbilling.webhook_endpoints WHERE active)",
						true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not look for webhook endpoints");
		any = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		fanout_more = false;
		if (any)
		{
			Oid			argtypes[1] = {INT4OID};
			Datum		values[1] = {Int32GetDatum(WEBHOOK_FANOUT_EVENTS)};

			/* events_after takes its own snapshots: READ COMMITTED statements */
			if (SPI_execute_with_args("SELECT f.more FROM subbilling_internal.webhook_fanout($1) AS f",
									  1, argtypes, values, NULL, false, 1) != SPI_OK_SELECT)
				elog(ERROR, "webhook fan-out failed");
			fanout_more = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		}
	}

	free_slots = Min(webhook_concurrency, WEBHOOK_MAX_CONCURRENCY) - n_in_flight;
	if (webhook_enabled && free_slots > 0)
		webhook_claim(free_slots);

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	pgstat_report_stat(false);
	mark_interrupted = false;

	/* committed: the claimed requests may go */
	for (i = 0; i < WEBHOOK_MAX_CONCURRENCY; i++)
		if (transfers[i].in_use && transfers[i].easy == NULL)
			transfer_start(&transfers[i]);

	if (poll)
		next_poll = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), webhook_poll_ms);
}

/*
 * Records every finished request; called inside the step's transaction.
 */
static void
webhook_record_done(void)
{
	int			i;

	for (i = 0; i < WEBHOOK_MAX_CONCURRENCY; i++)
	{
		Transfer   *t = &transfers[i];
		Oid			argtypes[6] = {INT8OID, INT4OID, INT4OID, TEXTOID, FLOAT8OID, INT4OID};
		Datum		values[6];
		char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

		if (!t->in_use || !t->done)
			continue;
		values[0] = Int64GetDatum(t->delivery_id);
		values[1] = Int32GetDatum(t->attempt);
		if (t->status_code > 0)
			values[2] = Int32GetDatum((int32) t->status_code);
		else
			nulls[2] = 'n';
		if (t->error)
			values[3] = CStringGetTextDatum(t->error);
		else
			nulls[3] = 'n';
		values[4] = Float8GetDatum(t->duration_ms);
		values[5] = Int32GetDatum(webhook_max_attempts);
		if (SPI_execute_with_args("SELECT subbilling_internal.webhook_record($1, $2, $3, $4, $5, $6)",
								  6, argtypes, values, nulls, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not record a webhook attempt");
	}
	/* recorded (the transaction may still fail: then they are retried) */
	for (i = 0; i < WEBHOOK_MAX_CONCURRENCY; i++)
		if (transfers[i].in_use && transfers[i].done)
			transfer_release(&transfers[i]);
	n_done = 0;
}

/*
 * Claims up to max deliveries and prepares their requests (not started).
 */
static void
webhook_claim(int max)
{
	Oid			argtypes[4] = {INT4OID, INT8ARRAYOID, INT4OID, INT4OID};
	Datum		values[4];
	Datum	   *busy;
	int			nbusy = 0;
	int			i;
	uint64		row;
	int			slot = 0;

	busy = palloc(sizeof(Datum) * (n_in_flight + 1));
	for (i = 0; i < WEBHOOK_MAX_CONCURRENCY; i++)
		if (transfers[i].in_use)
			busy[nbusy++] = Int64GetDatum(transfers[i].endpoint_id);

	values[0] = Int32GetDatum(max);
	values[1] = PointerGetDatum(construct_array(busy, nbusy, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[2] = Int32GetDatum(webhook_retry_base_ms);
	values[3] = Int32GetDatum(webhook_max_attempts);

	if (SPI_execute_with_args("SELECT c.delivery_id, c.endpoint_id, c.attempt, c.url, c.msg_id,"
							  "       c.msg_timestamp, c.body, c.secrets"
							  "  FROM subbilling_internal.webhook_claim($1, $2, $3, $4) AS c",
							  4, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not claim webhook deliveries");

	for (row = 0; row < SPI_processed; row++)
	{
		HeapTuple	tup = SPI_tuptable->vals[row];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Transfer   *t;
		char	   *url;
		char	   *msg_id;
		int64		ts;
		char	   *body;
		Datum		secrets;

		while (slot < WEBHOOK_MAX_CONCURRENCY && transfers[slot].in_use)
			slot++;
		if (slot >= WEBHOOK_MAX_CONCURRENCY)
			elog(ERROR, "no free webhook request slot");
		t = &transfers[slot];

		url = SPI_getvalue(tup, desc, 4);
		msg_id = SPI_getvalue(tup, desc, 5);
		ts = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
		body = SPI_getvalue(tup, desc, 7);
		secrets = SPI_getbinval(tup, desc, 8, &isnull);
		if (body == NULL)
			elog(ERROR, "webhook delivery of a missing event");

		memset(t, 0, sizeof(*t));
		t->delivery_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		t->endpoint_id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		t->attempt = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		transfer_prepare(t, url, msg_id, ts, body, secrets);
		t->in_use = true;
		n_in_flight++;
	}
}

/*
 * Builds a request: URL, body and headers, signed with every secret.
 * Called inside the transaction (the HMAC needs a resource owner); the
 * copies live in TopMemoryContext until the result is recorded.
 */
static void
transfer_prepare(Transfer *t, const char *url, const char *msg_id, int64 ts,
				 const char *body, Datum secrets_datum)
{
	ArrayType  *arr = DatumGetArrayTypeP(secrets_datum);
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	StringInfoData sig;
	char		header[256];
	int			i;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &nelems);

	t->url = MemoryContextStrdup(TopMemoryContext, url);
	t->body = MemoryContextStrdup(TopMemoryContext, body);
	t->body_len = strlen(body);

	initStringInfo(&sig);
	appendStringInfoString(&sig, "webhook-signature: ");
	for (i = 0; i < nelems; i++)
	{
		char		one[WEBHOOK_SIGNATURE_LEN];
		const char *error = NULL;
		char	   *secret;

		if (nulls[i])
			continue;
		secret = TextDatumGetCString(elems[i]);
		if (!webhook_sign(secret, msg_id, ts, t->body, t->body_len, one, &error))
			elog(ERROR, "webhook endpoint " INT64_FORMAT " has an invalid secret: %s",
				 t->endpoint_id, error);
		if (i > 0)
			appendStringInfoChar(&sig, ' ');
		appendStringInfoString(&sig, one);
	}

	/* curl_slist_append copies the strings (malloc) */
	t->headers = curl_slist_append(t->headers, "Content-Type: application/json");
	snprintf(header, sizeof(header), "webhook-id: %s", msg_id);
	t->headers = curl_slist_append(t->headers, header);
	snprintf(header, sizeof(header), "webhook-timestamp: " INT64_FORMAT, ts);
	t->headers = curl_slist_append(t->headers, header);
	t->headers = curl_slist_append(t->headers, sig.data);
	t->headers = curl_slist_append(t->headers, "User-Agent: subbilling-webhooks");
	/* no "Expect: 100-continue" round trip for larger bodies */
	t->headers = curl_slist_append(t->headers, "Expect:");
	if (t->headers == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	pfree(sig.data);
}

static void
transfer_start(Transfer *t)
{
	CURL	   *e = curl_easy_init();
	long		timeout = webhook_timeout_ms;

	t->started = GetCurrentTimestamp();
	t->errbuf[0] = '\0';
	if (e == NULL)
	{
		t->easy = NULL;
		t->error = MemoryContextStrdup(TopMemoryContext, "could not create a libcurl handle");
		t->done = true;
		n_done++;
		/* mark as started so that it is not started again */
		t->easy = (CURL *) -1;
		return;
	}
	t->easy = e;
	curl_easy_setopt(e, CURLOPT_URL, t->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) t->body_len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, (void *) t);
	if (curl_multi_add_handle(multi, e) != CURLM_OK)
	{
		t->error = MemoryContextStrdup(TopMemoryContext, "could not start the request (libcurl)");
		t->done = true;
		n_done++;
	}
}

static size_t
discard_body(char *ptr pg_attribute_unused(), size_t size, size_t nmemb,
			 void *userdata pg_attribute_unused())
{
	return size * nmemb;
}

/*
 * Drives the requests and notes the finished ones.
 */
static void
webhook_collect(void)
{
	int			running;
	int			queued;
	CURLMsg    *msg;

	(void) curl_multi_perform(multi, &running);
	while ((msg = curl_multi_info_read(multi, &queued)) != NULL)
	{
		Transfer   *t = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
		if (t == NULL)
			continue;
		t->duration_ms = (double) (GetCurrentTimestamp() - t->started) / 1000.0;
		if (msg->data.result == CURLE_OK)
		{
			long		code = 0;

			curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
			t->status_code = code;
		}
		else
		{
			const char *e = t->errbuf[0] ? t->errbuf : curl_easy_strerror(msg->data.result);

			t->error = MemoryContextStrdup(TopMemoryContext, e);
			if (strlen(t->error) > WEBHOOK_MAX_ERROR)
				t->error[WEBHOOK_MAX_ERROR] = '\0';
		}
		t->done = true;
		n_done++;
	}
}

/*
 * Frees a request slot.
 */
static void
transfer_release(Transfer *t)
{
	if (t->easy != NULL && t->easy != (CURL *) -1)
	{
		curl_multi_remove_handle(multi, t->easy);
		curl_easy_cleanup(t->easy);
	}
	if (t->headers)
		curl_slist_free_all(t->headers);
	if (t->url)
		pfree(t->url);
	if (t->body)
		pfree(t->body);
	if (t->error)
		pfree(t->error);
	memset(t, 0, sizeof(*t));
	n_in_flight--;
}
