/*
 * serve_stages.c
 *	  Where one lfg_recommend call's compute goes, without PostgreSQL: the
 *	  user vector (generator, then fold-in) and the scores with the top-k
 *	  selection, for each scoring form this CPU has (sgemv, half precision
 *	  panels, int8 panels), warm and with other data read between calls
 *	  (as when other processes share the core).
 *
 *	  serve_stages MODEL_FILE [USERS] [RATINGS]
 *
 * MODEL_FILE holds a model's bytes as stored in lfg.models.model
 * (test/bench/latency.sh writes one). Each simulated user (seeded) rates
 * RATINGS (20) random known items with random ratings and demographics; the
 * median over USERS (5000) users of each stage is printed in microseconds.
 * Every form must give the same top 10 as the sgemv (the exact answer):
 * the exit status is 1 if one differs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crc32c_ref.h"
#include "test_util.h"
#include "bench_util.h"
#include "lfg_model.h"
#include "lfg_rng.h"
#include "lfg_serve.h"

#define TOP 10
#define COLD_BYTES (4 << 20)

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, n, sizeof(double), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int
main(int argc, char **argv)
{
	static const char *const names[] = {"sgemv", "half panels", "int8 panels"};
	int			users = argc > 2 ? atoi(argv[2]) : 5000,
				nr = argc > 3 ? atoi(argv[3]) : 20,
				wrong = 0;
	uint8_t    *junk = malloc(COLD_BYTES);
	LfgModel	m;
	LfgError	err;
	LfgServeScratch s;
	LfgTopKWork w;
	double	   *t_gen,
			   *t_vec,
			   *t_top;
	int32_t    *item,
			   *ref_items,
				top_items[TOP];
	float	   *rating,
			   *x,
			   *xo,
				top_scores[TOP];
	long		sink = 0;

	if (argc < 2 || users < 1 || nr < 0 || junk == NULL)
	{
		fprintf(stderr, "usage: %s MODEL_FILE [USERS] [RATINGS]\n", argv[0]);
		return 2;
	}
	if (!read_model(argv[1], crc32c_ref, &m))
		return 2;
	if (nr > m.mf.n_items)
		nr = m.mf.n_items;
	if (lfg_serve_scratch_alloc(&m, nr, &A, &s, &err) != LFG_OK)
	{
		fprintf(stderr, "%s\n", err.msg);
		return 2;
	}
	w.scores = malloc(sizeof(float) * m.mf.n_items);
	w.heap = malloc(sizeof(int32_t) * m.mf.n_items);
	w.cand = malloc(sizeof(int32_t) * m.mf.n_items);
	w.cand_scores = malloc(sizeof(float) * m.mf.n_items);
	w.upper = malloc(sizeof(float) * m.mf.n_items);
	x = malloc(sizeof(float) * 2 * (m.mf.k + 1));
	xo = x + m.mf.k + 1;
	item = malloc(sizeof(int32_t) * (nr + 1));
	rating = malloc(sizeof(float) * (nr + 1));
	ref_items = malloc(sizeof(int32_t) * TOP * users);
	t_gen = malloc(sizeof(double) * users);
	t_vec = malloc(sizeof(double) * users);
	t_top = malloc(sizeof(double) * users);
	memset(junk, 1, COLD_BYTES);

	printf("%s: %s model, %d items, %d factors; %d new users x %d ratings; median us per user\n",
		   argv[1], m.mf.kind == LFG_KIND_LFG ? "lfg" : "mf", m.mf.n_items, m.mf.k, users, nr);
	printf("%-12s %-5s %10s %12s %14s %10s\n", "scoring", "cache", "generator", "user vector",
		   "scores+top 10", "whole");
	for (int cold = 0; cold < 2; cold++)
		for (LfgPanelFormat format = LFG_PANELS_NONE; format <= LFG_PANELS_INT8; format++)
		{
			size_t		np = lfg_score_panels_size(&m.mf, format);
			void	   *panels = np > 0 ? aligned_alloc(64, (np + 63) / 64 * 64) : NULL;
			LfgScorer	sc;
			LfgRng		rng;
			double		whole;
			bool		failed = false;

			if (format != LFG_PANELS_NONE && panels == NULL)
				continue;		/* no kernel for it on this CPU */
			if (panels != NULL)
				lfg_score_panels_fill(&m.mf, format, panels);
			lfg_scorer_init(&m.mf, format, panels, &sc);
			lfg_rng_seed(&rng, 7);
			for (int u = 0; u < users; u++)
			{
				LfgNetUser	nu;
				double		t0,
							t1;
				int32_t		found;

				for (int j = 0; j < nr; j++)
				{
					bool		again;

					do
					{
						item[j] = (int32_t) lfg_rng_below(&rng, (uint64_t) m.mf.n_items);
						again = false;
						for (int i = 0; i < j; i++)
							again |= item[i] == item[j];
					} while (again);
					rating[j] = (float) (1 + lfg_rng_below(&rng, 5));
				}
				nu = (LfgNetUser) {nr, item, rating, 18.0f + u % 40, u % 2, u % 21};
				for (size_t o = 0; cold && o < COLD_BYTES; o += 64)
					sink += junk[o]++;
				t0 = now_us();
				if (m.mf.kind == LFG_KIND_LFG &&
					lfg_user_vector(&m, &nu, LFG_DEFAULT_FOLDIN_REG, false, &s, x, &err) != LFG_OK)
				{
					failed = true;
					break;
				}
				t_gen[u] = now_us() - t0;
				for (size_t o = 0; cold && o < COLD_BYTES; o += 64)
					sink += junk[o]++;
				t0 = now_us();
				if (lfg_user_vector(&m, &nu, LFG_DEFAULT_FOLDIN_REG, true, &s, x, &err) != LFG_OK ||
					lfg_order_vector(&m, &nu, x, &s, xo, &err) != LFG_OK)
				{
					failed = true;
					break;
				}
				t1 = now_us();
				found = lfg_recommend_top_k(&m.mf, &sc, x, xo, item, nr, TOP, &w, top_items, top_scores);
				t_top[u] = now_us() - t1;
				t_vec[u] = t1 - t0;
				for (int j = 0; j < found; j++)
				{
					if (format == LFG_PANELS_NONE && !cold)
						ref_items[u * TOP + j] = top_items[j];
					else
						wrong += ref_items[u * TOP + j] != top_items[j];
				}
			}
			if (failed)
			{
				fprintf(stderr, "%s\n", err.msg);
				return 2;
			}
			whole = median(t_vec, users) + median(t_top, users);
			printf("%-12s %-5s %10.2f %12.2f %14.2f %10.2f\n", names[format],
				   cold ? "cold" : "warm", median(t_gen, users), median(t_vec, users),
				   median(t_top, users), whole);
			free(panels);
		}
	printf("cold: %d MB of other data read before each stage; generator: the user vector "
		   "without the fold-in (lfg models)\n", COLD_BYTES >> 20);
	printf("%s: every form's top %d %s the sgemv's for all %d users (%ld)\n",
		   wrong ? "FAIL" : "ok", TOP, wrong ? "does not equal" : "equals", users, sink & 1);
	return wrong ? 1 : 0;
}
