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
 * BatchNorm over the rows of x (batch x h): y = g xhat + be. Training mode
 * uses the batch mean and biased variance and updates the running
 * statistics; evaluation mode uses the running statistics.
 */
static void
bn_forward(const float *x, float *xhat, float *y, int32_t batch, int32_t h,
		   const float *g, const float *be, float *rmean, float *rvar,
		   float *mean, float *istd, int training)
{
	for (int32_t f = 0; f < h; f++)
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
		for (int32_t f = 0; f < h; f++)
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

/* One hidden block: z -> leaky -> [BN] -> dropout, y is the block output */
static void
block_forward(const LfgGenConfig *c, int32_t batch, int32_t h, const float *g,
			  const float *be, float *running_mean, float *running_var,
			  float *z, float *a, float *xhat, float *y, float *m, float *mean,
			  float *istd, int training, LfgRng *rng)
{
	size_t		n = (size_t) batch * h;

	leaky_forward(z, a, n, c->leaky_slope);
	if (c->batchnorm)
		bn_forward(a, xhat, y, batch, h, g, be, running_mean, running_var, mean,
				   istd, training);
	else
		memcpy(y, a, n * sizeof(float));
	dropout_forward(y, m, n, c->dropout, training, rng);
}

/*
 * Z (B x n) += X (B x m) W (m x n). One user (serving) is a matrix-vector
 * product: OpenBLAS does not turn a one-row sgemm into sgemv, which is
 * several times faster.
 */
static void
dense_layer(int32_t B, int32_t n, int32_t m, const float *X, const float *W, float *Z)
{
	if (B == 1)
		lfg_gemv(1, m, n, 1.0f, W, n, X, 1.0f, Z);
	else
		lfg_gemm(0, 0, B, n, m, 1.0f, X, m, W, n, 1.0f, Z, n);
}

/* See lfg_gen.h */
void
lfg_gen_forward(const LfgGenConfig *c, const LfgGenLayout *l, const float *theta,
				float *running, const LfgGenInput *in, LfgGenWork *w, int training,
				LfgRng *rng)
{
	int32_t		B = in->batch,
				h1 = c->h1,
				h2 = c->h2,
				o = c->k + 1,
				ch = c->channels;
	float	   *r1m = running,
			   *r1v = running ? running + h1 : NULL,
			   *r2m = running ? running + 2 * h1 : NULL,
			   *r2v = running ? running + 2 * h1 + h2 : NULL;

	/* layer 1: bias, dense part (one gemm), sparse part (axpy per entry) */
	for (int32_t b = 0; b < B; b++)
		memcpy(w->z1 + (size_t) b * h1, theta + l->b1, (size_t) h1 * sizeof(float));
	if (c->n_dense > 0)
		dense_layer(B, h1, c->n_dense, in->dense, theta + l->W1d, w->z1);
	for (int32_t b = 0; b < B; b++)
		for (int32_t e = in->ptr[b]; e < in->ptr[b + 1]; e++)
		{
			const float *row = theta + l->W1s + (size_t) in->idx[e] * ch * h1;

			for (int32_t q = 0; q < ch; q++)
				lfg_axpy(h1, in->val[(size_t) e * ch + q], row + (size_t) q * h1,
						 w->z1 + (size_t) b * h1);
		}
	block_forward(c, B, h1, theta + l->g1, theta + l->be1, r1m, r1v, w->z1, w->a1,
				  w->xhat1, w->y1, w->m1, w->mean1, w->istd1, training, rng);

	/* layer 2 */
	for (int32_t b = 0; b < B; b++)
		memcpy(w->z2 + (size_t) b * h2, theta + l->b2, (size_t) h2 * sizeof(float));
	dense_layer(B, h2, h1, w->y1, theta + l->W2, w->z2);
	block_forward(c, B, h2, theta + l->g2, theta + l->be2, r2m, r2v, w->z2, w->a2,
				  w->xhat2, w->y2, w->m2, w->mean2, w->istd2, training, rng);

	/* layer 3 and tanh */
	for (int32_t b = 0; b < B; b++)
		memcpy(w->out + (size_t) b * o, theta + l->b3, (size_t) o * sizeof(float));
	dense_layer(B, o, h2, w->y2, theta + l->W3, w->out);
	for (size_t j = 0; j < (size_t) B * o; j++)
		w->out[j] = tanhf(w->out[j]);
}

/* Column sums of x (batch x h) added to s */
static void
colsum_add(const float *x, int32_t batch, int32_t h, float *s)
{
	for (int32_t b = 0; b < batch; b++)
		lfg_axpy(h, 1.0f, x + (size_t) b * h, s);
}

/*
 * Backward through dropout, BatchNorm and LeakyReLU of one block. dy holds
 * the gradient w.r.t. the block output and becomes the gradient w.r.t. z.
 */
static void
block_backward(const LfgGenConfig *c, int32_t B, int32_t h, const float *g,
			   float *dg, float *dbe, const float *z, const float *xhat,
			   const float *m, const float *istd, float *dy)
{
	size_t		n = (size_t) B * h;

	for (size_t j = 0; j < n; j++)
		dy[j] *= m[j];
	if (c->batchnorm)
	{
		for (int32_t f = 0; f < h; f++)
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
	for (size_t j = 0; j < n; j++)
		if (z[j] <= 0.0f)
			dy[j] *= c->leaky_slope;
}

/* See lfg_gen.h */
void
lfg_gen_backward(const LfgGenConfig *c, const LfgGenLayout *l, const float *theta,
				 const LfgGenInput *in, LfgGenWork *w, const float *dout, float *grad)
{
	int32_t		B = in->batch,
				h1 = c->h1,
				h2 = c->h2,
				o = c->k + 1,
				ch = c->channels;
	float	   *dz3 = w->d3,
			   *dy2 = w->d2,
			   *dy1 = w->d1;

	/* tanh */
	for (size_t j = 0; j < (size_t) B * o; j++)
		dz3[j] = dout[j] * (1.0f - w->out[j] * w->out[j]);
	/* layer 3: dW3 += y2^T dz3, db3 += colsum dz3, dy2 = dz3 W3^T */
	lfg_gemm(1, 0, h2, o, B, 1.0f, w->y2, h2, dz3, o, 1.0f, grad + l->W3, o);
	colsum_add(dz3, B, o, grad + l->b3);
	lfg_gemm(0, 1, B, h2, o, 1.0f, dz3, o, theta + l->W3, o, 0.0f, dy2, h2);
	block_backward(c, B, h2, theta + l->g2, grad + l->g2, grad + l->be2, w->z2,
				   w->xhat2, w->m2, w->istd2, dy2);
	/* layer 2 */
	lfg_gemm(1, 0, h1, h2, B, 1.0f, w->y1, h1, dy2, h2, 1.0f, grad + l->W2, h2);
	colsum_add(dy2, B, h2, grad + l->b2);
	lfg_gemm(0, 1, B, h1, h2, 1.0f, dy2, h2, theta + l->W2, h2, 0.0f, dy1, h1);
	block_backward(c, B, h1, theta + l->g1, grad + l->g1, grad + l->be1, w->z1,
				   w->xhat1, w->m1, w->istd1, dy1);
	/* layer 1: dense and bias, then the sparse rows the batch touched */
	colsum_add(dy1, B, h1, grad + l->b1);
	if (c->n_dense > 0)
		lfg_gemm(1, 0, c->n_dense, h1, B, 1.0f, in->dense, c->n_dense, dy1, h1, 1.0f,
				 grad + l->W1d, h1);
	for (int32_t b = 0; b < B; b++)
		for (int32_t e = in->ptr[b]; e < in->ptr[b + 1]; e++)
		{
			float	   *row = grad + l->W1s + (size_t) in->idx[e] * ch * h1;

			for (int32_t q = 0; q < ch; q++)
				lfg_axpy(h1, in->val[(size_t) e * ch + q], dy1 + (size_t) b * h1,
						 row + (size_t) q * h1);
		}
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
