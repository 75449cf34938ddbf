/* workpool.c: a fixed set of worker threads for parallel loops (see workpool.h).
 *
 * Workers sleep on `go` until the job generation changes, run their part,
 * and the last one to finish signals `done`. One job at a time: the caller
 * waits for every worker before it returns, so the job's context may live on
 * its stack.
 */
#include "base/workpool.h"
#include "base/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

typedef struct worker {
	workpool *p;
	int id;                     /* its part, 1..n (the caller takes 0) */
	pthread_t tid;
} worker;

struct workpool {
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	unsigned long gen;          /* bumped for every job */
	int pending;                /* workers still on the current job */
	int stop;
	int n;                      /* workers started */
	worker *w;
	void (*fn)(void *, int, int); /* the current job */
	void *ctx;
	int parts;
};

static void *worker_main(void *arg)
{
	worker *w = arg;
	workpool *p = w->p;
	unsigned long seen = 0;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->gen == seen && !p->stop)
			pthread_cond_wait(&p->go, &p->mu);
		if (p->stop)
			break;
		seen = p->gen;
		void (*fn)(void *, int, int) = p->fn;
		void *ctx = p->ctx;
		int parts = p->parts;
		pthread_mutex_unlock(&p->mu);
		if (w->id < parts)
			fn(ctx, w->id, parts);
		pthread_mutex_lock(&p->mu);
		if (--p->pending == 0)
			pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

workpool *workpool_new(int workers)
{
	workpool *p = xcalloc(1, sizeof *p);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->go, NULL);
	pthread_cond_init(&p->done, NULL);
	p->w = xcalloc((size_t)(workers > 0 ? workers : 1), sizeof *p->w);
	for (int i = 0; i < workers; i++) {
		p->w[i] = (worker){.p = p, .id = i + 1};
		int rc = pthread_create(&p->w[i].tid, NULL, worker_main, &p->w[i]);
		if (rc) {
			errno = rc;
			break;
		}
		p->n = i + 1; /* only started threads are joined */
	}
	return p;
}

void workpool_free(workpool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->n; i++)
		pthread_join(p->w[i].tid, NULL);
	pthread_cond_destroy(&p->go);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->mu);
	free(p->w);
	free(p);
}

int workpool_size(const workpool *p) { return p->n; }

void workpool_run(workpool *p, int parts, void (*fn)(void *ctx, int part, int parts), void *ctx)
{
	ASSERT(parts >= 1 && parts <= p->n + 1);
	pthread_mutex_lock(&p->mu);
	p->fn = fn;
	p->ctx = ctx;
	p->parts = parts;
	p->pending = p->n;
	p->gen++;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	fn(ctx, 0, parts);
	pthread_mutex_lock(&p->mu);
	while (p->pending > 0)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
}
