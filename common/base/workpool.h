/* workpool.h: a fixed set of worker threads for parallel loops.
 *
 * The reference forward pass (row slices of a mat-vec) and the CPU runtime
 * (rt_parallel's ranges) both keep one pool per model and hand it a job at a
 * time. A job is split into parts by the caller: the caller runs part 0
 * itself, worker i runs part i, and workpool_run returns when every part is
 * done. What a part computes depends only on (part, parts), never on which
 * thread runs it, so results do not depend on the thread count.
 */
#ifndef ANEMAKE_WORKPOOL_H
#define ANEMAKE_WORKPOOL_H

typedef struct workpool workpool;

/* Starts up to `workers` threads besides the caller. When a thread cannot be
 * started it stops there, with errno set to why; workpool_size says how many
 * run. Never NULL. */
workpool *workpool_new(int workers);
/* Stops and joins the workers. NULL: nothing. */
void workpool_free(workpool *p);
/* Worker threads running, besides the caller. */
int workpool_size(const workpool *p);
/* fn(ctx, i, parts) for every i in [0, parts), 1 <= parts <= size + 1:
 * part 0 on this thread, part i on worker i. Workers beyond the parts stay idle. */
void workpool_run(workpool *p, int parts, void (*fn)(void *ctx, int part, int parts), void *ctx);

#endif
