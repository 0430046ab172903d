/*
 * lfg_store.c
 *	  The model table lfg.models and the backend's cache of decoded models.
 *
 * Decoding a model means a detoast, a CRC over every byte and a bounds
 * check of every section, so each backend keeps the models it has used,
 * decoded, in CacheMemoryContext. The cache answers only what a fresh read
 * of lfg.models would answer, under these rules (doc/serving.md, "Caching"):
 *
 * - Invalidation. Statement triggers on lfg.models and lfg.active send a
 *   relcache invalidation of the table on every change; our callback counts
 *   them in inval_generation. Every call first processes the invalidations
 *   already queued (AcceptInvalidationMessages: cheap when there are none),
 *   so a commit is seen by the next call of every backend, inside an open
 *   transaction too, not only when a new lock happens to be taken.
 * - Snapshots. In READ COMMITTED a model is read with the latest snapshot,
 *   taken after the invalidations were processed: it sees every commit
 *   announced so far. The entry is current while inval_generation has not
 *   moved since just before that snapshot; if it moved during the load, the
 *   entry serves this call only. Under REPEATABLE READ or SERIALIZABLE the
 *   transaction's snapshot is used and the entry serves that transaction
 *   only; in parallel mode (no new snapshot can be taken) the statement's
 *   snapshot is used and the entry serves that snapshot only.
 * - Privileges. Every use checks the current user's SELECT right on
 *   lfg.models (and lfg.active when the version is resolved by name); where
 *   row-level security applies to the user, the version is resolved by a
 *   query run as the user on every call, so a row the user cannot see is
 *   never served from the cache.
 * - SQL run from here names every table, function and operator by schema:
 *   the caller's search_path never chooses one for us.
 */
#include "postgres.h"

#include <limits.h>

#include "access/detoast.h"
#include "access/genam.h"
#include "access/skey.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "catalog/pg_class.h"
#include "storage/proc.h"

#include "lfg.h"
#include "lfg_shmem.h"
#include "lfg_users.h"

#if PG_VERSION_NUM >= 170000
#define CurrentLxid() (MyProc->vxid.lxid)
#else
#define CurrentLxid() (MyProc->lxid)
#endif

/* How long a cache entry may be used */
typedef enum EntryScope
{
	SCOPE_CURRENT,				/* until the next invalidation */
	SCOPE_TRANSACTION,			/* and only in the transaction that loaded it */
	SCOPE_SNAPSHOT,				/* and only with the snapshot that loaded it */
	SCOPE_CALL					/* only the call that loaded it */
} EntryScope;

/* The identity of a snapshot: what it sees (PostgreSQL 14 on) */
typedef struct SnapshotKey
{
	LocalTransactionId lxid;
	uint64		completions;	/* snapXactCompletionCount */
	CommandId	curcid;
	TransactionId xmin;
	TransactionId xmax;
} SnapshotKey;

typedef struct CacheEntry
{
	LfgCachedModel pub;
	bool		latest;			/* resolved by name alone: the active version */
	EntryScope	scope;
	SnapshotKey snap;			/* SCOPE_TRANSACTION (lxid), SCOPE_SNAPSHOT */
	TransactionId xmin;			/* of the row read */
	TimestampTz loaded_at;		/* when this backend read it (lfg.cache) */
	MemoryContext cxt;			/* holds the entry, its name and the bytes */
	struct CacheEntry *next;
} CacheEntry;

static CacheEntry *cache_head = NULL;
static CacheEntry *call_entry = NULL;	/* SCOPE_CALL: freed at the next call */
static uint64 inval_generation = 0;
static uint64 flushed_generation = 0;
static bool callback_registered = false;
static bool relids_valid = false;
static Oid	models_relid = InvalidOid;
static Oid	active_relid = InvalidOid;	/* lfg.active (0.2.0 on); invalid before */
static Oid	lfg_nspid = InvalidOid;

/*
 * The last successful access check (CheckAccess), valid while no relcache
 * invalidation of lfg.models or lfg.active (grants, policies, owners,
 * row-level security switches) and no change of roles, role memberships or
 * schemas (syscache callbacks) has arrived, for the same user.
 */
static struct
{
	bool		valid;
	Oid			user;
	bool		by_name;
	uint64		inval_generation;
	uint64		role_generation;
	bool		rls_possible;	/* either table has row-level security on */
} access_ok;
static uint64 role_generation = 0;

/*
 * Relcache callback: count the changes of lfg.models and lfg.active (or of
 * everything). It may run inside any lookup or lock below, so it only bumps
 * counters: the relation ids are looked up again by ResolveRelids, never
 * cleared under a caller's feet.
 */
static void
InvalidateCallback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == models_relid || relid == active_relid)
	{
		inval_generation++;
		relids_valid = false;
	}
}

/* Syscache callback: roles, memberships or schemas changed */
static void
RoleCallback(Datum arg, int cacheid, uint32 hashvalue)
{
	role_generation++;
}

/* Look up the ids of lfg.models and lfg.active until no change interrupts it */
static void
ResolveRelids(void)
{
	for (int tries = 0; !relids_valid && tries < 100; tries++)
	{
		Oid			nsp,
					m,
					a;

		relids_valid = true;
		nsp = get_namespace_oid("lfg", true);
		m = OidIsValid(nsp) ? get_relname_relid("models", nsp) : InvalidOid;
		a = OidIsValid(nsp) ? get_relname_relid("active", nsp) : InvalidOid;
		models_relid = m;
		active_relid = a;
		lfg_nspid = nsp;
	}
}

/* Raise an error when lfg.models is missing */
static void
CheckModelsTable(void)
{
	if (!OidIsValid(models_relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table lfg.models does not exist"),
				 errhint("Run CREATE EXTENSION lfg.")));
}

/* The identity of snap */
static SnapshotKey
KeyOf(Snapshot snap)
{
	SnapshotKey k = {CurrentLxid(), snap->snapXactCompletionCount, snap->curcid,
	snap->xmin, snap->xmax};

	return k;
}

/* Does the active snapshot equal the one that loaded e? */
static bool
SameSnapshot(const CacheEntry *e)
{
	SnapshotKey k;

	if (!ActiveSnapshotSet())
		return false;
	k = KeyOf(GetActiveSnapshot());
	return k.lxid == e->snap.lxid && k.completions == e->snap.completions &&
		k.curcid == e->snap.curcid && k.xmin == e->snap.xmin && k.xmax == e->snap.xmax;
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
 * Process the invalidations queued so far, then free every cached model if
 * one of them concerned lfg.models or lfg.active, the entries bound to an
 * earlier transaction or snapshot, and the entry of the previous call.
 */
static void
FlushIfStale(void)
{
	CacheEntry **link = &cache_head;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(InvalidateCallback, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHOID, RoleCallback, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, RoleCallback, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, RoleCallback, (Datum) 0);
		callback_registered = true;
	}
	AcceptInvalidationMessages();
	if (call_entry != NULL)
	{
		CacheEntry *e = call_entry;

		call_entry = NULL;
		MemoryContextDelete(e->cxt);
	}
	ResolveRelids();
	while (*link != NULL)
	{
		CacheEntry *e = *link;

		if (flushed_generation != inval_generation ||
			(e->scope == SCOPE_TRANSACTION && e->snap.lxid != CurrentLxid()) ||
			(e->scope == SCOPE_SNAPSHOT && !SameSnapshot(e)))
			DropEntry(link);
		else
			link = &e->next;
	}
	flushed_generation = inval_generation;
}

/*
 * Is the current user allowed to read the columns of relid a fresh read
 * would read? (Table privilege, else every one of the columns.)
 */
static bool
CanRead(Oid relid, const char *const *cols, int ncols)
{
	Oid			user = GetUserId();

	if (pg_class_aclcheck(relid, user, ACL_SELECT) == ACLCHECK_OK)
		return true;
	for (int j = 0; j < ncols; j++)
	{
		AttrNumber	att = get_attnum(relid, cols[j]);

		if (att == InvalidAttrNumber ||
			pg_attribute_aclcheck(relid, att, user, ACL_SELECT) != ACLCHECK_OK)
			return false;
	}
	return true;
}

/* Does relid have row-level security switched on (for anyone)? */
static bool
RlsSwitchedOn(Oid relid)
{
	HeapTuple	tup;
	bool		on;

	if (!OidIsValid(relid))
		return false;
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		return false;
	on = ((Form_pg_class) GETSTRUCT(tup))->relrowsecurity;
	ReleaseSysCache(tup);
	return on;
}

/*
 * Check the current user's right to read a model (by name: through
 * lfg.active too), as a fresh read would: USAGE on schema lfg and SELECT on
 * the columns read. Returns true when row-level security applies to the
 * user, so that the version must be resolved by a query run as the user.
 * A success is remembered until grants, policies, roles or schemas change
 * (access_ok), so that a call normally costs a few comparisons; whether
 * row-level security applies is asked on every call where a table has it.
 */
static bool
CheckAccess(bool by_name)
{
	static const char *const model_cols[] = {"name", "version", "model"};
	static const char *const active_cols[] = {"name", "version"};
	bool		by_active = by_name && OidIsValid(active_relid);
	Oid			user = GetUserId();

	if (!(access_ok.valid && access_ok.user == user && access_ok.by_name == by_name &&
		  access_ok.inval_generation == inval_generation &&
		  access_ok.role_generation == role_generation))
	{
		uint64		gen = inval_generation,
					rgen = role_generation;

		access_ok.valid = false;
		if (pg_namespace_aclcheck(lfg_nspid, user, ACL_USAGE) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for schema lfg"),
					 errdetail("Serving a model reads lfg.models as the current user, %s.",
							   GetUserNameFromId(user, false)),
					 errhint("GRANT USAGE ON SCHEMA lfg TO the role that serves.")));
		if (!CanRead(models_relid, model_cols, lengthof(model_cols)))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for table models"),
					 errdetail("Serving a model reads lfg.models as the current user, %s.",
							   GetUserNameFromId(user, false)),
					 errhint("GRANT SELECT ON lfg.models TO the role that serves.")));
		if (by_active && !CanRead(active_relid, active_cols, lengthof(active_cols)))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for table active"),
					 errdetail("Serving a model by name reads lfg.active as the current user, %s.",
							   GetUserNameFromId(user, false)),
					 errhint("GRANT SELECT ON lfg.active TO the role that serves.")));
		access_ok.rls_possible = RlsSwitchedOn(models_relid) || (by_active && RlsSwitchedOn(active_relid));
		/* remembered only if nothing changed while checking */
		access_ok.valid = gen == inval_generation && rgen == role_generation;
		access_ok.user = user;
		access_ok.by_name = by_name;
		access_ok.inval_generation = gen;
		access_ok.role_generation = rgen;
	}
	if (!access_ok.rls_possible)
		return false;
	return check_enable_rls(models_relid, InvalidOid, true) == RLS_ENABLED ||
		(by_active && check_enable_rls(active_relid, InvalidOid, true) == RLS_ENABLED);
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
 * The queries run as the user where row-level security applies: version 0
 * means the active version, the one lfg.active names, else the newest (the
 * only rule before 0.2.0, which has no lfg.active). Every name is
 * schema-qualified. Everywhere else rows are found through the primary key
 * indexes (FindRow), with no query to parse and plan: a fresh backend's
 * first call pays for no planning.
 */
#define Q_ACTIVE_VERSION \
	"COALESCE((SELECT a.version FROM lfg.active AS a WHERE a.name OPERATOR(pg_catalog.=) $1), " \
	"(SELECT pg_catalog.max(n.version) FROM lfg.models AS n WHERE n.name OPERATOR(pg_catalog.=) $1))"
#define Q_NEWEST_VERSION \
	"(SELECT pg_catalog.max(n.version) FROM lfg.models AS n WHERE n.name OPERATOR(pg_catalog.=) $1)"

enum
{
	Q_SEEN_ACTIVE,				/* ($1 name) -> (version, xmin), as the user sees it */
	Q_SEEN_NEWEST,				/* the same before 0.2.0 */
	Q_SEEN_VERSION,				/* ($1 name, $2 version) -> (version, xmin) */
	Q_DEFAULT_NAME,				/* () -> (count of names, the smallest) */
	Q_COUNT
};

static const char *const query_text[Q_COUNT] = {
	"SELECT m.version, m.xmin FROM lfg.models AS m WHERE m.name OPERATOR(pg_catalog.=) $1 "
	"AND m.version OPERATOR(pg_catalog.=) " Q_ACTIVE_VERSION,
	"SELECT m.version, m.xmin FROM lfg.models AS m WHERE m.name OPERATOR(pg_catalog.=) $1 "
	"AND m.version OPERATOR(pg_catalog.=) " Q_NEWEST_VERSION,
	"SELECT m.version, m.xmin FROM lfg.models AS m WHERE m.name OPERATOR(pg_catalog.=) $1 "
	"AND m.version OPERATOR(pg_catalog.=) $2",
	"SELECT pg_catalog.count(DISTINCT m.name), pg_catalog.min(m.name) FROM lfg.models AS m",
};

/*
 * The snapshot a model is read with, by the rules of the file header (the
 * latest; the transaction's under REPEATABLE READ and SERIALIZABLE; the
 * statement's in parallel mode, where no new one can be taken); *scope says
 * how long what it reads may be used.
 */
static Snapshot
ReadSnapshot(EntryScope *scope)
{
	if (IsolationUsesXactSnapshot())
	{
		*scope = SCOPE_TRANSACTION;
		return GetTransactionSnapshot();
	}
	if (IsInParallelMode() || !ActiveSnapshotSet())
	{
		*scope = SCOPE_SNAPSHOT;
		return ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
	}
	*scope = SCOPE_CURRENT;
	return GetLatestSnapshot();
}

/*
 * Run query q (within SPI_connect) with the snapshot the rules of the file
 * header choose; *scope says how long its answer may be used.
 */
static void
RunQuery(int q, Datum name, int32 version, EntryScope *scope)
{
	static SPIPlanPtr plans[Q_COUNT];
	Oid			types[2] = {TEXTOID, INT4OID};
	int			nargs = q == Q_DEFAULT_NAME ? 0 : q == Q_SEEN_VERSION ? 2 : 1;
	Datum		vals[2] = {name, Int32GetDatum(version)};
	Snapshot	snap;
	int			rc;

	if (plans[q] == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(query_text[q], nargs, types);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_prepare failed for \"%s\": %d", query_text[q], SPI_result);
		plans[q] = p;
	}
	snap = ReadSnapshot(scope);
	rc = SPI_execute_snapshot(plans[q], vals, NULL, snap, InvalidSnapshot, true, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_snapshot failed: %d", rc);
}

/* The error for a model or version that is not there (or not visible) */
static void
RaiseNoModel(const char *name, int32 version)
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

/* A row of lfg.models, as FindRow finds it */
typedef struct ModelRow
{
	int32		version;
	TransactionId xmin;			/* tells the row from an UPDATE of the same version */
	int32		length;			/* of the model's bytes */
	uint32		crc;			/* their last 4 bytes: the stored CRC (0 if shorter) */
	bool		want_bytes;		/* detoast the bytes into bytes */
	bytea	   *bytes;
} ModelRow;

/* The number of the column called name in desc */
static AttrNumber
ColumnNumber(TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	elog(ERROR, "lfg.models has no column \"%s\"", name);
	return InvalidAttrNumber;	/* keep the compiler quiet */
}

/*
 * Scan the primary key index of rel (whose leading columns are name text,
 * then version integer when version != 0) for name, highest version first,
 * with snap; calls found() on the first row and returns whether there was one
 */
static bool
ScanByKey(Relation rel, Datum name, int32 version, Snapshot snap,
		  void (*found) (Relation rel, HeapTuple tup, void *arg), void *arg)
{
	Oid			pk = RelationGetPrimaryKeyIndex(rel);
	Relation	idx;
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	bool		any = false;

	if (!OidIsValid(pk))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s has no primary key", RelationGetRelationName(rel)),
				 errhint("Recreate the extension's tables with DROP EXTENSION lfg; CREATE EXTENSION lfg.")));
	idx = index_open(pk, AccessShareLock);
	/* compared as the index orders them: with its collation, not the C one */
	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[0], F_TEXTEQ, name);
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(version));
	scan = systable_beginscan_ordered(rel, idx, snap, version != 0 ? 2 : 1, keys);
	if (HeapTupleIsValid(tup = systable_getnext_ordered(scan, BackwardScanDirection)))
	{
		found(rel, tup, arg);
		any = true;
	}
	systable_endscan_ordered(scan);
	index_close(idx, AccessShareLock);
	return any;
}

/* ScanByKey's callback for lfg.active: the version */
static void
FoundActive(Relation rel, HeapTuple tup, void *arg)
{
	bool		isnull;
	Datum		v = heap_getattr(tup, ColumnNumber(RelationGetDescr(rel), "version"),
								 RelationGetDescr(rel), &isnull);

	*(int32 *) arg = isnull ? 0 : DatumGetInt32(v);
}

/* ScanByKey's callback for lfg.models: version, xmin, identity and bytes */
static void
FoundModel(Relation rel, HeapTuple tup, void *arg)
{
	ModelRow   *row = (ModelRow *) arg;
	TupleDesc	desc = RelationGetDescr(rel);
	bool		isnull;
	Datum		v;
	struct varlena *model;

	row->version = DatumGetInt32(heap_getattr(tup, ColumnNumber(desc, "version"), desc, &isnull));
	row->xmin = HeapTupleHeaderGetRawXmin(tup->t_data);
	v = heap_getattr(tup, ColumnNumber(desc, "model"), desc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("version %d of a model in lfg.models has no bytes", row->version),
				 errhint("Delete the row and train the model again.")));
	model = (struct varlena *) DatumGetPointer(v);
	row->length = (int32) (toast_raw_datum_size(v) - VARHDRSZ);
	row->crc = 0;
	if (row->length >= 4)
	{
		/* a slice: only the last chunk of an out-of-line value is read */
		struct varlena *tail = detoast_attr_slice(model, row->length - 4, 4);

		if (VARSIZE_ANY_EXHDR(tail) == 4)
			memcpy(&row->crc, VARDATA_ANY(tail), 4);
	}
	if (row->want_bytes)
		row->bytes = (bytea *) pg_detoast_datum_copy(model);
}

/*
 * Find the row of lfg.models for name and version (0: the version lfg.active
 * names, else the newest) through the primary key indexes, with the snapshot
 * ReadSnapshot chooses (*scope: how long the answer may be used); with
 * want_bytes its bytes are detoasted into the current memory context. The
 * caller has checked that the user may read both tables (CheckAccess) and
 * that row-level security does not hide rows from them, or has resolved the
 * version by a query run as the user. False when there is no such row.
 */
static bool
FindRow(const char *name, int32 version, bool want_bytes, ModelRow *row, EntryScope *scope)
{
	Snapshot	snap = RegisterSnapshot(ReadSnapshot(scope));
	Datum		tname = CStringGetTextDatum(name);
	Relation	rel;
	bool		found;

	memset(row, 0, sizeof(*row));
	row->want_bytes = want_bytes;
	if (version == 0 && OidIsValid(active_relid))
	{
		rel = table_open(active_relid, AccessShareLock);
		ScanByKey(rel, tname, 0, snap, FoundActive, &version);
		table_close(rel, AccessShareLock);
	}
	rel = table_open(models_relid, AccessShareLock);
	found = ScanByKey(rel, tname, version, snap, FoundModel, row);
	table_close(rel, AccessShareLock);
	UnregisterSnapshot(snap);
	return found;
}

/* What ReadBytes reads, and the context it reads into */
typedef struct ReadArgs
{
	const char *name;
	int32		version;
	TransactionId xmin;
	MemoryContext cxt;
} ReadArgs;

/* The error for a row that changed between two reads of one call */
static void
RaiseChanged(const char *name, int32 version)
{
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("version %d of model \"%s\" changed while it was being read", version, name),
			 errhint("Retry the call.")));
}

/* The bytes of a model's row, for lfg_shmem.c (in a->cxt) */
static bytea *
ReadBytes(void *arg)
{
	ReadArgs   *a = (ReadArgs *) arg;
	EntryScope	scope;
	ModelRow	row;
	MemoryContext old = MemoryContextSwitchTo(a->cxt);

	if (!FindRow(a->name, a->version, true, &row, &scope))
		RaiseNoModel(a->name, a->version);
	MemoryContextSwitchTo(old);
	/* the shared slot is keyed by the row first read: its bytes, not a newer row's */
	if (row.xmin != a->xmin)
		RaiseChanged(a->name, a->version);
	return row.bytes;
}

static CacheEntry *PublishEntry(CacheEntry *e, uint64 generation, EntryScope scope);

/*
 * Read (version, model) of name from lfg.models and decode it. The entry is
 * built in a context of its own under the caller's memory and published
 * (linked into the cache, or kept for this call) only once complete, so an
 * ERROR part-way leaves nothing behind. seen_xmin, when valid, is the xmin
 * of the row as a query run as the user saw it (row-level security): a
 * different row is not served.
 */
static CacheEntry *
LoadEntry(const char *name, int32 version, TransactionId seen_xmin)
{
	MemoryContext cxt;
	MemoryContext read_cxt;
	MemoryContext old;
	CacheEntry *e;
	uint64		generation;
	EntryScope	scope;
	ModelRow	row;
	bool		found;

	CheckModelsTable();
	cxt = AllocSetContextCreate(CurrentMemoryContext, "lfg cached model", ALLOCSET_DEFAULT_SIZES);
	e = MemoryContextAllocZero(cxt, sizeof(CacheEntry));
	e->cxt = cxt;
	e->latest = version == 0;
	e->pub.name = MemoryContextStrdup(cxt, name);
	e->pub.cxt = cxt;
	/* pg_backend_memory_contexts shows each cached model by name */
	MemoryContextSetIdentifier(cxt, e->pub.name);
	/* the detoasted bytes, freed once decoded or shared */
	read_cxt = AllocSetContextCreate(cxt, "lfg model bytes", ALLOCSET_DEFAULT_SIZES);

	generation = inval_generation;
	/* the row's version and identity first: with shared memory its bytes are read only if no backend has */
	old = MemoryContextSwitchTo(read_cxt);
	found = FindRow(name, version, !LfgSharedEnabled(), &row, &scope);
	MemoryContextSwitchTo(old);
	if (!found)
		RaiseNoModel(name, version);
	if (TransactionIdIsValid(seen_xmin) && row.xmin != seen_xmin)
		RaiseChanged(name, row.version);
	e->snap = KeyOf(GetActiveSnapshot());
	e->pub.version = row.version;
	e->xmin = row.xmin;
	if (LfgSharedEnabled())
	{
		LfgSharedKey key;
		ReadArgs	args;

		key.name = name;
		key.version = row.version;
		key.length = row.length;
		key.crc = row.crc;
		key.xmin = row.xmin;
		args.name = name;
		args.version = row.version;
		args.xmin = row.xmin;
		args.cxt = read_cxt;
		if (LfgSharedUse(&key, ReadBytes, &args, cxt, &e->pub))
		{
			MemoryContextDelete(read_cxt);
			return PublishEntry(e, generation, scope);
		}
		/* the shared table is full: decode privately, the same row */
		row.bytes = ReadBytes(&args);
	}
	DecodeInto(row.bytes, cxt, &e->pub.model);
	MemoryContextDelete(read_cxt);
	IdIndex(cxt, e->pub.model.user_ids, e->pub.model.mf.n_users, &e->pub.users);
	IdIndex(cxt, e->pub.model.item_ids, e->pub.model.mf.n_items, &e->pub.items);
	return PublishEntry(e, generation, scope);
}

/*
 * Link a complete entry into the cache, or keep it for this call only when
 * an invalidation was processed while it was read (the read may predate it)
 */
static CacheEntry *
PublishEntry(CacheEntry *e, uint64 generation, EntryScope scope)
{
	MemoryContext cxt = e->cxt;

	/* an invalidation processed while loading: the read may predate it */
	e->scope = generation != inval_generation ? SCOPE_CALL : scope;
	e->loaded_at = GetCurrentTimestamp();
	MemoryContextSetParent(cxt, CacheMemoryContext);
	if (e->scope == SCOPE_CALL)
		call_entry = e;
	else
	{
		e->next = cache_head;
		cache_head = e;
	}
	return e;
}

/* Is e the entry for (name, version)? */
static bool
EntryMatches(const CacheEntry *e, const char *n, int len, int32 version)
{
	return (version == 0 ? e->latest : (!e->latest && e->pub.version == version)) &&
		strncmp(e->pub.name, n, len) == 0 && e->pub.name[len] == '\0';
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
				  **mine_link = keep == call_entry ? &call_entry : NULL;

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

			Assert(mine_link != NULL);	/* keep is always in the cache */
			if (mine_link == &call_entry)
			{
				call_entry = NULL;
				MemoryContextDelete(keep->cxt);
			}
			else
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
 * Under row-level security: the version of name (0: the active one) that
 * the current user can see, by a query run as the user, or an error; *xmin
 * tells that row from another row of the same version.
 */
static int32
VisibleVersion(text *name, int32 version, TransactionId *xmin)
{
	char	   *cname = text_to_cstring(name);
	EntryScope	scope;
	bool		isnull;
	int32		v;

	SPI_connect();
	RunQuery(version != 0 ? Q_SEEN_VERSION : OidIsValid(active_relid) ? Q_SEEN_ACTIVE : Q_SEEN_NEWEST,
			 PointerGetDatum(name), version, &scope);
	if (SPI_processed == 0)
		RaiseNoModel(cname, version);
	v = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*xmin = DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	SPI_finish();
	pfree(cname);
	return v;
}

/*
 * The decoded model name (version 0: the active version), from the cache or
 * loaded, after checking that the current user may read it. The result stays
 * valid until the next call.
 */
LfgCachedModel *
LfgGetModel(text *name, int32 version)
{
	const char *n = VARDATA_ANY(name);
	int			len = VARSIZE_ANY_EXHDR(name);
	TransactionId seen_xmin = InvalidTransactionId;

	FlushIfStale();
	CheckModelsTable();
	if (CheckAccess(version == 0))
		version = VisibleVersion(name, version, &seen_xmin);
	for (CacheEntry **link = &cache_head; *link != NULL; link = &(*link)->next)
	{
		CacheEntry *e = *link;

		if (EntryMatches(e, n, len, version))
		{
			/* under row-level security, only the row the user saw */
			if (TransactionIdIsValid(seen_xmin) && e->xmin != seen_xmin)
			{
				DropEntry(link);
				break;
			}
			/* most recently used first: eviction takes from the tail */
			*link = e->next;
			e->next = cache_head;
			cache_head = e;
			return &e->pub;
		}
	}
	return &EnforceCacheLimit(LoadEntry(text_to_cstring(name), version, seen_xmin))->pub;
}

/*
 * For lfg.preload_models (lfg_preload.c): the active version of name in
 * shared memory, loaded if no backend has; an error if it cannot be there
 */
int32
LfgWarm(const char *name)
{
	LfgCachedModel *c = LfgGetModel(cstring_to_text(name), 0);

	if (!c->shared)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("version %d of model \"%s\" was decoded by this backend alone: every shared slot is in use",
						c->version, name),
				 errhint("Delete model versions that are no longer served (lfg_drop_old).")));
	return c->version;
}

/* Drop every entry of this backend's cache (and its shared references) */
void
LfgCacheReset(void)
{
	if (call_entry != NULL)
	{
		CacheEntry *e = call_entry;

		call_entry = NULL;
		MemoryContextDelete(e->cxt);
	}
	while (cache_head != NULL)
		DropEntry(&cache_head);
}

/*
 * Serving buffers of a cached model with room for n_ratings input ratings:
 * allocated in the entry's memory on first use and grown when needed, so a
 * call allocates nothing proportional to the model. Built in a context of
 * the caller's and attached to the entry only once complete: an ERROR
 * part-way (out of memory, a cancel) leaves the entry as it was.
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
		LfgPanelFormat format = c->shared ? LFG_PANELS_NONE : lfg_score_panels_best(mf);
		Size		np = c->shared ? 0 : lfg_score_panels_size(mf, format);
		MemoryContext bcxt = AllocSetContextCreate(CurrentMemoryContext, "lfg serving buffers",
												   ALLOCSET_DEFAULT_SIZES);
		LfgTopKWork topk;
		void	   *panels = NULL;
		LfgScorer	scorer;
		/* x and xo: k + 1; xr: FBAS's x0 on the base and blend sides (k0 + 1) */
		Size		dr = (Size) lfg_foldin_vector_dim(&c->model);
		float	   *x = MemoryContextAlloc(bcxt, sizeof(float) * (2 * ((Size) mf->k + 1) + dr));
		int32	   *top_items = MemoryContextAllocHuge(bcxt, sizeof(int32) * n);
		float	   *top_scores = MemoryContextAllocHuge(bcxt, sizeof(float) * n);

		memset(&topk, 0, sizeof(topk));
		memset(&scorer, 0, sizeof(scorer));
		topk.heap = MemoryContextAllocHuge(bcxt, sizeof(int32) * n);
		topk.cand = MemoryContextAllocHuge(bcxt, sizeof(int32) * n);
		topk.cand_scores = MemoryContextAllocHuge(bcxt, sizeof(float) * n);
		topk.upper = MemoryContextAllocHuge(bcxt, sizeof(float) * n);
		topk.scores = MemoryContextAllocHuge(bcxt, sizeof(float) * n);
		if (c->shared)
		{
			/* laid out in shared memory when the model was loaded */
			panels = c->panels;
			scorer = c->scorer;
		}
		else if (mf->kind != LFG_KIND_EASE)	/* EASE has no Q to score with */
		{
			if (np > 0)
			{
				/* on a cache line: the kernels read whole lines (palloc aligns to 8) */
				panels = (void *) TYPEALIGN(PG_CACHE_LINE_SIZE,
											MemoryContextAllocHuge(bcxt, np + PG_CACHE_LINE_SIZE));
				lfg_score_panels_fill(mf, format, panels);
			}
			lfg_scorer_init(mf, format, panels, &scorer);
		}
		/* complete: publish */
		MemoryContextSetParent(bcxt, c->cxt);
		c->x = x;
		c->xo = x + mf->k + 1;
		c->xr = x + 2 * (mf->k + 1);
		c->top_items = top_items;
		c->top_scores = top_scores;
		c->panels = panels;
		c->scorer = scorer;
		c->topk = topk;
		/* the buffers count toward the cache's limit (c is the first member) */
		EnforceCacheLimit((CacheEntry *) c);
	}
	if (!c->has_scratch || c->scratch.cap < n_ratings)
	{
		int32		cap = Max(n_ratings, 64);
		MemoryContext scxt;
		LfgServeScratch scratch;

		if (c->has_scratch && cap < c->scratch.cap * 2)
			cap = Min(c->scratch.cap * 2, LFG_MAX_RATINGS);
		/* the scratch has a context of its own: a larger one replaces it */
		scxt = AllocSetContextCreate(CurrentMemoryContext, "lfg serving scratch",
									 ALLOCSET_SMALL_SIZES);
		alloc = LfgPallocAllocator(scxt);
		if (lfg_serve_scratch_alloc(&c->model, cap, &alloc, &scratch, &err) != LFG_OK)
			LfgRaise(&err);
		MemoryContextSetParent(scxt, c->cxt);
		if (c->scratch_cxt != NULL)
			MemoryContextDelete(c->scratch_cxt);
		c->scratch_cxt = scxt;
		c->scratch = scratch;
		c->has_scratch = true;
	}
	return &c->scratch;
}

/*
 * The default model's name: the lfg.model setting, or the only name in
 * lfg.models (as the current user sees it). Looked up again after every
 * change to lfg.models.
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
	EntryScope	scope;
	bool		rls;
	text	   *copy;

	if (lfg_default_model != NULL && lfg_default_model[0] != '\0')
		return cstring_to_text(lfg_default_model);
	FlushIfStale();
	CheckModelsTable();
	rls = CheckAccess(false);
	if (resolved != NULL && resolved_generation == inval_generation && !rls)
		return resolved;
	generation = inval_generation;
	SPI_connect();
	RunQuery(Q_DEFAULT_NAME, (Datum) 0, 0, &scope);
	count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	name = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (count != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg(count == 0 ? "no model to recommend with" : "no default model"),
				 errdetail("lfg.models holds " INT64_FORMAT " model names and lfg.model is not set.", count),
				 errhint(count == 0 ? "Train one: INSERT INTO lfg.models (name, model) SELECT 'm', lfg_fit(...) FROM ratings." :
						 "SET lfg.model = 'name', or pass the model name as the first argument.")));
	/* allocate the new answer before freeing the old: no dangling pointer on ERROR */
	copy = (text *) MemoryContextAlloc(TopMemoryContext, VARSIZE_ANY(DatumGetPointer(name)));
	memcpy(copy, DatumGetPointer(name), VARSIZE_ANY(DatumGetPointer(name)));
	SPI_finish();
	if (resolved != NULL)
		pfree(resolved);
	resolved = copy;
	/*
	 * Remember the answer only when it was read with the latest snapshot, no
	 * change arrived meanwhile and no row-level security applies.
	 */
	resolved_generation = generation == inval_generation && scope == SCOPE_CURRENT && !rls ?
		inval_generation : inval_generation - 1;
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
	Datum		values[8];
	bool		nulls[8] = {false};
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
	/* 0.2.0's demographics column (a 0.1.0 database has 7 columns) */
	if (tupdesc->natts > 7)
	{
		nulls[7] = m.mf.kind != LFG_KIND_LFG;
		values[7] = nulls[7] ? (Datum) 0 : LfgDemographicsJson(&m);
	}
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

PG_FUNCTION_INFO_V1(lfg_load);
/* lfg_load(model_name, version): read and lay out a model ahead of traffic */
Datum
lfg_load(PG_FUNCTION_ARGS)
{
	int32		version = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1);
	LfgCachedModel *c;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model_name must not be NULL")));
	if (!PG_ARGISNULL(1) && version < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model version must be positive"),
				 errhint("Versions are numbered 1, 2, 3... per model name; NULL loads the active one.")));
	c = LfgGetModel(PG_GETARG_TEXT_PP(0), version);
	LfgServeBuffers(c, 0);
	PG_RETURN_INT32(c->version);
}

PG_FUNCTION_INFO_V1(lfg_cached_models);
/*
 * lfg_cached_models(): the decoded models of this database held in shared
 * memory, and this backend's private ones (the lfg.cache view)
 */
Datum
lfg_cached_models(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *ts = LfgBeginSRF(fcinfo, "lfg_cached_models", 7, &tupdesc);

	FlushIfStale();
	CheckModelsTable();
	CheckAccess(false);
	for (CacheEntry *e = cache_head; e != NULL; e = e->next)
	{
		Datum		values[7];
		bool		nulls[7] = {false};

		if (e->pub.shared)
			continue;
		values[0] = CStringGetTextDatum(e->pub.name);
		values[1] = Int32GetDatum(e->pub.version);
		values[2] = CStringGetTextDatum("backend");
		values[3] = CStringGetTextDatum("ready");
		values[4] = Int64GetDatum((int64) MemoryContextMemAllocated(e->cxt, true));
		values[5] = Int32GetDatum(1);
		values[6] = TimestampTzGetDatum(e->loaded_at);
		tuplestore_putvalues(ts, tupdesc, values, nulls);
	}
	LfgSharedList(ts, tupdesc);
	return (Datum) 0;
}
