/*
 * CSlurmShim — the C side of TopoPreempt's Slurm plugins.
 *
 * Only C can do what is here: define Slurm's plugin ABI (the entry points the plugin identity
 * files forward to), call Slurm's variadic loggers, allocate strings with Slurm's xmalloc so
 * slurmctld can free them, and reach symbols that exist only inside slurmctld. No policy lives
 * here; every decision is made in Swift (SlurmBridge -> TopoEngine).
 *
 * The slurm_* symbols are left undefined in the plugin: slurmctld's libslurmfull provides them
 * at load time. Unit tests link the CSlurmMock target instead.
 */
#ifndef CSLURMSHIM_H
#define CSLURMSHIM_H

#include <stdint.h>
#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>
#include "topo_preempt_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Slurm's log levels as used by the shim (values of Slurm's log_level_t). */
typedef enum {
    CSlurmShim_LOG_ERROR = 2,
    CSlurmShim_LOG_INFO = 3,
    CSlurmShim_LOG_VERBOSE = 4,
    CSlurmShim_LOG_DEBUG = 5,
    CSlurmShim_LOG_DEBUG2 = 6,
    CSlurmShim_LOG_DEBUG3 = 7,
} CSlurmShim_log_level;

/* Writes one line to Slurm's log at `level` (Swift cannot call Slurm's variadic loggers). */
void CSlurmShim_log(CSlurmShim_log_level level, const char *_Nonnull message);

/* Non-zero when a line at `level` would be written, so callers can skip formatting it. */
int CSlurmShim_log_enabled(CSlurmShim_log_level level);

/* Replaces *field with an xmalloc'd copy of value (NULL clears it); Slurm frees job_desc
 * strings with xfree, so they must come from Slurm's allocator. */
void CSlurmShim_set_string(char *_Nullable *_Nonnull field, const char *_Nullable value);

/* Appends a line to a Slurm error/user message (*msg may be NULL or already hold text from
 * another job_submit plugin). */
void CSlurmShim_append_message(char *_Nullable *_Nonnull msg, const char *_Nonnull line);

/* Path of a configuration file beside slurm.conf (Slurm's own rule, including SLURM_CONF).
 * Returns a malloc'd string the caller frees with free(), or NULL when Slurm cannot say. */
char *_Nullable CSlurmShim_extra_conf_path(const char *_Nonnull name);

/* Path of the slurm.conf the daemon read (Slurm's global slurm_conf), else slurm.conf beside
 * the configuration directory; malloc'd, the caller frees it; NULL when Slurm cannot say. */
char *_Nullable CSlurmShim_slurm_conf_path(void);

/* slurmctld's default partition name, or NULL outside slurmctld or when none is set.
 * Valid while slurmctld holds its partition read lock (true inside job_submit hooks). */
const char *_Nullable CSlurmShim_default_partition(void);

/* The job id of a job description (its field moved in Slurm 25.11). */
uint32_t CSlurmShim_job_desc_job_id(const job_desc_msg_t *_Nonnull job_desc);

/* How this Slurm release writes a GRES in TRES strings: "gres:" (22.05) or "gres/" (23.02+);
 * job_submit writes shaped requests in this form. */
const char *_Nonnull CSlurmShim_tres_gres_prefix(void);

/* job_submit/topo_aware entry points: the plugin identity file forwards Slurm's symbols
 * (init, fini, job_submit, job_modify) here. `job_ptr` is slurmctld's job_record_t, opaque. */
/* Makes this shared object impossible to unload (dladdr() of one of its functions, then
 * dlopen(RTLD_NOLOAD | RTLD_NODELETE)): a thread of its own runs in it. dladdr() needs
 * _GNU_SOURCE, which Swift's Glibc module does not set. 0 on success. */
int CSlurmShim_pin_image(void);

int CSlurmShim_job_submit_init(void);
int CSlurmShim_job_submit_fini(void);
int CSlurmShim_job_submit(job_desc_msg_t *_Nullable job_desc, uint32_t submit_uid,
                          char *_Nullable *_Nullable err_msg);
int CSlurmShim_job_modify(job_desc_msg_t *_Nullable job_desc, void *_Nullable job_ptr,
                          uint32_t submit_uid, char *_Nullable *_Nullable err_msg);

#ifdef __cplusplus
}
#endif

#endif /* CSLURMSHIM_H */
