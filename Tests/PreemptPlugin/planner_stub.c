/*
 * A stand-in for the Swift planner (job_submit_topo_aware.so) for fuzzing preempt/topo_aware:
 * the same entry points, answering what the fuzzer (fuzz.c) says. Each snapshot it is handed
 * is checked by the fuzzer against the live records first.
 */
#include <stdint.h>
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

int TopoAwareSwift_preemptDecide(const topo_preempt_snapshot_t *snapshot, topo_preempt_decision_t *decision)
{
	uint32_t i;

	topo_stub_check_snapshot(snapshot);
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
}
