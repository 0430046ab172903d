/*
 * lfg_shmem.c
 *	  One decoded copy of each model for all backends, in shared memory.
 *
 * With shared_preload_libraries = 'lfg', decoded models live in a dynamic
 * shared memory area (DSA) that every backend maps: a model version is read,
 * checked (CRC, bounds) and laid out for serving (id indexes, scoring panels)
 * once, by the first backend that needs it, and then used in place by all.
 * A backend keeps only its small per-call buffers. Without preloading, the
 * backend-local cache of lfg_store.c is used as before.
 *
 * The shared state is a fixed table of slots under one LWLock. A slot holds a
 * key (database, name, version, and the lfg.models row's xmin, with the
 * length and stored CRC of its bytes) and two DSA chunks: the model bytes,
 * and the serving structures built from them. The key is read without
 * reading the bytes, and tells an UPDATE of a version's bytes (a new row
 * version) from the bytes already shared.
 * Which version a backend serves is still decided by lfg_store.c (snapshots,
 * invalidations, privileges); this file only shares the decoded bytes.
 *
 * Slot states: FREE, LOADING (one backend reads and builds it; others wait
 * on the condition variable), READY (shared, reference counted). A failed
 * load (ERROR, cancel) frees its chunks and its slot through a memory context
 * callback; a backend that crashes makes the postmaster reinitialise shared
 * memory, so a half-built model is never visible. Each backend's references
 * are dropped when its cache entry is freed (a memory context callback) or
 * when it exits (before_shmem_exit). A READY slot nobody references is freed
 * when a newer version of the same model (or a newer row of the same version)
 * is loaded, and otherwise when space
 * is needed (least recently used first) under lfg.shared_cache_size.
 *
 * The LWLock is held only to read or change the slot table, never across an
 * allocation or anything that can raise an error.
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/acl.h"
#include "utils/timestamp.h"
#include "catalog/pg_authid.h"
#include "utils/builtins.h"
#include "storage/dsm.h"
#include "utils/dsa.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "lfg.h"
#include "lfg_shmem.h"

#ifndef DSA_HANDLE_INVALID		/* PostgreSQL 17 on */
#define DSA_HANDLE_INVALID ((dsa_handle) DSM_HANDLE_INVALID)
#endif

#define SHARED_SLOTS 128
#define NAME_MAX_LEN 200		/* lfg.models names: 1 to 200 characters */

typedef enum SlotState
{
	SLOT_FREE = 0,
	SLOT_LOADING,
	SLOT_READY
} SlotState;

typedef struct SharedSlot
{
	SlotState	state;
	Oid			dbid;
	int32		version;
	TransactionId xmin;
	int32		length;
	uint32		crc;
	char		name[NAME_MAX_LEN + 1];
	dsa_pointer bytes;			/* the model bytes (8-byte aligned) */
	dsa_pointer serving;		/* ServingLayout and what it points to */
	Size		size;			/* bytes of both chunks */
	int32		refcount;		/* references held by backends */
	uint64		last_used;		/* shared clock at the last use */
	TimestampTz loaded_at;		/* when it became READY */
	int			loader_pid;
} SharedSlot;

typedef struct SharedState
{
	LWLock	   *lock;
	int			dsa_tranche;
	dsa_handle	handle;			/* DSA_HANDLE_INVALID until first use */
	ConditionVariable loaded;	/* a slot left the LOADING state */
	uint64		clock;
	SharedSlot	slots[SHARED_SLOTS];
} SharedState;

/* The progress of one lfg_fit (lfg_progress) */
#define PROGRESS_SLOTS 256
typedef struct ProgressSlot
{
	slock_t		mutex;
	int			pid;			/* 0: free */
	Oid			dbid;
	Oid			userid;
	TimestampTz started;
	TimestampTz updated;
	TimestampTz phase_started;	/* when phase last changed */
	int32		phase_step;		/* the step reported then */
	char		phase[64];
	int64		rows;
	int32		step;
	int32		steps;
	double		train_rmse;
	double		val_rmse;
} ProgressSlot;

/*
 * What a backend needs to use a model in place, at the start of the serving
 * chunk; offsets are from the chunk's start (addresses differ per backend).
 */
typedef struct ServingLayout
{
	Size		nbytes;
	int64		users_base;
	uint64		users_span;
	Size		users_off;
	int64		items_base;
	uint64		items_span;
	Size		items_off;
	Size		panels_off;		/* 0: no panels */
	LfgScorer	scorer;			/* its panels pointer is set per backend */
} ServingLayout;

int			lfg_shared_cache_size = 1024;	/* MB */
static bool shared_enabled = false;
static SharedState *shared = NULL;
static ProgressSlot *progress = NULL;
static int	my_progress = -1;		/* this backend's progress slot */
static dsa_area *area = NULL;
static int32 my_refs[SHARED_SLOTS];
static bool exit_registered = false;
#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Ask for the shared state (shmem_request_hook on 15+, _PG_init before) */
static void
SharedRequest(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(add_size(MAXALIGN(sizeof(SharedState)),
									mul_size(PROGRESS_SLOTS, sizeof(ProgressSlot))));
	RequestNamedLWLockTranche("lfg", 1);
}

/* Create or find the shared state */
static void
SharedStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	progress = ShmemInitStruct("lfg training progress", mul_size(PROGRESS_SLOTS, sizeof(ProgressSlot)),
							   &found);
	if (!found)
	{
		memset(progress, 0, mul_size(PROGRESS_SLOTS, sizeof(ProgressSlot)));
		for (int j = 0; j < PROGRESS_SLOTS; j++)
			SpinLockInit(&progress[j].mutex);
	}
	shared = ShmemInitStruct("lfg shared models", sizeof(SharedState), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(SharedState));
		shared->lock = &(GetNamedLWLockTranche("lfg"))->lock;
		shared->dsa_tranche = LWLockNewTrancheId();
		shared->handle = DSA_HANDLE_INVALID;
		ConditionVariableInit(&shared->loaded);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Called by _PG_init under shared_preload_libraries */
void
LfgSharedInit(void)
{
	DefineCustomIntVariable("lfg.shared_cache_size",
							"Shared memory for decoded models when lfg is in shared_preload_libraries.",
							"Models nobody uses are dropped, least recently used first, to stay "
							"within it; a model that alone needs more is refused with an error.",
							&lfg_shared_cache_size, 1024, 1, INT_MAX / 2, PGC_POSTMASTER, GUC_UNIT_MB,
							NULL, NULL, NULL);
	shared_enabled = true;
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = SharedRequest;
#else
	SharedRequest();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = SharedStartup;
}

/* Are models shared between backends here? */
bool
LfgSharedEnabled(void)
{
	return shared_enabled && shared != NULL;
}

/* Drop this backend's references at exit */
static void
ReleaseAll(int code, Datum arg)
{
	if (shared == NULL)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (int s = 0; s < SHARED_SLOTS; s++)
	{
		shared->slots[s].refcount -= my_refs[s];
		my_refs[s] = 0;
	}
	LWLockRelease(shared->lock);
}

/* Map the shared area in this backend, creating it on first use */
static void
AttachArea(void)
{
	dsa_handle	h;
	MemoryContext old;

	if (area != NULL)
		return;
	/* the dsa_area lives as long as the backend */
	old = MemoryContextSwitchTo(TopMemoryContext);
	LWLockRegisterTranche(shared->dsa_tranche, "lfg_shared_models");
	LWLockAcquire(shared->lock, LW_SHARED);
	h = shared->handle;
	LWLockRelease(shared->lock);
	if (h == DSA_HANDLE_INVALID)
	{
		/* create one outside the lock; the first to publish its handle wins */
		dsa_area   *mine = dsa_create(shared->dsa_tranche);
		bool		won;

		dsa_set_size_limit(mine, (size_t) lfg_shared_cache_size * 1024 * 1024);
		LWLockAcquire(shared->lock, LW_EXCLUSIVE);
		won = shared->handle == DSA_HANDLE_INVALID;
		if (won)
		{
			dsa_pin(mine);
			shared->handle = dsa_get_handle(mine);
		}
		h = shared->handle;
		LWLockRelease(shared->lock);
		if (won)
			area = mine;
		else
			dsa_detach(mine);
	}
	if (area == NULL)
		area = dsa_attach(h);
	dsa_pin_mapping(area);
	MemoryContextSwitchTo(old);
	if (!exit_registered)
	{
		before_shmem_exit(ReleaseAll, (Datum) 0);
		exit_registered = true;
	}
}

/* Find the slot of a key, or -1 (lock held) */
static int
FindSlot(const LfgSharedKey *key)
{
	for (int s = 0; s < SHARED_SLOTS; s++)
	{
		SharedSlot *sl = &shared->slots[s];

		if (sl->state != SLOT_FREE && sl->dbid == MyDatabaseId && sl->version == key->version &&
			sl->xmin == key->xmin && sl->length == key->length && sl->crc == key->crc &&
			strcmp(sl->name, key->name) == 0)
			return s;
	}
	return -1;
}

/* Free a slot's chunks (those given) and make it FREE (lock held exclusively) */
static void
ClearSlot(SharedSlot *sl, dsa_pointer bytes, dsa_pointer serving)
{
	if (DsaPointerIsValid(bytes))
		dsa_free(area, bytes);
	if (DsaPointerIsValid(serving))
		dsa_free(area, serving);
	memset(sl, 0, sizeof(*sl));
	sl->bytes = InvalidDsaPointer;
	sl->serving = InvalidDsaPointer;
}

/* Free a READY slot nobody references (lock held exclusively) */
static void
FreeSlot(SharedSlot *sl)
{
	Assert(sl->state == SLOT_READY && sl->refcount == 0);
	ClearSlot(sl, sl->bytes, sl->serving);
}

/* Free the least recently used unreferenced slot; false if there is none (lock held) */
static bool
EvictOne(void)
{
	SharedSlot *victim = NULL;

	for (int s = 0; s < SHARED_SLOTS; s++)
	{
		SharedSlot *sl = &shared->slots[s];

		if (sl->state == SLOT_READY && sl->refcount == 0 &&
			(victim == NULL || sl->last_used < victim->last_used))
			victim = sl;
	}
	if (victim == NULL)
		return false;
	FreeSlot(victim);
	return true;
}

/*
 * A FREE slot, after freeing the least recently used unreferenced one if
 * there is none; -1 if every slot is in use (lock held exclusively)
 */
static int
TakeFreeSlot(void)
{
	for (int pass = 0; pass < 2; pass++)
	{
		for (int j = 0; j < SHARED_SLOTS; j++)
			if (shared->slots[j].state == SLOT_FREE)
				return j;
		if (pass == 0 && !EvictOne())
			break;
	}
	return -1;
}

/*
 * Allocate size bytes in the area, dropping unused models to make room; a
 * model larger than what others leave is refused with an error.
 */
static dsa_pointer
AllocShared(Size size, const char *name, int32 version)
{
	for (;;)
	{
		dsa_pointer p = dsa_allocate_extended(area, size, DSA_ALLOC_HUGE | DSA_ALLOC_NO_OOM);
		bool		evicted;

		if (DsaPointerIsValid(p))
			return p;
		LWLockAcquire(shared->lock, LW_EXCLUSIVE);
		evicted = EvictOne();
		LWLockRelease(shared->lock);
		if (!evicted)
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("version %d of model \"%s\" needs %zu MB more of shared memory than lfg.shared_cache_size (%d MB) leaves",
							version, name, (size + 1024 * 1024 - 1) / (1024 * 1024), lfg_shared_cache_size),
					 errdetail("The models in use by other backends cannot be dropped to make room."),
					 errhint("Raise lfg.shared_cache_size (a server restart is needed), or drop unused models.")));
	}
}

/* A load in progress: undone if the loading call fails */
typedef struct LoadGuard
{
	int			slot;
	bool		done;
	dsa_pointer bytes;
	dsa_pointer serving;
	MemoryContextCallback cb;
} LoadGuard;

/* Memory context callback: a failed load frees its chunks and its slot */
static void
UndoLoad(void *arg)
{
	LoadGuard  *g = (LoadGuard *) arg;
	SharedSlot *sl;

	if (g->done)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	sl = &shared->slots[g->slot];
	Assert(sl->state == SLOT_LOADING && sl->loader_pid == MyProcPid);
	/* the chunks are the guard's: the slot gets them only when published */
	ClearSlot(sl, g->bytes, g->serving);
	LWLockRelease(shared->lock);
	ConditionVariableBroadcast(&shared->loaded);
}

/* A reference of this backend's to a slot, dropped with the entry's memory */
typedef struct SlotRef
{
	int			slot;
	MemoryContextCallback cb;
} SlotRef;

/* Memory context callback: drop a reference */
static void
DropRef(void *arg)
{
	SlotRef    *r = (SlotRef *) arg;
	SharedSlot *sl;
	bool		superseded = false;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	sl = &shared->slots[r->slot];
	Assert(my_refs[r->slot] > 0 && sl->refcount > 0);
	sl->refcount--;
	my_refs[r->slot]--;
	/* unused, and a newer version of the model is loaded: free it now */
	if (sl->refcount == 0 && sl->state == SLOT_READY)
		for (int s = 0; s < SHARED_SLOTS && !superseded; s++)
		{
			SharedSlot *o = &shared->slots[s];

			superseded = o->state == SLOT_READY && o->dbid == sl->dbid &&
				o->version > sl->version && strcmp(o->name, sl->name) == 0;
		}
	if (superseded)
		FreeSlot(sl);
	LWLockRelease(shared->lock);
}

/* Lay out the serving structures of a decoded model in a new chunk */
static dsa_pointer
BuildServing(const LfgModel *m, const char *name, int32 version, Size nbytes, Size *size)
{
	const LfgMfParams *mf = &m->mf;
	size_t		uslots = lfg_id_index_slots(m->user_ids, mf->n_users);
	size_t		islots = lfg_id_index_slots(m->item_ids, mf->n_items);
	/* EASE has no Q to score with: no panels, no scorer */
	bool		factors = mf->kind != LFG_KIND_EASE;
	LfgPanelFormat format = factors ? lfg_score_panels_best(mf) : LFG_PANELS_NONE;
	Size		np = factors ? lfg_score_panels_size(mf, format) : 0;
	Size		users_off = MAXALIGN(sizeof(ServingLayout));
	Size		items_off = users_off + MAXALIGN(sizeof(int32) * uslots);
	Size		items_end = items_off + MAXALIGN(sizeof(int32) * islots);
	Size		total = items_end + PG_CACHE_LINE_SIZE + np;
	dsa_pointer p = AllocShared(total, name, version);
	char	   *base = dsa_get_address(area, p);
	ServingLayout *l = (ServingLayout *) base;
	LfgIdIndex	ix;

	/*
	 * The panels start on a cache line. A chunk lies at the same offset of
	 * a page-aligned mapping in every backend, so one offset aligns them in
	 * all.
	 */
	char	   *aligned = (char *) TYPEALIGN(PG_CACHE_LINE_SIZE, base + items_end);

	memset(l, 0, sizeof(*l));
	l->nbytes = nbytes;
	lfg_id_index_init(m->user_ids, mf->n_users, uslots > 0 ? (int32 *) (base + users_off) : NULL,
					  uslots, &ix);
	l->users_base = ix.base;
	l->users_span = ix.span;
	l->users_off = users_off;
	lfg_id_index_init(m->item_ids, mf->n_items, islots > 0 ? (int32 *) (base + items_off) : NULL,
					  islots, &ix);
	l->items_base = ix.base;
	l->items_span = ix.span;
	l->items_off = items_off;
	if (np > 0)
	{
		lfg_score_panels_fill(mf, format, aligned);
		l->panels_off = aligned - base;
	}
	CHECK_FOR_INTERRUPTS();
	if (factors)
		lfg_scorer_init(mf, format, np > 0 ? aligned : NULL, &l->scorer);
	*size = total;
	return p;
}

/* Point c at the shared copy of slot s (its chunks are mapped in this backend) */
static void
UseSlot(int s, LfgCachedModel *c)
{
	SharedSlot *sl = &shared->slots[s];
	const uint8_t *bytes = dsa_get_address(area, sl->bytes);
	char	   *base = dsa_get_address(area, sl->serving);
	ServingLayout *l = (ServingLayout *) base;
	LfgError	err;

	/* checked in full when loaded: the layout only is read again */
	if (lfg_model_decode_trusted(bytes, l->nbytes, &c->model, &err) != LFG_OK)
		LfgRaise(&err);
	c->users = (LfgIdIndex) {c->model.user_ids, c->model.mf.n_users, l->users_base, l->users_span,
	(const int32 *) (base + l->users_off)};
	c->items = (LfgIdIndex) {c->model.item_ids, c->model.mf.n_items, l->items_base, l->items_span,
	(const int32 *) (base + l->items_off)};
	c->scorer = l->scorer;
	c->panels = l->panels_off > 0 ? base + l->panels_off : NULL;
	c->scorer.panels = c->panels;
	c->shared = true;
}

/* Take a reference to slot s for the entry whose memory is cxt (lock held) */
static void
TakeRef(int s, MemoryContext cxt)
{
	SlotRef    *r = MemoryContextAlloc(cxt, sizeof(SlotRef));

	r->slot = s;
	r->cb.func = DropRef;
	r->cb.arg = r;
	shared->slots[s].refcount++;
	shared->slots[s].last_used = ++shared->clock;
	my_refs[s]++;
	MemoryContextRegisterResetCallback(cxt, &r->cb);
}

/*
 * Use the shared copy of the model row key for the cache entry c whose
 * memory is cxt, loading it with read() if no backend has: read returns the
 * row's model bytes (detoasted, in the caller's memory). Returns false when
 * the slot table is full: the caller decodes privately.
 */
bool
LfgSharedUse(const LfgSharedKey *key, bytea *(*read) (void *arg), void *arg,
			 MemoryContext cxt, LfgCachedModel *c)
{
	const char *name = key->name;
	int32		version = key->version;
	int			s;
	LoadGuard  *g;
	bytea	   *b;
	Size		len,
				size;
	uint8_t    *dst;
	uint32		crc;
	LfgModel	m;
	LfgError	err;
	MemoryContext guard_cxt;
	TimestampTz loaded_at;

	if (strlen(name) > NAME_MAX_LEN)
		return false;
	AttachArea();
	for (;;)
	{
		int			free_slot;

		ConditionVariablePrepareToSleep(&shared->loaded);
		LWLockAcquire(shared->lock, LW_EXCLUSIVE);
		s = FindSlot(key);
		if (s >= 0 && shared->slots[s].state == SLOT_READY)
		{
			TakeRef(s, cxt);
			LWLockRelease(shared->lock);
			ConditionVariableCancelSleep();
			UseSlot(s, c);
			return true;
		}
		if (s >= 0)
		{
			/* another backend is loading it: wait, then look again */
			LWLockRelease(shared->lock);
			ConditionVariableSleep(&shared->loaded, PG_WAIT_EXTENSION);
			continue;
		}
		ConditionVariableCancelSleep();
		free_slot = TakeFreeSlot();
		if (free_slot < 0)
		{
			LWLockRelease(shared->lock);
			return false;
		}
		s = free_slot;
		shared->slots[s].state = SLOT_LOADING;
		shared->slots[s].dbid = MyDatabaseId;
		shared->slots[s].version = version;
		shared->slots[s].xmin = key->xmin;
		shared->slots[s].length = key->length;
		shared->slots[s].crc = key->crc;
		strlcpy(shared->slots[s].name, name, sizeof(shared->slots[s].name));
		shared->slots[s].bytes = InvalidDsaPointer;
		shared->slots[s].serving = InvalidDsaPointer;
		shared->slots[s].loader_pid = MyProcPid;
		LWLockRelease(shared->lock);
		break;
	}

	/* load: any ERROR from here on frees the slot through the guard */
	guard_cxt = AllocSetContextCreate(CurrentMemoryContext, "lfg shared load", ALLOCSET_SMALL_SIZES);
	g = MemoryContextAllocZero(guard_cxt, sizeof(LoadGuard));
	g->slot = s;
	g->bytes = InvalidDsaPointer;
	g->serving = InvalidDsaPointer;
	g->cb.func = UndoLoad;
	g->cb.arg = g;
	MemoryContextRegisterResetCallback(guard_cxt, &g->cb);

	b = read(arg);
	len = VARSIZE_ANY_EXHDR(b);
	crc = 0;
	if (len >= 4)
		memcpy(&crc, VARDATA_ANY(b) + len - 4, 4);
	if ((Size) key->length != len || crc != key->crc)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("version %d of model \"%s\" changed while it was being loaded", version, name),
				 errhint("Retry: the next call loads the new bytes.")));
	g->bytes = AllocShared(Max(len, 1), name, version);
	dst = dsa_get_address(area, g->bytes);
	memcpy(dst, VARDATA_ANY(b), len);
	if (lfg_model_decode(dst, len, LfgCrc32c, &m, &err) != LFG_OK)
		LfgRaise(&err);
	CHECK_FOR_INTERRUPTS();
	g->serving = BuildServing(&m, name, version, len, &size);

	/* complete: publish */
	loaded_at = GetCurrentTimestamp();
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	shared->slots[s].bytes = g->bytes;
	shared->slots[s].serving = g->serving;
	shared->slots[s].size = MAXALIGN(len) + size;
	shared->slots[s].state = SLOT_READY;
	shared->slots[s].loaded_at = loaded_at;
	shared->slots[s].loader_pid = 0;
	g->done = true;
	TakeRef(s, cxt);
	/*
	 * unused copies this one supersedes: older versions, and other rows of
	 * this version (an UPDATE of its row, e.g. lfg_retrain's metrics)
	 */
	for (int o = 0; o < SHARED_SLOTS; o++)
	{
		SharedSlot *sl = &shared->slots[o];

		if (o != s && sl->state == SLOT_READY && sl->refcount == 0 && sl->dbid == MyDatabaseId &&
			sl->version <= version && strcmp(sl->name, name) == 0)
			FreeSlot(sl);
	}
	LWLockRelease(shared->lock);
	ConditionVariableBroadcast(&shared->loaded);
	MemoryContextDelete(guard_cxt);
	UseSlot(s, c);
	return true;
}

/*
 * Append the shared models of this database to a result of lfg_cached_models:
 * (model, version, where, state, bytes, backends)
 */
void
LfgSharedList(Tuplestorestate *ts, TupleDesc tupdesc)
{
	SharedSlot *copy;
	int			n = 0;

	if (!LfgSharedEnabled())
		return;
	copy = palloc(sizeof(SharedSlot) * SHARED_SLOTS);
	LWLockAcquire(shared->lock, LW_SHARED);
	for (int s = 0; s < SHARED_SLOTS; s++)
		if (shared->slots[s].state != SLOT_FREE && shared->slots[s].dbid == MyDatabaseId)
			copy[n++] = shared->slots[s];
	LWLockRelease(shared->lock);
	for (int j = 0; j < n; j++)
	{
		Datum		values[7];
		bool		nulls[7] = {false};

		values[0] = CStringGetTextDatum(copy[j].name);
		values[1] = Int32GetDatum(copy[j].version);
		values[2] = CStringGetTextDatum("shared");
		values[3] = CStringGetTextDatum(copy[j].state == SLOT_READY ? "ready" : "loading");
		values[4] = Int64GetDatum((int64) copy[j].size);
		values[5] = Int32GetDatum(copy[j].refcount);
		values[6] = TimestampTzGetDatum(copy[j].loaded_at);
		nulls[6] = copy[j].state != SLOT_READY;
		tuplestore_putvalues(ts, tupdesc, values, nulls);
	}
	pfree(copy);
}

/* Memory context callback: the fit ended (or failed): free its progress slot */
static void
ProgressRelease(void *arg)
{
	if (my_progress < 0 || progress == NULL)
		return;
	SpinLockAcquire(&progress[my_progress].mutex);
	progress[my_progress].pid = 0;
	SpinLockRelease(&progress[my_progress].mutex);
	my_progress = -1;
}

/*
 * Start showing this backend's lfg_fit in lfg_progress, until cxt (the
 * aggregate's memory) is freed. Without preloading, nothing is shown.
 */
void
LfgProgressBegin(MemoryContext cxt)
{
	MemoryContextCallback *cb;
	TimestampTz now = GetCurrentTimestamp();

	if (!LfgSharedEnabled() || my_progress >= 0)
		return;
	for (int j = 0; j < PROGRESS_SLOTS && my_progress < 0; j++)
	{
		ProgressSlot *p = &progress[j];

		SpinLockAcquire(&p->mutex);
		if (p->pid == 0)
		{
			p->pid = MyProcPid;
			p->dbid = MyDatabaseId;
			p->userid = GetUserId();
			p->started = p->updated = p->phase_started = now;
			p->phase_step = 0;
			strlcpy(p->phase, "reading ratings", sizeof(p->phase));
			p->rows = 0;
			p->step = p->steps = 0;
			p->train_rmse = p->val_rmse = NAN;
			my_progress = j;
		}
		SpinLockRelease(&p->mutex);
	}
	if (my_progress < 0)
		return;					/* every slot in use: not shown */
	cb = MemoryContextAlloc(cxt, sizeof(MemoryContextCallback));
	cb->func = ProgressRelease;
	cb->arg = NULL;
	MemoryContextRegisterResetCallback(cxt, cb);
}

/* Update this backend's progress (phase NULL: unchanged; rows < 0: unchanged) */
void
LfgProgressUpdate(const char *phase, int64 rows, int32 step, int32 steps,
				  double train_rmse, double val_rmse)
{
	ProgressSlot *p;
	TimestampTz now;

	if (my_progress < 0)
		return;
	p = &progress[my_progress];
	now = GetCurrentTimestamp();
	SpinLockAcquire(&p->mutex);
	if (phase != NULL && strncmp(p->phase, phase, sizeof(p->phase) - 1) != 0)
	{
		strlcpy(p->phase, phase, sizeof(p->phase));
		p->phase_started = now;
		p->phase_step = step;
	}
	if (rows >= 0)
		p->rows = rows;
	p->step = step;
	p->steps = steps;
	p->train_rmse = train_rmse;
	p->val_rmse = val_rmse;
	p->updated = now;
	SpinLockRelease(&p->mutex);
}

PG_FUNCTION_INFO_V1(lfg_progress);
/*
 * lfg_progress(): the lfg_fit calls running in this database, as the
 * backends update them (each epoch, every million rows read): visible to
 * their own role and to members of pg_read_all_stats
 */
Datum
lfg_progress(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *ts;
	bool		all = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);

	if (!LfgSharedEnabled())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lfg_progress needs lfg in shared_preload_libraries"),
				 errdetail("Training progress is kept in shared memory, which lfg gets only when the server loads it at start."),
				 errhint("Add lfg to shared_preload_libraries and restart; meanwhile, lfg_fit reports each epoch at DEBUG1 (NOTICE with \"verbose\": true).")));
	ts = LfgBeginSRF(fcinfo, "lfg_progress", 11, &tupdesc);
	for (int j = 0; j < PROGRESS_SLOTS; j++)
	{
		ProgressSlot c;
		Datum		values[11];
		bool		nulls[11] = {false};
		TimestampTz now = GetCurrentTimestamp();

		SpinLockAcquire(&progress[j].mutex);
		c = progress[j];
		SpinLockRelease(&progress[j].mutex);
		if (c.pid == 0 || c.dbid != MyDatabaseId || (!all && !has_privs_of_role(GetUserId(), c.userid)))
			continue;
		values[0] = Int32GetDatum(c.pid);
		values[1] = CStringGetTextDatum(c.phase);
		values[2] = Int64GetDatum(c.rows);
		values[3] = Int32GetDatum(c.step);
		nulls[3] = c.steps == 0;
		values[4] = Int32GetDatum(c.steps);
		nulls[4] = c.steps == 0;
		values[5] = Float8GetDatum(c.train_rmse);
		nulls[5] = isnan(c.train_rmse);
		values[6] = Float8GetDatum(c.val_rmse);
		nulls[6] = isnan(c.val_rmse);
		values[7] = TimestampTzGetDatum(c.started);
		values[8] = TimestampTzGetDatum(c.updated);
		values[9] = Float8GetDatum((double) (now - c.started) / 1e6);
		/*
		 * the phase's remaining epochs at the pace of those done (the time
		 * to the last epoch: early stopping may end sooner)
		 */
		nulls[10] = c.step <= c.phase_step || c.steps < c.step;
		if (!nulls[10])
			values[10] = Float8GetDatum((double) (c.updated - c.phase_started) / 1e6 /
										(c.step - c.phase_step) * (c.steps - c.step) -
										(double) (now - c.updated) / 1e6);
		if (!nulls[10] && DatumGetFloat8(values[10]) < 0)
			values[10] = Float8GetDatum(0.0);
		tuplestore_putvalues(ts, tupdesc, values, nulls);
	}
	return (Datum) 0;
}
