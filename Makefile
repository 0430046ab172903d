# lfg: PGXS build. `make` builds the extension, `make install` installs it for
# the server of PG_CONFIG (Debian's pg_config picks the newest installed
# server; pass PG_CONFIG=/usr/lib/postgresql/NN/bin/pg_config for another),
# `make unitcheck` runs the core unit tests, `make installcheck` pg_regress.
PG_CONFIG ?= pg_config

EXTENSION = lfg
MODULE_big = lfg
# 0.1.0 is released: its script is never edited. The install script of the
# current version is the first one followed by every upgrade, so a fresh
# install and an upgraded one run the same statements.
DATA = lfg--0.1.0.sql lfg--0.1.0--0.2.0.sql
DATA_built = lfg--0.2.0.sql
CORE_SRCS = src/core/lfg_util.c src/core/lfg_rng.c src/core/lfg_blas.c \
	src/core/lfg_mf.c src/core/lfg_model.c src/core/lfg_synth.c src/core/lfg_gen.c \
	src/core/lfg_optim.c src/core/lfg_net.c src/core/lfg_serve.c src/core/lfg_known.c \
	src/core/lfg_rank.c src/core/lfg_ease.c src/core/lfg_foldin.c src/core/lfg_par.c
OBJS = src/lfg.o src/lfg_options.o src/lfg_train.o src/lfg_users.o src/lfg_store.o src/lfg_data.o src/lfg_recommend.o \
	src/lfg_known.o src/lfg_shmem.o src/lfg_preload.o src/lfg_metrics.o \
	$(CORE_SRCS:.c=.o)

REGRESS = train input model_io parallel predict cache lfg recommend known lifecycle retrain demographics \
	settings security scroll hostile_model metrics ease rank_prior foldin
REGRESS_OPTS = --load-extension=lfg

PG_CPPFLAGS = -I$(srcdir)/src
# the SGD kernels need -O3 to vectorise (see src/core/lfg_blas.c)
PG_CFLAGS = -O3
# OpenBLAS's serial build where the system has one (Debian's
# libopenblas0-serial, beside the default pthreads build, which starts a
# thread pool in every process that loads it). Its libblas.so.3 and
# liblapack.so.3 are linked too, ahead of LAPACKE: they and libopenblas.so.0
# must all come from one build, and LAPACKE's own dependencies then resolve
# to them. Elsewhere the default -lopenblas, whose pool
# lfg_blas_single_thread shuts down.
ifndef OPENBLAS_SERIAL_DIR
OPENBLAS_SERIAL_DIR := $(patsubst %/,%,$(dir $(firstword $(wildcard /usr/lib/$(shell cc -print-multiarch 2>/dev/null)/openblas-serial/libopenblas.so.0))))
endif
ifneq ($(OPENBLAS_SERIAL_DIR),)
BLAS_LIBS = -L$(OPENBLAS_SERIAL_DIR) -Wl,--push-state,--no-as-needed -l:libopenblas.so.0 -l:libblas.so.3 \
	-l:liblapack.so.3 -Wl,--pop-state,-rpath,$(OPENBLAS_SERIAL_DIR) -llapacke -lm -lpthread
else
BLAS_LIBS = -llapacke -lopenblas -lm -lpthread
endif
SHLIB_LINK = $(BLAS_LIBS)
EXTRA_CLEAN = test/unit/test_core test/unit/test_net test/unit/test_net_portable test/unit/test_known test/unit/test_rank test/unit/test_foldin test/unit/.passed \
	test/fuzz/fuzz_decode test/bench/serve_stages test/bench/batch_compute

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

lfg--0.2.0.sql: lfg--0.1.0.sql lfg--0.1.0--0.2.0.sql
	cat $^ > $@

# PGXS does not track headers: rebuild every object when one changes
$(OBJS): $(wildcard src/*.h src/core/*.h)

# The core unit tests: built without any PostgreSQL header, run by
# `make unitcheck` (not by `make`, which only builds).
UNIT_CC ?= cc
UNIT_CFLAGS ?= -std=gnu11 -O2 -g -Wall -Wextra -Werror
test/unit/test_core: test/unit/test_core.c test/unit/crc32c_ref.h test/unit/test_util.h $(CORE_SRCS) src/core/*.h
	$(UNIT_CC) $(UNIT_CFLAGS) -Isrc/core -Itest/unit -o $@ test/unit/test_core.c $(CORE_SRCS) $(BLAS_LIBS)

test/unit/test_net: test/unit/test_net.c test/unit/crc32c_ref.h test/unit/test_util.h $(CORE_SRCS) src/core/*.h
	$(UNIT_CC) $(UNIT_CFLAGS) -Isrc/core -Itest/unit -o $@ test/unit/test_net.c $(CORE_SRCS) $(BLAS_LIBS)

test/unit/test_known: test/unit/test_known.c test/unit/test_util.h $(CORE_SRCS) src/core/*.h
	$(UNIT_CC) $(UNIT_CFLAGS) -Isrc/core -Itest/unit -o $@ test/unit/test_known.c $(CORE_SRCS) $(BLAS_LIBS)

# the portable build (no SIMD kernels: what a CPU other than x86-64 runs)
test/unit/test_net_portable: test/unit/test_net.c test/unit/crc32c_ref.h test/unit/test_util.h $(CORE_SRCS) src/core/*.h
	$(UNIT_CC) $(UNIT_CFLAGS) -DLFG_NO_SIMD -Isrc/core -Itest/unit -o $@ test/unit/test_net.c $(CORE_SRCS) $(BLAS_LIBS)

.PHONY: unitcheck
# ranking metrics and EASE
test/unit/test_rank: test/unit/test_rank.c test/unit/test_util.h $(CORE_SRCS) src/core/*.h
	$(UNIT_CC) $(UNIT_CFLAGS) -Isrc/core -Itest/unit -o $@ test/unit/test_rank.c $(CORE_SRCS) $(BLAS_LIBS)

# the learned fold-in
test/unit/test_foldin: test/unit/test_foldin.c test/unit/crc32c_ref.h test/unit/test_util.h $(CORE_SRCS) src/core/*.h
	$(UNIT_CC) $(UNIT_CFLAGS) -Isrc/core -Itest/unit -o $@ test/unit/test_foldin.c $(CORE_SRCS) $(BLAS_LIBS)

unitcheck: test/unit/test_core test/unit/test_net test/unit/test_net_portable test/unit/test_known test/unit/test_rank \
	test/unit/test_foldin
	OPENBLAS_NUM_THREADS=1 ./test/unit/test_core
	OPENBLAS_NUM_THREADS=1 ./test/unit/test_net
	OPENBLAS_NUM_THREADS=1 ./test/unit/test_net_portable
	OPENBLAS_NUM_THREADS=1 ./test/unit/test_known
	OPENBLAS_NUM_THREADS=1 ./test/unit/test_rank
	OPENBLAS_NUM_THREADS=1 ./test/unit/test_foldin

# Serving stages benchmark (test/bench/latency.sh runs it on its model).
test/bench/serve_stages: test/bench/serve_stages.c test/bench/bench_util.h test/unit/crc32c_ref.h test/unit/test_util.h $(CORE_SRCS) src/core/*.h
	$(UNIT_CC) $(UNIT_CFLAGS) -O3 -Isrc/core -Itest/unit -Itest/bench -o $@ test/bench/serve_stages.c $(CORE_SRCS) $(BLAS_LIBS)

# Batch compute floor (test/bench/batch.sh runs it on its models).
test/bench/batch_compute: test/bench/batch_compute.c test/bench/bench_util.h test/unit/crc32c_ref.h test/unit/test_util.h $(CORE_SRCS) src/core/*.h
	$(UNIT_CC) $(UNIT_CFLAGS) -O3 -Isrc/core -Itest/unit -Itest/bench -o $@ test/bench/batch_compute.c $(CORE_SRCS) $(BLAS_LIBS)

# Decoder fuzzing under AddressSanitizer and UBSan (standalone driver).
test/fuzz/fuzz_decode: test/fuzz/fuzz_decode.c $(CORE_SRCS) src/core/*.h
	$(UNIT_CC) -std=gnu11 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
		-Isrc/core -Itest/unit -o $@ test/fuzz/fuzz_decode.c $(CORE_SRCS) $(BLAS_LIBS)

.PHONY: fuzzcheck
fuzzcheck: test/fuzz/fuzz_decode
	OPENBLAS_NUM_THREADS=1 ./test/fuzz/fuzz_decode $(or $(FUZZ_ITERATIONS),200000)

# TAP tests (test/t/*.pl, PostgreSQL::Test::Cluster from PGXS): after
# `make install`, run `make prove_installcheck` as a user other than root, or
# `bash scripts/tap.sh` (as root it runs them as postgres). Not TAP_TESTS = 1:
# PGXS would then run them inside `make installcheck`, which scripts/test.sh
# runs as root (initdb refuses root) against its own server.
PROVE_TESTS = test/t/*.pl
EXTRA_CLEAN += tmp_check
.PHONY: prove_installcheck
prove_installcheck:
	$(prove_installcheck)
