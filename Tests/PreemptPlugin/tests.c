/*
 * preempt/topo_aware's own tests: the compiled plugin driven pass after pass the way slurmctld
 * drives it (harness.h), with the Swift planner beside it in PluginDir.
 *
 * Usage: preempt-plugin-tests PLUGIN.so WORK_DIR [FILTER]
 * Prints one line per test and a summary; exit status 1 when any check failed.
 */
#include "harness.h"

#include <dlfcn.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, checks, tests_run, tests_failed;
static const char *current;

#define CHECK(cond, ...)                                                              \
	do {                                                                          \
		checks++;                                                             \
		if (!(cond)) {                                                        \
			failures++;                                                   \
			fprintf(stderr, "  %s:%d: %s: check failed: %s: ", __FILE__,  \
				__LINE__, current, #cond);                            \
			fprintf(stderr, __VA_ARGS__);                                 \
			fputc('\n', stderr);                                          \
		}                                                                     \
	} while (0)

static const char *conf_partition =
	"DefaultLevel=nvlink\nDefaultMode=guaranteed\nBasePolicy=partition_prio\n"
	"PreemptorClass=inference Partitions=infer Level=nvlink Mode=guaranteed\n"
	"PreemptorClass=besteffort Partitions=infer-be Level=nvlink Mode=best-effort\n"
	"PreemptibleClass=batch Partitions=batch\n";

static const char *conf_qos =
	"DefaultLevel=nvlink\nDefaultMode=guaranteed\nBasePolicy=qos\n"
	"PreemptorClass=inference QOS=infer Level=nvlink Mode=guaranteed\n"
	"PreemptibleClass=batch QOS=batch\n";

static part_record_t *batch, *infer, *infer_be;

/* One node of 8 GPUs in NVLink islands 0-3 and 4-7, partitions batch (tier 1) and infer (10). */
static void _lab(int nodes)
{
	h_cluster(nodes, 8, 4);
	h_topo_aware_conf(conf_partition);
	h_conf(PREEMPT_MODE_REQUEUE, NO_VAL);
	batch = h_partition("batch", 1, NO_VAL16, 0);
	infer = h_partition("infer", 10, NO_VAL16, 0);
	infer_be = h_partition("infer-be", 10, NO_VAL16, 0);
	h_plugin_init();
}

/* The lab's fill of node 0: 2 GPUs (0-1), 2 (4-5), 2 (2-3), 1 (6), 1 (7): jobs 101..105. */
static void _lab_fill(int node)
{
	uint32_t base = 100 + 10 * node;
	h_run(base + 1, batch, node, 0x03, 500);
	h_run(base + 2, batch, node, 0x30, 400);
	h_run(base + 3, batch, node, 0x0c, 300);
	h_run(base + 4, batch, node, 0x40, 200);
	h_run(base + 5, batch, node, 0x80, 100);
}

static bool _has(const uint32_t *ids, int count, uint32_t id)
{
	int i;
	for (i = 0; i < count; i++)
		if (ids[i] == id)
			return true;
	return false;
}

static char *_ids(const uint32_t *ids, int count)
{
	static char buf[4][512];
	static int which;
	char *out = buf[which++ & 3];
	int i, used = 0;

	out[0] = '\0';
	for (i = 0; (i < count) && (used < 480); i++)
		used += snprintf(out + used, 512 - used, "%s%u", i ? "," : "", ids[i]);
	return out;
}

/* ---- planned preemption --------------------------------------------------------------------- */

static void test_lab_guaranteed(void)
{
	h_pass_t r;
	job_record_t *p;

	_lab(1);
	_lab_fill(0);
	p = h_pending(200, infer, 4, 1, NULL);
	h_pass(p, &r);
	CHECK(r.count == 5, "candidates %s", _ids(r.ids, r.count));
	CHECK(r.removable == 2 && _has(r.removable_ids, 2, 101) && _has(r.removable_ids, 2, 103),
	      "removable %s, expected the jobs on GPUs 0-1 and 2-3 (island 0-3)", _ids(r.removable_ids, r.removable));
	CHECK(r.count >= 2 && _has(r.ids, 2, 101) && _has(r.ids, 2, 103),
	      "planned victims sort first: %s", _ids(r.ids, r.count));
	CHECK(h_log_count("JobId=200 plan ") == 1, "one plan line logged");
	CHECK(r.preemptable_calls == 6, "preemptable asked for every job of job_list (%d)", r.preemptable_calls);
	/* The same pass again: same answer, no second plan line. */
	h_pass(p, &r);
	CHECK(r.removable == 2 && _has(r.removable_ids, 2, 101) && _has(r.removable_ids, 2, 103),
	      "second pass removable %s", _ids(r.removable_ids, r.removable));
	CHECK(h_log_count("JobId=200 plan ") == 1, "still one plan line: %d", h_log_count("JobId=200 plan "));
}

static void test_best_effort_keeps_base_candidates(void)
{
	h_pass_t r;

	_lab(1);
	_lab_fill(0);
	h_pass(h_pending(200, infer_be, 4, 1, NULL), &r);
	CHECK(r.removable == 5, "best-effort: every base candidate stays removable (%d)", r.removable);
	CHECK(r.count == 5 && _has(r.ids, 2, 101) && _has(r.ids, 2, 103), "planned victims first: %s", _ids(r.ids, r.count));
}

static void test_not_a_preemptor_gets_base_policy(void)
{
	h_pass_t r;
	part_record_t *other;
	int i;

	_lab(1);
	_lab_fill(0);
	other = h_partition("other", 10, NO_VAL16, 0);
	h_pass(h_pending(200, other, 4, 1, NULL), &r);
	CHECK(r.removable == 5, "all five batch jobs removable (%d)", r.removable);
	for (i = 0; i < r.count; i++)
		CHECK(r.modes[i] == PREEMPT_MODE_REQUEUE, "job %u mode %u", r.ids[i], r.modes[i]);
	CHECK(h_prio(h_job(101)) == ((1u << 16) | 1) + 256, "base prio is tier<<16|nodes, shifted by 256: %u",
	      h_prio(h_job(101)));
}

static void test_fits_on_free_gpus(void)
{
	h_pass_t r;

	_lab(2);
	_lab_fill(0);
	h_pass(h_pending(200, infer, 4, 1, NULL), &r);
	CHECK(r.removable == 5, "free aligned GPUs on node 2: base policy answers (%d removable)", r.removable);
}

static void test_no_plan_guaranteed_waits(void)
{
	h_pass_t r;
	int i;

	_lab(1);
	_lab_fill(0);
	/* An 8-GPU-per-node job on a 1-node cluster at level nvlink (islands of 4): no aligned plan. */
	h_pass(h_pending(200, infer, 8, 1, NULL), &r);
	CHECK(r.removable == 0, "guaranteed and no aligned group: nothing removable (%s)", _ids(r.removable_ids, r.removable));
	for (i = 0; i < r.count; i++)
		CHECK(r.modes[i] == PREEMPT_MODE_OFF, "job %u mode %u", r.ids[i], r.modes[i]);
	h_pass(h_job(200), &r);
	CHECK(h_log_count("JobId=200 no plan") == 1, "logged once over two passes (%d)", h_log_count("JobId=200 no plan"));
}

/* ---- the base policy ----------------------------------------------------------------------- */

static void test_partition_prio_semantics(void)
{
	part_record_t *same, *off, *low;
	job_record_t *p, *j_same, *j_off, *j_batch;

	_lab(1);
	same = h_partition("peer", 10, NO_VAL16, 0);
	off = h_partition("pinned", 1, PREEMPT_MODE_OFF, 0);
	low = h_partition("low", 0, NO_VAL16, 0);
	j_batch = h_run(1, batch, 0, 0x01, 100);
	j_same = h_run(2, same, 0, 0x02, 100);
	j_off = h_run(3, off, 0, 0x04, 100);
	p = h_pending(200, low, 1, 1, NULL);
	CHECK(!h_preemptable(j_batch, p), "tier 0 does not preempt tier 1");
	p = h_pending(201, same, 1, 1, NULL);
	CHECK(h_preemptable(j_batch, p), "tier 10 preempts tier 1");
	CHECK(!h_preemptable(j_same, p), "equal tiers do not preempt");
	CHECK(!h_preemptable(j_off, p), "a partition with PreemptMode=OFF is never preempted");
	CHECK(h_preempt_check(p, j_batch), "job_preempt_check: higher tier, shared nodes");
	CHECK(!h_preempt_check(j_batch, p), "job_preempt_check: lower tier");
	CHECK(h_mode(j_batch) == PREEMPT_MODE_REQUEUE, "cluster PreemptMode=REQUEUE: %u", h_mode(j_batch));
	batch->preempt_mode = PREEMPT_MODE_CANCEL;
	CHECK(h_mode(j_batch) == PREEMPT_MODE_CANCEL, "the partition's PreemptMode wins: %u", h_mode(j_batch));
	batch->grace_time = 15;
	CHECK(h_grace(j_batch) == 15, "GraceTime of the preemptee's partition: %u", h_grace(j_batch));
	h_conf(PREEMPT_MODE_REQUEUE | PREEMPT_MODE_GANG, NO_VAL);
	CHECK(h_mode(j_same) == PREEMPT_MODE_REQUEUE, "GANG is not part of the mode: %u", h_mode(j_same));
}

static void test_qos_semantics(void)
{
	slurmdb_qos_rec_t *q_batch, *q_infer, *q_peer, *q_within;
	job_record_t *b, *b2, *p, *w1, *w2;
	h_pass_t r;

	h_cluster(1, 8, 4);
	h_topo_aware_conf(conf_qos);
	h_conf(PREEMPT_MODE_REQUEUE, NO_VAL);
	batch = h_partition("batch", 1, NO_VAL16, 0);
	h_plugin_init();
	q_batch = h_qos("batch", 10, PREEMPT_MODE_REQUEUE, NULL);
	q_peer = h_qos("peer", 10, 0, NULL);
	q_within = h_qos("within", 10, PREEMPT_MODE_REQUEUE | PREEMPT_MODE_WITHIN, NULL);
	q_infer = h_qos("infer", 100, 0, "batch");
	q_batch->grace_time = 30;
	b = h_run(1, batch, 0, 0x03, 100);
	b->qos_ptr = q_batch;
	b2 = h_run(2, batch, 0, 0x0c, 100);
	b2->qos_ptr = q_peer;
	p = h_pending(200, batch, 2, 1, NULL);
	p->qos_ptr = q_infer;
	CHECK(h_preemptable(b, p), "QOS infer lists batch in Preempt=");
	CHECK(!h_preemptable(b2, p), "QOS peer is not in infer's Preempt= list");
	CHECK(h_grace(b) == 30, "GraceTime of the preemptee's QOS: %u", h_grace(b));
	CHECK(h_prio(b) == ((10u << 16) | 1) + 256, "QOS priority in the high bits: %u", h_prio(b));
	w1 = h_run(3, batch, 0, 0x30, 100);
	w1->qos_ptr = q_within;
	w1->priority = 10;
	w2 = h_pending(201, batch, 1, 1, NULL);
	w2->qos_ptr = q_within;
	w2->priority = 20;
	CHECK(h_preemptable(w1, w2), "WITHIN: same QOS, higher job priority preempts");
	w2->priority = 5;
	CHECK(!h_preemptable(w1, w2), "WITHIN: same QOS, lower job priority does not");
	CHECK(h_mode(w1) == PREEMPT_MODE_REQUEUE, "WITHIN is not part of the mode: %u", h_mode(w1));
	/* A planned preemption over QOS: the infer job takes island 0-3 from job 1. */
	h_pass(p, &r);
	CHECK(r.removable == 1 && r.removable_ids[0] == 1, "QOS plan: removable %s", _ids(r.removable_ids, r.removable));
}

static void test_exempt_time(void)
{
	h_pass_t r;

	_lab(1);
	/* Island 0-3: one old job; island 4-7: one young job (cheaper: fewer GPU-seconds lost). */
	h_run(1, batch, 0, 0x0f, 5000);
	h_run(2, batch, 0, 0xf0, 10);
	h_pass(h_pending(200, infer, 4, 1, NULL), &r);
	CHECK(r.removable == 1 && r.removable_ids[0] == 2, "without PreemptExemptTime the young job goes: %s",
	      _ids(r.removable_ids, r.removable));
	h_plugin_fini();
	h_conf(PREEMPT_MODE_REQUEUE, 600);
	h_plugin_init();
	h_pass(h_pending(201, infer, 4, 1, NULL), &r);
	CHECK(r.removable == 1 && r.removable_ids[0] == 1, "PreemptExemptTime=600 spares the 10 s old job: %s",
	      _ids(r.removable_ids, r.removable));
}

/* ---- kept plans, signalled jobs, state changes ------------------------------------------------- */

static void test_signalled_victims_keep_plan(void)
{
	h_pass_t r;
	job_record_t *p;

	_lab(1);
	_lab_fill(0);
	p = h_pending(200, infer, 4, 1, NULL);
	h_pass(p, &r);
	CHECK(r.removable == 2, "plan: %s", _ids(r.removable_ids, r.removable));
	/* Slurm requeues the first victim, signals the second (GraceTime). */
	h_end(h_job(101));
	h_signal(h_job(103));
	h_pass(p, &r);
	CHECK(r.removable == 1 && r.removable_ids[0] == 103,
	      "the signalled victim keeps its real mode, nothing new is removable: %s", _ids(r.removable_ids, r.removable));
	CHECK(h_mode(h_job(102)) == PREEMPT_MODE_OFF, "a non-victim candidate is OFF: %u", h_mode(h_job(102)));
	h_end(h_job(103));
	h_pass(p, &r);
	CHECK(r.removable == 0, "victims gone, GPUs 0-3 free: nothing to remove (%s)", _ids(r.removable_ids, r.removable));
}

static void test_kept_plan_dropped_when_gpus_taken(void)
{
	h_pass_t r;
	job_record_t *p;

	_lab(1);
	_lab_fill(0);
	p = h_pending(200, infer, 4, 1, NULL);
	h_pass(p, &r);
	h_end(h_job(101));
	h_pass(p, &r); /* executing */
	/* Another job starts on GPUs 0-1 before the preemptor does. */
	h_run(150, batch, 0, 0x03, 0);
	h_log_clear();
	h_pass(p, &r);
	CHECK(h_log_count("dropped") == 1, "the kept plan is dropped (log: %d)", h_log_count("dropped"));
	CHECK(r.removable >= 1, "planned again: %s", _ids(r.removable_ids, r.removable));
}

static void test_node_down_replans(void)
{
	h_pass_t r;
	job_record_t *p;
	int i;

	_lab(2);
	_lab_fill(0);
	_lab_fill(1);
	p = h_pending(200, infer, 4, 1, NULL);
	h_pass(p, &r);
	CHECK(r.removable == 2, "plan on one node: %s", _ids(r.removable_ids, r.removable));
	if (r.removable != 2)
		return;
	/* Drain the node of the plan: the next pass plans on the other node. */
	{
		int node = (r.removable_ids[0] < 110) ? 0 : 1;
		h_node_state(node, NODE_STATE_DRAIN, true);
		h_touch();
		h_pass(p, &r);
		CHECK(r.removable == 2, "planned again: %s", _ids(r.removable_ids, r.removable));
		for (i = 0; i < r.removable; i++)
			CHECK((r.removable_ids[i] < 110) != (node == 0), "victim %u is on the drained node", r.removable_ids[i]);
	}
}

/* A node drains while no job starts or ends on it: the planner's copy of its state is not read
 * again (nothing noted it), but the decision's target nodes are checked live: a plan on it is
 * never answered, the planner is asked again with the node read. */
static void test_drained_node_never_a_target(void)
{
	h_pass_t r;
	job_record_t *a, *b;
	topo_preempt_stats_t before, after;
	int i, drained;

	_lab(2);
	_lab_fill(0);
	_lab_fill(1);
	a = h_pending(200, infer, 4, 1, NULL);
	h_pass(a, &r);
	CHECK(r.removable == 2, "A plans on one node: %s", _ids(r.removable_ids, r.removable));
	if (r.removable != 2)
		return;
	/* A keeps its plan (pending, higher ranked). The cheapest plan for B is now an island of
	 * the other node (2 victims), which drains; the next is the plan node's other island (3). */
	drained = (r.removable_ids[0] < 110) ? 1 : 0;
	h_node_state(drained, NODE_STATE_DRAIN, true);
	b = h_pending(201, infer, 4, 1, NULL);
	h_stats(&before);
	h_pass(b, &r);
	h_stats(&after);
	for (i = 0; i < r.removable; i++)
		CHECK((r.removable_ids[i] < 110) != (drained == 0), "victim %u is on the drained node",
		      r.removable_ids[i]);
	CHECK(r.removable == 3, "B plans on the other island of A's node: %s", _ids(r.removable_ids, r.removable));
	CHECK(after.full == before.full + 1, "one whole-cluster decision (%" PRIu64 ")", after.full - before.full);
}

/* The planner lost what it kept (reset, or a slot snapshot it never saw): it asks for
 * everything and the answer is the same as before. */
static void test_planner_resync(void)
{
	h_pass_t r;
	job_record_t *p;
	uint32_t first[8];
	int count, i;
	void *planner;
	void (*reset)(void);
	char path[4096];

	_lab(2);
	_lab_fill(0);
	_lab_fill(1);
	p = h_pending(200, infer, 4, 1, NULL);
	h_pass(p, &r);
	count = r.removable;
	CHECK(count == 2, "a plan: %s", _ids(r.removable_ids, r.removable));
	memcpy(first, r.removable_ids, sizeof(first));
	snprintf(path, sizeof(path), "%s/job_submit_topo_aware.so", slurm_conf.plugindir);
	planner = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	reset = planner ? (void (*)(void))dlsym(planner, "TopoAwareSwift_preemptReset") : NULL;
	CHECK(reset != NULL, "planner loaded from %s", path);
	if (!reset)
		return;
	reset();
	dlclose(planner);
	/* Another preemptor: a whole-cluster decision on a planner that kept nothing. */
	h_log_clear();
	p = h_pending(201, infer, 4, 1, NULL);
	h_pass(p, &r);
	CHECK(r.removable == count, "the same plan after the resync: %s", _ids(r.removable_ids, r.removable));
	for (i = 0; (i < r.removable) && (i < count); i++)
		CHECK(r.removable_ids[i] == first[i], "victim %u, was %u", r.removable_ids[i], first[i]);
}

static void test_missing_and_corrupt_gres(void)
{
	h_pass_t r;
	job_record_t *p;

	_lab(3);
	_lab_fill(0);
	_lab_fill(1);
	_lab_fill(2);
	h_node_gres(0, -1);   /* no GRES state at all */
	h_node_gres(1, 9);    /* Slurm counts 9 GPUs, gres.conf 8 */
	p = h_pending(200, infer, 4, 1, NULL);
	h_pass(p, &r);
	CHECK(r.removable == 2 && r.removable_ids[0] > 120 && r.removable_ids[1] > 120,
	      "planned on the one consistent node: %s", _ids(r.removable_ids, r.removable));
	CHECK(h_log_count("gpu00002: Slurm counts 9 GPUs") == 1, "the inconsistent node is logged");
	h_pass(p, &r);
	CHECK(h_log_count("gpu00002: Slurm counts 9 GPUs") == 1, "once");
}

static void test_planner_missing(void)
{
	h_pass_t r;

	/* test_planner_missing runs with a PluginDir that has no job_submit_topo_aware.so: see main. */
	_lab(1);
	_lab_fill(0);
	h_pass(h_pending(200, infer, 4, 1, NULL), &r);
	CHECK(r.removable == 5, "base policy without the planner (%d removable)", r.removable);
	CHECK(h_log_count("job_submit_topo_aware.so not found") >= 1, "logged");
}

static void test_two_preemptors_interleaved(void)
{
	h_pass_t r1, r2;
	job_record_t *a, *b;

	_lab(2);
	_lab_fill(0);
	_lab_fill(1);
	a = h_pending(200, infer, 4, 1, NULL);
	b = h_pending(201, infer, 4, 1, NULL);
	h_pass(a, &r1);
	h_pass(b, &r2);
	CHECK(r1.removable == 2 && r2.removable == 2, "both planned: %s / %s",
	      _ids(r1.removable_ids, r1.removable), _ids(r2.removable_ids, r2.removable));
	CHECK(!_has(r2.removable_ids, r2.removable, r1.removable_ids[0]) &&
	      !_has(r2.removable_ids, r2.removable, r1.removable_ids[1]),
	      "the second preemptor does not take the first one's victims or GPUs");
	h_pass(a, &r1);
	CHECK(r1.removable == 2, "the first preemptor's plan still answers: %s", _ids(r1.removable_ids, r1.removable));
}

/* ---- the job index kept between passes ------------------------------------------------------ */

static void test_nothing_changed_answers_from_kept_decision(void)
{
	h_pass_t r;
	job_record_t *p;

	_lab(1);
	_lab_fill(0);
	p = h_pending(200, infer, 4, 1, NULL);
	h_pass(p, &r);
	h_pass(p, &r);
	h_pass(p, &r);
	CHECK(h_log_count_level("decision kept (nothing changed)", true) == 2,
	      "passes 2 and 3 answer from the kept decision (%d)", h_log_count_level("decision kept (nothing changed)", true));
	CHECK(r.removable == 2 && _has(r.removable_ids, 2, 101) && _has(r.removable_ids, 2, 103),
	      "with the same victims: %s", _ids(r.removable_ids, r.removable));
	/* Any job change is seen by the next walk: the planner decides again. */
	h_end(h_job(105));
	h_pass(p, &r);
	CHECK(h_log_count_level("decision kept (nothing changed)", true) == 2, "a job ended: planned again");
	/* A node change too. */
	h_node_state(0, NODE_STATE_DRAIN, true);
	h_pass(p, &r);
	CHECK(r.removable == 0, "the only node drained: nothing to preempt (%s)", _ids(r.removable_ids, r.removable));
}

static void test_summary_line_counts_decisions(void)
{
	h_pass_t r;
	job_record_t *p;
	topo_preempt_stats_t st;

	_lab(1);
	_lab_fill(0);
	p = h_pending(200, infer, 4, 1, NULL);
	h_pass(p, &r);
	h_pass(p, &r);
	h_pass(p, &r);
	h_stats(&st);
	CHECK(st.decisions == 3 && st.kept == 2 && st.full == 1 && st.partial == 0,
	      "counters: %" PRIu64 " decisions, %" PRIu64 " kept, %" PRIu64 " full", st.decisions, st.kept, st.full);
	CHECK(st.indexed_jobs == 5 && st.indexed_gpu_jobs == 5, "index: %u jobs", st.indexed_jobs);
	h_plugin_fini();
	CHECK(h_log_count("since start: 3 decisions (kept 2, planned on changed nodes 0, on the whole cluster 1), deciding p50 ") == 1,
	      "fini sums the decisions up in one line");
}

static void test_stale_index_never_answers(void)
{
	h_pass_t r;
	job_record_t *p;

	_lab(1);
	_lab_fill(0);
	p = h_pending(200, infer, 4, 1, NULL);
	h_pass(p, &r);
	CHECK(r.removable == 2, "plan: %s", _ids(r.removable_ids, r.removable));
	/* Victim 101's GPUs change in place (0-1 -> 0): the index cannot see it. */
	h_rewrite_gpus(h_job(101), 0x01);
	h_pass(p, &r);
	CHECK(h_log_count("victim JobId=101 differs from the job index") == 1, "the disagreement is logged");
	CHECK(r.removable == 5, "that pass answers with the base policy (%d removable)", r.removable);
	h_pass(p, &r);
	CHECK(h_log_count("job index rebuilt (disagreement)") == 1, "the next walk rebuilds the index");
	CHECK(r.removable >= 1 && r.removable <= 2, "and plans on what the jobs hold now: %s", _ids(r.removable_ids, r.removable));
}

static void test_changed_jobs_are_read_again(void)
{
	h_pass_t r;
	job_record_t *p, *a, *b;

	_lab(1);
	/* Island 0-3: A (0-1), B (2-3), 1 h old; island 4-7: C (4-7), a minute old. */
	a = h_run(1, batch, 0, 0x03, 3600);
	b = h_run(2, batch, 0, 0x0c, 3600);
	h_run(3, batch, 0, 0xf0, 60);
	p = h_pending(200, infer, 4, 1, NULL);
	h_pass(p, &r);
	CHECK(r.removable == 1 && r.removable_ids[0] == 3, "one young victim: %s", _ids(r.removable_ids, r.removable));
	/* Slurm signals A and B for another preemptor: their GPUs are on their way out. */
	h_signal(a);
	h_signal(b);
	h_pass(p, &r);
	CHECK(!_has(r.removable_ids, r.removable, 3), "the plan waits for A and B to drain, C stays: %s",
	      _ids(r.removable_ids, r.removable));
	/* A requeued job restarts under the same id on other GPUs (a new allocation). */
	h_end(a);
	h_end(b);
	h_end(h_job(3));
	h_run(3, batch, 0, 0x0f, 10);
	h_run(4, batch, 0, 0x30, 4000);
	h_run(5, batch, 0, 0xc0, 4000);
	h_pass(p, &r);
	CHECK(r.removable == 1 && r.removable_ids[0] == 3, "job 3 is seen on GPUs 0-3 now: %s", _ids(r.removable_ids, r.removable));
}

static void test_reconfigure_rebuilds_index(void)
{
	h_pass_t r;
	job_record_t *p;

	_lab(1);
	_lab_fill(0);
	p = h_pending(200, infer, 4, 1, NULL);
	h_pass(p, &r);
	slurm_conf.last_update++;
	h_pass(p, &r);
	CHECK(h_log_count("job index rebuilt (reconfigure)") == 1, "slurm.conf reloaded: rebuilt");
	CHECK(r.removable == 2, "same plan after the rebuild: %s", _ids(r.removable_ids, r.removable));
}

static int _cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Jobs start and end at random between passes; after each pass the same pass is repeated on an
 * index rebuilt from scratch: both must answer alike. */
static void test_incremental_equals_rebuilt(void)
{
	h_pass_t r, fresh;
	job_record_t *p;
	uint64_t seed = 0x2545F4914F6CDD1Dull, busy[4] = { 0 };
	uint32_t next = 1000;
	int round, mismatches = 0, node, g;

	_lab(4);
	for (node = 0; node < 4; node++)
		for (g = 0; g < 8; g++) {
			h_run(next, batch, node, 1ull << g, 100 + (long)(next * 37 % 5000));
			next++;
			busy[node] |= 1ull << g;
		}
	p = h_pending(200, infer, 4, 1, NULL);
	for (round = 0; round < 200; round++) {
		int changes = (int)(seed % 3), c;
		for (c = 0; c < changes; c++) {
			seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
			node = (int)(seed % 4);
			g = (int)((seed >> 8) % 8);
			if (busy[node] & (1ull << g)) {
				/* end the job holding that GPU */
				uint32_t id;
				for (id = 1000; id < next; id++) {
					job_record_t *j = h_job(id);
					gres_state_t *gs;
					if (!j || !j->node_bitmap || !bit_test(j->node_bitmap, node))
						continue;
					gs = list_peek(j->gres_list_alloc);
					if (bit_test(((gres_job_state_t *)gs->gres_data)->gres_bit_alloc[0], g)) {
						/* Half the time it is requeued and restarts at once on a
						 * free GPU of another node (same record); else it ends. */
						int other = (node + 1) % 4, k = 0;
						while ((k < 8) && (busy[other] & (1ull << k)))
							k++;
						if (((seed >> 20) & 1) && (k < 8)) {
							h_requeue(j, other, 1ull << k);
							busy[other] |= 1ull << k;
						} else {
							h_end(j);
						}
						break;
					}
				}
				busy[node] &= ~(1ull << g);
			} else {
				h_run(next++, batch, node, 1ull << g, (long)(seed % 3000));
				busy[node] |= 1ull << g;
			}
		}
		seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
		h_pass(p, &r);
		slurm_conf.last_update++; /* the next walk starts from an empty index */
		h_pass(p, &fresh);
		qsort(r.removable_ids, r.removable, sizeof(uint32_t), _cmp_u32);
		qsort(fresh.removable_ids, fresh.removable, sizeof(uint32_t), _cmp_u32);
		if ((r.removable != fresh.removable) ||
		    memcmp(r.removable_ids, fresh.removable_ids, r.removable * sizeof(uint32_t))) {
			if (mismatches++ < 3)
				CHECK(false, "round %d: incremental %s, rebuilt %s", round, _ids(r.removable_ids, r.removable),
				      _ids(fresh.removable_ids, fresh.removable));
		}
	}
	CHECK(mismatches == 0, "%d of 200 rounds differ", mismatches);
	CHECK(h_log_count("job index rebuilt (reconfigure)") == 200, "rebuilt each round (%d)",
	      h_log_count("job index rebuilt (reconfigure)"));
}

typedef struct {
	const char *name;
	void (*run)(void);
	bool without_planner;
} test_t;

static const test_t tests[] = {
	{ "lab_guaranteed", test_lab_guaranteed, false },
	{ "best_effort_keeps_base_candidates", test_best_effort_keeps_base_candidates, false },
	{ "not_a_preemptor_gets_base_policy", test_not_a_preemptor_gets_base_policy, false },
	{ "fits_on_free_gpus", test_fits_on_free_gpus, false },
	{ "no_plan_guaranteed_waits", test_no_plan_guaranteed_waits, false },
	{ "partition_prio_semantics", test_partition_prio_semantics, false },
	{ "qos_semantics", test_qos_semantics, false },
	{ "exempt_time", test_exempt_time, false },
	{ "signalled_victims_keep_plan", test_signalled_victims_keep_plan, false },
	{ "kept_plan_dropped_when_gpus_taken", test_kept_plan_dropped_when_gpus_taken, false },
	{ "node_down_replans", test_node_down_replans, false },
	{ "drained_node_never_a_target", test_drained_node_never_a_target, false },
	{ "planner_resync", test_planner_resync, false },
	{ "missing_and_corrupt_gres", test_missing_and_corrupt_gres, false },
	{ "two_preemptors_interleaved", test_two_preemptors_interleaved, false },
	{ "nothing_changed_answers_from_kept_decision", test_nothing_changed_answers_from_kept_decision, false },
	{ "summary_line_counts_decisions", test_summary_line_counts_decisions, false },
	{ "stale_index_never_answers", test_stale_index_never_answers, false },
	{ "changed_jobs_are_read_again", test_changed_jobs_are_read_again, false },
	{ "reconfigure_rebuilds_index", test_reconfigure_rebuilds_index, false },
	{ "incremental_equals_rebuilt", test_incremental_equals_rebuilt, false },
	{ "planner_missing", test_planner_missing, true },
};

int main(int argc, char **argv)
{
	const char *filter = (argc > 3) ? argv[3] : NULL;
	size_t i;

	if (argc < 3) {
		fprintf(stderr, "usage: %s PLUGIN.so WORK_DIR [FILTER]\n", argv[0]);
		return 2;
	}
	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		h_options_t o = { .plugin = argv[1], .work_dir = argv[2], .log_level = LOG_LEVEL_DEBUG };
		char log[4096], empty[4096];
		int before = failures;

		if (filter && !strstr(tests[i].name, filter))
			continue;
		snprintf(log, sizeof(log), "%s/%s.log", argv[2], tests[i].name);
		snprintf(empty, sizeof(empty), "%s", argv[2]);
		o.log_file = log;
		if (tests[i].without_planner)
			o.plugin_dir = empty; /* WORK_DIR holds no planner */
		if (h_start(&o))
			return 2;
		current = tests[i].name;
		tests[i].run();
		h_stop();
		tests_run++;
		if (failures != before)
			tests_failed++;
		printf("%s %s (log %s)\n", (failures == before) ? "passed" : "FAILED", tests[i].name, log);
	}
	printf("preempt-plugin-tests: Slurm %s: %d tests, %d checks, %d failed tests\n", SLURM_VERSION_STRING,
	       tests_run, checks, tests_failed);
	if (!tests_run) {
		fprintf(stderr, "preempt-plugin-tests: no test matched '%s'\n", filter ? filter : "");
		return 1;
	}
	return tests_failed ? 1 : 0;
}
