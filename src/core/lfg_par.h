/*
 * lfg_par.h
 *	  Threads for the core's training loops: started with every signal
 *	  blocked, joined before the caller's check callback runs.
 *
 * A worker thread calls nothing of PostgreSQL's (no palloc, ereport or
 * CHECK_FOR_INTERRUPTS): only the calling thread runs callbacks, and only
 * between lfg_par_end and the next lfg_par_begin, when no worker is alive.
 * Work is cut into tasks whose number and bounds never depend on the
 * threads, and each task computes the same bits whichever thread takes it,
 * so the results are the same for any thread count (one thread runs the
 * same tasks in order).
 */
#ifndef LFG_PAR_H
#define LFG_PAR_H

#include <pthread.h>

#include "lfg_core.h"
#include "lfg_mf.h"				/* LFG_MAX_PARALLEL */

/*
 * Start n - 1 threads running fn(arg), every signal blocked in them so that
 * the process's handlers run in the caller; returns how many started (a
 * thread that cannot be started leaves its share to the others).
 */
extern int	lfg_threads_start(pthread_t *tid, int n, void *(*fn) (void *), void *arg);
extern void lfg_threads_join(pthread_t *tid, int started);

/* A task of a parallel run: task number j of the run's n, given arg */
typedef void (*LfgParFn) (void *arg, int task);

/*
 * A team of threads that runs one set of tasks at a time (lfg_par_run). Its
 * threads live from lfg_par_begin to lfg_par_end.
 */
typedef struct LfgPar
{
	int			nthreads;		/* 1 to LFG_MAX_PARALLEL, the caller included */
	int			started;		/* workers alive (0 outside begin/end) */
	pthread_t	tid[LFG_MAX_PARALLEL];
	pthread_mutex_t mu;
	pthread_cond_t work;
	pthread_cond_t done;
	uint64_t	generation;		/* one per run */
	bool		quit;
	LfgParFn	fn;
	void	   *arg;
	int			ntasks;
	int			finished;		/* tasks done */
	int			joined;			/* workers that took an id (1 .. started) */
	/*
	 * The tasks left of each thread's share (the caller's is 0): a thread
	 * takes its own from the front, then others' from the back, so that the
	 * same rows and parameters stay with the same core from one run to the
	 * next when every thread keeps up
	 */
	int			next[LFG_MAX_PARALLEL];
	int			end[LFG_MAX_PARALLEL];
} LfgPar;

/* Set up a team of nthreads (no thread started yet) */
extern void lfg_par_init(LfgPar *p, int nthreads);
extern void lfg_par_destroy(LfgPar *p);
/* Start the workers (nothing with one thread) */
extern void lfg_par_begin(LfgPar *p);
/* Run tasks 0 .. n - 1 of fn on the team and wait for them; p NULL: in order */
extern void lfg_par_run(LfgPar *p, int n, LfgParFn fn, void *arg);
/* Join the workers: callbacks may run again */
extern void lfg_par_end(LfgPar *p);

/*
 * The fixed cuts of the training work, which never depend on the threads:
 * batch rows per task (a dense layer's output rows, the loss), features
 * or output rows of a weight gradient per task, items per task of the
 * ranking head, parameters per task of the optimizer, and the item ranges
 * of the gradients that rows of a batch share (the sparse layer, Q and b_i)
 */
#define LFG_PAR_ROWS		32
#define LFG_PAR_COLS		32
#define LFG_PAR_ITEMS		256
#define LFG_PAR_PARAMS		65536
#define LFG_PAR_ITEM_RANGES 8

/* Number of chunks of size chunk that cover n */
static inline int
lfg_par_chunks(size_t n, size_t chunk)
{
	return (int) ((n + chunk - 1) / chunk);
}

#endif							/* LFG_PAR_H */
