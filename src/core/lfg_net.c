/*
 * lfg_net.c
 *	  Training and inference of the LFG model.
 *
 * Training (PAPER.md, with the options of doc/lfg.md):
 *	 1. A seeded validation slice (val_fraction of the ratings) is held out
 *		for early stopping.
 *	 2. BiasSVD is pretrained on the rest (lfg_mf.c); Q and b_i start from it
 *		(init "svd") or from N(0, 0.1) and zero (init "random"), and are then
 *		trained jointly with the generator or kept frozen (train_items).
 *	 3. Each epoch visits the users in a seeded random order, in mini-batches.
 *		A user's input is either all their ratings with each hidden with
 *		probability mask_prob (the paper), or an episode: n = floor(exp(U(0,
 *		ln N))) of their N ratings revealed, the loss weighted 1 on the hidden
 *		ratings and revealed_weight on the revealed ones, which prepares the
 *		generator for new users with few ratings.
 *	 4. The loss is the weighted mean squared error of mu + b_u + b_i +
 *		p_u . q_i over the target ratings; gradients flow through the
 *		generator (lfg_gen.c) and, when trained, into Q and b_i; Adam steps
 *		after every batch.
 *	 5. After each epoch the validation RMSE (users fed all their training
 *		ratings, evaluation mode) decides early stopping; the best weights
 *		are kept. With average_steps > 0 it is a moving average of the
 *		weights that is validated and kept (average_weights).
 *	 6. With a validation slice or held users, the fold-in that serves new
 *		users (the weights of the generator's output, the mean user and a
 *		BiasSVD's fold-in in its prior, per bucket of n; that BiasSVD has
 *		base_factors, and is the pretrained one when they are k) is
 *		chosen on episodes (lfg_foldin.c): of the held users (foldin_users,
 *		a seeded share of the users; step 1 draws them and puts half of each
 *		one's ratings on the validation side, which neither the pretraining,
 *		the epochs nor early stopping see), n of those held ratings revealed
 *		and the rest scored, so that the generator meets ratings it never
 *		learned as a new user's; else of the training users, n of their
 *		training ratings revealed and the validation slice scored. When the
 *		choice weighs that BiasSVD, it is then refitted on all the ratings.
 *	 7. Every user's p_u and b_u are stored, so known users are served
 *		without the network: what lfg_recommend serves the user from all
 *		its ratings, the learned fold-in of step 6 (without a table, the
 *		generator's output). With held users, that fold-in is a second
 *		choice, made on the training users' episodes: the generator learned
 *		the known users, and what their episodes measure is right for them.
 *	 8. With rank_weight > 0, the ranking stage (train_ranking): a copy of
 *		the generator and a ranking head (R, c) trained with the
 *		multinomial ranking term, on random streams of its own, and kept as
 *		the average of their weights over the stage's last epochs; lists
 *		are ordered by the head, ratings still predicted by steps 1 to 7's
 *		model, which it does not change.
 *
 * "parallel" threads train (lfg_par.h): the pretraining's blocks, and in
 * each mini-batch and evaluation pass the generator's layers, the losses
 * and the Adam step, cut into tasks that never depend on the thread count
 * (rows of the batch, features, item ranges, chunks of parameters), so
 * the model's bytes are the same for any "parallel". The team lives for
 * an epoch or an evaluation pass, joined early only when the caller's
 * pending callback reports an interrupt to check; the batches, the
 * dropout masks and the fold-in episodes are made on the calling thread.
 */
#include <math.h>
#include <string.h>

#include "lfg_blas.h"
#include "lfg_model.h"
#include "lfg_net.h"
#include "lfg_optim.h"
#include "lfg_par.h"
#include "lfg_rng.h"
#include "lfg_serve.h"

/* row tasks of a batch at most (batch_size is at most 65536) */
#define MAX_ROW_TASKS		(65536 / LFG_PAR_ROWS)
/* seconds between interrupt checks while threads run, without cb->pending */
#define LFG_PAR_CHECK_SECONDS 0.05

/* Options of a preset (doc/lfg.md explains when to use which) */
void
lfg_net_options_preset(LfgNetOptions *o, int preset)
{
	memset(o, 0, sizeof(*o));
	o->preset = preset;
	o->factors = 64;
	o->h1 = 256;
	o->h2 = 256;
	o->epochs = 400;
	/*
	 * patience 20: with 10, all five seeds of the paper preset on ml-100k u1
	 * stopped at 129 to 174 epochs (test RMSE 0.9261 to 0.9331), with 20 at
	 * 196 to 218 (0.9223 to 0.9248); new_user on ml-1m spread 0.0090 over
	 * three seeds with 10, 0.0023 with 20 (doc/lfg.md, "Seeds")
	 */
	o->patience = 20;
	o->batch_size = 128;
	o->leaky_slope = 0.01;
	o->seed = LFG_DEFAULT_SEED;
	o->val_fraction = 0.05;
	o->aux = true;
	o->init = LFG_INIT_SVD;
	o->pretrain_epochs = 20;
	/* the base prior's BiasSVD: lfg's default one (its factors, pretrain_epochs 20) */
	o->base_factors = LFG_DEFAULT_FACTORS;
	o->parallel = 1;
	o->lr_decays = 2;
	o->lr_decay = 0.2;
	o->rank_epochs = 120;
	o->rank_lr = 1e-3;
	if (preset == LFG_PRESET_NEW_USER || preset == LFG_PRESET_RANKING)
	{
		o->lr = 3e-4;
		o->mask_prob = 0.0;
		o->dropout = 0.3;
		o->weight_decay = 0.0;
		o->batchnorm = false;
		o->train_items = false;
		o->input = LFG_INPUT_CENTERED;
		o->episodes = true;
		o->revealed_weight = 0.1;
		o->popularity_prior = LFG_NEW_USER_POPULARITY_PRIOR;
		/*
		 * the ranking stage: a ranking generator and head trained by the
		 * multinomial term after the rating model, which it leaves as it
		 * is (doc/lfg.md, "Ranking"). Preset ranking, which once traded
		 * the ratings for lists, is now the same as new_user.
		 */
		o->rank_weight = LFG_NEW_USER_RANK_WEIGHT;
		o->average_steps = LFG_NEW_USER_AVERAGE_STEPS;
	}
	else
	{
		o->lr = 1e-3;
		o->mask_prob = 0.25;
		o->dropout = LFG_DROPOUT_AUTO;
		o->weight_decay = LFG_WEIGHT_DECAY_AUTO;
		o->batchnorm = true;
		o->train_items = true;
		o->input = LFG_INPUT_RAW;
		o->episodes = false;
		o->revealed_weight = 1.0;
		/*
		 * the new users' fold-in chosen on held users' episodes: on ml-1m
		 * the training users' chose, for n = 8 to 15, a prior that served
		 * new users 0.0011 worse than BiasSVD's fold-in (doc/lfg.md, "New
		 * users, held out of training")
		 */
		o->foldin_users = LFG_PAPER_FOLDIN_USERS;
	}
}

/* Check every option against its documented range */
LfgStatus
lfg_net_options_check(const LfgNetOptions *o, LfgError *err)
{
#define RANGE(cond, name, text) \
	if (!(cond)) return lfg_error(err, LFG_EPARAM, "See doc/lfg.md for the options and their defaults.", \
								  "%s must be %s", name, text)
	RANGE(o->factors >= 1 && o->factors <= LFG_MAX_FACTORS, "factors", "between 1 and 1024");
	RANGE(o->h1 >= 1 && o->h1 <= 4096 && o->h2 >= 1 && o->h2 <= 4096, "hidden", "two sizes between 1 and 4096");
	RANGE(o->epochs >= 1 && o->epochs <= LFG_MAX_EPOCHS, "epochs", "between 1 and 10000");
	RANGE(o->patience >= 0 && o->patience <= LFG_MAX_EPOCHS, "patience", "between 0 and 10000");
	RANGE(o->lr > 0.0 && o->lr <= 1.0, "lr", "greater than 0 and at most 1");
	RANGE(o->batch_size >= 1 && o->batch_size <= 65536, "batch_size", "between 1 and 65536");
	RANGE(o->mask_prob >= 0.0 && o->mask_prob < 1.0, "mask_prob", "at least 0 and less than 1");
	RANGE(o->dropout == LFG_DROPOUT_AUTO ||
		  (o->dropout >= 0.0 && o->dropout < 1.0), "dropout", "at least 0 and less than 1");
	RANGE(o->weight_decay == LFG_WEIGHT_DECAY_AUTO ||
		  (o->weight_decay >= 0.0 && o->weight_decay <= 1.0), "weight_decay", "between 0 and 1");
	RANGE(o->leaky_slope >= 0.0 && o->leaky_slope < 1.0, "leaky_slope", "at least 0 and less than 1");
	RANGE(o->val_fraction >= 0.0 && o->val_fraction <= 0.5, "val_fraction", "between 0 and 0.5");
	RANGE(o->foldin_users >= 0.0 && o->foldin_users <= 0.5, "foldin_users", "between 0 and 0.5");
	RANGE(o->revealed_weight >= 0.0 && o->revealed_weight <= 1.0, "revealed_weight", "between 0 and 1");
	RANGE(o->lr_decays >= 0 && o->lr_decays <= 10, "lr_decays", "between 0 and 10");
	RANGE(o->lr_decay > 0.0 && o->lr_decay <= 1.0, "lr_decay", "greater than 0 and at most 1");
	RANGE(o->pretrain_epochs >= 1 && o->pretrain_epochs <= LFG_MAX_EPOCHS, "pretrain_epochs", "between 1 and 10000");
	RANGE(o->base_factors >= LFG_MIN_FACTORS && o->base_factors <= LFG_MAX_FACTORS, "base_factors", "between 1 and 1024");
	RANGE(o->parallel >= 1 && o->parallel <= LFG_MAX_PARALLEL, "parallel", "between 1 and 64");
	RANGE(o->popularity_prior >= 0.0 && o->popularity_prior <= 100.0, "popularity_prior", "between 0 and 100");
	RANGE(o->rank_weight >= 0.0 && o->rank_weight <= 100.0, "rank_weight", "between 0 and 100");
	RANGE(o->rank_epochs >= 1 && o->rank_epochs <= LFG_MAX_EPOCHS, "rank_epochs", "between 1 and 10000");
	RANGE(o->rank_lr > 0.0 && o->rank_lr <= 1.0, "rank_lr", "greater than 0 and at most 1");
	RANGE(o->average_steps >= 0 && o->average_steps <= LFG_MAX_AVERAGE_STEPS, "average_steps", "between 0 and 1000000");
	RANGE(o->init == LFG_INIT_SVD || o->init == LFG_INIT_RANDOM, "init", "\"svd\" or \"random\"");
	RANGE(o->input == LFG_INPUT_RAW || o->input == LFG_INPUT_CENTERED, "input", "\"raw\" or \"centered\"");
#undef RANGE
	return LFG_OK;
}

/* Width of the dense input: [age, gender one-hot, job one-hot] [log1p(n)] */
int32_t
lfg_net_dense_width(int aux, int input, int32_t n_genders, int32_t n_jobs)
{
	return (aux ? 1 + n_genders + n_jobs : 0) + (input == LFG_INPUT_CENTERED ? 1 : 0);
}

/*
 * Encode one user's input entries (items[0..n), ratings) into val (channels
 * per entry) and the dense row.
 */
static void
encode_user(const LfgNet *net, const LfgMfParams *mf, const int32_t *items,
			const float *ratings, int32_t n, float age, int32_t gender, int32_t job,
			float *val, float *dense)
{
	int32_t		pos = 0;

	if (net->input == LFG_INPUT_CENTERED)
	{
		float		s = n > 0 ? 1.0f / sqrtf((float) n) : 0.0f;

		for (int32_t e = 0; e < n; e++)
		{
			val[2 * e] = (ratings[e] - mf->mu - mf->bi[items[e]]) * s;
			val[2 * e + 1] = s;
		}
	}
	else
		for (int32_t e = 0; e < n; e++)
			val[e] = ratings[e];
	if (net->aux)
	{
		memset(dense, 0, (size_t) (1 + net->n_genders + net->n_jobs) * sizeof(float));
		dense[pos++] = isnan(age) ? 0.0f : (age - net->age_mean) / net->age_std;
		if (gender >= 0 && gender < net->n_genders)
			dense[pos + gender] = 1.0f;
		pos += net->n_genders;
		if (job >= 0 && job < net->n_jobs)
			dense[pos + job] = 1.0f;
		pos += net->n_jobs;
	}
	if (net->input == LFG_INPUT_CENTERED)
		dense[pos++] = log1pf((float) n);
}

/* Training state shared by the helpers below */
typedef struct Trainer
{
	const LfgRatings *d;
	const LfgUsers *u;
	const LfgNetOptions *o;
	LfgMfParams *mf;
	LfgNet	   *net;
	int32_t		k;
	/* per-user rating lists (CSR by user): training part and validation part */
	int32_t    *tr_ptr,
			   *tr_item;
	float	   *tr_rating;
	int32_t    *va_ptr,
			   *va_item;
	float	   *va_rating;
	/*
	 * foldin_users: held[u] marks the users (n_held of them) half of whose
	 * ratings are held out of training, on the validation side, for the
	 * fold-in's episodes
	 */
	uint8_t    *held;
	int32_t		n_held;
	/*
	 * with held users: the fold-in chosen on the training users' episodes,
	 * which stores the known users (step 7), and the base prior it serves
	 * them with (NULL when neither table weighs it)
	 */
	LfgFoldinTable *known_table;
	LfgFoldinBase *known_base;
	/* parameters: generator theta | Q | b_i, and their gradients */
	float	   *params,
			   *grad;
	size_t		n_params,
				n_opt;
	/* batch buffers */
	int32_t    *b_ptr,
			   *b_idx;
	float	   *b_val,
			   *b_dense;
	int32_t    *t_ptr,
			   *t_item;
	float	   *t_rating,
			   *t_weight;
	int32_t    *scratch;		/* a permutation of one user's ratings */
	float	   *in_r;			/* one user's input ratings */
	float	   *dout;
	float	   *rank_S;			/* rank_weight > 0: batch x n_items scores */
	size_t		head_off;		/* rank_weight > 0: offset of R | c in params */
	bool		ranking;		/* the second stage: the ranking term on, Q and b_i frozen */
	LfgMfParams base;			/* the base prior's BiasSVD item side (base_factors) */
	LfgGenWork	work;
	LfgRng		rng_order,
				rng_drop;
	double		flops;
	LfgPar		par;			/* the threads ("parallel") */
	double		checked;		/* when the callback last checked */
} Trainer;

/*
 * Draw the users half of whose ratings are held out of training for the
 * fold-in's episodes (foldin_users, a seeded share of the users with at
 * least LFG_FOLDIN_HELD_MIN_RATINGS ratings). When fewer than
 * LFG_FOLDIN_HELD_MIN_USERS are drawn, too few to choose on, exactly that
 * many are held (a seeded choice among those users) if they are at most
 * LFG_FOLDIN_HELD_MAX_SHARE of them; else none, and the episodes are the
 * training users'.
 */
static LfgStatus
draw_held(Trainer *t, const LfgAllocator *a, LfgError *err)
{
	const LfgRatings *d = t->d;
	int32_t		nu = d->n_users,
				eligible = 0;
	uint32_t   *order;
	LfgRng		rng;
	size_t		j = 0;

	t->n_held = 0;
	if (t->o->foldin_users <= 0.0)
		return LFG_OK;
	t->held = lfg_alloc_array(a, (size_t) nu + 1, sizeof(uint8_t));
	order = lfg_alloc_array(a, (size_t) nu + 1, sizeof(uint32_t));
	if (t->held == NULL || order == NULL)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the rating lists");
	lfg_rng_seed(&rng, t->o->seed ^ UINT64_C(0x7777));
	for (int32_t u = 0; u < nu; u++)
	{
		size_t		first = j;
		bool		may;

		while (j < d->n && d->user[j] == u)
			j++;
		may = j - first >= LFG_FOLDIN_HELD_MIN_RATINGS;
		if (may)
			order[eligible++] = (uint32_t) u;
		/* one draw per user, whatever its count, so the draws do not shift */
		t->held[u] = lfg_rng_uniform(&rng) < t->o->foldin_users && may;
		t->n_held += t->held[u];
	}
	if (t->n_held < LFG_FOLDIN_HELD_MIN_USERS)
	{
		memset(t->held, 0, (size_t) nu);
		t->n_held = 0;
		if (LFG_FOLDIN_HELD_MIN_USERS <= LFG_FOLDIN_HELD_MAX_SHARE * eligible)
		{
			/* the first LFG_FOLDIN_HELD_MIN_USERS of a seeded shuffle */
			lfg_rng_shuffle_u32(&rng, order, (size_t) eligible);
			for (int32_t k = 0; k < LFG_FOLDIN_HELD_MIN_USERS; k++)
				t->held[order[k]] = 1;
			t->n_held = LFG_FOLDIN_HELD_MIN_USERS;
		}
	}
	lfg_free(a, order);
	return LFG_OK;
}

/*
 * Split ratings (sorted by user) into per-user training and validation
 * lists; half of a held user's are on the validation side
 */
static LfgStatus
split_ratings(Trainer *t, const LfgAllocator *a, LfgError *err)
{
	const LfgRatings *d = t->d;
	int32_t		nu = d->n_users;
	LfgRng		rng;
	size_t		ntr = 0,
				nva = 0,
				j = 0;
	LfgStatus	st;

	if ((st = draw_held(t, a, err)) != LFG_OK)
		return st;

	t->tr_ptr = lfg_alloc_array(a, (size_t) nu + 1, sizeof(int32_t));
	t->va_ptr = lfg_alloc_array(a, (size_t) nu + 1, sizeof(int32_t));
	t->tr_item = lfg_alloc_array(a, d->n, sizeof(int32_t));
	t->va_item = lfg_alloc_array(a, d->n, sizeof(int32_t));
	t->tr_rating = lfg_alloc_array(a, d->n, sizeof(float));
	t->va_rating = lfg_alloc_array(a, d->n, sizeof(float));
	if (!t->tr_ptr || !t->va_ptr || !t->tr_item || !t->va_item || !t->tr_rating || !t->va_rating)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the rating lists");
	lfg_rng_seed(&rng, t->o->seed ^ UINT64_C(0x1111));
	for (int32_t u = 0; u < nu; u++)
	{
		size_t		start_tr = ntr;

		t->tr_ptr[u] = (int32_t) ntr;
		t->va_ptr[u] = (int32_t) nva;
		if (j < d->n && d->user[j] < u)
			return lfg_error(err, LFG_EDATA, NULL, "ratings are not sorted by user");
		for (; j < d->n && d->user[j] == u; j++)
		{
			/* one draw per rating, so the others' split stays */
			if (lfg_rng_uniform(&rng) < (t->held && t->held[u] ? LFG_FOLDIN_HELD_SHARE : t->o->val_fraction))
			{
				t->va_item[nva] = d->item[j];
				t->va_rating[nva++] = d->rating[j];
			}
			else
			{
				t->tr_item[ntr] = d->item[j];
				t->tr_rating[ntr++] = d->rating[j];
			}
		}
		/* every user keeps at least one training rating */
		if (ntr == start_tr && nva > (size_t) t->va_ptr[u])
		{
			nva--;
			t->tr_item[ntr] = t->va_item[nva];
			t->tr_rating[ntr++] = t->va_rating[nva];
		}
	}
	t->tr_ptr[nu] = (int32_t) ntr;
	t->va_ptr[nu] = (int32_t) nva;
	return LFG_OK;
}

/* Age mean and standard deviation over users that have one */
static void
age_stats(const LfgUsers *u, float *mean, float *std)
{
	double		s = 0.0,
				s2 = 0.0;
	int32_t		n = 0;

	for (int32_t j = 0; j < u->n_users; j++)
		if (u->age && !isnan(u->age[j]))
		{
			s += u->age[j];
			s2 += (double) u->age[j] * u->age[j];
			n++;
		}
	*mean = n > 0 ? (float) (s / n) : 0.0f;
	*std = n > 1 ? (float) sqrt(fmax(s2 / n - (s / n) * (s / n), 0.0)) : 1.0f;
	if (!(*std > 1e-6f))
		*std = 1.0f;
}

/*
 * The options of the BiasSVD that LFG pretrains (and refits, refit_base):
 * lfg's defaults with k = factors and pretrain_epochs; with a warm start,
 * known users and items start where they were
 */
static void
pretrain_options(const Trainer *t, LfgMfOptions *mo)
{
	lfg_mf_options_default(mo);
	mo->factors = t->k;
	mo->epochs = t->o->pretrain_epochs;
	mo->parallel = t->o->parallel;
	mo->seed = t->o->seed;
	mo->warm = t->o->warm;
}

/*
 * The options of the BiasSVD of the base prior (select_foldin, refit_base):
 * the pretraining's with base_factors; a warm start only with the model's
 * factors (the one it starts from has those)
 */
static void
base_options(const Trainer *t, LfgMfOptions *mo)
{
	pretrain_options(t, mo);
	mo->factors = t->o->base_factors;
	if (t->o->base_factors != t->k)
		mo->warm = NULL;
}

/* Pretrain BiasSVD on the training lists; initialise mu, Q, b_i */
static LfgStatus
pretrain(Trainer *t, const LfgNetCallbacks *cb, const LfgAllocator *a, LfgError *err)
{
	const LfgRatings *d = t->d;
	int32_t		nu = d->n_users,
				ni = d->n_items,
				k = t->k;
	int32_t    *users = lfg_alloc_array(a, (size_t) t->tr_ptr[nu], sizeof(int32_t));
	LfgMfOptions mo;
	LfgMfParams svd;
	LfgCallbacks mcb = {cb ? cb->on_pretrain_epoch : NULL, cb ? cb->check : NULL, cb ? cb->ctx : NULL};
	LfgRatings	r;
	double		rmse;
	LfgStatus	st;

	if (users == NULL)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for pretraining");
	for (int32_t u = 0; u < nu; u++)
		for (int32_t e = t->tr_ptr[u]; e < t->tr_ptr[u + 1]; e++)
			users[e] = u;
	r = (LfgRatings) {(size_t) t->tr_ptr[nu], nu, ni, users, t->tr_item, t->tr_rating};
	pretrain_options(t, &mo);
	if ((st = lfg_mf_train(&r, &mo, &mcb, a, &svd, &rmse, err)) != LFG_OK)
		return st;
	/* mu matches the pretrained biases; the range covers every rating */
	t->mf->mu = svd.mu;
	t->mf->rating_min = t->mf->rating_max = d->rating[0];
	for (size_t j = 1; j < d->n; j++)
	{
		t->mf->rating_min = fminf(t->mf->rating_min, d->rating[j]);
		t->mf->rating_max = fmaxf(t->mf->rating_max, d->rating[j]);
	}
	if (t->o->init == LFG_INIT_SVD)
	{
		memcpy(t->mf->Q, svd.Q, (size_t) ni * k * sizeof(float));
		memcpy(t->mf->bi, svd.bi, (size_t) ni * sizeof(float));
	}
	else
	{
		LfgRng		rng;

		lfg_rng_seed(&rng, t->o->seed ^ UINT64_C(0x5555));
		for (size_t j = 0; j < (size_t) ni * k; j++)
			t->mf->Q[j] = (float) (0.1 * lfg_rng_normal(&rng));
		memset(t->mf->bi, 0, (size_t) ni * sizeof(float));
	}
	lfg_free(a, svd.P);
	lfg_free(a, svd.bu);
	/*
	 * the item side of the base prior of the fold-in (select_foldin): this
	 * BiasSVD's, or with other base_factors one trained on the same lists
	 */
	if (t->o->base_factors != k)
	{
		lfg_free(a, svd.Q);
		lfg_free(a, svd.bi);
		base_options(t, &mo);
		if ((st = lfg_mf_train(&r, &mo, &mcb, a, &svd, &rmse, err)) != LFG_OK)
			return st;
		lfg_free(a, svd.P);
		lfg_free(a, svd.bu);
	}
	t->base = svd;
	t->base.P = t->base.bu = NULL;
	t->base.rating_min = t->mf->rating_min;
	t->base.rating_max = t->mf->rating_max;
	lfg_free(a, users);
	return LFG_OK;
}

/* Allocate parameters, gradients and batch buffers */
static LfgStatus
alloc_trainer(Trainer *t, const LfgAllocator *a, LfgError *err)
{
	LfgNet	   *net = t->net;
	size_t		ni = (size_t) t->d->n_items,
				k = (size_t) t->k,
				n = t->d->n,
				B = (size_t) t->o->batch_size;
	LfgStatus	st;

	/* theta | Q | b_i, then the ranking head R | c when there is one */
	t->head_off = net->layout.total + ni * k + ni;
	t->n_params = t->head_off + (t->o->rank_weight > 0.0 ? ni * k + ni : 0);
	t->n_opt = t->o->train_items ? t->head_off : net->layout.total;
	t->params = lfg_alloc_array(a, t->n_params, sizeof(float));
	t->grad = lfg_alloc_array(a, t->n_params, sizeof(float));
	net->running = lfg_alloc_array(a, net->layout.n_running + 1, sizeof(float));
	t->b_ptr = lfg_alloc_array(a, B + 1, sizeof(int32_t));
	t->b_idx = lfg_alloc_array(a, n, sizeof(int32_t));
	t->b_val = lfg_alloc_array(a, 2 * n, sizeof(float));
	t->b_dense = lfg_alloc_array(a, B * (size_t) (net->gen.n_dense + 1), sizeof(float));
	t->t_ptr = lfg_alloc_array(a, B + 1, sizeof(int32_t));
	t->t_item = lfg_alloc_array(a, n, sizeof(int32_t));
	t->t_rating = lfg_alloc_array(a, n, sizeof(float));
	t->t_weight = lfg_alloc_array(a, n, sizeof(float));
	t->scratch = lfg_alloc_array(a, n, sizeof(int32_t));
	t->in_r = lfg_alloc_array(a, n, sizeof(float));
	t->dout = lfg_alloc_array(a, B * (k + 1), sizeof(float));
	if (!t->params || !t->grad || !net->running || !t->b_ptr || !t->b_idx || !t->b_val ||
		!t->b_dense || !t->t_ptr || !t->t_item || !t->t_rating || !t->t_weight ||
		!t->scratch || !t->in_r || !t->dout)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for LFG training");
	if (t->o->rank_weight > 0.0)
	{
		t->rank_S = lfg_alloc_array(a, B * ni, sizeof(float));
		if (!t->rank_S)
			return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the ranking term");
	}
	if ((st = lfg_gen_work_alloc(&net->gen, t->o->batch_size, a, &t->work, err)) != LFG_OK)
		return st;
	net->theta = t->params;
	t->mf->Q = t->params + net->layout.total;
	t->mf->bi = t->mf->Q + ni * k;
	if (t->o->rank_weight > 0.0)
	{
		t->mf->rank_R = t->params + t->head_off;
		t->mf->rank_c = t->mf->rank_R + ni * k;
	}
	return LFG_OK;
}

/* Demographics of user u */
static void
user_demo(const Trainer *t, int32_t u, float *age, int32_t *gender, int32_t *job)
{
	*age = t->u->age ? t->u->age[u] : NAN;
	*gender = t->u->gender ? t->u->gender[u] : -1;
	*job = t->u->job ? t->u->job[u] : -1;
}

/* Append user u's input (CSR entry b) and its targets for a training batch */
static void
add_training_user(Trainer *t, int32_t b, int32_t u, size_t *nnz, size_t *ntg)
{
	const LfgNetOptions *o = t->o;
	int32_t		ch = t->net->gen.channels;
	int32_t		start = t->tr_ptr[u],
				N = t->tr_ptr[u + 1] - start;
	int32_t		n_rev = N,
				n_in = 0;
	int32_t    *perm = t->scratch;
	int32_t    *in_items = t->b_idx + *nnz;
	float		age;
	int32_t		gender,
				job;

	for (int32_t e = 0; e < N; e++)
		perm[e] = e;
	if (o->episodes && N > 1)
	{
		double		x = lfg_rng_uniform(&t->rng_order) * log((double) N);

		n_rev = (int32_t) floor(exp(x));
		n_rev = n_rev < 1 ? 1 : n_rev > N - 1 ? N - 1 : n_rev;
		for (int32_t e = 0; e < n_rev; e++)
		{
			int32_t		l = e + (int32_t) lfg_rng_below(&t->rng_order, (uint64_t) (N - e));
			int32_t		tmp = perm[e];

			perm[e] = perm[l];
			perm[l] = tmp;
		}
	}
	/* targets: every training rating; weight 1 when hidden */
	t->t_ptr[b] = (int32_t) *ntg;
	for (int32_t e = 0; e < N; e++)
	{
		t->t_item[*ntg] = t->tr_item[start + perm[e]];
		t->t_rating[*ntg] = t->tr_rating[start + perm[e]];
		t->t_weight[*ntg] = (o->episodes && e < n_rev) ? (float) o->revealed_weight : 1.0f;
		(*ntg)++;
	}
	/* input: the revealed ratings, each hidden with probability mask_prob */
	t->b_ptr[b] = (int32_t) *nnz;
	for (int32_t e = 0; e < n_rev; e++)
	{
		if (o->mask_prob > 0.0 && lfg_rng_uniform(&t->rng_order) < o->mask_prob)
			continue;
		in_items[n_in] = t->tr_item[start + perm[e]];
		t->in_r[n_in++] = t->tr_rating[start + perm[e]];
	}
	user_demo(t, u, &age, &gender, &job);
	encode_user(t->net, t->mf, in_items, t->in_r, n_in, age, gender, job,
				t->b_val + *nnz * ch, t->b_dense + (size_t) b * t->net->gen.n_dense);
	*nnz += (size_t) n_in;
}

/* Append user u fed all ratings in [from, to) of items/ratings (evaluation) */
static void
add_eval_user(Trainer *t, int32_t b, int32_t u, const int32_t *items, const float *ratings,
			  int32_t n, size_t *nnz)
{
	int32_t		ch = t->net->gen.channels;
	float		age;
	int32_t		gender,
				job;

	t->b_ptr[b] = (int32_t) *nnz;
	memcpy(t->b_idx + *nnz, items, (size_t) n * sizeof(int32_t));
	user_demo(t, u, &age, &gender, &job);
	encode_user(t->net, t->mf, items, ratings, n, age, gender, job,
				t->b_val + *nnz * ch, t->b_dense + (size_t) b * t->net->gen.n_dense);
	*nnz += (size_t) n;
}

/*
 * A batch's loss cut into tasks (lfg_par.h): rows of dout and of the
 * squared error by LFG_PAR_ROWS, then Q's and b_i's gradients by item
 * ranges, each going through the targets in order and computing each
 * target's g as the row task did.
 */
typedef struct LossPass
{
	const LfgMfParams *mf;
	const float *out;
	int32_t		B;
	const int32_t *t_ptr;
	const int32_t *t_item;
	const float *t_rating;
	const float *t_weight;
	double		wsum;
	float	   *dout;
	float	   *dQ;
	float	   *dbi;
	double	   *sse;			/* one per row task */
} LossPass;

/* g = 2 w err / wsum of target e of a row with output p; *err_out its error */
static inline float
target_grad(const LossPass *l, const float *p, int32_t e, float *err_out)
{
	int32_t		k = l->mf->k,
				j = l->t_item[e];
	float		err = l->mf->mu + p[k] + l->mf->bi[j] +
		lfg_dot(p, l->mf->Q + (size_t) j * k, k) - l->t_rating[e];

	*err_out = err;
	return (float) (2.0 * l->t_weight[e] * err / l->wsum);
}

/* Rows of dout, and their weighted squared error */
static void
loss_rows_task(void *arg, int task)
{
	LossPass   *l = arg;
	int32_t		k = l->mf->k,
				r0 = task * LFG_PAR_ROWS,
				r1 = r0 + LFG_PAR_ROWS < l->B ? r0 + LFG_PAR_ROWS : l->B;
	double		sse = 0.0;

	memset(l->dout + (size_t) r0 * (k + 1), 0, (size_t) (r1 - r0) * (k + 1) * sizeof(float));
	for (int32_t b = r0; b < r1; b++)
	{
		const float *p = l->out + (size_t) b * (k + 1);
		float	   *dp = l->dout + (size_t) b * (k + 1);

		for (int32_t e = l->t_ptr[b]; e < l->t_ptr[b + 1]; e++)
		{
			float		err,
						g = target_grad(l, p, e, &err);

			sse += l->t_weight[e] * (double) err * err;
			lfg_axpy(k, g, l->mf->Q + (size_t) l->t_item[e] * k, dp);
			dp[k] += g;
		}
	}
	l->sse[task] = sse;
}

/* Q's and b_i's gradients of an item range */
static void
loss_items_task(void *arg, int task)
{
	LossPass   *l = arg;
	int32_t		k = l->mf->k,
				per = (l->mf->n_items + LFG_PAR_ITEM_RANGES - 1) / LFG_PAR_ITEM_RANGES,
				i0 = task * per,
				i1 = i0 + per;

	for (int32_t b = 0; b < l->B; b++)
	{
		const float *p = l->out + (size_t) b * (k + 1);

		for (int32_t e = l->t_ptr[b]; e < l->t_ptr[b + 1]; e++)
		{
			int32_t		j = l->t_item[e];
			float		err,
						g;

			if (j < i0 || j >= i1)
				continue;
			g = target_grad(l, p, e, &err);
			lfg_axpy(k, g, p, l->dQ + (size_t) j * k);
			l->dbi[j] += g;
		}
	}
}

/* lfg_net_loss on par's threads (NULL: the same tasks in order) */
static double
net_loss(const LfgMfParams *mf, const float *out, int32_t B, const int32_t *t_ptr,
		 const int32_t *t_item, const float *t_rating, const float *t_weight, float *dout,
		 float *dQ, float *dbi, double *wsum_out, LfgPar *par)
{
	int			rows = lfg_par_chunks((size_t) B, LFG_PAR_ROWS);
	double		sse[MAX_ROW_TASKS],
				total = 0.0,
				wsum = 0.0;
	LossPass	l = {mf, out, B, t_ptr, t_item, t_rating, t_weight, 0.0, dout, dQ, dbi, sse};

	for (int32_t e = t_ptr[0]; e < t_ptr[B]; e++)
		wsum += t_weight[e];
	l.wsum = wsum > 0.0 ? wsum : 1.0;
	lfg_par_run(par, rows, loss_rows_task, &l);
	if (dQ != NULL)
		lfg_par_run(par, LFG_PAR_ITEM_RANGES, loss_items_task, &l);
	for (int j = 0; j < rows; j++)
		total += sse[j];
	*wsum_out = l.wsum;
	return total / l.wsum;
}

/* See lfg_net.h */
double
lfg_net_loss(const LfgMfParams *mf, const float *out, int32_t B, const int32_t *t_ptr,
			 const int32_t *t_item, const float *t_rating, const float *t_weight,
			 float *dout, float *dQ, float *dbi, double *wsum_out)
{
	return net_loss(mf, out, B, t_ptr, t_item, t_rating, t_weight, dout, dQ, dbi, wsum_out,
					NULL);
}

/*
 * The ranking term cut into tasks: rows of S (its product and softmax) by
 * LFG_PAR_ROWS, then the rows of dout and the items of dR and dc by
 * LFG_PAR_ITEMS (dc summed over the rows in order)
 */
typedef struct RankPass
{
	int32_t		k;
	int32_t		n;
	const float *R;
	const float *c;
	const float *out;
	int32_t		B;
	const int32_t *in_ptr;
	const int32_t *in_idx;
	const int32_t *t_ptr;
	const int32_t *t_item;
	float	   *S;
	float	   *dout;
	float	   *dR;
	float	   *dc;
	float		scale;
	int			split;			/* tasks of the second run below it: rows of dout */
	double	   *loss;			/* one per row task */
	int32_t    *rows;			/* rows with targets, one per row task */
	LfgGemmFn	gemm;			/* lfg_gemm_mt on threads (training), else lfg_gemm */
} RankPass;

/* Rows of S = P R^T + c, turned into the gradient with respect to S */
static void
rank_rows_task(void *arg, int task)
{
	RankPass   *r = arg;
	int32_t		n = r->n,
				r0 = task * LFG_PAR_ROWS,
				r1 = r0 + LFG_PAR_ROWS < r->B ? r0 + LFG_PAR_ROWS : r->B,
				rows = 0;
	double		loss = 0.0;

	/* S = P R^T, P the first k columns of out (row stride k + 1) */
	r->gemm(0, 1, r1 - r0, n, r->k, 1.0f, r->out + (size_t) r0 * (r->k + 1), r->k + 1,
			 r->R, r->k, 0.0f, r->S + (size_t) r0 * n, n);
	for (int32_t b = r0; b < r1; b++)
	{
		float	   *s = r->S + (size_t) b * n;
		double		mx = -INFINITY,
					z = 0.0,
					tsum = 0.0;
		int32_t		h = 0;

		for (int32_t i = 0; i < n; i++)
			s[i] += r->c[i];
		for (int32_t e = r->in_ptr[b]; e < r->in_ptr[b + 1]; e++)
			s[r->in_idx[e]] = -INFINITY;
		for (int32_t e = r->t_ptr[b]; e < r->t_ptr[b + 1]; e++)
			if (s[r->t_item[e]] != -INFINITY)
			{
				h++;
				tsum += s[r->t_item[e]];
			}
		if (h == 0)
		{
			memset(s, 0, (size_t) n * sizeof(float));
			continue;
		}
		rows++;
		for (int32_t i = 0; i < n; i++)
			mx = fmax(mx, s[i]);
		for (int32_t i = 0; i < n; i++)
			z += s[i] == -INFINITY ? 0.0 : exp((double) s[i] - mx);
		loss += log(z) + mx - tsum / h;
		/* the gradient with respect to s: softmax less the targets' 1 / h; 0 where masked */
		for (int32_t i = 0; i < n; i++)
			if (s[i] != -INFINITY)
				s[i] = (float) (exp((double) s[i] - mx) / z);
		for (int32_t e = r->t_ptr[b]; e < r->t_ptr[b + 1]; e++)
			if (s[r->t_item[e]] != -INFINITY)
				s[r->t_item[e]] -= 1.0f / (float) h;
		for (int32_t i = 0; i < n; i++)
			if (s[i] == -INFINITY)
				s[i] = 0.0f;
	}
	r->loss[task] = loss;
	r->rows[task] = rows;
}

/* Rows of dout += scale S R, or items of dR += scale S^T P and dc += scale colsum S */
static void
rank_grad_task(void *arg, int task)
{
	RankPass   *r = arg;
	int32_t		k = r->k,
				n = r->n,
				lo,
				hi;

	if (task < r->split)
	{
		lo = task * LFG_PAR_ROWS;
		hi = lo + LFG_PAR_ROWS < r->B ? lo + LFG_PAR_ROWS : r->B;
		r->gemm(0, 0, hi - lo, k, n, r->scale, r->S + (size_t) lo * n, n, r->R, k, 1.0f,
				 r->dout + (size_t) lo * (k + 1), k + 1);
		return;
	}
	lo = (task - r->split) * LFG_PAR_ITEMS;
	hi = lo + LFG_PAR_ITEMS < n ? lo + LFG_PAR_ITEMS : n;
	if (r->dR != NULL)
		r->gemm(1, 0, hi - lo, k, r->B, r->scale, r->S + lo, n, r->out, k + 1, 1.0f,
				 r->dR + (size_t) lo * k, k);
	for (int32_t b = 0; r->dc != NULL && b < r->B; b++)
		lfg_axpy(hi - lo, r->scale, r->S + (size_t) b * n + lo, r->dc + lo);
}

/* lfg_net_rank_loss on par's threads (NULL: the same tasks in order) */
static double
net_rank_loss(int32_t k, int32_t n, const float *R, const float *c, const float *out,
			  int32_t B, const int32_t *in_ptr, const int32_t *in_idx, const int32_t *t_ptr,
			  const int32_t *t_item, double weight, float *S, float *dout, float *dR,
			  float *dc, LfgPar *par)
{
	int			row_tasks = lfg_par_chunks((size_t) B, LFG_PAR_ROWS);
	double		loss[MAX_ROW_TASKS],
				total = 0.0;
	int32_t		rows[MAX_ROW_TASKS],
				nrows = 0;
	RankPass	r = {k, n, R, c, out, B, in_ptr, in_idx, t_ptr, t_item, S, dout, dR, dc,
	0.0f, 0, loss, rows, par != NULL ? lfg_gemm_mt : lfg_gemm};

	lfg_par_run(par, row_tasks, rank_rows_task, &r);
	for (int j = 0; j < row_tasks; j++)
	{
		total += loss[j];
		nrows += rows[j];
	}
	if (nrows == 0)
		return 0.0;
	r.scale = (float) (weight / nrows);
	r.split = dout != NULL ? row_tasks : 0;
	if (dout != NULL || dR != NULL || dc != NULL)
		lfg_par_run(par, r.split + (dR != NULL || dc != NULL ?
									lfg_par_chunks((size_t) n, LFG_PAR_ITEMS) : 0),
					rank_grad_task, &r);
	return total * weight / nrows;
}

/* See lfg_net.h */
double
lfg_net_rank_loss(int32_t k, int32_t n, const float *R, const float *c, const float *out,
				  int32_t B, const int32_t *in_ptr, const int32_t *in_idx, const int32_t *t_ptr,
				  const int32_t *t_item, double weight, float *S, float *dout, float *dR,
				  float *dc)
{
	return net_rank_loss(k, n, R, c, out, B, in_ptr, in_idx, t_ptr, t_item, weight, S, dout,
						 dR, dc, NULL);
}

/* The optimizer's step of params[0, n) cut into tasks, the gradient zeroed after it */
typedef struct AdamPass
{
	LfgAdam    *opt;
	float	   *params;
	float	   *grad;
} AdamPass;

static void
adam_task(void *arg, int task)
{
	AdamPass   *p = arg;
	size_t		lo = (size_t) task * LFG_PAR_PARAMS,
				hi = lo + LFG_PAR_PARAMS < p->opt->n ? lo + LFG_PAR_PARAMS : p->opt->n;

	lfg_adam_update(p->opt, p->params, p->grad, lo, hi);
	memset(p->grad + lo, 0, (hi - lo) * sizeof(float));
}

/* An Adam step on par's threads; the gradient is zero after it */
static void
adam_step_par(LfgAdam *opt, float *params, float *grad, LfgPar *par)
{
	AdamPass	p = {opt, params, grad};

	lfg_adam_tick(opt);
	lfg_par_run(par, lfg_par_chunks(opt->n, LFG_PAR_PARAMS), adam_task, &p);
}

/*
 * Let the callback check for interrupts between batches: after each with
 * one thread; with more, when cb->pending says one is pending (or about
 * every LFG_PAR_CHECK_SECONDS without it), the threads joined for it (the
 * callback may raise) and started again
 */
static void
check_between(Trainer *t, const LfgNetCallbacks *cb)
{
	if (cb == NULL || cb->check == NULL)
		return;
	if (t->par.started > 0)
	{
		if (cb->pending != NULL ? !cb->pending(cb->ctx) :
			lfg_clock_seconds() - t->checked < LFG_PAR_CHECK_SECONDS)
			return;
		lfg_par_end(&t->par);
	}
	cb->check(cb->ctx);
	t->checked = lfg_clock_seconds();
	lfg_par_begin(&t->par);
}

/* One epoch of mini-batches; returns the weighted training RMSE */
static double
train_epoch(Trainer *t, LfgAdam *opt, LfgAdam *head, uint32_t *order, const LfgNetCallbacks *cb)
{
	int32_t		nu = t->d->n_users,
				B = t->o->batch_size,
				k = t->k;
	double		sse = 0.0,
				wsum = 0.0;
	LfgGenInput in;

	lfg_rng_shuffle_u32(&t->rng_order, order, (size_t) nu);
	/* adam_step_par zeroes the gradient after each step */
	memset(t->grad, 0, t->n_params * sizeof(float));
	lfg_par_begin(&t->par);
	for (int32_t start = 0; start < nu; start += B)
	{
		int32_t		nb = nu - start < B ? nu - start : B;
		size_t		nnz = 0,
					ntg = 0;
		double		w,
					mse;
		float	   *dQ = t->o->train_items && !t->ranking ? t->grad + t->net->layout.total : NULL;

		for (int32_t b = 0; b < nb; b++)
			add_training_user(t, b, (int32_t) order[start + b], &nnz, &ntg);
		t->b_ptr[nb] = (int32_t) nnz;
		t->t_ptr[nb] = (int32_t) ntg;
		in = (LfgGenInput) {nb, t->b_ptr, t->b_idx, t->b_val, t->b_dense};
		lfg_gen_forward_par(&t->net->gen, &t->net->layout, t->params, t->net->running, &in,
							&t->work, 1, &t->rng_drop, &t->par);
		mse = net_loss(t->mf, t->work.out, nb, t->t_ptr, t->t_item, t->t_rating, t->t_weight,
					   t->dout, dQ, dQ ? dQ + (size_t) t->d->n_items * k : NULL, &w, &t->par);
		sse += mse * w;
		wsum += w;
		if (t->ranking)
		{
			int32_t		ni = t->d->n_items;
			float	   *dR = t->grad + t->head_off;

			net_rank_loss(k, ni, t->mf->rank_R, t->mf->rank_c, t->work.out, nb, t->b_ptr,
						  t->b_idx, t->t_ptr, t->t_item, t->o->rank_weight, t->rank_S,
						  t->dout, dR, dR + (size_t) ni * k, &t->par);
			t->flops += 6.0 * nb * (double) ni * k;
		}
		lfg_gen_backward_par(&t->net->gen, &t->net->layout, t->params, &in, &t->work,
							 t->dout, t->grad, &t->par);
		adam_step_par(opt, t->params, t->grad, &t->par);
		if (head != NULL)
			adam_step_par(head, t->params + t->head_off, t->grad + t->head_off, &t->par);
		t->flops += lfg_gen_flops(&t->net->gen, nb, nnz, true) +
			(dQ != NULL ? 6.0 : 4.0) * k * (double) ntg + 12.0 * (double) opt->n;
		check_between(t, cb);
	}
	lfg_par_end(&t->par);
	return sqrt(sse / (wsum > 0 ? wsum : 1.0));
}

/*
 * Generate p_u, b_u of every user from lists (ptr, item, rating) plus
 * optional extra lists (ptr2...), in evaluation mode, into P and bu.
 */
static void
generate_users(Trainer *t, const int32_t *ptr, const int32_t *item, const float *rating,
			   const int32_t *ptr2, const int32_t *item2, const float *rating2,
			   float *P, float *bu, const LfgNetCallbacks *cb)
{
	int32_t		nu = t->d->n_users,
				B = t->o->batch_size,
				k = t->k;
	LfgGenInput in;

	lfg_par_begin(&t->par);
	for (int32_t start = 0; start < nu; start += B)
	{
		int32_t		nb = nu - start < B ? nu - start : B;
		size_t		nnz = 0;

		for (int32_t b = 0; b < nb; b++)
		{
			int32_t		u = start + b;
			int32_t		n1 = ptr[u + 1] - ptr[u];

			memcpy(t->scratch, item + ptr[u], (size_t) n1 * sizeof(int32_t));
			memcpy(t->in_r, rating + ptr[u], (size_t) n1 * sizeof(float));
			if (ptr2)
			{
				int32_t		n2 = ptr2[u + 1] - ptr2[u];

				memcpy(t->scratch + n1, item2 + ptr2[u], (size_t) n2 * sizeof(int32_t));
				memcpy(t->in_r + n1, rating2 + ptr2[u], (size_t) n2 * sizeof(float));
				n1 += n2;
			}
			add_eval_user(t, b, u, t->scratch, t->in_r, n1, &nnz);
		}
		t->b_ptr[nb] = (int32_t) nnz;
		in = (LfgGenInput) {nb, t->b_ptr, t->b_idx, t->b_val, t->b_dense};
		lfg_gen_forward_par(&t->net->gen, &t->net->layout, t->params, t->net->running, &in,
							&t->work, 0, NULL, &t->par);
		t->flops += lfg_gen_flops(&t->net->gen, nb, nnz, false);
		for (int32_t b = 0; b < nb; b++)
		{
			memcpy(P + (size_t) (start + b) * k, t->work.out + (size_t) b * (k + 1),
				   (size_t) k * sizeof(float));
			bu[start + b] = t->work.out[(size_t) b * (k + 1) + k];
		}
		check_between(t, cb);
	}
	lfg_par_end(&t->par);
}

/*
 * The ranking prior of each item: weight times ln(1 + n_i), n_i the number
 * of training users who rated it (a pair rated twice counts once: the rows
 * are sorted by user, then item). Lists are ordered by the raw score plus
 * the prior, which for a user with few ratings leans toward what most
 * users pick (/work/shared/RANKING.md; doc/lfg.md, "Ranking").
 */
static LfgStatus
rank_prior(const LfgRatings *d, double weight, const LfgAllocator *a, LfgMfParams *mf,
		   LfgError *err)
{
	mf->rank_prior = lfg_alloc_array(a, (size_t) d->n_items + 1, sizeof(float));
	if (mf->rank_prior == NULL)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the ranking prior");
	memset(mf->rank_prior, 0, (size_t) d->n_items * sizeof(float));
	for (size_t j = 0; j < d->n; j++)
		if (j == 0 || d->user[j] != d->user[j - 1] || d->item[j] != d->item[j - 1])
			mf->rank_prior[d->item[j]] += 1.0f;
	for (int32_t i = 0; i < d->n_items; i++)
		mf->rank_prior[i] = (float) (weight * log1p((double) mf->rank_prior[i]));
	return LFG_OK;
}

/*
 * An average of the weights: avg += w (params - avg), and the same for the
 * running statistics; w 1 starts it at the current weights. The moving
 * average of average_steps (doc/lfg.md, "Seeds") has w = 1 - its decay,
 * the ranking stage's mean of its last epochs w = 1 / epochs averaged. Q
 * and b_i, when frozen, stay as they are.
 */
static void
average_weights(Trainer *t, float *avg, float *avg_running, float w)
{
	size_t		nr = t->net->layout.n_running;

	if (w == 1.0f)
	{
		memcpy(avg, t->params, t->n_params * sizeof(float));
		memcpy(avg_running, t->net->running, nr * sizeof(float));
		return;
	}
	for (size_t j = 0; j < t->n_params; j++)
		avg[j] += w * (t->params[j] - avg[j]);
	for (size_t j = 0; j < nr; j++)
		avg_running[j] += w * (t->net->running[j] - avg_running[j]);
}

/*
 * The second stage (rank_weight > 0; doc/lfg.md, "Ranking"): the ranking
 * generator and the ranking head. The generator the first stage chose is
 * kept for ratings; a copy of it goes on training, with the rating loss on
 * the frozen Q and b_i plus rank_weight times the multinomial ranking term
 * on the head's own item side R and c, for rank_epochs epochs at rank_lr
 * without early stopping (the ranking term is what it is trained for, and
 * the validation RMSE does not measure it). The head starts at R = Q and
 * c = the ranking prior (0 without one), so that its first lists are the
 * rating model's. The stage draws its batches, episodes and dropout from
 * streams seeded for it, so that where early stopping ended the first
 * stage changes only its starting weights, and it keeps the mean of its
 * weights (generator and head) over its last LFG_RANK_AVERAGE of epochs
 * rather than the last epoch's: with the last epoch's, ml-100k's P@10 at
 * n = 1 moved by 0.015 with the random streams alone, and from 0.387 to
 * 0.404 over six seeds, across EASE's 0.394 (doc/lfg.md, "Seeds"). Then every user's ranking vector is generated from
 * all their ratings, and the rating generator is put back.
 */
static LfgStatus
train_ranking(Trainer *t, uint32_t *order, const LfgNetCallbacks *cb, int epochs_before,
			  double weight_decay, const LfgAllocator *a, LfgError *err)
{
	LfgNet	   *net = t->net;
	LfgMfParams *mf = t->mf;
	size_t		total = net->layout.total,
				nr = net->layout.n_running,
				ni = (size_t) t->d->n_items,
				nu = (size_t) t->d->n_users,
				k = (size_t) t->k;
	float	   *keep = lfg_alloc_array(a, total, sizeof(float));
	float	   *keep_running = lfg_alloc_array(a, nr + 1, sizeof(float));
	float	   *bu = lfg_alloc_array(a, nu, sizeof(float));
	float	   *avg = lfg_alloc_array(a, t->n_params, sizeof(float));
	float	   *avg_running = lfg_alloc_array(a, nr + 1, sizeof(float));
	double		t0 = lfg_clock_seconds();
	int			first_averaged = t->o->rank_epochs -
		(int) ceil(LFG_RANK_AVERAGE * t->o->rank_epochs) + 1;
	LfgAdam		opt,
				head;
	LfgStatus	st;

	net->rank_theta = lfg_alloc_array(a, total, sizeof(float));
	net->rank_running = lfg_alloc_array(a, nr + 1, sizeof(float));
	mf->rank_P = lfg_alloc_array(a, nu * k, sizeof(float));
	if (!keep || !keep_running || !bu || !avg || !avg_running || !net->rank_theta ||
		!net->rank_running || !mf->rank_P)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the ranking head");
	memcpy(keep, t->params, total * sizeof(float));
	memcpy(keep_running, net->running, nr * sizeof(float));
	memcpy(mf->rank_R, mf->Q, ni * k * sizeof(float));
	for (size_t i = 0; i < ni; i++)
		mf->rank_c[i] = mf->rank_prior != NULL ? mf->rank_prior[i] : 0.0f;
	if ((st = lfg_adam_init(&opt, total, (float) t->o->rank_lr, (float) weight_decay, a, err)) != LFG_OK ||
		(st = lfg_adam_init(&head, t->n_params - t->head_off, (float) t->o->rank_lr, 0.0f, a, err)) != LFG_OK)
		return st;
	/* its own random streams, whatever number of epochs the first stage ran */
	lfg_rng_seed(&t->rng_order, t->o->seed ^ UINT64_C(0x6666));
	lfg_rng_seed(&t->rng_drop, t->o->seed ^ UINT64_C(0x7777));
	t->ranking = true;
	for (int epoch = 1; epoch <= t->o->rank_epochs; epoch++)
	{
		double		train_rmse = train_epoch(t, &opt, &head, order, cb);

		if (!isfinite(train_rmse))
			return lfg_error(err, LFG_EPARAM,
							 "Lower rank_lr; the default is 0.001.",
							 "LFG ranking training diverged at epoch %d with rank_lr %g: the training error is no longer finite",
							 epoch, t->o->rank_lr);
		/* the running mean of the weights over the last epochs */
		if (epoch >= first_averaged)
			average_weights(t, avg, avg_running, 1.0f / (float) (epoch - first_averaged + 1));
		if (cb && cb->on_epoch)
			cb->on_epoch(cb->ctx, epochs_before + epoch, train_rmse, NAN, lfg_clock_seconds() - t0);
	}
	t->ranking = false;
	memcpy(t->params, avg, t->n_params * sizeof(float));
	memcpy(net->running, avg_running, nr * sizeof(float));
	/* every user's ranking vector, generated from all their ratings */
	generate_users(t, t->tr_ptr, t->tr_item, t->tr_rating, t->va_ptr, t->va_item, t->va_rating,
				   mf->rank_P, bu, cb);
	memcpy(net->rank_theta, t->params, total * sizeof(float));
	memcpy(net->rank_running, net->running, nr * sizeof(float));
	memcpy(t->params, keep, total * sizeof(float));
	memcpy(net->running, keep_running, nr * sizeof(float));
	lfg_free(a, opt.m);
	lfg_free(a, opt.v);
	lfg_free(a, head.m);
	lfg_free(a, head.v);
	lfg_free(a, keep);
	lfg_free(a, keep_running);
	lfg_free(a, bu);
	lfg_free(a, avg);
	lfg_free(a, avg_running);
	return LFG_OK;
}

/* See lfg_net.h */
bool
lfg_net_warm_compatible(const LfgNet *old, const LfgNetOptions *o)
{
	return old->gen.h1 == o->h1 && old->gen.h2 == o->h2 && old->gen.k == o->factors &&
		old->gen.channels == (o->input == LFG_INPUT_CENTERED ? 2 : 1) &&
		old->gen.batchnorm == (o->batchnorm ? 1 : 0);
}

/*
 * Start the generator from an earlier one (shapes checked by
 * lfg_net_warm_compatible): the first layer's rows of known items and of
 * the dense inputs both have, and every other layer whole.
 */
static void
warm_generator(const LfgGenConfig *c, const LfgGenLayout *l, float *theta, float *running,
			   const LfgWarmStart *w)
{
	const LfgNet *old = w->net;
	const LfgGenLayout *ol = &old->layout;
	size_t		row = (size_t) c->channels * c->h1,
				h1 = (size_t) c->h1;

	for (int32_t i = 0; i < c->n_items; i++)
		if (w->item_map[i] >= 0)
			memcpy(theta + l->W1s + (size_t) i * row,
				   old->theta + ol->W1s + (size_t) w->item_map[i] * row, row * sizeof(float));
	for (int32_t j = 0; j < c->n_dense; j++)
		if (w->dense_map[j] >= 0)
			memcpy(theta + l->W1d + (size_t) j * h1,
				   old->theta + ol->W1d + (size_t) w->dense_map[j] * h1, h1 * sizeof(float));
	/* b1 to b3 are laid out contiguously after W1d in both */
	memcpy(theta + l->b1, old->theta + ol->b1, (l->total - l->b1) * sizeof(float));
	if (l->n_running > 0)
		memcpy(running, old->running, l->n_running * sizeof(float));
}

/*
 * RMSE of the clipped predictions on lists (ptr, item, rating), held users
 * left out (their validation side is the fold-in's, half their ratings)
 */
static double
list_rmse(const Trainer *t, const int32_t *ptr, const int32_t *item, const float *rating)
{
	double		sse = 0.0;
	size_t		n = 0;

	for (int32_t u = 0; u < t->d->n_users; u++)
	{
		if (t->held && t->held[u])
			continue;
		for (int32_t e = ptr[u]; e < ptr[u + 1]; e++)
		{
			double		err = rating[e] - lfg_mf_predict(t->mf, u, item[e]);

			sse += err * err;
			n++;
		}
	}
	return n > 0 ? sqrt(sse / (double) n) : NAN;
}

/*
 * The base prior that serves: the episodes chose its weight with the
 * base BiasSVD trained on the training lists, which saw neither the
 * validation slice nor the held users' held ratings; like any choice made
 * on held-out data, it is then refitted on all the ratings (the same
 * BiasSVD options and seed) and mapped again. Kept as it was when the
 * map's system is singular.
 */
static LfgStatus
refit_base(Trainer *t, const LfgFoldinLists *l, LfgFoldinBase *base, const LfgNetCallbacks *cb,
		   const LfgAllocator *a, LfgError *err)
{
	const LfgRatings *d = t->d;
	LfgMfOptions mo;
	LfgMfParams svd;
	LfgCallbacks mcb = {NULL, cb ? cb->check : NULL, cb ? cb->ctx : NULL};
	double		rmse;
	bool		ok;
	LfgStatus	st;

	base_options(t, &mo);
	if ((st = lfg_mf_train(d, &mo, &mcb, a, &svd, &rmse, err)) != LFG_OK)
		return st;
	svd.rating_min = t->mf->rating_min;
	svd.rating_max = t->mf->rating_max;
	/* base is rewritten only when the new map's system solves (ok) */
	if ((st = lfg_foldin_base_build(t->mf, &svd, l, a, base, &ok, err)) != LFG_OK)
		return st;
	lfg_free(a, svd.P);
	lfg_free(a, svd.bu);
	lfg_free(a, svd.Q);
	lfg_free(a, svd.bi);
	return LFG_OK;
}

/*
 * One table of the learned fold-in from the episodes of lists l (both
 * tables of select_foldin draw them with the same seed)
 */
static LfgStatus
choose_foldin(const Trainer *t, const LfgModel *m, const LfgFoldinLists *l, const float *mean,
			  const LfgFoldinBase *base, bool offer, const LfgNetCallbacks *cb,
			  const LfgAllocator *a, LfgFoldinTable *out, LfgError *err)
{
	return lfg_foldin_select(m, t->u, l, mean, base, offer, t->o->seed ^ UINT64_C(0x6666),
							 cb ? cb->check : NULL, cb ? cb->ctx : NULL, a, out, err);
}

/* Choose the learned fold-in (lfg_foldin.c) into net->foldin */
static LfgStatus
select_foldin(Trainer *t, const LfgNetCallbacks *cb, const LfgAllocator *a, LfgError *err)
{
	LfgModel	m;
	int32_t		nu = t->d->n_users,
				k = t->k;
	LfgFoldinTable *table = lfg_alloc(a, LFG_FOLDIN_TABLE_SIZE(k));
	double	   *sum = lfg_alloc_array(a, (size_t) k + 1, sizeof(double));
	float	   *mean = lfg_alloc_array(a, (size_t) k + 1, sizeof(float));
	LfgFoldinBase *base = lfg_alloc(a, LFG_FOLDIN_BASE_SIZE(t->d->n_items, k, t->base.k));
	bool		base_ok,
				offer;
	int32_t		ni = t->d->n_items;
	LfgFoldinLists l = {nu, t->tr_ptr, t->tr_item, t->tr_rating,
		t->va_ptr, t->va_item, t->va_rating, t->n_held > 0 ? t->held : NULL};
	LfgStatus	st;

	if (table == NULL || sum == NULL || mean == NULL || base == NULL)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the fold-in episodes");
	/* the mean user: the training users' generated vectors, averaged */
	generate_users(t, t->tr_ptr, t->tr_item, t->tr_rating, NULL, NULL, NULL, t->mf->P, t->mf->bu, cb);
	memset(sum, 0, ((size_t) k + 1) * sizeof(double));
	for (int32_t u = 0; u < nu; u++)
	{
		for (int32_t f = 0; f < k; f++)
			sum[f] += t->mf->P[(size_t) u * k + f];
		sum[k] += t->mf->bu[u];
	}
	for (int32_t f = 0; f <= k; f++)
		mean[f] = (float) (sum[f] / nu);
	/* the base prior: the base BiasSVD's item side (pretrain), mapped (lfg_foldin.h) */
	if ((st = lfg_foldin_base_build(t->mf, &t->base, &l, a, base, &base_ok, err)) != LFG_OK)
		return st;
	memset(&m, 0, sizeof(m));
	m.mf = *t->mf;
	m.net = *t->net;
	/*
	 * offered only when the item side is not the base's: else (train_items
	 * false, init svd and base_factors k) b is plain fold-in of the model's
	 * own item side, which candidate 0 already is, and storing it would
	 * copy Q
	 */
	offer = base_ok && (t->base.k != k || t->mf->mu != t->base.mu ||
						memcmp(t->mf->bi, t->base.bi, (size_t) ni * sizeof(float)) != 0 ||
						memcmp(t->mf->Q, t->base.Q, (size_t) ni * k * sizeof(float)) != 0);
	if ((st = choose_foldin(t, &m, &l, mean, base_ok ? base : NULL, offer, cb, a, table,
							err)) != LFG_OK)
		return st;
	t->net->foldin = table;
	/* with held users, the known users' own choice (step 7) */
	if (l.held != NULL)
	{
		LfgFoldinLists known = l;

		known.held = NULL;
		t->known_table = lfg_alloc(a, LFG_FOLDIN_TABLE_SIZE(k));
		if (t->known_table == NULL)
			return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the fold-in episodes");
		if ((st = choose_foldin(t, &m, &known, mean, base_ok ? base : NULL, offer, cb, a,
								t->known_table, err)) != LFG_OK)
			return st;
	}
	/* kept only when some bucket weighs it, and stored when a served one does */
	if (!lfg_foldin_uses_base(table) &&
		!(t->known_table != NULL && lfg_foldin_uses_base(t->known_table)))
	{
		lfg_free(a, base);
		return LFG_OK;
	}
	if (lfg_foldin_uses_base(table))
		t->net->foldin_base = base;
	t->known_base = base;
	return refit_base(t, &l, base, cb, a, err);
}

/*
 * Store every user as lfg_recommend serves it from all its ratings: the
 * learned fold-in of the table just chosen (a ridge fit of the user's
 * ratings on the item side, toward the prior of its bucket), or with held
 * users (foldin_users) of the known users' own table. It fits their own
 * ratings more closely than the generator's output, which the ridge only
 * starts from (doc/lfg.md, "Training", step 7: ml-100k u1, paper 0.9232
 * -> 0.9111 over five seeds).
 */
static LfgStatus
store_served_users(Trainer *t, const LfgNetCallbacks *cb, const LfgAllocator *a, int32_t *kept,
				   LfgError *err)
{
	const LfgRatings *d = t->d;
	LfgModel	m;
	LfgServeScratch s;
	int32_t		k = t->k,
				cap = 1;
	float	   *x = lfg_alloc_array(a, (size_t) k + 1, sizeof(float));
	LfgStatus	st;

	if (x == NULL)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the stored users");
	/* the most ratings of one user (the rows are sorted by user) */
	for (size_t j = 0, first = 0; j <= d->n; j++)
		if (j == d->n || d->user[j] != d->user[first])
		{
			cap = (int32_t) (j - first) > cap ? (int32_t) (j - first) : cap;
			first = j;
		}
	memset(&m, 0, sizeof(m));
	m.mf = *t->mf;
	m.net = *t->net;
	if (t->known_table != NULL)
	{
		m.net.foldin = t->known_table;
		m.net.foldin_base = t->known_base;
	}
	if ((st = lfg_serve_scratch_alloc(&m, cap, a, &s, err)) != LFG_OK)
		return st;
	/*
	 * every user has ratings (the users are those of the rows); one whose
	 * fold-in fails (a solve that is not positive definite, or not finite:
	 * not seen) is stored as the generator's output, and counted
	 */
	for (size_t j = 0, done = 0; j < d->n; done++)
	{
		int32_t		u = d->user[j];
		size_t		from = j;
		LfgNetUser	user;

		while (j < d->n && d->user[j] == u)
			j++;
		user = (LfgNetUser) {(int32_t) (j - from), d->item + from, d->rating + from,
			t->u->age ? t->u->age[u] : NAN, t->u->gender ? t->u->gender[u] : -1,
		t->u->job ? t->u->job[u] : -1};
		if ((st = lfg_user_vector(&m, &user, LFG_FOLDIN_LEARNED, true, &s, x, err)) != LFG_OK)
		{
			if (st == LFG_ENOMEM ||
				(st = lfg_user_vector(&m, &user, LFG_FOLDIN_LEARNED, false, &s, x, err)) != LFG_OK)
				return st;
			(*kept)++;
		}
		memcpy(t->mf->P + (size_t) u * k, x, (size_t) k * sizeof(float));
		t->mf->bu[u] = x[k];
		if (done % 256 == 255 && cb && cb->check)
			cb->check(cb->ctx);
	}
	lfg_free(a, x);
	return LFG_OK;
}

/*
 * "auto" weight decay: 240 / N for N training ratings, at most 0.012 (N
 * below 20,000): with a mean loss the prior must weaken as the data grows
 * (3.2e-3 on the ml-100k folds, 2.7e-4 on ml-1m) and strengthen as it thins
 * (doc/lfg.md, "Sparse data")
 */
static double
auto_weight_decay(int32_t n)
{
	return 240.0 / fmax((double) n, 20000.0);
}

/*
 * "auto" dropout: 0.5 from 40,000 training ratings up (what the ml-100k
 * folds chose), rising by 0.2 per halving of N below that, to 0.7 at 20,000
 * and fewer (doc/lfg.md, "Sparse data")
 */
static double
auto_dropout(int32_t n)
{
	return 0.5 + 0.2 * log2(40000.0 / fmin(fmax((double) n, 20000.0), 40000.0));
}


/* See lfg_net.h and the file header */
LfgStatus
lfg_net_train(const LfgRatings *d, const LfgUsers *u, const LfgNetOptions *o,
			  const LfgNetCallbacks *cb, const LfgAllocator *a, LfgMfParams *mf,
			  LfgNet *net, LfgNetStats *stats, LfgError *err)
{
	Trainer		t;
	LfgAdam		opt;
	LfgStatus	st;
	uint32_t   *order;
	float	   *best,
			   *best_running,
			   *avg = NULL,		/* average_steps > 0: the moving average */
			   *avg_running = NULL,
			   *trained_running = NULL,
				avg_decay = 0.0f;
	size_t		nr;
	int			bad = 0,
				decays = 0,
				avg_n = 0;
	double		t0 = lfg_clock_seconds(),
				t_train,
				t_foldin;
	int32_t		nu = d->n_users,
				k = o->factors;

	memset(&t, 0, sizeof(t));
	memset(mf, 0, sizeof(*mf));
	memset(net, 0, sizeof(*net));
	memset(stats, 0, sizeof(*stats));
	stats->best_val_rmse = NAN;
	if ((st = lfg_net_options_check(o, err)) != LFG_OK)
		return st;
	if (d->n == 0 || d->n > INT32_MAX / 2)
		return lfg_error(err, d->n == 0 ? LFG_EDATA : LFG_ELIMIT, NULL,
						 d->n == 0 ? "no ratings to train on" : "too many ratings for an LFG model");
	if (u->n_users != nu)
		return lfg_error(err, LFG_EPARAM, NULL, "demographics do not match the users");
	t.d = d;
	t.u = u;
	t.o = o;
	t.mf = mf;
	t.net = net;
	t.k = k;
	lfg_par_init(&t.par, o->parallel);
	mf->kind = LFG_KIND_LFG;
	mf->n_users = nu;
	mf->n_items = d->n_items;
	mf->k = k;

	net->input = o->input;
	net->aux = o->aux;
	net->n_genders = o->aux ? u->n_genders : 0;
	net->n_jobs = o->aux ? u->n_jobs : 0;
	age_stats(u, &net->age_mean, &net->age_std);
	if ((st = split_ratings(&t, a, err)) != LFG_OK)
		return st;
	/* "auto" regularisation: from the training ratings (lfg_net.h) */
	stats->dropout = o->dropout == LFG_DROPOUT_AUTO ? auto_dropout(t.tr_ptr[nu]) : o->dropout;
	stats->weight_decay = o->weight_decay == LFG_WEIGHT_DECAY_AUTO ?
		auto_weight_decay(t.tr_ptr[nu]) : o->weight_decay;
	net->gen = (LfgGenConfig) {d->n_items,
		lfg_net_dense_width(o->aux, o->input, net->n_genders, net->n_jobs),
		o->h1, o->h2, k, o->input == LFG_INPUT_CENTERED ? 2 : 1, o->batchnorm ? 1 : 0,
	(float) o->leaky_slope, (float) stats->dropout};
	if ((st = lfg_gen_config_check(&net->gen, err)) != LFG_OK)
		return st;
	lfg_gen_layout(&net->gen, &net->layout);
	nr = net->layout.n_running;

	if ((st = alloc_trainer(&t, a, err)) != LFG_OK ||
		(st = pretrain(&t, cb, a, err)) != LFG_OK)
		return st;
	stats->pretrain_seconds = lfg_clock_seconds() - t0;
	if (o->popularity_prior > 0.0 && (st = rank_prior(d, o->popularity_prior, a, mf, err)) != LFG_OK)
		return st;
	lfg_gen_init(&net->gen, &net->layout, t.params, net->running, o->seed ^ UINT64_C(0x4444));
	if (o->warm != NULL && o->warm->net != NULL && lfg_net_warm_compatible(o->warm->net, o))
		warm_generator(&net->gen, &net->layout, t.params, net->running, o->warm);
	if ((st = lfg_adam_init(&opt, t.n_opt, (float) o->lr, (float) stats->weight_decay, a, err)) != LFG_OK)
		return st;

	order = lfg_alloc_array(a, (size_t) nu, sizeof(uint32_t));
	best = lfg_alloc_array(a, t.n_params, sizeof(float));
	best_running = lfg_alloc_array(a, net->layout.n_running + 1, sizeof(float));
	mf->P = lfg_alloc_array(a, (size_t) nu * k, sizeof(float));
	mf->bu = lfg_alloc_array(a, (size_t) nu, sizeof(float));
	if (!order || !best || !best_running || !mf->P || !mf->bu)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for LFG training");
	if (o->average_steps > 0)
	{
		/* 1 - 1 / average_steps per Adam step, applied once an epoch */
		avg_decay = (float) pow(1.0 - 1.0 / o->average_steps,
								ceil((double) nu / o->batch_size));
		avg = lfg_alloc_array(a, t.n_params, sizeof(float));
		avg_running = lfg_alloc_array(a, nr + 1, sizeof(float));
		trained_running = lfg_alloc_array(a, nr + 1, sizeof(float));
		if (!avg || !avg_running || !trained_running)
			return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for LFG training");
	}
	for (int32_t j = 0; j < nu; j++)
		order[j] = (uint32_t) j;
	lfg_rng_seed(&t.rng_order, o->seed ^ UINT64_C(0x2222));
	lfg_rng_seed(&t.rng_drop, o->seed ^ UINT64_C(0x3333));

	t_train = lfg_clock_seconds();
	for (int epoch = 1; epoch <= o->epochs; epoch++)
	{
		double		train_rmse = train_epoch(&t, &opt, NULL, order, cb);
		double		val_rmse = NAN;

		stats->epochs_run = epoch;
		if (!isfinite(train_rmse))
			return lfg_error(err, LFG_EPARAM,
							 "Lower lr; the presets use 0.001 or less.",
							 "LFG training diverged at epoch %d with lr %g: the training error is no longer finite",
							 epoch, o->lr);
		if (avg != NULL)
			average_weights(&t, avg, avg_running, avg_n++ == 0 ? 1.0f : 1.0f - avg_decay);
		if (t.va_ptr[nu] > 0)
		{
			float	   *trained = t.params;

			/* validate the average: the weights the plateau would keep */
			if (avg != NULL)
			{
				t.params = avg;
				memcpy(trained_running, net->running, nr * sizeof(float));
				memcpy(net->running, avg_running, nr * sizeof(float));
			}
			generate_users(&t, t.tr_ptr, t.tr_item, t.tr_rating, NULL, NULL, NULL,
						   mf->P, mf->bu, cb);
			val_rmse = list_rmse(&t, t.va_ptr, t.va_item, t.va_rating);
			if (avg != NULL)
			{
				t.params = trained;
				memcpy(net->running, trained_running, nr * sizeof(float));
			}
		}
		if (cb && cb->on_epoch)
			cb->on_epoch(cb->ctx, epoch, train_rmse, val_rmse, lfg_clock_seconds() - t0);
		if (isnan(val_rmse))
			continue;
		if (isnan(stats->best_val_rmse) || val_rmse < stats->best_val_rmse)
		{
			stats->best_val_rmse = val_rmse;
			stats->best_epoch = epoch;
			memcpy(best, avg != NULL ? avg : t.params, t.n_params * sizeof(float));
			memcpy(best_running, avg != NULL ? avg_running : net->running, nr * sizeof(float));
			bad = 0;
		}
		else if (o->patience > 0 && ++bad >= o->patience)
		{
			/* plateau: go back to the best weights with a smaller step, or stop */
			if (decays >= o->lr_decays)
				break;
			decays++;
			bad = 0;
			opt.lr *= (float) o->lr_decay;
			memcpy(t.params, best, t.n_params * sizeof(float));
			memcpy(net->running, best_running, nr * sizeof(float));
			avg_n = 0;			/* the average starts again from these weights */
		}
	}
	stats->seconds_per_epoch = (lfg_clock_seconds() - t_train) / stats->epochs_run;
	stats->flops_per_epoch = t.flops / stats->epochs_run;
	if (!isnan(stats->best_val_rmse))
	{
		memcpy(t.params, best, t.n_params * sizeof(float));
		memcpy(net->running, best_running, nr * sizeof(float));
	}
	else
	{
		stats->best_epoch = stats->epochs_run;
		if (avg != NULL)
		{
			memcpy(t.params, avg, t.n_params * sizeof(float));
			memcpy(net->running, avg_running, nr * sizeof(float));
		}
	}

	/* the fold-in of new users, chosen on episodes of the validation slice */
	t_foldin = lfg_clock_seconds();
	if (t.va_ptr[nu] > 0 && (st = select_foldin(&t, cb, a, err)) != LFG_OK)
		return st;
	stats->foldin_seconds = lfg_clock_seconds() - t_foldin;
	/* the stored users: as served with the table, else generated */
	stats->foldin_users = t.n_held;
	t_foldin = lfg_clock_seconds();
	if (net->foldin == NULL)
		generate_users(&t, t.tr_ptr, t.tr_item, t.tr_rating, t.va_ptr, t.va_item, t.va_rating,
					   mf->P, mf->bu, cb);
	else if ((st = store_served_users(&t, cb, a, &stats->store_kept, err)) != LFG_OK)
		return st;
	/* the known users' choice stored them; the model keeps the new users' */
	lfg_free(a, t.known_table);
	if (t.known_base != NULL && t.known_base != net->foldin_base)
		lfg_free(a, t.known_base);
	stats->store_seconds = lfg_clock_seconds() - t_foldin;
	stats->train_rmse = lfg_mf_rmse(mf, d);
	if (o->rank_weight > 0.0)
	{
		double		t_rank = lfg_clock_seconds();

		if ((st = train_ranking(&t, order, cb, stats->epochs_run, stats->weight_decay, a, err)) != LFG_OK)
			return st;
		stats->rank_seconds = lfg_clock_seconds() - t_rank;
	}
	lfg_par_destroy(&t.par);
	return LFG_OK;
}

/* Allocate single-user inference scratch for up to max_ratings input entries */
LfgStatus
lfg_net_scratch_alloc(const LfgNet *net, int32_t max_ratings, const LfgAllocator *a,
					  LfgNetScratch *s, LfgError *err)
{
	LfgStatus	st;

	memset(s, 0, sizeof(*s));
	s->cap = max_ratings;
	s->val = lfg_alloc_array(a, (size_t) max_ratings * 2 + 2, sizeof(float));
	s->dense = lfg_alloc_array(a, (size_t) net->gen.n_dense + 1, sizeof(float));
	if (!s->val || !s->dense)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for inference");
	if ((st = lfg_gen_work_alloc(&net->gen, 1, a, &s->work, err)) != LFG_OK)
		return st;
	return LFG_OK;
}

/* See lfg_net.h; user->n must not exceed the scratch capacity */
void
lfg_net_generate(const LfgNet *net, const LfgMfParams *mf, const LfgNetUser *user,
				 LfgNetScratch *s, float *p_out, float *bu_out)
{
	int32_t		ptr[2] = {0, user->n};
	LfgGenInput in;

	encode_user(net, mf, user->item, user->rating, user->n, user->age, user->gender,
				user->job, s->val, s->dense);
	in = (LfgGenInput) {1, ptr, user->item, s->val, s->dense};
	lfg_gen_forward(&net->gen, &net->layout, net->theta, net->running, &in, &s->work, 0, NULL);
	memcpy(p_out, s->work.out, (size_t) mf->k * sizeof(float));
	*bu_out = s->work.out[mf->k];
}
