/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The subbilling background worker: its settings, its registration and
 *	  its entry point.
 *
 * The worker exists only when the library is in shared_preload_libraries.
 * Its settings are defined whenever the library is loaded, so that sessions
 * can read them (subbilling.worker_status) and the SQL alternative
 * (subbilling.run_worker_cycle) can use the same batch size.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SUBBILLING_WORKER_H
#define SUBBILLING_WORKER_H

#include "postgres.h"

/* Settings (GUCs) of the worker; see docs/worker.md */
extern char *subbilling_database;
extern int subbilling_naptime;
extern int subbilling_batch_size;
extern bool subbilling_worker_enabled;
extern bool subbilling_notify;

/* Called from _PG_init, before MarkGUCPrefixReserved("subbilling") */
extern void subbilling_worker_define_gucs(void);

/* Called from _PG_init only while shared_preload_libraries is processed */
extern void subbilling_worker_register(void);

/* Entry point named in the BackgroundWorker registration */
#if PG_VERSION_NUM >= 180000
pg_noreturn extern PGDLLEXPORT void subbilling_worker_main(Datum main_arg);
#else
extern PGDLLEXPORT void subbilling_worker_main(Datum main_arg) pg_attribute_noreturn();
#endif

#endif							/* SUBBILLING_WORKER_H */
