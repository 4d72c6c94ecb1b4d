/*
 * What the fuzzer (fuzz.c) and the planner stand-in (planner_stub.c) share: the answers the
 * stand-in gives, set by the fuzzer, and the fuzzer's check of each snapshot.
 */
#ifndef TOPO_PLANNER_STUB_H
#define TOPO_PLANNER_STUB_H

#include <stdint.h>

#include "topo_preempt_abi.h"

typedef struct {
	int32_t base_policy;
	int managed;
	int32_t action;
	uint32_t planned, flags, victim_count;
	uint32_t victims[TOPO_PREEMPT_MAX_VICTIMS];
	uint32_t target_count;
	uint32_t target_nodes[TOPO_PREEMPT_MAX_TARGETS];
	uint32_t owners[8];
	uint32_t owner_count;
	int decide_status;
	uint32_t resync;        /* answer this many slot snapshots with a resync, whatever they hold */
} topo_stub_control_t;

/* Allocations per job the stub keeps (the fuzzer's clusters have at most 16 nodes). */
#define STUB_MAX_ALLOCS 64

/* Defined by the fuzzer executable. */
extern topo_stub_control_t topo_stub_control;
extern void topo_stub_check_snapshot(const topo_preempt_snapshot_t *snapshot);

#endif
