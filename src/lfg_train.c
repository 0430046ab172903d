/*
 * lfg_train.c
 *	  The lfg_fit aggregate: collect ratings, then train in the final
 *	  function.
 *
 * The transition function only appends (user, item, rating) to arrays in
 * the aggregate context, so the aggregate can run in parallel: partial
 * states are serialized, concatenated by the combine function and trained
 * once. The final function sorts the rows by (user, item, rating) before it
 * assigns dense indexes and trains, which makes the model independent of
 * the order in which rows arrive: a parallel plan, a serial plan and a
 * shuffled input give byte-identical models under the same seed.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "lfg.h"
#include "lfg_shmem.h"
#include "lfg_options.h"
#include "lfg_users.h"
#include "core/lfg_mf.h"
#include "core/lfg_model.h"

#define INITIAL_CAPACITY 1024

typedef struct FitState
{
	int64		n;				/* rows collected */
	int64		capacity;
	int64		skipped;		/* rows with a NULL id or rating */
	int64	   *user;
	int64	   *item;
	float	   *rating;
	Jsonb	   *options;		/* NULL: defaults */
	LfgUserMap *demo;			/* demographics (the 6- and 7-argument forms) */
	/* compacted for svd and biassvd (CompactState): */
	bool		compact;		/* user holds n LfgRating; item and rating are NULL */
	int64	   *uids;			/* sorted distinct ids (when compact) */
	int64	   *iids;
	int32		nu;
	int32		ni;
} FitState;

typedef struct FitRow
{
	int64		user;
	int64		item;
	float		rating;
} FitRow;

/*
 * lfg.train_memory_limit: the collected ratings (20 bytes each, checked as
 * they grow) plus everything the final function allocates to train
 * (checked before Densify from its size, and on every allocation of the
 * core through BudgetAlloc). The peak is reported with the timings.
 */
#define STATE_BYTES_PER_ROW (sizeof(int64) * 2 + sizeof(float))
#define DENSE_BYTES_PER_ROW (sizeof(FitRow) + sizeof(int32) * 2 + sizeof(float) + sizeof(int64))

typedef struct TrainBudget
{
	MemoryContext cxt;			/* the training context */
	Size		base;			/* bytes held outside it (the ratings) */
	Size		peak;
	bool		refused;		/* an allocation was refused */
} TrainBudget;

static Size
LimitBytes(void)
{
	return (Size) lfg_train_memory_limit * 1024 * 1024;
}

/* The step of lfg_fit that a memory limit error names */
typedef enum BudgetStep
{
	BUDGET_COLLECT,				/* collecting the ratings */
	BUDGET_INDEX,				/* sorting and indexing them */
	BUDGET_TRAIN				/* training */
} BudgetStep;

static void BudgetError(Size need, BudgetStep step) pg_attribute_noreturn();

/* Raise the limit's error for a need of need bytes */
static void
BudgetError(Size need, BudgetStep step)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 step == BUDGET_COLLECT ?
			 errmsg("lfg_fit needs more memory than lfg.train_memory_limit to collect its ratings") :
			 step == BUDGET_INDEX ?
			 errmsg("lfg_fit needs more memory than lfg.train_memory_limit to index its ratings") :
			 errmsg("lfg_fit needs more memory than lfg.train_memory_limit to train"),
			 errdetail("The limit is %d MB; at least %zu MB are needed.",
					   lfg_train_memory_limit, need / (1024 * 1024) + 1),
			 errhint("Raise lfg.train_memory_limit (a superuser can SET it, or ALTER ROLE ... SET it "
					 "for the training role), or train on fewer ratings, factors or hidden units.")));
	pg_unreachable();
}

static Size
BudgetUsed(TrainBudget *b)
{
	return b->base + MemoryContextMemAllocated(b->cxt, true);
}

static void *
BudgetAlloc(void *ctx, size_t size)
{
	TrainBudget *b = ctx;
	Size		used = BudgetUsed(b);

	b->peak = Max(b->peak, used + size);
	if (used + size > LimitBytes())
	{
		b->refused = true;
		return NULL;
	}
	return MemoryContextAllocExtended(b->cxt, size, MCXT_ALLOC_HUGE);
}

static void
BudgetFree(void *ctx, void *ptr)
{
	pfree(ptr);
}

/* A training failure: the limit's error if an allocation was refused */
static void
RaiseTrainError(const TrainBudget *b, const LfgError *err)
{
	if (b->refused)
		BudgetError(b->peak, BUDGET_TRAIN);
	LfgRaise(err);
}

/* A new empty state in cxt */
static FitState *
NewState(MemoryContext cxt)
{
	FitState   *s = MemoryContextAllocZero(cxt, sizeof(FitState));

	/* shown by lfg_progress (preloaded) until the aggregate's memory goes */
	LfgProgressBegin(cxt);
	return s;
}

/* Bytes the rating arrays of a state hold */
static Size
StateBytes(const FitState *s)
{
	if (s->compact)
		return (Size) s->n * sizeof(LfgRating) + ((Size) s->nu + s->ni) * sizeof(int64);
	return (Size) s->capacity * STATE_BYTES_PER_ROW;
}

static void ExpandState(FitState *s);

/*
 * Make room for extra more rows; memory comes from the state's context.
 * held: bytes the caller holds besides the state while it grows (the other
 * state of a combine, the serialized state being read), which count
 * against lfg.train_memory_limit too.
 */
static void
Reserve(FitState *s, int64 extra, Size held)
{
	int64		need,
				cap;
	Size		room = LimitBytes() > held ? LimitBytes() - held : 0;

	ExpandState(s);
	need = s->n + extra;
	cap = s->capacity;
	if (need <= cap)
		return;
	if (need > (int64) UINT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many ratings for lfg_fit"),
				 errdetail("At most %u ratings can be trained on at once.", UINT32_MAX),
				 errhint("Train on a sample of the ratings.")));
	cap = Max(cap, INITIAL_CAPACITY);
	while (cap < need)
		cap *= 2;
	if ((Size) cap * STATE_BYTES_PER_ROW > room)
	{
		/* grow less when doubling would cross the limit but the need does not */
		cap = Max(need, (int64) (room / STATE_BYTES_PER_ROW));
		if ((Size) cap * STATE_BYTES_PER_ROW > room)
			BudgetError((Size) need * STATE_BYTES_PER_ROW + held, BUDGET_COLLECT);
	}
	if (s->user == NULL)
	{
		MemoryContext cxt = GetMemoryChunkContext(s);

		s->user = MemoryContextAllocHuge(cxt, mul_size(cap, sizeof(int64)));
		s->item = MemoryContextAllocHuge(cxt, mul_size(cap, sizeof(int64)));
		s->rating = MemoryContextAllocHuge(cxt, mul_size(cap, sizeof(float)));
	}
	else
	{
		s->user = repalloc_huge(s->user, mul_size(cap, sizeof(int64)));
		s->item = repalloc_huge(s->item, mul_size(cap, sizeof(int64)));
		s->rating = repalloc_huge(s->rating, mul_size(cap, sizeof(float)));
	}
	s->capacity = cap;
}

/*
 * Remember the options of the first row; every row must carry the same.
 * opts may be a packed (short-header) datum: it is compared without a copy.
 */
static void
SetOptions(FitState *s, struct varlena *opts)
{
	if (s->options == NULL)
	{
		Jsonb	   *jb = (Jsonb *) PG_DETOAST_DATUM(PointerGetDatum(opts));
		LfgFitOptions check;

		/* fail on the first row, not the last */
		LfgParseOptions(jb, s->demo ? LFG_KIND_LFG : LFG_KIND_BIASSVD, &check);
		s->options = MemoryContextAlloc(GetMemoryChunkContext(s), VARSIZE(jb));
		memcpy(s->options, jb, VARSIZE(jb));
	}
	else if (VARSIZE_ANY_EXHDR(opts) != VARSIZE_ANY_EXHDR(s->options) ||
			 memcmp(VARDATA_ANY(opts), VARDATA_ANY(s->options), VARSIZE_ANY_EXHDR(opts)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lfg_fit options differ between rows"),
				 errhint("Pass the same options value for every row, e.g. a constant.")));
}

/* Append one rating row (ids and rating not NULL) */
static void
AddRating(FitState *s, int64 user, int64 item, float8 r)
{
	if (isnan(r) || isinf(r))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("rating must be a finite number"),
				 errdetail("User " INT64_FORMAT " rated item " INT64_FORMAT " with %.15g.",
						   user, item, r),
				 errhint("Filter out NaN and infinite ratings, e.g. WHERE rating <> 'NaN'.")));
	if (fabs(r) > FLT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("rating %.15g is out of range for lfg_fit", r),
				 errhint("Ratings are stored as real; rescale them.")));
	Reserve(s, 1, 0);
	s->user[s->n] = user;
	s->item[s->n] = item;
	s->rating[s->n] = (float) r;
	s->n++;
	if ((s->n & 0xFFFFF) == 0)
		LfgProgressUpdate(NULL, s->n, 0, 0, NAN, NAN);
}

PG_FUNCTION_INFO_V1(lfg_fit_trans);
/* lfg_fit transition: (state, user_id, item_id, rating [, options]) */
Datum
lfg_fit_trans(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	FitState   *s;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "lfg_fit_trans called in non-aggregate context");
	s = PG_ARGISNULL(0) ? NewState(aggcxt) : (FitState *) PG_GETARG_POINTER(0);
	if (PG_NARGS() > 4 && !PG_ARGISNULL(4))
		SetOptions(s, PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(4)));
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		s->skipped++;
	else
		AddRating(s, PG_GETARG_INT64(1), PG_GETARG_INT64(2), PG_GETARG_FLOAT8(3));
	PG_RETURN_POINTER(s);
}

PG_FUNCTION_INFO_V1(lfg_fit_trans_demo);
/* lfg_fit transition: (state, user_id, item_id, rating, age, gender, job [, options]) */
Datum
lfg_fit_trans_demo(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	FitState   *s;
	float8		age;
	text	   *g,
			   *j;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "lfg_fit_trans_demo called in non-aggregate context");
	if (PG_ARGISNULL(0))
	{
		s = NewState(aggcxt);
		s->demo = LfgUserMapCreate(aggcxt);
	}
	else
		s = (FitState *) PG_GETARG_POINTER(0);
	if (PG_NARGS() > 7 && !PG_ARGISNULL(7))
		SetOptions(s, PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(7)));
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
	{
		s->skipped++;
		PG_RETURN_POINTER(s);
	}
	age = PG_ARGISNULL(4) ? NAN : PG_GETARG_FLOAT8(4);
	if (!PG_ARGISNULL(4) && (isinf(age) || isnan(age) || fabs(age) > LFG_MAX_AGE))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("age %.15g of user " INT64_FORMAT " is not a usable number", age, PG_GETARG_INT64(1)),
				 errdetail("Ages must be finite and at most 1000000 in absolute value."),
				 errhint("Pass NULL for an unknown age.")));
	g = PG_ARGISNULL(5) ? NULL : PG_GETARG_TEXT_PP(5);
	j = PG_ARGISNULL(6) ? NULL : PG_GETARG_TEXT_PP(6);
	LfgUserMapAdd(s->demo, PG_GETARG_INT64(1), (float) age,
				  g ? VARDATA_ANY(g) : NULL, g ? VARSIZE_ANY_EXHDR(g) : 0,
				  j ? VARDATA_ANY(j) : NULL, j ? VARSIZE_ANY_EXHDR(j) : 0);
	AddRating(s, PG_GETARG_INT64(1), PG_GETARG_INT64(2), PG_GETARG_FLOAT8(3));
	PG_RETURN_POINTER(s);
}

/* Append the rows of src to dst */
static void
AppendState(FitState *dst, FitState *src)
{
	ExpandState(src);
	Reserve(dst, src->n, StateBytes(src));
	memcpy(dst->user + dst->n, src->user, src->n * sizeof(int64));
	memcpy(dst->item + dst->n, src->item, src->n * sizeof(int64));
	memcpy(dst->rating + dst->n, src->rating, src->n * sizeof(float));
	dst->n += src->n;
	dst->skipped += src->skipped;
	if (src->demo != NULL)
	{
		if (dst->demo == NULL)
			dst->demo = LfgUserMapCreate(GetMemoryChunkContext(dst));
		LfgUserMapMerge(dst->demo, src->demo);
	}
	if (src->options != NULL)
		SetOptions(dst, (struct varlena *) src->options);
}

/* Free a state and all it holds (a combine's merged input) */
static void
FreeState(FitState *s)
{
	if (s->compact)
	{
		pfree(s->user);
		pfree(s->uids);
		pfree(s->iids);
	}
	else if (s->user != NULL)
	{
		pfree(s->user);
		pfree(s->item);
		pfree(s->rating);
	}
	if (s->options != NULL)
		pfree(s->options);
	if (s->demo != NULL)
		LfgUserMapFree(s->demo);
	pfree(s);
}

PG_FUNCTION_INFO_V1(lfg_fit_combine);
/*
 * lfg_fit combine: concatenate two partial states; either may be NULL. The
 * second is a state lfg_fit_deserial just built for this call, which nothing
 * else refers to: the first call adopts it (it is in the aggregate context)
 * rather than copying it, and later calls free it once merged, so the leader
 * holds each worker's ratings once.
 */
Datum
lfg_fit_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	FitState   *a,
			   *b;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "lfg_fit_combine called in non-aggregate context");
	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_POINTER(PG_GETARG_POINTER(0));
	}
	b = (FitState *) PG_GETARG_POINTER(1);
	if (PG_ARGISNULL(0) && GetMemoryChunkContext(b) == aggcxt)
		PG_RETURN_POINTER(b);
	a = PG_ARGISNULL(0) ? NewState(aggcxt) : (FitState *) PG_GETARG_POINTER(0);
	AppendState(a, b);
	FreeState(b);
	PG_RETURN_POINTER(a);
}

PG_FUNCTION_INFO_V1(lfg_fit_serial);
/* lfg_fit serialize: counts, options, then the three arrays */
Datum
lfg_fit_serial(PG_FUNCTION_ARGS)
{
	FitState   *s = (FitState *) PG_GETARG_POINTER(0);
	int32		optlen = s->options ? VARSIZE(s->options) : 0;
	Size		size;
	StringInfoData buf;

	ExpandState(s);
	size = add_size(add_size(21 + optlen, mul_size(s->n, 2 * sizeof(int64))),
					mul_size(s->n, sizeof(float)));
	if (s->demo)
		size = add_size(size, LfgUserMapSerialSize(s->demo));
	if (size > MaxAllocSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many ratings for a parallel lfg_fit"),
				 errhint("SET max_parallel_workers_per_gather = 0 for the training query.")));
	pq_begintypsend(&buf);
	enlargeStringInfo(&buf, (int) size);
	pq_sendint64(&buf, s->n);
	pq_sendint64(&buf, s->skipped);
	pq_sendint32(&buf, optlen);
	if (optlen > 0)
		pq_sendbytes(&buf, (const char *) s->options, optlen);
	pq_sendbytes(&buf, (const char *) s->user, s->n * sizeof(int64));
	pq_sendbytes(&buf, (const char *) s->item, s->n * sizeof(int64));
	pq_sendbytes(&buf, (const char *) s->rating, s->n * sizeof(float));
	pq_sendbyte(&buf, s->demo != NULL);
	if (s->demo)
		LfgUserMapSerialize(s->demo, &buf);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

PG_FUNCTION_INFO_V1(lfg_fit_deserial);
/* lfg_fit deserialize: the inverse of lfg_fit_serial */
Datum
lfg_fit_deserial(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	MemoryContext aggcxt;
	StringInfoData buf;
	FitState   *s;
	int64		n;
	int32		optlen;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "lfg_fit_deserial called in non-aggregate context");
	buf.data = VARDATA_ANY(b);
	buf.len = VARSIZE_ANY_EXHDR(b);
	buf.maxlen = buf.len;
	buf.cursor = 0;
	s = NewState(aggcxt);
	n = pq_getmsgint64(&buf);
	s->skipped = pq_getmsgint64(&buf);
	optlen = pq_getmsgint(&buf, 4);
	if (optlen > 0)
	{
		s->options = MemoryContextAlloc(aggcxt, optlen);
		pq_copymsgbytes(&buf, (char *) s->options, optlen);
	}
	if (n < 0 || n > (int64) (buf.len - buf.cursor) / 20)
		elog(ERROR, "invalid lfg_fit state");
	Reserve(s, n, buf.len);
	pq_copymsgbytes(&buf, (char *) s->user, n * sizeof(int64));
	pq_copymsgbytes(&buf, (char *) s->item, n * sizeof(int64));
	pq_copymsgbytes(&buf, (char *) s->rating, n * sizeof(float));
	s->n = n;
	if (pq_getmsgbyte(&buf))
		s->demo = LfgUserMapDeserialize(aggcxt, &buf);
	pq_getmsgend(&buf);
	PG_RETURN_POINTER(s);
}

/*
 * The training sorts (up to 4e9 rows) check for interrupts in their
 * comparators: qsort here is PostgreSQL's pg_qsort, which sorts in place
 * and holds nothing but its stack, so a cancel may leave it at any
 * comparison (the rows are in the training context, freed by the abort).
 * CHECK_FOR_INTERRUPTS is one load and branch when nothing is pending. The
 * orders are total (equal rows are identical bytes: ratings of equal value
 * are told apart by their bits, 0 from -0), so any sort algorithm gives the
 * same rows and the model stays byte-identical.
 */
static int
CompareRows(const void *a, const void *b)
{
	const FitRow *x = a,
			   *y = b;
	uint32		xb,
				yb;

	CHECK_FOR_INTERRUPTS();
	if (x->user != y->user)
		return x->user < y->user ? -1 : 1;
	if (x->item != y->item)
		return x->item < y->item ? -1 : 1;
	if (x->rating != y->rating)
		return x->rating < y->rating ? -1 : 1;
	memcpy(&xb, &x->rating, sizeof(xb));
	memcpy(&yb, &y->rating, sizeof(yb));
	return xb < yb ? -1 : xb > yb ? 1 : 0;
}

static int
CompareIds(const void *a, const void *b)
{
	int64		x = *(const int64 *) a,
				y = *(const int64 *) b;

	CHECK_FOR_INTERRUPTS();
	return x < y ? -1 : x > y ? 1 : 0;
}

/* Rows between interrupt checks in the linear passes over all rows */
#define ROWS_PER_CHECK (1 << 20)

/* Raise the error for too many distinct ids */
static void
CheckIdCount(int64 m)
{
	if (m > LFG_MAX_IDS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many distinct ids for lfg_fit"),
				 errdetail("At most %d distinct users and %d distinct items are supported.",
						   LFG_MAX_IDS, LFG_MAX_IDS)));
}

/*
 * The sorted distinct values of ids[0..n) in a new array of keep; returns
 * the count. When the ids span a small range (the usual 1..n catalogue, as
 * in MapItems) a table of one byte per value in the range marks the ids
 * present, in one pass and at most 4 bytes a row; otherwise a sorted copy
 * of the ids (8 bytes a row) is deduplicated.
 */
static int32
SortedDistinct(const int64 *ids, int64 n, MemoryContext keep, int64 **out)
{
	int64		lo = n > 0 ? ids[0] : 0,
				hi = lo,
				m = 0;
	uint64		span;

	for (int64 j = 0; j < n; j++)
	{
		if (j % ROWS_PER_CHECK == 0)
			CHECK_FOR_INTERRUPTS();
		lo = Min(lo, ids[j]);
		hi = Max(hi, ids[j]);
	}
	span = (uint64) hi - (uint64) lo;
	if (n > 0 && span < (uint64) n * 4 + 1024)
	{
		uint8	   *seen = palloc_extended(span + 1, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);

		for (int64 j = 0; j < n; j++)
		{
			if (j % ROWS_PER_CHECK == 0)
				CHECK_FOR_INTERRUPTS();
			m += !seen[(uint64) ids[j] - (uint64) lo];
			seen[(uint64) ids[j] - (uint64) lo] = 1;
		}
		CheckIdCount(m);
		*out = MemoryContextAllocExtended(keep, mul_size(m, sizeof(int64)), MCXT_ALLOC_HUGE);
		m = 0;
		for (uint64 v = 0; v <= span; v++)
		{
			if (v % ROWS_PER_CHECK == 0)
				CHECK_FOR_INTERRUPTS();
			if (seen[v])
				(*out)[m++] = (int64) ((uint64) lo + v);
		}
		pfree(seen);
	}
	else
	{
		int64	   *d = palloc_extended(mul_size(n, sizeof(int64)), MCXT_ALLOC_HUGE);

		memcpy(d, ids, n * sizeof(int64));
		qsort(d, n, sizeof(int64), CompareIds);
		for (int64 j = 0; j < n; j++)
		{
			if (j % ROWS_PER_CHECK == 0)
				CHECK_FOR_INTERRUPTS();
			if (m == 0 || d[m - 1] != d[j])
				d[m++] = d[j];
		}
		CheckIdCount(m);
		*out = MemoryContextAllocExtended(keep, mul_size(Max(m, 1), sizeof(int64)), MCXT_ALLOC_HUGE);
		memcpy(*out, d, m * sizeof(int64));
		pfree(d);
	}
	return (int32) m;
}

/*
 * Dense index of each row's item. When the ids span a small range (the
 * usual 1..n catalogue) a direct table replaces the binary search.
 */
static void
MapItems(const FitRow *rows, int64 n, const int64 *ids, int32 nids, int32 *out)
{
	uint64		span = (uint64) ids[nids - 1] - (uint64) ids[0];

	if (span < (uint64) nids * 4 + 1024)
	{
		int32	   *table = palloc_extended(mul_size(span + 1, sizeof(int32)), MCXT_ALLOC_HUGE);

		for (int32 j = 0; j < nids; j++)
			table[(uint64) ids[j] - (uint64) ids[0]] = j;
		for (int64 j = 0; j < n; j++)
		{
			if (j % ROWS_PER_CHECK == 0)
				CHECK_FOR_INTERRUPTS();
			out[j] = table[(uint64) rows[j].item - (uint64) ids[0]];
		}
		pfree(table);
	}
	else
		for (int64 j = 0; j < n; j++)
		{
			if (j % ROWS_PER_CHECK == 0)
				CHECK_FOR_INTERRUPTS();
			out[j] = lfg_find_id(ids, nids, rows[j].item);
		}
}

/* Training inputs built from the state: dense indexes in canonical order */
typedef struct DenseData
{
	LfgRatings	r;
	int64	   *user_ids;
	int64	   *item_ids;
} DenseData;

/* Sort the rows and map ids to dense indexes (see the file header) */
static void
Densify(const FitState *s, DenseData *d)
{
	int64		n = s->n;
	FitRow	   *rows = palloc_extended(mul_size(n, sizeof(FitRow)), MCXT_ALLOC_HUGE);
	int32	   *u = palloc_extended(mul_size(n, sizeof(int32)), MCXT_ALLOC_HUGE);
	int32	   *i = palloc_extended(mul_size(n, sizeof(int32)), MCXT_ALLOC_HUGE);
	float	   *r = palloc_extended(mul_size(n, sizeof(float)), MCXT_ALLOC_HUGE);
	int64	   *uids = palloc_extended(mul_size(n, sizeof(int64)), MCXT_ALLOC_HUGE);
	int64		nu = 0;

	for (int64 j = 0; j < n; j++)
	{
		if (j % ROWS_PER_CHECK == 0)
			CHECK_FOR_INTERRUPTS();
		rows[j] = (FitRow) {s->user[j], s->item[j], s->rating[j]};
	}
	qsort(rows, n, sizeof(FitRow), CompareRows);
	/* rows are sorted by user: users get dense indexes in one pass */
	for (int64 j = 0; j < n; j++)
	{
		if (j % ROWS_PER_CHECK == 0)
			CHECK_FOR_INTERRUPTS();
		if (nu == 0 || uids[nu - 1] != rows[j].user)
			uids[nu++] = rows[j].user;
		u[j] = (int32) (nu - 1);
		r[j] = rows[j].rating;
	}
	CheckIdCount(nu);
	d->r.n_items = SortedDistinct(s->item, s->n, CurrentMemoryContext, &d->item_ids);
	MapItems(rows, n, d->item_ids, d->r.n_items, i);
	pfree(rows);
	d->user_ids = uids;
	d->r.n_users = (int32) nu;
	d->r.n = (size_t) n;
	d->r.user = u;
	d->r.item = i;
	d->r.rating = r;
}

/*
 * Replace each id of ids[0..n) by its index in sorted[0..m), written as an
 * int32 over the front of the same array: entry j is read before the
 * ascending writes reach its bytes. A direct table replaces the binary
 * search when the ids span a small range (see MapItems).
 */
static void
MapIdsInPlace(int64 *ids, int64 n, const int64 *sorted, int32 m)
{
	int32	   *out = (int32 *) ids;
	uint64		span = (uint64) sorted[m - 1] - (uint64) sorted[0];
	int32	   *table = NULL;

	if (span < (uint64) m * 4 + 1024)
	{
		table = palloc_extended(mul_size(span + 1, sizeof(int32)), MCXT_ALLOC_HUGE);
		for (int32 j = 0; j < m; j++)
			table[(uint64) sorted[j] - (uint64) sorted[0]] = j;
	}
	for (int64 j = 0; j < n; j++)
	{
		int64		id = ids[j];

		if (j % ROWS_PER_CHECK == 0)
			CHECK_FOR_INTERRUPTS();
		out[j] = table ? table[(uint64) id - (uint64) sorted[0]] : lfg_find_id(sorted, m, id);
	}
	if (table)
		pfree(table);
}

/*
 * Compact a state for svd and biassvd training, in place: the ids become
 * dense indexes (users and items numbered in id order, as Densify does) and
 * the rows 12-byte LfgRating in the user array, which the training then
 * reorders. Sizes per rating: the state holds 20 bytes; finding the
 * distinct user ids adds at most 8 (SortedDistinct: the peak, 28); once
 * mapped, the id arrays shrink to 4 bytes each; the user array then grows
 * to 12 (realloc remaps the pages, no copy) and takes the rows, filled from
 * the last so each entry is read before it is overwritten; 12 remain. ExpandState undoes it, for a state
 * that is aggregated further (a window, or one state shared by two
 * lfg_fit calls).
 */
static void
CompactState(FitState *s, TrainBudget *b)
{
	int64		n = s->n;
	MemoryContext scxt = GetMemoryChunkContext(s);
	LfgRating  *rows;
	int32	   *u32,
			   *i32;

	if (s->compact)
		return;
	if (s->capacity > n)
	{
		s->user = repalloc_huge(s->user, n * sizeof(int64));
		s->item = repalloc_huge(s->item, n * sizeof(int64));
		s->rating = repalloc_huge(s->rating, n * sizeof(float));
		s->capacity = n;
	}
	b->base = StateBytes(s);
	b->peak = Max(b->peak, b->base + n * sizeof(int64));
	s->nu = SortedDistinct(s->user, n, scxt, &s->uids);
	MapIdsInPlace(s->user, n, s->uids, s->nu);
	s->user = repalloc_huge(s->user, n * sizeof(int32));
	s->ni = SortedDistinct(s->item, n, scxt, &s->iids);
	MapIdsInPlace(s->item, n, s->iids, s->ni);
	s->item = repalloc_huge(s->item, n * sizeof(int32));
	s->user = repalloc_huge(s->user, mul_size(n, sizeof(LfgRating)));
	rows = (LfgRating *) s->user;
	u32 = (int32 *) s->user;
	i32 = (int32 *) s->item;
	for (int64 j = n - 1; j >= 0; j--)
	{
		LfgRating	x = {u32[j], i32[j], s->rating[j]};

		if (j % ROWS_PER_CHECK == 0)
			CHECK_FOR_INTERRUPTS();
		rows[j] = x;
	}
	pfree(s->item);
	pfree(s->rating);
	s->item = NULL;
	s->rating = NULL;
	s->compact = true;
	b->base = StateBytes(s);
}

/* Undo CompactState: the ids and ratings back in their own arrays */
static void
ExpandState(FitState *s)
{
	int64		n = s->n;
	MemoryContext scxt;
	LfgRating  *rows;

	if (!s->compact)
		return;
	scxt = GetMemoryChunkContext(s);
	rows = (LfgRating *) s->user;
	s->item = MemoryContextAllocHuge(scxt, mul_size(Max(n, 1), sizeof(int64)));
	s->rating = MemoryContextAllocHuge(scxt, mul_size(Max(n, 1), sizeof(float)));
	for (int64 j = 0; j < n; j++)
	{
		LfgRating	x = rows[j];

		/* user j's 8 bytes end before row j + 1 starts: ascending is safe */
		s->item[j] = s->iids[x.i];
		s->rating[j] = x.r;
		s->user[j] = s->uids[x.u];
	}
	s->user = repalloc_huge(s->user, mul_size(Max(n, 1), sizeof(int64)));
	s->capacity = n;
	pfree(s->uids);
	pfree(s->iids);
	s->uids = s->iids = NULL;
	s->compact = false;
}

/*
 * The timings of the last few models this backend trained, keyed by their
 * CRC and length, so that the INSERT trigger of lfg.models can record them
 * in the metrics column without putting varying numbers in the bytes.
 */
#define FIT_MEMORY 16
typedef struct FitRecord
{
	uint32		crc;
	uint32		len;
	double		seconds;
	double		seconds_per_epoch;	/* NaN for svd and biassvd */
	double		flops_per_epoch;
	Size		memory;			/* peak bytes under lfg.train_memory_limit */
	char	   *epoch_seconds;	/* svd, biassvd: a JSON array, or NULL */
} FitRecord;
static FitRecord fit_memory[FIT_MEMORY];
static int	fit_next = 0;
static double last_seconds_per_epoch = NAN;
static double last_flops_per_epoch = NAN;
static char *last_epoch_seconds = NULL;	/* in TopMemoryContext */

/* The CRC stored in the last four bytes of a model */
static uint32
ModelCrc(bytea *model)
{
	uint32		crc = 0;
	int			len = VARSIZE_ANY_EXHDR(model);

	if (len >= 4)
		memcpy(&crc, VARDATA_ANY(model) + len - 4, 4);
	return crc;
}

/* Note the epoch timing of the LFG model being trained */
static void
RememberEpochs(double seconds_per_epoch, double flops_per_epoch)
{
	last_seconds_per_epoch = seconds_per_epoch;
	last_flops_per_epoch = flops_per_epoch;
	if (last_epoch_seconds != NULL)
		pfree(last_epoch_seconds);
	last_epoch_seconds = NULL;
}

/* Note the seconds of each epoch of the svd or biassvd model being trained */
static void
RememberEpochSeconds(const char *json)
{
	last_epoch_seconds = MemoryContextStrdup(TopMemoryContext, json);
}

/* Remember how long the model took to train */
static void
RememberFit(bytea *model, double seconds, Size memory)
{
	if (fit_memory[fit_next].epoch_seconds != NULL)
		pfree(fit_memory[fit_next].epoch_seconds);
	fit_memory[fit_next] = (FitRecord) {ModelCrc(model), VARSIZE_ANY_EXHDR(model), seconds,
	last_seconds_per_epoch, last_flops_per_epoch, memory, last_epoch_seconds};
	fit_next = (fit_next + 1) % FIT_MEMORY;
	last_seconds_per_epoch = last_flops_per_epoch = NAN;
	last_epoch_seconds = NULL;
}

PG_FUNCTION_INFO_V1(lfg_fit_timing);
/*
 * lfg_fit_timing(model): {"train_seconds", "train_memory_mb", "seconds_per_epoch",
 * "gflop_per_epoch", "gflops", "epoch_seconds"} if this backend trained the
 * model lately, else NULL
 */
Datum
lfg_fit_timing(PG_FUNCTION_ARGS)
{
	bytea	   *model = PG_GETARG_BYTEA_PP(0);
	uint32		crc = ModelCrc(model);
	uint32		len = VARSIZE_ANY_EXHDR(model);

	for (int j = 0; j < FIT_MEMORY; j++)
	{
		FitRecord  *f = &fit_memory[(fit_next - 1 - j + 2 * FIT_MEMORY) % FIT_MEMORY];
		StringInfoData s;

		if (f->len != len || f->crc != crc || len == 0)
			continue;
		initStringInfo(&s);
		appendStringInfo(&s, "{\"train_seconds\": %.4f, \"train_memory_mb\": %.1f",
						 f->seconds, f->memory / (1024.0 * 1024.0));
		if (!isnan(f->seconds_per_epoch) && isnan(f->flops_per_epoch))
			appendStringInfo(&s, ", \"seconds_per_epoch\": %.4f", f->seconds_per_epoch);
		else if (!isnan(f->seconds_per_epoch))
			appendStringInfo(&s, ", \"seconds_per_epoch\": %.4f, \"gflop_per_epoch\": %.4f"
							 ", \"gflops\": %.3f", f->seconds_per_epoch,
							 f->flops_per_epoch / 1e9,
							 f->flops_per_epoch / 1e9 / Max(f->seconds_per_epoch, 1e-9));
		if (f->epoch_seconds != NULL)
			appendStringInfo(&s, ", \"epoch_seconds\": %s", f->epoch_seconds);
		appendStringInfoChar(&s, '}');
		PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
	}
	PG_RETURN_NULL();
}

/*
 * The history of an svd or biassvd fit: the training RMSE of each epoch (a
 * JSON array stored in the model's metrics) and its seconds (reported with
 * the timings, outside the deterministic bytes)
 */
typedef struct MfHistory
{
	const LfgMfOptions *o;
	double		last;			/* clock at the end of the last epoch */
	double		total;			/* seconds of all epochs */
	StringInfoData rmse;
	StringInfoData seconds;
} MfHistory;

/* Core callback after each MF epoch: progress at DEBUG1, NOTICE when verbose */
static void
ReportMfEpoch(void *ctx, int epoch, double rmse)
{
	MfHistory  *h = ctx;
	double		now = lfg_clock_seconds();

	CHECK_FOR_INTERRUPTS();
	LfgProgressUpdate("training", -1, epoch, h->o->epochs, rmse, NAN);
	appendStringInfo(&h->rmse, "%s%.6f", epoch > 1 ? ", " : "[", rmse);
	appendStringInfo(&h->seconds, "%s%.4f", epoch > 1 ? ", " : "[", now - h->last);
	h->total += now - h->last;
	ereport(h->o->verbose ? NOTICE : DEBUG1,
			(errmsg("lfg_fit epoch %d of %d: training rmse %.4f, %.2f s",
					epoch, h->o->epochs, rmse, now - h->last)));
	h->last = now;
}

/* Core callback after each epoch of an LFG model's BiasSVD pretraining */
static void
ReportPretrainEpoch(void *ctx, int epoch, double rmse)
{
	const LfgNetOptions *o = ctx;

	CHECK_FOR_INTERRUPTS();
	LfgProgressUpdate("pretraining the item side (BiasSVD)", -1, epoch, o->pretrain_epochs, rmse, NAN);
	ereport(o->verbose ? NOTICE : DEBUG1,
			(errmsg("lfg_fit pretraining epoch %d of %d: training rmse %.4f", epoch, o->pretrain_epochs, rmse)));
}

/* Core callback after each LFG epoch */
static void
ReportNetEpoch(void *ctx, int epoch, double train_rmse, double val_rmse, double seconds)
{
	const LfgNetOptions *o = ctx;

	CHECK_FOR_INTERRUPTS();
	LfgProgressUpdate("training the generator", -1, epoch, o->epochs, train_rmse, val_rmse);
	ereport(o->verbose ? NOTICE : DEBUG1,
			(errmsg("lfg_fit epoch %d of at most %d: training rmse %.4f, validation rmse %.4f, %.1f s",
					epoch, o->epochs, train_rmse, val_rmse, seconds)));
}

/* A string table section built from a sorted vocabulary */
static uint8_t *
VocabTable(const LfgVocab *v, uint32_t *len)
{
	size_t		size = lfg_vocab_size((const char *const *) v->str, v->len, v->n);
	uint8_t    *t = palloc(size);

	lfg_vocab_write((const char *const *) v->str, v->len, v->n, t);
	*len = (uint32_t) size;
	return t;
}

/* A warm start (option "warm_start"): the model started from and the maps */
typedef struct WarmSetup
{
	LfgCachedModel *from;
	LfgWarmStart w;
	int32		users_known;
	int32		items_known;
	bool		generator;		/* the generator started from the old one too */
} WarmSetup;

/*
 * Load the model opts->warm_start names and map d's users and items to its
 * rows. Training then calls no other lookup, so the cache entry stays valid.
 */
static void
PrepareWarm(const LfgFitOptions *opts, const DenseData *d, WarmSetup *ws)
{
	const LfgModel *old;
	int32		k = opts->kind == LFG_KIND_LFG ? opts->net.factors : opts->mf.factors;
	int32	   *umap = palloc_extended(mul_size(Max(d->r.n_users, 1), sizeof(int32)), MCXT_ALLOC_HUGE);
	int32	   *imap = palloc_extended(mul_size(Max(d->r.n_items, 1), sizeof(int32)), MCXT_ALLOC_HUGE);

	memset(ws, 0, sizeof(*ws));
	ws->from = LfgGetModel(cstring_to_text(opts->warm_model), opts->warm_version);
	old = &ws->from->model;
	if (old->mf.k != k)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot warm-start from a model with another number of factors"),
				 errdetail("The model being trained has %d factors; version %d of model \"%s\" has %d.",
						   k, ws->from->version, opts->warm_model, old->mf.k),
				 errhint("Train with \"factors\": %d, or without \"warm_start\".", old->mf.k)));
	for (int32 u = 0; u < d->r.n_users; u++)
		ws->users_known += (umap[u] = lfg_find_id(old->user_ids, old->mf.n_users, d->user_ids[u])) >= 0;
	for (int32 i = 0; i < d->r.n_items; i++)
		ws->items_known += (imap[i] = lfg_find_id(old->item_ids, old->mf.n_items, d->item_ids[i])) >= 0;
	ws->w = (LfgWarmStart) {&old->mf, umap, imap, NULL, NULL};
}

/*
 * The generator's warm start, once the new vocabularies are known: the old
 * row of each new dense input (age, each gender, each job, the rating
 * count), matched by meaning and by the gender and job strings.
 */
static void
PrepareWarmGenerator(WarmSetup *ws, const LfgNetOptions *o, const LfgVocab *genders,
					 const LfgVocab *jobs)
{
	const LfgModel *old = &ws->from->model;
	const LfgNet *on = &old->net;
	int32		n = lfg_net_dense_width(o->aux, o->input, genders->n, jobs->n),
				pos = 0;
	int32	   *dmap;

	if (old->mf.kind != LFG_KIND_LFG || !lfg_net_warm_compatible(on, o))
		return;
	dmap = palloc(sizeof(int32) * Max(n, 1));
	if (o->aux)
	{
		dmap[pos++] = on->aux ? 0 : -1;
		for (int32 g = 0; g < genders->n; g++)
		{
			int32		og = on->aux ? lfg_vocab_find(old->vocab_gender, genders->str[g], genders->len[g]) : -1;

			dmap[pos++] = og >= 0 ? 1 + og : -1;
		}
		for (int32 j = 0; j < jobs->n; j++)
		{
			int32		oj = on->aux ? lfg_vocab_find(old->vocab_job, jobs->str[j], jobs->len[j]) : -1;

			dmap[pos++] = oj >= 0 ? 1 + on->n_genders + oj : -1;
		}
	}
	if (o->input == LFG_INPUT_CENTERED)
		dmap[pos++] = on->input == LFG_INPUT_CENTERED ? on->gen.n_dense - 1 : -1;
	Assert(pos == n);
	ws->w.net = on;
	ws->w.dense_map = dmap;
	ws->generator = true;
}

/*
 * Record the range of the training users' ages in the metrics object (lfg
 * models with demographics): serving can tell an age outside it
 * (lfg.unknown_demographics) and lfg_model_info lists it.
 */
static void
AgeRangeMetrics(StringInfo metrics, const LfgUsers *u)
{
	float		lo = INFINITY,
				hi = -INFINITY;

	for (int32 j = 0; u->age != NULL && j < u->n_users; j++)
		if (!isnan(u->age[j]))
		{
			lo = Min(lo, u->age[j]);
			hi = Max(hi, u->age[j]);
		}
	if (lo > hi)
		return;
	LfgJsonReopen(metrics);
	appendStringInfo(metrics, ", \"age_min\": %.9g, \"age_max\": %.9g}", lo, hi);
}

/* Record the warm start in the metrics object */
static void
WarmMetrics(StringInfo metrics, const WarmSetup *ws)
{
	if (ws == NULL)
		return;
	LfgJsonReopen(metrics);
	appendStringInfoString(metrics, ", \"warm_start\": ");
	escape_json(metrics, ws->from->name);
	appendStringInfo(metrics, ", \"warm_start_version\": %d, \"warm_users\": %d, \"warm_items\": %d"
					 ", \"warm_generator\": %s}", ws->from->version, ws->users_known, ws->items_known,
					 ws->generator ? "true" : "false");
}

/* Whether any user has an age */
static bool
AnyAge(const LfgUsers *u)
{
	for (int32 j = 0; u->age != NULL && j < u->n_users; j++)
		if (!isnan(u->age[j]))
			return true;
	return false;
}

/* A float of the metrics: null when NaN or infinite */
static void
AppendMetricFloat(StringInfo buf, const char *key, float v)
{
	if (isfinite(v))
		appendStringInfo(buf, "\"%s\": %.6g", key, v);
	else
		appendStringInfo(buf, "\"%s\": null", key);
}

/*
 * Record the learned fold-in in the metrics object: per bucket of n, the
 * choice (reg null: infinite, the prior alone; side "base": its ratings
 * predicted by the BiasSVD of FBAS, "blend": the mean of the model's and
 * that BiasSVD's predictions) and the RMSEs of the held-out episodes
 */
static void
FoldinMetrics(StringInfo metrics, const LfgFoldinTable *t)
{
	if (t == NULL)
		return;
	LfgJsonReopen(metrics);
	appendStringInfoString(metrics, ", \"foldin\": [");
	for (int b = 0; b < LFG_FOLDIN_BUCKETS; b++)
	{
		const LfgFoldinEntry *e = &t->e[b];
		const struct
		{
			const char *key;
			float		value;
		}			fields[] = {
			{"prior", e->prior}, {"center", e->center}, {"base", e->base}, {"reg", e->reg},
			{"rmse", e->rmse},
			{"foldin_rmse", e->rmse_foldin}, {"generator_rmse", e->rmse_generator},
			{"refine_rmse", e->rmse_refine}, {"mean_rmse", e->rmse_mean},
			{"biassvd_rmse", e->rmse_biassvd}
		};

		appendStringInfo(metrics, "%s{\"n_min\": %d", b > 0 ? ", " : "", lfg_foldin_bucket_min(b));
		for (int j = 0; j < (int) lengthof(fields); j++)
		{
			appendStringInfoString(metrics, ", ");
			AppendMetricFloat(metrics, fields[j].key, fields[j].value);
		}
		appendStringInfo(metrics, ", \"side\": \"%s\", \"ratings\": %u, \"users\": %u}",
						 e->side == LFG_FOLDIN_SIDE_BASE ? "base" :
						 e->side == LFG_FOLDIN_SIDE_BLEND ? "blend" : "model", e->targets,
						 e->episodes);
	}
	appendStringInfoString(metrics, "]}");
}

/* Train an LFG model on d; fill m and the metrics */
static void
TrainNet(const FitState *s, const DenseData *d, LfgFitOptions *opts, LfgModel *m,
		 StringInfo metrics, TrainBudget *budget, WarmSetup *warm)
{
	LfgAllocator alloc = {BudgetAlloc, BudgetFree, budget};
	LfgNetCallbacks cb = {ReportNetEpoch, LfgCheckInterrupts, &opts->net, ReportPretrainEpoch,
	LfgInterruptsPending};
	LfgUsers	users = {d->r.n_users, NULL, NULL, NULL, 0, 0};
	LfgVocab	genders = {0},
				jobs = {0};
	LfgNetStats st;
	LfgError	err;

	if (s->demo != NULL)
		LfgUserMapBuild(s->demo, d->user_ids, d->r.n_users, &users, &genders, &jobs);
	/* the options record what was used: no demographics in any row, no aux */
	if (s->demo == NULL || (genders.n == 0 && jobs.n == 0 && !AnyAge(&users)))
		opts->net.aux = false;
	if (warm != NULL)
	{
		PrepareWarmGenerator(warm, &opts->net, &genders, &jobs);
		opts->net.warm = &warm->w;
	}
	if (lfg_net_train(&d->r, &users, &opts->net, &cb, &alloc, &m->mf, &m->net, &st, &err) != LFG_OK)
		RaiseTrainError(budget, &err);
	opts->net.weight_decay = st.weight_decay;	/* store "auto" as the value used */
	opts->net.dropout = st.dropout;
	if (!opts->net.aux)
		genders.n = jobs.n = 0; /* demographics unused: empty vocabularies */
	m->vocab_gender = VocabTable(&genders, &m->vocab_gender_len);
	m->vocab_job = VocabTable(&jobs, &m->vocab_job_len);
	appendStringInfo(metrics,
					 "{\"rows\": " INT64_FORMAT ", \"rows_skipped\": " INT64_FORMAT
					 ", \"users\": %d, \"items\": %d, \"train_rmse\": %.6f"
					 ", \"val_rmse\": %.6f, \"best_epoch\": %d, \"epochs_run\": %d"
					 ", \"genders\": %d, \"jobs\": %d}",
					 s->n, s->skipped, d->r.n_users, d->r.n_items, st.train_rmse,
					 isnan(st.best_val_rmse) ? -1.0 : st.best_val_rmse, st.best_epoch,
					 st.epochs_run, genders.n, jobs.n);
	if (opts->net.aux)
		AgeRangeMetrics(metrics, &users);
	WarmMetrics(metrics, warm);
	FoldinMetrics(metrics, m->net.foldin);
	/* the users half of whose ratings were held out for its episodes (foldin_users) */
	if (st.foldin_users > 0)
	{
		LfgJsonReopen(metrics);
		appendStringInfo(metrics, ", \"foldin_users\": %d}", st.foldin_users);
	}
	/* timings vary: reported, not stored in the deterministic bytes */
	ereport(opts->net.verbose ? NOTICE : DEBUG1,
			(errmsg("lfg_fit: %.3f s per epoch, %.3f GFLOP per epoch (%.2f GFLOP/s), pretraining %.2f s, learned fold-in %.2f s, stored users %.2f s (%d kept as generated), ranking stage %.2f s",
					st.seconds_per_epoch, st.flops_per_epoch / 1e9,
					st.flops_per_epoch / 1e9 / Max(st.seconds_per_epoch, 1e-9),
					st.pretrain_seconds, st.foldin_seconds, st.store_seconds, st.store_kept,
					st.rank_seconds)));
	RememberEpochs(st.seconds_per_epoch, st.flops_per_epoch);
}

/*
 * Train an SVD or BiasSVD model on the compacted state s (its rows are
 * reordered), d its sizes and ids; fill m and the metrics
 */
static void
TrainMf(FitState *s, const DenseData *d, LfgFitOptions *opts, LfgModel *m,
		StringInfo metrics, TrainBudget *budget, WarmSetup *warm)
{
	LfgAllocator alloc = {BudgetAlloc, BudgetFree, budget};
	MfHistory	h = {&opts->mf, 0.0, 0.0};
	LfgCallbacks cb = {ReportMfEpoch, LfgCheckInterrupts, &h};
	LfgError	err;
	double		rmse;
	int			g = lfg_mf_grid(d->r.n, d->r.n_users, d->r.n_items, opts->mf.factors);

	if (warm != NULL)
		opts->mf.warm = &warm->w;
	initStringInfo(&h.rmse);
	initStringInfo(&h.seconds);
	ereport(opts->mf.verbose ? NOTICE : DEBUG1,
			(errmsg("lfg_fit: training %s on a grid of %d x %d blocks with %d threads",
					lfg_kind_name(opts->mf.kind), g, g, Min(opts->mf.parallel, g))));
	h.last = lfg_clock_seconds();
	Assert(s->compact);
	if (lfg_mf_train_rows((LfgRating *) s->user, (size_t) s->n, d->r.n_users, d->r.n_items,
						  &opts->mf, &cb, &alloc, &m->mf, &rmse, &err) != LFG_OK)
		RaiseTrainError(budget, &err);
	appendStringInfoChar(&h.rmse, ']');
	appendStringInfoChar(&h.seconds, ']');
	/* no timing in the bytes: the same data and seed give the same bytes */
	appendStringInfo(metrics,
					 "{\"rows\": " INT64_FORMAT ", \"rows_skipped\": " INT64_FORMAT
					 ", \"users\": %d, \"items\": %d, \"train_rmse\": %.6f"
					 ", \"epoch_train_rmse\": %s}",
					 s->n, s->skipped, d->r.n_users, d->r.n_items, rmse, h.rmse.data);
	WarmMetrics(metrics, warm);
	RememberEpochs(h.total / opts->mf.epochs, NAN);
	RememberEpochSeconds(h.seconds.data);
}

/*
 * Train an EASE model on d; fill m and the metrics. The items x items
 * matrix is refused up front when it alone would cross
 * lfg.train_memory_limit or could not be stored in a bytea.
 */
static void
TrainEase(const FitState *s, const DenseData *d, LfgFitOptions *opts, LfgModel *m,
		  StringInfo metrics, TrainBudget *budget)
{
	LfgAllocator alloc = {BudgetAlloc, BudgetFree, budget};
	LfgCallbacks cb = {NULL, LfgCheckInterrupts, NULL};
	Size		bytes = lfg_ease_matrix_bytes(d->r.n_items);
	LfgError	err;
	double		t0 = lfg_clock_seconds();

	if (bytes == 0 || bytes > MaxAllocSize - VARHDRSZ ||
		BudgetUsed(budget) + bytes > LimitBytes())
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("an EASE model of %d items needs %zu MB for its items x items matrix, more than %s",
						d->r.n_items, bytes / (1024 * 1024) + 1,
						bytes > MaxAllocSize - VARHDRSZ ? "a model can store (1 GB)" :
						"lfg.train_memory_limit allows"),
				 errdetail("EASE keeps n_items^2 floats; lfg.train_memory_limit is %d MB and %zu MB are already in use.",
						   lfg_train_memory_limit, BudgetUsed(budget) / (1024 * 1024)),
				 errhint("Raise lfg.train_memory_limit, or train on fewer items (at most about 16,000 fit in a model).")));
	if (lfg_ease_train(&d->r, opts->ease_lambda, &cb, &alloc, &m->ease, &err) != LFG_OK)
		RaiseTrainError(budget, &err);
	m->mf = (LfgMfParams) {LFG_KIND_EASE, d->r.n_users, d->r.n_items, 0, 0.0f,
		d->r.rating[0], d->r.rating[0], NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
	{
		double		sum = 0.0;

		for (size_t j = 0; j < d->r.n; j++)
		{
			sum += d->r.rating[j];
			m->mf.rating_min = Min(m->mf.rating_min, d->r.rating[j]);
			m->mf.rating_max = Max(m->mf.rating_max, d->r.rating[j]);
		}
		m->mf.mu = (float) (sum / (double) d->r.n);
	}
	appendStringInfo(metrics,
					 "{\"rows\": " INT64_FORMAT ", \"rows_skipped\": " INT64_FORMAT
					 ", \"users\": %d, \"items\": %d, \"pairs\": " UINT64_FORMAT "}",
					 s->n, s->skipped, d->r.n_users, d->r.n_items, (uint64) m->ease.n_rated);
	ereport(opts->ease_verbose ? NOTICE : DEBUG1,
			(errmsg("lfg_fit: EASE of %d items solved in %.2f s", d->r.n_items,
					lfg_clock_seconds() - t0)));
}

/* Whether the options ask for NOTICEs */
static bool
FitVerbose(const LfgFitOptions *opts)
{
	return opts->kind == LFG_KIND_LFG ? opts->net.verbose :
		opts->kind == LFG_KIND_EASE ? opts->ease_verbose : opts->mf.verbose;
}

PG_FUNCTION_INFO_V1(lfg_fit_final);
/* lfg_fit final: train and return the model bytes */
Datum
lfg_fit_final(PG_FUNCTION_ARGS)
{
	FitState   *s = PG_ARGISNULL(0) ? NULL : (FitState *) PG_GETARG_POINTER(0);
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext train;
	LfgFitOptions opts;
	DenseData	d;
	LfgModel	m;
	LfgError	err;
	double		t0 = lfg_clock_seconds();
	size_t		size;
	bytea	   *result;
	StringInfoData metrics;
	TrainBudget budget;
	WarmSetup	warm;
	bool		compact;
	Size		index_bytes;

	RememberEpochs(NAN, NAN);	/* nothing left from an earlier failed fit */
	if (s == NULL || s->n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("no ratings to train on"),
				 errdetail(INT64_FORMAT " rows had a NULL user, item or rating.",
						   s ? s->skipped : 0),
				 errhint("Check that the query passed to lfg_fit returns rows.")));
	LfgParseOptions(s->options, s->demo ? LFG_KIND_LFG : LFG_KIND_BIASSVD, &opts);

	train = AllocSetContextCreate(caller, "lfg training", ALLOCSET_DEFAULT_SIZES);
	budget = (TrainBudget) {train, StateBytes(s), 0, false};
	compact = opts.kind == LFG_KIND_SVD || opts.kind == LFG_KIND_BIASSVD;
	/* at most a sorted copy of the ids (compacting), or Densify's arrays */
	index_bytes = (Size) s->n * (compact ? sizeof(int64) : DENSE_BYTES_PER_ROW);
	if (!s->compact && BudgetUsed(&budget) + index_bytes > LimitBytes())
		BudgetError(BudgetUsed(&budget) + index_bytes, BUDGET_INDEX);
	MemoryContextSwitchTo(train);
	LfgProgressUpdate("indexing the ratings", s->n, 0, 0, NAN, NAN);
	ereport(FitVerbose(&opts) ? NOTICE : DEBUG1,
			(errmsg("lfg_fit: collected " INT64_FORMAT " ratings (" INT64_FORMAT " rows skipped)",
					s->n, s->skipped)));
	if (compact)
	{
		CompactState(s, &budget);
		d.r = (LfgRatings) {(size_t) s->n, s->nu, s->ni, NULL, NULL, NULL};
		d.user_ids = s->uids;
		d.item_ids = s->iids;
	}
	else
	{
		ExpandState(s);
		Densify(s, &d);
	}
	budget.peak = Max(budget.peak, BudgetUsed(&budget));
	ereport(FitVerbose(&opts) ? NOTICE : DEBUG1,
			(errmsg("lfg_fit: indexed %zu ratings of %d users and %d items in %.2f s",
					d.r.n, d.r.n_users, d.r.n_items, lfg_clock_seconds() - t0)));
	if (opts.warm_model != NULL)
		PrepareWarm(&opts, &d, &warm);
	memset(&m, 0, sizeof(m));
	initStringInfo(&metrics);
	if (opts.kind == LFG_KIND_LFG)
		TrainNet(s, &d, &opts, &m, &metrics, &budget, opts.warm_model ? &warm : NULL);
	else if (opts.kind == LFG_KIND_EASE)
		TrainEase(s, &d, &opts, &m, &metrics, &budget);
	else
		TrainMf(s, &d, &opts, &m, &metrics, &budget, opts.warm_model ? &warm : NULL);
	budget.peak = Max(budget.peak, BudgetUsed(&budget));
	m.user_ids = d.user_ids;
	m.item_ids = d.item_ids;
	m.options_json = LfgOptionsJson(&opts);
	m.options_len = strlen(m.options_json);
	m.metrics_json = metrics.data;
	m.metrics_len = metrics.len;
	LfgProgressUpdate("writing the model", -1, 0, 0, NAN, NAN);
	if (lfg_model_encoded_size(&m, &size, &err) != LFG_OK)
		LfgRaise(&err);
	if (size > MaxAllocSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model of %zu bytes is too large to store", size),
				 errdetail("A bytea value holds at most 1 GB."),
				 errhint("Use fewer factors or smaller hidden layers.")));
	result = MemoryContextAlloc(caller, size + VARHDRSZ);
	SET_VARSIZE(result, size + VARHDRSZ);
	if (lfg_model_encode(&m, LfgCrc32c, (uint8_t *) VARDATA(result), size, &err) != LFG_OK)
		LfgRaise(&err);
	MemoryContextSwitchTo(caller);
	MemoryContextDelete(train);
	RememberFit(result, lfg_clock_seconds() - t0, budget.peak);
	PG_RETURN_BYTEA_P(result);
}
