/*
 * CSlurmMock — a stand-in for the parts of Slurm's API the shim reaches (loggers, xmalloc,
 * slurm_get_extra_conf_path, slurmctld's default_part_name), for unit tests without a daemon.
 * Calls are recorded; state is global, so suites using it run serialized.
 */
#ifndef CSLURMMOCK_H
#define CSLURMMOCK_H

#include <stddef.h>
#include <slurm/slurm.h>

/* Forget recorded lines and allocations; log level back to info, no conf dir, no default partition. */
void CSlurmMock_reset(void);

/* Forget recorded lines only (allocation counters and settings stay). */
void CSlurmMock_clear_log(void);

/* Slurm's current log level (2 error, 3 info, 4 verbose, 5 debug, ...). */
void CSlurmMock_set_log_level(int level);

/* Recorded log lines, oldest first, as "error: text", "info: text", "debug: text"... */
int CSlurmMock_log_count(void);
const char *_Nullable CSlurmMock_log_line(int index);

/* Strings handed out by slurm_xstrdup/xstrcat and not yet released with slurm_xfree. */
long CSlurmMock_live_allocations(void);
/* slurm_xfree calls on memory that did not come from the mock's xmalloc (a real Slurm would crash). */
int CSlurmMock_bad_frees(void);

/* Directory slurm_get_extra_conf_path() places files in; NULL makes it return NULL. */
void CSlurmMock_set_conf_dir(const char *_Nullable dir);

/* slurmctld's default partition name; NULL for none. */
void CSlurmMock_set_default_partition(const char *_Nullable name);

/* Slurm-allocated copy of text (what slurmctld puts in job_desc fields) and its release. */
char *_Nullable CSlurmMock_xstrdup(const char *_Nullable text);
void CSlurmMock_xfree(char *_Nullable *_Nonnull field);

/* Client API (slurm_load_jobs/node/partitions): the messages the next load calls return (the
 * test owns them; the mock's free functions only count). NULL makes that load fail with
 * errno `error`. */
void CSlurmMock_set_client_data(job_info_msg_t *_Nullable jobs, node_info_msg_t *_Nullable nodes,
                                partition_info_msg_t *_Nullable partitions, int error);
/* The configuration slurm_load_ctl_conf returns (the test owns it); NULL makes it fail. */
void CSlurmMock_set_client_conf(slurm_conf_t *_Nullable conf);
/* Calls of slurm_init, of the load functions, and of the free functions since the last reset. */
int CSlurmMock_client_inits(void);
int CSlurmMock_client_loads(void);
int CSlurmMock_client_frees(void);

#endif
