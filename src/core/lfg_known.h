/*
 * lfg_known.h
 *	  Serving what the model knows: the top k of a known user by the raw
 *	  (unclipped) score, items similar by the cosine of their factors, and
 *	  the exact decomposition of a fold-in score into per-rating shares.
 */
#ifndef LFG_KNOWN_H
#define LFG_KNOWN_H

#include "lfg_mf.h"
#include "lfg_serve.h"

/* An item (dense index) and its score */
typedef struct LfgScored
{
	double		score;
	int32_t		item;
} LfgScored;

/*
 * Which items a top k may return: every item, or only those in include
 * (when not NULL), never one in exclude. Dense indexes, in any order,
 * duplicates allowed.
 */
typedef struct LfgItemFilter
{
	const int32_t *include;		/* NULL: every item */
	int32_t		n_include;
	const int32_t *exclude;
	int32_t		n_exclude;
} LfgItemFilter;

/*
 * Sort the k best of s[0..n) to the front, best first: higher score, ties
 * by smaller item. Returns min(k, n).
 */
extern int32_t lfg_select_top_k(LfgScored *s, int32_t n, int32_t k);

/*
 * The raw (unclipped) score of item i for user vector x (p_u then b_u),
 * in exactly lfg_mf_predict's arithmetic, so that clipping it gives
 * lfg_mf_predict's answer bit for bit when x is a stored user's row.
 */
extern double lfg_known_raw(const LfgMfParams *mf, const float *x, int32_t i);

/* raw clipped to the training rating range, as lfg_mf_predict clips */
extern double lfg_known_clip(const LfgMfParams *mf, double raw);

/*
 * The k items of best raw score for x among those the filter allows, best
 * first, ties by smaller index: exactly the answer of scoring each allowed
 * item with lfg_known_raw and sorting. A long include list or none: the
 * scorer (lfg_scorer_init: panels or sgemv) gives approximate scores of
 * the catalogue, within a proven bound of the exact ones, and only the
 * items the bound cannot rule out are rescored exactly. A short include
 * list: only its items are scored. approx holds n_items floats. out holds
 * min(k, n_items) entries; *found is how many were written. For a model
 * with a ranking head (0.2.0) the items are those of best raw score of the
 * head for ordering vector xo (lfg_order_params: c_i + r_i . r_u, the
 * order of new users' lists), and each is written with its raw predicted
 * rating for x; without one xo is not read.
 */
extern LfgStatus lfg_known_top_k(const LfgMfParams *mf, const LfgScorer *sc,
								 const float *x, const float *xo,
								 const LfgItemFilter *f, int32_t k,
								 float *approx, const LfgAllocator *a, LfgScored *out,
								 int32_t *found, LfgError *err);

/*
 * Cosine of two factor vectors in double precision; 0 when either is the
 * zero vector.
 */
extern double lfg_cosine(const float *a, const float *b, int32_t k);

/*
 * The k items whose factors q_i are most similar to item's by cosine,
 * best first, ties by smaller index, item itself never included. out
 * holds min(k, n_items) entries. check (may be NULL) is called every few
 * thousand items and may raise.
 */
extern LfgStatus lfg_similar_top_k(const LfgMfParams *mf, int32_t item, const LfgItemFilter *f,
								   int32_t k, LfgCheckFn check, void *ctx,
								   const LfgAllocator *a, LfgScored *out, int32_t *found,
								   LfgError *err);

/*
 * The exact decomposition of a fold-in score (doc/serving.md, "Explaining
 * a score"). For ratings (item[e], rating[e]), e < n, the fold-in vector
 * x = g + (A^T A + reg I)^-1 A^T (y - A g) of lfg_serve.c (g = prior, zero
 * when NULL) gives item j (dense index, or -1 for an item the model does
 * not know) the raw score c_j + a_j . x, which is
 *	 base + sum_e contrib[e]
 * with base = c_j + a_j . g and contrib[e] = h_e (y_e - a_e . g), where
 * h = A (A^T A + reg I)^-1 a_j. Computed in double precision; check (may
 * be NULL) is called once per rating and per row of the factorisation and
 * may raise.
 */
extern LfgStatus lfg_explain_fold_in(const LfgMfParams *mf, const int32_t *item,
									 const float *rating, int32_t n, double reg,
									 const float *prior, int32_t j, LfgCheckFn check,
									 void *ctx, const LfgAllocator *a, double *contrib,
									 double *base, LfgError *err);

#endif							/* LFG_KNOWN_H */
