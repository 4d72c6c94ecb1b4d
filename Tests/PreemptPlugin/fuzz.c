/*
 * libFuzzer entry at preempt_p_* (scripts/plugin-tests fuzz): the plugin, built with
 * AddressSanitizer and coverage, driven through the harness by arbitrary bytes: a cluster
 * (1-16 nodes, 1-64 GPUs each), partitions and QOS with any tiers and modes, then up to 64
 * operations: jobs start, end, are requeued or signalled, nodes drain or lose their GRES state,
 * slurm.conf is reloaded, passes in slurmctld's order and direct calls with any pair of jobs,
 * while the planner stand-in (planner_stub.c) answers anything: any action, victim count (also
 * beyond the limit), victim ids (real, pending, unknown), owners, failure.
 *
 * Checked besides memory safety and leaks: every snapshot the plugin hands the planner is
 * well-formed (counts, indices, unique ids) and, after a whole walk, holds exactly the running
 * jobs' GPUs as their live records have them (the job index is never stale); every MODE
 * answer is OFF or the base policy's mode.
 */
#include "harness.h"
#include "planner_stub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

topo_stub_control_t topo_stub_control;
static int expect_truth;
/* preempt_p_preemptable was called outside a walk (direct op) since the plugin started: Slurm
 * never does (22.05 to 26.05 call it only from slurm_find_preemptable_jobs' walk), and a walk
 * continued from such a call may keep a job that left job_list meanwhile in the same second
 * (never read: it fails the victims' check or the snapshot's consistency, and the index is
 * reread). The exact-snapshot check is then off until the next input; memory and answer checks
 * stay on. */
static int stray;
/* TOPO_FUZZ_TRACE=1: every operation on stderr (for replaying a crash input). */
static int trace;
#define TRACE(...) do { if (trace) fprintf(stderr, "  op: " __VA_ARGS__); } while (0)

typedef struct {
	const uint8_t *d;
	size_t n, at;
} in_t;

static uint32_t u8(in_t *in)
{
	return (in->at < in->n) ? in->d[in->at++] : 0;
}

static uint32_t u32(in_t *in)
{
	return u8(in) | (u8(in) << 8) | (u8(in) << 16) | (u8(in) << 24);
}

static void _fail(const char *what)
{
	fprintf(stderr, "preempt-plugin-fuzz: %s\n", what);
	abort();
}

void topo_stub_check_snapshot(const topo_preempt_snapshot_t *s)
{
	static int table_of[64];
	uint32_t i, j, truth = 0;
	job_record_t *job;

	if (s->abi_version != TOPO_PREEMPT_ABI_VERSION)
		_fail("snapshot ABI version");
	if ((s->node_count > (uint32_t)h_node_count()) || (s->node_count && !s->nodes))
		_fail("snapshot node count");
	/* Snapshot node -> node table index, by name (gpu00001 is index 0). */
	for (i = 0; i < s->node_count; i++) {
		const char *name = s->nodes[i].name;
		int index = (name && !strncmp(name, "gpu", 3)) ? atoi(name + 3) - 1 : -1;
		if ((index < 0) || (index >= h_node_count()))
			_fail("snapshot node without a known name");
		table_of[i] = index;
		for (j = 0; j < i; j++)
			if (table_of[j] == index)
				_fail("node listed twice");
	}
	if (s->preemptor.candidate_count != UINT32_MAX) {
		if (s->preemptor.candidate_count > s->node_count)
			_fail("more candidate nodes than nodes");
		for (i = 0; i < s->preemptor.candidate_count; i++)
			if (s->preemptor.candidate_nodes[i] >= s->node_count)
				_fail("candidate node out of range");
	}
	for (i = 0; i < s->job_count; i++) {
		const topo_preempt_job_t *jb = &s->jobs[i];
		if (!jb->alloc_count || (jb->alloc_first > s->alloc_count) ||
		    (jb->alloc_count > s->alloc_count - jb->alloc_first))
			_fail("job allocations out of range");
		for (j = 0; j < jb->alloc_count; j++) {
			const topo_preempt_alloc_t *a = &s->allocs[jb->alloc_first + j];
			if ((a->node >= s->node_count) || !a->gpus)
				_fail("allocation node out of range or empty");
		}
		for (j = 0; j < i; j++)
			if (s->jobs[j].job_id == jb->job_id)
				_fail("job listed twice");
	}
	if (!expect_truth || stray)
		return;
	/* The live records: every running job holding GPUs on the snapshot's nodes is there,
	 * with the same GPUs (a partial snapshot holds some nodes, and only jobs on one node). */
	__auto_type it = list_iterator_create(job_list);
	while ((job = list_next(it))) {
		int nodes[64];
		uint64_t masks[64];
		int count = h_job_gpus(job, 64, nodes, masks), k, on = 0;
		const topo_preempt_job_t *jb = NULL;

		if (count <= 0)
			continue;
		for (k = 0; k < count; k++)
			for (i = 0; i < s->node_count; i++)
				if (table_of[i] == nodes[k])
					on++;
		if (!on)
			continue;
		truth++;
		for (i = 0; i < s->job_count; i++)
			if (s->jobs[i].job_id == job->job_id)
				jb = &s->jobs[i];
		if (!jb || (jb->alloc_count != (uint32_t)count)) {
			fprintf(stderr, "preempt-plugin-fuzz: JobId=%u on %d node(s) (first %d mask %#llx), snapshot: %s, %u allocation(s); preemptor %u\n",
				job->job_id, count, nodes[0], (unsigned long long)masks[0], jb ? "present" : "absent",
				jb ? jb->alloc_count : 0, s->preemptor.job_id);
			_fail("a running job's GPUs are missing from the snapshot (stale index)");
		}
		for (k = 0; k < count; k++)
			if ((table_of[s->allocs[jb->alloc_first + k].node] != nodes[k]) ||
			    (s->allocs[jb->alloc_first + k].gpus != masks[k]))
				_fail("a running job's GPUs differ in the snapshot (stale index)");
		if (!!(jb->flags & TOPO_PREEMPT_JOB_DRAINING) != !!job->preempt_time)
			_fail("a job's draining flag differs in the snapshot (stale index)");
	}
	list_iterator_destroy(it);
	if (truth != s->job_count)
		_fail("the snapshot holds jobs that are not running with GPUs (stale index)");
}

static part_record_t *parts[3];
static slurmdb_qos_rec_t *qos[3];
static uint32_t ids[256];
static int id_count;

static job_record_t *_any_job(in_t *in)
{
	int tries;

	for (tries = 0; (tries < 4) && id_count; tries++) {
		job_record_t *job = h_job(ids[u8(in) % id_count]);
		if (job)
			return job;
	}
	return NULL;
}

/* The mode the base policy gives (what the plugin may answer besides OFF). */
static uint16_t _base_mode(job_record_t *job)
{
	uint16_t mode = slurm_conf.preempt_mode;

	if (topo_stub_control.base_policy == TOPO_PREEMPT_BASE_QOS) {
		if (job->qos_ptr && job->qos_ptr->preempt_mode)
			mode = job->qos_ptr->preempt_mode;
		mode &= ~PREEMPT_MODE_WITHIN;
	} else if (job->part_ptr && (job->part_ptr->preempt_mode != NO_VAL16)) {
		mode = job->part_ptr->preempt_mode;
	}
	return mode & ~(PREEMPT_MODE_GANG | TOPO_COMPAT_PREEMPT_MODE_PRIORITY);
}

static void _check_answers(job_record_t *job)
{
	uint16_t mode = h_mode(job);

	(void)h_prio(job);
	if ((mode != PREEMPT_MODE_OFF) && (mode != _base_mode(job))) {
		fprintf(stderr, "preempt-plugin-fuzz: JobId=%u MODE %#x, base policy (%s) %#x\n", job->job_id, mode,
			(topo_stub_control.base_policy == TOPO_PREEMPT_BASE_QOS) ? "qos" : "partition_prio", _base_mode(job));
		_fail("MODE is neither OFF nor the base policy's mode");
	}
}

static const uint16_t modes[] = { PREEMPT_MODE_OFF, PREEMPT_MODE_REQUEUE, PREEMPT_MODE_CANCEL,
				  PREEMPT_MODE_SUSPEND, PREEMPT_MODE_REQUEUE | PREEMPT_MODE_GANG,
				  PREEMPT_MODE_REQUEUE | PREEMPT_MODE_WITHIN, NO_VAL16 };
#define MODES (sizeof(modes) / sizeof(modes[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool started;
	in_t in = { data, size, 0 };
	int nodes, gpus, op, ops, i;
	uint32_t next = 1;

	if (!started) {
		h_options_t o = { 0 };
		static char log[4096];
		o.plugin = getenv("TOPO_HARNESS_PLUGIN");
		o.work_dir = getenv("TOPO_HARNESS_WORK");
		if (!o.plugin || !o.work_dir)
			_fail("TOPO_HARNESS_PLUGIN and TOPO_HARNESS_WORK must be set (scripts/plugin-tests fuzz)");
		snprintf(log, sizeof(log), "%s/fuzz.log", o.work_dir);
		o.log_file = log;
		o.log_level = LOG_LEVEL_QUIET;
		if (h_start(&o))
			_fail("cannot load the plugin");
		h_write_files(false);
		trace = getenv("TOPO_FUZZ_TRACE") != NULL;
		started = true;
	}
	nodes = 1 + (int)(u8(&in) % 16);
	gpus = 1 + (int)(u8(&in) % 64);
	h_cluster(nodes, gpus, 1 + (int)(u8(&in) % gpus));
	h_conf(modes[u8(&in) % (MODES - 1)], (u8(&in) & 1) ? NO_VAL : u8(&in));
	memset(&topo_stub_control, 0, sizeof(topo_stub_control));
	topo_stub_control.base_policy = (u8(&in) & 1) ? TOPO_PREEMPT_BASE_QOS : TOPO_PREEMPT_BASE_PARTITION_PRIO;
	topo_stub_control.managed = 1;
	for (i = 0; i < 3; i++)
		parts[i] = h_partition(i == 0 ? "batch" : (i == 1 ? "infer" : "other"), (uint16_t)(u8(&in) % 4),
				       modes[u8(&in) % MODES], u8(&in));
	qos[0] = h_qos("batch", u8(&in), modes[u8(&in) % MODES], NULL);
	qos[1] = h_qos("infer", u8(&in), modes[u8(&in) % MODES], "batch");
	qos[2] = h_qos("peer", u8(&in), modes[u8(&in) % MODES], (u8(&in) & 1) ? "batch,infer" : NULL);
	id_count = 0;
	stray = 0;
	h_plugin_init();

	ops = 1 + (int)(u8(&in) % 64);
	for (op = 0; (op < ops) && (in.at < in.n); op++) {
		job_record_t *job, *other;
		uint32_t kind = u8(&in) % 14;

		switch (kind) {
		case 0: case 1: case 2: { /* a job starts on one or two nodes */
			int n[2] = { (int)(u8(&in) % nodes), (int)(u8(&in) % nodes) };
			uint64_t m[2] = { (uint64_t)u32(&in) | ((uint64_t)u32(&in) << 32), (uint64_t)u32(&in) };
			int count = (n[0] != n[1] && (u8(&in) & 1)) ? 2 : 1;
			m[0] &= (gpus == 64) ? ~0ull : ((1ull << gpus) - 1);
			m[1] &= (gpus == 64) ? ~0ull : ((1ull << gpus) - 1);
			if (id_count < 256) {
				job = h_run_multi(next, parts[u8(&in) % 3], count, n, m, (long)(u8(&in) * 60));
				TRACE("run %u on node %d mask %#llx%s\n", next, n[0], (unsigned long long)m[0], count > 1 ? " +1 node" : "");
				job->qos_ptr = qos[u8(&in) % 3];
				job->priority = u8(&in);
				ids[id_count++] = next++;
			}
			break;
		}
		case 3: /* a pending job */
			if (id_count < 256) {
				job = h_pending(next, parts[1 + u8(&in) % 2], u8(&in) % 70, 1 + u8(&in) % 3,
						(u8(&in) & 1) ? "topo_aware:class=x" : NULL);
				TRACE("pending %u\n", next);
				job->qos_ptr = qos[u8(&in) % 3];
				job->priority = u8(&in);
				ids[id_count++] = next++;
			}
			break;
		case 4:
			if ((job = _any_job(&in))) {
				TRACE("end %u\n", job->job_id);
				h_end(job);
			}
			break;
		case 5:
			if ((job = _any_job(&in)) && IS_JOB_RUNNING(job)) {
				TRACE("requeue %u\n", job->job_id);
				h_requeue(job, (int)(u8(&in) % nodes), 1ull << (u8(&in) % gpus));
			}
			break;
		case 6:
			if ((job = _any_job(&in)) && IS_JOB_RUNNING(job)) {
				TRACE("signal %u\n", job->job_id);
				h_signal(job);
			}
			break;
		case 7:
			h_node_state((int)(u8(&in) % nodes), (u8(&in) & 1) ? NODE_STATE_DRAIN : NODE_STATE_DOWN, u8(&in) & 1);
			break;
		case 8:
			h_node_gres((int)(u8(&in) % nodes), (u8(&in) & 1) ? -1 : (int)(u8(&in) % 66));
			break;
		case 9:
			TRACE("reconfigure\n");
			slurm_conf.last_update++;
			break;
		case 10: { /* what the planner will answer */
			uint32_t v, count;
			topo_stub_control.action = (int32_t)(u8(&in) % 6) - 1;
			topo_stub_control.planned = u8(&in) & 1;
			topo_stub_control.flags = (u8(&in) % 8 == 0) ? TOPO_PREEMPT_DECISION_INCONSISTENT : 0;
			count = u8(&in);
			topo_stub_control.victim_count = (count == 255) ? u32(&in) : count % 8;
			for (v = 0; v < 8; v++)
				topo_stub_control.victims[v] = (u8(&in) & 1) && id_count ? ids[u8(&in) % id_count] : u32(&in);
			topo_stub_control.target_count = (u8(&in) % 4 == 0) ? u32(&in) : u8(&in) % 3;
			for (v = 0; v < TOPO_PREEMPT_MAX_TARGETS; v++)
				topo_stub_control.target_nodes[v] = (u8(&in) % 8 == 0) ? u32(&in) : u8(&in) % 20;
			topo_stub_control.owner_count = u8(&in) % 9;
			for (v = 0; v < 8; v++)
				topo_stub_control.owners[v] = id_count ? ids[u8(&in) % id_count] : 0;
			topo_stub_control.decide_status = (u8(&in) % 16 == 0) ? -1 : 0;
			topo_stub_control.resync = (u8(&in) % 16 == 0) ? (u8(&in) % 4) : 0;
			topo_stub_control.managed = (u8(&in) % 8) != 0;
			/* (the base policy stays: the plugin reads it again only at a new walk) */
			TRACE("planner answers action %d, %u victim(s), managed %d\n", topo_stub_control.action,
			      topo_stub_control.victim_count, topo_stub_control.managed);
			break;
		}
		case 11: case 12: { /* a pass for a pending job */
			h_pass_t r;
			if ((job = _any_job(&in)) && IS_JOB_PENDING(job) && job->part_ptr) {
				TRACE("pass %u (managed %d)\n", job->job_id, topo_stub_control.managed);
				expect_truth = 1;
				h_pass(job, &r);
				expect_truth = 0;
				for (i = 0; i < r.count; i++)
					if ((other = h_job(r.ids[i])))
						_check_answers(other);
			}
			break;
		}
		case 13: /* direct calls with any pair, in any order */
			job = _any_job(&in);
			other = _any_job(&in);
			if (job && other) {
				TRACE("direct %u %u\n", job->job_id, other->job_id);
				stray = 1;
				(void)h_preemptable(job, other);
				(void)h_preempt_check(other, job);
				_check_answers(job);
				(void)h_grace(job);
			}
			break;
		}
	}
	h_plugin_fini();
	return 0;
}
