/*
 * tap.h
 *	  TAP output shared by the unit tests of src/core (header only).
 *
 * Each test program includes it, calls ok()/okf()/is_int()/is_str(), and
 * ends main with "return tap_done();": the plan line comes last (TAP allows
 * that), and the exit status is 1 if any test failed.
 */
#ifndef SUBBILLING_TAP_H
#define SUBBILLING_TAP_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int	tap_tests = 0;
static int	tap_failures = 0;

/* one line "ok N - name" or "not ok N - name"; returns cond */
static inline int
ok(int cond, const char *name)
{
	tap_tests++;
	if (!cond)
		tap_failures++;
	printf("%sok %d - %s\n", cond ? "" : "not ", tap_tests, name);
	return cond;
}

/* ok() with a printf-style name */
static inline int okf(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int
okf(int cond, const char *fmt, ...)
{
	char		name[512];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	return ok(cond, name);
}

/* ok(got == expected) with a diagnostic line when not */
static inline void
is_int(long long got, long long expected, const char *name)
{
	if (!ok(got == expected, name))
		printf("#   got %lld, expected %lld\n", got, expected);
}

/* ok(strcmp(got, expected) == 0) with a diagnostic line when not */
static inline void
is_str(const char *got, const char *expected, const char *name)
{
	if (!ok(strcmp(got, expected) == 0, name))
		printf("#   got \"%s\", expected \"%s\"\n", got, expected);
}

/* a deterministic xorshift64 generator for the property tests */
static uint64_t tap_rng_state = 0x9E3779B97F4A7C15ULL;

static inline uint64_t
tap_rng(void)
{
	uint64_t	x = tap_rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	tap_rng_state = x;
	return x;
}

/* the plan line; the exit status of main */
static inline int
tap_done(void)
{
	printf("1..%d\n", tap_tests);
	return tap_failures != 0;
}

#endif							/* SUBBILLING_TAP_H */
