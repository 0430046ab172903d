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

#endif							/* BENCH_UTIL_H */
