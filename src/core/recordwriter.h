/*-------------------------------------------------------------------------
 *
 * recordwriter.h
 *	  A growing buffer of fixed-width records, as the bank files written
 *	  here are (Autogiro's 80 characters and CR LF, Nets' 80 characters and
 *	  LF).  Plain C, no PostgreSQL headers; used by autogiro.c and
 *	  avtalegiro.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SUBBILLING_CORE_RECORDWRITER_H
#define SUBBILLING_CORE_RECORDWRITER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct RecordWriter
{
	char	   *buf;			/* malloc'ed; the caller frees it */
	size_t		len;
	size_t		cap;
	int			records;
	size_t		width;			/* characters of a record */
	const char *eol;			/* "\r\n" or "\n" */
} RecordWriter;

/* An empty writer of records of width characters, each followed by eol */
extern void record_writer_init(RecordWriter *w, size_t width, const char *eol);

/* Append rec (width characters) and the line end; false if out of memory */
extern bool record_put(RecordWriter *w, const char *rec);

#endif							/* SUBBILLING_CORE_RECORDWRITER_H */
