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
	/* d: lfg_foldin_vector_dim, k + 1 or FBAS's k0 + 1 */
	float	   *A;				/* cap x d */
	float	   *y;				/* cap */
	float	   *M;				/* d x d */
	float	   *rhs;			/* d */
	float	   *prior;			/* d */
	float	   *base;			/* d: the base prior (lfg_foldin.h), k + 1 used */
	float	   *rhs0;			/* d: the new user's vector on the base item side (k0 + 1) */
} LfgServeScratch;

extern LfgStatus lfg_serve_scratch_alloc(const LfgModel *m, int32_t cap, const LfgAllocator *a,
										 LfgServeScratch *s, LfgError *err);

/*
 * The user vector x (k values of p_u, then b_u) of a new user from their
 * ratings of known items and demographics. svd and biassvd: ridge fold-in
 * with Q and b_i fixed, regularised toward zero with weight reg. lfg: the
 * generator's output; with refine, the same solve regularised toward it.
 * reg LFG_FOLDIN_LEARNED: the model's learned fold-in for LFG (its prior
 * weight and reg for this n, lfg_foldin_served), 5 for the others.
 * LFG_EDATA when a component of x is not finite.
 */
extern LfgStatus lfg_user_vector(const LfgModel *m, const LfgNetUser *u, double reg,
								 bool refine, LfgServeScratch *s, float *x, LfgError *err);

/*
 * What a new user's predicted ratings come from (lfg_rating_vector): x
 * scored by mf, or on the blend side (mf2 not NULL) the mean of that and
 * x2 scored by mf2, each clipped
 */
typedef struct LfgRatingSource
{
	const LfgMfParams *mf;
	const float *x;
	const LfgMfParams *mf2;
	const float *x2;
} LfgRatingSource;

/*
 * The source of a new user's predicted ratings into *src: x (k + 1
 * values, the user's vector from lfg_user_vector) and the model's own
 * parameters, or where the learned fold-in's bucket is on the base side
 * (lfg_foldin_side) the plain fold-in x0 (k0 + 1 values, into x0, which
 * has room for lfg_foldin_vector_dim values) on the item side of the
 * BiasSVD of FBAS and a view of that side in view (mu0, b_i0, Q0), or on
 * the blend side both. src points into x, x0 and view. Uses the scratch's
 * design buffers. LFG_EDATA when x0 is not finite.
 */
extern LfgStatus lfg_rating_vector(const LfgModel *m, const LfgNetUser *u, double reg,
								   bool refine, const float *x, LfgServeScratch *s, float *x0,
								   LfgMfParams *view, LfgRatingSource *src, LfgError *err);

/* The predicted rating of item i (-1: unknown) from src, clipped (a float's value) */
extern double lfg_rating_score(const LfgRatingSource *src, int32_t i);

/*
 * The base prior of an LFG model with the section FBAS (lfg_foldin.h) into
 * b (k + 1 values): plain fold-in of u (reg 5) on the item side of the
 * BiasSVD of FBAS, mapped into the model's space. Uses the scratch's
 * design buffers.
 */
extern LfgStatus lfg_base_prior(const LfgModel *m, const LfgNetUser *u, LfgServeScratch *s,
								float *b, LfgError *err);

/*
 * The vector lists are ordered by (0.2.0), into xo (k + 1 values): for a
 * model with a ranking head, the ranking generator's output for the user
 * (no fold-in) with 0 for its last value; otherwise a copy of x, the
 * user's vector from lfg_user_vector. LFG_EDATA when not finite.
 */
extern LfgStatus lfg_order_vector(const LfgModel *m, const LfgNetUser *u, const float *x,
								  LfgServeScratch *s, float *xo, LfgError *err);

/*
 * The fold-in of the file header of lfg_serve.c for any kind, regularised
 * toward prior (k + 1 values; NULL: zero): a known user's stored vector
 * refined by ratings made since training (lfg_recommend_user). reg
 * LFG_FOLDIN_LEARNED is 5.
 */
extern LfgStatus lfg_fold_in_prior(const LfgModel *m, const LfgNetUser *u, double reg,
								   const float *prior, LfgServeScratch *s, float *x,
								   LfgError *err);

/*
 * Scoring panels: Q in fewer bytes, laid out for a fast scoring kernel
 * (lfg_serve.c). lfg_score_panels_best is the best format for this CPU and
 * model; the size in bytes is 0 where the CPU has no kernel for a format or
 * Q does not fit it. Fill a buffer of that size (64-byte aligned is best).
 */
typedef enum LfgPanelFormat
{
	LFG_PANELS_NONE = 0,		/* no panels: one sgemv */
	LFG_PANELS_HALF,			/* half precision (AVX2, FMA, F16C) */
	LFG_PANELS_INT8				/* bytes and per-item scales (AVX-512 VNNI) */
} LfgPanelFormat;

extern LfgPanelFormat lfg_score_panels_best(const LfgMfParams *mf);
extern size_t lfg_score_panels_size(const LfgMfParams *mf, LfgPanelFormat format);
extern void lfg_score_panels_fill(const LfgMfParams *mf, LfgPanelFormat format, void *panels);

/* What lfg_recommend_top_k needs of a model besides its parameters */
typedef struct LfgScorer
{
	LfgPanelFormat format;
	const void *panels;			/* NULL with LFG_PANELS_NONE */
	double		qnorm_max;		/* max_i ||q_i||, for the error bound */
	double		bi_max;			/* max_i |b_i| */
	double		prior_max;		/* max_i |rank_prior_i|, 0 without a prior */
	double		qerr_max;		/* int8: max_i max_f |q_if - s_i c_if| */
	double		l1_max;			/* int8: max_i sum_f |s_i c_if| */
} LfgScorer;

/* panels NULL (or format LFG_PANELS_NONE): score by sgemv */
extern void lfg_scorer_init(const LfgMfParams *mf, LfgPanelFormat format, const void *panels,
							LfgScorer *sc);

/*
 * Approximate clipped scores of every item for user vector x, by the
 * scorer's panels or one sgemv. Within the bound that lfg_recommend_top_k
 * uses of the exact ones.
 */
extern void lfg_score_all(const LfgMfParams *mf, const LfgScorer *sc, const float *x,
						  float *scores);

/*
 * The bound on |lfg_score_all - lfg_score_one| for item i and user vector
 * x, or (i < 0) for every item
 */
extern double lfg_score_error_bound(const LfgMfParams *mf, const LfgScorer *sc, const float *x,
									int32_t i);

/*
 * Clipped predicted rating of item i (dense index) for user vector x; i = -1
 * (an unknown item) gives the mean plus the user's bias, as lfg_mf_predict.
 */
extern double lfg_score_one(const LfgMfParams *mf, const float *x, int32_t i);

/* The same before clipping to the rating range */
extern double lfg_score_raw(const LfgMfParams *mf, const float *x, int32_t i);

/*
 * What lists are ordered by (0.2.0). For a model with a ranking head
 * (mf->rank_R): b_u + c_i + r_i . p_u, the raw score of the order view
 * below. Otherwise the raw score plus the ranking prior when the model has
 * one. The same float arithmetic as every top k of lfg_serve.c.
 */
extern float lfg_order_score(const LfgMfParams *mf, const float *x, int32_t i);

/*
 * The parameters lists are ordered by: mf itself without a ranking head;
 * with one, view filled as mf with Q the head's R, b_i its c, mu 0, no
 * clipping (an infinite rating range) and no prior. The scoring panels,
 * the scorer and the approximate scores (lfg_score_panels_*,
 * lfg_scorer_init, lfg_score_all, lfg_score_error_bound) are those of this
 * view: they serve ordering only.
 */
extern const LfgMfParams *lfg_order_params(const LfgMfParams *mf, LfgMfParams *view);

/*
 * The indexes of the k best scores, best first, ties by smaller index;
 * entries equal to -INFINITY are never returned. heap holds k entries.
 * Returns how many were found.
 */
extern int32_t lfg_top_k(const float *scores, int32_t n, int32_t k, int32_t *heap);

/* Work arrays of lfg_recommend_top_k, each n_items long */
typedef struct LfgTopKWork
{
	float	   *scores;
	int32_t    *heap;
	int32_t    *cand;
	float	   *cand_scores;
	float	   *upper;			/* int8 panels: score plus the item's bound */
} LfgTopKWork;

/*
 * The k items with the best exact order scores (lfg_order_score: the raw
 * score, not clipped, so that items beyond the top of the rating scale do
 * not tie, plus the model's ranking prior; or the ranking head's score)
 * for ordering vector xo (lfg_order_vector), best first, ties by smaller
 * index, none of the n_exclude indexes in exclude: exactly the answer of
 * scoring every item exactly, computed from approximate scores (sc from
 * lfg_scorer_init) plus an exact rescoring of the few items their error
 * bound cannot rule out. Writes up to k indexes and their predicted
 * ratings for user vector x, clipped to the rating range (lfg_score_one);
 * returns how many.
 */
extern int32_t lfg_recommend_top_k(const LfgMfParams *mf, const LfgScorer *sc,
								   const float *x, const float *xo,
								   const int32_t *exclude, int32_t n_exclude, int32_t k,
								   LfgTopKWork *w, int32_t *out_items, float *out_scores);

#endif							/* LFG_SERVE_H */
