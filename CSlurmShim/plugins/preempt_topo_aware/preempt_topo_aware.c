/*
 * preempt/topo_aware — Slurm preempt plugin. C only, built against the source tree of the
 * installed Slurm release (scripts/slurm-source): the preempt API passes slurmctld's internal
 * job_record_t and job_queue_rec_t, which only that tree defines.
 *
 * Base policy: partition-priority preemption (PreemptType=preempt/partition_prio semantics) or,
 * with BasePolicy=qos in topo_aware.conf, QOS preemption (preempt/qos semantics). Every job
 * the planner does not handle gets exactly the base policy's answers.
 *
 * For a pending preemptor (a job job_submit/topo_aware tagged as a preemptor class, or whose
 * partition/QOS matches a PreemptorClass line), Slurm 22.05 asks in this order
 * (src/slurmctld/preempt.c, cons_common/job_test.c):
 *   1. preempt_p_preemptable(job, preemptor) for every job of job_list, while
 *      slurm_find_preemptable_jobs() holds job_list's lock: no list call is possible here, so
 *      each running GPU job passing by is copied into a flat snapshot and the base policy
 *      answers;
 *   2. PREEMPT_DATA_PRIO to sort the candidates, then PREEMPT_DATA_MODE in _run_now for each
 *      candidate it considers removing. At the first of these the snapshot is complete: it is
 *      handed to the Swift planner (job_submit_topo_aware.so, found with dlopen/dlsym), which
 *      answers with victims. Victims sort first; in guaranteed mode every other candidate of
 *      this preemptor reports PreemptMode OFF, which _run_now reads as "cannot be removed", so
 *      no job other than a planned victim is touched.
 * Anything unexpected (planner missing, snapshot too large, Swift error) falls back to the base
 * policy with one log line.
 *
 * Built for one release at a time (plugin_version must equal it): every difference between
 * releases (header locations, changed calls, the preempt API's entry points, PreemptMode flags)
 * comes from topo_slurm_compat.h.
 */
#include "config.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "slurm/slurm.h"
#include "slurm/slurm_errno.h"

#include "src/common/bitstring.h"
#include "src/common/list.h"
#include "src/common/log.h"
#include "src/common/node_conf.h"
#include "src/common/slurm_protocol_defs.h"
#include "src/common/xmalloc.h"
#include "src/common/xstring.h"
#include "src/slurmctld/slurmctld.h"

#define TOPO_COMPAT_SLURMCTLD
#include "../../compat/topo_slurm_compat.h"
#include "topo_preempt_abi.h"

const char plugin_name[] = "Topology-aware GPU preemption (TopoPreempt)";
const char plugin_type[] = "preempt/topo_aware";
const uint32_t plugin_version = SLURM_VERSION_NUMBER;

/* Bounds: a snapshot larger than this falls back to the base policy. */
#define MAX_JOBS (1u << 22)
#define MAX_ALLOCS (1u << 24)
#define MAX_OWNERS 4096u

/* ---- base policy ------------------------------------------------------------------------ */

static int base_policy = TOPO_PREEMPT_BASE_PARTITION_PRIO;

static uint16_t _base_mode(job_record_t *job)
{
	uint16_t mode = slurm_conf.preempt_mode;

	if (!job)
		return PREEMPT_MODE_OFF;
	if (base_policy == TOPO_PREEMPT_BASE_QOS) {
		if (job->qos_ptr && job->qos_ptr->preempt_mode)
			mode = job->qos_ptr->preempt_mode;
		mode &= ~PREEMPT_MODE_WITHIN;
	} else if (job->part_ptr && (job->part_ptr->preempt_mode != NO_VAL16)) {
		mode = job->part_ptr->preempt_mode;
	}
	return mode & ~(PREEMPT_MODE_GANG | TOPO_COMPAT_PREEMPT_MODE_PRIORITY);
}

/* PreemptMode's PRIORITY flag (25.05+) on the cluster or, by base policy, on the preemptor's
 * partition or QOS: only a job of lower job priority may then be preempted. */
static bool _priority_flag(job_record_t *preemptor)
{
	uint16_t own = 0;

	if (!TOPO_COMPAT_PREEMPT_MODE_PRIORITY || !preemptor)
		return false;
	if (base_policy == TOPO_PREEMPT_BASE_QOS) {
		if (preemptor->qos_ptr)
			own = preemptor->qos_ptr->preempt_mode;
	} else if (preemptor->part_ptr && (preemptor->part_ptr->preempt_mode != NO_VAL16)) {
		own = preemptor->part_ptr->preempt_mode;
	}
	return ((own | slurm_conf.preempt_mode) & TOPO_COMPAT_PREEMPT_MODE_PRIORITY) != 0;
}

/* Candidate order: PriorityTier (or QOS priority, 16 bits) in the high bits, node count in the
 * low bits, so lower tiers and smaller jobs are taken first. */
static uint32_t _base_prio(job_record_t *job)
{
	uint32_t high = 0, nodes;

	if (!job)
		return 0;
	if (base_policy == TOPO_PREEMPT_BASE_QOS) {
		if (job->qos_ptr)
			high = (job->qos_ptr->priority >= 0xffff) ? 0xffff : job->qos_ptr->priority;
	} else if (job->part_ptr) {
		high = job->part_ptr->priority_tier;
	}
	nodes = (job->node_cnt > 0xffff) ? 0xffff : job->node_cnt;
	return (high << 16) | nodes;
}

static uint32_t _base_grace(job_record_t *job)
{
	if (!job)
		return 0;
	if (base_policy == TOPO_PREEMPT_BASE_QOS)
		return job->qos_ptr ? job->qos_ptr->grace_time : 0;
	return job->part_ptr ? job->part_ptr->grace_time : 0;
}

static bool _qos_preempts(slurmdb_qos_rec_t *qos_or, slurmdb_qos_rec_t *qos_ee,
			  uint32_t prio_or, uint32_t prio_ee)
{
	if (!qos_ee || !qos_or)
		return false;
	if (qos_or->id == qos_ee->id) {
		if ((qos_or->preempt_mode & PREEMPT_MODE_WITHIN) ||
		    (slurm_conf.preempt_mode & PREEMPT_MODE_WITHIN))
			return prio_or > prio_ee;
		return false;
	}
	if (!qos_or->preempt_bitstr || (qos_ee->id >= (uint32_t)bit_size(qos_or->preempt_bitstr)))
		return false;
	return bit_test(qos_or->preempt_bitstr, qos_ee->id);
}

static bool _base_preemptable(job_record_t *preemptee, job_record_t *preemptor)
{
	if (!preemptee || !preemptor)
		return false;
	if (base_policy == TOPO_PREEMPT_BASE_QOS)
		return _qos_preempts(preemptor->qos_ptr, preemptee->qos_ptr,
				     preemptor->priority, preemptee->priority) &&
		       (!_priority_flag(preemptor) || (preemptor->priority > preemptee->priority));
	if (_priority_flag(preemptor) && (preemptor->priority < preemptee->priority))
		return false;
	if (!preemptee->part_ptr || !preemptor->part_ptr)
		return false;
	if (preemptee->part_ptr->preempt_mode == PREEMPT_MODE_OFF)
		return false;
	return preemptee->part_ptr->priority_tier < preemptor->part_ptr->priority_tier;
}

/* ---- the Swift planner ------------------------------------------------------------------- */

static struct {
	bool found;
	time_t retry_at;
	int (*settings)(topo_preempt_settings_t *);
	uint32_t (*owners)(uint32_t *, uint32_t);
	int (*is_preemptor)(const char *, const char *, const char *);
	int (*decide)(const topo_preempt_snapshot_t *, topo_preempt_decision_t *);
	void (*reset)(void);
} swift;

/* Finds job_submit_topo_aware.so in PluginDir: the handle slurmctld already holds when
 * JobSubmitPlugins=topo_aware (same path, so dlopen returns it), else loads it. Retried at
 * most once a minute while missing. */
static bool _swift_resolve(void)
{
	char *dirs, *dir, *save = NULL;
	time_t now = time(NULL);

	if (swift.found)
		return true;
	if (now < swift.retry_at)
		return false;
	swift.retry_at = now + 60;
	dirs = xstrdup(slurm_conf.plugindir ? slurm_conf.plugindir : "");
	for (dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		char *path = xstrdup_printf("%s/job_submit_topo_aware.so", dir);
		void *handle = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
		topo_preempt_settings_t s = { 0 };

		if (!handle && (access(path, R_OK) == 0))
			handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		if (!handle) {
			xfree(path);
			continue;
		}
		swift.settings = dlsym(handle, "TopoAwareSwift_preemptSettings");
		swift.owners = dlsym(handle, "TopoAwareSwift_preemptPlanOwners");
		swift.is_preemptor = dlsym(handle, "TopoAwareSwift_preemptIsPreemptor");
		swift.decide = dlsym(handle, "TopoAwareSwift_preemptDecide");
		swift.reset = dlsym(handle, "TopoAwareSwift_preemptReset");
		if (swift.settings && swift.owners && swift.is_preemptor && swift.decide && swift.reset &&
		    (swift.settings(&s) == 0) && (s.abi_version == TOPO_PREEMPT_ABI_VERSION)) {
			swift.found = true;
			base_policy = s.base_policy;
			info("%s: planner found in %s (base policy %s)", plugin_type, path,
			     (base_policy == TOPO_PREEMPT_BASE_QOS) ? "qos" : "partition_prio");
			xfree(path);
			break;
		}
		error("%s: %s lacks the planner entry points of ABI %u; base policy only",
		      plugin_type, path, TOPO_PREEMPT_ABI_VERSION);
		memset(&swift, 0, sizeof(swift));
		swift.retry_at = now + 60;
		xfree(path);
	}
	xfree(dirs);
	if (!swift.found)
		error("%s: job_submit_topo_aware.so not found in PluginDir=%s; base policy only (retrying every 60s)",
		      plugin_type, slurm_conf.plugindir ? slurm_conf.plugindir : "(unset)");
	return swift.found;
}

/* ---- one query: a preemptor's walk over job_list, then its decision --------------------- */

enum { Q_IDLE, Q_COLLECTING, Q_DECIDED };

static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int state;
	bool managed;            /* the preemptor is a class the planner handles */
	bool overflow;
	job_record_t *preemptor;
	uint32_t preemptor_id;
	job_record_t *first;     /* first job of the walk (a second visit starts a new walk) */
	time_t job_update;

	topo_preempt_job_t *jobs;
	uint32_t job_count, job_cap;
	topo_preempt_alloc_t *allocs;
	uint32_t alloc_count, alloc_cap;
	uint32_t *seen;          /* open-addressing set of collected job ids (0 = empty) */
	uint32_t seen_cap, seen_count;

	topo_preempt_decision_t decision;
} q;

static bool _seen_insert(uint32_t id)
{
	uint32_t i, mask;

	if (!id)
		return true;
	if ((q.seen_count + 1) * 2 > q.seen_cap) {
		uint32_t old_cap = q.seen_cap, *old = q.seen;
		q.seen_cap = old_cap ? old_cap * 2 : 1024;
		q.seen = xcalloc(q.seen_cap, sizeof(uint32_t));
		for (i = 0; i < old_cap; i++) {
			uint32_t k, h;
			if (!old[i])
				continue;
			for (h = old[i] * 2654435761u, k = 0; k < q.seen_cap; k++) {
				uint32_t slot = (h + k) & (q.seen_cap - 1);
				if (!q.seen[slot]) {
					q.seen[slot] = old[i];
					break;
				}
			}
		}
		xfree(old);
	}
	mask = q.seen_cap - 1;
	for (i = 0; i <= mask; i++) {
		uint32_t slot = (id * 2654435761u + i) & mask;
		if (q.seen[slot] == id)
			return false;
		if (!q.seen[slot]) {
			q.seen[slot] = id;
			q.seen_count++;
			return true;
		}
	}
	return false;
}

static bool _seen_contains(uint32_t id)
{
	uint32_t i, mask;

	if (!id || !q.seen_cap)
		return false;
	mask = q.seen_cap - 1;
	for (i = 0; i <= mask; i++) {
		uint32_t slot = (id * 2654435761u + i) & mask;
		if (q.seen[slot] == id)
			return true;
		if (!q.seen[slot])
			return false;
	}
	return false;
}

static void _reset_collection(void)
{
	q.job_count = 0;
	q.alloc_count = 0;
	q.overflow = false;
	if (q.seen)
		memset(q.seen, 0, q.seen_cap * sizeof(uint32_t));
	q.seen_count = 0;
	q.decision.action = TOPO_PREEMPT_BASE_POLICY;
	q.decision.victim_count = 0;
}

static int _find_gpu(void *x, void *key)
{
	gres_state_t *gres = x;

	return (gres && gres->gres_name && !strcmp(gres->gres_name, "gpu")) ? 1 : 0;
}

/* The GPUs a bitmap holds as a 64-bit mask; false when it has GPUs beyond 63. */
static bool _mask_of(bitstr_t *bits, uint64_t *mask)
{
	bitoff_t i, n;

	*mask = 0;
	if (!bits)
		return true;
	n = bit_size(bits);
	for (i = 0; i < n; i++) {
		if (!bit_test(bits, i))
			continue;
		if (i >= 64)
			return false;
		*mask |= ((uint64_t)1) << i;
	}
	return true;
}

/* Copies a running job's GPUs (per node) into the snapshot. */
static void _collect(job_record_t *job, bool eligible)
{
	gres_state_t *gres;
	gres_job_state_t *gj;
	uint32_t first = q.alloc_count, count = 0, offset = 0;
	bitoff_t node, last;

	if (!IS_JOB_RUNNING(job) || !job->gres_list_alloc || !job->node_bitmap)
		return;
	gres = list_find_first(job->gres_list_alloc, _find_gpu, NULL);
	if (!gres || !gres->gres_data)
		return;
	gj = gres->gres_data;
	if (!gj->gres_bit_alloc || !gj->node_cnt)
		return;
	if (!_seen_insert(job->job_id)) {
		/* Seen before in this walk: this is a new walk. */
		_reset_collection();
		(void)_seen_insert(job->job_id);
		first = 0;
	}
	if ((q.job_count >= MAX_JOBS) || (q.alloc_count + gj->node_cnt > MAX_ALLOCS)) {
		q.overflow = true;
		return;
	}
	node = bit_ffs(job->node_bitmap);
	last = bit_fls(job->node_bitmap);
	if ((node < 0) || (last >= node_record_count))
		return;
	for (; (node <= last) && (offset < gj->node_cnt); node++) {
		uint64_t mask;

		if (!bit_test(job->node_bitmap, node))
			continue;
		if (gj->gres_bit_alloc[offset] && _mask_of(gj->gres_bit_alloc[offset], &mask) && mask) {
			if (q.alloc_count == q.alloc_cap) {
				q.alloc_cap = q.alloc_cap ? q.alloc_cap * 2 : 1024;
				xrecalloc(q.allocs, q.alloc_cap, sizeof(*q.allocs));
			}
			q.allocs[q.alloc_count].node = node;
			q.allocs[q.alloc_count].reserved = 0;
			q.allocs[q.alloc_count].gpus = mask;
			q.alloc_count++;
			count++;
		}
		offset++;
	}
	if (!count)
		return;
	if (q.job_count == q.job_cap) {
		q.job_cap = q.job_cap ? q.job_cap * 2 : 1024;
		xrecalloc(q.jobs, q.job_cap, sizeof(*q.jobs));
	}
	q.jobs[q.job_count].job_id = job->job_id;
	q.jobs[q.job_count].base_prio = _base_prio(job);
	q.jobs[q.job_count].eligible = eligible ? 1 : 0;
	q.jobs[q.job_count].alloc_first = first;
	q.jobs[q.job_count].alloc_count = count;
	q.jobs[q.job_count].start_time = (int64_t)job->start_time;
	q.jobs[q.job_count].flags = job->preempt_time ? TOPO_PREEMPT_JOB_DRAINING : 0;
	q.job_count++;
}

/* GPUs per node the preemptor asks for (0: none readable), and whether per socket. */
static uint32_t _gpus_per_node(job_record_t *job, uint32_t *per_socket)
{
	gres_state_t *gres;
	gres_job_state_t *gj;
	uint32_t nodes = (job->details && job->details->min_nodes) ? job->details->min_nodes : 1;

	*per_socket = 0;
	if (!job->gres_list_req)
		return 0;
	gres = list_find_first(job->gres_list_req, _find_gpu, NULL);
	if (!gres || !gres->gres_data)
		return 0;
	gj = gres->gres_data;
	if (gj->gres_per_node)
		return (gj->gres_per_node > 64) ? 0 : (uint32_t)gj->gres_per_node;
	if (gj->gres_per_socket) {
		uint16_t sockets = job_get_sockets_per_node(job);
		uint64_t total = gj->gres_per_socket * ((sockets && (sockets != NO_VAL16)) ? sockets : 1);
		*per_socket = 1;
		return (total > 64) ? 0 : (uint32_t)total;
	}
	if (gj->gres_per_job && !(gj->gres_per_job % nodes))
		return ((gj->gres_per_job / nodes) > 64) ? 0 : (uint32_t)(gj->gres_per_job / nodes);
	return 0;
}

static bool _node_available(node_record_t *node)
{
	return !(IS_NODE_UNKNOWN(node) || IS_NODE_DOWN(node) || IS_NODE_FUTURE(node) ||
		 IS_NODE_DRAIN(node) || IS_NODE_FAIL(node) || IS_NODE_NO_RESPOND(node) ||
		 IS_NODE_POWERED_DOWN(node));
}

static void _decide(void)
{
	job_record_t *p = q.preemptor;
	topo_preempt_snapshot_t s = { 0 };
	topo_preempt_node_t *nodes = NULL;
	uint32_t *candidates = NULL, candidate_count = 0, *owners = NULL, owner_count = 0;
	uint32_t i, per_socket = 0;
	int node;
	struct timespec t0, t1;
	long elapsed;
	bitstr_t *required = NULL;

	q.state = Q_DECIDED;
	q.decision.action = TOPO_PREEMPT_BASE_POLICY;
	q.decision.victim_count = 0;
	if (!q.managed || !swift.found || !p)
		return;
	if (q.overflow) {
		info("%s: JobId=%u snapshot larger than %u jobs / %u allocations; base policy",
		     plugin_type, q.preemptor_id, MAX_JOBS, MAX_ALLOCS);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* _get_req_features() clears details->req_node_bitmap while it asks for candidates: read
	 * the required nodes (-w) from their names. */
	if (p->details && p->details->req_node_bitmap)
		required = bit_copy(p->details->req_node_bitmap);
	else if (p->details && p->details->req_nodes &&
		 topo_compat_node_name2bitmap(p->details->req_nodes, false, &required)) {
		FREE_NULL_BITMAP(required);
		info("%s: JobId=%u required nodes '%s' unknown; base policy", plugin_type,
		     p->job_id, p->details->req_nodes);
		return;
	}
	nodes = xcalloc(node_record_count ? node_record_count : 1, sizeof(*nodes));
	candidates = xcalloc(node_record_count ? node_record_count : 1, sizeof(uint32_t));
	for (node = 0; node < node_record_count; node++) {
		node_record_t *n = node_record_table_ptr[node];
		gres_state_t *gres;
		bool in_partition;

		nodes[node].name = n ? n->name : NULL;
		if (!n || !n->name) {
			nodes[node].name = "";
			continue;
		}
		nodes[node].available = _node_available(n) ? 1 : 0;
		if (n->gres_list && (gres = list_find_first(n->gres_list, _find_gpu, NULL)) && gres->gres_data) {
			gres_node_state_t *gn = gres->gres_data;
			uint64_t mask;
			if ((gn->gres_cnt_avail <= 64) && _mask_of(gn->gres_bit_alloc, &mask)) {
				nodes[node].gpu_count = (uint32_t)gn->gres_cnt_avail;
				nodes[node].allocated = mask;
			}
		}
		in_partition = p->part_ptr && p->part_ptr->node_bitmap &&
			       (node < bit_size(p->part_ptr->node_bitmap)) &&
			       bit_test(p->part_ptr->node_bitmap, node);
		if (in_partition && required &&
		    ((node >= bit_size(required)) || !bit_test(required, node)))
			in_partition = false;
		if (in_partition && p->details && p->details->exc_node_bitmap &&
		    (node < bit_size(p->details->exc_node_bitmap)) &&
		    bit_test(p->details->exc_node_bitmap, node))
			in_partition = false;
		if (in_partition)
			candidates[candidate_count++] = node;
	}
	owners = xcalloc(MAX_OWNERS, sizeof(uint32_t));
	{
		uint32_t all = swift.owners(owners, MAX_OWNERS);
		all = (all > MAX_OWNERS) ? MAX_OWNERS : all;
		for (i = 0; i < all; i++) {
			job_record_t *owner = find_job_record(owners[i]);
			if (owner && IS_JOB_PENDING(owner))
				owners[owner_count++] = owners[i];
		}
	}

	s.abi_version = TOPO_PREEMPT_ABI_VERSION;
	s.slurm_version = SLURM_VERSION_NUMBER;
	s.exempt_seconds = (slurm_conf.preempt_exempt_time == INFINITE ||
			    slurm_conf.preempt_exempt_time == NO_VAL) ? 0 : slurm_conf.preempt_exempt_time;
	s.now = (int64_t)time(NULL);
	s.node_count = node_record_count;
	s.nodes = nodes;
	s.job_count = q.job_count;
	s.jobs = q.jobs;
	s.alloc_count = q.alloc_count;
	s.allocs = q.allocs;
	s.owner_count = owner_count;
	s.pending_owners = owners;
	s.preemptor.job_id = p->job_id;
	s.preemptor.base_prio = _base_prio(p);
	s.preemptor.job_prio = p->priority;
	s.preemptor.gpus_per_node = _gpus_per_node(p, &per_socket);
	s.preemptor.per_socket = per_socket;
	s.preemptor.node_count = (p->details && p->details->min_nodes) ? p->details->min_nodes : 1;
	s.preemptor.cpus_per_node = (p->details && p->details->min_cpus) ?
		(p->details->min_cpus / s.preemptor.node_count) : 1;
	s.preemptor.candidate_count = candidate_count;
	s.preemptor.candidate_nodes = candidates;
	s.preemptor.admin_comment = p->admin_comment;
	s.preemptor.partition = p->partition;
	s.preemptor.qos = p->qos_ptr ? p->qos_ptr->name : NULL;

	if (swift.decide(&s, &q.decision) != 0) {
		q.decision.action = TOPO_PREEMPT_BASE_POLICY;
		q.decision.victim_count = 0;
	}
	if (q.decision.victim_count > TOPO_PREEMPT_MAX_VICTIMS)
		q.decision.victim_count = 0;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	elapsed = (long)((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000);
	if (q.decision.planned)
		info("%s: JobId=%u hook %ldus (%u running GPU jobs, %u of %d nodes usable)", plugin_type,
		     p->job_id, elapsed, q.job_count, candidate_count, node_record_count);
	else
		debug("%s: JobId=%u hook %ldus (%u running GPU jobs, %u of %d nodes usable, %u GPUs per node%s), action %d",
		      plugin_type, p->job_id, elapsed, q.job_count, candidate_count, node_record_count,
		      s.preemptor.gpus_per_node, per_socket ? " per socket" : "", q.decision.action);
	xfree(nodes);
	xfree(candidates);
	xfree(owners);
	FREE_NULL_BITMAP(required);
}

/* Position of a job among the decision's victims, or -1. */
static int _victim_position(uint32_t job_id)
{
	uint32_t i;

	for (i = 0; i < q.decision.victim_count; i++)
		if (q.decision.victims[i] == job_id)
			return (int)i;
	return -1;
}

/* Finishes the walk if one is being collected: at the first PRIO or MODE call for a job it
 * collected (the candidates' sort or _run_now), the snapshot is complete. */
static void _settle(job_record_t *job)
{
	if ((q.state == Q_COLLECTING) && q.managed && _seen_contains(job->job_id) &&
	    (q.job_update == last_job_update))
		_decide();
}

/* True while the decision still describes the current state (no job changed since, the
 * preemptor still exists). */
static bool _decision_current(void)
{
	return (q.state == Q_DECIDED) && (q.job_update == last_job_update) && q.preemptor &&
	       (find_job_record(q.preemptor_id) == q.preemptor);
}

/* ---- plugin API -------------------------------------------------------------------------- */

extern int init(void)
{
	info("%s: loaded (base policy until the planner is found: partition PriorityTier)", plugin_type);
	(void)_swift_resolve();
	return SLURM_SUCCESS;
}

extern void fini(void)
{
	slurm_mutex_lock(&q_lock);
	if (swift.found)
		swift.reset();
	memset(&swift, 0, sizeof(swift));
	xfree(q.jobs);
	xfree(q.allocs);
	xfree(q.seen);
	memset(&q, 0, sizeof(q));
	slurm_mutex_unlock(&q_lock);
}

/* May the queued preemptor preempt the queued preemptee at all (used to order the queue)? */
extern bool preempt_p_job_preempt_check(job_queue_rec_t *preemptor, job_queue_rec_t *preemptee)
{
	if (!preemptor || !preemptee)
		return false;
	if (base_policy == TOPO_PREEMPT_BASE_QOS)
		return preemptor->job_ptr && preemptee->job_ptr &&
		       _base_preemptable(preemptee->job_ptr, preemptor->job_ptr);
	if (!preemptor->part_ptr || !preemptee->part_ptr)
		return false;
	if (!preemptor->part_ptr->node_bitmap || !preemptee->part_ptr->node_bitmap)
		return false;
	if (((((preemptor->part_ptr->preempt_mode != NO_VAL16) ? preemptor->part_ptr->preempt_mode : 0) |
	      slurm_conf.preempt_mode) & TOPO_COMPAT_PREEMPT_MODE_PRIORITY) &&
	    (preemptor->priority < preemptee->priority))
		return false;
	return (preemptor->part_ptr->priority_tier > preemptee->part_ptr->priority_tier) &&
	       bit_overlap_any(preemptor->part_ptr->node_bitmap, preemptee->part_ptr->node_bitmap);
}

/* May this running job be preempted for that pending one? Called for every job of job_list
 * while Slurm holds the list's lock: collects the snapshot, answers with the base policy. */
extern bool preempt_p_preemptable(job_record_t *preemptee, job_record_t *preemptor)
{
	bool base;

	if (!preemptee || !preemptor)
		return false;
	slurm_mutex_lock(&q_lock);
	if (q.state != Q_COLLECTING || q.preemptor != preemptor ||
	    q.preemptor_id != preemptor->job_id || q.first == preemptee) {
		/* A new walk: settings may have changed with topo_aware.conf. */
		topo_preempt_settings_t s = { 0 };
		_reset_collection();
		q.state = Q_COLLECTING;
		q.preemptor = preemptor;
		q.preemptor_id = preemptor->job_id;
		q.first = preemptee;
		q.job_update = last_job_update;
		q.managed = false;
		if (_swift_resolve() && (swift.settings(&s) == 0)) {
			base_policy = s.base_policy;
			q.managed = swift.is_preemptor(preemptor->admin_comment, preemptor->partition,
						       preemptor->qos_ptr ? preemptor->qos_ptr->name : NULL) == 1;
		}
	}
	base = _base_preemptable(preemptee, preemptor);
	if (q.managed && (preemptee != preemptor))
		_collect(preemptee, base && !preemptee->preempt_time &&
			 ((_base_mode(preemptee) == PREEMPT_MODE_REQUEUE) ||
			  (_base_mode(preemptee) == PREEMPT_MODE_CANCEL)));
	slurm_mutex_unlock(&q_lock);
	return base;
}

/* The PreemptMode _run_now and _preempt_jobs read. For candidates of the preemptor just decided
 * that are not planned victims, OFF in guaranteed mode (or while its kept plan drains): Slurm
 * then cannot remove them. Jobs already signalled (preempt_time set) keep their real mode. */
static uint16_t _mode_of(job_record_t *job)
{
	uint16_t mode = _base_mode(job);
	int action;

	if (!job)
		return mode;
	slurm_mutex_lock(&q_lock);
	_settle(job);
	action = q.decision.action;
	if (_decision_current() && !job->preempt_time && q.preemptor &&
	    ((action == TOPO_PREEMPT_ONLY_VICTIMS) || (action == TOPO_PREEMPT_NO_VICTIMS)) &&
	    (_victim_position(job->job_id) < 0) && _base_preemptable(job, q.preemptor))
		mode = PREEMPT_MODE_OFF;
	slurm_mutex_unlock(&q_lock);
	return mode;
}

/* The base order shifted up by TOPO_PREEMPT_MAX_VICTIMS (same order), so that the planned
 * victims of the preemptor just decided can come first, in plan order. */
static uint32_t _prio_of(job_record_t *job)
{
	uint32_t base = _base_prio(job);
	uint32_t prio = (base > UINT32_MAX - TOPO_PREEMPT_MAX_VICTIMS) ? UINT32_MAX : base + TOPO_PREEMPT_MAX_VICTIMS;
	int position;

	if (!job)
		return prio;
	slurm_mutex_lock(&q_lock);
	_settle(job);
	if (_decision_current() &&
	    ((q.decision.action == TOPO_PREEMPT_ONLY_VICTIMS) ||
	     (q.decision.action == TOPO_PREEMPT_VICTIMS_FIRST)) &&
	    ((position = _victim_position(job->job_id)) >= 0))
		prio = (uint32_t)position;
	slurm_mutex_unlock(&q_lock);
	return prio;
}

/* preempt_p_get_data() or, from 25.05, preempt_p_get_prio/_mode/_grace_time. */
TOPO_COMPAT_PREEMPT_DATA_API(_prio_of, _mode_of, _base_grace)
