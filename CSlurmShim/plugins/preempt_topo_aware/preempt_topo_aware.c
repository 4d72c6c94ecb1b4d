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
 *      each job passing by is checked against the job index kept between passes (read again
 *      only when new or changed) and the base policy answers;
 *   2. PREEMPT_DATA_PRIO to sort the candidates, then PREEMPT_DATA_MODE in _run_now for each
 *      candidate it considers removing. At the first of these the walk is complete and the
 *      plugin decides: a kept decision, a plan on the changed nodes, or a plan on the whole
 *      cluster by the Swift planner (job_submit_topo_aware.so, found with dlopen/dlsym), which
 *      keeps its own state between such decisions and is given what changed since the last
 *      one (slot snapshots, topo_preempt_abi.h). Victims sort first; in guaranteed mode every
 *      other candidate of this preemptor reports PreemptMode OFF, which _run_now reads as
 *      "cannot be removed", so no job other than a planned victim is touched.
 * Anything unexpected (planner missing, snapshot too large, Swift error) falls back to the base
 * policy with one log line.
 *
 * Built for one release at a time (plugin_version must equal it): every difference between
 * releases (header locations, changed calls, the preempt API's entry points, PreemptMode flags)
 * comes from topo_slurm_compat.h.
 */
#include "config.h"

#include <dlfcn.h>
#include <inttypes.h>
#include <stddef.h>
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
	/* optional: the decision log's preempted records and the jobs' provenance */
	int (*victim)(const topo_preempt_victim_t *, topo_preempt_provenance_t *);
	void (*record_stats)(const topo_preempt_stats_record_t *);
	void (*record_fallback)(uint32_t, const char *, const char *);
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
			swift.victim = dlsym(handle, "TopoAwareSwift_preemptVictim");
			swift.record_stats = dlsym(handle, "TopoAwareSwift_preemptRecordStats");
			swift.record_fallback = dlsym(handle, "TopoAwareSwift_preemptRecordFallback");
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

/* ---- the index: running jobs and their GPUs, kept between passes ------------------------- */

/*
 * Slurm walks every job of job_list through preempt_p_preemptable, for each preemptor, in every
 * scheduling pass. The plugin keeps what it read from those jobs between passes (the index):
 * at each job it compares a fingerprint of the fields a change of the job's GPUs goes with
 * (record, state, start, resize and preempt times, restart count, node count, GRES, node and
 * resource records) and reads GRES state only for a job that is new or changed. Jobs that stop
 * running, or leave job_list, leave the index. Every change bumps the index's generation.
 *
 * The index is rebuilt (every entry read again from its live record) when first used, after a
 * reconfigure (node table or slurm.conf reloaded), every INDEX_PERIOD seconds, when the index
 * overflowed, and when a decision's victims or snapshot disagree with the live records; each
 * rebuild is counted by reason and logged.
 */
#define INDEX_PERIOD 600
/* A decision is answered again without asking the planner while nothing it depends on changed,
 * for at most this long (kept plans expire, costs grow with time: the planner sees them). */
#define REUSE_SECONDS 5
#define MAX_KEPT_DECISIONS 64

enum {
	R_START = TOPO_PREEMPT_REBUILD_START,
	R_RECONFIGURE = TOPO_PREEMPT_REBUILD_RECONFIGURE,
	R_PERIOD = TOPO_PREEMPT_REBUILD_PERIOD,
	R_DISAGREEMENT = TOPO_PREEMPT_REBUILD_DISAGREEMENT,
	R_OVERFLOW = TOPO_PREEMPT_REBUILD_OVERFLOW,
	R_COUNT = TOPO_PREEMPT_REBUILD_REASONS
};
static const char *const reason_names[R_COUNT] = { "start", "reconfigure", "period", "disagreement", "overflow" };

typedef struct {
	job_record_t *job;
	uint32_t job_id;
	uint32_t job_state;
	uint32_t node_cnt;
	uint32_t restart_cnt;
	time_t start_time, preempt_time, resize_time;
	void *gres, *node_bitmap, *resources; /* gres_list_alloc, node_bitmap, job_resrcs as last read */
	uint32_t stale;              /* read again at the next sight (a rebuild) */
	uint32_t linked;             /* its allocations are in the per-node lists */
	uint32_t dirty;              /* its slot is in idx.dirty_jobs */
	uint32_t alloc_count;        /* 0: running without GPUs */
	topo_preempt_alloc_t one;    /* the allocation when alloc_count == 1 */
	topo_preempt_alloc_t *many;  /* when alloc_count > 1 (xmalloc) */
} entry_t;

static struct {
	entry_t *entries;
	uint32_t *walk_of;           /* per entry: the last walk that saw it (apart: _sweep scans it) */
	/* Per entry, apart so that the planner reads them as they are (one array each): whether the
	 * preemptor of the current walk may take the job's GPUs, and its base priority as of the
	 * last walk (the record is never read outside one). */
	uint8_t *eligible;
	uint32_t *base_prio;
	uint32_t count, cap, gpu_jobs, alloc_total;
	uint32_t *slots;             /* job id -> entry index + 1 (0: empty), linear probing */
	uint32_t slot_cap;
	uint64_t generation;         /* bumped by every change of a job's GPUs */
	uint32_t walk, seen;         /* the current walk; entries it saw */
	bool overflow;
	int rebuild;                 /* -1 or the reason of a rebuild due at the next walk */
	uint64_t rebuilds[R_COUNT];
	time_t built, conf_update;
	void *node_table;
	int node_count;
	/* What the planner keeps between whole-cluster decisions follows the index by slot (the
	 * entry's position): the slots and nodes changed since the last slot snapshot, the node
	 * states it was given, and the index's identity (a new epoch after every rebuild). */
	uint64_t epoch, sequence;
	topo_preempt_job_t *slot_jobs;
	uint32_t slot_jobs_cap;
	uint32_t *dirty_jobs;
	uint32_t dirty_jobs_count, dirty_jobs_cap;
	bool jobs_all, nodes_all;
	topo_preempt_node_t *node_state; /* per node, as the planner was last given it */
	uint32_t node_state_size;
	uint32_t *dirty_nodes;
	uint32_t dirty_nodes_count;
	uint8_t *node_mark;
	uint64_t nodes_head;         /* changes noted when the node states were last given */
	time_t nodes_refreshed;      /* when every node state was last read */
	/* the planner's snapshot for partial plans (grows to the cluster once) */
	topo_preempt_job_t *jobs;
	uint32_t jobs_cap;
	topo_preempt_alloc_t *allocs;
	uint32_t allocs_cap;
	topo_preempt_node_t *nodes;
	uint32_t *candidates;
	uint32_t *required;
	uint32_t nodes_cap;
	uint32_t *owners;
} idx = { .rebuild = R_START };

/* Per node, the ids of the indexed jobs holding GPUs there; and the nodes each change touched,
 * in order (a ring: the last RING changes), so that a decision can be planned again on the
 * nodes that changed since it was made (_plan_partial). */
#define RING 8192u
static struct {
	uint32_t **jobs;
	uint16_t *count, *cap;
	uint32_t size;               /* nodes the lists cover */
	struct {
		uint32_t node, job_id;
	} ring[RING];
	uint64_t head;               /* changes noted so far */
	uint64_t floor;              /* decisions older than this generation cannot be planned partially */
} nodes_of;

/* Grows an array kept between decisions. */
#define GROW(ptr, cap, need)                                                      \
	do {                                                                      \
		if ((need) > (cap)) {                                             \
			(cap) = (need) + (need) / 4 + 64;                          \
			xrecalloc((ptr), (cap), sizeof(*(ptr)));                  \
		}                                                                 \
	} while (0)

/* More changed slots than this between two slot snapshots: every slot is given. */
#define DIRTY_MAX 65536u

/* Slot i's job changed (new, read again, or another job moved into the slot). */
static void _dirty_slot(uint32_t i)
{
	if (idx.jobs_all || idx.entries[i].dirty)
		return;
	if (idx.dirty_jobs_count >= DIRTY_MAX) {
		idx.jobs_all = true;
		return;
	}
	GROW(idx.dirty_jobs, idx.dirty_jobs_cap, idx.dirty_jobs_count + 1);
	idx.dirty_jobs[idx.dirty_jobs_count++] = i;
	idx.entries[i].dirty = 1;
}

static void _link(uint32_t node, uint32_t job_id)
{
	if (node >= nodes_of.size)
		return;
	if (nodes_of.count[node] == nodes_of.cap[node]) {
		if (nodes_of.cap[node] >= 0x8000)
			return;
		nodes_of.cap[node] = nodes_of.cap[node] ? nodes_of.cap[node] * 2 : 8;
		xrecalloc(nodes_of.jobs[node], nodes_of.cap[node], sizeof(uint32_t));
	}
	nodes_of.jobs[node][nodes_of.count[node]++] = job_id;
}

static void _unlink(uint32_t node, uint32_t job_id)
{
	uint16_t i;

	if (node >= nodes_of.size)
		return;
	for (i = 0; i < nodes_of.count[node]; i++)
		if (nodes_of.jobs[node][i] == job_id) {
			nodes_of.jobs[node][i] = nodes_of.jobs[node][--nodes_of.count[node]];
			return;
		}
}

static void _note(uint32_t node, uint32_t job_id)
{
	nodes_of.ring[nodes_of.head % RING].node = node;
	nodes_of.ring[nodes_of.head % RING].job_id = job_id;
	nodes_of.head++;
}

static void _free_node_lists(void)
{
	uint32_t n;

	for (n = 0; n < nodes_of.size; n++)
		xfree(nodes_of.jobs[n]);
	xfree(nodes_of.jobs);
	xfree(nodes_of.count);
	xfree(nodes_of.cap);
}

/* Empties the per-node lists (sized for the node table as it is now). */
static void _reset_node_lists(void)
{
	_free_node_lists();
	nodes_of.size = (node_record_count > 0) ? (uint32_t)node_record_count : 0;
	if (nodes_of.size) {
		nodes_of.jobs = xcalloc(nodes_of.size, sizeof(uint32_t *));
		nodes_of.count = xcalloc(nodes_of.size, sizeof(uint16_t));
		nodes_of.cap = xcalloc(nodes_of.size, sizeof(uint16_t));
	}
}

#define WALK(e) (idx.walk_of[(e) - idx.entries])
#define ELIGIBLE(e) (idx.eligible[(e) - idx.entries])
#define BASE_PRIO(e) (idx.base_prio[(e) - idx.entries])

static inline uint32_t _hash(uint32_t id)
{
	return id * 2654435761u;
}

/* The slot holding the job, or the empty slot where it would go. */
static uint32_t *_slot_of(uint32_t id)
{
	uint32_t mask = idx.slot_cap - 1, i;

	for (i = _hash(id) & mask; idx.slots[i]; i = (i + 1) & mask)
		if (idx.entries[idx.slots[i] - 1].job_id == id)
			break;
	return &idx.slots[i];
}

static entry_t *_lookup(uint32_t id)
{
	uint32_t slot;

	if (!idx.slot_cap)
		return NULL;
	slot = *_slot_of(id);
	return slot ? &idx.entries[slot - 1] : NULL;
}

static const topo_preempt_alloc_t *_allocs_of(const entry_t *e)
{
	return (e->alloc_count > 1) ? e->many : &e->one;
}

/* The job's GPUs leave the index (a change on each of its nodes). */
static void _free_allocs(entry_t *e)
{
	uint32_t k;

	if (e->alloc_count) {
		const topo_preempt_alloc_t *a = _allocs_of(e);
		idx.generation++;
		for (k = 0; k < e->alloc_count; k++) {
			if (e->linked)
				_unlink(a[k].node, e->job_id);
			_note(a[k].node, e->job_id);
		}
		idx.gpu_jobs--;
		idx.alloc_total -= e->alloc_count;
	}
	if (e->many)
		xfree(e->many);
	e->many = NULL;
	e->alloc_count = 0;
	e->linked = 0;
}

/* Removes entry i (the last entry takes its place). */
static void _remove(uint32_t i)
{
	entry_t *e = &idx.entries[i];
	uint32_t mask = idx.slot_cap - 1, hole, j;

	_free_allocs(e);
	/* Backward-shift deletion: later slots of the probe run move into the hole when their
	 * home is not between the hole and them. */
	hole = (uint32_t)(_slot_of(e->job_id) - idx.slots);
	idx.slots[hole] = 0;
	for (j = (hole + 1) & mask; idx.slots[j]; j = (j + 1) & mask) {
		uint32_t home = _hash(idx.entries[idx.slots[j] - 1].job_id) & mask;
		bool stays = (hole < j) ? ((home > hole) && (home <= j)) : ((home > hole) || (home <= j));
		if (!stays) {
			idx.slots[hole] = idx.slots[j];
			idx.slots[j] = 0;
			hole = j;
		}
	}
	if (idx.walk_of[i] == idx.walk)
		idx.seen--;
	idx.count--;
	if (i != idx.count) {
		*e = idx.entries[idx.count];
		idx.walk_of[i] = idx.walk_of[idx.count];
		idx.eligible[i] = idx.eligible[idx.count];
		idx.base_prio[i] = idx.base_prio[idx.count];
		*_slot_of(e->job_id) = i + 1;
		e->dirty = 0;
		_dirty_slot(i);
	}
	memset(&idx.entries[idx.count], 0, sizeof(entry_t));
	idx.walk_of[idx.count] = 0;
	idx.eligible[idx.count] = 0;
	idx.base_prio[idx.count] = 0;
}

/* A rebuild: every entry is read again from its live record, by the next walk or, for jobs a
 * split walk does not pass again, by _sweep. Entries are kept until then (a walk split by a
 * call from outside would otherwise lose the jobs it had passed). */
static void _clear_index(int reason)
{
	uint32_t i;

	for (i = 0; i < idx.count; i++) {
		idx.entries[i].stale = 1;
		idx.walk_of[i] = 0;
		idx.entries[i].linked = 0;
	}
	_reset_node_lists();
	idx.seen = 0;
	idx.overflow = false;
	idx.generation++;
	idx.epoch++;
	idx.sequence = 0;
	idx.jobs_all = idx.nodes_all = true;
	nodes_of.floor = idx.generation;
	idx.rebuilds[reason]++;
	idx.built = time(NULL);
	idx.conf_update = slurm_conf.last_update;
	idx.node_table = node_record_table_ptr;
	idx.node_count = node_record_count;
	{
		char counts[256] = "";
		int r, used = 0;
		for (r = 0; r < R_COUNT; r++)
			used += snprintf(counts + used, sizeof(counts) - used, "%s%s %" PRIu64,
					 r ? ", " : "", reason_names[r], idx.rebuilds[r]);
		if ((reason == R_START) || (reason == R_PERIOD))
			verbose("%s: job index rebuilt (%s); rebuilds so far: %s", plugin_type,
				reason_names[reason], counts);
		else
			info("%s: job index rebuilt (%s); rebuilds so far: %s", plugin_type,
			     reason_names[reason], counts);
	}
}

/* A new entry for the job (no GPUs yet); NULL when the index is full. */
static entry_t *_insert(job_record_t *job)
{
	entry_t *e;

	if (idx.count >= MAX_JOBS) {
		idx.overflow = true;
		return NULL;
	}
	if ((idx.count + 1) * 2 > idx.slot_cap) {
		uint32_t i;
		xfree(idx.slots);
		idx.slot_cap = idx.slot_cap ? idx.slot_cap * 2 : 4096;
		idx.slots = xcalloc(idx.slot_cap, sizeof(uint32_t));
		for (i = 0; i < idx.count; i++)
			*_slot_of(idx.entries[i].job_id) = i + 1;
	}
	if (idx.count == idx.cap) {
		idx.cap = idx.cap ? idx.cap * 2 : 2048;
		xrecalloc(idx.entries, idx.cap, sizeof(entry_t));
		xrecalloc(idx.walk_of, idx.cap, sizeof(uint32_t));
		xrecalloc(idx.eligible, idx.cap, sizeof(uint8_t));
		xrecalloc(idx.base_prio, idx.cap, sizeof(uint32_t));
	}
	e = &idx.entries[idx.count];
	memset(e, 0, sizeof(*e));
	idx.walk_of[idx.count] = 0;
	idx.eligible[idx.count] = 0;
	idx.base_prio[idx.count] = 0;
	e->job_id = job->job_id;
	*_slot_of(job->job_id) = ++idx.count;
	_dirty_slot(idx.count - 1);
	return e;
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

/* Calls each(node index, GPU mask, arg) for every node where the running job holds GPUs, from
 * its live GRES state; returns how many, or -1 when the state cannot be read (GPUs beyond 63,
 * nodes beyond the table). */
static int _each_allocation(job_record_t *job, void (*each)(uint32_t, uint64_t, void *), void *arg)
{
	gres_state_t *gres;
	gres_job_state_t *gj;
	uint32_t offset = 0;
	int count = 0;
	bitoff_t node, last;

	if (!job->gres_list_alloc || !job->node_bitmap)
		return 0;
	gres = list_find_first(job->gres_list_alloc, _find_gpu, NULL);
	if (!gres || !gres->gres_data)
		return 0;
	gj = gres->gres_data;
	if (!gj->gres_bit_alloc || !gj->node_cnt)
		return 0;
	node = bit_ffs(job->node_bitmap);
	last = bit_fls(job->node_bitmap);
	if (node < 0)
		return 0;
	if (last >= node_record_count)
		return -1;
	for (; (node <= last) && (offset < gj->node_cnt); node++) {
		uint64_t mask;

		if (!bit_test(job->node_bitmap, node))
			continue;
		if (gj->gres_bit_alloc[offset]) {
			if (!_mask_of(gj->gres_bit_alloc[offset], &mask))
				return -1;
			if (mask) {
				each((uint32_t)node, mask, arg);
				count++;
			}
		}
		offset++;
	}
	return count;
}

typedef struct {
	entry_t *e;
	uint32_t at;
} fill_t;

static void _fill(uint32_t node, uint64_t mask, void *arg)
{
	fill_t *f = arg;
	topo_preempt_alloc_t *a = (f->e->alloc_count > 1) ? &f->e->many[f->at] : &f->e->one;

	if (f->at < f->e->alloc_count) {
		a->node = node;
		a->reserved = 0;
		a->gpus = mask;
	}
	f->at++;
}

static void _count(uint32_t node, uint64_t mask, void *arg)
{
	(void)node;
	(void)mask;
	(*(uint32_t *)arg)++;
}

/* (Re)reads a running job's GPUs into its entry. */
static void _read(entry_t *e, job_record_t *job)
{
	uint32_t count = 0;
	int got;
	fill_t f = { .e = e };
	const topo_preempt_alloc_t *a;
	uint32_t k;

	_free_allocs(e);
	_dirty_slot((uint32_t)(e - idx.entries));
	e->stale = 0;
	e->job = job;
	e->job_state = job->job_state;
	e->start_time = job->start_time;
	e->preempt_time = job->preempt_time;
	e->resize_time = job->resize_time;
	e->node_cnt = job->node_cnt;
	e->restart_cnt = job->restart_cnt;
	e->gres = job->gres_list_alloc;
	e->node_bitmap = job->node_bitmap;
	e->resources = job->job_resrcs;
	got = _each_allocation(job, _count, &count);
	if ((got <= 0) || !count || (count > MAX_ALLOCS) || (idx.alloc_total + count > MAX_ALLOCS))
		return; /* no GPUs the planner can use: kept as a job without GPUs */
	e->alloc_count = count;
	if (count > 1)
		e->many = xcalloc(count, sizeof(topo_preempt_alloc_t));
	(void)_each_allocation(job, _fill, &f);
	idx.gpu_jobs++;
	idx.alloc_total += count;
	idx.generation++;
	a = _allocs_of(e);
	for (k = 0; k < count; k++) {
		_link(a[k].node, e->job_id);
		_note(a[k].node, e->job_id);
	}
	e->linked = 1;
}

static inline bool _unchanged(const entry_t *e, job_record_t *job)
{
	return (e->job == job) && (e->job_state == job->job_state) && (e->start_time == job->start_time) &&
	       (e->preempt_time == job->preempt_time) && (e->resize_time == job->resize_time) &&
	       (e->node_cnt == job->node_cnt) && (e->restart_cnt == job->restart_cnt) &&
	       (e->gres == job->gres_list_alloc) && (e->node_bitmap == job->node_bitmap) &&
	       (e->resources == job->job_resrcs);
}

/* One job of the walk: keeps the index in step with it. */
static void _observe(job_record_t *job, bool eligible)
{
	entry_t *e = _lookup(job->job_id);

	if (!IS_JOB_RUNNING(job)) {
		if (e)
			_remove((uint32_t)(e - idx.entries));
		return;
	}
	if (!e) {
		if (!(e = _insert(job)))
			return;
		_read(e, job);
	} else if (e->stale || !_unchanged(e, job)) {
		_read(e, job);
	}
	if (WALK(e) != idx.walk) {
		WALK(e) = idx.walk;
		idx.seen++;
	}
	ELIGIBLE(e) = eligible ? 1 : 0;
	BASE_PRIO(e) = _base_prio(job);
}

/* May the preemptor take the job's GPUs: the base policy allows it, Slurm has not signalled it
 * yet, and its mode frees GPUs. */
static bool _eligible(job_record_t *job, job_record_t *preemptor, bool base)
{
	uint16_t mode;

	if (!base || job->preempt_time)
		return false;
	mode = _base_mode(job);
	return (mode == PREEMPT_MODE_REQUEUE) || (mode == PREEMPT_MODE_CANCEL);
}

/* Before deciding: entries the walk did not see. A whole walk sees every job of job_list, so
 * these normally left it; but a walk may also have begun with a call from outside a walk, or
 * been split by one. Each is checked against its live record (find_job_record: the record is
 * only touched when it still exists): gone or not running, it leaves the index; changed, it is
 * read again. */
static void _sweep(job_record_t *preemptor)
{
	uint32_t i;

	if (idx.seen >= idx.count)
		return;
	for (i = idx.count; i-- > 0;) {
		entry_t *e = &idx.entries[i];
		job_record_t *job;

		if (idx.walk_of[i] == idx.walk)
			continue;
		job = find_job_record(e->job_id);
		if (!job || (job != e->job) || !IS_JOB_RUNNING(job)) {
			_remove(i);
			continue;
		}
		if (e->stale || !_unchanged(e, job))
			_read(e, job);
		idx.walk_of[i] = idx.walk;
		idx.seen++;
		idx.eligible[i] = _eligible(job, preemptor, _base_preemptable(job, preemptor)) ? 1 : 0;
		idx.base_prio[i] = _base_prio(job);
	}
}

/* A new walk: rebuild first when one is due. */
static void _walk_starts(void)
{
	time_t now = time(NULL);
	int reason = idx.rebuild;

	if (reason < 0) {
		if ((idx.node_table != (void *)node_record_table_ptr) || (idx.node_count != node_record_count) ||
		    (idx.conf_update != slurm_conf.last_update))
			reason = R_RECONFIGURE;
		else if (idx.overflow)
			reason = R_OVERFLOW;
		else if ((now - idx.built) >= INDEX_PERIOD)
			reason = R_PERIOD;
	}
	if (reason >= 0) {
		_clear_index(reason);
		idx.rebuild = -1;
	}
	idx.walk++;
	idx.seen = 0;
}

/* ---- one query: a preemptor's walk over job_list, then its decision --------------------- */

enum { Q_IDLE, Q_COLLECTING, Q_DECIDED };

/* A decision kept for its preemptor: answered again while nothing it depends on changed, or
 * planned again on the nodes that changed and its own (decision.target_nodes: node indices). */
typedef struct {
	uint32_t preemptor_id;
	job_record_t *preemptor;
	uint64_t request, generation;
	uint64_t ring_head;      /* changes noted when it was made */
	time_t part_update, made;
	time_t full;             /* when the whole cluster was last planned on for it */
	topo_preempt_decision_t decision;
} kept_t;

static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int state;
	bool managed;            /* the preemptor is a class the planner handles */
	job_record_t *preemptor;
	uint32_t preemptor_id;
	job_record_t *first;     /* first job of the walk (a second visit starts a new walk) */
	bool saw_self;           /* the walk passed the preemptor itself */
	time_t job_update;
	topo_preempt_decision_t decision;
	kept_t kept[MAX_KEPT_DECISIONS];
	uint64_t walks, decisions, reused, disagreements, full_plans, partial_plans;
	uint64_t decide_ns, last_decide_ns;
	bool overflow_recorded;  /* the index overflow's fallback record is written */
} q;

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

static inline uint64_t _mix(uint64_t h, uint64_t v)
{
	return (h ^ (v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2))) * 0xff51afd7ed558ccdull;
}

/* What the preemptor asks for and where: a decision is kept for exactly this. */
static uint64_t _request_of(job_record_t *p)
{
	uint32_t per_socket = 0;
	uint64_t h = _mix(0, _gpus_per_node(p, &per_socket));

	h = _mix(h, per_socket);
	h = _mix(h, (uintptr_t)p->part_ptr);
	h = _mix(h, (uintptr_t)p->qos_ptr);
	h = _mix(h, p->priority);
	h = _mix(h, (uintptr_t)p->admin_comment);
	h = _mix(h, (uintptr_t)p->partition);
	if (p->details) {
		h = _mix(h, p->details->min_nodes);
		h = _mix(h, p->details->min_cpus);
		h = _mix(h, (uintptr_t)p->details->req_nodes);
		h = _mix(h, (uintptr_t)p->details->exc_node_bitmap);
	}
	h = _mix(h, topo_compat_segment_size(p));
	h = _mix(h, topo_compat_segments_consolidated(p) | (topo_compat_segments_spread(p) << 1));
	return h;
}

static kept_t *_kept_of(uint32_t id)
{
	int i;

	for (i = 0; i < MAX_KEPT_DECISIONS; i++)
		if (q.kept[i].preemptor_id == id)
			return &q.kept[i];
	return NULL;
}

static void _note_targets(const topo_preempt_decision_t *d)
{
	uint32_t t;

	for (t = 0; (t < d->target_count) && (t < TOPO_PREEMPT_MAX_TARGETS); t++)
		_note(d->target_nodes[t], 0);
}

/* Keeps the decision just made for the preemptor (the slot of its own, else the oldest). A new
 * plan is a change on its nodes and on the nodes of the plan it replaces: other preemptors'
 * decisions there are made again (their GPUs may be reserved or taken over, or freed). */
static void _keep(job_record_t *p, uint64_t request, bool full)
{
	kept_t *k = _kept_of(p->job_id);
	int i;

	if (q.decision.planned) {
		if (k && (k->preemptor == p))
			_note_targets(&k->decision);
		_note_targets(&q.decision);
		idx.generation++;
	}
	if (!k || (k->preemptor != p)) {
		if (!k) {
			k = &q.kept[0];
			for (i = 1; i < MAX_KEPT_DECISIONS; i++)
				if (q.kept[i].made < k->made)
					k = &q.kept[i];
		}
		memset(k, 0, sizeof(*k));
	}
	k->preemptor_id = p->job_id;
	k->preemptor = p;
	k->request = request;
	k->generation = idx.generation;
	k->part_update = last_part_update;
	k->made = time(NULL);
	k->ring_head = nodes_of.head;
	if (full)
		k->full = k->made;
	k->decision = q.decision;
}

typedef struct {
	const entry_t *e;
	uint32_t at;
	bool same;
} compare_t;

static void _compare(uint32_t node, uint64_t mask, void *arg)
{
	compare_t *c = arg;
	const topo_preempt_alloc_t *a = _allocs_of(c->e);

	if ((c->at >= c->e->alloc_count) || (a[c->at].node != node) || (a[c->at].gpus != mask))
		c->same = false;
	c->at++;
}

/* Every victim of the decision is, in its live job record, the running job the index holds on
 * the same GPUs. */
static bool _verify(const topo_preempt_decision_t *d, uint32_t *bad)
{
	uint32_t i;

	for (i = 0; (i < d->victim_count) && (i < TOPO_PREEMPT_MAX_VICTIMS); i++) {
		entry_t *e = _lookup(d->victims[i]);
		job_record_t *job = find_job_record(d->victims[i]);
		compare_t c = { .same = true };
		int got;

		*bad = d->victims[i];
		if (!e || !job || (e->job != job) || !IS_JOB_RUNNING(job) || !e->alloc_count ||
		    (WALK(e) != idx.walk) || !_unchanged(e, job))
			return false;
		c.e = e;
		got = _each_allocation(job, _compare, &c);
		if ((got != (int)e->alloc_count) || !c.same)
			return false;
	}
	return true;
}

static bool _node_available(node_record_t *node)
{
	return !(IS_NODE_UNKNOWN(node) || IS_NODE_DOWN(node) || IS_NODE_FUTURE(node) ||
		 IS_NODE_DRAIN(node) || IS_NODE_FAIL(node) || IS_NODE_NO_RESPOND(node) ||
		 IS_NODE_POWERED_DOWN(node));
}

/* Room for `need` nodes (and as many candidate indices) in the planner's snapshot. */
static void _grow_nodes(uint32_t need)
{
	if (need <= idx.nodes_cap)
		return;
	idx.nodes_cap = need;
	xrecalloc(idx.nodes, idx.nodes_cap, sizeof(*idx.nodes));
	xrecalloc(idx.candidates, idx.nodes_cap, sizeof(uint32_t));
	xrecalloc(idx.required, idx.nodes_cap, sizeof(uint32_t));
}

/* A node as the planner sees it. */
static void _node_state(int node, topo_preempt_node_t *out)
{
	node_record_t *n = node_record_table_ptr[node];
	gres_state_t *gres;

	memset(out, 0, sizeof(*out));
	if (!n || !n->name) {
		out->name = "";
		return;
	}
	out->name = n->name;
	out->available = _node_available(n) ? 1 : 0;
	if (n->gres_list && (gres = list_find_first(n->gres_list, _find_gpu, NULL)) && gres->gres_data) {
		gres_node_state_t *gn = gres->gres_data;
		uint64_t mask;
		if ((gn->gres_cnt_avail <= 64) && _mask_of(gn->gres_bit_alloc, &mask)) {
			out->gpu_count = (uint32_t)gn->gres_cnt_avail;
			out->allocated = mask;
		}
	}
}

/* May the preemptor run on the node: its partition, -w (required), -x. */
static bool _candidate(job_record_t *p, int node, bitstr_t *required)
{
	if (!p->part_ptr || !p->part_ptr->node_bitmap || (node >= bit_size(p->part_ptr->node_bitmap)) ||
	    !bit_test(p->part_ptr->node_bitmap, node))
		return false;
	if (required && ((node >= bit_size(required)) || !bit_test(required, node)))
		return false;
	if (p->details && p->details->exc_node_bitmap && (node < bit_size(p->details->exc_node_bitmap)) &&
	    bit_test(p->details->exc_node_bitmap, node))
		return false;
	return true;
}

/* The required nodes (-w): _get_req_features() clears details->req_node_bitmap while it asks
 * for candidates, so they are read from their names. -1: named nodes unknown. */
static int _required(job_record_t *p, bitstr_t **required)
{
	*required = NULL;
	if (p->details && p->details->req_node_bitmap) {
		*required = bit_copy(p->details->req_node_bitmap);
	} else if (p->details && p->details->req_nodes &&
		   topo_compat_node_name2bitmap(p->details->req_nodes, false, required)) {
		FREE_NULL_BITMAP(*required);
		info("%s: JobId=%u required nodes '%s' unknown; base policy", plugin_type,
		     p->job_id, p->details->req_nodes);
		return -1;
	}
	return 0;
}

/* Writes the index entry's job into `out` for the planner, its allocations at idx.allocs[*a]
 * on (node indices from `compact` when given). */
static void _add_job(const entry_t *e, topo_preempt_job_t *out, uint32_t *a, const int32_t *compact)
{
	const topo_preempt_alloc_t *al = _allocs_of(e);
	uint32_t k;

	out->job_id = e->job_id;
	out->base_prio = BASE_PRIO(e);
	out->eligible = ELIGIBLE(e);
	out->alloc_first = *a;
	out->alloc_count = e->alloc_count;
	out->start_time = (int64_t)e->start_time;
	out->flags = e->preempt_time ? TOPO_PREEMPT_JOB_DRAINING : 0;
	for (k = 0; k < e->alloc_count; k++) {
		idx.allocs[*a] = al[k];
		if (compact)
			idx.allocs[*a].node = (uint32_t)compact[k];
		(*a)++;
	}
}

/* Nodes named by -w that are fewer than the job's: NULL (the named nodes, when as many, are
 * its candidates and pass _candidate). */
static bitstr_t *_only_required(job_record_t *p, bitstr_t *required)
{
	uint32_t nodes = (p->details && p->details->min_nodes) ? p->details->min_nodes : 1;

	return (required && ((uint32_t)bit_set_count(required) >= nodes)) ? required : NULL;
}

/* Asks the planner; the request part of the snapshot is filled here. `required_count` entries
 * of idx.required are the nodes named by -w the job asks for more than. */
static void _ask(job_record_t *p, topo_preempt_snapshot_t *s, uint32_t candidate_count, uint32_t required_count)
{
	uint32_t i, owner_count = 0, per_socket = 0;

	if (!idx.owners)
		idx.owners = xcalloc(MAX_OWNERS, sizeof(uint32_t));
	{
		uint32_t all = swift.owners(idx.owners, MAX_OWNERS);
		all = (all > MAX_OWNERS) ? MAX_OWNERS : all;
		for (i = 0; i < all; i++) {
			job_record_t *owner = find_job_record(idx.owners[i]);
			if (owner && IS_JOB_PENDING(owner))
				idx.owners[owner_count++] = idx.owners[i];
		}
	}
	s->abi_version = TOPO_PREEMPT_ABI_VERSION;
	s->slurm_version = SLURM_VERSION_NUMBER;
	s->exempt_seconds = (slurm_conf.preempt_exempt_time == INFINITE ||
			     slurm_conf.preempt_exempt_time == NO_VAL) ? 0 : slurm_conf.preempt_exempt_time;
	s->now = (int64_t)time(NULL);
	s->owner_count = owner_count;
	s->pending_owners = idx.owners;
	s->preemptor.job_id = p->job_id;
	s->preemptor.base_prio = _base_prio(p);
	s->preemptor.job_prio = p->priority;
	s->preemptor.gpus_per_node = _gpus_per_node(p, &per_socket);
	s->preemptor.per_socket = per_socket;
	s->preemptor.node_count = (p->details && p->details->min_nodes) ? p->details->min_nodes : 1;
	s->preemptor.cpus_per_node = (p->details && p->details->min_cpus) ?
		(p->details->min_cpus / s->preemptor.node_count) : 1;
	s->preemptor.candidate_count = candidate_count;
	s->preemptor.candidate_nodes = idx.candidates;
	s->preemptor.admin_comment = p->admin_comment;
	s->preemptor.partition = p->partition;
	s->preemptor.qos = p->qos_ptr ? p->qos_ptr->name : NULL;
	s->preemptor.required_count = required_count;
	s->preemptor.required_nodes = idx.required;
	s->preemptor.segment_size = topo_compat_segment_size(p);
	s->preemptor.segment_flags = (topo_compat_segments_consolidated(p) ? TOPO_PREEMPT_SEGMENTS_CONSOLIDATE : 0) |
				     (topo_compat_segments_spread(p) ? TOPO_PREEMPT_SEGMENTS_SPREAD : 0);

	memset(&q.decision, 0, offsetof(topo_preempt_decision_t, victims));
	q.decision.target_count = 0;
	if (swift.decide(s, &q.decision) != 0) {
		q.decision.action = TOPO_PREEMPT_BASE_POLICY;
		q.decision.victim_count = 0;
		q.decision.target_count = 0;
	}
	if (q.decision.victim_count > TOPO_PREEMPT_MAX_VICTIMS)
		q.decision.victim_count = 0;
	if (q.decision.target_count > TOPO_PREEMPT_MAX_TARGETS)
		q.decision.target_count = 0;
	for (i = 0; i < q.decision.target_count; i++)
		if (q.decision.target_nodes[i] >= s->node_count)
			q.decision.target_count = 0;
	if (q.decision.flags & TOPO_PREEMPT_DECISION_INCONSISTENT) {
		/* The planner found the jobs' GPUs at odds with the nodes' (it answered with the
		 * base policy): read everything again. */
		q.disagreements++;
		idx.rebuild = R_DISAGREEMENT;
	}
}

/* How long a node's state may go unread when no job changed on it (a node drained, resumed or
 * reconfigured without a job starting or ending there): every node is read again this often.
 * The nodes a decision puts the job on are read at every decision (_targets_hold). */
#define NODE_REFRESH_SECONDS 30

/* The node states for a slot snapshot: the nodes changed since the last one (the ring), or
 * every node when due. */
static void _slot_nodes(topo_preempt_snapshot_t *s)
{
	uint32_t size = (node_record_count > 0) ? (uint32_t)node_record_count : 0, n;
	uint64_t c;
	time_t now = time(NULL);

	if (idx.node_state_size != size) {
		xrecalloc(idx.node_state, size ? size : 1, sizeof(*idx.node_state));
		xrecalloc(idx.node_mark, size ? size : 1, sizeof(uint8_t));
		xrecalloc(idx.dirty_nodes, size ? size : 1, sizeof(uint32_t));
		idx.node_state_size = size;
		idx.nodes_all = true;
	}
	if ((now - idx.nodes_refreshed >= NODE_REFRESH_SECONDS) || (now < idx.nodes_refreshed) ||
	    (nodes_of.head - idx.nodes_head > RING))
		idx.nodes_all = true;
	idx.dirty_nodes_count = 0;
	if (idx.nodes_all) {
		for (n = 0; n < size; n++)
			_node_state((int)n, &idx.node_state[n]);
		idx.nodes_refreshed = now;
	} else {
		for (c = idx.nodes_head; c < nodes_of.head; c++) {
			n = nodes_of.ring[c % RING].node;
			if ((n >= size) || idx.node_mark[n])
				continue;
			idx.node_mark[n] = 1;
			_node_state((int)n, &idx.node_state[n]);
			idx.dirty_nodes[idx.dirty_nodes_count++] = n;
		}
		for (n = 0; n < idx.dirty_nodes_count; n++)
			idx.node_mark[idx.dirty_nodes[n]] = 0;
	}
	idx.nodes_head = nodes_of.head;
	s->nodes = idx.node_state;
	s->node_count = size;
	s->dirty_node_count = idx.nodes_all ? TOPO_PREEMPT_DIRTY_ALL : idx.dirty_nodes_count;
	s->dirty_nodes = idx.dirty_nodes;
}

/* A slot snapshot: the jobs of the slots changed since the last one (all when due), every
 * slot's eligibility and base priority for this walk (the index's own arrays), the node states. */
static void _slot_snapshot(topo_preempt_snapshot_t *s)
{
	uint32_t i, k, a = 0, need = 0;

	memset(s, 0, sizeof(*s));
	s->flags = TOPO_PREEMPT_SNAPSHOT_SLOTS;
	s->epoch = idx.epoch;
	s->sequence = ++idx.sequence;
	GROW(idx.slot_jobs, idx.slot_jobs_cap, idx.count + 1);
	if (idx.jobs_all) {
		need = idx.alloc_total;
	} else {
		for (i = 0; i < idx.dirty_jobs_count; i++)
			if (idx.dirty_jobs[i] < idx.count)
				need += idx.entries[idx.dirty_jobs[i]].alloc_count;
	}
	GROW(idx.allocs, idx.allocs_cap, need + 1);
	for (k = 0; k < (idx.jobs_all ? idx.count : idx.dirty_jobs_count); k++) {
		uint32_t slot = idx.jobs_all ? k : idx.dirty_jobs[k];

		if (slot >= idx.count)
			continue;
		if (a + idx.entries[slot].alloc_count > need)
			break; /* cannot happen: counted above */
		_add_job(&idx.entries[slot], &idx.slot_jobs[slot], &a, NULL);
	}
	s->jobs = idx.slot_jobs;
	s->job_count = idx.count;
	s->allocs = idx.allocs;
	s->alloc_count = a;
	s->dirty_job_count = idx.jobs_all ? TOPO_PREEMPT_DIRTY_ALL : idx.dirty_jobs_count;
	s->dirty_jobs = idx.dirty_jobs;
	s->slot_eligible = idx.eligible;
	s->slot_base_prio = idx.base_prio;
	_slot_nodes(s);
}

/* The planner has the slot snapshot: nothing is dirty any more. */
static void _slot_sent(void)
{
	uint32_t i;

	for (i = 0; i < idx.dirty_jobs_count; i++)
		if (idx.dirty_jobs[i] < idx.count)
			idx.entries[idx.dirty_jobs[i]].dirty = 0;
	idx.dirty_jobs_count = 0;
	idx.jobs_all = false;
	idx.nodes_all = false;
}

/* The decision's target nodes hold: available now and, for a slot snapshot's answer (`given`),
 * in the state the planner was given. A node that changed is noted (read again for the next
 * slot snapshot, and kept decisions on it are made again). */
static bool _targets_hold(const topo_preempt_decision_t *d, bool given)
{
	uint32_t t;

	for (t = 0; (t < d->target_count) && (t < TOPO_PREEMPT_MAX_TARGETS); t++) {
		uint32_t node = d->target_nodes[t];
		topo_preempt_node_t now;
		bool same;

		if ((node_record_count <= 0) || (node >= (uint32_t)node_record_count))
			return false;
		_node_state((int)node, &now);
		same = now.available;
		if (given)
			same = same && (node < idx.node_state_size) &&
			       (now.name == idx.node_state[node].name) &&
			       (now.available == idx.node_state[node].available) &&
			       (now.gpu_count == idx.node_state[node].gpu_count) &&
			       (now.allocated == idx.node_state[node].allocated);
		if (!same) {
			_note(node, 0);
			idx.generation++;
			return false;
		}
	}
	return true;
}

/* Asks the planner on the whole cluster: a slot snapshot of the index (the planner keeps what it
 * derived from earlier ones). Asked again with everything when the planner lost step, and with
 * the nodes read again when a target node changed since it was given (at most twice). */
static void _plan_full(job_record_t *p, uint64_t request)
{
	topo_preempt_snapshot_t s;
	uint32_t candidate_count = 0, required_count = 0;
	int node, attempt;
	bitstr_t *required = NULL, *only;

	if (_required(p, &required))
		return;
	only = _only_required(p, required);
	_grow_nodes(node_record_count ? (uint32_t)node_record_count : 1);
	for (node = 0; node < node_record_count; node++) {
		if (!node_record_table_ptr[node] || !node_record_table_ptr[node]->name)
			continue;
		if (_candidate(p, node, only))
			idx.candidates[candidate_count++] = node;
		if (required && !only && (node < bit_size(required)) && bit_test(required, node))
			idx.required[required_count++] = node;
	}
	FREE_NULL_BITMAP(required);
	for (attempt = 0; attempt < 3; attempt++) {
		_slot_snapshot(&s);
		_ask(p, &s, candidate_count, required_count);
		_slot_sent();
		if (q.decision.flags & TOPO_PREEMPT_DECISION_RESYNC) {
			idx.jobs_all = idx.nodes_all = true;
		} else if (_targets_hold(&q.decision, true)) {
			q.full_plans++;
			_keep(p, request, true);
			return;
		}
	}
	debug("%s: JobId=%u the planner's nodes kept changing while it decided; base policy", plugin_type, p->job_id);
	memset(&q.decision, 0, offsetof(topo_preempt_decision_t, victims));
	q.decision.action = TOPO_PREEMPT_BASE_POLICY;
}

/* Nodes planned on partially at most (the nodes changed since the kept decision, and its
 * target nodes); a kept decision is planned on the whole cluster again after this long. */
#define PARTIAL_MAX_NODES 64
#define FULL_PLAN_SECONDS 30

static bool _is_victim(const topo_preempt_decision_t *d, uint32_t job_id)
{
	uint32_t i;

	for (i = 0; (i < d->victim_count) && (i < TOPO_PREEMPT_MAX_VICTIMS); i++)
		if (d->victims[i] == job_id)
			return true;
	return false;
}

static bool _add_node(int32_t *list, uint32_t *count, int64_t node)
{
	uint32_t i;

	if ((node < 0) || (node >= node_record_count))
		return false;
	for (i = 0; i < *count; i++)
		if (list[i] == node)
			return true;
	if (*count >= PARTIAL_MAX_NODES)
		return false;
	list[(*count)++] = (int32_t)node;
	return true;
}

/* Plans again on the nodes that changed since the preemptor's kept decision and the nodes of
 * that decision only: the other nodes are as they were when the planner found this plan
 * cheaper than any on them, and the plan's own nodes changed only by its victims leaving.
 * False (nothing asked, or an answer that is not a plan) when a whole-cluster plan is needed:
 * no kept plan, another change on its nodes, too many changed nodes, a job on several nodes
 * among them, a multi-node request, the last whole-cluster plan too old. */
static bool _plan_partial(job_record_t *p, uint64_t request, kept_t *k)
{
	topo_preempt_snapshot_t s = { 0 };
	int32_t nodes[PARTIAL_MAX_NODES];
	uint32_t count = 0, i, j = 0, a = 0, jobs = 0, allocs = 0, candidate_count = 0;
	uint64_t c;
	time_t now = time(NULL);
	bitstr_t *required = NULL;
	bool plan;

	if (!k || (k->preemptor != p) || (k->request != request) ||
	    (k->generation < nodes_of.floor) || !k->decision.target_count ||
	    (k->part_update != last_part_update) || (k->made <= k->part_update) ||
	    (now < k->full) || (now - k->full >= FULL_PLAN_SECONDS) ||
	    (p->details && (p->details->min_nodes > 1)) ||
	    (nodes_of.head - k->ring_head > RING))
		return false;
	for (i = 0; i < k->decision.target_count; i++)
		if (!_add_node(nodes, &count, k->decision.target_nodes[i]))
			return false;
	for (c = k->ring_head; c < nodes_of.head; c++) {
		uint32_t node = nodes_of.ring[c % RING].node, t;
		/* On the decision's own nodes only its victims may have changed (signalled, gone):
		 * anything else may have made that plan worse, and the next best one can be on any
		 * node. */
		for (t = 0; t < k->decision.target_count; t++)
			if ((k->decision.target_nodes[t] == node) &&
			    !_is_victim(&k->decision, nodes_of.ring[c % RING].job_id))
				return false;
		if (!_add_node(nodes, &count, node))
			return false;
	}
	for (i = 0; i < count; i++) {
		uint16_t n;
		if ((uint32_t)nodes[i] >= nodes_of.size)
			return false;
		for (n = 0; n < nodes_of.count[nodes[i]]; n++) {
			entry_t *e = _lookup(nodes_of.jobs[nodes[i]][n]);
			if (!e || (e->alloc_count != 1))
				return false; /* a job on several nodes: its other nodes count too */
			jobs++;
			allocs++;
		}
	}
	if (_required(p, &required))
		return false;
	GROW(idx.jobs, idx.jobs_cap, jobs + 1);
	GROW(idx.allocs, idx.allocs_cap, allocs + 1);
	_grow_nodes(count);
	for (i = 0; i < count; i++) {
		uint16_t n;
		int32_t compact = (int32_t)i;
		_node_state(nodes[i], &idx.nodes[i]);
		if (idx.nodes[i].name[0] && _candidate(p, nodes[i], _only_required(p, required)))
			idx.candidates[candidate_count++] = i;
		for (n = 0; n < nodes_of.count[nodes[i]]; n++)
			_add_job(_lookup(nodes_of.jobs[nodes[i]][n]), &idx.jobs[j++], &a, &compact);
	}
	FREE_NULL_BITMAP(required);
	s.nodes = idx.nodes;
	s.jobs = idx.jobs;
	s.allocs = idx.allocs;
	s.node_count = count;
	s.job_count = j;
	s.alloc_count = a;
	_ask(p, &s, candidate_count, 0);
	/* Only a plan stands: anything else may have a plan elsewhere. */
	plan = q.decision.target_count &&
	       !(q.decision.flags & TOPO_PREEMPT_DECISION_INCONSISTENT) &&
	       ((q.decision.action == TOPO_PREEMPT_ONLY_VICTIMS) ||
		(q.decision.action == TOPO_PREEMPT_VICTIMS_FIRST) ||
		(q.decision.action == TOPO_PREEMPT_NO_VICTIMS));
	if (!plan)
		return false;
	for (i = 0; i < q.decision.target_count; i++)
		q.decision.target_nodes[i] = (uint32_t)nodes[q.decision.target_nodes[i]];
	q.partial_plans++;
	_keep(p, request, false);
	return true;
}

static void _summary(bool force);
static void _record(uint64_t ns);

static void _decide(void)
{
	job_record_t *p = q.preemptor;
	kept_t *k;
	uint64_t request;
	uint32_t bad = 0;
	struct timespec t0, t1;
	long elapsed;
	const char *how = "whole cluster";

	q.state = Q_DECIDED;
	q.decision.action = TOPO_PREEMPT_BASE_POLICY;
	q.decision.victim_count = 0;
	q.decision.planned = 0;
	q.decision.flags = 0;
	q.decision.target_count = 0;
	if (!q.managed || !swift.found || !p)
		return;
	/* A PRIO or MODE call may come from outside a walk (scontrol show job, gang): the
	 * preemptor must still exist; job records are only read through find_job_record here. */
	if (find_job_record(q.preemptor_id) != p)
		return;
	q.decisions++;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	_sweep(p);
	if (idx.overflow) {
		char line[160];

		snprintf(line, sizeof(line), "JobId=%u more than %u running jobs or %u GPU allocations; base policy",
			 q.preemptor_id, MAX_JOBS, MAX_ALLOCS);
		info("%s: %s", plugin_type, line);
		/* Recorded once per overflow, not at every decision while it lasts. */
		if (swift.record_fallback && !q.overflow_recorded)
			swift.record_fallback(q.preemptor_id, "index-overflow", line);
		q.overflow_recorded = true;
		return;
	}
	q.overflow_recorded = false;
	request = _request_of(p);
	k = _kept_of(p->job_id);
	/* last_part_update counts seconds: a decision made in the same second as the last
	 * partition change it saw could miss a second change in that second, so only a decision
	 * made in a later second is kept. */
	if (k && (k->preemptor == p) && (k->request == request) && (k->generation == idx.generation) &&
	    (k->part_update == last_part_update) && (k->made > k->part_update) &&
	    (time(NULL) - k->made < REUSE_SECONDS) && (time(NULL) >= k->made) &&
	    _targets_hold(&k->decision, false)) {
		q.decision = k->decision;
		q.decision.planned = 0;
		q.reused++;
		how = "decision kept (nothing changed)";
	} else if (_plan_partial(p, request, k)) {
		how = "planned again on the changed nodes";
	} else {
		_plan_full(p, request);
	}
	if (!_verify(&q.decision, &bad)) {
		/* The index disagrees with the live records: never answer from it. */
		char line[160];

		q.disagreements++;
		snprintf(line, sizeof(line),
			 "JobId=%u victim JobId=%u differs from the job index; base policy for this pass, index rebuilt at the next walk",
			 p->job_id, bad);
		info("%s: %s", plugin_type, line);
		if (swift.record_fallback)
			swift.record_fallback(p->job_id, "index-disagreement", line);
		idx.rebuild = R_DISAGREEMENT;
		if ((k = _kept_of(p->job_id)))
			memset(k, 0, sizeof(*k));
		q.decision.action = TOPO_PREEMPT_BASE_POLICY;
		q.decision.victim_count = 0;
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	q.last_decide_ns = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec));
	q.decide_ns += q.last_decide_ns;
	_record(q.last_decide_ns);
	elapsed = (long)(q.last_decide_ns / 1000);
	if (q.decision.planned)
		info("%s: JobId=%u hook %ldus (%u running GPU jobs, %d nodes, %s; index generation %" PRIu64 ")",
		     plugin_type, p->job_id, elapsed, idx.gpu_jobs, node_record_count, how, idx.generation);
	else
		debug("%s: JobId=%u hook %ldus (%u running GPU jobs, %d nodes), action %d, %s", plugin_type,
		      p->job_id, elapsed, idx.gpu_jobs, node_record_count, q.decision.action, how);
	_summary(false);
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
 * saw (the candidates' sort or _run_now), the walk is complete (it passed the preemptor
 * itself: a call from outside a walk decides nothing). */
static void _settle(job_record_t *job)
{
	entry_t *e;

	if ((q.state == Q_COLLECTING) && q.managed && q.saw_self && (q.job_update == last_job_update) &&
	    (e = _lookup(job->job_id)) && (WALK(e) == idx.walk))
		_decide();
}

/* True while the decision still describes the current state (no job changed since, the
 * preemptor still exists). */
static bool _decision_current(void)
{
	return (q.state == Q_DECIDED) && (q.job_update == last_job_update) && q.preemptor &&
	       (find_job_record(q.preemptor_id) == q.preemptor);
}

/* ---- what the plugin did (for the plugin harness and metrics) ------------------------------ */

/* Deciding times since the plugin started, in buckets of 8 per power of two (microseconds):
 * a percentile is reported as its bucket's upper bound, at most 1/8 above the exact value. */
#define HIST_BUCKETS 512
static uint64_t hist[HIST_BUCKETS], hist_max_us;
static time_t summary_at;
static uint64_t summary_decisions;
static uint32_t stats_interval = 300;

static uint32_t _bucket(uint64_t us)
{
	int octave;

	if (us < 8)
		return (uint32_t)us;
	octave = 63 - __builtin_clzll(us);
	return 8 + (uint32_t)(octave - 3) * 8 + (uint32_t)((us >> (octave - 3)) & 7);
}

static uint64_t _bucket_high(uint32_t b)
{
	uint32_t octave, sub;

	if (b < 8)
		return b;
	octave = (b - 8) / 8 + 3;
	sub = (b - 8) % 8;
	return ((uint64_t)(8 + sub + 1) << (octave - 3)) - 1;
}

static uint64_t _percentile(double p)
{
	uint64_t total = 0, seen = 0;
	uint32_t b;

	for (b = 0; b < HIST_BUCKETS; b++)
		total += hist[b];
	if (!total)
		return 0;
	for (b = 0; b < HIST_BUCKETS; b++) {
		seen += hist[b];
		if ((double)seen >= p * (double)total)
			return (_bucket_high(b) > hist_max_us) ? hist_max_us : _bucket_high(b);
	}
	return hist_max_us;
}

static void _record(uint64_t ns)
{
	uint64_t us = ns / 1000;
	uint32_t b = _bucket(us);

	hist[(b < HIST_BUCKETS) ? b : HIST_BUCKETS - 1]++;
	if (us > hist_max_us)
		hist_max_us = us;
}

static void _fill_stats(topo_preempt_stats_t *out)
{
	int r;

	memset(out, 0, sizeof(*out));
	out->walks = q.walks;
	out->decisions = q.decisions;
	out->kept = q.reused;
	out->partial = q.partial_plans;
	out->full = q.full_plans;
	out->disagreements = q.disagreements;
	for (r = 0; r < R_COUNT; r++)
		out->rebuilds[r] = idx.rebuilds[r];
	out->decide_ns = q.decide_ns;
	out->last_decide_ns = q.last_decide_ns;
	out->indexed_jobs = idx.count;
	out->indexed_gpu_jobs = idx.gpu_jobs;
}

/* The counters as a `stats` record of the decision log (the Swift side writes it). */
static void _record_stats(void)
{
	topo_preempt_stats_record_t r;
	uint32_t b, i;

	if (!swift.found || !swift.record_stats)
		return;
	memset(&r, 0, sizeof(r));
	_fill_stats(&r.stats);
	r.p50_us = _percentile(0.5);
	r.p99_us = _percentile(0.99);
	r.max_us = hist_max_us;
	for (b = 0; b < HIST_BUCKETS; b++)
		for (i = 0; i < TOPO_PREEMPT_STATS_BUCKETS; i++)
			if (_bucket_high(b) < (1ull << (4 + i)))
				r.buckets[i] += hist[b];
	swift.record_stats(&r);
}

/* Every StatsInterval seconds (when there were decisions): one line summing up all decisions
 * since the plugin started, and the same as a decision record. */
static void _summary(bool force)
{
	time_t now = time(NULL);
	char counts[256] = "";
	int r, used = 0;

	if (!force && (!stats_interval || (now - summary_at < (time_t)stats_interval) ||
		       (q.decisions == summary_decisions)))
		return;
	if (!q.decisions)
		return;
	summary_at = now;
	summary_decisions = q.decisions;
	for (r = 0; r < R_COUNT; r++)
		used += snprintf(counts + used, sizeof(counts) - used, "%s%s %" PRIu64, r ? ", " : "",
				 reason_names[r], idx.rebuilds[r]);
	info("%s: since start: %" PRIu64 " decisions (kept %" PRIu64 ", planned on changed nodes %" PRIu64
	     ", on the whole cluster %" PRIu64 "), deciding p50 %" PRIu64 "us p99 %" PRIu64 "us max %" PRIu64
	     "us; job index %u running jobs, %u with GPUs; %" PRIu64 " disagreements; index rebuilds: %s",
	     plugin_type, q.decisions, q.reused, q.partial_plans, q.full_plans, _percentile(0.5),
	     _percentile(0.99), hist_max_us, idx.count, idx.gpu_jobs, q.disagreements, counts);
	_record_stats();
}

extern void topo_aware_preempt_stats(topo_preempt_stats_t *out)
{
	if (!out)
		return;
	slurm_mutex_lock(&q_lock);
	_fill_stats(out);
	slurm_mutex_unlock(&q_lock);
}

/* ---- plugin API -------------------------------------------------------------------------- */

extern int init(void)
{
	info("%s: loaded (base policy until the planner is found: partition PriorityTier)", plugin_type);
	summary_at = time(NULL);
	(void)_swift_resolve();
	return SLURM_SUCCESS;
}

extern void fini(void)
{
	slurm_mutex_lock(&q_lock);
	_summary(true);
	memset(hist, 0, sizeof(hist));
	hist_max_us = 0;
	summary_at = 0;
	summary_decisions = 0;
	if (swift.found)
		swift.reset();
	memset(&swift, 0, sizeof(swift));
	while (idx.count)
		_remove(idx.count - 1);
	_free_node_lists();
	memset(&nodes_of, 0, sizeof(nodes_of));
	xfree(idx.entries);
	xfree(idx.walk_of);
	xfree(idx.eligible);
	xfree(idx.base_prio);
	xfree(idx.slots);
	xfree(idx.jobs);
	xfree(idx.allocs);
	xfree(idx.nodes);
	xfree(idx.slot_jobs);
	xfree(idx.dirty_jobs);
	xfree(idx.node_state);
	xfree(idx.node_mark);
	xfree(idx.dirty_nodes);
	xfree(idx.candidates);
	xfree(idx.required);
	xfree(idx.owners);
	memset(&idx, 0, sizeof(idx));
	idx.rebuild = R_START;
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
	/* A new walk: after a decision, for another preemptor, or when a job comes round again
	 * (the pending preemptor is in job_list: every walk passes it exactly once). A walk taken
	 * for new too early costs only checks (_sweep), one taken for old too long could keep
	 * jobs that left: hence every sign counts. */
	if ((q.state != Q_COLLECTING) || (q.preemptor != preemptor) || (q.preemptor_id != preemptor->job_id) ||
	    (q.first == preemptee) || ((preemptee == preemptor) && q.saw_self) ||
	    (q.job_update != last_job_update)) {
		/* settings may have changed with topo_aware.conf */
		topo_preempt_settings_t s = { 0 };
		q.state = Q_COLLECTING;
		q.saw_self = false;
		q.preemptor = preemptor;
		q.preemptor_id = preemptor->job_id;
		q.first = preemptee;
		q.job_update = last_job_update;
		q.managed = false;
		q.decision.action = TOPO_PREEMPT_BASE_POLICY;
		q.decision.victim_count = 0;
		if (_swift_resolve() && (swift.settings(&s) == 0)) {
			base_policy = s.base_policy;
			stats_interval = s.stats_interval;
			q.managed = swift.is_preemptor(preemptor->admin_comment, preemptor->partition,
						       preemptor->qos_ptr ? preemptor->qos_ptr->name : NULL) == 1;
		}
		if (q.managed) {
			q.walks++;
			_walk_starts();
		}
	}
	if (preemptee == preemptor)
		q.saw_self = true;
	base = _base_preemptable(preemptee, preemptor);
	if (q.managed)
		_observe(preemptee, _eligible(preemptee, preemptor, base));
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

/* ---- provenance: who preempted whom ---------------------------------------------------- */

#define PROVENANCE_NODES 16u

typedef struct {
	uint32_t count;
	const char *names[PROVENANCE_NODES];
	uint64_t gpus[PROVENANCE_NODES];
} provenance_gpus_t;

static void _provenance_gpu(uint32_t node, uint64_t mask, void *arg)
{
	provenance_gpus_t *out = arg;

	if ((out->count >= PROVENANCE_NODES) || (node >= (uint32_t)node_record_count) ||
	    !node_record_table_ptr[node] || !node_record_table_ptr[node]->name)
		return;
	out->names[out->count] = node_record_table_ptr[node]->name;
	out->gpus[out->count++] = mask;
}

/* Sets a job's comment field to text (NUL-terminated within max), unless text is empty. */
static void _set_comment(char **field, char *text, size_t max)
{
	text[max - 1] = '\0';
	if (!text[0])
		return;
	xfree(*field);
	*field = xstrdup(text);
}

/*
 * Slurm asks for a job's grace time once, when it preempts the job (preempt_time still 0; it
 * is set right after: 22.05.8 src/slurmctld/preempt.c _job_check_grace_internal, 26.05.3
 * src/interfaces/preempt.c lines 398-425), inside the preemptor's node selection, so the
 * preemptor is the one this walk was for. The Swift side records the preemption and writes
 * the provenance: the victim's SystemComment says who preempted it, on which GPUs, and why;
 * the preemptor's, the plan it runs on (scontrol shows it). slurmctld sends no SystemComment to
 * slurmdbd in any release (jobacct_storage_p_job_complete fills admin_comment and comment only),
 * so the same facts go as keys into the AdminComment tag, which slurmdbd stores with the run
 * and sacct shows. The user's Comment is never touched.
 */
static void _provenance(job_record_t *job)
{
	static topo_preempt_provenance_t out;
	provenance_gpus_t gpus = { 0 };
	topo_preempt_victim_t v = { 0 };
	job_record_t *p = q.preemptor;

	if (!job || job->preempt_time || !IS_JOB_RUNNING(job) || !swift.found || !swift.victim || !p ||
	    (find_job_record(q.preemptor_id) != p) || (p == job))
		return;
	(void)_each_allocation(job, _provenance_gpu, &gpus);
	v.victim_id = job->job_id;
	v.preemptor_id = p->job_id;
	v.time = (int64_t)time(NULL);
	v.start_time = (int64_t)job->start_time;
	v.alloc_count = gpus.count;
	v.mode = preempt_mode_string(_base_mode(job));
	v.node_names = gpus.names;
	v.gpus = gpus.gpus;
	v.victim_system_comment = job->system_comment;
	v.victim_admin_comment = job->admin_comment;
	v.preemptor_system_comment = p->system_comment;
	v.preemptor_admin_comment = p->admin_comment;
	memset(&out, 0, sizeof(out));
	if (swift.victim(&v, &out) != 0)
		return;
	_set_comment(&job->system_comment, out.victim_system, sizeof(out.victim_system));
	_set_comment(&job->admin_comment, out.victim_admin, sizeof(out.victim_admin));
	_set_comment(&p->system_comment, out.preemptor_system, sizeof(out.preemptor_system));
	_set_comment(&p->admin_comment, out.preemptor_admin, sizeof(out.preemptor_admin));
}

static uint32_t _grace_of(job_record_t *job)
{
	slurm_mutex_lock(&q_lock);
	_provenance(job);
	slurm_mutex_unlock(&q_lock);
	return _base_grace(job);
}

/* preempt_p_get_data() or, from 25.05, preempt_p_get_prio/_mode/_grace_time. */
TOPO_COMPAT_PREEMPT_DATA_API(_prio_of, _mode_of, _grace_of)
