/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The subbilling background worker, its settings and the SQL functions
 *	  that talk to it.
 *
 * One worker per cluster, registered when the library is preloaded.  It
 * connects to subbilling.database and, every subbilling.naptime seconds
 * (or at once when subbilling.wake_worker() asks), runs one cycle:
 *
 *	 (a) a short transaction that inserts a subbilling.worker_runs row;
 *	 (b) subbilling.advance_subscriptions(as_of::date) in its own
 *		 transaction, then subbilling.schedule_deliveries(as_of::date) in
 *		 another (deliveries entering the pick window: delivery.scheduled);
 *	 (c) subbilling.run_billing_batch(batch_size, as_of), one transaction
 *		 per batch, until a batch reports no more due work;
 *	 (d) the same with subbilling.run_dunning_batch(batch_size, as_of::date);
 *	 (e) a short transaction that completes the worker_runs row.
 *
 * as_of is fixed for the whole cycle: the time the run row was written.
 *
 * The cycle is written once, here.  subbilling.run_worker_cycle() runs the
 * same steps (b) to (e) in the caller's transaction, and run_billing() and
 * run_dunning() run the same batch loop as (c) and (d); see
 * "The cycle in the caller's transaction" below.
 *
 * An ERROR escaping any step is caught here: it is written to the server
 * log, the transaction is aborted, and the run row is completed with status
 * 'error', the SQLSTATE and the message in a new transaction.  The worker
 * then sleeps as usual; it does not exit, so a persistent error does not
 * turn into a restart loop.  Batches already committed stay committed.
 *
 * Signals: SIGHUP reloads the configuration (between batches or while
 * sleeping); SIGTERM is handled by die(), so a batch in progress is
 * cancelled and rolled back at once and the process ends.  A run row left
 * 'running' by such an exit is marked as failed by the next cycle.  SIGINT
 * (pg_cancel_backend) cancels the statement in progress, which is handled
 * like any other ERROR.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "worker.h"

/* Settings */
char	   *subbilling_database = NULL;
int			subbilling_naptime = 60;
int			subbilling_batch_size = 1000;
bool		subbilling_worker_enabled = true;
bool		subbilling_notify = true;
static char *subbilling_current_run_id = NULL;
static int	subbilling_kpi_refresh_interval = 60;

/*
 * subbilling.kpi_read: how the MRR views read their monthly snapshots.  The
 * views read it with current_setting('subbilling.kpi_read', true), so they
 * work without the library too; defining it here makes a wrong value an
 * error when it is set.
 */
typedef enum KpiReadMode
{
	KPI_READ_EXACT,
	KPI_READ_SNAPSHOT
}			KpiReadMode;

static const struct config_enum_entry kpi_read_options[] = {
	{"exact", KPI_READ_EXACT, false},
	{"snapshot", KPI_READ_SNAPSHOT, false},
	{NULL, 0, false}
};

static int	subbilling_kpi_read = KPI_READ_EXACT;

/*
 * What the worker shares with the sessions that want to wake it.  Lives in
 * shared memory when the library is preloaded; worker_shared stays NULL in
 * a server that did not preload the library.
 */
typedef struct WorkerShared
{
	slock_t		mutex;			/* protects the fields below */
	pid_t		pid;			/* the running worker, 0 if none */
	Oid			database;		/* database it is connected to */
	bool		enabled;		/* its subbilling.worker_enabled */
	bool		wake_pending;	/* a session asked for a cycle */
	Latch	   *latch;			/* its process latch */
} WorkerShared;

static WorkerShared *worker_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * The cycle in progress.  Static rather than local, so that the values
 * survive the longjmp of an ERROR and can be recorded on the run row.
 */
typedef struct WorkerCycle
{
	bool		in_progress;	/* inside worker_cycle() */
	bool		own_xacts;		/* the worker: one transaction per step */
	MemoryContext note_context; /* where note is allocated */
	int64		run_id;			/* worker_runs.id, 0 before it exists */
	TimestampTz as_of;			/* the cycle's billing time */
	Oid			as_of_type;		/* as passed on to the steps: timestamptz, */
	Datum		as_of_arg;		/* or run_dunning()'s date, */
	bool		as_of_null;		/* or SQL NULL (the steps say what is wrong) */
	int			batch_size;		/* batch size when the cycle started */
	int64		batches;		/* batch transactions committed */
	int64		invoices;
	int64		errors;
	int64		dunning_steps;
	int64		transitions;
	bool		stopped;		/* a configuration change ended it early */
	const char *note;			/* message for an early end, else NULL */
} WorkerCycle;

static WorkerCycle cycle;

/* Longest single sleep of the worker (it then re-checks and sleeps on) */
#define MAX_SLEEP_MS	(3600L * 1000L)

/* Worker process state */
static MemoryContext cycle_context = NULL;
static char *connected_database = NULL;
static bool database_changed = false;
static bool extension_missing_logged = false;
static TimestampTz last_cycle_end = 0;
static TimestampTz next_cycle = 0;
static TimestampTz last_kpi_refresh = 0;
/* the citus extension in the database: looked up in each cycle's first transaction */
static bool cycle_on_citus = false;

/* SQL run by the worker; every object is schema-qualified */
static const char *const sql_mark_interrupted =
"UPDATE subbilling.worker_runs"
"   SET status = 'error', finished_at = pg_catalog.now(),"
"       message = 'run interrupted: the worker exited before finishing it'"
" WHERE status = 'running' AND origin = 'worker'";

static const char *const sql_start_run =
"INSERT INTO subbilling.worker_runs (origin, pid, started_at, as_of, batch_size, status)"
" VALUES ('worker', $1, pg_catalog.now(), pg_catalog.now(), $2, 'running')"
" RETURNING id, as_of";

static const char *const sql_advance =
"SELECT coalesce(subbilling.advance_subscriptions(($1)::date), 0)::int8";

static const char *const sql_deliveries =
"SELECT coalesce(subbilling.schedule_deliveries(($1)::date), 0)::int8";

static const char *const sql_billing_batch =
"SELECT coalesce(pg_catalog.sum(b.invoices), 0)::int8,"
"       coalesce(pg_catalog.sum(b.errors), 0)::int8,"
"       coalesce(pg_catalog.bool_or(b.more), false)"
"  FROM subbilling.run_billing_batch($1, $2) AS b";

static const char *const sql_dunning_batch =
"SELECT coalesce(pg_catalog.sum(d.steps), 0)::int8,"
"       coalesce(pg_catalog.sum(d.errors), 0)::int8,"
"       coalesce(pg_catalog.bool_or(d.more), false)"
"  FROM subbilling.run_dunning_batch($1, ($2)::date) AS d";

static const char *const sql_start_sql_run =
"INSERT INTO subbilling.worker_runs AS r (origin, pid, as_of, batch_size, status)"
" VALUES ('sql', $1, $2, $3, 'running')"
" RETURNING r.id";

static const char *const sql_finish_run =
"UPDATE subbilling.worker_runs"
"   SET finished_at = $8, status = 'ok', batches = $2, invoices = $3,"
"       errors = $4, dunning_steps = $5, transitions = $6, message = $7"
" WHERE id = $1";

/* the KPI snapshots: the marked accounts, or everything once a day */
static const char *const sql_kpi_refresh =
"SELECT subbilling.refresh_kpi_snapshots(true)";

/* on Citus with subbilling.notify off: the events announced from the coordinator */
static const char *const sql_relay_events =
"SELECT subbilling_internal.worker_relay_events()";

/* run_worker_cycle() sets current_run_id for its transaction only */
static const char *const sql_set_local_run_id =
"SELECT pg_catalog.set_config('subbilling.current_run_id', $1, true)";

/*
 * Completes the failed run's row, or writes one if the failure came before
 * the row was committed.
 */
static const char *const sql_fail_run =
"WITH u AS ("
"  UPDATE subbilling.worker_runs"
"     SET finished_at = pg_catalog.now(), status = 'error', batches = $2, invoices = $3,"
"         errors = $4, dunning_steps = $5, transitions = $6, sqlstate = $7,"
"         message = $8, detail = $9"
"   WHERE id = $1"
"  RETURNING id)"
" INSERT INTO subbilling.worker_runs (origin, pid, started_at, as_of, finished_at,"
"        batch_size, batches, invoices, errors, dunning_steps, transitions,"
"        status, sqlstate, message, detail)"
" SELECT 'worker', $10, pg_catalog.now(), coalesce($11, pg_catalog.now()), pg_catalog.now(),"
"        $12, $2, $3, $4, $5, $6, 'error', $7, $8, $9"
"  WHERE NOT EXISTS (SELECT FROM u)";

PG_FUNCTION_INFO_V1(subbilling_wake_worker);
PG_FUNCTION_INFO_V1(subbilling_worker_config);
PG_FUNCTION_INFO_V1(subbilling_run_worker_cycle);
PG_FUNCTION_INFO_V1(subbilling_run_billing);
PG_FUNCTION_INFO_V1(subbilling_run_dunning);

static bool check_database_setting(char **newval, void **extra, GucSource source);
static void worker_shmem_request(void);
static void worker_shmem_startup(void);
static void worker_publish(void);
static void worker_detach(int code, Datum arg);
static bool worker_wake_requested(void);
static bool worker_take_wake_request(void);
static void worker_reload(void);
static void worker_iteration(void);
static void worker_recover(void);
static void worker_cycle(void);
static void worker_kpi_refresh(void);
static void worker_relay_events(void);
static bool cycle_start(void);
static void cycle_init(WorkerCycle *c, bool own_xacts, MemoryContext note_context);
static void cycle_steps(WorkerCycle *c);
static void cycle_deliveries(WorkerCycle *c);
static void cycle_advance(WorkerCycle *c);
static void cycle_batches(WorkerCycle *c, bool dunning);
static void replan_as_tables_grow(int64 work);
static void cycle_finish(WorkerCycle *c);
static void cycle_add_note(WorkerCycle *c, const char *note);
static void cycle_record_failure(ErrorData *edata);
static void step_begin(WorkerCycle *c, const char *activity);
static void step_end(WorkerCycle *c);
static void xact_begin(const char *activity);
static void xact_commit(void);
static void set_run_id(WorkerCycle *c, const char *value);
static void spi_run(const char *sql, int nargs, Oid *argtypes, Datum *values,
					const char *nulls, int expected);
static Datum spi_value(int column, bool *isnull);
static int32 clamp_int32(int64 value);

/*
 * Defines every setting of the worker.  Called by _PG_init in every process
 * that loads the library, preloaded or not.
 */
void
subbilling_worker_define_gucs(void)
{
	DefineCustomStringVariable("subbilling.database",
							   gettext_noop("Database the subbilling background worker connects to."),
							   gettext_noop("When it changes at a reload, the worker exits and the postmaster "
											"starts it again in the new database."),
							   &subbilling_database,
							   "postgres",
							   PGC_SIGHUP,
							   0,
							   check_database_setting, NULL, NULL);

	DefineCustomIntVariable("subbilling.naptime",
							gettext_noop("Time the subbilling background worker sleeps between two cycles."),
							NULL,
							&subbilling_naptime,
							60, 1, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("subbilling.batch_size",
							gettext_noop("Largest number of due items one billing or dunning batch handles."),
							gettext_noop("Each batch is one transaction."),
							&subbilling_batch_size,
							1000, 1, 1000000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("subbilling.worker_enabled",
							 gettext_noop("Whether the subbilling background worker runs billing and dunning."),
							 gettext_noop("When off, the worker stays connected but idle."),
							 &subbilling_worker_enabled,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("subbilling.notify",
							 gettext_noop("Whether events are announced with pg_notify in the transaction that writes them."),
							 gettext_noop("Turn off when a relay reading subbilling.events announces them instead."),
							 &subbilling_notify,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("subbilling.kpi_refresh_interval",
							gettext_noop("Least time between two refreshes of the KPI snapshots by the subbilling background worker."),
							gettext_noop("After a cycle the worker runs refresh_kpi_snapshots(true) when this long has passed "
										 "since the last one; 0 turns it off."),
							&subbilling_kpi_refresh_interval,
							60, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("subbilling.kpi_read",
							 gettext_noop("How the MRR views read the KPI snapshots: exact or snapshot."),
							 gettext_noop("exact gives the definition's figures, computed live where the snapshot "
										  "is of an earlier day or accounts changed since; snapshot gives the latest "
										  "snapshot's figures as they are (see kpi_snapshot_status)."),
							 &subbilling_kpi_read,
							 KPI_READ_EXACT,
							 kpi_read_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("subbilling.current_run_id",
							   gettext_noop("Id of the subbilling.worker_runs row of the run in progress."),
							   gettext_noop("Set by the worker and by subbilling.run_worker_cycle(); "
											"read it with subbilling.current_run_id()."),
							   &subbilling_current_run_id,
							   "",
							   PGC_USERSET,
							   GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   NULL, NULL, NULL);
}

/*
 * subbilling.database must name something that can be a database.
 */
static bool
check_database_setting(char **newval, void **extra pg_attribute_unused(),
					   GucSource source pg_attribute_unused())
{
	if (*newval == NULL || (*newval)[0] == '\0')
	{
		GUC_check_errdetail("subbilling.database must name a database.");
		return false;
	}
	if (strlen(*newval) >= NAMEDATALEN)
	{
		GUC_check_errdetail("Database names are at most %d bytes long.", NAMEDATALEN - 1);
		return false;
	}
	return true;
}

/*
 * Registers the worker and its shared memory.  Only called while
 * shared_preload_libraries is being processed.
 */
void
subbilling_worker_register(void)
{
	BackgroundWorker worker;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = worker_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = worker_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "subbilling");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "subbilling_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "subbilling worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "subbilling worker");
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = 0;

	RegisterBackgroundWorker(&worker);
}

static void
worker_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	RequestAddinShmemSpace(MAXALIGN(sizeof(WorkerShared)));
}

static void
worker_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	worker_shared = ShmemInitStruct("subbilling worker", sizeof(WorkerShared), &found);
	if (!found)
	{
		memset(worker_shared, 0, sizeof(WorkerShared));
		SpinLockInit(&worker_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Tells sessions where the worker is.
 */
static void
worker_publish(void)
{
	SpinLockAcquire(&worker_shared->mutex);
	worker_shared->pid = MyProcPid;
	worker_shared->database = MyDatabaseId;
	worker_shared->enabled = subbilling_worker_enabled;
	worker_shared->wake_pending = false;
	worker_shared->latch = MyLatch;
	SpinLockRelease(&worker_shared->mutex);
}

/*
 * Process exit callback: the worker is gone.
 */
static void
worker_detach(int code pg_attribute_unused(), Datum arg pg_attribute_unused())
{
	SpinLockAcquire(&worker_shared->mutex);
	if (worker_shared->pid == MyProcPid)
	{
		worker_shared->pid = 0;
		worker_shared->database = InvalidOid;
		worker_shared->wake_pending = false;
		worker_shared->latch = NULL;
	}
	SpinLockRelease(&worker_shared->mutex);
}

/*
 * Whether a session asked for a cycle, leaving the request in place.
 */
static bool
worker_wake_requested(void)
{
	bool		pending;

	SpinLockAcquire(&worker_shared->mutex);
	pending = worker_shared->wake_pending;
	SpinLockRelease(&worker_shared->mutex);

	return pending;
}

/*
 * Returns whether a session asked for a cycle since the last call.
 */
static bool
worker_take_wake_request(void)
{
	bool		pending;

	SpinLockAcquire(&worker_shared->mutex);
	pending = worker_shared->wake_pending;
	worker_shared->wake_pending = false;
	SpinLockRelease(&worker_shared->mutex);

	return pending;
}

/*
 * Entry point of the background worker.
 */
void
subbilling_worker_main(Datum main_arg pg_attribute_unused())
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (worker_shared == NULL)
		elog(FATAL, "subbilling worker started without its shared memory");

	BackgroundWorkerInitializeConnection(subbilling_database, NULL, 0);
	connected_database = MemoryContextStrdup(TopMemoryContext, subbilling_database);
	pgstat_report_appname("subbilling worker");

	worker_publish();
	before_shmem_exit(worker_detach, (Datum) 0);

	cycle_context = AllocSetContextCreate(TopMemoryContext,
										  "subbilling worker cycle",
										  ALLOCSET_DEFAULT_SIZES);

	ereport(LOG,
			(errmsg("subbilling worker started in database \"%s\"", connected_database),
			 errdetail("naptime %d s, batch size %d, %s.", subbilling_naptime,
					   subbilling_batch_size,
					   subbilling_worker_enabled ? "enabled" : "disabled")));

	/* The first cycle runs at once; later ones naptime after the last. */
	last_cycle_end = GetCurrentTimestamp();
	next_cycle = last_cycle_end;

	for (;;)
	{
		long		timeout;

		MemoryContextSwitchTo(cycle_context);
		MemoryContextReset(cycle_context);

		PG_TRY();
		{
			worker_iteration();
		}
		PG_CATCH();
		{
			worker_recover();
		}
		PG_END_TRY();

		if (database_changed)
		{
			ereport(LOG,
					(errmsg("subbilling worker: subbilling.database changed from \"%s\" to \"%s\", exiting to be restarted there",
							connected_database, subbilling_database)));
			proc_exit(1);
		}

		/*
		 * Sleep until the next cycle is due.  A wake-up request or a SIGHUP
		 * that came during the cycle may have had its latch consumed by a
		 * wait inside a batch (a lock wait, say), so look at the flags too.
		 * The wait is capped so that the int timeout of the wait primitives
		 * never overflows with a huge naptime; waking early is harmless.
		 */
		timeout = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_cycle);
		timeout = Min(timeout, MAX_SLEEP_MS);
		if (timeout > 0 && !ConfigReloadPending && !worker_wake_requested())
		{
			(void) WaitLatch(MyLatch,
							 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 timeout,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
}

/*
 * One turn of the main loop: interrupts, configuration, and a cycle when
 * one is due or was asked for.
 */
static void
worker_iteration(void)
{
	bool		wake;

	CHECK_FOR_INTERRUPTS();

	if (ConfigReloadPending)
		worker_reload();
	if (database_changed)
		return;

	wake = worker_take_wake_request();
	if (!wake && GetCurrentTimestamp() < next_cycle)
		return;

	if (subbilling_worker_enabled)
	{
		worker_cycle();
		/* flush this cycle's statistics before going to sleep */
		pgstat_report_stat(true);
	}

	last_cycle_end = GetCurrentTimestamp();
	next_cycle = TimestampTzPlusMilliseconds(last_cycle_end,
											 (int64) subbilling_naptime * 1000);
}

/*
 * Reloads the configuration file and applies what changed.  Called while
 * sleeping and between batches, never inside a transaction.
 */
static void
worker_reload(void)
{
	int			old_naptime = subbilling_naptime;
	int			old_batch_size = subbilling_batch_size;
	bool		old_enabled = subbilling_worker_enabled;

	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);

	if (strcmp(subbilling_database, connected_database) != 0)
		database_changed = true;

	if (subbilling_naptime != old_naptime)
	{
		ereport(LOG,
				(errmsg("subbilling worker: naptime is now %d s", subbilling_naptime)));
		next_cycle = TimestampTzPlusMilliseconds(last_cycle_end,
												 (int64) subbilling_naptime * 1000);
	}

	if (subbilling_batch_size != old_batch_size)
		ereport(LOG,
				(errmsg("subbilling worker: batch size is now %d", subbilling_batch_size)));

	if (subbilling_worker_enabled != old_enabled)
	{
		ereport(LOG,
				(errmsg("subbilling worker: %s",
						subbilling_worker_enabled ? "enabled" : "disabled")));
		/* switched on: do not wait for the rest of the naptime */
		if (subbilling_worker_enabled)
			next_cycle = GetCurrentTimestamp();
	}

	SpinLockAcquire(&worker_shared->mutex);
	worker_shared->enabled = subbilling_worker_enabled;
	SpinLockRelease(&worker_shared->mutex);
}

/*
 * Error recovery of the main loop: report the error, abort whatever
 * transaction was open, record the failure on the run row, and carry on.
 * Runs in the PG_CATCH block, so CurrentMemoryContext is ErrorContext.
 */
static void
worker_recover(void)
{
	ErrorData  *edata;
	bool		record;

	HOLD_INTERRUPTS();

	/* CopyErrorData must not run in ErrorContext */
	MemoryContextSwitchTo(cycle_context);
	edata = CopyErrorData();

	EmitErrorReport();
	AbortOutOfAnyTransaction();
	MemoryContextSwitchTo(cycle_context);
	FlushErrorState();
	pgstat_report_activity(STATE_IDLE, NULL);

	RESUME_INTERRUPTS();

	record = cycle.in_progress;
	cycle.in_progress = false;

	if (record)
	{
		PG_TRY();
		{
			cycle_record_failure(edata);
		}
		PG_CATCH();
		{
			HOLD_INTERRUPTS();
			EmitErrorReport();
			AbortOutOfAnyTransaction();
			MemoryContextSwitchTo(cycle_context);
			FlushErrorState();
			pgstat_report_activity(STATE_IDLE, NULL);
			RESUME_INTERRUPTS();
			ereport(WARNING,
					(errmsg("subbilling worker: could not record the failed run in subbilling.worker_runs")));
		}
		PG_END_TRY();
	}

	/* sleep a full naptime before trying again */
	last_cycle_end = GetCurrentTimestamp();
	next_cycle = TimestampTzPlusMilliseconds(last_cycle_end,
											 (int64) subbilling_naptime * 1000);
}

/*
 * One cycle: run row, dated transitions, billing batches, dunning batches,
 * run row completed.
 */
static void
worker_cycle(void)
{
	cycle_init(&cycle, true, cycle_context);
	cycle.in_progress = true;

	if (cycle_start())
	{
		cycle_steps(&cycle);
		cycle_finish(&cycle);
		cycle.in_progress = false;
		if (!cycle.stopped)
		{
			worker_kpi_refresh();
			worker_relay_events();
		}
	}

	cycle.in_progress = false;
}

/*
 * After a cycle: the marked accounts' KPI snapshots (first thing after
 * midnight the months from the snapshot's boundary month on; the whole
 * snapshots when there are none or they are of another time zone), when
 * subbilling.kpi_refresh_interval has
 * passed since the last refresh.  Not part of the run: a failure is logged
 * and the next cycle tries again.
 */
static void
worker_kpi_refresh(void)
{
	TimestampTz now = GetCurrentTimestamp();

	if (subbilling_kpi_refresh_interval <= 0)
		return;
	if (last_kpi_refresh != 0 &&
		!TimestampDifferenceExceeds(last_kpi_refresh, now,
									(int) Min((int64) subbilling_kpi_refresh_interval * 1000, (int64) PG_INT32_MAX)))
		return;
	last_kpi_refresh = now;
	xact_begin("subbilling worker: refreshing the KPI snapshots");
	spi_run(sql_kpi_refresh, 0, NULL, NULL, NULL, SPI_OK_SELECT);
	xact_commit();
}

/*
 * After a cycle, on Citus only (the citus extension in the database, as
 * cycle_start found it in the cycle's first transaction): the events relay
 * (relay_events, when subbilling.notify is off), so that the coordinator's
 * listeners hear of the events the workers' shards hold.  On one server
 * nothing is run and no transaction is opened.  Not part of the run, like the
 * KPI refresh.
 */
static void
worker_relay_events(void)
{
	if (!cycle_on_citus)
		return;
	xact_begin("subbilling worker: relaying events");
	spi_run(sql_relay_events, 0, NULL, NULL, NULL, SPI_OK_SELECT);
	xact_commit();
}

static void
cycle_init(WorkerCycle *c, bool own_xacts, MemoryContext note_context)
{
	memset(c, 0, sizeof(*c));
	c->own_xacts = own_xacts;
	c->note_context = note_context;
	c->batch_size = subbilling_batch_size;
	c->as_of_type = TIMESTAMPTZOID;
}

/*
 * Steps (b) to (d), for the worker and for run_worker_cycle() alike.
 */
static void
cycle_steps(WorkerCycle *c)
{
	cycle_advance(c);
	cycle_deliveries(c);
	cycle_batches(c, false);
	if (!c->stopped)
		cycle_batches(c, true);
}

/*
 * Step (a): checks that the extension is installed, marks runs left
 * 'running' by a previous worker process as failed, and writes this run's
 * row.  Returns false (and does nothing) without the extension.
 */
static bool
cycle_start(void)
{
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		values[2];
	bool		isnull;
	char		idbuf[32];

	xact_begin("subbilling worker: starting a run");

	if (!OidIsValid(get_extension_oid("subbilling", true)))
	{
		if (!extension_missing_logged)
			ereport(LOG,
					(errmsg("subbilling worker: extension \"subbilling\" is not installed in database \"%s\", waiting for it",
							connected_database)));
		extension_missing_logged = true;
		xact_commit();
		return false;
	}
	if (extension_missing_logged)
	{
		ereport(LOG,
				(errmsg("subbilling worker: extension \"subbilling\" found in database \"%s\"",
						connected_database)));
		extension_missing_logged = false;
	}
	/* for the events relay after the cycle (worker_relay_events) */
	cycle_on_citus = OidIsValid(get_extension_oid("citus", true));

	spi_run(sql_mark_interrupted, 0, NULL, NULL, NULL, SPI_OK_UPDATE);
	if (SPI_processed > 0)
		ereport(LOG,
				(errmsg("subbilling worker: marked %llu interrupted run(s) as failed",
						(unsigned long long) SPI_processed)));

	values[0] = Int32GetDatum(MyProcPid);
	values[1] = Int32GetDatum(cycle.batch_size);
	spi_run(sql_start_run, 2, argtypes, values, NULL, SPI_OK_INSERT_RETURNING);
	cycle.run_id = DatumGetInt64(spi_value(1, &isnull));
	cycle.as_of = DatumGetTimestampTz(spi_value(2, &isnull));
	cycle.as_of_arg = TimestampTzGetDatum(cycle.as_of);

	snprintf(idbuf, sizeof(idbuf), INT64_FORMAT, cycle.run_id);
	set_run_id(&cycle, idbuf);

	xact_commit();
	return true;
}

/*
 * Step (b): dated subscription transitions.
 */
static void
cycle_advance(WorkerCycle *c)
{
	Oid			argtypes[1] = {c->as_of_type};
	Datum		values[1] = {c->as_of_arg};
	char		nulls[1] = {c->as_of_null ? 'n' : ' '};
	bool		isnull;

	step_begin(c, "subbilling worker: advancing subscriptions");
	spi_run(sql_advance, 1, argtypes, values, nulls, SPI_OK_SELECT);
	c->transitions += DatumGetInt64(spi_value(1, &isnull));
	step_end(c);
}

/*
 * Step (b), second part: deliveries entering the pick window are fixed and
 * announced (delivery.scheduled), once each.
 */
static void
cycle_deliveries(WorkerCycle *c)
{
	Oid			argtypes[1] = {c->as_of_type};
	Datum		values[1] = {c->as_of_arg};
	char		nulls[1] = {c->as_of_null ? 'n' : ' '};

	step_begin(c, "subbilling worker: scheduling deliveries");
	spi_run(sql_deliveries, 1, argtypes, values, nulls, SPI_OK_SELECT);
	step_end(c);
}

/*
 * Steps (c) and (d): billing or dunning batches until a batch says there is
 * no more due work; the only such loop of the product.  The worker commits
 * each batch; in the caller's transaction they all run in it.  Stops early
 * when a batch claims more work but did none (which would otherwise loop
 * for ever), on cancel or shutdown (CHECK_FOR_INTERRUPTS), and, in the
 * worker, when it is switched off or moved to another database.
 */
static void
cycle_batches(WorkerCycle *c, bool dunning)
{
	const char *kind = dunning ? "dunning" : "billing";

	for (;;)
	{
		Oid			argtypes[2] = {INT4OID, c->as_of_type};
		Datum		values[2] = {Int32GetDatum(subbilling_batch_size), c->as_of_arg};
		char		nulls[2] = {' ', c->as_of_null ? 'n' : ' '};
		bool		isnull;
		int64		done;
		int64		failed;
		bool		more;

		step_begin(c, dunning ? "subbilling worker: dunning batch" : "subbilling worker: billing batch");
		spi_run(dunning ? sql_dunning_batch : sql_billing_batch,
				2, argtypes, values, nulls, SPI_OK_SELECT);
		done = DatumGetInt64(spi_value(1, &isnull));
		failed = DatumGetInt64(spi_value(2, &isnull));
		more = DatumGetBool(spi_value(3, &isnull));
		step_end(c);

		c->batches++;
		if (dunning)
			c->dunning_steps += done;
		else
			c->invoices += done;
		c->errors += failed;
		if (c->own_xacts)
			replan_as_tables_grow(done + failed);

		if (!more)
			break;

		if (done == 0 && failed == 0)
		{
			if (c->own_xacts)
				ereport(WARNING,
						(errmsg("subbilling worker: a %s batch reported more due work but handled none", kind),
						 errdetail("The %s phase of run " INT64_FORMAT " ends here; the next cycle tries again.",
								   kind, c->run_id)));
			else
				ereport(WARNING,
						(errmsg("subbilling: a %s batch reported more due work but handled none", kind)));
			cycle_add_note(c, psprintf("%s stopped: a batch reported more due work but handled none", kind));
			break;
		}

		CHECK_FOR_INTERRUPTS();
		if (!c->own_xacts)
			continue;
		if (ConfigReloadPending)
			worker_reload();
		if (!subbilling_worker_enabled || database_changed)
		{
			c->stopped = true;
			cycle_add_note(c, "cycle ended early by a configuration change");
			break;
		}
	}
}

/*
 * Adds a sentence to the message of an ok run that ended a phase early.
 * Allocated in note_context, which lives until the run row is written.
 */
static void
cycle_add_note(WorkerCycle *c, const char *note)
{
	MemoryContext old = MemoryContextSwitchTo(c->note_context);

	c->note = c->note ? psprintf("%s; %s", c->note, note) : pstrdup(note);
	MemoryContextSwitchTo(old);
}

/*
 * Step (e): the run row gets its counts and status 'ok'.
 */
static void
cycle_finish(WorkerCycle *c)
{
	Oid			argtypes[8] = {INT8OID, INT4OID, INT4OID, INT4OID, INT4OID, INT4OID, TEXTOID,
	TIMESTAMPTZOID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	int64		work;

	values[0] = Int64GetDatum(c->run_id);
	values[1] = Int32GetDatum(clamp_int32(c->batches));
	values[2] = Int32GetDatum(clamp_int32(c->invoices));
	values[3] = Int32GetDatum(clamp_int32(c->errors));
	values[4] = Int32GetDatum(clamp_int32(c->dunning_steps));
	values[5] = Int32GetDatum(clamp_int32(c->transitions));
	if (c->note != NULL)
		values[6] = CStringGetTextDatum(c->note);
	else
	{
		values[6] = (Datum) 0;
		nulls[6] = 'n';
	}

	/*
	 * the clock read here, not by clock_timestamp() in the UPDATE: on Citus
	 * (worker_runs a reference table) an UPDATE may not call a volatile
	 * function
	 */
	values[7] = TimestampTzGetDatum(GetCurrentTimestamp());

	step_begin(c, "subbilling worker: finishing a run");
	spi_run(sql_finish_run, 8, argtypes, values, nulls, SPI_OK_UPDATE);
	set_run_id(c, "");
	step_end(c);

	if (!c->own_xacts)
		return;

	work = c->invoices + c->errors + c->dunning_steps + c->transitions;
	ereport(work > 0 ? LOG : DEBUG1,
			(errmsg_internal("subbilling worker: run " INT64_FORMAT " done: " INT64_FORMAT
							 " invoices, " INT64_FORMAT " errors, " INT64_FORMAT
							 " dunning steps, " INT64_FORMAT " transitions in "
							 INT64_FORMAT " batches",
							 c->run_id, c->invoices, c->errors,
							 c->dunning_steps, c->transitions, c->batches)));
}

/*
 * Writes a failure on the run row, in a new transaction.  The counts are
 * those of the batches committed before the error.
 */
static void
cycle_record_failure(ErrorData *edata)
{
	Oid			argtypes[12] = {INT8OID, INT4OID, INT4OID, INT4OID, INT4OID, INT4OID,
	TEXTOID, TEXTOID, TEXTOID, INT4OID, TIMESTAMPTZOID, INT4OID};
	Datum		values[12];
	char		nulls[12];

	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(cycle.run_id);
	values[1] = Int32GetDatum(clamp_int32(cycle.batches));
	values[2] = Int32GetDatum(clamp_int32(cycle.invoices));
	values[3] = Int32GetDatum(clamp_int32(cycle.errors));
	values[4] = Int32GetDatum(clamp_int32(cycle.dunning_steps));
	values[5] = Int32GetDatum(clamp_int32(cycle.transitions));
	values[6] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
	values[7] = CStringGetTextDatum(edata->message ? edata->message : "unknown error");
	if (edata->detail != NULL)
		values[8] = CStringGetTextDatum(edata->detail);
	else
	{
		values[8] = (Datum) 0;
		nulls[8] = 'n';
	}
	values[9] = Int32GetDatum(MyProcPid);
	if (cycle.as_of != 0)
		values[10] = TimestampTzGetDatum(cycle.as_of);
	else
	{
		values[10] = (Datum) 0;
		nulls[10] = 'n';
	}
	values[11] = Int32GetDatum(cycle.batch_size);

	xact_begin("subbilling worker: recording a failed run");
	spi_run(sql_fail_run, 12, argtypes, values, nulls, SPI_OK_INSERT);
	SetConfigOption("subbilling.current_run_id", "", PGC_USERSET, PGC_S_SESSION);
	xact_commit();

	ereport(LOG,
			(errmsg("subbilling worker: run " INT64_FORMAT " failed with SQLSTATE %s, next attempt in %d s",
					cycle.run_id, unpack_sql_state(edata->sqlerrcode), subbilling_naptime)));
}

/*
 * The worker is one long session: the plans it caches (those of the
 * billing functions' statements and PostgreSQL's own foreign-key checks)
 * were made for the table sizes of the moment they were first used.  A
 * worker that starts on a young database plans a sequential scan of an
 * almost empty invoices table, and keeps that plan, for every foreign-key
 * check of every line, until an ANALYZE of the table invalidates it, which
 * autovacuum may not do for minutes.  So, between two batches, the worker
 * drops its cached plans (as DISCARD PLANS does) each time the work done
 * since it started has doubled, from 1,000 rows of work on: a logarithmic
 * number of replans, each one planning for the tables as they are.
 * Measured on 6,000 subscriptions billed in batches of 100 on a fresh
 * database: 17.6 s without this, 3.0 s with it.
 */
static void
replan_as_tables_grow(int64 work)
{
	static int64 worked = 0;
	static int64 next_replan = 1000;
	int64		sum;

	if (work <= 0 || pg_add_s64_overflow(worked, work, &sum))
		return;
	worked = sum;
	if (worked >= next_replan)
	{
		ResetPlanCache();
		if (pg_mul_s64_overflow(worked, 2, &next_replan))
			next_replan = PG_INT64_MAX;
	}
}

/*
 * A step of the cycle: its own transaction in the worker; nothing to do in
 * the caller's transaction (SPI is connected for the whole cycle).
 */
static void
step_begin(WorkerCycle *c, const char *activity)
{
	if (c->own_xacts)
		xact_begin(activity);
}

static void
step_end(WorkerCycle *c)
{
	if (c->own_xacts)
		xact_commit();
}

/*
 * subbilling.current_run_id: for the worker's session; for the caller's
 * transaction only in run_worker_cycle() (SPI connected).
 */
static void
set_run_id(WorkerCycle *c, const char *value)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];

	if (c->own_xacts)
	{
		SetConfigOption("subbilling.current_run_id", value, PGC_USERSET, PGC_S_SESSION);
		return;
	}
	values[0] = CStringGetTextDatum(value);
	spi_run(sql_set_local_run_id, 1, argtypes, values, NULL, SPI_OK_SELECT);
}

/*
 * Starts one of the worker's short transactions, with SPI and a snapshot.
 */
static void
xact_begin(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "subbilling worker: SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

/*
 * Commits what xact_begin started.
 */
static void
xact_commit(void)
{
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "subbilling worker: SPI_finish failed");
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cycle_context);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

static void
spi_run(const char *sql, int nargs, Oid *argtypes, Datum *values,
		const char *nulls, int expected)
{
	int			rc;

	rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls, false, 0);
	if (rc != expected)
		elog(ERROR, "subbilling worker: unexpected SPI result %s for: %s",
			 SPI_result_code_string(rc), sql);
}

/*
 * A column of the first row of the last SPI result.  NULL reads as zero.
 */
static Datum
spi_value(int column, bool *isnull)
{
	Datum		value;

	if (SPI_tuptable == NULL || SPI_processed < 1)
		elog(ERROR, "subbilling worker: query returned no row");
	value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, column, isnull);
	return *isnull ? (Datum) 0 : value;
}

static int32
clamp_int32(int64 value)
{
	if (value > PG_INT32_MAX)
		return PG_INT32_MAX;
	if (value < PG_INT32_MIN)
		return PG_INT32_MIN;
	return (int32) value;
}

/*
 * subbilling.wake_worker(): asks the running worker for a cycle now.
 * Returns false, with a NOTICE saying why, when no worker will act on it.
 */
Datum
subbilling_wake_worker(PG_FUNCTION_ARGS)
{
	pid_t		pid;
	Oid			database;
	bool		enabled;
	Latch	   *latch = NULL;

	if (worker_shared == NULL)
	{
		ereport(NOTICE,
				(errmsg("subbilling worker is not running"),
				 errdetail("The library subbilling was not loaded through shared_preload_libraries."),
				 errhint("Add subbilling to shared_preload_libraries and restart the server, "
						 "or call subbilling.run_worker_cycle() instead.")));
		PG_RETURN_BOOL(false);
	}

	SpinLockAcquire(&worker_shared->mutex);
	pid = worker_shared->pid;
	database = worker_shared->database;
	enabled = worker_shared->enabled;
	if (pid != 0 && enabled && database == MyDatabaseId)
	{
		worker_shared->wake_pending = true;
		latch = worker_shared->latch;
	}
	SpinLockRelease(&worker_shared->mutex);

	if (latch != NULL)
	{
		SetLatch(latch);
		PG_RETURN_BOOL(true);
	}

	if (pid == 0)
		ereport(NOTICE,
				(errmsg("subbilling worker is not running"),
				 errdetail("It is starting, or restarting after an exit."),
				 errhint("More details may be available in the server log.")));
	else if (!enabled)
		ereport(NOTICE,
				(errmsg("subbilling worker is disabled"),
				 errhint("Set subbilling.worker_enabled = on and reload the configuration.")));
	else
	{
		char	   *name = get_database_name(database);

		ereport(NOTICE,
				(errmsg("subbilling worker serves another database"),
				 errdetail("The worker is connected to database \"%s\".",
						   name ? name : "?"),
				 errhint("Set subbilling.database and reload the configuration to move it.")));
	}
	PG_RETURN_BOOL(false);
}

/*
 * subbilling.worker_config(): this session's view of the worker settings,
 * typed, and whether the library was preloaded.
 */
Datum
subbilling_worker_config(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	values[0] = BoolGetDatum(worker_shared != NULL);
	values[1] = BoolGetDatum(subbilling_worker_enabled);
	values[2] = CStringGetTextDatum(subbilling_database);
	values[3] = Int32GetDatum(subbilling_naptime);
	values[4] = Int32GetDatum(subbilling_batch_size);
	values[5] = BoolGetDatum(subbilling_notify);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* ----------------------------------------------------------------
 * The cycle in the caller's transaction
 * ----------------------------------------------------------------
 */

/*
 * Runs fn on a cycle in the caller's transaction, with SPI connected; as_of
 * is the function's first argument, of type as_of_type.
 */
static void
cycle_in_caller(WorkerCycle *c, FunctionCallInfo fcinfo, Oid as_of_type,
				void (*fn) (WorkerCycle *c))
{
	cycle_init(c, false, CurrentMemoryContext);
	c->as_of_type = as_of_type;
	c->as_of_null = PG_ARGISNULL(0);
	c->as_of_arg = c->as_of_null ? (Datum) 0 : PG_GETARG_DATUM(0);
	if (!c->as_of_null && as_of_type == TIMESTAMPTZOID)
		c->as_of = PG_GETARG_TIMESTAMPTZ(0);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "subbilling: SPI_connect failed");
	fn(c);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "subbilling: SPI_finish failed");
}

static void
sql_cycle(WorkerCycle *c)
{
	Oid			argtypes[3] = {INT4OID, TIMESTAMPTZOID, INT4OID};
	Datum		values[3] = {Int32GetDatum(MyProcPid), c->as_of_arg, Int32GetDatum(c->batch_size)};
	char		nulls[3] = {' ', c->as_of_null ? 'n' : ' ', ' '};
	bool		isnull;
	char		idbuf[32];

	spi_run(sql_start_sql_run, 3, argtypes, values, nulls, SPI_OK_INSERT_RETURNING);
	c->run_id = DatumGetInt64(spi_value(1, &isnull));
	snprintf(idbuf, sizeof(idbuf), INT64_FORMAT, c->run_id);
	set_run_id(c, idbuf);

	cycle_steps(c);
	cycle_finish(c);
}

static void
sql_billing(WorkerCycle *c)
{
	cycle_batches(c, false);
}

static void
sql_dunning(WorkerCycle *c)
{
	cycle_batches(c, true);
}

static int32
count_result(int64 count)
{
	if (count > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("integer out of range")));
	return (int32) count;
}

/*
 * subbilling.run_worker_cycle(as_of): steps (b) to (e) of the worker's
 * cycle in the caller's transaction, recorded in worker_runs with origin
 * 'sql'.  An error reaches the caller; its transaction, run row included,
 * is rolled back.
 */
Datum
subbilling_run_worker_cycle(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	WorkerCycle c;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	InitMaterializedSRF(fcinfo, 0);
	cycle_in_caller(&c, fcinfo, TIMESTAMPTZOID, sql_cycle);

	values[0] = Int32GetDatum(count_result(c.invoices));
	values[1] = Int32GetDatum(count_result(c.errors));
	values[2] = Int32GetDatum(count_result(c.dunning_steps));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/*
 * subbilling.run_billing(as_of): billing batches until done, in the
 * caller's transaction; the number of invoices.
 */
Datum
subbilling_run_billing(PG_FUNCTION_ARGS)
{
	WorkerCycle c;

	cycle_in_caller(&c, fcinfo, TIMESTAMPTZOID, sql_billing);
	PG_RETURN_INT32(count_result(c.invoices));
}

/*
 * subbilling.run_dunning(as_of date): dunning batches until done, in the
 * caller's transaction; the number of steps taken.
 */
Datum
subbilling_run_dunning(PG_FUNCTION_ARGS)
{
	WorkerCycle c;

	cycle_in_caller(&c, fcinfo, DATEOID, sql_dunning);
	PG_RETURN_INT32(count_result(c.dunning_steps));
}
