/*
 * lfg_par.c
 *	  Threads for the core's training loops (see lfg_par.h).
 *
 * The blocked SGD (lfg_mf.c) starts its threads for each run of strata;
 * the LFG generator's work comes in many short parallel steps per
 * mini-batch (a layer's rows, a gradient's columns, the optimizer's
 * chunks), so lfg_net.c keeps a team between checks of the callback: the
 * workers wait on a condition variable for the next run, take its tasks
 * one at a time under the team's mutex, and the caller takes tasks too.
 * Each thread has a share of every run (a contiguous part of its tasks:
 * the same rows of the batch, the same chunks of Adam's state), which it
 * takes first; then it takes what is left of the others' from their end,
 * so a worker the scheduler has not woken yet only slows a run down.
 */
#include <signal.h>
#include <string.h>

#include "lfg_par.h"

/* See lfg_par.h */
int
lfg_threads_start(pthread_t *tid, int n, void *(*fn) (void *), void *arg)
{
	int			started = 0;
	sigset_t	all,
				old;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (int j = 0; j < n - 1; j++)
		if (pthread_create(&tid[started], NULL, fn, arg) == 0)
			started++;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return started;
}

/* See lfg_par.h */
void
lfg_threads_join(pthread_t *tid, int started)
{
	for (int j = 0; j < started; j++)
		pthread_join(tid[j], NULL);
}

/* See lfg_par.h */
void
lfg_par_init(LfgPar *p, int nthreads)
{
	memset(p, 0, sizeof(*p));
	p->nthreads = nthreads < 1 ? 1 : nthreads > LFG_MAX_PARALLEL ? LFG_MAX_PARALLEL : nthreads;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
}

/* See lfg_par.h */
void
lfg_par_destroy(LfgPar *p)
{
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
}

/* The next task for thread me (its share, then another's last), or -1 (mutex held) */
static int
next_task(LfgPar *p, int me)
{
	int			threads = p->started + 1;

	if (p->next[me] < p->end[me])
		return p->next[me]++;
	for (int o = 1; o < threads; o++)
	{
		int			t = (me + o) % threads;

		if (p->next[t] < p->end[t])
			return --p->end[t];
	}
	return -1;
}

/* Take and run the current run's tasks until none is left (mutex held) */
static void
take_tasks(LfgPar *p, int me)
{
	int			j;

	while ((j = next_task(p, me)) >= 0)
	{
		pthread_mutex_unlock(&p->mu);
		p->fn(p->arg, j);
		pthread_mutex_lock(&p->mu);
		if (++p->finished == p->ntasks)
			pthread_cond_signal(&p->done);
	}
}

/* A worker: wait for a run, help with it, until told to quit */
static void *
par_worker(void *arg)
{
	LfgPar	   *p = arg;
	uint64_t	seen = 0;
	int			me;

	pthread_mutex_lock(&p->mu);
	me = ++p->joined;
	for (;;)
	{
		while (!p->quit && p->generation == seen)
			pthread_cond_wait(&p->work, &p->mu);
		if (p->quit)
			break;
		seen = p->generation;
		take_tasks(p, me);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* See lfg_par.h */
void
lfg_par_begin(LfgPar *p)
{
	if (p == NULL || p->nthreads == 1 || p->started > 0)
		return;
	p->quit = false;
	p->ntasks = p->finished = p->joined = 0;
	memset(p->next, 0, sizeof(p->next));
	memset(p->end, 0, sizeof(p->end));
	p->started = lfg_threads_start(p->tid, p->nthreads, par_worker, p);
}

/* See lfg_par.h */
void
lfg_par_run(LfgPar *p, int n, LfgParFn fn, void *arg)
{
	if (p == NULL || p->started == 0 || n == 1)
	{
		for (int j = 0; j < n; j++)
			fn(arg, j);
		return;
	}
	pthread_mutex_lock(&p->mu);
	p->fn = fn;
	p->arg = arg;
	p->ntasks = n;
	p->finished = 0;
	for (int t = 0; t <= p->started; t++)
	{
		p->next[t] = (int) ((int64_t) n * t / (p->started + 1));
		p->end[t] = (int) ((int64_t) n * (t + 1) / (p->started + 1));
	}
	p->generation++;
	pthread_cond_broadcast(&p->work);
	take_tasks(p, 0);
	while (p->finished < p->ntasks)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

/* See lfg_par.h */
void
lfg_par_end(LfgPar *p)
{
	if (p == NULL || p->started == 0)
		return;
	pthread_mutex_lock(&p->mu);
	p->quit = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	lfg_threads_join(p->tid, p->started);
	p->started = 0;
}
