/*
 * lfg.c
 *	  Module entry point and the glue between the numeric core and
 *	  PostgreSQL: allocation, checksums, interrupts and error reporting.
 */
#include "postgres.h"

#include <limits.h>
#include <stdlib.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/tuplestore.h"

#include "lfg.h"
#include "lfg_shmem.h"
#include "core/lfg_blas.h"

PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);

char	   *lfg_default_model = NULL;
double		lfg_foldin_reg = LFG_DEFAULT_FOLDIN_REG;
bool		lfg_refine = true;
static bool foldin_reg_explicit = false;	/* set by anything but the default */
int			lfg_cache_size_limit = 1024;
int			lfg_train_memory_limit = 2048;
int			lfg_unknown_demographics = LFG_UNKNOWN_IGNORE;

static const struct config_enum_entry unknown_demographics_options[] = {
	{"ignore", LFG_UNKNOWN_IGNORE, false},
	{"warning", LFG_UNKNOWN_WARNING, false},
	{"error", LFG_UNKNOWN_ERROR, false},
	{NULL, 0, false}
};

/*
 * lfg.foldin_reg's check hook: remember in the value's extra whether it was
 * set (a configuration file, ALTER ROLE, SET ...) or is the default, so that
 * RESET and a rolled back SET restore the right answer (GUC keeps an extra
 * with each stacked value)
 */
static bool
FoldinRegCheck(double *newval, void **extra, GucSource source)
{
	bool	   *e = malloc(sizeof(bool));

	if (e == NULL)
		return false;
	*e = source > PGC_S_DYNAMIC_DEFAULT;
	*extra = e;
	return true;
}

static void
FoldinRegAssign(double newval, void *extra)
{
	foldin_reg_explicit = extra != NULL && *(bool *) extra;
}

/*
 * The reg passed to the core's fold-in: lfg.foldin_reg when it is set,
 * else LFG_FOLDIN_LEARNED (an LFG model's learned fold-in, 5 otherwise)
 */
double
LfgFoldinReg(void)
{
	return foldin_reg_explicit ? lfg_foldin_reg : LFG_FOLDIN_LEARNED;
}

/* Called when the library is loaded: settings, BLAS threads */
void
_PG_init(void)
{
	/* concurrency comes from backends and parallel workers, not BLAS threads */
	lfg_blas_single_thread();

	DefineCustomStringVariable("lfg.model",
							   "Sets the model used by lfg_recommend and friends when no model name is given.",
							   "Empty: the only model name in lfg.models.",
							   &lfg_default_model, "", PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomRealVariable("lfg.foldin_reg",
							 "Sets the regularisation of the fold-in solve for new users.",
							 "Weight of the penalty pulling the user vector toward zero (SVD, BiasSVD) "
							 "or toward the generator's output (LFG). Unless it is set, an LFG model "
							 "serves the fold-in it learned in training. Range: 0.001 to 1000000.",
							 &lfg_foldin_reg, LFG_DEFAULT_FOLDIN_REG, 0.001, 1e6, PGC_USERSET, 0,
							 FoldinRegCheck, FoldinRegAssign, NULL);
	DefineCustomBoolVariable("lfg.refine",
							 "Enables refining an LFG model's generated user vector by the fold-in solve.",
							 "Off: the paper's one-pass generator alone.",
							 &lfg_refine, true, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("lfg.cache_size_limit",
							"Sets the memory a backend may keep for decoded models.",
							"The least recently used models are dropped from the backend's cache "
							"beyond it; a model that alone needs more is refused with an error.",
							&lfg_cache_size_limit, 1024, 1, INT_MAX, PGC_SUSET, GUC_UNIT_MB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("lfg.train_memory_limit",
							"Sets the memory one lfg_fit may use for its ratings and its training.",
							"Training that would need more fails with an error instead of "
							"exhausting the server's memory.",
							&lfg_train_memory_limit, 2048, 1, INT_MAX, PGC_SUSET, GUC_UNIT_MB,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("lfg.unknown_demographics",
							 "What serving does with a gender or job an LFG model was not trained with, "
							 "or an age outside its training range.",
							 "ignore: serve the category as unknown and the age as given; warning: the "
							 "same with a WARNING; error: refuse the call.",
							 &lfg_unknown_demographics, LFG_UNKNOWN_IGNORE, unknown_demographics_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	/* one decoded copy of each model for all backends (lfg_shmem.c) */
	if (process_shared_preload_libraries_in_progress)
	{
		LfgSharedInit();
		LfgPreloadInit();
	}
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("lfg");
#else
	EmitWarningsOnPlaceholders("lfg");
#endif
}

/* Map a core status to an SQLSTATE */
static int
LfgErrcode(LfgStatus status)
{
	switch (status)
	{
		case LFG_EPARAM:
			return ERRCODE_INVALID_PARAMETER_VALUE;
		case LFG_EDATA:
			return ERRCODE_DATA_EXCEPTION;
		case LFG_EFORMAT:
			return ERRCODE_INVALID_BINARY_REPRESENTATION;
		case LFG_ECORRUPT:
			return ERRCODE_DATA_CORRUPTED;
		case LFG_ELIMIT:
			return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		case LFG_ENOMEM:
			return ERRCODE_OUT_OF_MEMORY;
		case LFG_OK:
			break;
	}
	return ERRCODE_INTERNAL_ERROR;
}

/* Raise a core error as a PostgreSQL ERROR */
void
LfgRaise(const LfgError *err)
{
	ereport(ERROR,
			(errcode(LfgErrcode(err->status)),
			 errmsg("%s", err->msg),
			 err->detail[0] ? errdetail("%s", err->detail) : 0,
			 err->hint[0] ? errhint("%s", err->hint) : 0));
	pg_unreachable();
}

static void *
PallocAlloc(void *ctx, size_t size)
{
	return MemoryContextAllocExtended((MemoryContext) ctx, size, MCXT_ALLOC_HUGE);
}

static void
PallocFree(void *ctx, void *ptr)
{
	pfree(ptr);
}

/* An allocator for the core that allocates in cxt (huge allocations allowed) */
LfgAllocator
LfgPallocAllocator(MemoryContext cxt)
{
	LfgAllocator a = {PallocAlloc, PallocFree, cxt};

	return a;
}

/* PostgreSQL's CRC32C, for the model codec */
uint32_t
LfgCrc32c(const void *data, size_t len)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, data, len);
	FIN_CRC32C(crc);
	return crc;
}

PG_FUNCTION_INFO_V1(lfg_build_info);
/* lfg_build_info(): the model format version and the BLAS kernels in use */
Datum
lfg_build_info(PG_FUNCTION_ARGS)
{
	char	   *json = psprintf("{\"model_format\": %d, \"blas_core\": \"%s\", \"pg_version_num\": %d}",
								LFG_MODEL_VERSION, lfg_blas_core(), PG_VERSION_NUM);

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}

/* Core callback: honour query cancel and statement_timeout */
void
LfgCheckInterrupts(void *ctx)
{
	CHECK_FOR_INTERRUPTS();
}

/*
 * Whether LfgCheckInterrupts would act: the training threads are joined
 * for it only then (lfg_net.c). Reads a flag the signal handlers set.
 */
bool
LfgInterruptsPending(void *ctx)
{
	return INTERRUPTS_PENDING_CONDITION();
}

/*
 * Set up a set-returning function's materialized result: check that the
 * caller accepts one (fname names the function in the error), use the
 * executor's row type when it has natts columns (no catalog work per call),
 * and give the tuplestore random access when the caller asks for it (a
 * SCROLL cursor), which the result then honours after spilling past
 * work_mem. Returns the tuplestore to fill; *tupdesc is its row type.
 */
Tuplestorestate *
LfgBeginSRF(FunctionCallInfo fcinfo, const char *fname, int natts, TupleDesc *tupdesc)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext old;
	TupleDesc	desc;
	Tuplestorestate *ts;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s must be called in the FROM clause", fname),
				 errhint("Write SELECT * FROM %s(...).", fname)));
	if (rsinfo->expectedDesc != NULL && rsinfo->expectedDesc->natts == natts)
		desc = rsinfo->expectedDesc;
	else if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	desc = CreateTupleDescCopy(desc);
	ts = tuplestore_begin_heap((rsinfo->allowedModes & SFRM_Materialize_Random) != 0,
							   false, work_mem);
	MemoryContextSwitchTo(old);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = ts;
	rsinfo->setDesc = desc;
	*tupdesc = desc;
	return ts;
}
