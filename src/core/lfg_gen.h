/*
 * lfg_gen.h
 *	  The latent factor generator G of PAPER.md: a user's sparse ratings and
 *	  dense auxiliary features -> Linear -> LeakyReLU -> [BatchNorm] ->
 *	  [Dropout] -> Linear -> LeakyReLU -> [BatchNorm] -> [Dropout] -> Linear
 *	  -> Tanh, giving p_u (k values) and b_u.
 *
 * All trainable parameters live in one flat float vector (theta) so that
 * the optimizer and the model codec see a single array; LfgGenLayout gives
 * the offset of each tensor. Matrices are row-major.
 */
#ifndef LFG_GEN_H
#define LFG_GEN_H

#include "lfg_core.h"
#include "lfg_par.h"
#include "lfg_rng.h"

#define LFG_BN_EPS		1e-5f
#define LFG_BN_MOMENTUM 0.1f

typedef struct LfgGenConfig
{
	int32_t		n_items;		/* rows of the sparse input */
	int32_t		n_dense;		/* dense input width (demographics, count) */
	int32_t		h1;
	int32_t		h2;
	int32_t		k;				/* output is k + 1 values: p_u and b_u */
	int32_t		channels;		/* sparse channels per item: 1 or 2 */
	int32_t		batchnorm;		/* 0 or 1 */
	float		leaky_slope;
	float		dropout;		/* drop probability, 0 = off */
} LfgGenConfig;

/* Offsets (in floats) of each tensor inside theta */
typedef struct LfgGenLayout
{
	size_t		W1s;			/* n_items x (channels * h1): item i's rows */
	size_t		W1d;			/* n_dense x h1 */
	size_t		b1;
	size_t		g1,
				be1;			/* BatchNorm 1 scale and shift (if batchnorm) */
	size_t		W2;				/* h1 x h2 */
	size_t		b2;
	size_t		g2,
				be2;
	size_t		W3;				/* h2 x (k + 1) */
	size_t		b3;
	size_t		total;
	size_t		n_running;		/* running mean and var: 2 * (h1 + h2) */
} LfgGenLayout;

/* One batch of users: CSR sparse input and a dense matrix */
typedef struct LfgGenInput
{
	int32_t		batch;
	const int32_t *ptr;			/* batch + 1 offsets into idx/val */
	const int32_t *idx;			/* item index of each entry */
	const float *val;			/* channels values per entry */
	const float *dense;			/* batch x n_dense */
} LfgGenInput;

/* Activations kept for the backward pass, sized for a maximum batch */
typedef struct LfgGenWork
{
	int32_t		max_batch;
	float	   *z1,
			   *a1,
			   *xhat1,
			   *y1,
			   *m1;				/* batch x h1 */
	float	   *z2,
			   *a2,
			   *xhat2,
			   *y2,
			   *m2;				/* batch x h2 */
	float	   *out;			/* batch x (k + 1), after tanh */
	float	   *mean1,
			   *istd1,
			   *mean2,
			   *istd2;
	float	   *d1,
			   *d2,
			   *d3;				/* gradient scratch */
} LfgGenWork;

extern LfgStatus lfg_gen_config_check(const LfgGenConfig *c, LfgError *err);
extern void lfg_gen_layout(const LfgGenConfig *c, LfgGenLayout *l);
extern void lfg_gen_init(const LfgGenConfig *c, const LfgGenLayout *l, float *theta,
						 float *running, uint64_t seed);
extern LfgStatus lfg_gen_work_alloc(const LfgGenConfig *c, int32_t max_batch,
									const LfgAllocator *a, LfgGenWork *w,
									LfgError *err);

/*
 * Forward pass. training != 0: batch statistics (and running-statistics
 * update), dropout masks drawn from rng. training == 0: running
 * statistics, no dropout. The output (batch x (k + 1)) is w->out.
 */
extern void lfg_gen_forward(const LfgGenConfig *c, const LfgGenLayout *l,
							const float *theta, float *running,
							const LfgGenInput *in, LfgGenWork *w, int training,
							LfgRng *rng);

/*
 * Backward pass after a training forward: dout (batch x (k + 1)) is the loss
 * gradient with respect to w->out; gradients are added to grad (layout of
 * theta).
 */
extern void lfg_gen_backward(const LfgGenConfig *c, const LfgGenLayout *l,
							 const float *theta, const LfgGenInput *in,
							 LfgGenWork *w, const float *dout, float *grad);

/*
 * The same passes with their work cut into tasks for par's threads (NULL:
 * the same tasks in order); the result does not depend on the threads.
 * lfg_gen_forward and lfg_gen_backward are these with par NULL.
 */
extern void lfg_gen_forward_par(const LfgGenConfig *c, const LfgGenLayout *l,
								const float *theta, float *running,
								const LfgGenInput *in, LfgGenWork *w, int training,
								LfgRng *rng, LfgPar *par);
extern void lfg_gen_backward_par(const LfgGenConfig *c, const LfgGenLayout *l,
								 const float *theta, const LfgGenInput *in,
								 LfgGenWork *w, const float *dout, float *grad,
								 LfgPar *par);

/* FLOPs of a forward (and backward) pass over a batch with nnz sparse entries */
extern double lfg_gen_flops(const LfgGenConfig *c, int32_t batch, size_t nnz, bool backward);

#endif							/* LFG_GEN_H */
