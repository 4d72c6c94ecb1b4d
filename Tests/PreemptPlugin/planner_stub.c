/*
 * A stand-in for the Swift planner (job_submit_topo_aware.so) for fuzzing preempt/topo_aware:
 * the same entry points, answering what the fuzzer (fuzz.c) says. Each snapshot it is handed
 * is checked by the fuzzer against the live records first; a slot snapshot is applied to a kept
 * state the way the Swift side keeps it (topo_preempt_abi.h), and the kept state is checked.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planner_stub.h"

int TopoAwareSwift_preemptSettings(topo_preempt_settings_t *settings)
{
	settings->abi_version = TOPO_PREEMPT_ABI_VERSION;
	settings->base_policy = topo_stub_control.base_policy;
	settings->stats_interval = 1;
	return 0;
}

uint32_t TopoAwareSwift_preemptPlanOwners(uint32_t *ids, uint32_t max)
{
	uint32_t i;

	for (i = 0; (i < topo_stub_control.owner_count) && (i < max) && (i < 8); i++)
		ids[i] = topo_stub_control.owners[i];
	return topo_stub_control.owner_count;
}

int TopoAwareSwift_preemptIsPreemptor(const char *admin_comment, const char *partition, const char *qos)
{
	(void)admin_comment;
	(void)partition;
	(void)qos;
	return topo_stub_control.managed;
}

/* ---- slot snapshots: the planner's kept state, as the Swift side keeps it ------------------ */

static struct {
	int valid;
	uint64_t epoch, sequence;
	uint32_t node_count, job_count, cap;
	topo_preempt_node_t *nodes;
	topo_preempt_job_t *jobs;
	topo_preempt_alloc_t (*allocs)[STUB_MAX_ALLOCS];
	/* the virtual whole snapshot checked against the live records */
	topo_preempt_job_t *list;
	topo_preempt_alloc_t *flat;
	char (*names)[16];
} m;

static void _stub_fail(const char *what)
{
	fprintf(stderr, "planner-stub: %s\n", what);
	abort();
}

static void _grow(uint32_t nodes, uint32_t jobs)
{
	if (nodes > m.node_count || !m.nodes) {
		m.nodes = realloc(m.nodes, (nodes + 1) * sizeof(*m.nodes));
		m.names = realloc(m.names, (nodes + 1) * sizeof(*m.names));
	}
	if (jobs + 1 > m.cap) {
		m.cap = jobs + 64;
		m.jobs = realloc(m.jobs, m.cap * sizeof(*m.jobs));
		m.allocs = realloc(m.allocs, m.cap * sizeof(*m.allocs));
		m.list = realloc(m.list, m.cap * sizeof(*m.list));
		m.flat = realloc(m.flat, m.cap * STUB_MAX_ALLOCS * sizeof(*m.flat));
	}
}

/* Applies a slot snapshot to the kept state (the protocol of topo_preempt_abi.h); 0 when it
 * does not follow what is kept (the answer is then a resync). */
static int _apply(const topo_preempt_snapshot_t *s)
{
	int all_nodes = s->dirty_node_count == TOPO_PREEMPT_DIRTY_ALL;
	int all_jobs = s->dirty_job_count == TOPO_PREEMPT_DIRTY_ALL;
	uint32_t i, n, k;

	if (!s->slot_eligible || !s->slot_base_prio || (s->node_count && !s->nodes))
		_stub_fail("slot snapshot without its arrays");
	if (!(all_nodes && all_jobs) &&
	    (!m.valid || (s->epoch != m.epoch) || (s->sequence != m.sequence + 1) || (s->node_count != m.node_count)))
		return 0;
	_grow(s->node_count, s->job_count);
	for (k = 0; k < (all_nodes ? s->node_count : s->dirty_node_count); k++) {
		n = all_nodes ? k : s->dirty_nodes[k];
		if (n >= s->node_count)
			_stub_fail("dirty node index out of range");
		m.nodes[n] = s->nodes[n];
		m.nodes[n].name = NULL; /* valid only during the call */
	}
	for (i = s->job_count; i < m.job_count; i++)
		memset(&m.jobs[i], 0, sizeof(m.jobs[i]));
	for (i = m.job_count; i < s->job_count; i++)
		memset(&m.jobs[i], 0, sizeof(m.jobs[i]));
	for (k = 0; k < (all_jobs ? s->job_count : s->dirty_job_count); k++) {
		const topo_preempt_job_t *j;
		i = all_jobs ? k : s->dirty_jobs[k];
		if (i >= s->job_count)
			continue; /* a slot emptied at the end */
		j = &s->jobs[i];
		if ((j->alloc_first > s->alloc_count) || (j->alloc_count > s->alloc_count - j->alloc_first) ||
		    (j->alloc_count > STUB_MAX_ALLOCS))
			_stub_fail("dirty slot's allocations out of range");
		m.jobs[i] = *j;
		for (n = 0; n < j->alloc_count; n++) {
			m.allocs[i][n] = s->allocs[j->alloc_first + n];
			if (m.allocs[i][n].node >= s->node_count)
				_stub_fail("allocation node out of range");
		}
	}
	m.node_count = s->node_count;
	m.job_count = s->job_count;
	m.epoch = s->epoch;
	m.sequence = s->sequence;
	m.valid = 1;
	return 1;
}

/* The kept state as a whole snapshot (the format the fuzzer checks). */
static void _virtual(const topo_preempt_snapshot_t *s, topo_preempt_snapshot_t *v)
{
	uint32_t i, n, count = 0, a = 0;

	*v = *s;
	v->flags = 0;
	for (n = 0; n < m.node_count; n++) {
		snprintf(m.names[n], sizeof(m.names[n]), "gpu%05u", n + 1);
		m.nodes[n].name = m.names[n];
	}
	for (i = 0; i < m.job_count; i++) {
		if (!m.jobs[i].alloc_count)
			continue;
		m.list[count] = m.jobs[i];
		m.list[count].eligible = s->slot_eligible[i];
		m.list[count].base_prio = s->slot_base_prio[i];
		m.list[count].alloc_first = a;
		for (n = 0; n < m.jobs[i].alloc_count; n++)
			m.flat[a++] = m.allocs[i][n];
		count++;
	}
	v->nodes = m.nodes;
	v->node_count = m.node_count;
	v->jobs = m.list;
	v->job_count = count;
	v->allocs = m.flat;
	v->alloc_count = a;
}

int TopoAwareSwift_preemptDecide(const topo_preempt_snapshot_t *snapshot, topo_preempt_decision_t *decision)
{
	uint32_t i;
	topo_preempt_snapshot_t whole;

	if (snapshot->flags & TOPO_PREEMPT_SNAPSHOT_SLOTS) {
		if (topo_stub_control.decide_status != 0)
			return topo_stub_control.decide_status; /* nothing read: the kept state misses this one */
		if (!_apply(snapshot) || topo_stub_control.resync) {
			memset(decision, 0, sizeof(*decision));
			decision->action = TOPO_PREEMPT_BASE_POLICY;
			decision->flags = TOPO_PREEMPT_DECISION_RESYNC;
			if (topo_stub_control.resync)
				topo_stub_control.resync--;
			return 0;
		}
		_virtual(snapshot, &whole);
		snapshot = &whole;
	}
	topo_stub_check_snapshot(snapshot);
	if (topo_stub_control.flags & TOPO_PREEMPT_DECISION_INCONSISTENT)
		m.valid = 0; /* the planner drops what it kept */
	decision->action = topo_stub_control.action;
	decision->planned = topo_stub_control.planned;
	decision->flags = topo_stub_control.flags;
	/* The count as given (the plugin must bound it), the ids it has room for. */
	decision->victim_count = topo_stub_control.victim_count;
	for (i = 0; i < TOPO_PREEMPT_MAX_VICTIMS; i++)
		decision->victims[i] = topo_stub_control.victims[i];
	decision->target_count = topo_stub_control.target_count;
	for (i = 0; i < TOPO_PREEMPT_MAX_TARGETS; i++)
		decision->target_nodes[i] = topo_stub_control.target_nodes[i];
	return topo_stub_control.decide_status;
}

void TopoAwareSwift_preemptReset(void)
{
	m.valid = 0;
}
