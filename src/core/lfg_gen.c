/*
 * lfg_gen.c
 *	  Forward and backward passes of the latent factor generator.
 *
 * The first layer is sparse: a user's input has one entry per rated item
 * (with one or two channel values), so the layer costs O(ratings x h1)
 * forward and backward, never O(n_items x h1). The dense layers are BLAS
 * sgemm calls over the whole batch. BatchNorm follows Ioffe and Szegedy
 * (2015) with biased batch variance for normalisation and running
 * statistics (momentum 0.1, unbiased variance) for inference, as PyTorch
 * does; dropout is inverted dropout.
 */
#include <math.h>
#include <string.h>

#include "lfg_blas.h"
#include "lfg_gen.h"
#include "lfg_par.h"
#include "lfg_rng.h"

/* Check the generator's dimensions */
LfgStatus
lfg_gen_config_check(const LfgGenConfig *c, LfgError *err)
{
	if (c->n_items < 1 || c->n_dense < 0 || c->n_dense > 4096)
		return lfg_error(err, LFG_EPARAM, NULL, "generator input size out of range");
	if (c->h1 < 1 || c->h1 > 4096 || c->h2 < 1 || c->h2 > 4096)
		return lfg_error(err, LFG_EPARAM, "Use hidden sizes such as [256, 256].",
						 "hidden sizes must be between 1 and 4096");
	if (c->k < 1 || c->k > 1024)
		return lfg_error(err, LFG_EPARAM, NULL, "factors must be between 1 and 1024");
	if (c->channels < 1 || c->channels > 2 || c->batchnorm < 0 || c->batchnorm > 1)
		return lfg_error(err, LFG_EPARAM, NULL, "invalid generator configuration");
	if (!(c->leaky_slope >= 0.0f && c->leaky_slope < 1.0f))
		return lfg_error(err, LFG_EPARAM, "The default is 0.01.",
						 "leaky_slope must be at least 0 and less than 1");
	if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
		return lfg_error(err, LFG_EPARAM, "Typical values are 0 to 0.5.",
						 "dropout must be at least 0 and less than 1");
	return LFG_OK;
}

/* Offsets of the tensors in theta */
void
lfg_gen_layout(const LfgGenConfig *c, LfgGenLayout *l)
{
	size_t		pos = 0;
	size_t		h1 = (size_t) c->h1,
				h2 = (size_t) c->h2,
				o = (size_t) c->k + 1;

	l->W1s = pos;
	pos += (size_t) c->n_items * (size_t) c->channels * h1;
	l->W1d = pos;
	pos += (size_t) c->n_dense * h1;
	l->b1 = pos;
	pos += h1;
	l->g1 = pos;
	pos += c->batchnorm ? h1 : 0;
	l->be1 = pos;
	pos += c->batchnorm ? h1 : 0;
	l->W2 = pos;
	pos += h1 * h2;
	l->b2 = pos;
	pos += h2;
	l->g2 = pos;
	pos += c->batchnorm ? h2 : 0;
	l->be2 = pos;
	pos += c->batchnorm ? h2 : 0;
	l->W3 = pos;
	pos += h2 * o;
	l->b3 = pos;
	pos += o;
	l->total = pos;
	l->n_running = c->batchnorm ? 2 * (h1 + h2) : 0;
}

/* Uniform(-b, b) fill, b = 1/sqrt(fan_in) (PyTorch's Linear default) */
static void
fill_uniform(LfgRng *rng, float *x, size_t n, size_t fan_in)
{
	double		b = 1.0 / sqrt((double) (fan_in > 0 ? fan_in : 1));

	for (size_t j = 0; j < n; j++)
		x[j] = (float) ((2.0 * lfg_rng_uniform(rng) - 1.0) * b);
}

/* Initialise weights, BatchNorm (scale 1, shift 0) and running statistics */
void
lfg_gen_init(const LfgGenConfig *c, const LfgGenLayout *l, float *theta,
			 float *running, uint64_t seed)
{
	LfgRng		rng;
	size_t		h1 = (size_t) c->h1,
				h2 = (size_t) c->h2,
				o = (size_t) c->k + 1;
	size_t		fan1 = (size_t) c->channels * 32 + (size_t) c->n_dense;

	/*
	 * The sparse layer's true fan-in is the number of rated items, not
	 * n_items; a typical user rates tens of items, so scale as for 32.
	 */
	lfg_rng_seed(&rng, seed);
	fill_uniform(&rng, theta + l->W1s, (size_t) c->n_items * c->channels * h1, fan1);
	fill_uniform(&rng, theta + l->W1d, (size_t) c->n_dense * h1, fan1);
	fill_uniform(&rng, theta + l->b1, h1, fan1);
	fill_uniform(&rng, theta + l->W2, h1 * h2, h1);
	fill_uniform(&rng, theta + l->b2, h2, h1);
	fill_uniform(&rng, theta + l->W3, h2 * o, h2);
	fill_uniform(&rng, theta + l->b3, o, h2);
	if (c->batchnorm)
	{
		for (size_t j = 0; j < h1; j++)
		{
			theta[l->g1 + j] = 1.0f;
			theta[l->be1 + j] = 0.0f;
			running[j] = 0.0f;	/* running mean */
			running[h1 + j] = 1.0f; /* running variance */
		}
		for (size_t j = 0; j < h2; j++)
		{
			theta[l->g2 + j] = 1.0f;
			theta[l->be2 + j] = 0.0f;
			running[2 * h1 + j] = 0.0f;
			running[2 * h1 + h2 + j] = 1.0f;
		}
	}
}

/* Allocate activation buffers for batches of up to max_batch users */
LfgStatus
lfg_gen_work_alloc(const LfgGenConfig *c, int32_t max_batch, const LfgAllocator *a,
				   LfgGenWork *w, LfgError *err)
{
	size_t		b = (size_t) max_batch;
	size_t		n1 = b * (size_t) c->h1,
				n2 = b * (size_t) c->h2,
				n3 = b * ((size_t) c->k + 1);
	size_t		wide = (size_t) c->h1 > (size_t) c->h2 ? (size_t) c->h1 : (size_t) c->h2;
	float	  **bufs[] = {&w->z1, &w->a1, &w->xhat1, &w->y1, &w->m1,
		&w->z2, &w->a2, &w->xhat2, &w->y2, &w->m2, &w->out,
	&w->d1, &w->d2, &w->d3};
	size_t		sizes[] = {n1, n1, n1, n1, n1, n2, n2, n2, n2, n2, n3,
		b * wide, b * wide, n3};

	memset(w, 0, sizeof(*w));
	w->max_batch = max_batch;
	for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++)
		if ((*bufs[j] = lfg_alloc_array(a, sizes[j], sizeof(float))) == NULL)
			return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for generator activations");
	w->mean1 = lfg_alloc_array(a, (size_t) c->h1, sizeof(float));
	w->istd1 = lfg_alloc_array(a, (size_t) c->h1, sizeof(float));
	w->mean2 = lfg_alloc_array(a, (size_t) c->h2, sizeof(float));
	w->istd2 = lfg_alloc_array(a, (size_t) c->h2, sizeof(float));
	if (!w->mean1 || !w->istd1 || !w->mean2 || !w->istd2)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for generator activations");
	return LFG_OK;
}

/* a = leaky(z) */
static void
leaky_forward(const float *restrict z, float *restrict a, size_t n, float slope)
{
	/*
	 * max(z, 0) + slope min(z, 0): the same values as the branch on the sign,
	 * without its mispredictions (half the units are negative), and
	 * vectorised
	 */
	for (size_t j = 0; j < n; j++)
	{
		float		v = z[j];
		float		pos = v > 0.0f ? v : 0.0f;
		float		neg = v < 0.0f ? v : 0.0f;

		a[j] = pos + slope * neg;
	}
}

/*
 * BatchNorm of the features [f0, f1) over the rows of x (batch x h): y = g
 * xhat + be; each feature on its own, so features can go to threads. Training mode
 * uses the batch mean and biased variance and updates the running
 * statistics; evaluation mode uses the running statistics.
 */
static void
bn_forward(const float *x, float *xhat, float *y, int32_t batch, int32_t h,
		   const float *g, const float *be, float *rmean, float *rvar,
		   float *mean, float *istd, int training, int32_t f0, int32_t f1)
{
	for (int32_t f = f0; f < f1; f++)
	{
		double		m = 0.0,
					v = 0.0;

		if (training)
		{
			for (int32_t b = 0; b < batch; b++)
				m += x[(size_t) b * h + f];
			m /= batch;
			for (int32_t b = 0; b < batch; b++)
			{
				double		d = x[(size_t) b * h + f] - m;

				v += d * d;
			}
			v /= batch;
			rmean[f] = (1.0f - LFG_BN_MOMENTUM) * rmean[f] + LFG_BN_MOMENTUM * (float) m;
			rvar[f] = (1.0f - LFG_BN_MOMENTUM) * rvar[f] +
				LFG_BN_MOMENTUM * (float) (batch > 1 ? v * batch / (batch - 1) : v);
		}
		else
		{
			m = rmean[f];
			v = rvar[f];
		}
		mean[f] = (float) m;
		istd[f] = (float) (1.0 / sqrt(v + LFG_BN_EPS));
	}
	for (int32_t b = 0; b < batch; b++)
		for (int32_t f = f0; f < f1; f++)
		{
			size_t		j = (size_t) b * h + f;

			xhat[j] = (x[j] - mean[f]) * istd[f];
			y[j] = g[f] * xhat[j] + be[f];
		}
}

/* Inverted dropout: y *= mask, mask in {0, 1/(1-p)}; p = 0 or eval: mask 1 */
static void
dropout_forward(float *y, float *mask, size_t n, float p, int training, LfgRng *rng)
{
	float		scale = 1.0f / (1.0f - p);

	if (!training || p == 0.0f)
	{
		/* identity; the backward pass (training only) reads the mask */
		if (training)
			for (size_t j = 0; j < n; j++)
				mask[j] = 1.0f;
		return;
	}
	for (size_t j = 0; j < n; j++)
	{
		mask[j] = lfg_rng_uniform(rng) >= p ? scale : 0.0f;
		y[j] *= mask[j];
	}
}

/*
 * Z (B x n) += X (B x m) W (m x n) with gemm. One user (serving, gemm
 * lfg_gemm) is a matrix-vector product: OpenBLAS does not turn a one-row
 * sgemm into sgemv, which is several times faster.
 */
static void
dense_layer(LfgGemmFn gemm, int32_t B, int32_t n, int32_t m, const float *X, const float *W,
			float *Z)
{
	if (B == 1 && gemm == lfg_gemm)
		lfg_gemv(1, m, n, 1.0f, W, n, X, 1.0f, Z);
	else
		gemm(0, 0, B, n, m, 1.0f, X, m, W, n, 1.0f, Z, n);
}

/*
 * One pass of the generator over a batch, cut into tasks (lfg_par.h): the
 * layers' rows by LFG_PAR_ROWS, BatchNorm's features and the weight
 * gradients' rows by LFG_PAR_COLS, the sparse layer's gradient by item
 * ranges, each of which goes through the batch's entries in order. Dropout
 * draws its masks in one stream, on the calling thread.
 */
typedef struct GenPass
{
	const LfgGenConfig *c;
	const LfgGenLayout *l;
	const float *theta;
	float	   *running;
	const LfgGenInput *in;
	LfgGenWork *w;
	int			training;
	float	   *grad;
	int32_t		layer;			/* 1 or 2: the hidden block of a BatchNorm task */
	int32_t		split;			/* tasks below it are one kind, the rest another */
	LfgGemmFn	gemm;			/* lfg_gemm_mt on threads (training), else lfg_gemm */
} GenPass;

/* Rows [r0, r1) of row chunk j of a batch of B */
static inline void
chunk_rows(int j, int32_t B, int32_t *r0, int32_t *r1)
{
	*r0 = j * LFG_PAR_ROWS;
	*r1 = *r0 + LFG_PAR_ROWS < B ? *r0 + LFG_PAR_ROWS : B;
}

/* Features [f0, f1) of column chunk j of h */
static inline void
chunk_cols(int j, int32_t h, int32_t *f0, int32_t *f1)
{
	*f0 = j * LFG_PAR_COLS;
	*f1 = *f0 + LFG_PAR_COLS < h ? *f0 + LFG_PAR_COLS : h;
}

/* Rows of layer 1 (bias, dense part, sparse part) and its LeakyReLU */
static void
fwd1_task(void *arg, int j)
{
	GenPass    *g = arg;
	const LfgGenConfig *c = g->c;
	const LfgGenInput *in = g->in;
	int32_t		h1 = c->h1,
				ch = c->channels,
				r0,
				r1;
	float	   *z1 = g->w->z1;

	chunk_rows(j, in->batch, &r0, &r1);
	for (int32_t b = r0; b < r1; b++)
		memcpy(z1 + (size_t) b * h1, g->theta + g->l->b1, (size_t) h1 * sizeof(float));
	if (c->n_dense > 0)
		dense_layer(g->gemm, r1 - r0, h1, c->n_dense, in->dense + (size_t) r0 * c->n_dense,
					g->theta + g->l->W1d, z1 + (size_t) r0 * h1);
	for (int32_t b = r0; b < r1; b++)
		for (int32_t e = in->ptr[b]; e < in->ptr[b + 1]; e++)
		{
			const float *row = g->theta + g->l->W1s + (size_t) in->idx[e] * ch * h1;

			for (int32_t q = 0; q < ch; q++)
				lfg_axpy(h1, in->val[(size_t) e * ch + q], row + (size_t) q * h1,
						 z1 + (size_t) b * h1);
		}
	leaky_forward(z1 + (size_t) r0 * h1, g->w->a1 + (size_t) r0 * h1,
				  (size_t) (r1 - r0) * h1, c->leaky_slope);
}

/* Rows of layer 2 (from the first block's output) and its LeakyReLU */
static void
fwd2_task(void *arg, int j)
{
	GenPass    *g = arg;
	int32_t		h1 = g->c->h1,
				h2 = g->c->h2,
				r0,
				r1;

	chunk_rows(j, g->in->batch, &r0, &r1);
	for (int32_t b = r0; b < r1; b++)
		memcpy(g->w->z2 + (size_t) b * h2, g->theta + g->l->b2, (size_t) h2 * sizeof(float));
	dense_layer(g->gemm, r1 - r0, h2, h1, g->w->y1 + (size_t) r0 * h1, g->theta + g->l->W2,
				g->w->z2 + (size_t) r0 * h2);
	leaky_forward(g->w->z2 + (size_t) r0 * h2, g->w->a2 + (size_t) r0 * h2,
				  (size_t) (r1 - r0) * h2, g->c->leaky_slope);
}

/* Rows of layer 3 and the tanh */
static void
fwd3_task(void *arg, int j)
{
	GenPass    *g = arg;
	int32_t		h2 = g->c->h2,
				o = g->c->k + 1,
				r0,
				r1;
	float	   *out = g->w->out;

	chunk_rows(j, g->in->batch, &r0, &r1);
	for (int32_t b = r0; b < r1; b++)
		memcpy(out + (size_t) b * o, g->theta + g->l->b3, (size_t) o * sizeof(float));
	dense_layer(g->gemm, r1 - r0, o, h2, g->w->y2 + (size_t) r0 * h2, g->theta + g->l->W3,
				out + (size_t) r0 * o);
	for (size_t e = (size_t) r0 * o; e < (size_t) r1 * o; e++)
		out[e] = tanhf(out[e]);
}

/* Features of a block's BatchNorm (g->layer) */
static void
bn_task(void *arg, int j)
{
	GenPass    *g = arg;
	LfgGenWork *w = g->w;
	int32_t		h1 = g->c->h1,
				h2 = g->c->h2,
				f0,
				f1;
	float	   *r = g->running;

	if (g->layer == 1)
	{
		chunk_cols(j, h1, &f0, &f1);
		bn_forward(w->a1, w->xhat1, w->y1, g->in->batch, h1, g->theta + g->l->g1,
				   g->theta + g->l->be1, r, r ? r + h1 : NULL, w->mean1, w->istd1,
				   g->training, f0, f1);
	}
	else
	{
		chunk_cols(j, h2, &f0, &f1);
		bn_forward(w->a2, w->xhat2, w->y2, g->in->batch, h2, g->theta + g->l->g2,
				   g->theta + g->l->be2, r ? r + 2 * h1 : NULL, r ? r + 2 * h1 + h2 : NULL,
				   w->mean2, w->istd2, g->training, f0, f1);
	}
}

/* The rest of hidden block layer: [BatchNorm] then dropout, into y */
static void
block_forward(GenPass *g, int32_t layer, int32_t h, const float *a, float *y, float *m,
			  LfgRng *rng, LfgPar *par)
{
	size_t		n = (size_t) g->in->batch * h;

	if (g->c->batchnorm)
	{
		g->layer = layer;
		lfg_par_run(par, lfg_par_chunks((size_t) h, LFG_PAR_COLS), bn_task, g);
	}
	else
		memcpy(y, a, n * sizeof(float));
	dropout_forward(y, m, n, g->c->dropout, g->training, rng);
}

/* See lfg_gen.h */
void
lfg_gen_forward(const LfgGenConfig *c, const LfgGenLayout *l, const float *theta,
				float *running, const LfgGenInput *in, LfgGenWork *w, int training,
				LfgRng *rng)
{
	lfg_gen_forward_par(c, l, theta, running, in, w, training, rng, NULL);
}

/* See lfg_gen.h */
void
lfg_gen_forward_par(const LfgGenConfig *c, const LfgGenLayout *l, const float *theta,
					float *running, const LfgGenInput *in, LfgGenWork *w, int training,
					LfgRng *rng, LfgPar *par)
{
	GenPass		g = {c, l, theta, running, in, w, training, NULL, 0, 0,
	par != NULL ? lfg_gemm_mt : lfg_gemm};
	int			rows = lfg_par_chunks((size_t) in->batch, LFG_PAR_ROWS);

	lfg_par_run(par, rows, fwd1_task, &g);
	block_forward(&g, 1, c->h1, w->a1, w->y1, w->m1, rng, par);
	lfg_par_run(par, rows, fwd2_task, &g);
	block_forward(&g, 2, c->h2, w->a2, w->y2, w->m2, rng, par);
	lfg_par_run(par, rows, fwd3_task, &g);
}

/*
 * Backward through dropout, BatchNorm and LeakyReLU of the features [f0,
 * f1) of one block, each feature on its own. dy holds the gradient w.r.t.
 * the block output and becomes the gradient w.r.t. z; its column sums (in
 * row order) are added to db, the gradient of the bias before it.
 */
static void
block_backward(const LfgGenConfig *c, int32_t B, int32_t h, const float *g,
			   float *dg, float *dbe, float *db, const float *z, const float *xhat,
			   const float *m, const float *istd, float *dy, int32_t f0, int32_t f1)
{
	for (int32_t b = 0; b < B; b++)
		for (int32_t f = f0; f < f1; f++)
			dy[(size_t) b * h + f] *= m[(size_t) b * h + f];
	if (c->batchnorm)
	{
		for (int32_t f = f0; f < f1; f++)
		{
			double		sdy = 0.0,
						sdyx = 0.0;

			for (int32_t b = 0; b < B; b++)
			{
				size_t		j = (size_t) b * h + f;

				sdy += dy[j];
				sdyx += (double) dy[j] * xhat[j];
			}
			dg[f] += (float) sdyx;
			dbe[f] += (float) sdy;
			/* dx = g istd / B (B dxhat - sum dxhat - xhat sum(dxhat xhat)), dxhat = g dy */
			for (int32_t b = 0; b < B; b++)
			{
				size_t		j = (size_t) b * h + f;

				dy[j] = (float) (g[f] * istd[f] / B *
								 (B * (double) dy[j] - sdy - xhat[j] * sdyx));
			}
		}
	}
	for (int32_t b = 0; b < B; b++)
		for (int32_t f = f0; f < f1; f++)
		{
			size_t		j = (size_t) b * h + f;

			if (z[j] <= 0.0f)
				dy[j] *= c->leaky_slope;
			db[f] += dy[j];
		}
}

/* Features of block 2 (g->layer 2) or block 1 backward, with their bias */
static void
bb_task(void *arg, int j)
{
	GenPass    *p = arg;
	const LfgGenConfig *c = p->c;
	const LfgGenLayout *l = p->l;
	LfgGenWork *w = p->w;
	int32_t		f0,
				f1;

	if (p->layer == 2)
	{
		chunk_cols(j, c->h2, &f0, &f1);
		block_backward(c, p->in->batch, c->h2, p->theta + l->g2, p->grad + l->g2,
					   p->grad + l->be2, p->grad + l->b2, w->z2, w->xhat2, w->m2,
					   w->istd2, w->d2, f0, f1);
	}
	else
	{
		chunk_cols(j, c->h1, &f0, &f1);
		block_backward(c, p->in->batch, c->h1, p->theta + l->g1, p->grad + l->g1,
					   p->grad + l->be1, p->grad + l->b1, w->z1, w->xhat1, w->m1,
					   w->istd1, w->d1, f0, f1);
	}
}

/*
 * A dense layer backward (X B x m into dZ B x n through W m x n): tasks
 * below g->split are rows [f0, f1) of dW += X^T dZ, the others rows of dX
 * = dZ W^T. Layer 3 (g->layer 3: X y2, dZ d3, dX d2) or 2 (y1, d2, d1).
 */
static void
dense_back_task(void *arg, int j)
{
	GenPass    *g = arg;
	const LfgGenConfig *c = g->c;
	int32_t		B = g->in->batch,
				m = g->layer == 3 ? c->h2 : c->h1,
				n = g->layer == 3 ? c->k + 1 : c->h2,
				r0,
				r1;
	const float *X = g->layer == 3 ? g->w->y2 : g->w->y1;
	const float *dZ = g->layer == 3 ? g->w->d3 : g->w->d2;
	const float *W = g->theta + (g->layer == 3 ? g->l->W3 : g->l->W2);
	float	   *dW = g->grad + (g->layer == 3 ? g->l->W3 : g->l->W2),
			   *dX = g->layer == 3 ? g->w->d2 : g->w->d1;

	if (j < g->split)
	{
		chunk_cols(j, m, &r0, &r1);
		g->gemm(1, 0, r1 - r0, n, B, 1.0f, X + r0, m, dZ, n, 1.0f, dW + (size_t) r0 * n, n);
	}
	else
	{
		chunk_rows(j - g->split, B, &r0, &r1);
		g->gemm(0, 1, r1 - r0, m, n, 1.0f, dZ + (size_t) r0 * n, n, W, n, 0.0f,
				 dX + (size_t) r0 * m, m);
	}
}

/*
 * Layer 1's weights: tasks below g->split are item ranges of the sparse
 * rows (the batch's entries in order, those in the range), the others rows
 * of the dense input's dW1d += dense^T dy1
 */
static void
layer1_back_task(void *arg, int j)
{
	GenPass    *g = arg;
	const LfgGenConfig *c = g->c;
	const LfgGenInput *in = g->in;
	int32_t		h1 = c->h1,
				ch = c->channels;
	const float *dy1 = g->w->d1;

	if (j < g->split)
	{
		int32_t		per = (c->n_items + LFG_PAR_ITEM_RANGES - 1) / LFG_PAR_ITEM_RANGES,
					i0 = j * per,
					i1 = i0 + per;

		for (int32_t b = 0; b < in->batch; b++)
			for (int32_t e = in->ptr[b]; e < in->ptr[b + 1]; e++)
			{
				float	   *row;

				if (in->idx[e] < i0 || in->idx[e] >= i1)
					continue;
				row = g->grad + g->l->W1s + (size_t) in->idx[e] * ch * h1;
				for (int32_t q = 0; q < ch; q++)
					lfg_axpy(h1, in->val[(size_t) e * ch + q], dy1 + (size_t) b * h1,
							 row + (size_t) q * h1);
			}
	}
	else
	{
		int32_t		r0,
					r1;

		chunk_cols(j - g->split, c->n_dense, &r0, &r1);
		g->gemm(1, 0, r1 - r0, h1, in->batch, 1.0f, in->dense + r0, c->n_dense, dy1, h1,
				 1.0f, g->grad + g->l->W1d + (size_t) r0 * h1, h1);
	}
}

/* See lfg_gen.h */
void
lfg_gen_backward(const LfgGenConfig *c, const LfgGenLayout *l, const float *theta,
				 const LfgGenInput *in, LfgGenWork *w, const float *dout, float *grad)
{
	lfg_gen_backward_par(c, l, theta, in, w, dout, grad, NULL);
}

/* See lfg_gen.h */
void
lfg_gen_backward_par(const LfgGenConfig *c, const LfgGenLayout *l, const float *theta,
					 const LfgGenInput *in, LfgGenWork *w, const float *dout, float *grad,
					 LfgPar *par)
{
	int32_t		B = in->batch,
				o = c->k + 1;
	int			rows = lfg_par_chunks((size_t) B, LFG_PAR_ROWS);
	GenPass		g = {c, l, theta, NULL, in, w, 1, grad, 0, 0,
	par != NULL ? lfg_gemm_mt : lfg_gemm};

	/* tanh, and b3's gradient (column sums in row order) */
	for (size_t j = 0; j < (size_t) B * o; j++)
		w->d3[j] = dout[j] * (1.0f - w->out[j] * w->out[j]);
	for (int32_t b = 0; b < B; b++)
		for (int32_t f = 0; f < o; f++)
			grad[l->b3 + f] += w->d3[(size_t) b * o + f];
	/* layer 3: dW3 += y2^T dz3, dy2 = dz3 W3^T; block 2 */
	g.layer = 3;
	g.split = lfg_par_chunks((size_t) c->h2, LFG_PAR_COLS);
	lfg_par_run(par, g.split + rows, dense_back_task, &g);
	g.layer = 2;
	lfg_par_run(par, lfg_par_chunks((size_t) c->h2, LFG_PAR_COLS), bb_task, &g);
	/* layer 2; block 1 */
	g.split = lfg_par_chunks((size_t) c->h1, LFG_PAR_COLS);
	lfg_par_run(par, g.split + rows, dense_back_task, &g);
	g.layer = 1;
	lfg_par_run(par, lfg_par_chunks((size_t) c->h1, LFG_PAR_COLS), bb_task, &g);
	/* layer 1: the sparse rows the batch touched and the dense input's */
	g.split = LFG_PAR_ITEM_RANGES;
	lfg_par_run(par, g.split + lfg_par_chunks((size_t) c->n_dense, LFG_PAR_COLS),
				layer1_back_task, &g);
}

/* See lfg_gen.h: multiply-adds counted as 2 FLOPs */
double
lfg_gen_flops(const LfgGenConfig *c, int32_t batch, size_t nnz, bool backward)
{
	double		B = batch,
				h1 = c->h1,
				h2 = c->h2,
				o = c->k + 1;
	double		fwd = 2.0 * nnz * c->channels * h1 + 2.0 * B * c->n_dense * h1 +
		2.0 * B * h1 * h2 + 2.0 * B * h2 * o;

	if (!backward)
		return fwd;
	/* backward: the sparse and dense-input layers once, the others twice */
	return fwd + 2.0 * nnz * c->channels * h1 + 2.0 * B * c->n_dense * h1 +
		2.0 * (2.0 * B * h1 * h2 + 2.0 * B * h2 * o);
}
