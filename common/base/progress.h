/* progress.h: where a long-running stage is, on stderr.
 *
 * A stage that works through a known number of items (the tensors of a
 * part, the parts it compiles, the tokens of a smoketest) brackets the work
 * with progress_begin() and progress_end() and calls progress_add() after
 * each item. There is one report per process: hooks in shared loops need no
 * plumbing, and a progress_begin() inside another one only counts.
 *
 * What is shown, always on stderr (outputs never change):
 *   "ffn: llama_FFN_lut6_chunk_01of08.mlpackage: tensor 3 of 36, 812 of 2400 MB, 120 MB/s, ETA 0:13"
 * (the rate and the ETA by bytes when the caller knows them, else by items).
 * Nothing for the first PROGRESS_DELAY seconds: short runs stay silent. Then,
 * on a terminal, one line rewritten in place (\r) at most a few times a
 * second; otherwise a plain line every PROGRESS_EVERY seconds, so a log does
 * not fill up. progress_end() closes with "... N tensors, X MB in T s" when
 * anything was shown. --quiet (verbosity 0) shows nothing.
 *
 * ANEMAKE_PROGRESS (environment): 0 never; 1 a plain line at every item from
 * the start (logs, tests); unset or anything else: as above. The test
 * scripts set 0, so stderr they compare does not depend on the machine's speed.
 */
#ifndef ANEMAKE_PROGRESS_H
#define ANEMAKE_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

#define PROGRESS_DELAY 3.0  /* seconds of silence first */
#define PROGRESS_EVERY 10.0 /* seconds between plain lines */
#define PROGRESS_REDRAW 0.25 /* seconds between terminal redraws */

/* Start a report: `what` names the job (e.g. a part's file name; copied),
 * `unit` the items ("tensor", "part", "token"), `items` how many, `bytes`
 * their total size (0: unknown, rate and ETA by items). */
void progress_begin(const char *what, const char *unit, uint64_t items, uint64_t bytes);
/* `items` more done, `bytes` of them. Safe from several threads. */
void progress_add(uint64_t items, uint64_t bytes);
/* `bytes` more of the item under way (a large tensor's groups): shown, and
 * replaced by what progress_add() says when the item is done. */
void progress_partial(uint64_t bytes);
/* The end of the report begun last (the closing line when any was shown). */
void progress_end(void);

/* For tests: the clock (seconds, any origin; NULL: CLOCK_MONOTONIC), where
 * the report goes and whether that is a terminal (NULL: stderr, isatty). */
void progress_set_clock(double (*now)(void));
void progress_set_output(FILE *out, int tty);

#endif
