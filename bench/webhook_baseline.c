/*
 * The limit for the webhook benchmark: TOTAL plain HTTP POSTs of a BYTES-byte JSON body to
 * ENDPOINTS URLs (URL_PREFIX0, URL_PREFIX1, ...), made by libcurl's multi interface in one
 * process, one request in flight per URL at a time (the webhook worker's order per endpoint),
 * connections kept alive.  Prints "posts seconds posts_per_second".
 *
 *   cc -O2 -o build/bench/webhook_baseline bench/webhook_baseline.c -lcurl
 *   build/bench/webhook_baseline http://127.0.0.1:PORT/ok/e 10 3000 250
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t discard(char *p, size_t s, size_t n, void *u) { (void) p; (void) u; return s * n; }

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 5) { fprintf(stderr, "usage: %s URL_PREFIX ENDPOINTS TOTAL BYTES\n", argv[0]); return 2; }
	const char *prefix = argv[1];
	int endpoints = atoi(argv[2]), total = atoi(argv[3]), bytes = atoi(argv[4]);
	char *body = malloc(bytes + 1);
	memset(body, 'x', bytes); body[0] = '{'; body[bytes - 1] = '}'; body[bytes] = 0;
	int *left = calloc(endpoints, sizeof(int));
	for (int i = 0; i < total; i++) left[i % endpoints]++;
	char **urls = calloc(endpoints, sizeof(char *));
	CURL **easy = calloc(endpoints, sizeof(CURL *));
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURLM *m = curl_multi_init();
	int done = 0, failed = 0, running = 0;
	double t0 = now();
	for (int i = 0; i < endpoints; i++)
	{
		urls[i] = malloc(strlen(prefix) + 16);
		sprintf(urls[i], "%s%d", prefix, i);
		easy[i] = curl_easy_init();
		curl_easy_setopt(easy[i], CURLOPT_URL, urls[i]);
		curl_easy_setopt(easy[i], CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(easy[i], CURLOPT_POSTFIELDSIZE, (long) bytes);
		curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(easy[i], CURLOPT_PRIVATE, (void *) (long) i);
		if (left[i] > 0) { left[i]--; curl_multi_add_handle(m, easy[i]); }
	}
	while (done < total)
	{
		curl_multi_perform(m, &running);
		CURLMsg *msg; int q;
		while ((msg = curl_multi_info_read(m, &q)))
		{
			if (msg->msg != CURLMSG_DONE) continue;
			long i, code = 0;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &i);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
			if (msg->data.result != CURLE_OK || code != 200) failed++;
			done++;
			curl_multi_remove_handle(m, msg->easy_handle);
			if (left[i] > 0) { left[i]--; curl_multi_add_handle(m, msg->easy_handle); }
		}
		if (done < total) curl_multi_wait(m, NULL, 0, 100, NULL);
	}
	double s = now() - t0;
	printf("%d %.3f %.0f\n", total, s, total / s);
	if (failed) { fprintf(stderr, "%d requests failed\n", failed); return 1; }
	return 0;
}
