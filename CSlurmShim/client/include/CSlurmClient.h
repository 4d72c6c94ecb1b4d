/*
 * CSlurmClient — the C side of the command-line tool's libslurm client (module SlurmClient).
 *
 * Only what Swift cannot do itself: macros and flag tests it cannot import, Slurm's List and
 * bitstring types (QOS records from slurmdbd), and error text. Never linked into a plugin:
 * these calls are RPCs to slurmctld and slurmdbd, which would deadlock inside a hook.
 */
#ifndef CSLURMCLIENT_H
#define CSLURMCLIENT_H

#include <stdint.h>
#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Non-zero when a node in this state cannot take new jobs: down, future, unknown, or flagged
 * drain, fail, not responding or powered down (the flags are SLURM_BIT macros Swift cannot
 * import). */
int CSlurmClient_node_unavailable(uint32_t node_state);

/* SLURM_VERSION_NUMBER of the release this tool is built against. */
uint32_t CSlurmClient_slurm_version(void);

/* SHOW_ALL, plus SHOW_DETAIL when `detail` (macros of SLURM_BIT from 24.05, which Swift
 * cannot import). */
uint16_t CSlurmClient_show_flags(int detail);

/* PreemptMode's PRIORITY flag (Slurm 25.05+); 0 on releases without it. */
uint16_t CSlurmClient_preempt_mode_priority(void);

/* How this Slurm release writes a GRES in TRES strings: "gres:" (22.05) or "gres/" (23.02+). */
const char *_Nonnull CSlurmClient_tres_gres_prefix(void);

/* slurm_free_ctl_conf() (renamed in 26.05). */
void CSlurmClient_free_ctl_conf(slurm_conf_t *_Nonnull conf);

/* PreemptParameters of slurm_load_ctl_conf()'s answer; NULL when unset or (22.05) not a
 * setting of this release. */
const char *_Nullable CSlurmClient_preempt_params(const slurm_conf_t *_Nonnull conf);

/* slurm_requeue(job, flags) (a step id from 26.05); Slurm's return code. */
int CSlurmClient_requeue(uint32_t job_id, uint32_t flags);

/* The job's --segment (0: none, or a release without it). */
uint32_t CSlurmClient_job_segment_size(const slurm_job_info_t *_Nonnull job);

/* The job's --consolidate-segments (1) and --spread-segments (2) (0 on releases without them). */
uint32_t CSlurmClient_job_segment_flags(const slurm_job_info_t *_Nonnull job);

/* Text of the error of the last failed libslurm call. */
const char *_Nonnull CSlurmClient_error_text(void);

/* One QOS record of slurmdbd, copied out of Slurm's structs (strings malloc'd). */
typedef struct {
    char *_Nullable name;
    uint32_t priority;
    uint16_t preempt_mode;     /* PREEMPT_MODE_* bits as slurmdbd stores them (0: not set) */
    char *_Nullable preempts;  /* names of the QOS it may preempt, comma-separated */
} CSlurmClient_qos_t;

/* Reads every QOS record from slurmdbd (sacctmgr's source). 0 and *out, *count on success (free
 * with CSlurmClient_free_qos), -1 on failure (CSlurmClient_error_text says why). */
int CSlurmClient_load_qos(CSlurmClient_qos_t *_Nullable *_Nonnull out, uint32_t *_Nonnull count);
void CSlurmClient_free_qos(CSlurmClient_qos_t *_Nullable qos, uint32_t count);

#ifdef __cplusplus
}
#endif

#endif /* CSLURMCLIENT_H */
