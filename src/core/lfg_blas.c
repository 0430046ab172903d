/*
 * lfg_blas.c
 *	  Thin wrappers over OpenBLAS, and the few vector kernels BLAS has no
 *	  fast form for.
 */
#include <cblas.h>
#include <dlfcn.h>
#include <lapacke.h>
#include <string.h>

#include "lfg_core.h"
#include "lfg_blas.h"

/*
 * One BLAS thread per process: concurrency comes from backends and parallel
 * workers. The Makefile links OpenBLAS's serial build where the system has
 * one (Debian ships it beside the default pthreads build), which has no
 * thread pool. A pthreads build (no serial one at build time, or another
 * library of the process loaded it first) starts ncpu - 1 threads when it is
 * loaded, before any of our code runs; openblas_set_num_threads(1) only
 * stops giving them work, so end them with OpenBLAS's own shutdown (what its
 * fork handler calls), looked up at run time since the serial build has
 * none. The order matters: set_num_threads restarts a pool that was shut
 * down. An OpenMP build starts no thread until a parallel call, which one
 * thread never makes.
 */
void
lfg_blas_single_thread(void)
{
	openblas_set_num_threads(1);
	if (openblas_get_parallel() == 1)
	{
		int			(*shutdown) (void) = (int (*) (void)) dlsym(RTLD_DEFAULT, "blas_thread_shutdown_");

		if (shutdown != NULL)
			shutdown();
	}
}

/* x . y */
float
lfg_dot(const float *x, const float *y, int n)
{
	return cblas_sdot(n, x, 1, y, 1);
}

/*
 * See lfg_blas.h. This is exactly cblas_srotm with the full matrix
 * (flag -1), but OpenBLAS 0.3.21's srotm is a scalar loop that made a
 * BiasSVD fit 3x slower (0.47 s against 0.15 s on ml-100k u1.base), so the
 * loop is written out here and compiled for AVX2 where the CPU has it.
 */
LFG_AVX2_CLONES
void
lfg_sgd_pair_update(float *restrict p, float *restrict q, int n, float lr,
					float err, float reg)
{
	float		keep = 1.0f - lr * reg;
	float		mix = lr * err;

	/* a size_t index: with -fwrapv (PGXS) an int index blocks vectorisation */
	for (size_t f = 0; f < (size_t) n; f++)
	{
		float		pf = p[f];
		float		qf = q[f];

		p[f] = keep * pf + mix * qf;
		q[f] = mix * pf + keep * qf;
	}
}

/*
 * See lfg_blas.h. Eight partial sums in a fixed order, so the vectorised
 * clone and the portable build give the same bits (no FMA: the AVX2 clone
 * does not enable it), and no BLAS call: SGD worker threads call it.
 */
LFG_AVX2_CLONES
float
lfg_sgd_dot(const float *restrict x, const float *restrict y, int n)
{
	float		acc[8] = {0};
	size_t		m = (size_t) n & ~(size_t) 7,
				f;
	float		tail = 0.0f;

	for (f = 0; f < m; f += 8)
		for (size_t j = 0; j < 8; j++)
			acc[j] += x[f + j] * y[f + j];
	for (; f < (size_t) n; f++)
		tail += x[f] * y[f];
	return (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))) + tail;
}

/* See lfg_blas.h */
void
lfg_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *A, int lda,
		 const float *B, int ldb, float beta, float *C, int ldc)
{
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
				tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, A, lda, B, ldb,
				beta, C, ldc);
}

/* See lfg_blas.h */
void
lfg_gemv(int ta, int m, int n, float alpha, const float *A, int lda, const float *x,
		 float beta, float *y)
{
	cblas_sgemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, m, n, alpha, A, lda,
				x, 1, beta, y, 1);
}

/* y += alpha x */
void
lfg_axpy(int n, float alpha, const float *x, float *y)
{
	cblas_saxpy(n, alpha, x, 1, y, 1);
}

/* C += A^T A, upper triangle (row-major) */
void
lfg_syrk_t(int d, int n, const float *A, float *C)
{
	cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, d, n, 1.0f, A, d, 1.0f, C, d);
}

/*
 * C += A A^T, upper triangle (row-major), for the few rows of a new user's
 * dual fold-in: one sgemv per row of C. OpenBLAS's ssyrk packs A into its
 * level-3 buffer first, which under concurrent load (the buffer and A out
 * of cache) cost about 10 us of a 40 us recommendation; the sgemv's touch
 * only A and C.
 */
void
lfg_syrk_n(int n, int d, const float *A, float *C)
{
	for (int j = 0; j < n; j++)
		cblas_sgemv(CblasRowMajor, CblasNoTrans, n - j, d, 1.0f, A + (size_t) j * d, d,
					A + (size_t) j * d, 1, 1.0f, C + (size_t) j * n + j, 1);
}

/*
 * Cholesky solve of an SPD system; returns LAPACK's info (0 = success). The
 * row-major upper triangle is the column-major lower one: calling the
 * column-major _work routine avoids LAPACKE's transposed copies. sposv's
 * two triangular solves are level-3 strsm calls, through OpenBLAS's packing
 * buffer; for one right-hand side, spotrf then two strsv compute the same.
 */
int
lfg_posv(int n, float *A, float *b)
{
	int			info = LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', n, A, n);

	if (info != 0)
		return info;
	cblas_strsv(CblasColMajor, CblasLower, CblasNoTrans, CblasNonUnit, n, A, n, b, 1);
	cblas_strsv(CblasColMajor, CblasLower, CblasTrans, CblasNonUnit, n, A, n, b, 1);
	return 0;
}

/*
 * See lfg_blas.h. As in lfg_posv, the row-major upper triangle is the
 * column-major lower one, so the _work routines need no transposed copy.
 */
int
lfg_spd_factor(int n, float *A)
{
	return LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', n, A, n);
}

/* See lfg_blas.h: after lfg_spd_factor */
int
lfg_spd_invert_factored(int n, float *A)
{
	return LAPACKE_spotri_work(LAPACK_COL_MAJOR, 'L', n, A, n);
}

/*
 * See lfg_blas.h. Column-major lower triangle (the row-major upper one); for
 * each block column j: factor the diagonal block (spotrf), solve the panel
 * below it (strsm), update the trailing matrix (ssyrk).
 */
int
lfg_spd_factor_blocked(int n, float *A, int nb, void (*check) (void *), void *ctx)
{
	for (int j = 0; j < n; j += nb)
	{
		int			jb = n - j < nb ? n - j : nb,
					rest = n - j - jb,
					info;
		float	   *A11 = A + (size_t) j * n + j;

		if ((info = LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', jb, A11, n)) != 0)
			return info < 0 ? info : info + j;
		if (rest > 0)
		{
			float	   *A21 = A11 + jb,
					   *A22 = A + (size_t) (j + jb) * n + j + jb;

			cblas_strsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit,
						rest, jb, 1.0f, A11, n, A21, n);
			cblas_ssyrk(CblasColMajor, CblasLower, CblasNoTrans, rest, jb, -1.0f, A21, n,
						1.0f, A22, n);
		}
		if (check)
			check(ctx);
	}
	return 0;
}

/*
 * See lfg_blas.h. From the factor L (column-major lower): X = L^-1 in place,
 * block columns from the last (X21 = -X22 L21 X11: strmm, strsm, then
 * strtri of the diagonal block), then P = X^T X in place, block rows from
 * the first (slauum's loop: strmm, slauum of the diagonal block, sgemm,
 * ssyrk).
 */
int
lfg_spd_invert_factored_blocked(int n, float *A, int nb, void (*check) (void *), void *ctx)
{
	int			last = ((n - 1) / nb) * nb;

	for (int j = last; j >= 0; j -= nb)
	{
		int			jb = n - j < nb ? n - j : nb,
					rest = n - j - jb,
					info;
		float	   *A11 = A + (size_t) j * n + j;

		if (rest > 0)
		{
			float	   *A21 = A11 + jb,
					   *A22 = A + (size_t) (j + jb) * n + j + jb;

			cblas_strmm(CblasColMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit,
						rest, jb, 1.0f, A22, n, A21, n);
			cblas_strsm(CblasColMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit,
						rest, jb, -1.0f, A11, n, A21, n);
		}
		if ((info = LAPACKE_strtri_work(LAPACK_COL_MAJOR, 'L', 'N', jb, A11, n)) != 0)
			return info < 0 ? info : info + j;
		if (check)
			check(ctx);
	}
	for (int i = 0; i < n; i += nb)
	{
		int			ib = n - i < nb ? n - i : nb,
					rest = n - i - ib,
					info;
		float	   *Aii = A + (size_t) i * n + i,
				   *Ai1 = A + i;	/* row block i, columns 0 .. i - 1 */

		if (i > 0)
			cblas_strmm(CblasColMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit,
						ib, i, 1.0f, Aii, n, Ai1, n);
		if ((info = LAPACKE_slauum_work(LAPACK_COL_MAJOR, 'L', ib, Aii, n)) != 0)
			return info;
		if (rest > 0)
		{
			if (i > 0)
				cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, ib, i, rest, 1.0f,
							Aii + ib, n, Ai1 + ib, n, 1.0f, Ai1, n);
			cblas_ssyrk(CblasColMajor, CblasLower, CblasTrans, ib, rest, 1.0f, Aii + ib, n,
						1.0f, Aii, n);
		}
		if (check)
			check(ctx);
	}
	return 0;
}

/* The OpenBLAS kernel family in use (its CPU detection), for diagnostics */
const char *
lfg_blas_core(void)
{
	return openblas_get_corename();
}

/*
 * The matrix products of the training threads (lfg_gemm_mt). OpenBLAS's
 * serial build shares its packing buffers between the threads that call
 * it: two sgemm calls at once on this machine's Debian build gave wrong
 * bits about one time in 200 (a 32 x 256 x 256 product from two threads),
 * so these compute without it. Blocks of 4 rows by 16 columns of C are
 * summed over k in registers (8-float vectors), in the order of k; a
 * transposed B (C = A B^T) is copied first, by panels. The fused multiply-add clone and the baseline one give different
 * bits, but a process always runs the same one.
 */
typedef float v8f __attribute__((vector_size(32), aligned(4)));

#if defined(__x86_64__) && defined(__GNUC__) && !defined(LFG_NO_SIMD)
#define LFG_FMA_CLONES __attribute__((target_clones("fma", "default")))
#else
#define LFG_FMA_CLONES
#endif

/*
 * C[r0 .. r0 + 4, j0 .. j0 + 16) += alpha op(A) B, B not transposed: row r
 * of op(A) is a[r][p * as] (as 1, or lda when A is transposed); a row past
 * m points at a real row and its sums are dropped. 8 accumulators, 2 rows
 * of B and a broadcast fit AVX2's 16 registers.
 */
static inline __attribute__((always_inline)) void
block_nn(const float *a[4], size_t as, int nr, int nc, int j0, int k, float alpha,
		 const float *B, int ldb, float *C, int ldc, int r0)
{
	v8f			c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0},
				c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
	const float *a0 = a[0],
			   *a1 = a[1],
			   *a2 = a[2],
			   *a3 = a[3];
	const float *b = B + j0;

	for (int p = 0; p < k; p++, b += ldb)
	{
		v8f			b0,
					b1;
		size_t		o = (size_t) p * as;
		float		x0 = a0[o],
					x1 = a1[o],
					x2 = a2[o],
					x3 = a3[o];

		memcpy(&b0, b, 32);
		memcpy(&b1, b + 8, 32);
		c00 += x0 * b0; c01 += x0 * b1;
		c10 += x1 * b0; c11 += x1 * b1;
		c20 += x2 * b0; c21 += x2 * b1;
		c30 += x3 * b0; c31 += x3 * b1;
	}
	{
		v8f			acc[4][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};

		for (int r = 0; r < nr; r++)
		{
			float	   *crow = C + (size_t) (r0 + r) * ldc + j0;

			for (int q = 0; q < 2; q++)
			{
				v8f			cv;

				if (nc < 16)
				{
					for (int j = 0; j < 8 && 8 * q + j < nc; j++)
						crow[8 * q + j] += alpha * acc[r][q][j];
					continue;
				}
				memcpy(&cv, crow + 8 * q, 32);
				cv += alpha * acc[r][q];
				memcpy(crow + 8 * q, &cv, 32);
			}
		}
	}
}

/* the part of k of a transposed B's panel */
#define GEMM_MT_K 256

/* See lfg_blas.h */
LFG_FMA_CLONES
void
lfg_gemm_mt(int ta, int tb, int m, int n, int k, float alpha, const float *A, int lda,
			const float *B, int ldb, float beta, float *C, int ldc)
{
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++)
			C[(size_t) i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t) i * ldc + j];
	if (tb)
	{
		/*
		 * B transposed: its panels of 16 rows by up to GEMM_MT_K of k are
		 * copied into Bp as the plain kernel reads B (columns past n are
		 * zero), and C gets one sum per part of k, in order
		 */
		float		Bp[GEMM_MT_K * 16];

		for (int j0 = 0; j0 < n; j0 += 16)
		{
			int			nc = n - j0 < 16 ? n - j0 : 16;

			for (int p0 = 0; p0 < k; p0 += GEMM_MT_K)
			{
				int			kp = k - p0 < GEMM_MT_K ? k - p0 : GEMM_MT_K;

				for (int p = 0; p < kp; p++)
					for (int j = 0; j < 16; j++)
						Bp[p * 16 + j] = j < nc ? B[(size_t) (j0 + j) * ldb + p0 + p] : 0.0f;
				for (int r0 = 0; r0 < m; r0 += 4)
				{
					int			nr = m - r0 < 4 ? m - r0 : 4;
					const float *a[4];

					for (int r = 0; r < 4; r++)
						a[r] = A + (size_t) (r0 + (r < nr ? r : 0)) * lda + p0;
					block_nn(a, 1, nr, nc, 0, kp, alpha, Bp, 16, C + j0, ldc, r0);
				}
			}
		}
		return;
	}
	for (int r0 = 0; r0 < m; r0 += 4)
	{
		int			nr = m - r0 < 4 ? m - r0 : 4,
					j0 = 0;
		size_t		as = ta ? (size_t) lda : 1;
		const float *a[4];

		for (int r = 0; r < 4; r++)
		{
			int			row = r0 + (r < nr ? r : 0);

			a[r] = ta ? A + row : A + (size_t) row * lda;
		}
		for (; j0 + 16 <= n; j0 += 16)
			block_nn(a, as, nr, 16, j0, k, alpha, B, ldb, C, ldc, r0);
		for (int r = 0; r < nr; r++)
			for (int j = j0; j < n; j++)
			{
				float		s = 0.0f;

				for (int p = 0; p < k; p++)
					s += a[r][(size_t) p * as] * B[(size_t) p * ldb + j];
				C[(size_t) (r0 + r) * ldc + j] += alpha * s;
			}
	}
}
