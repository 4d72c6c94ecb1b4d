/*
 * The preempt/topo_aware plugin harness: the compiled plugin (.so, dlopen) driven the way
 * slurmctld drives it, against a stand-in for slurmctld's own globals and functions.
 *
 * What is real: the plugin under test (the same .so scripts/build-plugins ships), Slurm's
 * libslurmfull of the release it was built for (lists, bitstrings, xmalloc, logging,
 * node_name2bitmap over node_record_table_ptr, slurm_conf), and the Swift planner
 * (job_submit_topo_aware.so from the same directory, found by the plugin through PluginDir).
 * What is a stand-in: what only the slurmctld executable defines (last_job_update,
 * find_job_record, job_get_sockets_per_node, job_list) and the records themselves: job,
 * partition, QOS, node and GRES state are built here with the release's own struct definitions
 * (its configured source tree), as slurmctld fills them for a running cluster.
 *
 * A pass (h_pass) follows Slurm's order for one pending preemptor (src/slurmctld/preempt.c
 * slurm_find_preemptable_jobs, select/cons_tres _run_now): every job of job_list through
 * preempt_p_preemptable, the running ones on the preemptor's partition kept, sorted by the
 * plugin's PRIO, then its MODE for each candidate (OFF: cannot be removed).
 */
#ifndef TOPO_PREEMPT_HARNESS_H
#define TOPO_PREEMPT_HARNESS_H

#include "config.h"

#include <stdbool.h>
#include <stdint.h>

#include "slurm/slurm.h"
#include "src/common/bitstring.h"
#include "src/common/list.h"
#include "src/common/log.h"
#include "src/common/node_conf.h"
#include "src/common/xmalloc.h"
#include "src/common/xstring.h"
#include "src/slurmctld/slurmctld.h"

#define TOPO_COMPAT_SLURMCTLD
#define TOPO_COMPAT_PREEMPT_CALLER
#include "../../CSlurmShim/compat/topo_slurm_compat.h"
#include "topo_preempt_abi.h"

#define H_MAX_GPUS 64

typedef struct {
	const char *plugin;      /* path of preempt_topo_aware.so; PluginDir = its directory */
	const char *plugin_dir;  /* PluginDir instead of the plugin's directory (NULL: that one) */
	const char *work_dir;    /* where slurm.conf, gres.conf, topo_aware.conf are written */
	const char *log_file;    /* the plugin's and the planner's log (NULL: stderr) */
	int log_level;           /* LOG_LEVEL_* (default info) */
} h_options_t;

/* Loads the plugin and libslurmfull's logging; returns 0 or prints why not and returns -1. */
int h_start(const h_options_t *options);
void h_stop(void);

/* The cluster: `count` nodes named gpu00001..., `gpus` GPUs each, two sockets, NVLink islands
 * of `island` GPUs (island == gpus: one island). Writes slurm.conf and gres.conf. Replaces any
 * earlier cluster (jobs, partitions and QOS included). */
void h_cluster(int count, int gpus, int island);
/* topo_aware.conf's text (written beside slurm.conf). */
void h_topo_aware_conf(const char *text);

part_record_t *h_partition(const char *name, uint16_t tier, uint16_t preempt_mode, uint32_t grace_time);
slurmdb_qos_rec_t *h_qos(const char *name, uint32_t priority, uint16_t preempt_mode,
			 const char *preempts /* comma-separated QOS names or NULL */);

/* A running job holding `gpus` (bit mask) on node index `node`, started `age` seconds ago. */
job_record_t *h_run(uint32_t id, part_record_t *part, int node, uint64_t gpus, long age);
/* A running job on several nodes: masks[i] on nodes[i]. */
job_record_t *h_run_multi(uint32_t id, part_record_t *part, int count, const int *nodes,
			  const uint64_t *masks, long age);
/* A pending job asking for `gpus` GPUs per node on `nodes` nodes. */
job_record_t *h_pending(uint32_t id, part_record_t *part, uint32_t gpus, uint32_t nodes,
			const char *admin_comment);
/* The job is requeued and restarts at once on `gpus` of `node`: the same record, its restart
 * count up, a new start time and new GRES, node and resource allocations (as Slurm does). */
void h_requeue(job_record_t *job, int node, uint64_t gpus);
/* The job completes: its GPUs are free, it stays in job_list (until purged: h_end). */
void h_complete(job_record_t *job);
/* The job ends and its record is purged (its GPUs are free, it leaves job_list). */
void h_end(job_record_t *job);
/* Rewrites a one-node job's GPUs in place, as no Slurm code path does: nothing the plugin's
 * fingerprint covers changes (a stale index). */
void h_rewrite_gpus(job_record_t *job, uint64_t gpus);
/* Slurm signals the job for preemption (preempt_time set; GPUs still held). */
void h_signal(job_record_t *job);
/* A job changed somewhere: what slurmctld does after any job record update. */
void h_touch(void);
/* Node state bits (e.g. NODE_STATE_DRAIN) set or cleared. */
void h_node_state(int node, uint32_t flags, bool set);
/* A node's GRES state: gres_list dropped (gpus < 0) or a different GPU count. */
void h_node_gres(int node, int gpus);

job_record_t *h_job(uint32_t id);
/* The nodes and GPU masks a running job holds, from its live GRES state (as many as max); -1
 * when they do not fit (GPUs beyond 63, more nodes than max). */
int h_job_gpus(job_record_t *job, int max, int *nodes, uint64_t *masks);
/* h_cluster and h_topo_aware_conf write their files (default) or not (the fuzzer's stand-in
 * planner reads none). */
void h_write_files(bool write);
int h_node_count(void);

typedef struct {
	int count;              /* candidates Slurm would consider, in its order */
	uint32_t ids[4096];
	uint16_t modes[4096];
	int removable;          /* candidates whose mode is not OFF */
	uint32_t removable_ids[4096];
	int preemptable_calls;
} h_pass_t;

/* One scheduling pass for the preemptor, in Slurm's order. */
void h_pass(job_record_t *preemptor, h_pass_t *out);
/* The floor: list_for_each over job_list with a hook that does nothing. */
void h_floor_pass(void);

/* A stock preempt plugin of the same release (e.g. preempt_partition_prio.so) loaded beside the
 * plugin under test; h_use_stock(true) makes it answer h_pass and the direct calls. */
int h_load_stock(const char *path);
void h_use_stock(bool use);

/* Direct calls into the plugin. */
bool h_preemptable(job_record_t *preemptee, job_record_t *preemptor);
bool h_preempt_check(job_record_t *preemptor, job_record_t *preemptee);
uint32_t h_prio(job_record_t *job);
uint16_t h_mode(job_record_t *job);
uint32_t h_grace(job_record_t *job);
void h_plugin_init(void);
void h_plugin_fini(void);

/* The plugin's counters (topo_aware_preempt_stats; zeros when it has none). */
void h_stats(topo_preempt_stats_t *out);

/* slurm_conf.preempt_mode, preempt_exempt_time. */
void h_conf(uint16_t preempt_mode, uint32_t exempt_time);

/* Lines above debug level the log file holds that contain `needle`. */
int h_log_count(const char *needle);
/* The same, debug lines included when with_debug. */
int h_log_count_level(const char *needle, bool with_debug);
void h_log_clear(void);

uint64_t h_now_ns(void);

#endif
