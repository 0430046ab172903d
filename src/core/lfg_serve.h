/*
 * lfg_serve.h
 *	  Serving a user the model has never seen: the user vector by fold-in
 *	  (SVD, BiasSVD) or by the generator with a fold-in refinement (LFG),
 *	  scores for the whole catalogue, and the top k.
 */
#ifndef LFG_SERVE_H
#define LFG_SERVE_H

#include "lfg_model.h"

#define LFG_DEFAULT_FOLDIN_REG	5.0
#define LFG_MAX_K				100000
#define LFG_MAX_RATINGS			100000

typedef struct LfgServeScratch
{
	LfgNetScratch net;
	int32_t		cap;			/* ratings the buffers hold */
	float	   *A;				/* cap x (k + 1) */
	float	   *y;				/* cap */
	float	   *M;				/* (k + 1) x (k + 1) */
	float	   *rhs;			/* k + 1 */
	float	   *prior;			/* k + 1 */
} LfgServeScratch;

extern LfgStatus lfg_serve_scratch_alloc(const LfgModel *m, int32_t cap, const LfgAllocator *a,
										 LfgServeScratch *s, LfgError *err);

/*
 * The user vector x (k values of p_u, then b_u) of a new user from their
 * ratings of known items and demographics. svd and biassvd: ridge fold-in
 * with Q and b_i fixed, regularised toward zero with weight reg. lfg: the
 * generator's output; with refine, the same solve regularised toward it.
 */
extern LfgStatus lfg_user_vector(const LfgModel *m, const LfgNetUser *u, double reg,
								 bool refine, LfgServeScratch *s, float *x, LfgError *err);

/* Clipped predicted ratings of every item for user vector x */
extern void lfg_score_all(const LfgMfParams *mf, const float *x, float *scores);

/*
 * Clipped predicted rating of item i (dense index) for user vector x; i = -1
 * (an unknown item) gives the mean plus the user's bias, as lfg_mf_predict.
 */
extern double lfg_score_one(const LfgMfParams *mf, const float *x, int32_t i);

/*
 * The indexes of the k best scores, best first, ties by smaller index;
 * entries equal to -INFINITY are never returned. heap holds k entries.
 * Returns how many were found.
 */
extern int32_t lfg_top_k(const float *scores, int32_t n, int32_t k, int32_t *heap);

#endif							/* LFG_SERVE_H */
