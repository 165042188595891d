/* Shared machinery of the microbenchmarks: random inputs (never zeros), timing many dispatches of one
 * chain with timestamps, the streaming-read ceiling, and the table/JSON report.
 *
 * Method: check the result against the CPU reference once (NaN-poisoned output), then record many
 * dispatches in one chain with a timestamp pair around each, rotating through enough copies of the
 * inputs that the bytes touched between two uses of a copy exceed 128 MiB (over twice the largest L2
 * we target), run it once to warm up and time the second run; report the median dispatch time, the
 * bytes the kernel must move per call, GB/s and the fraction of the read ceiling. The ceiling is
 * kernels/stream_read.comp reading a buffer far larger than L2 (uvec4 loads), measured in the same
 * process. */
#ifndef VKLLM_BENCHUTIL_H
#define VKLLM_BENCHUTIL_H

#include <stdint.h>
#include <stdio.h>

#include "vkllm/device.h"
#include "vkllm/ops.h"

#define BU_ROTATE_BYTES (128ull << 20)

extern int bu_quick;          /* --quick: small sizes, few repetitions (smoke run; numbers mean nothing) */
extern double bu_ceiling_gbs; /* set by bu_measure_ceiling */

uint64_t bu_next_u64(void);
float bu_normal(void);
void bu_seed(uint64_t s);
/* Prints the device's error for `what` and exits 1. */
void bu_die(vkllm_device *dev, const char *what);
#define BU_CK(dev, call) do { if (call) bu_die(dev, #call); } while (0)

typedef void (*bu_record_fn)(vkllm_chain *c, uint32_t i, void *user);
/* Records n dispatches (record(i) for i in 0..n-1) with timestamps; runs twice; the median and the
 * minimum dispatch time of the second run, ns. */
void bu_time_dispatches(vkllm_device *dev, uint32_t n, bu_record_fn record, void *user, double *median_ns, double *min_ns);
/* The same for n calls of record that each record `per` dispatches: median[j] / min_ns[j] of dispatch
 * j's duration (j < per), and [per] of a call's span, its first dispatch's start to its last one's
 * end (barriers between them included). median_ns and min_ns hold per + 1 values. */
void bu_time_calls(vkllm_device *dev, uint32_t n, uint32_t per, bu_record_fn record, void *user, double *median_ns, double *min_ns);
/* How many input copies to rotate through, and how many dispatches to time, for `call_bytes`. */
void bu_plan(uint64_t call_bytes, uint32_t *copies, uint32_t *n_disp);
/* A device buffer of random floats. */
vkllm_buffer bu_random_buffer(vkllm_device *dev, uint64_t bytes);
uint64_t bu_round256(uint64_t x);
double bu_nmse(const float *out, const float *ref, size_t n);
/* Measures the streaming-read ceiling and reports it as the first row. */
void bu_measure_ceiling(vkllm_device *dev);

/* Opens the device and the report (markdown on stdout; JSON if json_path); parses the common flags
 * (--quick --json --device --seed) and returns the device. `title` names the benchmark. */
vkllm_device *bu_open(int argc, char **argv, const char *title);
/* One row. flops may be 0 (then no TFLOP/s column value). */
void bu_report(const char *kernel, const char *shape, uint64_t bytes, uint64_t flops, double med_ns, double min_ns, double nmse);
void bu_close(vkllm_device *dev);
#endif
