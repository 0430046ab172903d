/*
 * lfg_rank.h
 *	  Ranking metrics with binary relevance: precision@k, recall@k and
 *	  NDCG@k of a recommended list against a set of relevant items
 *	  (/work/shared/RANKING.md, doc/reference.md).
 */
#ifndef LFG_RANK_H
#define LFG_RANK_H

#include "lfg_core.h"

/* What one list scores at k */
typedef struct LfgRankCounts
{
	int64_t		hits;			/* distinct relevant items among the first k */
	int64_t		n_relevant;		/* distinct relevant items */
	double		dcg;			/* sum over hits at position j (1-based) of 1 / log2(j + 1) */
	double		idcg;			/* the DCG of min(k, n_relevant) hits at the top */
} LfgRankCounts;

/*
 * Sort ids ascending and drop repeats, in place; returns the distinct count
 * (the relevant items are a set)
 */
extern int64_t lfg_rank_set(int64_t *ids, int64_t n);

/*
 * Count the hits of the first min(k, n_rec) entries of rec against the
 * sorted distinct set rel (lfg_rank_set). A relevant item counts once, at
 * its first position: a later repeat is a miss that still takes its
 * position. seen has n_rel bytes of scratch. k must be at least 1.
 */
extern void lfg_rank_count(const int64_t *rec, int64_t n_rec, const int64_t *rel, int64_t n_rel,
						   int64_t k, uint8_t *seen, LfgRankCounts *out);

/* hits / k */
extern double lfg_rank_precision(const LfgRankCounts *c, int64_t k);

/* hits / n_relevant; 0 when nothing is relevant */
extern double lfg_rank_recall(const LfgRankCounts *c);

/* dcg / idcg; 0 when nothing is relevant */
extern double lfg_rank_ndcg(const LfgRankCounts *c);

#endif							/* LFG_RANK_H */
