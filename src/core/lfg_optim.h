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
} LfgAdam;

extern LfgStatus lfg_adam_init(LfgAdam *opt, size_t n, float lr, float weight_decay,
							   const LfgAllocator *a, LfgError *err);
extern void lfg_adam_step(LfgAdam *opt, float *theta, float *grad);

#endif							/* LFG_OPTIM_H */
