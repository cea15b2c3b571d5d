/* sys.h -- clocks, random numbers and what /proc says about a process or the
 * machine. */
#ifndef LOADGEN_SYS_H
#define LOADGEN_SYS_H

#include <stdint.h>

uint64_t now_ns(void);           /* CLOCK_MONOTONIC: comparable across processes */
uint64_t rnd64(void);            /* xorshift64*, seeded per process by rnd_seed() */
void rnd_seed(uint64_t seed);
uint64_t self_cpu_ns(void);      /* this process: user + system */

/* CPU time a process has used, user + system, all threads, in ns: from
 * /proc/<pid>/task/<tid>/schedstat (exact) or, without schedstats, from
 * /proc/<pid>/stat (clock ticks). -1: no such process. */
int64_t proc_cpu_ns(int pid);
/* A "VmRSS:"-style line of /proc/<pid>/status, in kB; -1 if absent. */
long proc_status_kb(int pid, const char *key);

/* The machine, for reports: online cores, kernel release, CPU model. */
typedef struct machine_info {
    int cores;
    char kernel[64];
    char cpu[128];
    char hostname[64];
} machine_info_t;
void machine_info(machine_info_t *m);

#endif
