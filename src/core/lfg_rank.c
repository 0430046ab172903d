/*
 * lfg_rank.c
 *	  Ranking metrics with binary relevance (lfg_rank.h).
 *
 * Position j (1-based) of the list is a hit when its item is relevant and
 * did not appear earlier in the list: a list that repeats an item cannot
 * score more than one that does not, so precision, recall and NDCG stay
 * within [0, 1]. DCG@k sums 1 / log2(j + 1) over the hits among the first
 * k positions; the ideal DCG puts min(k, |relevant|) hits at the top
 * (Jarvelin and Kekalainen 2002, with binary gains).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lfg_rank.h"

static int
compare_ids(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a,
				y = *(const int64_t *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* See lfg_rank.h */
int64_t
lfg_rank_set(int64_t *ids, int64_t n)
{
	int64_t		m = 0;

	if (n <= 0)
		return 0;
	qsort(ids, (size_t) n, sizeof(int64_t), compare_ids);
	for (int64_t j = 0; j < n; j++)
		if (m == 0 || ids[m - 1] != ids[j])
			ids[m++] = ids[j];
	return m;
}

/* Index of id in the sorted set, or -1 */
static int64_t
find(const int64_t *set, int64_t n, int64_t id)
{
	int64_t		lo = 0,
				hi = n - 1;

	while (lo <= hi)
	{
		int64_t		mid = lo + (hi - lo) / 2;

		if (set[mid] == id)
			return mid;
		if (set[mid] < id)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

/* See lfg_rank.h */
void
lfg_rank_count(const int64_t *rec, int64_t n_rec, const int64_t *rel, int64_t n_rel,
			   int64_t k, uint8_t *seen, LfgRankCounts *out)
{
	int64_t		top = n_rec < k ? n_rec : k,
				ideal = n_rel < k ? n_rel : k;

	memset(out, 0, sizeof(*out));
	out->n_relevant = n_rel;
	if (n_rel > 0)
		memset(seen, 0, (size_t) n_rel);
	for (int64_t j = 0; j < top && n_rel > 0; j++)
	{
		int64_t		r = find(rel, n_rel, rec[j]);

		if (r < 0 || seen[r])
			continue;
		seen[r] = 1;
		out->hits++;
		out->dcg += 1.0 / log2((double) j + 2.0);
	}
	for (int64_t j = 0; j < ideal; j++)
		out->idcg += 1.0 / log2((double) j + 2.0);
}

/* See lfg_rank.h */
double
lfg_rank_precision(const LfgRankCounts *c, int64_t k)
{
	return (double) c->hits / (double) k;
}

/* See lfg_rank.h */
double
lfg_rank_recall(const LfgRankCounts *c)
{
	return c->n_relevant > 0 ? (double) c->hits / (double) c->n_relevant : 0.0;
}

/* See lfg_rank.h */
double
lfg_rank_ndcg(const LfgRankCounts *c)
{
	return c->idcg > 0.0 ? c->dcg / c->idcg : 0.0;
}
