/*
 * test_util.h
 *	  What the core's unit tests and fuzz driver share: a malloc allocator
 *	  and the CHECK counters behind the "N passed, N failed" line.
 */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>

#include "lfg_core.h"

static int	passed,
			failed;

#define CHECK(cond, ...) \
	do { \
		if (cond) passed++; \
		else { failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } \
	} while (0)

static void *
m_alloc(void *ctx, size_t size)
{
	(void) ctx;
	return malloc(size);
}

static void
m_free(void *ctx, void *p)
{
	(void) ctx;
	free(p);
}

static const LfgAllocator A = {m_alloc, m_free, NULL};

/* The closing line; the exit status of the test program */
static int	report_results(void) __attribute__((unused));

static int
report_results(void)
{
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}

#endif							/* TEST_UTIL_H */
