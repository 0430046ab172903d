/*
 * test_rank.c
 *	  Unit tests of the ranking metrics (lfg_rank.c) and of EASE
 *	  (lfg_ease.c), built without PostgreSQL headers.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "lfg_rank.h"

#define NEAR(a, b) (fabs((a) - (b)) < 1e-12)

/* The three metrics of rec against rel at k */
static void
metrics(const int64_t *rec, int64_t n_rec, const int64_t *rel_in, int64_t n_rel, int64_t k,
		double *p, double *r, double *nd)
{
	int64_t    *rel = malloc(sizeof(int64_t) * (size_t) (n_rel + 1));
	uint8_t    *seen = malloc((size_t) n_rel + 1);
	LfgRankCounts c;
	int64_t		m;

	memcpy(rel, rel_in, sizeof(int64_t) * (size_t) n_rel);
	m = lfg_rank_set(rel, n_rel);
	lfg_rank_count(rec, n_rec, rel, m, k, seen, &c);
	*p = lfg_rank_precision(&c, k);
	*r = lfg_rank_recall(&c);
	*nd = lfg_rank_ndcg(&c);
	free(rel);
	free(seen);
}

static void
test_metrics(void)
{
	int64_t		rec[] = {7, 3, 9, 1, 4};
	int64_t		rel[] = {1, 3, 8};
	int64_t		dup[] = {3, 3, 1};
	int64_t		reldup[] = {3, 1, 3, 8, 1};
	double		p,
				r,
				nd,
				dcg,
				idcg;

	/* hits at positions 2 and 4 of the first 5 */
	metrics(rec, 5, rel, 3, 5, &p, &r, &nd);
	dcg = 1.0 / log2(3.0) + 1.0 / log2(5.0);
	idcg = 1.0 + 1.0 / log2(3.0) + 1.0 / log2(4.0);
	CHECK(NEAR(p, 2.0 / 5.0) && NEAR(r, 2.0 / 3.0) && NEAR(nd, dcg / idcg),
		  "P@5 %g R@5 %g NDCG@5 %g", p, r, nd);

	/* k = 2: one hit; the ideal DCG has min(2, 3) = 2 terms */
	metrics(rec, 5, rel, 3, 2, &p, &r, &nd);
	CHECK(NEAR(p, 0.5) && NEAR(r, 1.0 / 3.0) &&
		  NEAR(nd, (1.0 / log2(3.0)) / (1.0 + 1.0 / log2(3.0))), "k=2: %g %g %g", p, r, nd);

	/* k beyond the list: missing positions are misses, precision divides by k */
	metrics(rec, 5, rel, 3, 20, &p, &r, &nd);
	CHECK(NEAR(p, 2.0 / 20.0) && NEAR(r, 2.0 / 3.0), "k=20: %g %g", p, r);

	/* a perfect list */
	metrics(rel, 3, rel, 3, 3, &p, &r, &nd);
	CHECK(NEAR(p, 1.0) && NEAR(r, 1.0) && NEAR(nd, 1.0), "perfect: %g %g %g", p, r, nd);

	/* repeats in the list count once, at the first position */
	metrics(dup, 3, rel, 3, 3, &p, &r, &nd);
	dcg = 1.0 + 1.0 / log2(4.0);
	CHECK(NEAR(p, 2.0 / 3.0) && NEAR(r, 2.0 / 3.0) &&
		  NEAR(nd, dcg / (1.0 + 1.0 / log2(3.0) + 1.0 / log2(4.0))), "repeats: %g %g %g", p, r, nd);

	/* repeats in the relevant set are one item */
	metrics(rec, 5, reldup, 5, 5, &p, &r, &nd);
	CHECK(NEAR(r, 2.0 / 3.0), "relevant repeats: recall %g", r);

	/* empty list, empty relevant set */
	metrics(rec, 0, rel, 3, 10, &p, &r, &nd);
	CHECK(p == 0.0 && r == 0.0 && nd == 0.0, "empty list: %g %g %g", p, r, nd);
	metrics(rec, 5, rel, 0, 10, &p, &r, &nd);
	CHECK(p == 0.0 && r == 0.0 && nd == 0.0, "nothing relevant: %g %g %g", p, r, nd);

	/* a long random list: every metric within [0, 1], NDCG 1 iff the hits lead */
	{
		int64_t		big[200],
					brel[50];
		uint64_t	s = 12345;

		for (int j = 0; j < 200; j++)
		{
			s = s * 6364136223846793005ULL + 1442695040888963407ULL;
			big[j] = (int64_t) (s >> 56);	/* 0..255, with repeats */
		}
		for (int j = 0; j < 50; j++)
			brel[j] = 3 * j;
		for (int k = 1; k <= 200; k += 7)
		{
			metrics(big, 200, brel, 50, k, &p, &r, &nd);
			CHECK(p >= 0 && p <= 1 && r >= 0 && r <= 1 && nd >= 0 && nd <= 1 + 1e-12,
				  "bounds at k=%d: %g %g %g", k, p, r, nd);
		}
	}
}

int
main(void)
{
	test_metrics();
	return report_results();
}
