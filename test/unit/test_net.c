/*
 * test_net.c
 *	  Unit tests of the LFG generator, loss, optimizer and training:
 *	  finite-difference gradient checks of every layer and of the full loss,
 *	  an Adam step, and training on a tiny synthetic problem.
 *	  Prints "N passed, N failed" and exits non-zero on any failure.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c_ref.h"
#include "test_util.h"
#include "lfg_blas.h"
#include "lfg_gen.h"
#include "lfg_model.h"
#include "lfg_net.h"
#include "lfg_optim.h"
#include "lfg_rng.h"
#include "lfg_serve.h"
#include "lfg_synth.h"


/* A tiny generator problem: 3 users, 7 items, fixed input and loss weights */
typedef struct GradProblem
{
	LfgGenConfig c;
	LfgGenLayout l;
	float	   *theta,
			   *running,
			   *grad;
	LfgGenWork	w;
	int32_t		ptr[4];
	int32_t		idx[9];
	float		val[18];
	float		dense[9];
	float		R[3 * 4];		/* loss = sum(out * R) */
	/* full-loss extras: item side and targets */
	LfgMfParams mf;
	float		Q[7 * 3],
				bi[7];
	int32_t		t_ptr[4],
				t_item[10];
	float		t_rating[10],
				t_weight[10];
} GradProblem;

static void
problem_init(GradProblem *p, int channels, int batchnorm, float dropout)
{
	LfgRng		rng;
	LfgError	err;
	int32_t		ptr[4] = {0, 3, 5, 9};
	int32_t		idx[9] = {0, 2, 6, 1, 2, 0, 3, 4, 5};

	memset(p, 0, sizeof(*p));
	p->c = (LfgGenConfig) {7, 3, 5, 4, 3, channels, batchnorm, 0.1f, dropout};
	lfg_gen_layout(&p->c, &p->l);
	p->theta = malloc(p->l.total * sizeof(float));
	p->grad = malloc(p->l.total * sizeof(float));
	p->running = malloc((p->l.n_running + 1) * sizeof(float));
	lfg_gen_init(&p->c, &p->l, p->theta, p->running, 3);
	lfg_rng_seed(&rng, 9);
	/* larger, asymmetric weights so that every unit is active and informative */
	for (size_t j = 0; j < p->l.total; j++)
		p->theta[j] += (float) (0.3 * lfg_rng_normal(&rng));
	if (lfg_gen_work_alloc(&p->c, 3, &A, &p->w, &err) != LFG_OK)
		exit(2);
	memcpy(p->ptr, ptr, sizeof(ptr));
	memcpy(p->idx, idx, sizeof(idx));
	for (int j = 0; j < 18; j++)
		p->val[j] = (float) lfg_rng_normal(&rng);
	for (int j = 0; j < 9; j++)
		p->dense[j] = (float) lfg_rng_normal(&rng);
	for (int j = 0; j < 12; j++)
		p->R[j] = (float) lfg_rng_normal(&rng);
	for (int j = 0; j < 21; j++)
		p->Q[j] = (float) (0.5 * lfg_rng_normal(&rng));
	for (int j = 0; j < 7; j++)
		p->bi[j] = (float) (0.2 * lfg_rng_normal(&rng));
	p->mf = (LfgMfParams) {LFG_KIND_LFG, 3, 7, 3, 3.5f, 1.0f, 5.0f, NULL, p->Q, NULL, p->bi, NULL, NULL, NULL, NULL};
	{
		int32_t		tp[4] = {0, 3, 6, 10};
		int32_t		ti[10] = {0, 1, 2, 3, 4, 5, 6, 0, 2, 4};

		memcpy(p->t_ptr, tp, sizeof(tp));
		memcpy(p->t_item, ti, sizeof(ti));
		for (int j = 0; j < 10; j++)
		{
			p->t_rating[j] = (float) (1 + j % 5);
			p->t_weight[j] = j % 3 == 0 ? 0.1f : 1.0f;
		}
	}
}

/* Which pre-activations are positive: a finite difference must not cross a kink */
static uint64_t
kink_signature(const GradProblem *p)
{
	uint64_t	sig = 1469598103934665603ULL;

	for (int j = 0; j < 3 * p->c.h1; j++)
		sig = (sig ^ (p->w.z1[j] > 0.0f)) * 1099511628211ULL;
	for (int j = 0; j < 3 * p->c.h2; j++)
		sig = (sig ^ (p->w.z2[j] > 0.0f)) * 1099511628211ULL;
	return sig;
}

/* The loss; the dropout mask is the same at every call (same seed) */
static double
problem_loss(GradProblem *p, int full, float *dout)
{
	LfgGenInput in = {3, p->ptr, p->idx, p->val, p->dense};
	LfgRng		drop;
	double		L = 0.0;

	lfg_rng_seed(&drop, 77);
	lfg_gen_forward(&p->c, &p->l, p->theta, p->running, &in, &p->w, 1, &drop);
	if (full)
	{
		double		wsum;
		float		dQ[21],
					dbi[7],
					scratch[12];

		if (dout == NULL)
			dout = scratch;
		memset(dQ, 0, sizeof(dQ));
		memset(dbi, 0, sizeof(dbi));
		return lfg_net_loss(&p->mf, p->w.out, 3, p->t_ptr, p->t_item, p->t_rating,
							p->t_weight, dout, dQ, dbi, &wsum);
	}
	for (int j = 0; j < 12; j++)
	{
		L += (double) p->w.out[j] * p->R[j];
		if (dout)
			dout[j] = p->R[j];
	}
	return L;
}

/*
 * Compare the analytic gradient of the tensor at [off, off + n) with
 * central differences; returns the largest relative error.
 */
static double
check_tensor(GradProblem *p, int full, size_t off, size_t n)
{
	float		dout[12];
	double		worst = 0.0;
	uint64_t	base;

	memset(p->grad, 0, p->l.total * sizeof(float));
	problem_loss(p, full, dout);
	{
		LfgGenInput in = {3, p->ptr, p->idx, p->val, p->dense};

		lfg_gen_backward(&p->c, &p->l, p->theta, &in, &p->w, dout, p->grad);
	}
	base = kink_signature(p);
	for (size_t j = off; j < off + n; j++)
	{
		float		keep = p->theta[j];
		double		h = 1e-3,
					lp,
					lm,
					num,
					rel;
		bool		kink;

		p->theta[j] = keep + (float) h;
		lp = problem_loss(p, full, NULL);
		kink = kink_signature(p) != base;
		p->theta[j] = keep - (float) h;
		lm = problem_loss(p, full, NULL);
		kink |= kink_signature(p) != base;
		p->theta[j] = keep;
		if (kink)
			continue;			/* the loss is not differentiable across a kink */
		num = (lp - lm) / (2 * h);

		/*
		 * float32 forward passes leave about 1e-4 of noise in a central
		 * difference: entries below 2e-2 are checked against that absolute
		 * tolerance, the others by relative error
		 */
		if (fmax(fabs(num), fabs(p->grad[j])) < 2e-2)
			rel = fabs(num - p->grad[j]) / 5e-4 * 1e-2;
		else
			rel = fabs(num - p->grad[j]) / fmax(fabs(num), fabs(p->grad[j]));
		if (getenv("GRADDEBUG") && rel > 1e-2)
			printf("    entry %zu: numeric %g analytic %g\n", j - off, num, p->grad[j]);
		worst = fmax(worst, rel);
	}
	return worst;
}

static void
report(const char *layer, double worst)
{
	CHECK(worst < 1e-2, "gradient check %s: relative error %.3g", layer, worst);
	printf("  gradient check %-44s max error %.2e (relative; 1e-2 = tolerance)\n", layer, worst);
}

static void
test_gradients(void)
{
	GradProblem p;

	/* no BatchNorm, no dropout: sparse and dense linear, LeakyReLU, Tanh */
	problem_init(&p, 2, 0, 0.0f);
	report("sparse linear (layer 1, 2 channels)", check_tensor(&p, 0, p.l.W1s, 7 * 2 * 5));
	report("dense linear (layer 1, demographics)", check_tensor(&p, 0, p.l.W1d, 3 * 5));
	report("bias + LeakyReLU (layer 1)", check_tensor(&p, 0, p.l.b1, 5));
	report("dense linear + LeakyReLU (layer 2)", check_tensor(&p, 0, p.l.W2, 5 * 4));
	report("dense linear + Tanh (layer 3)", check_tensor(&p, 0, p.l.W3, 4 * 4));
	report("output bias + Tanh", check_tensor(&p, 0, p.l.b3, 4));
	/* BatchNorm in training mode */
	problem_init(&p, 1, 1, 0.0f);
	report("BatchNorm 1 scale and shift", check_tensor(&p, 0, p.l.g1, 2 * 5));
	report("BatchNorm 2 scale and shift", check_tensor(&p, 0, p.l.g2, 2 * 4));
	report("through BatchNorm (sparse linear, 1 channel)", check_tensor(&p, 0, p.l.W1s, 7 * 5));
	report("through BatchNorm (layer 2)", check_tensor(&p, 0, p.l.W2, 5 * 4));
	/* dropout with a fixed mask */
	problem_init(&p, 2, 1, 0.4f);
	report("through dropout (fixed mask), layer 1", check_tensor(&p, 0, p.l.W1s, 7 * 2 * 5));
	report("through dropout (fixed mask), layer 2", check_tensor(&p, 0, p.l.W2, 5 * 4));
	/* the full loss: weighted MSE of mu + b_u + b_i + p.q through the network */
	problem_init(&p, 2, 1, 0.3f);
	report("full loss, all generator parameters", check_tensor(&p, 1, 0, p.l.total));
}

/* The item-side gradient of the full loss (dQ, dbi) by finite differences */
static void
test_item_gradients(void)
{
	GradProblem p;
	float		out[12],
				dout[12],
				dQ[21],
				dbi[7];
	double		wsum,
				worst = 0.0;
	LfgRng		rng;

	problem_init(&p, 1, 0, 0.0f);
	lfg_rng_seed(&rng, 5);
	for (int j = 0; j < 12; j++)
		out[j] = (float) (0.5 * lfg_rng_normal(&rng));
	memset(dQ, 0, sizeof(dQ));
	memset(dbi, 0, sizeof(dbi));
	lfg_net_loss(&p.mf, out, 3, p.t_ptr, p.t_item, p.t_rating, p.t_weight, dout, dQ, dbi, &wsum);
	for (int j = 0; j < 28; j++)
	{
		float	   *x = j < 21 ? &p.Q[j] : &p.bi[j - 21];
		float		g = j < 21 ? dQ[j] : dbi[j - 21];
		float		keep = *x;
		double		lp,
					lm,
					num;
		float		scratch[12];

		*x = keep + 1e-2f;
		lp = lfg_net_loss(&p.mf, out, 3, p.t_ptr, p.t_item, p.t_rating, p.t_weight, scratch, NULL, NULL, &wsum);
		*x = keep - 1e-2f;
		lm = lfg_net_loss(&p.mf, out, 3, p.t_ptr, p.t_item, p.t_rating, p.t_weight, scratch, NULL, NULL, &wsum);
		*x = keep;
		num = (lp - lm) / 2e-2;
		worst = fmax(worst, fabs(num - g) / fmax(1e-2, fabs(num) + fabs(g)));
	}
	report("full loss, item factors and biases", worst);
	/* and the gradient with respect to the generator output */
	worst = 0.0;
	for (int j = 0; j < 12; j++)
	{
		float		keep = out[j];
		double		lp,
					lm,
					num;
		float		scratch[12];

		out[j] = keep + 1e-2f;
		lp = lfg_net_loss(&p.mf, out, 3, p.t_ptr, p.t_item, p.t_rating, p.t_weight, scratch, NULL, NULL, &wsum);
		out[j] = keep - 1e-2f;
		lm = lfg_net_loss(&p.mf, out, 3, p.t_ptr, p.t_item, p.t_rating, p.t_weight, scratch, NULL, NULL, &wsum);
		out[j] = keep;
		num = (lp - lm) / 2e-2;
		worst = fmax(worst, fabs(num - dout[j]) / fmax(1e-2, fabs(num) + fabs(dout[j])));
	}
	report("full loss, generator output (p_u, b_u)", worst);
}

/* One and two Adam steps against the formulas, computed by hand in double */
static void
test_adam(void)
{
	LfgAdam		opt;
	LfgError	err;
	float		theta[2] = {1.0f, -2.0f};
	float		g1[2] = {0.5f, -0.1f},
				g2[2] = {0.2f, 0.3f};
	double		lr = 0.01,
				wd = 0.1,
				b1 = 0.9,
				b2 = 0.999,
				eps = 1e-8;
	double		th[2] = {1.0, -2.0},
				m[2] = {0, 0},
				v[2] = {0, 0};
	double		diff = 0.0;

	CHECK(lfg_adam_init(&opt, 2, (float) lr, (float) wd, &A, &err) == LFG_OK, "adam init");
	for (int t = 1; t <= 2; t++)
	{
		float	   *g = t == 1 ? g1 : g2;

		for (int j = 0; j < 2; j++)
		{
			double		gj = g[j] + wd * th[j];

			m[j] = b1 * m[j] + (1 - b1) * gj;
			v[j] = b2 * v[j] + (1 - b2) * gj * gj;
			th[j] -= lr * (m[j] / (1 - pow(b1, t))) / (sqrt(v[j] / (1 - pow(b2, t))) + eps);
		}
		lfg_adam_step(&opt, theta, g);
	}
	for (int j = 0; j < 2; j++)
		diff = fmax(diff, fabs(th[j] - theta[j]));
	CHECK(diff < 1e-6, "two Adam steps match the formulas (diff %g)", diff);
	CHECK(fabs(theta[0] - 1.0f) > 0.015, "Adam moved the parameter");
}

/* Training on a tiny synthetic problem reaches a known low error */
static void
test_tiny_training(void)
{
	LfgSynthData s;
	LfgError	err;
	LfgNetOptions o;
	LfgMfParams mf;
	LfgNet		net;
	LfgNetStats st;
	float		age[300];
	int32_t		gender[300],
				job[300];
	LfgUsers	u = {300, age, gender, job, 2, 3};
	LfgRatings	d;
	double		mean = 0.0,
				base = 0.0;

	CHECK(lfg_synth_generate(300, 120, 12000, 4, &A, &s, &err) == LFG_OK, "synthetic data");
	for (int j = 0; j < 300; j++)
	{
		age[j] = (float) (18 + j % 50);
		gender[j] = j % 2;
		job[j] = j % 4 == 3 ? -1 : j % 3;
	}
	for (size_t j = 0; j < s.n; j++)
		mean += s.rating[j];
	mean /= (double) s.n;
	for (size_t j = 0; j < s.n; j++)
		base += (s.rating[j] - mean) * (s.rating[j] - mean);
	base = sqrt(base / (double) s.n);
	d = (LfgRatings) {s.n, 300, 120, s.user, s.item, s.rating};
	for (int preset = 0; preset <= 1; preset++)
	{
		lfg_net_options_preset(&o, preset);
		o.h1 = o.h2 = 32;
		o.factors = 8;
		o.epochs = 200;
		o.lr = 3e-3;
		o.batch_size = 32;
		/*
		 * this checks that training fits; "auto" would regularise 12,000
		 * ratings at its most (dropout 0.7, weight decay 0.012), so paper's
		 * values for 40,000 ratings and more are pinned
		 */
		if (preset == LFG_PRESET_PAPER)
		{
			o.dropout = 0.5;
			o.weight_decay = 3e-3;
		}
		CHECK(lfg_net_train(&d, &u, &o, NULL, &A, &mf, &net, &st, &err) == LFG_OK,
			  "train preset %d: %s", preset, err.msg);
		/* the data's noise floor is about 0.67 (N(0, 0.6) noise, then rounding) */
		CHECK(st.train_rmse < 0.9 * base, "preset %d reaches a low error: %.4f (baseline %.4f)",
			  preset, st.train_rmse, base);
		CHECK(!isnan(st.best_val_rmse) && st.best_val_rmse < 0.9 * base,
			  "preset %d validation %.4f below baseline %.4f", preset, st.best_val_rmse, base);
		printf("  tiny problem, preset %d: train rmse %.4f, validation %.4f, baseline %.4f\n",
			   preset, st.train_rmse, st.best_val_rmse, base);
	}
}

/* Reference ridge solution (A^T A + reg I) x = A^T y + reg g in double */
static void
ridge_reference(const double *A, const double *y, const double *g, int n, int d, double reg,
				double *x)
{
	double		M[8][9];

	for (int a = 0; a < d; a++)
	{
		for (int b = 0; b < d; b++)
		{
			M[a][b] = a == b ? reg : 0.0;
			for (int e = 0; e < n; e++)
				M[a][b] += A[e * d + a] * A[e * d + b];
		}
		M[a][d] = reg * g[a];
		for (int e = 0; e < n; e++)
			M[a][d] += A[e * d + a] * y[e];
	}
	for (int c = 0; c < d; c++)	/* Gauss-Jordan, the system is SPD */
		for (int r = 0; r < d; r++)
			if (r != c)
			{
				double		f = M[r][c] / M[c][c];

				for (int j = c; j <= d; j++)
					M[r][j] -= f * M[c][j];
			}
	for (int a = 0; a < d; a++)
		x[a] = M[a][d] / M[a][a];
}

/* Fold-in (primal and dual forms) against the reference; top k against a sort */
static void
test_serving(void)
{
	enum {K = 4, NI = 12};
	float		Q[NI * K],
				bi[NI],
				x[K + 1],
				scores[NI];
	int64_t		ids[NI];
	int32_t		items[10],
				heap[NI];
	float		ratings[10];
	LfgModel	m;
	LfgServeScratch s;
	LfgScorer	sc;
	LfgError	err;
	LfgRng		rng;

	lfg_rng_seed(&rng, 17);
	for (int j = 0; j < NI * K; j++)
		Q[j] = (float) lfg_rng_normal(&rng);
	for (int j = 0; j < NI; j++)
	{
		bi[j] = (float) (0.3 * lfg_rng_normal(&rng));
		ids[j] = 10 * j;
	}
	memset(&m, 0, sizeof(m));
	m.mf = (LfgMfParams) {LFG_KIND_BIASSVD, 1, NI, K, 3.5f, 1.0f, 5.0f, NULL, Q, NULL, bi, NULL, NULL, NULL, NULL};
	m.mf.bu = bi;				/* marks the model as biased; not read */
	m.item_ids = ids;
	CHECK(lfg_serve_scratch_alloc(&m, 10, &A, &s, &err) == LFG_OK, "serve scratch");
	for (int n = 0; n <= 10; n += 3)	/* 0, 3 (dual), 6, 9 (primal: d = 5) */
	{
		double		Ad[10 * (K + 1)],
					y[10],
					g[K + 1] = {0},
					ref[K + 1];
		double		diff = 0.0;
		LfgNetUser	u;

		for (int e = 0; e < n; e++)
		{
			items[e] = (e * 5) % NI;
			ratings[e] = (float) (1 + (e * 3) % 5);
			for (int f = 0; f < K; f++)
				Ad[e * (K + 1) + f] = Q[items[e] * K + f];
			Ad[e * (K + 1) + K] = 1.0;
			y[e] = ratings[e] - 3.5 - bi[items[e]];
		}
		ridge_reference(Ad, y, g, n, K + 1, 2.0, ref);
		u = (LfgNetUser) {n, items, ratings, NAN, -1, -1};
		CHECK(lfg_user_vector(&m, &u, 2.0, true, &s, x, &err) == LFG_OK, "fold-in %d: %s", n, err.msg);
		for (int j = 0; j <= K; j++)
			diff = fmax(diff, fabs(ref[j] - x[j]));
		CHECK(diff < 1e-4, "fold-in with %d ratings (%s form) matches the ridge solution (diff %g)",
			  n, n < K + 1 ? "dual" : "primal", diff);
	}
	/* top k: best first, ties by index, -inf excluded */
	lfg_scorer_init(&m.mf, LFG_PANELS_NONE, NULL, &sc);
	lfg_score_all(&m.mf, &sc, x, scores);
	scores[3] = scores[7];		/* a tie */
	scores[5] = -INFINITY;		/* a rated item */
	{
		int32_t		found = lfg_top_k(scores, NI, 4, heap);
		int			ok = found == 4;

		for (int j = 0; j < found; j++)
		{
			int			better = 0;

			for (int i = 0; i < NI; i++)
				better += scores[i] != -INFINITY && (scores[i] > scores[heap[j]] ||
													 (scores[i] == scores[heap[j]] && i < heap[j]));
			ok &= better == j;	/* exactly j items rank above the j-th */
		}
		CHECK(ok, "top 4 are the best 4 in order, ties by index");
		CHECK(lfg_top_k(scores, NI, NI, heap) == NI - 1, "k above the catalogue returns every non-excluded item");
	}
	/* a user vector that is not finite is an error (before any scoring kernel runs) */
	{
		LfgNetUser	u;

		items[0] = 2;
		items[1] = 7;
		ratings[0] = 4.0f;
		ratings[1] = NAN;
		for (int n = 2; n <= 2 * (K + 1); n += 2 * (K + 1) - 2)	/* dual, then primal form */
		{
			for (int e = 2; e < n; e++)
			{
				items[e] = e;
				ratings[e] = 3.0f;
			}
			u = (LfgNetUser) {n, items, ratings, NAN, -1, -1};
			CHECK(lfg_user_vector(&m, &u, 2.0, true, &s, x, &err) == LFG_EDATA &&
				  strstr(err.msg, "not finite") != NULL && err.hint[0] != '\0',
				  "fold-in (%d ratings) to a vector that is not finite is refused: %s", n, err.msg);
		}
		ratings[1] = 2.0f;
		CHECK(lfg_user_vector(&m, &u, 2.0, true, &s, x, &err) == LFG_OK, "finite again: %s", err.msg);
	}
}

static const float *exact_for_cmp;

/* best first, ties by smaller index */
static int
by_exact_score(const void *a, const void *b)
{
	int32_t		i = *(const int32_t *) a,
				j = *(const int32_t *) b;

	if (exact_for_cmp[i] != exact_for_cmp[j])
		return exact_for_cmp[i] > exact_for_cmp[j] ? -1 : 1;
	return i < j ? -1 : i > j;
}

/*
 * Top k for a new user: lfg_recommend_top_k (approximate scores from each
 * panel format the CPU has, and from the sgemv, then exact rescoring of
 * the candidates) against scoring every item exactly with lfg_score_one
 * and sorting: the same items in the same order with the same scores, for
 * many users, with exclusions, exact ties (duplicated items), near ties,
 * clipping at both ends, factors and user vectors in float's subnormal
 * range, k = 1 .. beyond the catalogue, and a catalogue that is not a
 * multiple of the panel width. Three variants per form: no prior, the
 * ranking prior, and a ranking head (lists ordered by c_i + r_i . xo for an
 * ordering vector xo other than x, scores still x's predicted ratings).
 */
static void
test_recommend_top_k(void)
{
	enum { N = 1203, D = 13, USERS = 300 };
	static float Q[N * D], bi[N], scores[N], cand_scores[N], upper[N], out_scores[N], exact[N],
				prior[N], R[N * D], c[N];
	static int32_t heap[N], cand[N], out_items[N], order[N], excl[8];
	static _Alignas(64) uint8_t panels[1 << 16];
	float		x[D + 1],
				xo[D + 1];
	LfgRng		rng;
	LfgMfParams mf = {.kind = LFG_KIND_BIASSVD, .n_items = N, .k = D, .mu = 3.0f,
	.rating_min = 1.0f, .rating_max = 5.0f, .Q = Q, .bi = bi};
	LfgTopKWork w = {scores, heap, cand, cand_scores, upper};
	static const char *const names[] = {"sgemv", "half-precision panels", "int8 panels"};
	int			mismatches = 0,
				approx_far = 0,
				clipped = 0,
				beyond = 0,
				cases = 0;
	LfgScorer	sc;

	lfg_rng_seed(&rng, 7);
	for (int i = 0; i < N * D; i++)
		Q[i] = (float) (0.4 * lfg_rng_normal(&rng));
	for (int i = 0; i < N; i++)
		bi[i] = (float) (0.3 * lfg_rng_normal(&rng));
	for (int i = 10; i < 20; i++)	/* exact ties: items 10..19 copy items 0..9 */
	{
		for (int f = 0; f < D; f++)
			Q[i * D + f] = Q[(i - 10) * D + f];
		bi[i] = bi[i - 10];
	}
	for (int i = 20; i < 120; i++)	/* near ties, closer than half precision resolves */
	{
		for (int f = 0; f < D; f++)
			Q[i * D + f] = Q[(i % 20) * D + f] * (1.0f + (float) (1e-4 * lfg_rng_normal(&rng)));
		bi[i] = bi[i % 20];
	}
	for (int i = 120; i < 124; i++)	/* factors in float's subnormal range */
		for (int f = 0; f < D; f++)
			Q[i * D + f] = (float) (1e-41 * lfg_rng_normal(&rng));
	/* a ranking prior like 3 ln(1 + raters), equal within the tied items */
	for (int i = 0; i < N; i++)
		prior[i] = (float) (3.0 * log1p((double) (lfg_rng_below(&rng, 500))));
	for (int i = 10; i < 20; i++)
		prior[i] = prior[i - 10];
	/* the head: Q with its factors rotated, c = b_i + prior (ties, near ties and subnormals kept) */
	for (int i = 0; i < N; i++)
	{
		for (int f = 0; f < D; f++)
			R[i * D + f] = Q[i * D + (f + 1) % D];
		c[i] = bi[i] + prior[i];
	}
	for (int variant = 0; variant < 3 * (LFG_PANELS_INT8 + 1); variant++)
	{
		LfgPanelFormat format = (LfgPanelFormat) (variant / 3);
		bool		head = variant % 3 == 2;
		LfgMfParams view;
		const LfgMfParams *om;

		mf.rank_prior = variant % 3 ? prior : NULL;
		mf.rank_R = head ? R : NULL;
		mf.rank_c = head ? c : NULL;
		om = lfg_order_params(&mf, &view);
		CHECK(head == (om != &mf), "order view");
		size_t		np = lfg_score_panels_size(&mf, format);
		const void *pn = np > 0 ? panels : NULL;

		if (format != LFG_PANELS_NONE && np == 0)
		{
			printf("skip: no kernel for %s (this CPU, or the portable build)\n", names[format]);
			continue;
		}
		CHECK(np <= sizeof(panels), "panel size %zu", np);
		if (np > 0)
			lfg_score_panels_fill(&mf, format, panels);
		lfg_scorer_init(&mf, format, pn, &sc);
		CHECK(sc.format == format, "scorer format %d", (int) sc.format);
		double		bound,
					diff_max = 0.0,
					bound_min = INFINITY;

		mismatches = approx_far = clipped = beyond = cases = 0;
		for (int u = 0; u < USERS; u++)
		{
			int			k = u % 7 == 0 ? N + 5 : 1 + u % 25,
						nex = u % 9,
						found,
						expect = 0;
			/* large vectors clip; some are tiny (subnormal products) */
			double		scale = u % 3 == 0 ? 2.5 : u % 11 == 5 ? 1e-39 : 0.5;

			for (int f = 0; f <= D; f++)
			{
				x[f] = (float) (scale * lfg_rng_normal(&rng));
				xo[f] = head ? (float) (scale * lfg_rng_normal(&rng)) : x[f];
			}
			xo[D] = head ? 0.0f : x[D];
			for (int j = 0; j < nex; j++)
				excl[j] = (int32_t) ((u * 31 + j * 17) % N);
			/* the reference: every item exactly, sorted by score then index */
			for (int i = 0; i < N; i++)
			{
				bool		ex = false;

				for (int j = 0; j < nex; j++)
					ex |= excl[j] == i;
				/* lists order raw scores (plus the prior); the scores they report are clipped */
				exact[i] = ex ? -INFINITY : head ? lfg_order_score(&mf, xo, i) :
					(float) lfg_score_raw(&mf, x, i) + (mf.rank_prior ? mf.rank_prior[i] : 0.0f);
				clipped += !ex && (exact[i] >= 5.0f || exact[i] <= 1.0f);
				if (!ex)
					order[expect++] = i;
			}
			exact_for_cmp = exact;
			qsort(order, expect, sizeof(int32_t), by_exact_score);
			found = lfg_recommend_top_k(&mf, &sc, x, xo, excl, nex, k, &w, out_items, out_scores);
			mismatches += found != (k < expect ? k : expect);
			for (int j = 0; j < found; j++)
			{
				mismatches += out_items[j] != order[j] ||
					out_scores[j] != (float) lfg_score_one(&mf, x, order[j]);
				/* two items at the top of the scale: ordered by their raw scores */
				beyond += j > 0 && (mf.rank_prior != NULL ||
									(out_scores[j] == 5.0f && out_scores[j - 1] == 5.0f)) &&
					exact[order[j]] < exact[order[j - 1]] && out_scores[j] == out_scores[j - 1];
			}
			/* the scorer scores the order view: the head's scores of xo */
			lfg_score_all(&mf, &sc, xo, scores);
			bound = lfg_score_error_bound(&mf, &sc, xo, -1);
			for (int i = 0; i < N; i++)
			{
				double		diff = fabs(scores[i] - lfg_score_one(om, xo, i)),
							item = lfg_score_error_bound(&mf, &sc, xo, i);

				approx_far += diff > item || item > bound ||
					(format != LFG_PANELS_INT8 && diff > 0.05);
				diff_max = fmax(diff_max, diff);
				bound_min = fmin(bound_min, item);
			}
			cases++;
		}
		CHECK(mismatches == 0 && approx_far == 0 && clipped > 0 && (head || beyond > 0),
			  "top k (%s%s) equals exact raw scoring and sorting in %d cases (%d mismatches, "
			  "%d approximate scores beyond their item's error bound (or 0.05 but for int8), "
			  "%d clipped scores, %d pairs at the top of the scale ordered by raw score; "
			  "largest error %.4f, smallest bound %.4f)",
			  names[format], head ? ", ranking head" : mf.rank_prior ? ", ranking prior" : "", cases, mismatches, approx_far,
			  clipped, beyond, diff_max, bound_min);
	}
}

/*
 * lfg_top_k against sorting: arrays of 1 to 5,000 scores in random,
 * ascending (every item better than the last: the most replacements) and
 * descending order, with ties, runs of equal scores and -INFINITY entries,
 * for k = 1 .. 40 (the insertion form up to 16, the heap beyond).
 */
static void
test_top_k(void)
{
	enum { MAXN = 5000 };
	static float scores[MAXN];
	static int32_t order[MAXN], out[MAXN];
	static const int32_t sizes[] = {1, 7, 64, 255, 640, 1203, 3706, 5000};
	LfgRng		rng;
	int			wrong = 0,
				cases = 0;

	lfg_rng_seed(&rng, 11);
	for (int si = 0; si < (int) (sizeof(sizes) / sizeof(sizes[0])); si++)
		for (int shape = 0; shape < 4; shape++)
			for (int k = 1; k <= 40; k += (k < 20 ? 1 : 7))
			{
				int32_t		n = sizes[si],
							expect = 0,
							found;

				for (int32_t i = 0; i < n; i++)
				{
					/* 0 random, 1 ascending, 2 descending, 3 few distinct values */
					scores[i] = shape == 1 ? (float) i : shape == 2 ? (float) (n - i) :
						shape == 3 ? (float) lfg_rng_below(&rng, 5) : (float) lfg_rng_normal(&rng);
					if (lfg_rng_below(&rng, 10) == 0)
						scores[i] = -INFINITY;
				}
				for (int32_t i = 0; i < n; i++)
					if (scores[i] != -INFINITY)
						order[expect++] = i;
				exact_for_cmp = scores;
				qsort(order, expect, sizeof(int32_t), by_exact_score);
				found = lfg_top_k(scores, n, k, out);
				wrong += found != (k < expect ? k : expect);
				for (int32_t j = 0; j < found && j < expect; j++)
					wrong += out[j] != order[j];
				cases++;
			}
	CHECK(wrong == 0, "lfg_top_k equals sorting in %d cases (%d differences)", cases, wrong);
}

/*
 * Warm start: a BiasSVD model started from another keeps the rows of the
 * users and items both know (almost unchanged with a negligible learning
 * rate) and starts the others fresh; an LFG model's generator starts from
 * the earlier generator (its second layer unchanged at a negligible rate),
 * with the first-layer rows of known items and of shared dense inputs.
 */
static void
test_warm_start(void)
{
	LfgSynthData s;
	LfgError	err;
	LfgMfOptions mo;
	LfgMfParams old,
				warm,
				lmf,
				lmf2;
	LfgNetOptions no;
	LfgNet		net,
				net2;
	LfgNetStats st;
	LfgRatings	d,
				d2;
	LfgWarmStart w;
	int32_t		umap[200],
				imap[80],
				dmap[16];
	float		age[200];
	int32_t		gender[200],
				job[200];
	LfgUsers	u = {200, age, gender, job, 2, 3};
	double		diff = 0.0,
				moved = 0.0,
				w2diff = 0.0,
				w1diff = 0.0;
	double		rmse;
	size_t		kept_rows = 0;

	CHECK(lfg_synth_generate(200, 80, 6000, 5, &A, &s, &err) == LFG_OK, "synthetic data");
	d = (LfgRatings) {s.n, 200, 80, s.user, s.item, s.rating};
	lfg_mf_options_default(&mo);
	mo.factors = 6;
	mo.epochs = 20;
	CHECK(lfg_mf_train(&d, &mo, NULL, &A, &old, &rmse, &err) == LFG_OK, "old model: %s", err.msg);
	/* the new data knows users 0..149 and items 0..59 as old ones, shifted */
	for (int j = 0; j < 200; j++)
		umap[j] = j < 150 ? j : -1;
	for (int j = 0; j < 80; j++)
		imap[j] = j < 60 ? j : -1;
	w = (LfgWarmStart) {&old, umap, imap, NULL, NULL};
	mo.warm = &w;
	mo.epochs = 1;
	mo.lr = 1e-9;
	CHECK(lfg_mf_train(&d, &mo, NULL, &A, &warm, &rmse, &err) == LFG_OK, "warm model: %s", err.msg);
	for (int i = 0; i < 80; i++)
		for (int f = 0; f < 6; f++)
		{
			double		e = fabs(warm.Q[i * 6 + f] - old.Q[i * 6 + f]);

			if (i < 60)
				diff = fmax(diff, e);
			else
				moved = fmax(moved, e);
		}
	for (int j = 0; j < 150; j++)
		diff = fmax(diff, fabs(warm.bu[j] - old.bu[j]) + fabs(warm.P[j * 6] - old.P[j * 6]));
	CHECK(diff < 1e-5 && moved > 1e-3, "warm BiasSVD keeps known rows (diff %g), new ones start fresh (%g)",
		  diff, moved);
	mo.factors = 7;
	CHECK(lfg_mf_train(&d, &mo, NULL, &A, &warm, &rmse, &err) == LFG_EPARAM,
		  "warm start across factor counts is refused");

	/* LFG: a first model, then one warm-started at a negligible rate */
	for (int j = 0; j < 200; j++)
	{
		age[j] = (float) (18 + j % 50);
		gender[j] = j % 2;
		job[j] = j % 3;
	}
	lfg_net_options_preset(&no, 1);
	no.h1 = no.h2 = 16;
	no.factors = 6;
	no.epochs = 5;
	no.pretrain_epochs = 5;
	no.batch_size = 32;
	CHECK(lfg_net_train(&d, &u, &no, NULL, &A, &lmf, &net, &st, &err) == LFG_OK, "lfg: %s", err.msg);
	CHECK(lfg_net_warm_compatible(&net, &no), "same shapes are compatible");
	/* dense inputs [age, gender x 2, job x 3, log1p n]: the same, except job 2 is new */
	for (int j = 0; j < net.gen.n_dense; j++)
		dmap[j] = j == 5 ? -1 : j;
	w = (LfgWarmStart) {&lmf, umap, imap, &net, dmap};
	no.warm = &w;
	no.lr = 1e-9;
	no.epochs = 1;
	no.seed = 99;				/* a fresh start would differ everywhere */
	d2 = d;
	CHECK(lfg_net_train(&d2, &u, &no, NULL, &A, &lmf2, &net2, &st, &err) == LFG_OK, "warm lfg: %s", err.msg);
	for (size_t j = 0; j < (size_t) net.gen.h1 * net.gen.h2; j++)
		w2diff = fmax(w2diff, fabs(net2.theta[net2.layout.W2 + j] - net.theta[net.layout.W2 + j]));
	for (int i = 0; i < 60; i++)
		for (size_t j = 0; j < (size_t) net.gen.channels * net.gen.h1; j++, kept_rows++)
		{
			size_t		row = (size_t) i * net.gen.channels * net.gen.h1 + j;

			w1diff = fmax(w1diff, fabs(net2.theta[net2.layout.W1s + row] - net.theta[net.layout.W1s + row]));
		}
	CHECK(w2diff < 1e-5 && w1diff < 1e-5 && kept_rows > 0,
		  "warm LFG starts from the earlier generator (layer 2 diff %g, known items' rows %g)", w2diff, w1diff);
	no.h1 = 20;
	CHECK(!lfg_net_warm_compatible(&net, &no), "other hidden sizes are not compatible");

	/* serving the first model: a user vector that is not finite is an error */
	{
		LfgModel	lm;
		LfgServeScratch ls;
		float		lx[6 + 1],
					rt[2] = {4.0f, 2.0f};
		int32_t		it[2] = {1, 2};
		LfgNetUser	nu = {2, it, rt, 30.0f, 1, 2};
		float	   *theta = malloc(net.layout.total * sizeof(float));

		memset(&lm, 0, sizeof(lm));
		lm.mf = lmf;
		lm.net = net;
		CHECK(lfg_serve_scratch_alloc(&lm, 2, &A, &ls, &err) == LFG_OK, "lfg serve scratch");
		CHECK(lfg_user_vector(&lm, &nu, 5.0, false, &ls, lx, &err) == LFG_OK &&
			  lfg_user_vector(&lm, &nu, 5.0, true, &ls, lx, &err) == LFG_OK, "lfg user vector: %s", err.msg);
		rt[1] = NAN;
		CHECK(lfg_user_vector(&lm, &nu, 5.0, true, &ls, lx, &err) == LFG_EDATA,
			  "a refined generator output that is not finite is refused");
		rt[1] = 2.0f;
		memcpy(theta, net.theta, net.layout.total * sizeof(float));
		theta[net.layout.b3] = NAN; /* tanh(NaN): the generator's own output */
		lm.net.theta = theta;
		CHECK(lfg_user_vector(&lm, &nu, 5.0, false, &ls, lx, &err) == LFG_EDATA,
			  "a generator output that is not finite is refused");
		free(theta);
	}
}

/* lfg_gemm_mt against OpenBLAS in its three forms, with ragged edges */
static void
test_gemm_mt(void)
{
	static const int shapes[][3] = {{37, 70, 29}, {4, 16, 8}, {1, 3, 300}, {66, 17, 5}};
	LfgRng		rng;

	lfg_rng_seed(&rng, 7);
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
		for (int form = 0; form < 3; form++)
		{
			int			m = shapes[s][0],
						n = shapes[s][1],
						k = shapes[s][2],
						ta = form == 1,
						tb = form == 2;
			float	   *A = malloc(sizeof(float) * m * k),
					   *B = malloc(sizeof(float) * k * n),
					   *C1 = malloc(sizeof(float) * m * n),
					   *C2 = malloc(sizeof(float) * m * n);
			double		diff = 0.0;

			for (int j = 0; j < m * k; j++)
				A[j] = (float) lfg_rng_normal(&rng);
			for (int j = 0; j < k * n; j++)
				B[j] = (float) lfg_rng_normal(&rng);
			for (int j = 0; j < m * n; j++)
				C1[j] = C2[j] = (float) lfg_rng_normal(&rng);
			lfg_gemm(ta, tb, m, n, k, 0.5f, A, ta ? m : k, B, tb ? k : n, 1.0f, C1, n);
			lfg_gemm_mt(ta, tb, m, n, k, 0.5f, A, ta ? m : k, B, tb ? k : n, 1.0f, C2, n);
			for (int j = 0; j < m * n; j++)
				diff = fmax(diff, fabs(C1[j] - C2[j]));
			CHECK(diff < 1e-4 * sqrt((double) k), "gemm_mt %dx%dx%d ta %d tb %d: diff %g", m, n, k,
				  ta, tb, diff);
			free(A);
			free(B);
			free(C1);
			free(C2);
		}
}

/* Train a small LFG (preset, rank head with new_user) on threads; its hash */
static uint32_t
train_lfg_threads(const LfgSynthData *s, int nu, int ni, int preset, int parallel)
{
	LfgNetOptions o;
	LfgMfParams mf;
	LfgNet		net;
	LfgNetStats st;
	LfgError	err;
	float	   *age = malloc(sizeof(float) * nu);
	int32_t    *gender = malloc(sizeof(int32_t) * nu),
			   *job = malloc(sizeof(int32_t) * nu);
	LfgUsers	u = {nu, age, gender, job, 2, 3};
	LfgRatings	d = {s->n, nu, ni, s->user, s->item, s->rating};
	size_t		k;
	uint32_t	h = 0;

	for (int j = 0; j < nu; j++)
	{
		age[j] = (float) (18 + j % 50);
		gender[j] = j % 2;
		job[j] = j % 3;
	}
	lfg_net_options_preset(&o, preset);
	/* more than one task of rows (100), features (40) and items (700) */
	o.h1 = o.h2 = 40;
	o.factors = 8;
	o.epochs = 3;
	o.rank_epochs = 2;
	o.pretrain_epochs = 2;
	o.batch_size = 100;
	o.parallel = parallel;
	CHECK(lfg_net_train(&d, &u, &o, NULL, &A, &mf, &net, &st, &err) == LFG_OK,
		  "train preset %d on %d threads: %s", preset, parallel, err.msg);
	k = (size_t) mf.k;
	h = h * 31 + crc32c_ref(net.theta, net.layout.total * sizeof(float));
	h = h * 31 + crc32c_ref(net.running, net.layout.n_running * sizeof(float));
	h = h * 31 + crc32c_ref(mf.Q, ni * k * sizeof(float));
	h = h * 31 + crc32c_ref(mf.bi, ni * sizeof(float));
	h = h * 31 + crc32c_ref(mf.P, nu * k * sizeof(float));
	h = h * 31 + crc32c_ref(mf.bu, nu * sizeof(float));
	if (net.rank_theta != NULL)
	{
		h = h * 31 + crc32c_ref(net.rank_theta, net.layout.total * sizeof(float));
		h = h * 31 + crc32c_ref(mf.rank_P, nu * k * sizeof(float));
		h = h * 31 + crc32c_ref(mf.rank_R, ni * k * sizeof(float));
		h = h * 31 + crc32c_ref(mf.rank_c, ni * sizeof(float));
	}
	free(age);
	free(gender);
	free(job);
	return h;
}

/*
 * LFG's training gives the same bits on 1, 2 and 5 threads, with both
 * presets (new_user with its ranking head)
 */
static void
test_lfg_parallel_identical(void)
{
	int			nu = 400,
				ni = 700;
	LfgSynthData s;
	LfgError	err;

	CHECK(lfg_synth_generate(nu, ni, 20000, 4, &A, &s, &err) == LFG_OK, "synth: %s", err.msg);
	for (int preset = 0; preset <= 1; preset++)
	{
		uint32_t	h1 = train_lfg_threads(&s, nu, ni, preset, 1),
					h2 = train_lfg_threads(&s, nu, ni, preset, 2),
					h5 = train_lfg_threads(&s, nu, ni, preset, 5);

		CHECK(h1 == h2 && h1 == h5, "preset %d: identical models on 1, 2 and 5 threads (%08x %08x %08x)",
			  preset, h1, h2, h5);
	}
}

int
main(void)
{
	lfg_blas_single_thread();
	test_gradients();
	test_item_gradients();
	test_adam();
	test_serving();
	test_top_k();
	test_recommend_top_k();
	test_tiny_training();
	test_warm_start();
	test_gemm_mt();
	test_lfg_parallel_identical();
	return report_results();
}
