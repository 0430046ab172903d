/*
 * test_known.c
 *	  Unit tests of lfg_known.c: the top k by raw score against scoring
 *	  every allowed item and sorting, similar items against the same, and
 *	  the explanation's shares against the fold-in's score.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "lfg_known.h"
#include "lfg_rng.h"
#include "lfg_serve.h"

enum
{
	K = 16, NI = 700
};

static float Q[NI * K],
			bi[NI],
			bu_dummy[1],
			R[NI * K],
			c[NI];
static int64_t ids[NI];

/* A model with random item factors; ties by repeated rows */
static void
make_model(LfgModel *m, int kind, LfgRng *rng)
{
	for (int j = 0; j < NI * K; j++)
		Q[j] = (float) (0.3 * lfg_rng_normal(rng));
	for (int j = 0; j < NI; j++)
	{
		bi[j] = (float) (0.4 * lfg_rng_normal(rng));
		ids[j] = 3 * j + 1;
	}
	/* exact ties: items 10, 11 and 500 identical */
	memcpy(Q + 11 * K, Q + 10 * K, sizeof(float) * K);
	memcpy(Q + 500 * K, Q + 10 * K, sizeof(float) * K);
	bi[11] = bi[500] = bi[10];
	memset(Q + 20 * K, 0, sizeof(float) * K);	/* a zero vector */
	memset(m, 0, sizeof(*m));
	m->mf = (LfgMfParams) {kind, 1, NI, K, 3.5f, 1.0f, 5.0f, NULL, Q, NULL, NULL, NULL, NULL, NULL, NULL};
	if (kind != LFG_KIND_SVD)
	{
		m->mf.bi = bi;
		m->mf.bu = bu_dummy;
	}
	m->item_ids = ids;
}

/* The reference: score every allowed item with lfg_known_raw and sort */
static int32_t
brute_top_k(const LfgMfParams *mf, const float *x, const LfgItemFilter *f, int32_t k,
			LfgScored *out, bool cosine, int32_t self)
{
	uint8_t		allow[NI];
	int32_t		n = 0;

	memset(allow, f->include == NULL, sizeof(allow));
	for (int32_t j = 0; f->include != NULL && j < f->n_include; j++)
		allow[f->include[j]] = 1;
	for (int32_t j = 0; j < f->n_exclude; j++)
		allow[f->exclude[j]] = 0;
	if (self >= 0)
		allow[self] = 0;
	for (int32_t i = 0; i < NI; i++)
		if (allow[i])
		{
			out[n].item = i;
			out[n++].score = cosine ? lfg_cosine(mf->Q + (size_t) self * K, mf->Q + (size_t) i * K, K) :
				lfg_known_raw(mf, x, i);
		}
	/* a plain insertion sort: independent of lfg_select_top_k */
	for (int32_t a = 1; a < n; a++)
		for (int32_t b = a; b > 0 && (out[b].score > out[b - 1].score ||
									  (out[b].score == out[b - 1].score && out[b].item < out[b - 1].item)); b--)
		{
			LfgScored	t = out[b];

			out[b] = out[b - 1];
			out[b - 1] = t;
		}
	return n < k ? n : k;
}

static bool
same(const LfgScored *a, const LfgScored *b, int32_t n)
{
	for (int32_t j = 0; j < n; j++)
		if (a[j].item != b[j].item || a[j].score != b[j].score)
			return false;
	return true;
}

/*
 * Every scoring form the CPU has (sgemv, half and int8 panels), for each
 * kind and for an LFG model with a ranking head (chosen and ordered by the
 * head's scores of xo, each reported with its predicted rating for x)
 */
static void
test_top_k(void)
{
	static LfgScored got[NI],
				want[NI];
	static float approx[NI];
	static int32_t inc[NI],
				exc[NI];
	int			kinds[4] = {LFG_KIND_SVD, LFG_KIND_BIASSVD, LFG_KIND_LFG, LFG_KIND_LFG};
	LfgPanelFormat formats[3] = {LFG_PANELS_NONE, LFG_PANELS_HALF, LFG_PANELS_INT8};
	int			bad = 0,
				runs = 0,
				forms = 0;
	LfgRng		rng;
	LfgError	err;

	lfg_rng_seed(&rng, 5);
	for (int t = 0; t < 4; t++)
	{
		LfgModel	m;
		LfgMfParams view;
		const LfgMfParams *om;

		make_model(&m, kinds[t], &rng);
		if (t == 3)
		{
			/* the head: Q's factors reversed (ties kept), c = b_i + a popularity-like term */
			for (int i = 0; i < NI; i++)
			{
				for (int f = 0; f < K; f++)
					R[i * K + f] = Q[i * K + K - 1 - f];
				c[i] = bi[i] + (float) log1p((double) ((i * 37) % 300));
			}
			c[11] = c[500] = c[10];
			m.mf.rank_R = R;
			m.mf.rank_c = c;
		}
		om = lfg_order_params(&m.mf, &view);
		for (int fm = 0; fm < 3; fm++)
		{
			size_t		size = lfg_score_panels_size(&m.mf, formats[fm]);
			void	   *panels = NULL;
			LfgScorer	sc;

			if (formats[fm] != LFG_PANELS_NONE && size == 0)
				continue;		/* no kernel for this form on this CPU */
			if (size > 0)
			{
				panels = aligned_alloc(64, (size + 63) & ~(size_t) 63);
				lfg_score_panels_fill(&m.mf, formats[fm], panels);
			}
			lfg_scorer_init(&m.mf, formats[fm], panels, &sc);
			forms++;
			for (int rep = 0; rep < 120; rep++)
			{
				float		x[K + 1],
							xo[K + 1];
				int32_t		k = (int32_t[]) {1, 3, 10, 50, 699, 700, 5000}[rep % 7];
				LfgItemFilter f = {0};
				int32_t		found,
							nref;

				/* large vectors: many scores clipped at the maximum */
				for (int j = 0; j <= K; j++)
				{
					x[j] = (float) ((rep % 5 == 0 ? 30.0 : 1.0) * lfg_rng_normal(&rng));
					xo[j] = t == 3 ? (float) lfg_rng_normal(&rng) : x[j];
				}
				f.n_exclude = (int32_t) lfg_rng_below(&rng, 40);
				for (int32_t j = 0; j < f.n_exclude; j++)
					exc[j] = (int32_t) lfg_rng_below(&rng, NI);
				f.exclude = exc;
				if (rep % 3 != 0)
				{
					/* short (direct) and long (masked) include lists, with repeats */
					f.n_include = rep % 3 == 1 ? 1 + (int32_t) lfg_rng_below(&rng, 60) : 400;
					for (int32_t j = 0; j < f.n_include; j++)
						inc[j] = (int32_t) lfg_rng_below(&rng, NI);
					inc[0] = 11;
					f.include = inc;
				}
				CHECK(lfg_known_top_k(&m.mf, &sc, x, xo, &f, k, approx, &A, got, &found, &err) == LFG_OK,
					  "top k: %s", err.msg);
				nref = brute_top_k(om, xo, &f, k, want, false, -1);
				for (int32_t j = 0; om != &m.mf && j < nref; j++)
					want[j].score = lfg_known_raw(&m.mf, x, want[j].item);
				runs++;
				if (found != nref || !same(got, want, found))
					bad++;
			}
			free(panels);
		}
	}
	printf("  top k by raw score: %d runs over %d (kind, scoring form) pairs\n", runs, forms);
	CHECK(bad == 0, "top k by raw score equals scoring every allowed item and sorting (%d of %d differ)",
		  bad, runs);
}

/* lfg_known_raw clipped is lfg_mf_predict for a stored user, bit for bit */
static void
test_raw_is_predict(void)
{
	LfgModel	m;
	LfgRng		rng;
	float		P[3 * K],
				bu[3];
	int			bad = 0;

	lfg_rng_seed(&rng, 9);
	make_model(&m, LFG_KIND_BIASSVD, &rng);
	for (int j = 0; j < 3 * K; j++)
		P[j] = (float) (2.0 * lfg_rng_normal(&rng));
	for (int u = 0; u < 3; u++)
		bu[u] = (float) lfg_rng_normal(&rng);
	m.mf.P = P;
	m.mf.bu = bu;
	m.mf.n_users = 3;
	for (int u = 0; u < 3; u++)
	{
		float		x[K + 1];

		memcpy(x, P + u * K, sizeof(float) * K);
		x[K] = bu[u];
		for (int i = 0; i < NI; i++)
			bad += lfg_known_clip(&m.mf, lfg_known_raw(&m.mf, x, i)) != lfg_mf_predict(&m.mf, u, i);
	}
	CHECK(bad == 0, "clipped raw score equals lfg_mf_predict exactly (%d differ)", bad);
}

static void
test_similar(void)
{
	static LfgScored got[NI],
				want[NI];
	static int32_t exc[8] = {1, 2, 3, 11, 11, 600, 0, 5};
	LfgModel	m;
	LfgRng		rng;
	LfgError	err;
	int			bad = 0;

	lfg_rng_seed(&rng, 13);
	make_model(&m, LFG_KIND_BIASSVD, &rng);
	for (int32_t item = 0; item < NI; item += 37)
	{
		LfgItemFilter f = {NULL, 0, exc, item % 2 ? 8 : 0};
		int32_t		found,
					nref;

		CHECK(lfg_similar_top_k(&m.mf, item, &f, 10, NULL, NULL, &A, got, &found, &err) == LFG_OK, "similar: %s", err.msg);
		nref = brute_top_k(&m.mf, NULL, &f, 10, want, true, item);
		bad += found != nref || !same(got, want, found);
		for (int32_t j = 0; j < found; j++)
			bad += got[j].item == item;
	}
	CHECK(bad == 0, "similar items equal sorting every cosine, the item itself left out (%d bad)", bad);
	CHECK(lfg_cosine(Q + 10 * K, Q + 11 * K, K) > 1.0 - 1e-12, "cosine of identical rows is 1");
	CHECK(lfg_cosine(Q + 20 * K, Q + 11 * K, K) == 0.0, "cosine with a zero vector is 0");
}

/*
 * The explanation: base + sum of the shares equals the fold-in vector's
 * unclipped score, for every kind, both forms of the solve, with and
 * without a prior, known and unknown items
 */
static void
test_explain(void)
{
	int			kinds[2] = {LFG_KIND_SVD, LFG_KIND_BIASSVD};
	double		worst = 0.0;
	LfgRng		rng;
	LfgError	err;

	lfg_rng_seed(&rng, 21);
	for (int t = 0; t < 2; t++)
	{
		LfgModel	m;
		LfgServeScratch s;

		make_model(&m, kinds[t], &rng);
		CHECK(lfg_serve_scratch_alloc(&m, 64, &A, &s, &err) == LFG_OK, "scratch");
		for (int n = 0; n <= 40; n += 5)	/* d = 16 or 17: dual below, primal above */
		{
			int32_t		items[64];
			float		ratings[64],
						prior[K + 1],
						x[K + 1];
			double		contrib[64],
						base;
			LfgNetUser	u;

			for (int e = 0; e < n; e++)
			{
				items[e] = 7 * e + 3;
				ratings[e] = (float) (1 + lfg_rng_below(&rng, 5));
			}
			for (int f = 0; f <= K; f++)
				prior[f] = (float) (0.5 * lfg_rng_normal(&rng));
			u = (LfgNetUser) {n, items, ratings, NAN, -1, -1};
			for (int with_prior = 0; with_prior < 2; with_prior++)
			{
				const float *g = with_prior ? prior : NULL;

				CHECK(lfg_fold_in_prior(&m, &u, 5.0, g, &s, x, &err) == LFG_OK, "fold-in: %s", err.msg);
				for (int32_t j = -1; j < NI; j += 97)
				{
					double		want;

					CHECK(lfg_explain_fold_in(&m.mf, items, ratings, n, 5.0, g, j, NULL, NULL, &A, contrib,
											  &base, &err) == LFG_OK, "explain: %s", err.msg);
					want = lfg_known_raw(&m.mf, x, j);
					for (int e = 0; e < n; e++)
						base += contrib[e];
					worst = fmax(worst, fabs(base - want));
				}
			}
		}
	}
	CHECK(worst < 1e-4, "explanation shares sum to the fold-in score (max error %.3g)", worst);
}

static int	checks_called;

static void
count_check(void *ctx)
{
	(void) ctx;
	checks_called++;
}

/* A share is linear in its rating: doubling a deviation doubles the share */
static void
test_explain_linear(void)
{
	LfgModel	m;
	LfgRng		rng;
	LfgError	err;
	int32_t		items[3] = {5, 50, 400};
	float		r1[3] = {4, 2, 5},
				r2[3] = {4, 2, 1};
	double		c1[3],
				c2[3],
				b1,
				b2;

	lfg_rng_seed(&rng, 4);
	make_model(&m, LFG_KIND_BIASSVD, &rng);
	lfg_explain_fold_in(&m.mf, items, r1, 3, 5.0, NULL, 77, count_check, NULL, &A, c1, &b1, &err);
	lfg_explain_fold_in(&m.mf, items, r2, 3, 5.0, NULL, 77, NULL, NULL, &A, c2, &b2, &err);
	CHECK(checks_called >= 3, "the interrupt check is called during an explanation (%d calls)",
		  checks_called);
	CHECK(b1 == b2 && c1[0] == c2[0] && c1[1] == c2[1] && c1[2] != c2[2],
		  "changing one rating changes only its own share");
	CHECK(fabs((c1[2] - c2[2]) / (r1[2] - r2[2]) - c1[2] / (r1[2] - 3.5 - bi[400])) < 1e-9,
		  "a share is the rating's deviation times a weight that does not depend on it");
}

int
main(void)
{
	test_top_k();
	test_raw_is_predict();
	test_similar();
	test_explain();
	test_explain_linear();
	return report_results();
}
