/*
 * lfg_serve.c
 *	  New-user vectors, catalogue scores and top-k selection.
 *
 * Fold-in: with the item side fixed, the user vector x = (p_u, b_u) that
 * minimises
 *	 sum_i (r_i - mu - b_i - q_i . p_u - b_u)^2 + reg ||x - g||^2
 * solves the (k + 1) x (k + 1) system (A^T A + reg I) x = A^T y + reg g,
 * with A's rows (q_i, 1) and y_i = r_i - mu - b_i, or, with fewer ratings
 * than unknowns, its n x n dual. The prior g is zero for
 * SVD and BiasSVD (classic fold-in) and the generator's output for LFG, so
 * the refinement pulls the generated vector toward the user's own ratings
 * as they accumulate. For SVD there is no bias: A's rows are q_i, y_i = r_i.
 * The system (lfg_syrk_n or lfg_syrk_t), one or two sgemv and one Cholesky
 * solve (lfg_posv: spotrf and two strsv).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lfg_blas.h"
#include "lfg_serve.h"

/* Buffers for up to cap ratings */
LfgStatus
lfg_serve_scratch_alloc(const LfgModel *m, int32_t cap, const LfgAllocator *a,
						LfgServeScratch *s, LfgError *err)
{
	/* k + 1, or k0 + 1 for FBAS's fold-in with more factors */
	size_t		d = (size_t) lfg_foldin_vector_dim(m);
	LfgStatus	st;

	memset(s, 0, sizeof(*s));
	s->cap = cap;
	s->A = lfg_alloc_array(a, (size_t) cap * d + 1, sizeof(float));
	s->y = lfg_alloc_array(a, (size_t) cap + 1, sizeof(float));
	s->M = lfg_alloc_array(a, d * d, sizeof(float));	/* the system is at most d x d */
	s->rhs = lfg_alloc_array(a, d, sizeof(float));
	s->prior = lfg_alloc_array(a, d, sizeof(float));
	s->base = lfg_alloc_array(a, d, sizeof(float));
	s->rhs0 = lfg_alloc_array(a, d, sizeof(float));
	if (!s->A || !s->y || !s->M || !s->rhs || !s->prior || !s->base || !s->rhs0)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for serving");
	if (m->mf.kind == LFG_KIND_LFG &&
		(st = lfg_net_scratch_alloc(&m->net, cap, a, &s->net, err)) != LFG_OK)
		return st;
	return LFG_OK;
}

/* Rows a_e = (q_i, 1) (no 1 for SVD) into s->A and targets y_e into s->y */
static void
design(const LfgMfParams *mf, const LfgNetUser *u, int32_t d, LfgServeScratch *s)
{
	int32_t		k = mf->k;
	bool		biased = mf->bu != NULL;

	for (int32_t e = 0; e < u->n; e++)
	{
		int32_t		i = u->item[e];
		float	   *row = s->A + (size_t) e * d;

		memcpy(row, mf->Q + (size_t) i * k, (size_t) k * sizeof(float));
		if (biased)
		{
			row[k] = 1.0f;
			s->y[e] = u->rating[e] - mf->mu - mf->bi[i];
		}
		else
			s->y[e] = u->rating[e];
	}
}

/*
 * Solve the regularised least squares of the file header into x. With
 * fewer ratings than unknowns (the usual new user), the equivalent dual
 * form x = g + A^T (A A^T + reg I)^-1 (y - A g) solves an n x n system
 * instead of a (k + 1) x (k + 1) one.
 */
static LfgStatus
fold_in(const LfgMfParams *mf, const LfgNetUser *u, double reg, const float *prior,
		LfgServeScratch *s, float *x, LfgError *err)
{
	int32_t		k = mf->k;
	bool		biased = mf->bu != NULL;
	int32_t		d = biased ? k + 1 : k;
	int32_t		n = u->n;
	int32_t		m = n < d ? n : d;	/* the size of the system solved */
	int			info;

	design(mf, u, d, s);
	memset(s->M, 0, (size_t) m * m * sizeof(float));
	for (int32_t j = 0; j < m; j++)
		s->M[(size_t) j * m + j] = (float) reg;
	if (n < d)
	{
		/* dual: K = A A^T + reg I, r = y - A g, x = g + A^T K^-1 r */
		if (prior)
			lfg_gemv(0, n, d, -1.0f, s->A, d, prior, 1.0f, s->y);
		if (n > 0)
			lfg_syrk_n(n, d, s->A, s->M);
		info = n > 0 ? lfg_posv(n, s->M, s->y) : 0;
		if (info != 0)
			return lfg_error(err, LFG_EDATA, NULL, "fold-in system is singular (LAPACK info %d)", info);
		for (int32_t j = 0; j < d; j++)
			x[j] = prior ? prior[j] : 0.0f;
		if (n > 0)
			lfg_gemv(1, n, d, 1.0f, s->A, d, s->y, 1.0f, x);
	}
	else
	{
		/* primal: (A^T A + reg I) x = A^T y + reg g */
		for (int32_t j = 0; j < d; j++)
			s->rhs[j] = (float) reg * (prior ? prior[j] : 0.0f);
		lfg_syrk_t(d, n, s->A, s->M);
		lfg_gemv(1, n, d, 1.0f, s->A, d, s->y, 1.0f, s->rhs);
		info = lfg_posv(d, s->M, s->rhs);
		if (info != 0)
			return lfg_error(err, LFG_EDATA, NULL, "fold-in system is singular (LAPACK info %d)", info);
		memcpy(x, s->rhs, (size_t) d * sizeof(float));
	}
	if (!biased)
		x[k] = 0.0f;
	return LFG_OK;
}

/*
 * A user vector that overflowed (an extreme age through the generator, a
 * near-singular solve) is an error: the SIMD scoring kernels would clip a
 * NaN score to the minimum and the scalar path keep it, so the answer would
 * depend on the CPU.
 */
static LfgStatus
check_finite(const float *x, int32_t n, LfgError *err)
{
	for (int32_t j = 0; j < n; j++)
		if (!isfinite(x[j]))
		{
			lfg_error(err, LFG_EDATA,
					  "Pass ratings and an age like those the model was trained on, or raise "
					  "lfg.foldin_reg; a model that overflows on ordinary input needs retraining.",
					  "the new user's vector is not finite");
			lfg_error_detail(err, "Component %d of %d is %g.", j, n, (double) x[j]);
			return LFG_EDATA;
		}
	return LFG_OK;
}

/* reg must be positive and finite, or LFG_FOLDIN_LEARNED */
static LfgStatus
check_reg(double reg, LfgError *err)
{
	if ((reg > 0.0 && isfinite(reg)) || reg == LFG_FOLDIN_LEARNED)
		return LFG_OK;
	return lfg_error(err, LFG_EPARAM, "The default is 5.", "fold-in regularisation must be positive");
}

/*
 * Plain fold-in (reg 5) of u on the item side of the BiasSVD of an LFG
 * model's FBAS: x0 (k0 + 1 values) into x0, that side's view into view
 */
static LfgStatus
base_fold_in(const LfgModel *m, const LfgNetUser *u, LfgServeScratch *s, LfgMfParams *view,
			 float *x0, LfgError *err)
{
	lfg_foldin_base_view(m->net.foldin_base, &m->mf, view);
	return fold_in(view, u, LFG_FOLDIN_BASE_REG, NULL, s, x0, err);
}

/* See lfg_serve.h */
LfgStatus
lfg_base_prior(const LfgModel *m, const LfgNetUser *u, LfgServeScratch *s, float *b,
			   LfgError *err)
{
	LfgMfParams view;
	LfgStatus	st;

	if ((st = base_fold_in(m, u, s, &view, s->rhs0, err)) != LFG_OK)
		return st;
	lfg_foldin_base_map(m->net.foldin_base, s->rhs0, b);
	return LFG_OK;
}

/* See lfg_serve.h and lfg_foldin.h (which fold-in serves) */
LfgStatus
lfg_user_vector(const LfgModel *m, const LfgNetUser *u, double reg, bool refine,
				LfgServeScratch *s, float *x, LfgError *err)
{
	int32_t		k = m->mf.k;
	double		w,
				c,
				v,
				r;
	LfgStatus	st;

	if (u->n > s->cap)
		return lfg_error(err, LFG_EPARAM, NULL, "serving scratch too small");
	if ((st = check_reg(reg, err)) != LFG_OK)
		return st;
	lfg_foldin_served(m, u->n, reg, refine, &w, &c, &v, &r);
	if (m->mf.kind != LFG_KIND_LFG)
		st = fold_in(&m->mf, u, r, NULL, s, x, err);
	else
	{
		if (v != 0.0 && (st = lfg_base_prior(m, u, s, s->base, err)) != LFG_OK)
			return st;
		lfg_net_generate(&m->net, &m->mf, u, &s->net, s->prior, &s->prior[k]);
		if (w != 1.0 || c != 0.0 || v != 0.0)
			lfg_foldin_prior(m, w, c, v, s->base, s->prior);
		if (isinf(r) || u->n == 0)
		{
			memcpy(x, s->prior, ((size_t) k + 1) * sizeof(float));
			st = LFG_OK;
		}
		else
			st = fold_in(&m->mf, u, r, w != 0.0 || c != 0.0 || v != 0.0 ? s->prior : NULL, s, x,
						 err);
	}
	return st == LFG_OK ? check_finite(x, k + 1, err) : st;
}

/* See lfg_serve.h */
LfgStatus
lfg_rating_vector(const LfgModel *m, const LfgNetUser *u, double reg, bool refine,
				  const float *x, LfgServeScratch *s, float *x0, LfgMfParams *view,
				  LfgRatingSource *src, LfgError *err)
{
	uint32_t	side = lfg_foldin_side(m, u->n, reg, refine);
	LfgStatus	st;

	*src = (LfgRatingSource) {&m->mf, x, NULL, NULL};
	if (side == LFG_FOLDIN_SIDE_MODEL)
		return LFG_OK;
	if (u->n > s->cap)
		return lfg_error(err, LFG_EPARAM, NULL, "serving scratch too small");
	if ((st = base_fold_in(m, u, s, view, x0, err)) != LFG_OK ||
		(st = check_finite(x0, view->k + 1, err)) != LFG_OK)
		return st;
	if (side == LFG_FOLDIN_SIDE_BASE)
		*src = (LfgRatingSource) {view, x0, NULL, NULL};
	else
		*src = (LfgRatingSource) {&m->mf, x, view, x0};
	return LFG_OK;
}

/* See lfg_serve.h */
double
lfg_rating_score(const LfgRatingSource *src, int32_t i)
{
	double		r = lfg_score_one(src->mf, src->x, i);

	if (src->mf2 == NULL)
		return r;
	/* in float, as each side's: a list's scores (float) are then its predictions exactly */
	return (double) (0.5f * ((float) r + (float) lfg_score_one(src->mf2, src->x2, i)));
}

/* See lfg_serve.h */
LfgStatus
lfg_order_vector(const LfgModel *m, const LfgNetUser *u, const float *x, LfgServeScratch *s,
				 float *xo, LfgError *err)
{
	int32_t		k = m->mf.k;
	LfgNet		rank = m->net;
	float		b;

	if (m->mf.rank_R == NULL)
	{
		memcpy(xo, x, ((size_t) k + 1) * sizeof(float));
		return LFG_OK;
	}
	if (u->n > s->cap)
		return lfg_error(err, LFG_EPARAM, NULL, "serving scratch too small");
	rank.theta = m->net.rank_theta;
	rank.running = m->net.rank_running;
	lfg_net_generate(&rank, &m->mf, u, &s->net, xo, &b);
	xo[k] = 0.0f;
	return check_finite(xo, k + 1, err);
}

/* See lfg_serve.h */
LfgStatus
lfg_fold_in_prior(const LfgModel *m, const LfgNetUser *u, double reg, const float *prior,
				  LfgServeScratch *s, float *x, LfgError *err)
{
	LfgStatus	st;

	if (u->n > s->cap)
		return lfg_error(err, LFG_EPARAM, NULL, "serving scratch too small");
	if ((st = check_reg(reg, err)) != LFG_OK)
		return st;
	return fold_in(&m->mf, u, reg == LFG_FOLDIN_LEARNED ? LFG_FOLDIN_BASE_REG : reg, prior, s, x,
				   err);
}

/* Clip to the training rating range */
static inline float
clip(const LfgMfParams *mf, float v)
{
	return v < mf->rating_min ? mf->rating_min : v > mf->rating_max ? mf->rating_max : v;
}

/* See lfg_serve.h */
const LfgMfParams *
lfg_order_params(const LfgMfParams *mf, LfgMfParams *view)
{
	if (mf->rank_R == NULL)
		return mf;
	*view = *mf;
	view->Q = mf->rank_R;
	view->bi = mf->rank_c;
	view->mu = 0.0f;
	view->rating_min = -INFINITY;
	view->rating_max = INFINITY;
	view->rank_prior = NULL;
	view->rank_R = NULL;
	view->rank_c = NULL;
	return view;
}

/* See lfg_serve.h */
float
lfg_order_score(const LfgMfParams *mf, const float *x, int32_t i)
{
	LfgMfParams view;

	if (mf->rank_R != NULL)
		return (float) lfg_score_raw(lfg_order_params(mf, &view), x, i);
	return (float) lfg_score_raw(mf, x, i) + (mf->rank_prior != NULL ? mf->rank_prior[i] : 0.0f);
}

/* See lfg_serve.h */
double
lfg_score_raw(const LfgMfParams *mf, const float *x, int32_t i)
{
	float		v;

	if (i < 0)					/* unknown item: the mean plus the user's bias */
		v = mf->mu + (mf->bi != NULL ? x[mf->k] : 0.0f);
	else
	{
		v = lfg_dot(mf->Q + (size_t) i * mf->k, x, mf->k);
		if (mf->bi != NULL)
			v += mf->mu + x[mf->k] + mf->bi[i];
	}
	return v;
}

/* See lfg_serve.h */
double
lfg_score_one(const LfgMfParams *mf, const float *x, int32_t i)
{
	return clip(mf, (float) lfg_score_raw(mf, x, i));
}

/*
 * Scoring panels. One sgemv of the n_items x k matrix Q against x reads Q
 * row by row and reduces each row to a dot product; scoring was then a
 * third of a call's time (about 30 us for ml-1m's 3,706 x 64), bound by
 * reading Q's 950 kB. Panels store Q in fewer bytes, in blocks of
 * LFG_PANEL items transposed within the block, so that a kernel keeps the
 * block's LFG_PANEL scores in registers:
 *
 *	 LFG_PANELS_HALF (AVX2, FMA, F16C): half precision (475 kB for ml-1m);
 *		for each factor, one conversion and one broadcast multiply-add per
 *		8 items.
 *	 LFG_PANELS_INT8 (AVX-512 VNNI): each item's factors as signed bytes
 *		times a per-item scale (240 kB), x quantized to bytes per call; one
 *		vpdpbusd sums 4 factors of 16 items. Half the bytes of the half
 *		precision panels, a quarter of the instructions: under concurrent
 *		load the catalogue no longer leaves the core's cache between calls.
 *
 * These scores are approximate, with a proven error bound (below); the top
 * k are then chosen among the items that the bound cannot exclude, from
 * their exact scores, so the answer is exactly that of exact scoring. The
 * panels cost a quarter to a half of Q again per cached model; where the
 * CPU has neither kernel (or Q is not finite, or |q| is beyond half
 * precision) they are not built and one sgemv computes the approximate
 * scores instead.
 */
#define LFG_PANEL 64

/* LFG_NO_SIMD: the portable build (what a CPU other than x86-64 gets) */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(LFG_NO_SIMD)
#include <cpuid.h>
#include <immintrin.h>
#define LFG_X86 1
#endif

/*
 * 0: plain C; 1: AVX2 (the top-k scan); 2: AVX2, FMA and F16C (half
 * precision panels); 3: also AVX-512F, BW and VNNI (byte panels)
 */
static int
simd_level(void)
{
	static int	level = -1;

#ifdef LFG_X86
	if (level < 0)
	{
		unsigned int a,
					b,
					c,
					d;
		bool		f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;

		__builtin_cpu_init();
		level = !__builtin_cpu_supports("avx2") ? 0 :
			!__builtin_cpu_supports("fma") || !f16c ? 1 :
			!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
			!__builtin_cpu_supports("avx512vnni") ? 2 : 3;
	}
#else
	level = 0;
#endif
	return level;
}

/* the largest |q_if| stored in half precision (its maximum is 65504) */
#define LFG_PANEL_MAX_ABS 60000.0f

/* int8 panels: factors in groups of 4 (one 32-bit lane of vpdpbusd) */
#define LFG_GROUPS(k) (((size_t) (k) + 3) / 4)

/*
 * One int8 panel: the codes (LFG_GROUPS(k) groups of 4 * LFG_PANEL bytes),
 * then per item: its scale s_i; for its error bound, the largest rounding
 * error max_f |q_if - s_i c_if| and the L1 norm sum_f |s_i c_if| of its
 * coded factors (both measured, rounded up); and 128 sum_f c_if.
 */
typedef struct Int8Meta
{
	float	   *scale;
	float	   *qerr;
	float	   *l1;
	int32_t    *csum;
} Int8Meta;

static size_t
int8_panel_bytes(int32_t k)
{
	return LFG_GROUPS(k) * 4 * LFG_PANEL + LFG_PANEL * (3 * sizeof(float) + sizeof(int32_t));
}

/* The per-item arrays of panel b */
static Int8Meta
int8_meta(const void *panels, int32_t k, size_t b)
{
	uint8_t    *p = (uint8_t *) panels + b * int8_panel_bytes(k) + LFG_GROUPS(k) * 4 * LFG_PANEL;
	float	   *f = (float *) p;
	Int8Meta	meta = {f, f + LFG_PANEL, f + 2 * LFG_PANEL, (int32_t *) (f + 3 * LFG_PANEL)};

	return meta;
}

/* The smallest float at least v (v >= 0) */
static float
float_up(double v)
{
	float		r = (float) v;

	return (double) r < v ? nextafterf(r, INFINITY) : r;
}

/* A signed byte code: round(v / s), within +-127 */
static int
byte_code(float v, float s)
{
	long		c = s > 0.0f ? lrintf(v / s) : 0;

	return c > 127 ? 127 : c < -127 ? -127 : (int) c;
}

/* A user vector for the int8 kernel */
typedef struct Int8User
{
	float		sx;				/* s_x = max_f |x_f| / 127 */
	double		xerr;			/* max_f |x_f - s_x x_q,f|, measured */
	uint32_t	xw[LFG_GROUPS(LFG_MAX_FACTORS)];	/* x_q + 128, 4 bytes a word */
} Int8User;

static void
quantize_x(const LfgMfParams *mf, const float *x, Int8User *xu)
{
	size_t		k = (size_t) mf->k;
	float		amax = 0.0f;

	xu->xerr = 0.0;
	for (size_t f = 0; f < k; f++)
		amax = fabsf(x[f]) > amax ? fabsf(x[f]) : amax;
	xu->sx = amax / 127.0f;
	for (size_t g = 0; g < LFG_GROUPS(k); g++)
	{
		uint32_t	w = 0;

		for (size_t t = 0; t < 4; t++)
		{
			size_t		f = 4 * g + t;
			int			v = f < k ? byte_code(x[f], xu->sx) : 0;

			if (f < k)
				xu->xerr = fmax(xu->xerr, fabs((double) x[f] - (double) xu->sx * v));
			w |= (uint32_t) (v + 128) << (8 * t);
		}
		xu->xw[g] = w;
	}
}

/* See lfg_serve.h */
LfgPanelFormat
lfg_score_panels_best(const LfgMfParams *mf)
{
	LfgPanelFormat f = simd_level() >= 3 ? LFG_PANELS_INT8 :
		simd_level() >= 2 ? LFG_PANELS_HALF : LFG_PANELS_NONE;

	return lfg_score_panels_size(mf, f) > 0 ? f : LFG_PANELS_NONE;
}

/* See lfg_serve.h */
size_t
lfg_score_panels_size(const LfgMfParams *model, LfgPanelFormat format)
{
	LfgMfParams view;
	const LfgMfParams *mf = lfg_order_params(model, &view);
	size_t		blocks = ((size_t) mf->n_items + LFG_PANEL - 1) / LFG_PANEL;
	size_t		nq = (size_t) mf->n_items * (size_t) mf->k;
	float		limit = format == LFG_PANELS_HALF ? LFG_PANEL_MAX_ABS : INFINITY;

	if (mf->n_items == 0 || format == LFG_PANELS_NONE ||
		simd_level() < (format == LFG_PANELS_INT8 ? 3 : 2))
		return 0;
	for (size_t j = 0; j < nq; j++)
		if (!(fabsf(mf->Q[j]) < limit))
			return 0;
	if (format == LFG_PANELS_HALF)
		return blocks * LFG_PANEL * (size_t) mf->k * sizeof(uint16_t);
	return blocks * int8_panel_bytes(mf->k);
}

/*
 * Q into int8 panels: item i's factors as c_if = round(q_if / s_i) with
 * s_i = max_f |q_if| / 127, after the codes of its panel the per-item
 * arrays of Int8Meta (the kernel's unsigned x is x_q + 128, hence the code
 * sums). Within group g of a panel, the 4 bytes of lane l of vector t are
 * item 16 t + l's codes for factors 4 g .. 4 g + 3 (0 past k and past n).
 */
static void
fill_int8(const LfgMfParams *mf, uint8_t *panels)
{
	size_t		n = (size_t) mf->n_items,
				k = (size_t) mf->k,
				blocks = (n + LFG_PANEL - 1) / LFG_PANEL,
				bytes = int8_panel_bytes(mf->k);

	memset(panels, 0, blocks * bytes);
	for (size_t i = 0; i < n; i++)
	{
		uint8_t    *p = panels + (i / LFG_PANEL) * bytes;
		Int8Meta	meta = int8_meta(panels, mf->k, i / LFG_PANEL);
		size_t		l = i % LFG_PANEL;
		const float *q = mf->Q + i * k;
		float		amax = 0.0f;
		double		qerr = 0.0;
		int32_t		l1 = 0;

		for (size_t f = 0; f < k; f++)
			amax = fabsf(q[f]) > amax ? fabsf(q[f]) : amax;
		meta.scale[l] = amax / 127.0f;
		meta.csum[l] = 0;
		for (size_t f = 0; f < k; f++)
		{
			int			code = byte_code(q[f], meta.scale[l]);

			p[(f / 4) * 4 * LFG_PANEL + l * 4 + f % 4] = (uint8_t) (int8_t) code;
			meta.csum[l] += 128 * code;
			l1 += abs(code);
			/* exact in double: a float times a small integer, minus a float */
			qerr = fmax(qerr, fabs((double) q[f] - (double) meta.scale[l] * code));
		}
		meta.qerr[l] = float_up(qerr);
		meta.l1[l] = float_up((double) meta.scale[l] * l1);
	}
}

#ifdef LFG_X86

/* The b_i of the panel from item first, len items; zeros past them (or for SVD) */
static const float *
panel_bias(const LfgMfParams *mf, size_t first, size_t len, float *tail)
{
	if (mf->bi != NULL && len == LFG_PANEL)
		return mf->bi + first;
	memset(tail, 0, sizeof(float) * LFG_PANEL);
	if (mf->bi != NULL)
		memcpy(tail, mf->bi + first, len * sizeof(float));
	return tail;
}

/* Q into half-precision panels (round to nearest even) */
__attribute__((target("avx2,f16c")))
static void
fill_half(const LfgMfParams *mf, uint16_t *panels)
{
	size_t		n = (size_t) mf->n_items,
				k = (size_t) mf->k,
				blocks = (n + LFG_PANEL - 1) / LFG_PANEL;

	for (size_t b = 0; b < blocks; b++)
		for (size_t f = 0; f < k; f++)
			for (size_t l = 0; l < LFG_PANEL; l += 8)
			{
				float		v[8];

				for (size_t j = 0; j < 8; j++)
				{
					size_t		i = b * LFG_PANEL + l + j;

					v[j] = i < n ? mf->Q[i * k + f] : 0.0f;
				}
				_mm_storeu_si128((__m128i *) (panels + (b * k + f) * LFG_PANEL + l),
								 _mm256_cvtps_ph(_mm256_loadu_ps(v), _MM_FROUND_TO_NEAREST_INT));
			}
}

/*
 * Approximate scores of every item from half precision panels, 64 at a
 * time: the dot products, plus mu + b_u + b_i when the model has biases;
 * clipped to the rating range when asked (the top k orders raw scores).
 */
__attribute__((target("avx2,fma,f16c")))
static void
half_scores(const LfgMfParams *mf, const uint16_t *panels, const float *x, float *scores,
			bool clipped)
{
	size_t		n = (size_t) mf->n_items,
				k = (size_t) mf->k,
				blocks = (n + LFG_PANEL - 1) / LFG_PANEL;
	__m256		lo = _mm256_set1_ps(clipped ? mf->rating_min : -INFINITY),
				hi = _mm256_set1_ps(clipped ? mf->rating_max : INFINITY),
				base = _mm256_set1_ps(mf->bi != NULL ? mf->mu + x[k] : 0.0f);

	for (size_t b = 0; b < blocks; b++)
	{
		const uint16_t *p = panels + b * k * LFG_PANEL;
		float		tail[LFG_PANEL];
		size_t		first = b * LFG_PANEL,
					len = n - first < LFG_PANEL ? n - first : LFG_PANEL;
		const float *bias = panel_bias(mf, first, len, tail);
		float	   *out = len == LFG_PANEL ? scores + first : tail;
		__m256		a0,
					a1,
					a2,
					a3,
					a4,
					a5,
					a6,
					a7;

		/* start from mu + b_u + b_i (or 0): eight named chains in registers */
		a0 = _mm256_add_ps(base, _mm256_loadu_ps(bias));
		a1 = _mm256_add_ps(base, _mm256_loadu_ps(bias + 8));
		a2 = _mm256_add_ps(base, _mm256_loadu_ps(bias + 16));
		a3 = _mm256_add_ps(base, _mm256_loadu_ps(bias + 24));
		a4 = _mm256_add_ps(base, _mm256_loadu_ps(bias + 32));
		a5 = _mm256_add_ps(base, _mm256_loadu_ps(bias + 40));
		a6 = _mm256_add_ps(base, _mm256_loadu_ps(bias + 48));
		a7 = _mm256_add_ps(base, _mm256_loadu_ps(bias + 56));
#define LFG_H8(o) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (p + (o))))
		for (size_t f = 0; f < k; f++, p += LFG_PANEL)
		{
			__m256		xf = _mm256_broadcast_ss(x + f);

			a0 = _mm256_fmadd_ps(xf, LFG_H8(0), a0);
			a1 = _mm256_fmadd_ps(xf, LFG_H8(8), a1);
			a2 = _mm256_fmadd_ps(xf, LFG_H8(16), a2);
			a3 = _mm256_fmadd_ps(xf, LFG_H8(24), a3);
			a4 = _mm256_fmadd_ps(xf, LFG_H8(32), a4);
			a5 = _mm256_fmadd_ps(xf, LFG_H8(40), a5);
			a6 = _mm256_fmadd_ps(xf, LFG_H8(48), a6);
			a7 = _mm256_fmadd_ps(xf, LFG_H8(56), a7);
		}
#undef LFG_H8
		_mm256_storeu_ps(out, _mm256_min_ps(_mm256_max_ps(a0, lo), hi));
		_mm256_storeu_ps(out + 8, _mm256_min_ps(_mm256_max_ps(a1, lo), hi));
		_mm256_storeu_ps(out + 16, _mm256_min_ps(_mm256_max_ps(a2, lo), hi));
		_mm256_storeu_ps(out + 24, _mm256_min_ps(_mm256_max_ps(a3, lo), hi));
		_mm256_storeu_ps(out + 32, _mm256_min_ps(_mm256_max_ps(a4, lo), hi));
		_mm256_storeu_ps(out + 40, _mm256_min_ps(_mm256_max_ps(a5, lo), hi));
		_mm256_storeu_ps(out + 48, _mm256_min_ps(_mm256_max_ps(a6, lo), hi));
		_mm256_storeu_ps(out + 56, _mm256_min_ps(_mm256_max_ps(a7, lo), hi));
		if (out == tail)
			memcpy(scores + first, tail, len * sizeof(float));
	}
}

/*
 * Approximate scores (clipped when asked) from int8 panels, for x quantized by
 * quantize_x: four chains of 16 items accumulate sum_f (x_q + 128) c_if
 * exactly in 32 bits, and s_x s_i (acc - 128 sum_f c_if) is the dot
 * product of the quantized vectors (|x_q.c_i| <= 1024 * 127^2 < 2^24:
 * exact in float too). With upper, also upper_i = score_i + F qerr_i +
 * G L1_i: the item's score plus its own error bound less the part common
 * to all items.
 */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void
int8_scores(const LfgMfParams *mf, const void *panels, const Int8User *xu, const float *x,
			float *scores, float *upper, float F, float G, bool clipped)
{
	size_t		n = (size_t) mf->n_items,
				k = (size_t) mf->k,
				groups = LFG_GROUPS(k),
				blocks = (n + LFG_PANEL - 1) / LFG_PANEL,
				bytes = int8_panel_bytes(mf->k);
	const uint32_t *xw = xu->xw;
	float		sx = xu->sx;
	__m512		lo = _mm512_set1_ps(clipped ? mf->rating_min : -INFINITY),
				hi = _mm512_set1_ps(clipped ? mf->rating_max : INFINITY),
				base = _mm512_set1_ps(mf->bi != NULL ? mf->mu + x[k] : 0.0f),
				vsx = _mm512_set1_ps(sx),
				vF = _mm512_set1_ps(F),
				vG = _mm512_set1_ps(G);

	for (size_t b = 0; b < blocks; b++)
	{
		const uint8_t *p = (const uint8_t *) panels + b * bytes;
		Int8Meta	meta = int8_meta(panels, mf->k, b);
		float		tail[LFG_PANEL],
					tail_upper[LFG_PANEL];
		size_t		first = b * LFG_PANEL,
					len = n - first < LFG_PANEL ? n - first : LFG_PANEL;
		const float *bias = panel_bias(mf, first, len, tail);
		float	   *out = len == LFG_PANEL ? scores + first : tail,
				   *out_upper = len == LFG_PANEL && upper ? upper + first : tail_upper;
		__m512i		acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(),
							  _mm512_setzero_si512(), _mm512_setzero_si512()};

		for (size_t g = 0; g < groups; g++, p += 4 * LFG_PANEL)
		{
			__m512i		xg = _mm512_set1_epi32((int) xw[g]);

			acc[0] = _mm512_dpbusd_epi32(acc[0], xg, _mm512_loadu_si512(p));
			acc[1] = _mm512_dpbusd_epi32(acc[1], xg, _mm512_loadu_si512(p + 64));
			acc[2] = _mm512_dpbusd_epi32(acc[2], xg, _mm512_loadu_si512(p + 128));
			acc[3] = _mm512_dpbusd_epi32(acc[3], xg, _mm512_loadu_si512(p + 192));
		}
		for (int t = 0; t < 4; t++)
		{
			__m512		s = _mm512_loadu_ps(meta.scale + 16 * t),
						dot = _mm512_mul_ps(_mm512_mul_ps(vsx, s),
											_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[t],
																				_mm512_loadu_si512(meta.csum + 16 * t)))),
						v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(_mm512_add_ps(base,
																				   _mm512_loadu_ps(bias + 16 * t)),
																	 dot), lo), hi);

			_mm512_storeu_ps(out + 16 * t, v);
			if (upper)
				_mm512_storeu_ps(out_upper + 16 * t,
								 _mm512_fmadd_ps(vG, _mm512_loadu_ps(meta.l1 + 16 * t),
												 _mm512_fmadd_ps(vF, _mm512_loadu_ps(meta.qerr + 16 * t), v)));
		}
		if (out == tail)
		{
			memcpy(scores + first, tail, len * sizeof(float));
			if (upper)
				memcpy(upper + first, tail_upper, len * sizeof(float));
		}
	}
}

/*
 * The first index at or after i whose score beats bar, or n: eight scores
 * per comparison, as almost every item of a large catalogue fails it.
 */
__attribute__((target("avx2")))
static int32_t
next_above_avx2(const float *scores, int32_t i, int32_t n, float bar)
{
	__m256		b = _mm256_set1_ps(bar);

	for (; i + 8 <= n; i += 8)
	{
		int			mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(scores + i), b, _CMP_GT_OQ));

		if (mask != 0)
			return i + __builtin_ctz((unsigned) mask);
	}
	for (; i < n; i++)
		if (scores[i] > bar)
			return i;
	return n;
}
#endif

static int32_t
next_above(const float *scores, int32_t i, int32_t n, float bar)
{
#ifdef LFG_X86
	if (simd_level() >= 1)
		return next_above_avx2(scores, i, n, bar);
#endif
	for (; i < n; i++)
		if (scores[i] > bar)
			return i;
	return n;
}

/* See lfg_serve.h */
void
lfg_score_panels_fill(const LfgMfParams *model, LfgPanelFormat format, void *panels)
{
	LfgMfParams view;
	const LfgMfParams *mf = lfg_order_params(model, &view);

	if (format == LFG_PANELS_INT8)
		fill_int8(mf, panels);
#ifdef LFG_X86
	else if (format == LFG_PANELS_HALF)
		fill_half(mf, panels);
#endif
}

/* Approximate scores of every item, clipped or raw */
static void
score_all(const LfgMfParams *mf, const LfgScorer *sc, const float *x, float *scores, bool clipped)
{
	size_t		n = (size_t) mf->n_items;
	int32_t		k = mf->k;
	float		base = mf->bi != NULL ? mf->mu + x[k] : 0.0f;

#ifdef LFG_X86
	if (sc->format == LFG_PANELS_INT8)
	{
		Int8User	xu;

		quantize_x(mf, x, &xu);
		int8_scores(mf, sc->panels, &xu, x, scores, NULL, 0.0f, 0.0f, clipped);
		return;
	}
	if (sc->format == LFG_PANELS_HALF)
	{
		half_scores(mf, sc->panels, x, scores, clipped);
		return;
	}
#else
	(void) sc;					/* no panels without the kernels */
#endif
	lfg_gemv(0, mf->n_items, k, 1.0f, mf->Q, k, x, 0.0f, scores);
	for (size_t i = 0; i < n; i++)
	{
		float		v = mf->bi != NULL ? scores[i] + base + mf->bi[i] : scores[i];

		scores[i] = clipped ? clip(mf, v) : v;
	}
}

/* See lfg_serve.h */
void
lfg_score_all(const LfgMfParams *mf, const LfgScorer *sc, const float *x, float *scores)
{
	LfgMfParams view;

	score_all(lfg_order_params(mf, &view), sc, x, scores, true);
}

/* See lfg_serve.h */
void
lfg_scorer_init(const LfgMfParams *model, LfgPanelFormat format, const void *panels,
				LfgScorer *sc)
{
	LfgMfParams view;
	const LfgMfParams *mf = lfg_order_params(model, &view);
	double		best = 0.0,
				bimax = 0.0;

	memset(sc, 0, sizeof(*sc));	/* before the loop: it sets prior_max */
	for (int32_t i = 0; i < mf->n_items; i++)
	{
		const float *q = mf->Q + (size_t) i * mf->k;
		double		ss = 0.0;

		for (int32_t f = 0; f < mf->k; f++)
			ss += (double) q[f] * q[f];
		if (ss > best)
			best = ss;
		if (mf->bi != NULL && fabs(mf->bi[i]) > bimax)
			bimax = fabs(mf->bi[i]);
		if (mf->rank_prior != NULL)
			sc->prior_max = fmax(sc->prior_max, fabs(mf->rank_prior[i]));
	}
	sc->format = panels != NULL ? format : LFG_PANELS_NONE;
	sc->panels = panels;
	sc->qnorm_max = sqrt(best);
	sc->bi_max = bimax;
	/* int8: the largest rounding error and the largest L1 norm of the codes */
	for (int32_t i = 0; sc->format == LFG_PANELS_INT8 && i < mf->n_items; i++)
	{
		Int8Meta	meta = int8_meta(panels, mf->k, i / LFG_PANEL);

		sc->qerr_max = fmax(sc->qerr_max, meta.qerr[i % LFG_PANEL]);
		sc->l1_max = fmax(sc->l1_max, meta.l1[i % LFG_PANEL]);
	}
}

/*
 * See lfg_serve.h: a bound on |approximate - exact| for every item's
 * score, raw or clipped (clipping only shrinks differences). Each of the two
 * single-precision evaluations (the exact one and an approximate one) adds
 * at most (k + 4) 2^-24 times the sum of the magnitudes of its terms. Then
 * the approximation itself:
 *
 *	 half precision rounds each q_if within 2^-11 |q_if| (2^-25 in its
 *	 subnormal range), so the dot products move by at most
 *	 2^-11 ||x|| ||q_i|| + 2^-25 ||x||_1 (Cauchy-Schwarz);
 *
 *	 int8: x.q_i - s_x s_i x_q.c_i = x.(q_i - s_i c_i) + s_i c_i.(x - s_x x_q),
 *	 at most ||x||_1 qerr_i + xerr L1_i, with qerr_i = max_f |q_if - s_i c_if|
 *	 and L1_i = sum_f |s_i c_if| measured when the panels were filled, and
 *	 xerr = max_f |x_f - s_x x_q,f| measured per call (so no assumption on
 *	 the rounding of the codes is needed). Item i's own bound is
 *	 E + F qerr_i + G L1_i. 2^-100 in E covers underflow in the kernel's
 *	 products (at most 2^-149 times |x_q.c_i| < 2^24).
 *
 * Doubled for safety.
 */
typedef struct ScoreBound
{
	double		E,				/* the part common to all items */
				F,				/* int8: times qerr_i */
				G;				/* int8: times L1_i */
	Int8User	xu;				/* int8: x for the kernel */
} ScoreBound;

static void
score_bound(const LfgMfParams *mf, const LfgScorer *sc, const float *x, ScoreBound *b)
{
	bool		half = sc->format == LFG_PANELS_HALF;
	double		qnorm_max = sc->qnorm_max;
	int32_t		k = mf->k;
	double		x2 = 0.0,
				x1 = 0.0,
				gamma = (k + 4) * ldexp(1.0, -24),
				terms;

	b->F = b->G = 0.0;
	for (int32_t f = 0; f < k; f++)
	{
		x2 += (double) x[f] * x[f];
		x1 += fabs(x[f]);
	}
	x2 = sqrt(x2);
	/* the ranking prior adds one rounding of its sum to both evaluations */
	terms = x2 * qnorm_max * (half ? 1.0 + ldexp(1.0, -11) : 1.0) +
		(mf->bi != NULL ? fabs(mf->mu) + fabs(x[k]) + sc->bi_max : 0.0) + sc->prior_max;
	b->E = 0.0;
	if (sc->format == LFG_PANELS_INT8)
	{
		quantize_x(mf, x, &b->xu);
		b->F = x1;
		b->G = b->xu.xerr;
		terms += b->F * sc->qerr_max + b->G * sc->l1_max;
		b->E = ldexp(1.0, -100);
	}
	b->E += 2.0 * gamma * terms;
	if (half)
		b->E += ldexp(1.0, -11) * x2 * qnorm_max + ldexp(1.0, -25) * x1;
	b->E *= 2.0;
	b->F *= 2.0;
	b->G *= 2.0;
}

/* Item i's bound, E + F qerr_i + G L1_i */
static double
item_bound(const LfgMfParams *mf, const LfgScorer *sc, const ScoreBound *b, int32_t i)
{
	Int8Meta	meta;

	if (sc->format != LFG_PANELS_INT8)
		return b->E;
	meta = int8_meta(sc->panels, mf->k, i / LFG_PANEL);
	return b->E + b->F * meta.qerr[i % LFG_PANEL] + b->G * meta.l1[i % LFG_PANEL];
}

/* See lfg_serve.h */
double
lfg_score_error_bound(const LfgMfParams *model, const LfgScorer *sc, const float *x, int32_t i)
{
	LfgMfParams view;
	const LfgMfParams *mf = lfg_order_params(model, &view);
	ScoreBound	b;

	score_bound(mf, sc, x, &b);
	return i >= 0 ? item_bound(mf, sc, &b, i) : b.E + b.F * sc->qerr_max + b.G * sc->l1_max;
}

/* a ranks below b: lower score, or equal score and larger index */
static inline bool
worse(const float *scores, int32_t a, int32_t b)
{
	return scores[a] < scores[b] || (scores[a] == scores[b] && a > b);
}

/* Restore the min-heap property (worst at the root) below position j */
static void
sift_down(const float *scores, int32_t *heap, int32_t n, int32_t j)
{
	for (;;)
	{
		int32_t		l = 2 * j + 1,
					r = l + 1,
					m = j,
					t;

		if (l < n && worse(scores, heap[l], heap[m]))
			m = l;
		if (r < n && worse(scores, heap[r], heap[m]))
			m = r;
		if (m == j)
			return;
		t = heap[j];
		heap[j] = heap[m];
		heap[m] = t;
		j = m;
	}
}

/*
 * Small k (the usual 10): the kept items as an array sorted best first, a
 * better item shifted in from the end. As many replacements as with a heap
 * (about k ln(n / k)), but each a short predictable loop instead of a
 * sift whose comparisons the branch predictor cannot guess.
 */
#define LFG_TOPK_INSERTION 16

static int32_t
top_k_insertion(const float *scores, int32_t n, int32_t k, int32_t *top)
{
	int32_t		size = 0;
	float		bar = -INFINITY;

	if (k < 1)
		return 0;
	for (int32_t i = 0; i < n; i++)
	{
		int32_t		pos;

		if (size == k)
		{
			/* later items lose ties (larger index): they must be strictly better */
			if ((i = next_above(scores, i, n, bar)) == n)
				break;
		}
		else if (scores[i] == -INFINITY)
			continue;
		pos = size < k ? size++ : k - 1;
		while (pos > 0 && scores[i] > scores[top[pos - 1]])
		{
			top[pos] = top[pos - 1];
			pos--;
		}
		top[pos] = i;
		if (size == k)
			bar = scores[top[k - 1]];
	}
	return size;
}

/*
 * See lfg_serve.h: a bounded min-heap, O(n log k), then a heap sort of k.
 * Once the heap is full, most items fail one comparison with the score of
 * the worst kept item (eight at a time where the CPU has AVX2).
 */
int32_t
lfg_top_k(const float *scores, int32_t n, int32_t k, int32_t *heap)
{
	int32_t		size = 0;
	int32_t		i = 0;
	float		bar;

	if (k <= LFG_TOPK_INSERTION)
		return top_k_insertion(scores, n, k, heap);

	for (; i < n && size < k; i++)
	{
		int32_t		j;

		if (scores[i] == -INFINITY)
			continue;
		j = size++;
		heap[j] = i;
		while (j > 0 && worse(scores, heap[j], heap[(j - 1) / 2]))
		{
			int32_t		p = (j - 1) / 2,
						t = heap[j];

			heap[j] = heap[p];
			heap[p] = t;
			j = p;
		}
	}
	bar = size > 0 ? scores[heap[0]] : INFINITY;
	/* later items lose ties (larger index): they must be strictly better */
	while ((i = next_above(scores, i, n, bar)) < n)
	{
		heap[0] = i++;
		sift_down(scores, heap, size, 0);
		bar = scores[heap[0]];
	}
	/* pop the worst to the end: the array ends up best first */
	for (int32_t end = size - 1; end > 0; end--)
	{
		int32_t		t = heap[0];

		heap[0] = heap[end];
		heap[end] = t;
		sift_down(scores, heap, end, 0);
	}
	return size;
}

/*
 * See lfg_serve.h. Approximate raw scores of the catalogue (panels or sgemv);
 * the approximate top k among the items not excluded; t, the smallest of
 * their approximate scores less their bounds, is at most the exact k-th
 * best score, so every item of the exact top k has an approximate score
 * plus bound of at least t. Those candidates are rescored exactly
 * (lfg_score_raw: lfg_predict's score before clipping) and the exact top k
 * is taken among them, reported clipped.
 * With int8 panels each item has its own bound (about 25 candidates for
 * ml-1m where the largest bound for all gave about 70).
 */
int32_t
lfg_recommend_top_k(const LfgMfParams *model, const LfgScorer *sc, const float *x,
					const float *xo, const int32_t *exclude, int32_t n_exclude, int32_t k, LfgTopKWork *w,
					int32_t *out_items, float *out_scores)
{
	LfgMfParams view;
	const LfgMfParams *mf = lfg_order_params(model, &view);
	int32_t		n = mf->n_items,
				found,
				nc = 0;
	ScoreBound	b;
	bool		per_item = sc->format == LFG_PANELS_INT8;
	const float *upper = per_item ? w->upper : w->scores;
	double		floor_score = INFINITY;

	score_bound(mf, sc, xo, &b);
	/* raw scores: clipping would tie every item above the scale at its top */
#ifdef LFG_X86
	if (per_item)
		int8_scores(mf, sc->panels, &b.xu, xo, w->scores, w->upper, (float) b.F, (float) b.G, false);
	else
#endif
		score_all(mf, sc, xo, w->scores, false);
	if (mf->rank_prior != NULL)
		for (int32_t i = 0; i < n; i++)
		{
			w->scores[i] += mf->rank_prior[i];
			if (per_item)
				w->upper[i] += mf->rank_prior[i];
		}
	for (int32_t j = 0; j < n_exclude; j++)
	{
		w->scores[exclude[j]] = -INFINITY;
		if (per_item)
			w->upper[exclude[j]] = -INFINITY;
	}
	if (k > n)
		k = n;
	found = lfg_top_k(w->scores, n, k, w->heap);
	if (found == 0)
		return 0;

	/*
	 * The k approximate best each score at least their approximate score
	 * less their bound exactly, so the exact k-th best does too: an item
	 * can be among the exact top k only if its approximate score plus its
	 * bound reaches the smallest of those (upper holds the score plus the
	 * item's own part of the bound, or just the score).
	 */
	for (int32_t j = 0; j < found; j++)
		floor_score = fmin(floor_score, w->scores[w->heap[j]] - item_bound(mf, sc, &b, w->heap[j]));
	floor_score = found < k ? -INFINITY : floor_score - b.E;
	/* candidates, ascending: strictly above the next float below the floor */
	for (int32_t i = 0;
		 (i = next_above(upper, i, n, nextafterf((float) floor_score, -INFINITY))) < n; i++)
	{
		w->cand[nc] = i;
		w->cand_scores[nc++] = lfg_order_score(model, xo, i);
	}
	found = lfg_top_k(w->cand_scores, nc, k, w->heap);
	for (int32_t j = 0; j < found; j++)
	{
		out_items[j] = w->cand[w->heap[j]];
		out_scores[j] = (float) lfg_score_one(model, x, out_items[j]);
	}
	return found;
}
