/*
 * lfg_preload.c
 *	  lfg.preload_models: models kept loaded in shared memory from startup.
 *
 * With lfg in shared_preload_libraries, lfg.preload_models lists models as
 * "database/model" entries. One background worker per database connects
 * (as the bootstrap superuser) once the server accepts read-only
 * connections, so on hot standbys too, and every PRELOAD_NAPTIME_MS looks
 * up the active version of each of its models and loads it into shared
 * memory if no backend has: at startup, after a crash restart (the
 * postmaster restarts the worker with the new shared memory), after a
 * version switch (on a standby, within a nap of its replay) and after an
 * eviction. Between rounds it holds no reference, so it pins nothing: an
 * unused older version is freed as usual. A model that cannot be loaded (no
 * such database, extension or model, or not enough shared memory) is
 * reported once as a WARNING, and again only when the reason changes; the
 * worker tries again every PRELOAD_RETRY_ROUNDS naps, so a model created
 * later is loaded within half a minute.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/varlena.h"

#include "lfg.h"
#include "lfg_shmem.h"

#define PRELOAD_NAPTIME_MS 1000
#define PRELOAD_RETRY_ROUNDS 30	/* after a model failed to load */
#define PRELOAD_RESTART_S 60	/* after a failure, e.g. no such database */
#define PRELOAD_MAX_DATABASES 16
#define PRELOAD_MODEL_MAX 200	/* lfg.models names: 1 to 200 characters */

static char *lfg_preload_models = NULL;

PGDLLEXPORT void lfg_preload_main(Datum arg);

/*
 * Split the setting into its entries; false (with *bad the entry) when one
 * is not "database/model"
 */
static bool
ParseEntries(const char *value, List **entries, char **bad)
{
	char	   *copy = pstrdup(value != NULL ? value : "");
	List	   *items = NIL;
	ListCell   *lc;

	*entries = NIL;
	*bad = NULL;
	if (!SplitGUCList(copy, ',', &items))
	{
		*bad = pstrdup(value);
		return false;
	}
	foreach(lc, items)
	{
		char	   *item = (char *) lfirst(lc);
		char	   *slash = strchr(item, '/');

		if (slash == NULL || slash == item || slash[1] == '\0' ||
			slash - item >= NAMEDATALEN || strlen(slash + 1) > PRELOAD_MODEL_MAX)
		{
			*bad = pstrdup(item);
			return false;
		}
		*entries = lappend(*entries, pstrdup(item));
	}
	return true;
}

/* GUC check hook: every entry is "database/model" */
static bool
CheckPreloadModels(char **newval, void **extra, GucSource source)
{
	List	   *entries;
	char	   *bad;

	if (!ParseEntries(*newval, &entries, &bad))
	{
		GUC_check_errdetail("Entry \"%s\" is not database/model (a database name of at most %d bytes, "
							"a slash, a model name of 1 to %d characters).",
							bad, NAMEDATALEN - 1, PRELOAD_MODEL_MAX);
		return false;
	}
	return true;
}

/* The database of an entry, in buf */
static void
EntryDatabase(const char *entry, char *buf)
{
	size_t		len = strchr(entry, '/') - entry;

	memcpy(buf, entry, len);
	buf[len] = '\0';
}

/*
 * Called by _PG_init under shared_preload_libraries (after LfgSharedInit):
 * the setting, and one worker per database it names
 */
void
LfgPreloadInit(void)
{
	List	   *entries;
	List	   *databases = NIL;
	char	   *bad;
	ListCell   *lc;

	DefineCustomStringVariable("lfg.preload_models",
							   "Models kept loaded in shared memory from startup, as database/model entries.",
							   "A comma-separated list such as 'shop/movies, shop/books'; one background "
							   "worker per database loads the active version of each, after a crash restart "
							   "and a version switch too. Needs lfg in shared_preload_libraries.",
							   &lfg_preload_models, "", PGC_POSTMASTER, 0,
							   CheckPreloadModels, NULL, NULL);
	if (!ParseEntries(lfg_preload_models, &entries, &bad))
		return;					/* the check hook has refused it */
	foreach(lc, entries)
	{
		char		db[NAMEDATALEN];
		bool		seen = false;
		ListCell   *d;
		BackgroundWorker worker;

		EntryDatabase((char *) lfirst(lc), db);
		foreach(d, databases)
			seen = seen || strcmp((char *) lfirst(d), db) == 0;
		if (seen)
			continue;
		if (list_length(databases) == PRELOAD_MAX_DATABASES)
		{
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("lfg.preload_models names more than %d databases: models of database \"%s\" are not preloaded",
							PRELOAD_MAX_DATABASES, db),
					 errhint("List models of at most %d databases.", PRELOAD_MAX_DATABASES)));
			continue;
		}
		databases = lappend(databases, pstrdup(db));
		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_ConsistentState;
		worker.bgw_restart_time = PRELOAD_RESTART_S;
		strlcpy(worker.bgw_library_name, "lfg", BGW_MAXLEN);
		strlcpy(worker.bgw_function_name, "lfg_preload_main", BGW_MAXLEN);
		snprintf(worker.bgw_name, BGW_MAXLEN, "lfg preload %s", db);
		strlcpy(worker.bgw_type, "lfg preload", BGW_MAXLEN);
		strlcpy(worker.bgw_extra, db, BGW_EXTRALEN);
		RegisterBackgroundWorker(&worker);
	}
}

/* What the worker last reported about each of its models */
typedef struct PreloadModel
{
	char	   *name;
	int32		version;		/* loaded last round; 0: none */
	char	   *problem;		/* the last WARNING's message; NULL: none */
	int			skip;			/* rounds to wait after a failure */
} PreloadModel;

/* Load the active version of m if no backend has, in a subtransaction */
static void
WarmOne(PreloadModel *m, MemoryContext keep)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		int32		version = LfgWarm(m->name);

		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (version != m->version)
			ereport(LOG,
					(errmsg("lfg.preload_models: version %d of model \"%s\" is in shared memory",
							version, m->name)));
		m->version = version;
		if (m->problem != NULL)
			pfree(m->problem);
		m->problem = NULL;
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		m->version = 0;
		/* a failed load may have read the bytes: not every round */
		m->skip = PRELOAD_RETRY_ROUNDS;
		if (m->problem == NULL || strcmp(m->problem, e->message) != 0)
		{
			ereport(WARNING,
					(errcode(e->sqlerrcode),
					 errmsg("lfg.preload_models: model \"%s\" is not loaded: %s", m->name, e->message),
					 e->hint ? errhint("%s", e->hint) : 0));
			if (m->problem != NULL)
				pfree(m->problem);
			m->problem = MemoryContextStrdup(keep, e->message);
		}
		FreeErrorData(e);
	}
	PG_END_TRY();
}

/* The worker of one database (its name in bgw_extra) */
void
lfg_preload_main(Datum arg)
{
	char		db[NAMEDATALEN];
	List	   *entries;
	char	   *bad;
	ListCell   *lc;
	PreloadModel *models;
	int			n = 0;
	MemoryContext round_cxt;

	strlcpy(db, MyBgworkerEntry->bgw_extra, sizeof(db));
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(db, NULL, 0);
	pgstat_report_appname("lfg preload");

	if (!ParseEntries(lfg_preload_models, &entries, &bad))
		proc_exit(0);
	models = palloc0(sizeof(PreloadModel) * list_length(entries));
	foreach(lc, entries)
	{
		char		edb[NAMEDATALEN];

		EntryDatabase((char *) lfirst(lc), edb);
		if (strcmp(edb, db) == 0)
			models[n++].name = pstrdup(strchr((char *) lfirst(lc), '/') + 1);
	}
	round_cxt = AllocSetContextCreate(TopMemoryContext, "lfg preload round", ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "lfg: loading preloaded models");
		MemoryContextSwitchTo(round_cxt);
		for (int i = 0; i < n; i++)
			if (models[i].skip > 0)
				models[i].skip--;
			else
				WarmOne(&models[i], TopMemoryContext);
		PopActiveSnapshot();
		CommitTransactionCommand();
		/* hold nothing between rounds: unused versions stay freeable */
		LfgCacheReset();
		MemoryContextReset(round_cxt);
		pgstat_report_activity(STATE_IDLE, NULL);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 PRELOAD_NAPTIME_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
