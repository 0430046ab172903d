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

#endif							/* LFG_BLAS_H */
