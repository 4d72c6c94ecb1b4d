/*
 * preempt/topo_aware — Slurm preempt plugin. C only, built against the source tree of the
 * installed Slurm release (scripts/slurm-source): the preempt API passes slurmctld's internal
 * job_record_t and job_queue_rec_t, which only that tree defines.
 *
 * This first stage answers exactly as partition-priority preemption does (the base policy):
 * a job may preempt jobs of partitions with a lower PriorityTier whose nodes overlap its
 * partition's, unless the preemptee's partition has PreemptMode=OFF; candidates are ordered by
 * PriorityTier, then by node count; mode and grace time come from the preemptee's partition.
 * Topology-aware victim selection (the planner) plugs in behind these answers next.
 *
 * Slurm 22.05 to 24.11 use preempt_p_get_data(); 25.05 replaced it with preempt_p_get_prio(),
 * preempt_p_get_mode() and preempt_p_get_grace_time(): both sets are provided by version.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>

#include "slurm/slurm.h"
#include "slurm/slurm_errno.h"

#include "src/common/bitstring.h"
#include "src/common/log.h"
#include "src/slurmctld/slurmctld.h"
#include "src/slurmctld/preempt.h"

const char plugin_name[] = "Topology-aware GPU preemption (TopoPreempt)";
const char plugin_type[] = "preempt/topo_aware";
const uint32_t plugin_version = SLURM_VERSION_NUMBER;

/* The preemptee's partition PreemptMode, else the cluster's; GANG is not a preemption mode. */
static uint16_t _mode_of(job_record_t *job)
{
	uint16_t mode = slurm_conf.preempt_mode;

	if (job && job->part_ptr && (job->part_ptr->preempt_mode != NO_VAL16))
		mode = job->part_ptr->preempt_mode;
	return mode & ~PREEMPT_MODE_GANG;
}

/* Candidate order: PriorityTier in the high bits, node count (capped) in the low bits, so
 * lower tiers and smaller jobs are taken first. */
static uint32_t _prio_of(job_record_t *job)
{
	uint32_t tier = 0, nodes;

	if (!job)
		return 0;
	if (job->part_ptr)
		tier = job->part_ptr->priority_tier;
	nodes = (job->node_cnt > 0xffff) ? 0xffff : job->node_cnt;
	return (tier << 16) | nodes;
}

static uint32_t _grace_of(job_record_t *job)
{
	return (job && job->part_ptr) ? job->part_ptr->grace_time : 0;
}

extern int init(void)
{
	info("%s: loaded (base policy: partition PriorityTier)", plugin_type);
	return SLURM_SUCCESS;
}

extern void fini(void)
{
}

/* May the queued preemptor preempt the queued preemptee at all (partitions overlap, higher tier)? */
extern bool preempt_p_job_preempt_check(job_queue_rec_t *preemptor, job_queue_rec_t *preemptee)
{
	if (!preemptor || !preemptee || !preemptor->part_ptr || !preemptee->part_ptr)
		return false;
	if (!preemptor->part_ptr->node_bitmap || !preemptee->part_ptr->node_bitmap)
		return false;
	return (preemptor->part_ptr->priority_tier > preemptee->part_ptr->priority_tier) &&
	       bit_overlap_any(preemptor->part_ptr->node_bitmap, preemptee->part_ptr->node_bitmap);
}

/* May this running job be preempted for that pending one? */
extern bool preempt_p_preemptable(job_record_t *preemptee, job_record_t *preemptor)
{
	if (!preemptee || !preemptor || !preemptee->part_ptr || !preemptor->part_ptr)
		return false;
	if (preemptee->part_ptr->preempt_mode == PREEMPT_MODE_OFF)
		return false;
	return preemptee->part_ptr->priority_tier < preemptor->part_ptr->priority_tier;
}

#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(25, 5, 0)
extern uint32_t preempt_p_get_prio(job_record_t *job_ptr)
{
	return _prio_of(job_ptr);
}

extern uint16_t preempt_p_get_mode(job_record_t *job_ptr)
{
	return _mode_of(job_ptr);
}

extern uint32_t preempt_p_get_grace_time(job_record_t *job_ptr)
{
	return _grace_of(job_ptr);
}
#else
extern int preempt_p_get_data(job_record_t *job_ptr, slurm_preempt_data_type_t data_type, void *data)
{
	if (!data)
		return SLURM_ERROR;
	switch (data_type) {
	case PREEMPT_DATA_ENABLED:
		*(bool *)data = (slurm_conf.preempt_mode != PREEMPT_MODE_OFF);
		return SLURM_SUCCESS;
	case PREEMPT_DATA_MODE:
		*(uint16_t *)data = _mode_of(job_ptr);
		return SLURM_SUCCESS;
	case PREEMPT_DATA_PRIO:
		*(uint32_t *)data = _prio_of(job_ptr);
		return SLURM_SUCCESS;
	case PREEMPT_DATA_GRACE_TIME:
		*(uint32_t *)data = _grace_of(job_ptr);
		return SLURM_SUCCESS;
	default:
		error("%s: %s: unknown data type %d", plugin_type, __func__, (int)data_type);
		return SLURM_ERROR;
	}
}
#endif
