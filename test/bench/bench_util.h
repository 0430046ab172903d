/*
 * bench_util.h
 *	  Helpers shared by the benchmarks that read a model file
 *	  (serve_stages.c, batch_compute.c).
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "lfg_model.h"

/* A whole file in a malloc'd buffer (NULL if it cannot be read); *len its size */
static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	long		size;
	uint8_t    *buf;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) <= 0 ||
		fseek(f, 0, SEEK_SET) != 0)
		return NULL;
	buf = malloc(size);
	if (buf == NULL || fread(buf, 1, size, f) != (size_t) size)
		return NULL;
	fclose(f);
	*len = (size_t) size;
	return buf;
}

/*
 * Read and decode the model file path into *m (checksum by crc); on
 * failure say why on stderr and return false
 */
static bool
read_model(const char *path, LfgCrcFn crc, LfgModel *m)
{
	size_t		len;
	uint8_t    *buf = read_file(path, &len);
	LfgError	err;

	if (buf == NULL)
	{
		perror(path);
		return false;
	}
	if (lfg_model_decode(buf, len, crc, m, &err) != LFG_OK)
	{
		fprintf(stderr, "%s: %s\n", path, err.msg);
		return false;
	}
	return true;
}

#endif							/* BENCH_UTIL_H */
