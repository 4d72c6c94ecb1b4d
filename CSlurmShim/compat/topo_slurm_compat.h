/*
 * topo_slurm_compat.h — every difference between the Slurm releases TopoPreempt supports
 * (22.05, 23.11, 24.11, 25.11, 26.05), in one place. The rest of the C and all of the Swift
 * carry no version conditionals: they use the names defined here.
 *
 * Included by C files only (never by a header Swift imports: it is not in include/), after <slurm/slurm.h> of the
 * release being built against (scripts/build-plugins puts that release's include/ first).
 * Each entry names the release that changed and how it was found (S: read in that release's
 * source; C: confirmed on a running controller of it, see docs/admin-guide.md, "Slurm releases").
 *
 * Sections: all sides; slurmctld's internals (TOPO_COMPAT_SLURMCTLD: preempt/topo_aware,
 * compiled against the release's configured source tree); the libslurm client (the CLI).
 */
#ifndef TOPO_SLURM_COMPAT_H
#define TOPO_SLURM_COMPAT_H

#include <errno.h>
#include <stdint.h>
#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>
#include <slurm/slurm_version.h>

#define TOPO_SLURM_AT_LEAST(a, b, c) (SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(a, b, c))

#if !TOPO_SLURM_AT_LEAST(22, 5, 0)
#error "TopoPreempt supports Slurm 22.05 and later"
#endif

/* ---- all sides ------------------------------------------------------------------------- */

/* GRES in TRES strings (tres_per_node, tres_per_socket, ...): `gres:gpu:4` up to 22.05,
 * `gres/gpu:4` from 23.02. Slurm converts the old form only while unpacking a message from an
 * older client (slurm_format_tres_string), before job_submit runs: a plugin must write the
 * form its release parses (S: 23.11 slurm_protocol_pack.c, slurm_get_next_tres). */
#if TOPO_SLURM_AT_LEAST(23, 2, 0)
#define TOPO_COMPAT_TRES_GRES_PREFIX "gres/"
#else
#define TOPO_COMPAT_TRES_GRES_PREFIX "gres:"
#endif

/* job_desc_msg_t's job id: `job_id` up to 25.05, `step_id.job_id` from 25.11 (S). */
static inline uint32_t topo_compat_job_desc_id(const job_desc_msg_t *desc)
{
#if TOPO_SLURM_AT_LEAST(25, 11, 0)
	return desc->step_id.job_id;
#else
	return desc->job_id;
#endif
}

/* PreemptMode=...,PRIORITY (25.05): the preemptor must have a higher job priority. The stock
 * preempt plugins strip it from the mode they report and refuse a preemptee of higher or equal
 * priority when it is set on the cluster or (partition_prio) the preemptor's partition or
 * (qos) the preemptor's QOS (S: 26.05 preempt_partition_prio.c, preempt_qos.c). */
#ifdef PREEMPT_MODE_PRIORITY
#define TOPO_COMPAT_PREEMPT_MODE_PRIORITY PREEMPT_MODE_PRIORITY
#else
#define TOPO_COMPAT_PREEMPT_MODE_PRIORITY 0
#endif

/* job_submit's job_modify(): a fourth argument, char **err_msg, from 23.02 (S: 23.11
 * src/interfaces/job_submit.c). TOPO_COMPAT_JOB_MODIFY_ERR_PARAM completes the parameter list;
 * TOPO_COMPAT_JOB_MODIFY_ERR_ARG is that argument (NULL before 23.02). */
#if TOPO_SLURM_AT_LEAST(23, 2, 0)
#define TOPO_COMPAT_JOB_MODIFY_ERR_PARAM , char **err_msg
#define TOPO_COMPAT_JOB_MODIFY_ERR_ARG err_msg
#else
#define TOPO_COMPAT_JOB_MODIFY_ERR_PARAM
#define TOPO_COMPAT_JOB_MODIFY_ERR_ARG NULL
#endif

/* ---- slurmctld internals (preempt/topo_aware) -------------------------------------------- */
#ifdef TOPO_COMPAT_SLURMCTLD

/* gres.h and preempt.h moved from src/common and src/slurmctld to src/interfaces in 23.02 (S). */
#if TOPO_SLURM_AT_LEAST(23, 2, 0)
#include "src/interfaces/gres.h"
#include "src/interfaces/preempt.h"
#else
#include "src/common/gres.h"
#include "src/slurmctld/preempt.h"
#endif

/* node_name2bitmap(): a fourth argument (hostlist_t **invalid_hostlist) from 24.05 (S: 24.11
 * node_conf.h; 23.11 has three). */
static inline int topo_compat_node_name2bitmap(char *names, bool best_effort, bitstr_t **bitmap)
{
#if TOPO_SLURM_AT_LEAST(24, 5, 0)
	return node_name2bitmap(names, best_effort, bitmap, NULL);
#else
	return node_name2bitmap(names, best_effort, bitmap);
#endif
}

/* A pending job's --segment: job_details_t.segment_size from 24.05 (S: job_record.h of 23.11
 * and 24.11); 0 where the release has none. */
static inline uint32_t topo_compat_segment_size(const job_record_t *job)
{
#if TOPO_SLURM_AT_LEAST(24, 5, 0)
	return job->details ? job->details->segment_size : 0;
#else
	(void)job;
	return 0;
#endif
}

/* --consolidate-segments and --spread-segments: job bit_flags CONSOLIDATE_SEGMENTS and
 * SPREAD_SEGMENTS from 25.11 (S: slurm.h of 24.11 and 25.11); false where the release has none. */
static inline bool topo_compat_segments_consolidated(const job_record_t *job)
{
#ifdef CONSOLIDATE_SEGMENTS
	return (job->bit_flags & CONSOLIDATE_SEGMENTS) != 0;
#else
	(void)job;
	return false;
#endif
}

static inline bool topo_compat_segments_spread(const job_record_t *job)
{
#ifdef SPREAD_SEGMENTS
	return (job->bit_flags & SPREAD_SEGMENTS) != 0;
#else
	(void)job;
	return false;
#endif
}

/* The preempt API: preempt_p_get_data(job, type, data) up to 24.11; from 25.05 one function
 * per datum: preempt_p_get_prio, preempt_p_get_mode, preempt_p_get_grace_time (S: the syms[]
 * of src/interfaces/preempt.c). TOPO_COMPAT_PREEMPT_DATA_API(prio, mode, grace) defines the
 * release's entry points in terms of the plugin's three functions
 * uint32_t prio(job_record_t *), uint16_t mode(job_record_t *), uint32_t grace(job_record_t *).
 * PREEMPT_DATA_ENABLED (get_data only): preemption is on unless PreemptMode=OFF. */
#if TOPO_SLURM_AT_LEAST(25, 5, 0)
#define TOPO_COMPAT_PREEMPT_DATA_API(prio, mode, grace)                                        \
	extern uint32_t preempt_p_get_prio(job_record_t *job_ptr) { return prio(job_ptr); }  \
	extern uint16_t preempt_p_get_mode(job_record_t *job_ptr) { return mode(job_ptr); }  \
	extern uint32_t preempt_p_get_grace_time(job_record_t *job_ptr) { return grace(job_ptr); }
#else
#define TOPO_COMPAT_PREEMPT_DATA_API(prio, mode, grace)                                        \
	extern int preempt_p_get_data(job_record_t *job_ptr, slurm_preempt_data_type_t type,    \
				      void *data)                                               \
	{                                                                                       \
		if (!data)                                                                      \
			return SLURM_ERROR;                                                     \
		switch (type) {                                                                 \
		case PREEMPT_DATA_ENABLED:                                                      \
			*(bool *)data = (slurm_conf.preempt_mode != PREEMPT_MODE_OFF);          \
			return SLURM_SUCCESS;                                                   \
		case PREEMPT_DATA_MODE:                                                         \
			*(uint16_t *)data = mode(job_ptr);                                      \
			return SLURM_SUCCESS;                                                   \
		case PREEMPT_DATA_PRIO:                                                         \
			*(uint32_t *)data = prio(job_ptr);                                      \
			return SLURM_SUCCESS;                                                   \
		case PREEMPT_DATA_GRACE_TIME:                                                   \
			*(uint32_t *)data = grace(job_ptr);                                     \
			return SLURM_SUCCESS;                                                   \
		default:                                                                        \
			error("%s: preempt_p_get_data: unknown data type %d", plugin_type,     \
			      (int)type);                                                       \
			return SLURM_ERROR;                                                     \
		}                                                                               \
	}
#endif

/* The same API from the caller's side (slurmctld's src/interfaces/preempt.c; here the plugin
 * harness, Tests/PreemptPlugin): the plugin's entry points found with dlsym(), and its prio,
 * mode and grace time asked through the release's calls. */
#ifdef TOPO_COMPAT_PREEMPT_CALLER
#include <dlfcn.h>

typedef struct {
#if TOPO_SLURM_AT_LEAST(25, 5, 0)
	uint32_t (*prio)(job_record_t *);
	uint16_t (*mode)(job_record_t *);
	uint32_t (*grace)(job_record_t *);
#else
	int (*get_data)(job_record_t *, slurm_preempt_data_type_t, void *);
#endif
} topo_compat_preempt_data_t;

/* 0 when the plugin has the release's entry points. */
static inline int topo_compat_preempt_data_resolve(void *handle, topo_compat_preempt_data_t *api)
{
#if TOPO_SLURM_AT_LEAST(25, 5, 0)
	api->prio = (uint32_t (*)(job_record_t *))dlsym(handle, "preempt_p_get_prio");
	api->mode = (uint16_t (*)(job_record_t *))dlsym(handle, "preempt_p_get_mode");
	api->grace = (uint32_t (*)(job_record_t *))dlsym(handle, "preempt_p_get_grace_time");
	return (api->prio && api->mode && api->grace) ? 0 : -1;
#else
	api->get_data = (int (*)(job_record_t *, slurm_preempt_data_type_t, void *))
		dlsym(handle, "preempt_p_get_data");
	return api->get_data ? 0 : -1;
#endif
}

static inline uint32_t topo_compat_preempt_prio(const topo_compat_preempt_data_t *api, job_record_t *job)
{
#if TOPO_SLURM_AT_LEAST(25, 5, 0)
	return api->prio(job);
#else
	uint32_t prio = 0;
	(void)api->get_data(job, PREEMPT_DATA_PRIO, &prio);
	return prio;
#endif
}

static inline uint16_t topo_compat_preempt_mode(const topo_compat_preempt_data_t *api, job_record_t *job)
{
#if TOPO_SLURM_AT_LEAST(25, 5, 0)
	return api->mode(job);
#else
	uint16_t mode = PREEMPT_MODE_OFF;
	(void)api->get_data(job, PREEMPT_DATA_MODE, &mode);
	return mode;
#endif
}

static inline uint32_t topo_compat_preempt_grace(const topo_compat_preempt_data_t *api, job_record_t *job)
{
#if TOPO_SLURM_AT_LEAST(25, 5, 0)
	return api->grace(job);
#else
	uint32_t grace = 0;
	(void)api->get_data(job, PREEMPT_DATA_GRACE_TIME, &grace);
	return grace;
#endif
}
#endif /* TOPO_COMPAT_PREEMPT_CALLER */

#endif /* TOPO_COMPAT_SLURMCTLD */

/* ---- the libslurm client (the command-line tool) ------------------------------------------ */
#ifdef TOPO_COMPAT_CLIENT

/* Slurm's list types: `List`/`ListIterator` up to 23.11, only `list_t`/`list_itr_t` from 24.05
 * (S: slurm.h of 22.05, 23.11, 24.11). */
#if TOPO_SLURM_AT_LEAST(23, 2, 0)
typedef list_t *topo_compat_list_t;
typedef list_itr_t *topo_compat_list_itr_t;
#else
typedef List topo_compat_list_t;
typedef ListIterator topo_compat_list_itr_t;
#endif

/* The error of the last failed libslurm call: slurm_get_errno() up to 23.11, removed in 24.05
 * (libslurm sets errno) (S: slurm_errno.h of 23.11 and 24.11). */
static inline int topo_compat_errno(void)
{
#if TOPO_SLURM_AT_LEAST(24, 5, 0)
	return errno;
#else
	return slurm_get_errno();
#endif
}

/* Freeing slurm_load_ctl_conf()'s answer: slurm_free_ctl_conf() up to 25.11, slurm_free_conf()
 * from 26.05 (S: slurm.h of 25.11 and 26.05). */
static inline void topo_compat_free_ctl_conf(slurm_conf_t *conf)
{
#if TOPO_SLURM_AT_LEAST(26, 5, 0)
	slurm_free_conf(conf);
#else
	slurm_free_ctl_conf(conf);
#endif
}

/* PreemptParameters (youngest_first, reorder_count=, strict_order): new in 23.02; 22.05 reads
 * these from SchedulerParameters only (preempt_youngest_first, ...) and its slurm_conf_t has no
 * preempt_params (S: slurm.h of 22.05 and 23.11). NULL where the release has none. */
static inline const char *topo_compat_preempt_params(const slurm_conf_t *conf)
{
#if TOPO_SLURM_AT_LEAST(23, 2, 0)
	return conf->preempt_params;
#else
	(void)conf;
	return NULL;
#endif
}

/* A job's --segment as libslurm reports it: slurm_job_info_t.segment_size in 25.11 and 26.05,
 * not in 24.11 (whose job_desc_msg_t has it) (S: slurm.h of 24.11 and 25.11); 0 where the
 * release has none, so on 24.11 `plan --job` plans a segmented job as one unsegmented. */
static inline uint32_t topo_compat_job_info_segment_size(const slurm_job_info_t *job)
{
#if TOPO_SLURM_AT_LEAST(25, 11, 0)
	return job->segment_size;
#else
	(void)job;
	return 0;
#endif
}

/* The same flags as libslurm reports them: slurm_job_info_t.bitflags (S: slurm.h of 25.11). */
static inline bool topo_compat_job_info_segments_consolidated(const slurm_job_info_t *job)
{
#ifdef CONSOLIDATE_SEGMENTS
	return (job->bitflags & CONSOLIDATE_SEGMENTS) != 0;
#else
	(void)job;
	return false;
#endif
}

static inline bool topo_compat_job_info_segments_spread(const slurm_job_info_t *job)
{
#ifdef SPREAD_SEGMENTS
	return (job->bitflags & SPREAD_SEGMENTS) != 0;
#else
	(void)job;
	return false;
#endif
}

/* slurm_requeue() takes the job id up to 25.11 and a slurm_step_id_t from 26.05 (S). */
static inline int topo_compat_requeue(uint32_t job_id, uint32_t flags)
{
#if TOPO_SLURM_AT_LEAST(26, 5, 0)
	slurm_step_id_t step_id = SLURM_STEP_ID_INITIALIZER;

	step_id.job_id = job_id;
	return slurm_requeue(step_id, flags);
#else
	return slurm_requeue(job_id, flags);
#endif
}

#endif /* TOPO_COMPAT_CLIENT */

#endif /* TOPO_SLURM_COMPAT_H */
