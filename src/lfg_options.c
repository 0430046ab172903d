/*
 * lfg_options.c
 *	  The options jsonb of lfg_fit: parsing, validation, and the JSON text
 *	  stored in the model.
 *
 * "kind" and "preset" are read first, since they choose the defaults of
 * everything else; then every key is applied and checked against the keys
 * of that kind.
 */
#include "postgres.h"

#include <math.h>
#include <unistd.h>

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "optimizer/cost.h"
#include "utils/jsonb.h"

#include "lfg.h"
#include "lfg_options.h"

#define MF_KEYS "kind, factors, epochs, lr, reg, init_std, seed, parallel, verbose, warm_start"
#define LFG_KEYS "kind, preset, factors, hidden, epochs, patience, lr, lr_decays, lr_decay, " \
	"batch_size, mask_prob, dropout, weight_decay, leaky_slope, seed, val_fraction, foldin_users, " \
	"batchnorm, aux, init, train_items, input, episodes, revealed_weight, " \
	"pretrain_epochs, base_factors, popularity_prior, rank_weight, rank_epochs, rank_lr, average_steps, parallel, " \
	"verbose, warm_start"
#define EASE_KEYS "kind, lambda, verbose"

/* The types an option value can be refused for (one full message each) */
typedef enum OptionType
{
	OPT_NUMBER,
	OPT_INTEGER,
	OPT_BOOL,
	OPT_STRING,
	OPT_HIDDEN,
	OPT_NUMBER_OR_AUTO
} OptionType;

/* What is wrong with a "warm_start" value */
typedef enum WarmStartProblem
{
	WARM_NOT_OBJECT,
	WARM_NO_MODEL,
	WARM_OTHER_KEYS
} WarmStartProblem;

static void WrongType(const char *key, OptionType type) pg_attribute_noreturn();
static void WarmStartError(WarmStartProblem problem) pg_attribute_noreturn();

/* Raise the error for an option value of the wrong type */
static void
WrongType(const char *key, OptionType type)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 type == OPT_NUMBER ? errmsg("option \"%s\" must be a number", key) :
			 type == OPT_INTEGER ? errmsg("option \"%s\" must be an integer", key) :
			 type == OPT_BOOL ? errmsg("option \"%s\" must be true or false", key) :
			 type == OPT_STRING ? errmsg("option \"%s\" must be a string", key) :
			 type == OPT_HIDDEN ? errmsg("option \"%s\" must be an array of two layer sizes, e.g. [256, 256]", key) :
			 errmsg("option \"%s\" must be a number or \"auto\"", key),
			 errhint("For example: '{\"factors\": 50, \"lr\": 0.01, \"kind\": \"svd\"}'.")));
	pg_unreachable();
}

/* A JSON number as a double */
static double
NumberValue(const char *key, JsonbValue *v)
{
	if (v->type != jbvNumeric)
		WrongType(key, OPT_NUMBER);
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
}

/* A JSON number as a double, or the string "auto" as auto_value */
static double
NumberOrAuto(const char *key, JsonbValue *v, double auto_value)
{
	if (v->type == jbvString && v->val.string.len == 4 && memcmp(v->val.string.val, "auto", 4) == 0)
		return auto_value;
	if (v->type != jbvNumeric)
		WrongType(key, OPT_NUMBER_OR_AUTO);
	return NumberValue(key, v);
}

/* A JSON number that is a whole number in [min, max] */
static int64
IntegerValue(const char *key, JsonbValue *v, int64 min, int64 max)
{
	char	   *s;
	char	   *end;
	long long	x;

	if (v->type != jbvNumeric)
		WrongType(key, OPT_INTEGER);
	s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	errno = 0;
	x = strtoll(s, &end, 10);
	if (*end != '\0')
		WrongType(key, OPT_INTEGER);
	if (errno == ERANGE || x < min || x > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between " INT64_FORMAT " and " INT64_FORMAT,
						key, min, max),
				 errhint("See doc/reference.md and doc/lfg.md for the options and their defaults.")));
	return (int64) x;
}

/* A JSON boolean */
static bool
BoolValue(const char *key, JsonbValue *v)
{
	if (v->type != jbvBool)
		WrongType(key, OPT_BOOL);
	return v->val.boolean;
}

/* A JSON string that is one of the choices; returns its index */
static int
ChoiceValue(const char *key, JsonbValue *v, const char *const *choices, const char *hint)
{
	if (v->type != jbvString)
		WrongType(key, OPT_STRING);
	for (int j = 0; choices[j] != NULL; j++)
		if (strlen(choices[j]) == (size_t) v->val.string.len &&
			memcmp(choices[j], v->val.string.val, v->val.string.len) == 0)
			return j;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown %s \"%s\"", key, pnstrdup(v->val.string.val, v->val.string.len)),
			 errhint("%s", hint)));
	return -1;
}

/* "hidden": an array of two sizes */
static void
HiddenValue(JsonbValue *v, LfgNetOptions *net)
{
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	int			n = 0;
	int			h[2] = {0, 0};

	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		WrongType("hidden", OPT_HIDDEN);
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
		if (tok == WJB_ELEM)
		{
			if (n >= 2)
				WrongType("hidden", OPT_HIDDEN);
			h[n++] = (int) IntegerValue("hidden", &e, 1, 4096);
		}
	if (n != 2)
		WrongType("hidden", OPT_HIDDEN);
	net->h1 = h[0];
	net->h2 = h[1];
}

static const char *const kinds[] = {"", "svd", "biassvd", "lfg", "ease", NULL};
static const char *const presets[] = {"paper", "new_user", "ranking", NULL};
static const char *const inits[] = {"svd", "random", NULL};
static const char *const inputs[] = {"raw", "centered", NULL};

/* Apply one key of an svd or biassvd options object */
static bool
ApplyMfOption(LfgMfOptions *o, const char *key, JsonbValue *v)
{
	if (strcmp(key, "factors") == 0)
		o->factors = (int) IntegerValue(key, v, LFG_MIN_FACTORS, LFG_MAX_FACTORS);
	else if (strcmp(key, "epochs") == 0)
		o->epochs = (int) IntegerValue(key, v, LFG_MIN_EPOCHS, LFG_MAX_EPOCHS);
	else if (strcmp(key, "lr") == 0)
		o->lr = NumberValue(key, v);
	else if (strcmp(key, "reg") == 0)
		o->reg = NumberValue(key, v);
	else if (strcmp(key, "init_std") == 0)
		o->init_std = NumberValue(key, v);
	else if (strcmp(key, "seed") == 0)
		o->seed = (uint64_t) IntegerValue(key, v, 0, PG_INT64_MAX);
	else if (strcmp(key, "verbose") == 0)
		o->verbose = BoolValue(key, v);
	else if (strcmp(key, "parallel") == 0)
		o->parallel = (int) IntegerValue(key, v, 1, LFG_MAX_PARALLEL);
	else
		return false;
	return true;
}

/*
 * The default of "parallel": the leader and max_parallel_workers_per_gather
 * workers, as a parallel query would use, at most the cores online
 */
static int
DefaultParallel(void)
{
	long		cores = sysconf(_SC_NPROCESSORS_ONLN);
	int			n = max_parallel_workers_per_gather + 1;

	if (cores >= 1 && n > cores)
		n = (int) cores;
	return Max(1, Min(n, LFG_MAX_PARALLEL));
}

/* Apply one key of an lfg options object */
static bool
ApplyNetOption(LfgNetOptions *o, const char *key, JsonbValue *v)
{
	if (strcmp(key, "factors") == 0)
		o->factors = (int) IntegerValue(key, v, LFG_MIN_FACTORS, LFG_MAX_FACTORS);
	else if (strcmp(key, "hidden") == 0)
		HiddenValue(v, o);
	else if (strcmp(key, "epochs") == 0)
		o->epochs = (int) IntegerValue(key, v, LFG_MIN_EPOCHS, LFG_MAX_EPOCHS);
	else if (strcmp(key, "patience") == 0)
		o->patience = (int) IntegerValue(key, v, 0, LFG_MAX_EPOCHS);
	else if (strcmp(key, "lr") == 0)
		o->lr = NumberValue(key, v);
	else if (strcmp(key, "lr_decays") == 0)
		o->lr_decays = (int) IntegerValue(key, v, 0, 10);
	else if (strcmp(key, "lr_decay") == 0)
		o->lr_decay = NumberValue(key, v);
	else if (strcmp(key, "batch_size") == 0)
		o->batch_size = (int) IntegerValue(key, v, 1, 65536);
	else if (strcmp(key, "mask_prob") == 0)
		o->mask_prob = NumberValue(key, v);
	else if (strcmp(key, "dropout") == 0)
		o->dropout = NumberOrAuto(key, v, LFG_DROPOUT_AUTO);
	else if (strcmp(key, "weight_decay") == 0)
		o->weight_decay = NumberOrAuto(key, v, LFG_WEIGHT_DECAY_AUTO);
	else if (strcmp(key, "leaky_slope") == 0)
		o->leaky_slope = NumberValue(key, v);
	else if (strcmp(key, "seed") == 0)
		o->seed = (uint64_t) IntegerValue(key, v, 0, PG_INT64_MAX);
	else if (strcmp(key, "val_fraction") == 0)
		o->val_fraction = NumberValue(key, v);
	else if (strcmp(key, "foldin_users") == 0)
		o->foldin_users = NumberValue(key, v);
	else if (strcmp(key, "batchnorm") == 0)
		o->batchnorm = BoolValue(key, v);
	else if (strcmp(key, "aux") == 0)
		o->aux = BoolValue(key, v);
	else if (strcmp(key, "init") == 0)
		o->init = ChoiceValue(key, v, inits, "Use \"svd\" or \"random\".");
	else if (strcmp(key, "train_items") == 0)
		o->train_items = BoolValue(key, v);
	else if (strcmp(key, "input") == 0)
		o->input = ChoiceValue(key, v, inputs, "Use \"raw\" or \"centered\".");
	else if (strcmp(key, "episodes") == 0)
		o->episodes = BoolValue(key, v);
	else if (strcmp(key, "revealed_weight") == 0)
		o->revealed_weight = NumberValue(key, v);
	else if (strcmp(key, "pretrain_epochs") == 0)
		o->pretrain_epochs = (int) IntegerValue(key, v, 1, LFG_MAX_EPOCHS);
	else if (strcmp(key, "base_factors") == 0)
		o->base_factors = (int) IntegerValue(key, v, LFG_MIN_FACTORS, LFG_MAX_FACTORS);
	else if (strcmp(key, "parallel") == 0)
		o->parallel = (int) IntegerValue(key, v, 1, LFG_MAX_PARALLEL);
	else if (strcmp(key, "popularity_prior") == 0)
		o->popularity_prior = NumberValue(key, v);
	else if (strcmp(key, "rank_weight") == 0)
		o->rank_weight = NumberValue(key, v);
	else if (strcmp(key, "rank_epochs") == 0)
		o->rank_epochs = (int) IntegerValue(key, v, 1, LFG_MAX_EPOCHS);
	else if (strcmp(key, "rank_lr") == 0)
		o->rank_lr = NumberValue(key, v);
	else if (strcmp(key, "average_steps") == 0)
		o->average_steps = (int) IntegerValue(key, v, 0, LFG_MAX_AVERAGE_STEPS);
	else if (strcmp(key, "verbose") == 0)
		o->verbose = BoolValue(key, v);
	else
		return false;
	return true;
}

/* Apply one key of an ease options object */
static bool
ApplyEaseOption(LfgFitOptions *o, const char *key, JsonbValue *v)
{
	if (strcmp(key, "lambda") == 0)
	{
		o->ease_lambda = NumberValue(key, v);
		if (!(o->ease_lambda > 0.0) || o->ease_lambda > LFG_EASE_MAX_LAMBDA)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("lambda must be greater than 0 and at most 1e9"),
					 errhint("Values in the hundreds to tens of thousands are usual; larger ones lean toward popularity.")));
	}
	else if (strcmp(key, "verbose") == 0)
		o->ease_verbose = BoolValue(key, v);
	else
		return false;
	return true;
}

/* Find kind and preset, which choose the defaults */
static void
ReadKindAndPreset(Jsonb *jb, int *kind, int *preset)
{
	JsonbValue *v;

	v = getKeyJsonValueFromContainer(&jb->root, "kind", 4, NULL);
	if (v != NULL)
		*kind = ChoiceValue("kind", v, kinds, "Valid kinds are: svd, biassvd, lfg, ease.");
	if (*kind == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown kind \"\""),
				 errhint("Valid kinds are: svd, biassvd, lfg, ease.")));
	v = getKeyJsonValueFromContainer(&jb->root, "preset", 6, NULL);
	if (v != NULL)
	{
		if (*kind != LFG_KIND_LFG)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"preset\" applies only to kind \"lfg\""),
					 errhint("Add \"kind\": \"lfg\", or remove \"preset\".")));
		*preset = ChoiceValue("preset", v, presets, "Valid presets are: paper, new_user, ranking.");
	}
}

/*
 * "warm_start": {"model": "name", "version": n}: train starting from that
 * model (version optional: its active version). Not part of the stored
 * options (a retrain reusing them starts from its own active version); the
 * model's metrics record it.
 */
static void
WarmStartError(WarmStartProblem problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 problem == WARM_NOT_OBJECT ? errmsg("option \"warm_start\" must be an object") :
			 problem == WARM_NO_MODEL ? errmsg("option \"warm_start\" must be an object with the \"model\" name to start from") :
			 errmsg("option \"warm_start\" must be an object with only \"model\" and \"version\""),
			 errhint("For example: '{\"warm_start\": {\"model\": \"movies\", \"version\": 3}}'; "
					 "without \"version\", the model's active version.")));
	pg_unreachable();
}

static void
ReadWarmStart(JsonbValue *v, LfgFitOptions *opts)
{
	JsonbValue *m,
			   *ver;
	JsonbContainer *c;

	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		WarmStartError(WARM_NOT_OBJECT);
	c = v->val.binary.data;
	m = getKeyJsonValueFromContainer(c, "model", 5, NULL);
	ver = getKeyJsonValueFromContainer(c, "version", 7, NULL);
	if (m == NULL || m->type != jbvString || m->val.string.len == 0)
		WarmStartError(WARM_NO_MODEL);
	if (JsonContainerSize(c) != (ver ? 2 : 1))
		WarmStartError(WARM_OTHER_KEYS);
	opts->warm_model = pnstrdup(m->val.string.val, m->val.string.len);
	opts->warm_version = ver ? (int32) IntegerValue("warm_start.version", ver, 1, PG_INT32_MAX) : 0;
}

/*
 * Parse an options object into opts, starting from the defaults of its kind
 * (default_kind unless "kind" is given) and preset, and check the ranges. A
 * NULL jsonb gives the defaults.
 */
void
LfgParseOptions(Jsonb *jb, int default_kind, LfgFitOptions *opts)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;
	LfgError	err;
	int			preset = LFG_PRESET_PAPER;

	opts->kind = default_kind;
	if (jb != NULL && !JB_ROOT_IS_OBJECT(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object"),
				 errhint("For example: '{\"factors\": 50}'.")));
	if (jb != NULL)
		ReadKindAndPreset(jb, &opts->kind, &preset);
	lfg_mf_options_default(&opts->mf);
	opts->mf.parallel = DefaultParallel();
	if (opts->kind != LFG_KIND_LFG)
		opts->mf.kind = opts->kind;
	lfg_net_options_preset(&opts->net, preset);
	opts->net.parallel = opts->mf.parallel;
	opts->ease_lambda = LFG_EASE_DEFAULT_LAMBDA;
	opts->ease_verbose = false;
	opts->warm_model = NULL;
	opts->warm_version = 0;
	if (jb != NULL)
	{
		it = JsonbIteratorInit(&jb->root);
		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			char	   *key;
			bool		known;

			if (tok != WJB_KEY)
				continue;
			key = pnstrdup(k.val.string.val, k.val.string.len);
			tok = JsonbIteratorNext(&it, &v, true);
			if (strcmp(key, "kind") == 0 || strcmp(key, "preset") == 0)
				continue;
			if (strcmp(key, "warm_start") == 0)
			{
				ReadWarmStart(&v, opts);
				continue;
			}
			known = opts->kind == LFG_KIND_LFG ? ApplyNetOption(&opts->net, key, &v) :
				opts->kind == LFG_KIND_EASE ? ApplyEaseOption(opts, key, &v) :
				ApplyMfOption(&opts->mf, key, &v);
			if (!known)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown option \"%s\" for kind \"%s\"", key,
								lfg_kind_name(opts->kind)),
						 errhint("Valid options are: %s.",
								 opts->kind == LFG_KIND_LFG ? LFG_KEYS :
								 opts->kind == LFG_KIND_EASE ? EASE_KEYS : MF_KEYS)));
			pfree(key);
		}
	}
	if (opts->kind == LFG_KIND_EASE)
	{
		if (opts->warm_model != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"warm_start\" does not apply to kind \"ease\""),
					 errhint("EASE is solved in closed form: remove \"warm_start\".")));
		return;
	}
	if (opts->kind == LFG_KIND_LFG ? lfg_net_options_check(&opts->net, &err) != LFG_OK :
		lfg_mf_options_check(&opts->mf, &err) != LFG_OK)
		LfgRaise(&err);
}

/* The options as the JSON text stored in the model (every key, defaults filled) */
char *
LfgOptionsJson(const LfgFitOptions *opts)
{
	StringInfoData s;

	initStringInfo(&s);
	if (opts->kind == LFG_KIND_EASE)
		appendStringInfo(&s, "{\"kind\": \"ease\", \"lambda\": %.15g}", opts->ease_lambda);
	else if (opts->kind != LFG_KIND_LFG)
	{
		const LfgMfOptions *o = &opts->mf;

		appendStringInfo(&s,
						 "{\"kind\": \"%s\", \"factors\": %d, \"epochs\": %d, \"lr\": %.15g, "
						 "\"reg\": %.15g, \"init_std\": %.15g, \"seed\": " UINT64_FORMAT "}",
						 lfg_kind_name(o->kind), o->factors, o->epochs, o->lr, o->reg,
						 o->init_std, (uint64) o->seed);
	}
	else
	{
		const LfgNetOptions *o = &opts->net;

		appendStringInfo(&s,
						 "{\"kind\": \"lfg\", \"preset\": \"%s\", \"factors\": %d, \"hidden\": [%d, %d], "
						 "\"epochs\": %d, \"patience\": %d, \"lr\": %.15g, \"lr_decays\": %d, "
						 "\"lr_decay\": %.15g, \"batch_size\": %d, \"mask_prob\": %.15g, "
						 "\"dropout\": %.15g, \"weight_decay\": %.15g, \"leaky_slope\": %.15g, "
						 "\"seed\": " UINT64_FORMAT ", \"val_fraction\": %.15g, \"batchnorm\": %s, "
						 "\"aux\": %s, \"init\": \"%s\", \"train_items\": %s, \"input\": \"%s\", "
						 "\"episodes\": %s, \"revealed_weight\": %.15g, \"pretrain_epochs\": %d, "
						 "\"base_factors\": %d}",
						 presets[o->preset], o->factors, o->h1, o->h2, o->epochs, o->patience,
						 o->lr, o->lr_decays, o->lr_decay, o->batch_size, o->mask_prob,
						 o->dropout, o->weight_decay, o->leaky_slope, (uint64) o->seed,
						 o->val_fraction, o->batchnorm ? "true" : "false",
						 o->aux ? "true" : "false", inits[o->init],
						 o->train_items ? "true" : "false", inputs[o->input],
						 o->episodes ? "true" : "false", o->revealed_weight, o->pretrain_epochs,
						 o->base_factors);
		/* 0.2.0: written only when set, so models without it keep their bytes */
		if (o->foldin_users > 0.0)
		{
			LfgJsonReopen(&s);
			appendStringInfo(&s, ", \"foldin_users\": %.15g}", o->foldin_users);
		}
		if (o->popularity_prior > 0.0)
		{
			LfgJsonReopen(&s);
			appendStringInfo(&s, ", \"popularity_prior\": %.15g}", o->popularity_prior);
		}
		if (o->rank_weight > 0.0)
		{
			LfgJsonReopen(&s);
			appendStringInfo(&s, ", \"rank_weight\": %.15g, \"rank_epochs\": %d, \"rank_lr\": %.15g}",
							 o->rank_weight, o->rank_epochs, o->rank_lr);
		}
		if (o->average_steps > 0)
		{
			LfgJsonReopen(&s);
			appendStringInfo(&s, ", \"average_steps\": %d}", o->average_steps);
		}
	}
	return s.data;
}
