/*
 * lfg_optim.c
 *	  The Adam step.
 */
#include <math.h>
#include <string.h>

#include "lfg_optim.h"

/* Zeroed moments for n parameters */
LfgStatus
lfg_adam_init(LfgAdam *opt, size_t n, float lr, float weight_decay,
			  const LfgAllocator *a, LfgError *err)
{
	memset(opt, 0, sizeof(*opt));
	opt->n = n;
	opt->lr = lr;
	opt->beta1 = 0.9f;
	opt->beta2 = 0.999f;
	opt->eps = 1e-8f;
	opt->weight_decay = weight_decay;
	opt->m = lfg_alloc_array(a, n, sizeof(float));
	opt->v = lfg_alloc_array(a, n, sizeof(float));
	if (opt->m == NULL || opt->v == NULL)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the optimizer");
	memset(opt->m, 0, n * sizeof(float));
	memset(opt->v, 0, n * sizeof(float));
	return LFG_OK;
}

/* Start a step: count it and set its bias corrections (lfg_adam_update) */
void
lfg_adam_tick(LfgAdam *opt)
{
	double		c1,
				c2;

	opt->t++;
	c1 = 1.0 - pow(opt->beta1, (double) opt->t);
	c2 = 1.0 - pow(opt->beta2, (double) opt->t);
	opt->step = (float) (opt->lr / c1);
	opt->vscale = (float) (1.0 / sqrt(c2));
}

/*
 * The step of the parameters [lo, hi) after lfg_adam_tick: g += wd theta; m
 * = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; theta -= lr mhat /
 * (sqrt(vhat) + eps), with bias-corrected mhat, vhat. Each parameter on its
 * own, so ranges can go to threads. grad is used as scratch.
 */
LFG_AVX2_CLONES
void
lfg_adam_update(const LfgAdam *opt, float *restrict theta, float *restrict grad, size_t lo,
				size_t hi)
{
	float		b1 = opt->beta1,
				b2 = opt->beta2,
				wd = opt->weight_decay,
				step = opt->step,
				vscale = opt->vscale;
	float	   *restrict m = opt->m;
	float	   *restrict v = opt->v;

	for (size_t j = lo; j < hi; j++)
	{
		float		g = grad[j] + wd * theta[j];

		m[j] = b1 * m[j] + (1.0f - b1) * g;
		v[j] = b2 * v[j] + (1.0f - b2) * g * g;
		theta[j] -= step * m[j] / (sqrtf(v[j]) * vscale + opt->eps);
	}
}

/* One step over every parameter */
void
lfg_adam_step(LfgAdam *opt, float *theta, float *grad)
{
	lfg_adam_tick(opt);
	lfg_adam_update(opt, theta, grad, 0, opt->n);
}
