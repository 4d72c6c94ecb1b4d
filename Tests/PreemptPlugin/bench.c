/*
 * The hook's cost per scheduling pass, by cluster size (scripts/plugin-tests bench).
 *
 * Usage: preempt-plugin-bench PLUGIN.so WORK_DIR [--nodes N,N,...] [--jobs-per-node K]
 *                             [--seconds S] [--markdown] [--stock PLUGIN.so]
 *
 * For each size: N nodes x 8 GPUs (NVLink islands of 4), K running 1-GPU batch jobs per node
 * (default 8: every GPU busy), a 4-GPU inference preemptor in the guaranteed class. Three kinds
 * of pass, each in slurmctld's order (harness.h h_pass):
 *   (a) new preemptor   a preemptor the plugin has not seen, the cluster unchanged
 *   (b) nothing changed the same preemptor again, nothing changed since its last pass
 *   (c) one job ended   the same preemptor after one running job completed (its record stays
 *                       in job_list, as slurmctld keeps it until MinJobAge; outside the
 *                       measurement, a new job then takes its GPU and the record is purged)
 * and the floor: list_for_each over the same job_list with a hook that does nothing, measured in
 * the same run, and (--stock) the same pass of (a) answered by a stock preempt plugin of the
 * release (preempt/partition_prio: what Slurm costs without TopoPreempt). PRIO is asked once
 * per candidate (Slurm's list_sort asks it in every comparison, for stock and ours alike).
 * Each kind: p50 / p99 / max in microseconds, p50 and p99 as a ratio to the floor's, p50 as a
 * ratio to stock's, the plugin's own deciding time in the pass (p50 / p99: planning, reusing or
 * partially planning, from its counters; the rest of the pass is its per-job answers and
 * Slurm's own walk, sort and mode loop) and what the pass allocated (malloc/calloc/realloc/aligned calls and bytes, counted
 * by this program's allocator wrappers, for the plugin, the planner and libslurmfull alike).
 */
#include "harness.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- counting allocations (every object of the process calls these) --------------------------- */

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static __thread int counting;
static uint64_t alloc_calls, alloc_bytes;

void *malloc(size_t n)
{
	if (counting) { alloc_calls++; alloc_bytes += n; }
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
	if (counting) { alloc_calls++; alloc_bytes += n * m; }
	return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
	if (counting) { alloc_calls++; alloc_bytes += n; }
	return __libc_realloc(p, n);
}

void free(void *p)
{
	__libc_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
	void *p;
	if (counting) { alloc_calls++; alloc_bytes += n; }
	p = __libc_memalign(align, n);
	if (!p)
		return 12; /* ENOMEM */
	*out = p;
	return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
	if (counting) { alloc_calls++; alloc_bytes += n; }
	return __libc_memalign(align, n);
}

void *memalign(size_t align, size_t n)
{
	if (counting) { alloc_calls++; alloc_bytes += n; }
	return __libc_memalign(align, n);
}

/* ---- measurement ------------------------------------------------------------------------------ */

typedef struct series {
	double *us;
	int count, cap;
	uint64_t calls, bytes;
	struct series *decide;     /* the plugin's own deciding time per pass */
	uint64_t kept, partial, full;
} series_t;

static void _add(series_t *s, double us)
{
	if (s->count == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->us = realloc(s->us, s->cap * sizeof(double));
	}
	s->us[s->count++] = us;
}

static int _cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double _pct(series_t *s, double p)
{
	int i;
	if (!s->count)
		return 0;
	qsort(s->us, s->count, sizeof(double), _cmp);
	i = (int)(p * (s->count - 1) + 0.5);
	return s->us[i];
}

static h_pass_t result;

static double _timed_pass(job_record_t *preemptor, series_t *s)
{
	uint64_t t0, t1, c0 = alloc_calls, b0 = alloc_bytes;
	topo_preempt_stats_t before, after;

	h_stats(&before);
	counting = 1;
	t0 = h_now_ns();
	h_pass(preemptor, &result);
	t1 = h_now_ns();
	counting = 0;
	h_stats(&after);
	s->calls += alloc_calls - c0;
	s->bytes += alloc_bytes - b0;
	_add(s, (t1 - t0) / 1000.0);
	if (s->decide) {
		_add(s->decide, (after.decide_ns - before.decide_ns) / 1000.0);
		s->kept += after.kept - before.kept;
		s->partial += after.partial - before.partial;
		s->full += after.full - before.full;
	}
	return (t1 - t0) / 1000.0;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t _rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static const char *conf =
	"DefaultLevel=nvlink\nDefaultMode=guaranteed\nBasePolicy=partition_prio\n"
	"PlanTimeBudget=10000\n"
	"PreemptorClass=inference Partitions=infer Level=nvlink Mode=guaranteed\n"
	"PreemptibleClass=batch Partitions=batch\n";

static void _row(int nodes, int jobs, const char *kind, series_t *s, series_t *floor_s, series_t *stock_s,
		 bool markdown)
{
	double p50 = _pct(s, 0.5), p99 = _pct(s, 0.99), max = _pct(s, 1.0);
	double f50 = _pct(floor_s, 0.5), f99 = _pct(floor_s, 0.99), s50 = _pct(stock_s, 0.5);
	char stock_ratio[32] = "-", decide[96] = "-";

	if (stock_s->count && s50 > 0)
		snprintf(stock_ratio, sizeof(stock_ratio), "%.1f", p50 / s50);
	if (s->decide && s->decide->count)
		snprintf(decide, sizeof(decide), "%.0f / %.0f (kept %" PRIu64 ", partial %" PRIu64 ", full %" PRIu64 ")",
			 _pct(s->decide, 0.5), _pct(s->decide, 0.99), s->kept, s->partial, s->full);
	if (markdown)
		printf("| %d | %d | %s | %d | %.0f | %.0f | %.0f | %.1f | %.1f | %s | %s | %.0f | %.1f |\n", nodes, jobs, kind,
		       s->count, p50, p99, max, f50 > 0 ? p50 / f50 : 0, f99 > 0 ? p99 / f99 : 0, stock_ratio, decide,
		       s->count ? (double)s->calls / s->count : 0, s->count ? s->bytes / 1024.0 / s->count : 0);
	else
		printf("%6d nodes %6d jobs  %-20s n=%-5d p50 %9.1f us  p99 %9.1f us  max %9.1f us  x floor p50 %6.1f p99 %6.1f  x stock p50 %5s  decide p50/p99 us %s  allocs/pass %7.0f  KiB/pass %8.1f\n",
		       nodes, jobs, kind, s->count, p50, p99, max, f50 > 0 ? p50 / f50 : 0, f99 > 0 ? p99 / f99 : 0,
		       stock_ratio, decide, s->count ? (double)s->calls / s->count : 0, s->count ? s->bytes / 1024.0 / s->count : 0);
	fflush(stdout);
}

static bool use_stock;

static void _size(int nodes, int per_node, double seconds, bool markdown)
{
	part_record_t *batch, *infer;
	series_t floor_s = { 0 }, a = { 0 }, b = { 0 }, c = { 0 }, st = { 0 };
	series_t da = { 0 }, db = { 0 }, dc = { 0 };
	job_record_t *p;
	uint32_t next_id = 1, pending_id = 1u << 30;
	int n, k, i, jobs = nodes * per_node;
	uint64_t deadline;

	a.decide = &da;
	b.decide = &db;
	c.decide = &dc;
	h_plugin_fini();
	h_cluster(nodes, 8, 4);
	h_topo_aware_conf(conf);
	batch = h_partition("batch", 1, NO_VAL16, 0);
	infer = h_partition("infer", 10, NO_VAL16, 0);
	for (n = 0; n < nodes; n++)
		for (k = 0; k < per_node && k < 8; k++)
			h_run(next_id++, batch, n, 1ull << k, 60 + (long)(_rand() % 86400));
	h_plugin_init();
	/* Warm-up: the planner loads the topology and configuration at its first call. */
	p = h_pending(pending_id++, infer, 4, 1, NULL);
	h_pass(p, &result);
	h_end(p);

	/* Interleaved, so that drift (frequency, other load) hits every kind alike. */
	deadline = h_now_ns() + (uint64_t)(seconds * 1e9);
	for (i = 0; (i < 20) || ((h_now_ns() < deadline) && (i < 2000)); i++) {
		uint64_t t0 = h_now_ns();
		job_record_t *victim;
		int node, gpu;

		h_floor_pass();
		_add(&floor_s, (h_now_ns() - t0) / 1000.0);

		/* (a) a preemptor never seen; the same pass answered by stock Slurm */
		p = h_pending(pending_id++, infer, 4, 1, NULL);
		if (use_stock) {
			h_use_stock(true);
			_timed_pass(p, &st);
			h_use_stock(false);
		}
		_timed_pass(p, &a);
		/* (b) the same again, nothing changed */
		_timed_pass(p, &b);
		/* (c) one running job ends, then the same preemptor */
		do {
			victim = h_job(1 + (uint32_t)(_rand() % (next_id - 1)));
		} while (!victim);
		node = (int)bit_ffs(victim->node_bitmap);
		{
			gres_state_t *g = list_peek(victim->gres_list_alloc);
			gres_job_state_t *gj = g->gres_data;
			gpu = (int)bit_ffs(gj->gres_bit_alloc[0]);
		}
		h_complete(victim);
		_timed_pass(p, &c);
		/* A new job takes the GPU, the completed record is purged; the preemptor leaves (it
		 * started or was cancelled). */
		h_end(victim);
		h_run(next_id++, batch, node, 1ull << gpu, 0);
		h_end(p);
	}
	_row(nodes, jobs, "floor (no-op walk)", &floor_s, &floor_s, &st, markdown);
	if (use_stock)
		_row(nodes, jobs, "stock partition_prio", &st, &floor_s, &st, markdown);
	_row(nodes, jobs, "(a) new preemptor", &a, &floor_s, &st, markdown);
	_row(nodes, jobs, "(b) nothing changed", &b, &floor_s, &st, markdown);
	_row(nodes, jobs, "(c) one job ended", &c, &floor_s, &st, markdown);
	free(st.us);
	free(da.us);
	free(db.us);
	free(dc.us);
	free(floor_s.us);
	free(a.us);
	free(b.us);
	free(c.us);
}

int main(int argc, char **argv)
{
	h_options_t o = { 0 };
	char sizes[256] = "256,1000,10000", *tok, *save = NULL;
	int per_node = 8, i;
	double seconds = 5;
	bool markdown = false;
	char log[4096];
	const char *stock = NULL;

	if (argc < 3) {
		fprintf(stderr, "usage: %s PLUGIN.so WORK_DIR [--nodes N,N,...] [--jobs-per-node K] [--seconds S] [--markdown]\n", argv[0]);
		return 2;
	}
	for (i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--nodes") && (i + 1 < argc))
			snprintf(sizes, sizeof(sizes), "%s", argv[++i]);
		else if (!strcmp(argv[i], "--jobs-per-node") && (i + 1 < argc))
			per_node = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--seconds") && (i + 1 < argc))
			seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--markdown"))
			markdown = true;
		else if (!strcmp(argv[i], "--stock") && (i + 1 < argc))
			stock = argv[++i];
		else {
			fprintf(stderr, "preempt-plugin-bench: unknown argument '%s'\n", argv[i]);
			return 2;
		}
	}
	if ((per_node < 1) || (per_node > 8) || (seconds <= 0)) {
		fprintf(stderr, "preempt-plugin-bench: --jobs-per-node is 1..8, --seconds > 0\n");
		return 2;
	}
	snprintf(log, sizeof(log), "%s/bench.log", argv[2]);
	o.plugin = argv[1];
	o.work_dir = argv[2];
	o.log_file = log;
	o.log_level = LOG_LEVEL_INFO;
	if (h_start(&o))
		return 2;
	if (stock) {
		if (h_load_stock(stock))
			return 2;
		use_stock = true;
	}
	printf("preempt-plugin-bench: Slurm %s, %s, %d running 1-GPU jobs per 8-GPU node, preemptor 4 GPUs at nvlink (guaranteed)\n",
	       SLURM_VERSION_STRING, argv[1], per_node);
	if (markdown)
		printf("| nodes | running jobs | pass | passes | p50 µs | p99 µs | max µs | p50 × floor | p99 × floor | p50 × stock | deciding p50 / p99 µs | allocations/pass | KiB allocated/pass |\n"
		       "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n");
	for (tok = strtok_r(sizes, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int nodes = atoi(tok);
		if ((nodes < 1) || (nodes > 100000)) {
			fprintf(stderr, "preempt-plugin-bench: node count '%s' out of 1..100000\n", tok);
			return 2;
		}
		_size(nodes, per_node, seconds, markdown);
	}
	printf("preempt-plugin-bench: plan lines in %s: %d\n", log, h_log_count(" plan "));
	h_stop();
	return 0;
}
