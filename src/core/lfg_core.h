/*
 * lfg_core.h
 *	  Shared types of the lfg numeric core.
 *
 * Nothing under src/core includes a PostgreSQL header: the core is built
 * into the extension and, on its own, into the unit tests and fuzz targets.
 * Core functions report failure through LfgError and allocate through an
 * LfgAllocator, so the PostgreSQL layer can pass palloc and an ERROR raised
 * from a callback (CHECK_FOR_INTERRUPTS) leaks nothing.
 */
#ifndef LFG_CORE_H
#define LFG_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum LfgStatus
{
	LFG_OK = 0,
	LFG_EPARAM,					/* bad hyperparameter or argument */
	LFG_EDATA,					/* bad training data */
	LFG_EFORMAT,				/* wrong magic, version, length or layout */
	LFG_ECORRUPT,				/* checksum mismatch */
	LFG_ELIMIT,					/* a size limit is exceeded */
	LFG_ENOMEM					/* the allocator returned NULL */
} LfgStatus;

typedef struct LfgError
{
	LfgStatus	status;
	char		msg[256];
	char		detail[256];
	char		hint[256];
} LfgError;

typedef struct LfgAllocator
{
	void	   *(*alloc) (void *ctx, size_t size);	/* may return NULL */
	void		(*free) (void *ctx, void *ptr);
	void	   *ctx;
} LfgAllocator;

/* CRC32C (Castagnoli) over a buffer; the caller supplies the implementation */
typedef uint32_t (*LfgCrcFn) (const void *data, size_t len);

extern LfgStatus lfg_error(LfgError *err, LfgStatus status, const char *hint,
						   const char *fmt,...)
			__attribute__((format(printf, 4, 5)));
extern void lfg_error_detail(LfgError *err, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));
extern void *lfg_alloc(const LfgAllocator *a, size_t size);
extern void *lfg_alloc_array(const LfgAllocator *a, size_t n, size_t elem);
extern void lfg_free(const LfgAllocator *a, void *ptr);
extern bool lfg_mul_overflow(size_t a, size_t b, size_t *out);
extern double lfg_clock_seconds(void);

/* Model kinds, as stored in the model bytes */
#define LFG_KIND_SVD		1
#define LFG_KIND_BIASSVD	2
#define LFG_KIND_LFG		3
#define LFG_KIND_EASE		4

/*
 * An AVX2 and a baseline clone of a vectorisable loop, chosen at load time,
 * on x86-64 (GCC's function multiversioning); one version elsewhere and in
 * the portable build (LFG_NO_SIMD).
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(LFG_NO_SIMD)
#define LFG_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LFG_AVX2_CLONES
#endif

extern const char *lfg_kind_name(int kind);
extern int	lfg_kind_from_name(const char *name, size_t len);

#endif							/* LFG_CORE_H */
