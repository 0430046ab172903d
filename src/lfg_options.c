/*
 * lfg_options.c
 *	  The options jsonb of lfg_fit: parsing, validation, and the JSON text
 *	  stored in the model.
 */
#include "postgres.h"

#include <math.h>

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"

#include "lfg.h"
#include "lfg_options.h"

#define VALID_KEYS "kind, factors, epochs, lr, reg, init_std, seed, verbose"

/* Name of a key as a NUL-terminated string */
static char *
KeyName(JsonbValue *k)
{
	return pnstrdup(k->val.string.val, k->val.string.len);
}

/* Raise the error for an option value of the wrong type */
static void
WrongType(const char *key, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"%s\" must be %s", key, what),
			 errhint("For example: '{\"factors\": 50, \"lr\": 0.01, \"kind\": \"svd\"}'.")));
}

/* A JSON number as a double */
static double
NumberValue(const char *key, JsonbValue *v)
{
	if (v->type != jbvNumeric)
		WrongType(key, "a number");
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
}

/* A JSON number that is a whole number in [min, max] */
static int64
IntegerValue(const char *key, JsonbValue *v, int64 min, int64 max)
{
	char	   *s;
	char	   *end;
	long long	x;

	if (v->type != jbvNumeric)
		WrongType(key, "an integer");
	s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	errno = 0;
	x = strtoll(s, &end, 10);
	if (*end != '\0')
		WrongType(key, "an integer");
	if (errno == ERANGE || x < min || x > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between " INT64_FORMAT " and " INT64_FORMAT,
						key, min, max),
				 errhint("The defaults are listed in doc/reference.md.")));
	return (int64) x;
}

/* Apply one key/value pair to opts */
static void
ApplyOption(LfgMfOptions *opts, JsonbValue *k, JsonbValue *v)
{
	char	   *key = KeyName(k);

	if (strcmp(key, "kind") == 0)
	{
		if (v->type != jbvString)
			WrongType(key, "a string");
		opts->kind = lfg_kind_from_name(v->val.string.val, v->val.string.len);
		if (opts->kind == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown model kind \"%s\"",
							pnstrdup(v->val.string.val, v->val.string.len)),
					 errhint("Valid kinds are: svd, biassvd.")));
	}
	else if (strcmp(key, "factors") == 0)
		opts->factors = (int) IntegerValue(key, v, LFG_MIN_FACTORS, LFG_MAX_FACTORS);
	else if (strcmp(key, "epochs") == 0)
		opts->epochs = (int) IntegerValue(key, v, LFG_MIN_EPOCHS, LFG_MAX_EPOCHS);
	else if (strcmp(key, "lr") == 0)
		opts->lr = NumberValue(key, v);
	else if (strcmp(key, "reg") == 0)
		opts->reg = NumberValue(key, v);
	else if (strcmp(key, "init_std") == 0)
		opts->init_std = NumberValue(key, v);
	else if (strcmp(key, "seed") == 0)
		opts->seed = (uint64_t) IntegerValue(key, v, 0, PG_INT64_MAX);
	else if (strcmp(key, "verbose") == 0)
	{
		if (v->type != jbvBool)
			WrongType(key, "true or false");
		opts->verbose = v->val.boolean;
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown option \"%s\"", key),
				 errhint("Valid options are: " VALID_KEYS ".")));
	pfree(key);
}

/*
 * Parse an options object into opts (which starts from the defaults) and
 * check the ranges. A NULL jsonb leaves the defaults.
 */
void
LfgParseOptions(Jsonb *jb, LfgMfOptions *opts)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;
	LfgError	err;

	lfg_mf_options_default(opts);
	if (jb == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object"),
				 errhint("For example: '{\"factors\": 50}'.")));
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
			continue;
		tok = JsonbIteratorNext(&it, &v, true);
		if (tok != WJB_VALUE)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" must be a scalar", KeyName(&k))));
		ApplyOption(opts, &k, &v);
	}
	if (lfg_mf_options_check(opts, &err) != LFG_OK)
		LfgRaise(&err);
}

/* The options as the JSON text stored in the model (every key, defaults filled) */
char *
LfgOptionsJson(const LfgMfOptions *o)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s,
					 "{\"kind\": \"%s\", \"factors\": %d, \"epochs\": %d, \"lr\": %.15g, "
					 "\"reg\": %.15g, \"init_std\": %.15g, \"seed\": " UINT64_FORMAT "}",
					 lfg_kind_name(o->kind), o->factors, o->epochs, o->lr, o->reg,
					 o->init_std, (uint64) o->seed);
	return s.data;
}
