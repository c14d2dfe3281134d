/*-------------------------------------------------------------------------
 *
 * webhook.h
 *	  The subbilling webhook worker: settings, registration, entry point.
 *
 * A second background worker of the library delivers events to
 * subbilling.webhook_endpoints (docs/webhooks.md).  It runs apart from the
 * billing worker, so a long billing batch never holds up a webhook and a
 * hanging endpoint never holds up billing.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SUBBILLING_WEBHOOK_H
#define SUBBILLING_WEBHOOK_H

#include "postgres.h"

/* Called from _PG_init, before MarkGUCPrefixReserved("subbilling") */
extern void subbilling_webhook_define_gucs(void);

/* Called from _PG_init only while shared_preload_libraries is processed */
extern void subbilling_webhook_register(void);

/* Entry point named in the BackgroundWorker registration */
#if PG_VERSION_NUM >= 180000
pg_noreturn extern PGDLLEXPORT void subbilling_webhook_main(Datum main_arg);
#else
extern PGDLLEXPORT void subbilling_webhook_main(Datum main_arg) pg_attribute_noreturn();
#endif

/*
 * The Standard Webhooks signature "v1,<base64>" of msg_id.timestamp.body,
 * keyed with the base64-decoded part of secret after "whsec_".  Returns
 * false (and sets *error) for a malformed secret.  out must hold
 * WEBHOOK_SIGNATURE_LEN bytes.
 */
#define WEBHOOK_SIGNATURE_LEN 64
extern bool webhook_sign(const char *secret, const char *msg_id, int64 timestamp,
						 const char *body, size_t body_len, char *out, const char **error);

#endif							/* SUBBILLING_WEBHOOK_H */
