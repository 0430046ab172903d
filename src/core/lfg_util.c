/*
 * lfg_util.c
 *	  Errors, allocation and small helpers of the numeric core.
 */
#include "lfg_core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Fill err with a status, a message and an optional hint; return the status */
LfgStatus
lfg_error(LfgError *err, LfgStatus status, const char *hint, const char *fmt,...)
{
	va_list		ap;

	err->status = status;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	err->detail[0] = '\0';
	snprintf(err->hint, sizeof(err->hint), "%s", hint ? hint : "");
	return status;
}

/* Attach a detail sentence to an error already filled by lfg_error */
void
lfg_error_detail(LfgError *err, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
	va_end(ap);
}

/* Allocate through the caller's allocator; NULL on failure */
void *
lfg_alloc(const LfgAllocator *a, size_t size)
{
	return a->alloc(a->ctx, size == 0 ? 1 : size);
}

/* Allocate n elements of elem bytes, or NULL when the size overflows */
void *
lfg_alloc_array(const LfgAllocator *a, size_t n, size_t elem)
{
	size_t		size;

	if (lfg_mul_overflow(n, elem, &size))
		return NULL;
	return lfg_alloc(a, size);
}

/* Release memory from lfg_alloc; NULL is ignored */
void
lfg_free(const LfgAllocator *a, void *ptr)
{
	if (ptr != NULL && a->free != NULL)
		a->free(a->ctx, ptr);
}

/* a * b with overflow detection */
bool
lfg_mul_overflow(size_t a, size_t b, size_t *out)
{
	return __builtin_mul_overflow(a, b, out);
}

/* Monotonic wall clock in seconds */
double
lfg_clock_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* The user-facing name of a model kind */
const char *
lfg_kind_name(int kind)
{
	switch (kind)
	{
		case LFG_KIND_SVD:
			return "svd";
		case LFG_KIND_BIASSVD:
			return "biassvd";
		case LFG_KIND_LFG:
			return "lfg";
		case LFG_KIND_EASE:
			return "ease";
	}
	return NULL;
}

/* Parse a kind name; 0 when unknown */
int
lfg_kind_from_name(const char *name, size_t len)
{
	if (len == 3 && memcmp(name, "svd", 3) == 0)
		return LFG_KIND_SVD;
	if (len == 7 && memcmp(name, "biassvd", 7) == 0)
		return LFG_KIND_BIASSVD;
	if (len == 3 && memcmp(name, "lfg", 3) == 0)
		return LFG_KIND_LFG;
	if (len == 4 && memcmp(name, "ease", 4) == 0)
		return LFG_KIND_EASE;
	return 0;
}
