/*-------------------------------------------------------------------------
 *
 * recordwriter.c
 *	  A growing buffer of fixed-width records (recordwriter.h).
 *
 *-------------------------------------------------------------------------
 */
#include "recordwriter.h"

#include <stdlib.h>
#include <string.h>

void
record_writer_init(RecordWriter *w, size_t width, const char *eol)
{
	memset(w, 0, sizeof(*w));
	w->width = width;
	w->eol = eol;
}

bool
record_put(RecordWriter *w, const char *rec)
{
	size_t		el = strlen(w->eol),
				need = w->width + el;

	if (w->len + need > w->cap)
	{
		size_t		cap = w->cap ? w->cap : 1024;
		char	   *grown;

		while (cap < w->len + need)
		{
			if (cap > (size_t) -1 / 2)
				return false;
			cap *= 2;
		}
		grown = realloc(w->buf, cap);
		if (grown == NULL)
			return false;
		w->buf = grown;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, rec, w->width);
	memcpy(w->buf + w->len + w->width, w->eol, el);
	w->len += need;
	w->records++;
	return true;
}
