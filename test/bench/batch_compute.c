/*
 * batch_compute.c
 *	  The compute floor of serving every known user their top 10, without
 *	  PostgreSQL: the machine's single-threaded sgemm rate on the whole
 *	  score matrix (n_users x n_items x k multiply-adds, the arithmetic lower
 *	  bound), and lfg_known_top_k (what lfg_recommend_user runs) for every
 *	  user in turn.
 *
 *	  batch_compute MODEL_FILE [ROUNDS]
 *
 * MODEL_FILE holds a model's bytes as stored in lfg.models.model
 * (test/bench/batch.sh writes one). Prints one line of key=value pairs
 * (times are the best of ROUNDS, default 3):
 *   scoring              the scorer's form (as a backend builds it)
 *   users items factors  the model's sizes
 *   macs                 n_users x n_items x k
 *   sgemm_s sgemm_gflops P Q^T in one sgemm (2 flops per multiply-add)
 *   topk_s topk_users_per_s  lfg_known_top_k for every user, k = 10
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crc32c_ref.h"
#include "test_util.h"
#include "bench_util.h"
#include "lfg_blas.h"
#include "lfg_known.h"
#include "lfg_model.h"
#include "lfg_serve.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	int			rounds = argc > 2 ? atoi(argv[2]) : 3;
	LfgModel	m;
	LfgError	err;
	LfgScorer	sc;
	float	   *S,
			   *approx,
			   *x;
	LfgScored	top[10];
	double		best_gemm = INFINITY,
				best_topk = INFINITY,
				macs,
				sink = 0.0;
	LfgItemFilter f = {0};
	LfgPanelFormat format;
	void	   *panels = NULL;

	if (argc < 2 || rounds < 1)
	{
		fprintf(stderr, "usage: %s MODEL_FILE [ROUNDS]\n", argv[0]);
		return 2;
	}
	if (!read_model(argv[1], crc32c_ref, &m))
		return 2;
	lfg_blas_single_thread();
	S = malloc(sizeof(float) * (size_t) m.mf.n_users * m.mf.n_items);
	approx = malloc(sizeof(float) * m.mf.n_items);
	x = malloc(sizeof(float) * 2 * (m.mf.k + 1));
	if (S == NULL || approx == NULL || x == NULL)
		return 2;
	/* the scorer a backend builds: the best panels for this CPU */
	format = lfg_score_panels_best(&m.mf);
	if (lfg_score_panels_size(&m.mf, format) > 0)
	{
		size_t		size = lfg_score_panels_size(&m.mf, format);

		panels = aligned_alloc(64, (size + 63) & ~(size_t) 63);
		lfg_score_panels_fill(&m.mf, format, panels);
	}
	lfg_scorer_init(&m.mf, format, panels, &sc);
	macs = (double) m.mf.n_users * m.mf.n_items * m.mf.k;
	for (int r = 0; r < rounds; r++)
	{
		double		t0 = now_s();

		lfg_gemm(0, 1, m.mf.n_users, m.mf.n_items, m.mf.k, 1.0f, m.mf.P, m.mf.k, m.mf.Q, m.mf.k,
				 0.0f, S, m.mf.n_items);
		best_gemm = fmin(best_gemm, now_s() - t0);
		sink += S[(size_t) r * 7919 % ((size_t) m.mf.n_users * m.mf.n_items)];
	}
	for (int r = 0; r < rounds; r++)
	{
		double		t0 = now_s();

		for (int32_t u = 0; u < m.mf.n_users; u++)
		{
			int32_t		found;

			memcpy(x, m.mf.P + (size_t) u * m.mf.k, sizeof(float) * m.mf.k);
			x[m.mf.k] = m.mf.bu != NULL ? m.mf.bu[u] : 0.0f;
			/* the ranking vector, as lfg_recommend_user orders by it */
			if (m.mf.rank_P != NULL)
				memcpy(x + m.mf.k + 1, m.mf.rank_P + (size_t) u * m.mf.k, sizeof(float) * m.mf.k);
			x[2 * m.mf.k + 1] = 0.0f;
			if (lfg_known_top_k(&m.mf, &sc, x, x + m.mf.k + 1, &f, 10, approx, &A, top, &found,
								&err) != LFG_OK)
			{
				fprintf(stderr, "%s\n", err.msg);
				return 1;
			}
			sink += top[0].score;
		}
		best_topk = fmin(best_topk, now_s() - t0);
	}
	printf("scoring=%s users=%d items=%d factors=%d macs=%.4g sgemm_s=%.4f sgemm_gflops=%.1f topk_s=%.4f "
		   "topk_users_per_s=%.0f checksum=%.3g\n",
		   format == LFG_PANELS_INT8 ? "int8" : format == LFG_PANELS_HALF ? "half" : "sgemv",
		   m.mf.n_users, m.mf.n_items, m.mf.k, macs, best_gemm, 2.0 * macs / best_gemm / 1e9,
		   best_topk, m.mf.n_users / best_topk, sink);
	return 0;
}
