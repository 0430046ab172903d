/*
 * lfg_store.c
 *	  The model table lfg.models and the backend's cache of decoded models.
 *
 * Decoding a model means a detoast, a CRC over every byte and a bounds
 * check of every section, so each backend keeps the models it has used,
 * decoded, in CacheMemoryContext. A statement-level trigger on lfg.models
 * sends a relcache invalidation for the table on every INSERT, UPDATE,
 * DELETE and TRUNCATE; it reaches every backend when the writing
 * transaction commits (and the writer itself at its next command), and our
 * relcache callback then drops the cache. So a new model is used by the
 * first transaction that starts after the commit, while lookups between
 * changes cost no query at all.
 */
#include "postgres.h"

#include <limits.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "storage/proc.h"

#include "lfg.h"

#if PG_VERSION_NUM >= 170000
#define CurrentLxid() (MyProc->vxid.lxid)
#else
#define CurrentLxid() (MyProc->lxid)
#endif

typedef struct CacheEntry
{
	LfgCachedModel pub;
	bool		latest;			/* resolved by name alone: the active version */
	bool		provisional;	/* valid only in the transaction that loaded it */
	LocalTransactionId lxid;
	MemoryContext cxt;			/* holds the entry, its name and the bytes */
	struct CacheEntry *next;
} CacheEntry;

static CacheEntry *cache_head = NULL;
static bool cache_stale = false;
static uint64 inval_generation = 0;
static bool callback_registered = false;
static Oid	models_relid = InvalidOid;
static Oid	active_relid = InvalidOid;	/* lfg.active (0.2.0 on); invalid before */

/*
 * Relcache callback: drop the cache when lfg.models or lfg.active (or
 * everything) changes
 */
static void
InvalidateCallback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == models_relid || relid == active_relid)
	{
		cache_stale = true;
		inval_generation++;
		models_relid = InvalidOid;
	}
}

/* Unlink the entry *link points to and free it */
static void
DropEntry(CacheEntry **link)
{
	CacheEntry *e = *link;

	*link = e->next;
	MemoryContextDelete(e->cxt);
}

/*
 * Free every cached model if an invalidation arrived, and the provisional
 * entries of earlier transactions.
 */
static void
FlushIfStale(void)
{
	CacheEntry **link = &cache_head;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(InvalidateCallback, (Datum) 0);
		callback_registered = true;
	}
	if (!OidIsValid(models_relid))
	{
		Oid			nsp = get_namespace_oid("lfg", true);

		models_relid = OidIsValid(nsp) ? get_relname_relid("models", nsp) : InvalidOid;
		active_relid = OidIsValid(nsp) ? get_relname_relid("active", nsp) : InvalidOid;
	}
	while (*link != NULL)
	{
		CacheEntry *e = *link;

		if (cache_stale || (e->provisional && e->lxid != CurrentLxid()))
			DropEntry(link);
		else
			link = &e->next;
	}
	cache_stale = false;
}

/* Raise an error when lfg.models is missing (FlushIfStale looks it up) */
static void
CheckModelsTable(void)
{
	if (!OidIsValid(models_relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table lfg.models does not exist"),
				 errhint("Run CREATE EXTENSION lfg.")));
}

/* Decode bytes (copied to an aligned buffer in cxt) or raise the codec's error */
static void
DecodeInto(bytea *b, MemoryContext cxt, LfgModel *m)
{
	size_t		len = VARSIZE_ANY_EXHDR(b);
	uint8_t    *buf = MemoryContextAllocExtended(cxt, Max(len, 1), MCXT_ALLOC_HUGE);
	LfgError	err;

	memcpy(buf, VARDATA_ANY(b), len);
	if (lfg_model_decode(buf, len, LfgCrc32c, m, &err) != LFG_OK)
		LfgRaise(&err);
}

/* The direct index of ids where they are dense enough, else binary search */
static void
IdIndex(MemoryContext cxt, const int64 *ids, int32 n, LfgIdIndex *ix)
{
	size_t		nslots = lfg_id_index_slots(ids, n);

	lfg_id_index_init(ids, n, nslots > 0 ? MemoryContextAllocHuge(cxt, sizeof(int32) * nslots) : NULL,
					  nslots, ix);
}

/*
 * Read (version, model) of name from lfg.models; version 0 means the active
 * version: the one lfg.active names, else the newest (the only rule before
 * 0.2.0, which has no lfg.active).
 */
static CacheEntry *
LoadEntry(const char *name, int32 version)
{
	static const char *q_active =
		"SELECT m.version, m.model FROM lfg.models AS m WHERE m.name = $1 AND m.version = "
		"coalesce((SELECT a.version FROM lfg.active AS a WHERE a.name = $1), "
		"(SELECT max(n.version) FROM lfg.models AS n WHERE n.name = $1))";
	static const char *q_latest =
		"SELECT version, model FROM lfg.models WHERE name = $1 ORDER BY version DESC LIMIT 1";
	static const char *q_version =
		"SELECT version, model FROM lfg.models WHERE name = $1 AND version = $2";
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		vals[2];
	MemoryContext cxt;
	CacheEntry *e;
	bool		isnull;
	int			rc;
	uint64		generation;

	CheckModelsTable();
	cxt = AllocSetContextCreate(CurrentMemoryContext, "lfg cached model", ALLOCSET_DEFAULT_SIZES);
	e = MemoryContextAllocZero(cxt, sizeof(CacheEntry));
	e->cxt = cxt;
	e->latest = version == 0;
	e->pub.name = MemoryContextStrdup(cxt, name);
	e->pub.cxt = cxt;
	/* pg_backend_memory_contexts shows each cached model by name */
	MemoryContextSetIdentifier(cxt, e->pub.name);

	vals[0] = CStringGetTextDatum(name);
	vals[1] = Int32GetDatum(version);
	generation = inval_generation;
	SPI_connect();
	rc = SPI_execute_with_args(version != 0 ? q_version : OidIsValid(active_relid) ? q_active : q_latest,
							   version == 0 ? 1 : 2,
							   types, vals, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %d", rc);
	if (SPI_processed == 0)
	{
		if (version == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("model \"%s\" does not exist", name),
					 errhint("List the trained models with SELECT name, version FROM lfg.models.")));
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("version %d of model \"%s\" does not exist", version, name),
				 errhint("List the trained models with SELECT name, version FROM lfg.models.")));
	}
	e->pub.version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 1, &isnull));
	/* detoast in SPI's memory; only the aligned copy is kept in cxt */
	DecodeInto(DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 2, &isnull)),
			   cxt, &e->pub.model);
	SPI_finish();
	IdIndex(cxt, e->pub.model.user_ids, e->pub.model.mf.n_users, &e->pub.users);
	IdIndex(cxt, e->pub.model.item_ids, e->pub.model.mf.n_items, &e->pub.items);

	/*
	 * A load whose snapshot may predate a commit it was told about (an
	 * invalidation arrived while loading) or that reads through a
	 * transaction snapshot (REPEATABLE READ, SERIALIZABLE) may have read an
	 * older version than the newest committed one: it serves this
	 * transaction only.
	 */
	e->provisional = generation != inval_generation || IsolationUsesXactSnapshot();
	e->lxid = CurrentLxid();
	/* apply an invalidation that arrived during the load now, not to this entry */
	FlushIfStale();
	/* only a fully decoded model joins the cache */
	MemoryContextSetParent(cxt, CacheMemoryContext);
	e->next = cache_head;
	cache_head = e;
	return e;
}

/*
 * Keep the cache within lfg.cache_size_limit: drop the least recently used
 * entries other than keep; if keep alone is larger, drop it (only it) and
 * raise an error. Entries are only ever dropped here or on invalidation, never
 * while a caller holds them (each call uses one entry, obtained last).
 */
static CacheEntry *
EnforceCacheLimit(CacheEntry *keep)
{
	Size		limit = (Size) lfg_cache_size_limit * 1024 * 1024;
	Size		mine = MemoryContextMemAllocated(keep->cxt, true);

	for (;;)
	{
		Size		total = 0;
		CacheEntry **lru = NULL,
				  **mine_link = NULL;

		for (CacheEntry **link = &cache_head; *link != NULL; link = &(*link)->next)
		{
			total += MemoryContextMemAllocated((*link)->cxt, true);
			if (*link != keep)
				lru = link;
			else
				mine_link = link;
		}
		if (mine > limit)
		{
			char	   *name = pstrdup(keep->pub.name);
			int32		version = keep->pub.version;

			Assert(mine_link != NULL);	/* keep is always in the list */
			DropEntry(mine_link);
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("version %d of model \"%s\" needs %zu MB in the backend's cache, more than lfg.cache_size_limit (%d MB)",
							version, name, (mine + 1024 * 1024 - 1) / (1024 * 1024), lfg_cache_size_limit),
					 errhint("Raise lfg.cache_size_limit, e.g. ALTER SYSTEM SET lfg.cache_size_limit = '%dMB'.",
							 (int) Min((mine / (1024 * 1024) + 1) * 2, INT_MAX))));
		}
		if (total <= limit || lru == NULL)
			return keep;
		DropEntry(lru);
	}
}

/*
 * The decoded model name (version 0: the newest), from the cache or loaded.
 * The result stays valid until the next call.
 */
LfgCachedModel *
LfgGetModel(text *name, int32 version)
{
	const char *n = VARDATA_ANY(name);
	int			len = VARSIZE_ANY_EXHDR(name);
	char	   *cname;

	FlushIfStale();
	for (CacheEntry **link = &cache_head; *link != NULL; link = &(*link)->next)
	{
		CacheEntry *e = *link;

		if ((version == 0 ? e->latest : (!e->latest && e->pub.version == version)) &&
			strncmp(e->pub.name, n, len) == 0 && e->pub.name[len] == '\0')
		{
			/* most recently used first: eviction takes from the tail */
			*link = e->next;
			e->next = cache_head;
			cache_head = e;
			return &e->pub;
		}
	}
	cname = text_to_cstring(name);
	return &EnforceCacheLimit(LoadEntry(cname, version))->pub;
}

/*
 * Serving buffers of a cached model with room for n_ratings input ratings:
 * allocated in the entry's memory on first use and grown when needed, so a
 * call allocates nothing proportional to the model.
 */
LfgServeScratch *
LfgServeBuffers(LfgCachedModel *c, int32 n_ratings)
{
	LfgAllocator alloc;
	LfgError	err;

	if (c->topk.scores == NULL)
	{
		const LfgMfParams *mf = &c->model.mf;
		Size		n = Max(mf->n_items, 1);
		LfgPanelFormat format = lfg_score_panels_best(mf);
		Size		np = lfg_score_panels_size(mf, format);

		c->x = MemoryContextAlloc(c->cxt, sizeof(float) * ((Size) mf->k + 1));
		c->topk.heap = MemoryContextAllocHuge(c->cxt, sizeof(int32) * n);
		c->topk.cand = MemoryContextAllocHuge(c->cxt, sizeof(int32) * n);
		c->topk.cand_scores = MemoryContextAllocHuge(c->cxt, sizeof(float) * n);
		c->topk.upper = MemoryContextAllocHuge(c->cxt, sizeof(float) * n);
		c->top_items = MemoryContextAllocHuge(c->cxt, sizeof(int32) * n);
		c->top_scores = MemoryContextAllocHuge(c->cxt, sizeof(float) * n);
		if (np > 0 && mf->kind != LFG_KIND_EASE)
		{
			/* on a cache line: the kernels read whole lines (palloc aligns to 8) */
			c->panels = (void *) TYPEALIGN(PG_CACHE_LINE_SIZE,
										   MemoryContextAllocHuge(c->cxt, np + PG_CACHE_LINE_SIZE));
			lfg_score_panels_fill(mf, format, c->panels);
		}
		if (mf->kind != LFG_KIND_EASE)	/* EASE has no Q to score with */
			lfg_scorer_init(mf, format, c->panels, &c->scorer);
		/* last: it marks the buffers as ready */
		c->topk.scores = MemoryContextAllocHuge(c->cxt, sizeof(float) * n);
		/* the buffers count toward the cache's limit (c is the first member) */
		EnforceCacheLimit((CacheEntry *) c);
	}
	if (!c->has_scratch || c->scratch.cap < n_ratings)
	{
		int32		cap = Max(n_ratings, 64);

		if (c->has_scratch && cap < c->scratch.cap * 2)
			cap = Min(c->scratch.cap * 2, LFG_MAX_RATINGS);
		/* the scratch has a context of its own: a larger one replaces it */
		c->has_scratch = false;
		if (c->scratch_cxt != NULL)
			MemoryContextDelete(c->scratch_cxt);
		c->scratch_cxt = AllocSetContextCreate(c->cxt, "lfg serving scratch",
											   ALLOCSET_SMALL_SIZES);
		alloc = LfgPallocAllocator(c->scratch_cxt);
		if (lfg_serve_scratch_alloc(&c->model, cap, &alloc, &c->scratch, &err) != LFG_OK)
			LfgRaise(&err);
		c->has_scratch = true;
	}
	return &c->scratch;
}

/*
 * The default model's name: the lfg.model setting, or the only name in
 * lfg.models. Looked up again after every change to lfg.models.
 */
text *
LfgDefaultModel(void)
{
	static text *resolved = NULL;
	static uint64 resolved_generation = 0;
	int64		count;
	bool		isnull;
	Datum		name;

	uint64		generation;
	bool		keep;

	if (lfg_default_model != NULL && lfg_default_model[0] != '\0')
		return cstring_to_text(lfg_default_model);
	FlushIfStale();
	if (resolved != NULL && resolved_generation == inval_generation && !IsolationUsesXactSnapshot())
		return resolved;
	generation = inval_generation;
	CheckModelsTable();
	SPI_connect();
	if (SPI_execute("SELECT count(DISTINCT name), min(name) FROM lfg.models", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed");
	count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	name = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (count != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg(count == 0 ? "no model to recommend with" : "no default model"),
				 errdetail("lfg.models holds " INT64_FORMAT " model names and lfg.model is not set.", count),
				 errhint(count == 0 ? "Train one: INSERT INTO lfg.models (name, model) SELECT 'm', lfg_fit(...) FROM ratings." :
						 "SET lfg.model = 'name', or pass the model name as the first argument.")));
	/*
	 * Remember the answer only when it was read with a fresh snapshot and no
	 * change arrived meanwhile (as for provisional cache entries).
	 */
	keep = generation == inval_generation && !IsolationUsesXactSnapshot();
	if (resolved != NULL)
		pfree(resolved);
	resolved = (text *) MemoryContextAlloc(TopMemoryContext, VARSIZE_ANY(DatumGetPointer(name)));
	memcpy(resolved, DatumGetPointer(name), VARSIZE_ANY(DatumGetPointer(name)));
	resolved_generation = keep ? inval_generation : inval_generation - 1;
	SPI_finish();
	return resolved;
}

/* Predict one rating with a model (see doc/reference.md for the fallbacks) */
static double
PredictIds(const LfgCachedModel *c, int64 user, int64 item)
{
	int32		u = lfg_id_index_find(&c->users, user);
	int32		i = lfg_id_index_find(&c->items, item);

	if (c->model.mf.kind == LFG_KIND_EASE)
		return lfg_ease_predict(&c->model.ease, u, i);
	return lfg_mf_predict(&c->model.mf, u, i);
}

PG_FUNCTION_INFO_V1(lfg_predict);
/* lfg_predict(model_name, user_id, item_id): the newest version */
Datum
lfg_predict(PG_FUNCTION_ARGS)
{
	LfgCachedModel *c = LfgGetModel(PG_GETARG_TEXT_PP(0), 0);

	PG_RETURN_FLOAT8(PredictIds(c, PG_GETARG_INT64(1), PG_GETARG_INT64(2)));
}

PG_FUNCTION_INFO_V1(lfg_predict_version);
/* lfg_predict(model_name, version, user_id, item_id) */
Datum
lfg_predict_version(PG_FUNCTION_ARGS)
{
	int32		version = PG_GETARG_INT32(1);
	LfgCachedModel *c;

	if (version < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model version must be positive"),
				 errhint("Versions are numbered 1, 2, 3... per model name.")));
	c = LfgGetModel(PG_GETARG_TEXT_PP(0), version);
	PG_RETURN_FLOAT8(PredictIds(c, PG_GETARG_INT64(2), PG_GETARG_INT64(3)));
}

/* A JSON text section as jsonb */
static Datum
JsonbFromText(const char *s, uint32 len)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(pnstrdup(s, len)));
}

PG_FUNCTION_INFO_V1(lfg_model_info);
/* lfg_model_info(model bytea): check the bytes and describe the model */
Datum
lfg_model_info(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "lfg model info",
											  ALLOCSET_DEFAULT_SIZES);
	TupleDesc	tupdesc;
	LfgModel	m;
	Datum		values[7];
	bool		nulls[7] = {false};
	HeapTuple	tuple;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	DecodeInto(b, cxt, &m);
	values[0] = CStringGetTextDatum(lfg_kind_name(m.mf.kind));
	values[1] = Int32GetDatum(m.mf.n_users);
	values[2] = Int32GetDatum(m.mf.n_items);
	values[3] = Int32GetDatum(m.mf.k);
	values[4] = Int64GetDatum((int64) VARSIZE_ANY_EXHDR(b));
	values[5] = JsonbFromText(m.options_json, m.options_len);
	values[6] = JsonbFromText(m.metrics_json, m.metrics_len);
	tuple = heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls);
	MemoryContextDelete(cxt);
	PG_RETURN_DATUM(HeapTupleGetDatum(tuple));
}

PG_FUNCTION_INFO_V1(lfg_models_invalidate);
/* Statement trigger on lfg.models: make every backend drop its cache */
Datum
lfg_models_invalidate(PG_FUNCTION_ARGS)
{
	TriggerData *trig = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "lfg_models_invalidate must be called as a trigger");
	CacheInvalidateRelcache(trig->tg_relation);
	return PointerGetDatum(NULL);
}
