/* runstats.h: what a program cost, written at exit for whoever ran it.
 *
 * When the environment names a file in ANEMAKE_STATS, the program writes one
 * line there as it exits (exit() or a return from main, dying included):
 *   wall_s=12.31 cpu_s=20.05 rss_mb=812.4 anon_mb=95.2
 * wall time since set_progname(), CPU time (user + system, of the process
 * and the children it waited for), peak resident memory (getrusage's
 * ru_maxrss: VmHWM on Linux, bytes on macOS) and, on Linux only, the peak
 * anonymous memory: RssAnon of /proc/self/status, which has no high-water
 * mark of its own, sampled every RUNSTATS_SAMPLE_MS by a thread and once
 * more at exit. mk/step.sh prints it as make's one-line summary of a step;
 * make bench collects it. Nothing happens without the variable.
 */
#ifndef ANEMAKE_RUNSTATS_H
#define ANEMAKE_RUNSTATS_H

#define RUNSTATS_SAMPLE_MS 5

/* Arm the exit report when ANEMAKE_STATS is set (set_progname calls it;
 * a second call does nothing). */
void runstats_start(void);

#endif
