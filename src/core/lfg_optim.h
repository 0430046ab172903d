/*
 * lfg_optim.h
 *	  Adam (Kingma and Ba, 2015) with coupled L2 weight decay, as PyTorch's
 *	  torch.optim.Adam(weight_decay=...).
 */
#ifndef LFG_OPTIM_H
#define LFG_OPTIM_H

#include "lfg_core.h"

typedef struct LfgAdam
{
	size_t		n;
	float	   *m;
	float	   *v;
	int64_t		t;
	float		lr;
	float		beta1;
	float		beta2;
	float		eps;
	float		weight_decay;
	float		step;			/* of the current step (lfg_adam_tick) */
	float		vscale;
} LfgAdam;

extern LfgStatus lfg_adam_init(LfgAdam *opt, size_t n, float lr, float weight_decay,
							   const LfgAllocator *a, LfgError *err);
extern void lfg_adam_step(LfgAdam *opt, float *theta, float *grad);
/* A step in parts: lfg_adam_tick, then lfg_adam_update over ranges of it */
extern void lfg_adam_tick(LfgAdam *opt);
extern void lfg_adam_update(const LfgAdam *opt, float *theta, float *grad, size_t lo,
							size_t hi);

#endif							/* LFG_OPTIM_H */
