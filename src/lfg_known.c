/*
 * lfg_known.c
 *	  Serving what the model knows: lfg_recommend_user (a known user's top k
 *	  from their stored factors, optionally refined by new ratings),
 *	  lfg_similar_items and lfg_item_factors, and lfg_explain (the exact
 *	  per-rating shares of a new user's score).
 *
 * The numeric work is in src/core/lfg_known.c; this file checks the
 * arguments, maps ids to the model's dense indexes and returns rows. How
 * each model kind serves is decided in one place, KnownForm.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "lfg.h"
#include "core/lfg_known.h"

/* How a model kind serves known users and items */
typedef enum KnownKind
{
	KNOWN_FACTORS,				/* user and item factors: svd, biassvd, lfg */
	KNOWN_EASE					/* item-item weights and each user's items: ease */
} KnownKind;

/*
 * The one place that maps a model kind to its serving form: a kind added
 * later gets its case here, and until then is refused, never served wrong.
 */
static KnownKind
KnownForm(const LfgCachedModel *c, const char *fname)
{
	const char *kind = lfg_kind_name(c->model.mf.kind);

	switch (c->model.mf.kind)
	{
		case LFG_KIND_SVD:
		case LFG_KIND_BIASSVD:
		case LFG_KIND_LFG:
			return KNOWN_FACTORS;
		case LFG_KIND_EASE:
			/* only lfg_recommend_user; the others have no factors to use */
			if (strcmp(fname, "lfg_recommend_user") == 0)
				return KNOWN_EASE;
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s does not support models of kind \"%s\"", fname, kind ? kind : "unknown"),
			 errdetail("Model \"%s\" version %d has kind code %d.", c->name, c->version,
					   c->model.mf.kind),
			 errhint("Serve this model with the functions its kind supports (doc/reference.md).")));
	pg_unreachable();
}

/* The model of argument 0 (NULL: the default model) */
static LfgCachedModel *
KnownModel(FunctionCallInfo fcinfo)
{
	return LfgGetModel(PG_ARGISNULL(0) ? LfgDefaultModel() : PG_GETARG_TEXT_PP(0), 0);
}

/*
 * The dense indexes of the item ids in argument a (a bigint[]; NULL: none,
 * *isnull set), unknown ids left out, with room for extra more. name
 * names the argument in errors. An array without NULLs (the usual case)
 * is read in place.
 */
static int32 *
ItemIndexArg(FunctionCallInfo fcinfo, const LfgCachedModel *c, int a, const char *name,
			 int32 extra, int32 *n, bool *isnull)
{
	ArrayType  *arr;
	const int64 *ids;
	int			nd;
	int32	   *out;

	*n = 0;
	*isnull = PG_ARGISNULL(a);
	if (*isnull)
		return palloc(sizeof(int32) * Max(extra, 1));
	arr = PG_GETARG_ARRAYTYPE_P(a);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", name)));
	Assert(ARR_ELEMTYPE(arr) == INT8OID);
	nd = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	if (ARR_HASNULL(arr))
	{
		bits8	   *bitmap = ARR_NULLBITMAP(arr);

		for (int j = 0; j < nd; j++)
			if (!(bitmap[j / 8] & (1 << (j % 8))))
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("%s must not contain NULL", name),
						 errdetail("Element %d is NULL.", j + 1),
						 errhint("Remove the NULL elements, e.g. with array_remove(%s, NULL).", name)));
	}
	/* no NULLs: the int8 elements are contiguous and aligned */
	ids = (const int64 *) ARR_DATA_PTR(arr);
	out = palloc(sizeof(int32) * ((Size) nd + Max(extra, 1)));
	for (int j = 0; j < nd; j++)
	{
		int32		i = lfg_id_index_find(&c->items, ids[j]);

		if (i >= 0)
			out[(*n)++] = i;
	}
	return out;
}

/* Write the top k as rows (item id, value); clip: values are raw scores */
static void
PutRows(FunctionCallInfo fcinfo, const char *fname, const LfgCachedModel *c,
		const LfgScored *top, int32 found, bool clip)
{
	TupleDesc	tupdesc;
	Tuplestorestate *ts = LfgBeginSRF(fcinfo, fname, 2, &tupdesc);

	for (int32 j = 0; j < found; j++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};
		double		v = clip ? lfg_known_clip(&c->model.mf, top[j].score) : top[j].score;

		values[0] = Int64GetDatum(c->model.item_ids[top[j].item]);
		values[1] = Float8GetDatum(v);
		tuplestore_putvalues(ts, tupdesc, values, nulls);
	}
}

/*
 * The vector of known user u into c->x: the stored p_u and b_u, or with
 * new ratings (argument ratings_arg, parsed into *in) the fold-in
 * regularised toward them. The vector lists are ordered by into c->xo: the
 * stored ranking vector r_u for a model with a ranking head (the new
 * ratings do not change it), else c->x.
 */
static void
KnownUserVector(FunctionCallInfo fcinfo, LfgCachedModel *c, int32 u, int ratings_arg,
				LfgNetUser *in)
{
	const LfgMfParams *mf = &c->model.mf;
	int32		k = mf->k;
	float	   *prior = palloc(sizeof(float) * (k + 1));
	LfgServeScratch *s;
	LfgError	err;

	LfgUserInput(fcinfo, c, ratings_arg, -1, in);
	s = LfgServeBuffers(c, in->n);
	memcpy(prior, mf->P + (size_t) u * k, sizeof(float) * k);
	prior[k] = mf->bu != NULL ? mf->bu[u] : 0.0f;
	if (in->n == 0)
		memcpy(c->x, prior, sizeof(float) * (k + 1));
	else if (lfg_fold_in_prior(&c->model, in, LfgFoldinReg(), prior, s, c->x, &err) != LFG_OK)
		LfgRaise(&err);
	if (mf->rank_P != NULL)
	{
		memcpy(c->xo, mf->rank_P + (size_t) u * k, sizeof(float) * k);
		c->xo[k] = 0.0f;
	}
	else
		memcpy(c->xo, c->x, sizeof(float) * (k + 1));
}

/* The dense index of the user in argument a, or an error pointing to lfg_recommend */
static int32
KnownUser(FunctionCallInfo fcinfo, const LfgCachedModel *c, int a)
{
	int64		uid = PG_GETARG_INT64(a);
	int32		u = lfg_id_index_find(&c->users, uid);

	if (u < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("user " INT64_FORMAT " is not in model \"%s\"", uid, c->name),
				 errdetail("Version %d of the model was trained without ratings by this user.", c->version),
				 errhint("Serve users the model has not seen with lfg_recommend(model_name, user_ratings, age, gender, job, k).")));
	return u;
}

/*
 * lfg_recommend_user for EASE: known user u's scores x B, x the items they
 * rated in training plus the items of new ratings (argument 4), summed in
 * double in ascending item order (without new ratings, lfg_predict's
 * scores bit for bit), then the exclude and include filters as for the
 * factor models; the new ratings' items are left out. The scores are EASE
 * scores, not ratings (doc/reference.md).
 */
static Datum
RecommendUserEase(FunctionCallInfo fcinfo, LfgCachedModel *c, int32 k)
{
	const LfgEase *e = &c->model.ease;
	int32		ni = e->n_items;
	LfgNetUser	in;
	int32		u,
				n_ex,
				n_in,
				nc = 0;
	bool		isnull;
	int32	   *ex,
			   *inc;
	bool	   *rated = palloc0(sizeof(bool) * Max(ni, 1));
	bool	   *allowed = palloc(sizeof(bool) * Max(ni, 1));
	double	   *score = palloc0(sizeof(double) * Max(ni, 1));
	LfgScored  *cand = palloc(sizeof(LfgScored) * Max(ni, 1));

	if (PG_ARGISNULL(1))
	{
		PutRows(fcinfo, "lfg_recommend_user", c, NULL, 0, false);
		return (Datum) 0;
	}
	u = KnownUser(fcinfo, c, 1);
	LfgUserInput(fcinfo, c, 4, -1, &in);
	for (int64 x = e->user_ptr[u]; x < e->user_ptr[u + 1]; x++)
		rated[e->user_items[x]] = true;
	for (int32 j = 0; j < in.n; j++)
		rated[in.item[j]] = true;
	for (int32 i = 0; i < ni; i++)
	{
		const float *row = e->B + (size_t) i * ni;

		if (!rated[i])
			continue;
		for (int32 j = 0; j < ni; j++)
			score[j] += row[j];
		if ((i & 255) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	ex = ItemIndexArg(fcinfo, c, 3, "exclude", 0, &n_ex, &isnull);
	inc = ItemIndexArg(fcinfo, c, 5, "include", 0, &n_in, &isnull);
	for (int32 i = 0; i < ni; i++)
		allowed[i] = isnull;
	for (int32 j = 0; !isnull && j < n_in; j++)
		allowed[inc[j]] = true;
	for (int32 j = 0; j < n_ex; j++)
		allowed[ex[j]] = false;
	for (int32 j = 0; j < in.n; j++)
		allowed[in.item[j]] = false;
	for (int32 i = 0; i < ni; i++)
		if (allowed[i])
			cand[nc++] = (LfgScored) {score[i], i};
	PutRows(fcinfo, "lfg_recommend_user", c, cand, lfg_select_top_k(cand, nc, k), false);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(lfg_recommend_user);
/*
 * lfg_recommend_user(model_name, user_id, k, exclude, ratings, include):
 * a known user's top k by raw score, clipped scores equal to lfg_predict's
 */
Datum
lfg_recommend_user(PG_FUNCTION_ARGS)
{
	LfgCachedModel *c = KnownModel(fcinfo);
	const LfgMfParams *mf = &c->model.mf;
	int32		k = LfgArgK(fcinfo, 2);
	LfgNetUser	in;
	LfgItemFilter f = {0};
	LfgAllocator alloc = LfgPallocAllocator(CurrentMemoryContext);
	LfgScored  *top;
	LfgError	err;
	int32		u,
				found = 0;
	bool		isnull;
	int32	   *exclude;

	switch (KnownForm(c, "lfg_recommend_user"))
	{
		case KNOWN_FACTORS:
			break;
		case KNOWN_EASE:
			return RecommendUserEase(fcinfo, c, k);
	}
	if (PG_ARGISNULL(1))
	{
		PutRows(fcinfo, "lfg_recommend_user", c, NULL, 0, true);
		return (Datum) 0;
	}
	u = KnownUser(fcinfo, c, 1);
	KnownUserVector(fcinfo, c, u, 4, &in);
	/* the new ratings' items are left out, as lfg_recommend leaves out the rated ones */
	exclude = ItemIndexArg(fcinfo, c, 3, "exclude", in.n, &f.n_exclude, &isnull);
	memcpy(exclude + f.n_exclude, in.item, sizeof(int32) * in.n);
	f.exclude = exclude;
	f.n_exclude += in.n;
	f.include = ItemIndexArg(fcinfo, c, 5, "include", 0, &f.n_include, &isnull);
	if (isnull)
		f.include = NULL;
	top = palloc(sizeof(LfgScored) * Min(k, mf->n_items));
	if (lfg_known_top_k(mf, &c->scorer, c->x, c->xo, &f, k, c->topk.scores,
						&alloc, top, &found, &err) != LFG_OK)
		LfgRaise(&err);
	PutRows(fcinfo, "lfg_recommend_user", c, top, found, true);
	return (Datum) 0;
}

/* The dense index of the item in argument a, or an error naming fname */
static int32
KnownItem(FunctionCallInfo fcinfo, const LfgCachedModel *c, int a, const char *fname)
{
	int64		id = PG_GETARG_INT64(a);
	int32		i = lfg_id_index_find(&c->items, id);

	if (i < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("item " INT64_FORMAT " is not in model \"%s\"", id, c->name),
				 errdetail("Version %d of the model was trained without ratings of this item.", c->version),
				 errhint("%s needs an item the model was trained on.", fname)));
	return i;
}

PG_FUNCTION_INFO_V1(lfg_similar_items);
/* lfg_similar_items(model_name, item_id, k, exclude, include): cosine of q_i */
Datum
lfg_similar_items(PG_FUNCTION_ARGS)
{
	LfgCachedModel *c = KnownModel(fcinfo);
	const LfgMfParams *mf = &c->model.mf;
	int32		k = LfgArgK(fcinfo, 2);
	LfgItemFilter f = {0};
	LfgAllocator alloc = LfgPallocAllocator(CurrentMemoryContext);
	LfgScored  *top;
	LfgError	err;
	int32		i,
				found = 0;
	bool		isnull;

	switch (KnownForm(c, "lfg_similar_items"))
	{
		case KNOWN_FACTORS:
			break;
		case KNOWN_EASE:
			pg_unreachable();	/* refused by KnownForm */
	}
	if (PG_ARGISNULL(1))
	{
		PutRows(fcinfo, "lfg_similar_items", c, NULL, 0, false);
		return (Datum) 0;
	}
	i = KnownItem(fcinfo, c, 1, "lfg_similar_items");
	f.exclude = ItemIndexArg(fcinfo, c, 3, "exclude", 0, &f.n_exclude, &isnull);
	f.include = ItemIndexArg(fcinfo, c, 4, "include", 0, &f.n_include, &isnull);
	if (isnull)
		f.include = NULL;
	top = palloc(sizeof(LfgScored) * Min(k, mf->n_items));
	if (lfg_similar_top_k(mf, i, &f, k, LfgCheckInterrupts, NULL, &alloc, top, &found, &err) != LFG_OK)
		LfgRaise(&err);
	PutRows(fcinfo, "lfg_similar_items", c, top, found, false);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(lfg_item_factors);
/* lfg_item_factors(model_name, item_id): q_i then b_i; NULL for an unknown item */
Datum
lfg_item_factors(PG_FUNCTION_ARGS)
{
	LfgCachedModel *c;
	const LfgMfParams *mf;
	int32		i;
	Datum	   *out;

	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	c = KnownModel(fcinfo);
	mf = &c->model.mf;
	switch (KnownForm(c, "lfg_item_factors"))
	{
		case KNOWN_FACTORS:
			break;
		case KNOWN_EASE:
			pg_unreachable();	/* refused by KnownForm */
	}
	i = lfg_id_index_find(&c->items, PG_GETARG_INT64(1));
	if (i < 0)
		PG_RETURN_NULL();
	out = palloc(sizeof(Datum) * (mf->k + 1));
	for (int32 f = 0; f < mf->k; f++)
		out[f] = Float4GetDatum(mf->Q[(size_t) i * mf->k + f]);
	out[mf->k] = Float4GetDatum(mf->bi != NULL ? mf->bi[i] : 0.0f);
	PG_RETURN_ARRAYTYPE_P(construct_array(out, mf->k + 1, FLOAT4OID, 4, true, TYPALIGN_INT));
}

/* Order of a new user's ratings by item index */
static int
CompareByItem(const void *a, const void *b, void *arg)
{
	const int32 *item = arg;
	int32		x = item[*(const int32 *) a],
				y = item[*(const int32 *) b];

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * One side's explanation of a new user's score of item j into contrib (in->n
 * values) and *rest: the fold-in that lfg_recommend serves
 * (lfg_foldin_served), whose prior is the generator's output, the mean
 * user and the base prior (plain fold-in on FBAS's BiasSVD, lfg_base_prior)
 * times their weights for LFG, zero for SVD and BiasSVD; the base prior,
 * though computed from the ratings, is counted in the prior's part; with
 * an infinite reg (lfg.refine off, or learned) the score is the prior's
 * alone. base_side: that BiasSVD's own plain fold-in instead, on its item
 * side.
 */
static void
ExplainSide(LfgCachedModel *c, const LfgNetUser *in, bool base_side, int32 j, double *contrib,
			double *rest)
{
	const LfgMfParams *mf = &c->model.mf;
	LfgMfParams view;
	LfgAllocator alloc = LfgPallocAllocator(CurrentMemoryContext);
	LfgServeScratch *s = LfgServeBuffers(c, in->n);
	LfgError	err;
	float	   *g = NULL;
	double		w,
				center,
				vbase,
				reg;
	bool		shares;

	lfg_foldin_served(&c->model, in->n, LfgFoldinReg(), lfg_refine, &w, &center, &vbase, &reg);
	if (base_side)
	{
		lfg_foldin_base_view(c->model.net.foldin_base, mf, &view);
		mf = &view;
		reg = LFG_FOLDIN_BASE_REG;
	}
	else if (mf->kind == LFG_KIND_LFG)
	{
		float	   *b = palloc(sizeof(float) * (mf->k + 1));

		g = palloc(sizeof(float) * (mf->k + 1));
		if (lfg_user_vector(&c->model, in, LFG_DEFAULT_FOLDIN_REG, false, s, g, &err) != LFG_OK ||
			(vbase != 0.0 && lfg_base_prior(&c->model, in, s, b, &err) != LFG_OK))
			LfgRaise(&err);
		lfg_foldin_prior(&c->model, w, center, vbase, b, g);
	}
	shares = !isinf(reg);
	if (lfg_explain_fold_in(mf, in->item, in->rating, shares ? in->n : 0,
							shares ? reg : LFG_DEFAULT_FOLDIN_REG, g, j,
							LfgCheckInterrupts, NULL, &alloc, contrib, rest, &err) != LFG_OK)
		LfgRaise(&err);
}

PG_FUNCTION_INFO_V1(lfg_explain);
/*
 * lfg_explain(model_name, user_ratings, age, gender, job, item_id): each
 * rated item's exact share of a new user's score, then the rest
 */
Datum
lfg_explain(PG_FUNCTION_ARGS)
{
	LfgCachedModel *c = KnownModel(fcinfo);
	TupleDesc	tupdesc;
	Tuplestorestate *ts;
	LfgNetUser	in;
	double	   *contrib,
				base;
	int32	   *order;
	int32		j;
	uint32		side;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	switch (KnownForm(c, "lfg_explain"))
	{
		case KNOWN_FACTORS:
			break;
		case KNOWN_EASE:
			pg_unreachable();	/* refused by KnownForm */
	}
	LfgUserInput(fcinfo, c, 1, 2, &in);
	ts = LfgBeginSRF(fcinfo, "lfg_explain", 3, &tupdesc);
	if (PG_ARGISNULL(5))
		return (Datum) 0;
	j = lfg_id_index_find(&c->items, PG_GETARG_INT64(5));
	/* the side its predicted ratings come from (lfg_rating_vector) */
	side = lfg_foldin_side(&c->model, in.n, LfgFoldinReg(), lfg_refine);
	contrib = palloc0(sizeof(double) * Max(in.n, 1));
	ExplainSide(c, &in, side == LFG_FOLDIN_SIDE_BASE, j, contrib, &base);
	if (side == LFG_FOLDIN_SIDE_BLEND)
	{
		/* the mean of the model's and the base's, as predicted */
		double	   *c2 = palloc0(sizeof(double) * Max(in.n, 1)),
					b2;

		ExplainSide(c, &in, true, j, c2, &b2);
		for (int32 e = 0; e < in.n; e++)
			contrib[e] = 0.5 * (contrib[e] + c2[e]);
		base = 0.5 * (base + b2);
	}
	order = palloc(sizeof(int32) * Max(in.n, 1));
	for (int32 e = 0; e < in.n; e++)
		order[e] = e;
	qsort_arg(order, in.n, sizeof(int32), CompareByItem, (void *) in.item);
	for (int32 t = 0; t < in.n; t++)
	{
		int32		e = order[t];

		values[0] = Int64GetDatum(c->model.item_ids[in.item[e]]);
		values[1] = Float8GetDatum(in.rating[e]);
		values[2] = Float8GetDatum(contrib[e]);
		tuplestore_putvalues(ts, tupdesc, values, nulls);
	}
	nulls[0] = nulls[1] = true;
	values[2] = Float8GetDatum(base);
	tuplestore_putvalues(ts, tupdesc, values, nulls);
	return (Datum) 0;
}

/* Ascending int32 */
static int
CompareInt32(const void *a, const void *b)
{
	int32		x = *(const int32 *) a,
				y = *(const int32 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * A new user's top k among a short include list: each allowed candidate
 * ordered as lfg_recommend_top_k orders (the raw score, lfg_score_raw, plus
 * the model's ranking prior when it has one) and the best kept, ties by the
 * smaller index, which is lfg_recommend_top_k's answer restricted to the
 * list; the scores written are the predicted ratings, clipped
 * (lfg_rating_score of src: LfgUserVector). Writes
 * c->top_items and c->top_scores; returns how many.
 */
static int32
RecommendListed(LfgCachedModel *c, const LfgRatingSource *src, const LfgItemFilter *f, int32 k)
{
	const LfgMfParams *mf = &c->model.mf;
	int32	   *cand = palloc(sizeof(int32) * Max(f->n_include, 1));
	int32	   *excl = palloc(sizeof(int32) * Max(f->n_exclude, 1));
	float	   *scores = palloc(sizeof(float) * Max(f->n_include, 1));
	int32	   *heap = palloc(sizeof(int32) * Max(k, 1));
	int32		nc = 0,
				found;

	memcpy(cand, f->include, sizeof(int32) * f->n_include);
	memcpy(excl, f->exclude, sizeof(int32) * f->n_exclude);
	qsort(cand, f->n_include, sizeof(int32), CompareInt32);
	qsort(excl, f->n_exclude, sizeof(int32), CompareInt32);
	for (int32 j = 0, e = 0; j < f->n_include; j++)
	{
		if (nc > 0 && cand[nc - 1] == cand[j])
			continue;			/* repeated */
		while (e < f->n_exclude && excl[e] < cand[j])
			e++;
		if (e < f->n_exclude && excl[e] == cand[j])
			continue;
		cand[nc] = cand[j];
		scores[nc++] = lfg_order_score(mf, c->xo, cand[j]);
	}
	found = lfg_top_k(scores, nc, Min(k, nc), heap);
	for (int32 j = 0; j < found; j++)
	{
		c->top_items[j] = cand[heap[j]];
		c->top_scores[j] = (float) lfg_rating_score(src, c->top_items[j]);
	}
	return found;
}

PG_FUNCTION_INFO_V1(lfg_recommend_filtered);
/*
 * lfg_recommend(model_name, user_ratings, age, gender, job, k, exclude,
 * include): lfg_recommend with the exclude and include filters. Without
 * them it is lfg_recommend's answer; a long include list excludes the
 * rest of the catalogue from lfg_recommend_top_k's scan, a short one is
 * scored alone.
 */
Datum
lfg_recommend_filtered(PG_FUNCTION_ARGS)
{
	LfgCachedModel *c;
	const LfgMfParams *mf;
	const LfgRatingSource *src;
	int32		k;
	LfgNetUser	in;
	LfgItemFilter f = {0};
	TupleDesc	tupdesc;
	Tuplestorestate *ts;
	int32	   *exclude;
	int32		found;
	bool		isnull;

	/* without filters: lfg_recommend's own path */
	if (PG_ARGISNULL(6) && PG_ARGISNULL(7))
		return lfg_recommend_jsonb(fcinfo);
	c = KnownModel(fcinfo);
	mf = &c->model.mf;
	k = LfgArgK(fcinfo, 5);
	switch (KnownForm(c, "lfg_recommend"))
	{
		case KNOWN_FACTORS:
			break;
		case KNOWN_EASE:
			pg_unreachable();	/* refused by KnownForm */
	}
	LfgUserInput(fcinfo, c, 1, 2, &in);
	ts = LfgBeginSRF(fcinfo, "lfg_recommend", 2, &tupdesc);
	/* the rated items are left out, as lfg_recommend leaves them out */
	exclude = ItemIndexArg(fcinfo, c, 6, "exclude", in.n + mf->n_items, &f.n_exclude, &isnull);
	memcpy(exclude + f.n_exclude, in.item, sizeof(int32) * in.n);
	f.n_exclude += in.n;
	f.exclude = exclude;
	f.include = ItemIndexArg(fcinfo, c, 7, "include", 0, &f.n_include, &isnull);
	if (isnull)
		f.include = NULL;
	src = LfgUserVector(c, &in);
	if (f.include != NULL && (int64) f.n_include * 8 <= mf->n_items)
		found = RecommendListed(c, src, &f, k);
	else
	{
		if (f.include != NULL)
		{
			/* a long list: every item not in it joins the exclusions */
			bool	   *listed = palloc0(sizeof(bool) * mf->n_items);

			for (int32 j = 0; j < f.n_include; j++)
				listed[f.include[j]] = true;
			for (int32 i = 0; i < mf->n_items; i++)
				if (!listed[i])
					exclude[f.n_exclude++] = i;
		}
		found = lfg_recommend_top_k(mf, &c->scorer, c->x, c->xo, exclude, f.n_exclude,
									Min(k, mf->n_items), &c->topk, c->top_items, c->top_scores);
		LfgRescore(c, src, found);
	}
	for (int32 j = 0; j < found; j++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = Int64GetDatum(c->model.item_ids[c->top_items[j]]);
		values[1] = Float8GetDatum(c->top_scores[j]);
		tuplestore_putvalues(ts, tupdesc, values, nulls);
	}
	return (Datum) 0;
}
