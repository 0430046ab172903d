/*
 * lfg_blas.h
 *	  The only door to cblas and LAPACKE: threading and kernels are chosen
 *	  in one place.
 */
#ifndef LFG_BLAS_H
#define LFG_BLAS_H

extern void lfg_blas_single_thread(void);
extern float lfg_dot(const float *x, const float *y, int n);

/*
 * The simultaneous SGD update of a user and an item vector:
 *	 p <- p + lr (err q - reg p),  q <- q + lr (err p_old - reg q)
 * which is the 2x2 linear map [[1 - lr reg, lr err], [lr err, 1 - lr reg]]
 * applied to each pair (p_f, q_f).
 */
extern void lfg_sgd_pair_update(float *restrict p, float *restrict q, int n, float lr,
								float err, float reg);
/* x . y for SGD: no BLAS call (safe in any thread), the same bits on every build */
extern float lfg_sgd_dot(const float *restrict x, const float *restrict y, int n);


/* C = alpha op(A) op(B) + beta C, row-major; ta/tb: 0 = as is, 1 = transposed */
extern void lfg_gemm(int ta, int tb, int m, int n, int k, float alpha,
					 const float *A, int lda, const float *B, int ldb,
					 float beta, float *C, int ldc);
/*
 * lfg_gemm without BLAS, for the training threads (OpenBLAS's serial build
 * is not safe to call from two at once); not both transposed. Its bits
 * depend only on its arguments (and the CPU's kernels), not on the thread.
 */
extern void lfg_gemm_mt(int ta, int tb, int m, int n, int k, float alpha,
						const float *A, int lda, const float *B, int ldb,
						float beta, float *C, int ldc);
/* lfg_gemm or lfg_gemm_mt */
typedef void (*LfgGemmFn) (int ta, int tb, int m, int n, int k, float alpha,
						   const float *A, int lda, const float *B, int ldb,
						   float beta, float *C, int ldc);
/* y = alpha op(A) x + beta y, row-major A (m x n) */
extern void lfg_gemv(int ta, int m, int n, float alpha, const float *A, int lda,
					 const float *x, float beta, float *y);
/* y += alpha x */
extern void lfg_axpy(int n, float alpha, const float *x, float *y);
/* C += A^T A for A (n x d, row-major), upper triangle of C (d x d) */
extern void lfg_syrk_t(int d, int n, const float *A, float *C);
/* C += A A^T for A (n x d, row-major), upper triangle of C (n x n) */
extern void lfg_syrk_n(int n, int d, const float *A, float *C);
/* Solve the symmetric positive definite system A x = b in place (A n x n, b n) */
extern int	lfg_posv(int n, float *A, float *b);
/*
 * The inverse of a symmetric positive definite matrix (n x n, row-major, upper
 * triangle read and written) in two steps: the Cholesky factor (spotrf), then
 * the inverse from it (spotri). Each returns LAPACK's info (0 = success).
 */
extern int	lfg_spd_factor(int n, float *A);
extern int	lfg_spd_invert_factored(int n, float *A);

/*
 * The same two steps in blocks of nb rows (LAPACK's blocked algorithms,
 * spotrf's right-looking one, then strtri's and slauum's, written out with
 * level-3 BLAS calls), calling check(ctx) between blocks: a query cancel
 * waits for one block, not for the whole matrix. check may be NULL.
 */
extern int	lfg_spd_factor_blocked(int n, float *A, int nb, void (*check) (void *), void *ctx);
extern int	lfg_spd_invert_factored_blocked(int n, float *A, int nb, void (*check) (void *),
											void *ctx);
extern const char *lfg_blas_core(void);
#endif							/* LFG_BLAS_H */
