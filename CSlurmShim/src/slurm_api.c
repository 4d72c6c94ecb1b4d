/*
 * Wrappers around the parts of Slurm's C API that Swift cannot call directly.
 */
#define _GNU_SOURCE
#include "CSlurmShim.h"
#include "../compat/topo_slurm_compat.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

/* Exported by libslurmfull (slurmctld) and libslurm; declared here because Slurm's headers for
 * them (log.h, xmalloc.h, xstring.h, read_config.h) are not installed by libslurm-dev. */
extern int slurm_get_log_level(void);
extern void slurm_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern void slurm_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern void slurm_verbose(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern void slurm_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern void slurm_debug2(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern void slurm_debug3(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern char *slurm_xstrdup(const char *str);
extern void slurm_xfree(void **ptr);
extern void slurm_xstrcat(char **str1, const char *str2);

/* Weak: present in slurmctld and libslurm, absent elsewhere; checked before use. */
extern char *slurm_get_extra_conf_path(char *conf_name) __attribute__((weak));
/* Weak: a global of the slurmctld executable (src/slurmctld/partition_mgr.c). */
extern char *default_part_name __attribute__((weak));
/* Weak: Slurm's parsed configuration (src/common/read_config.c), in libslurmfull and libslurm. */
extern slurm_conf_t slurm_conf __attribute__((weak));

void CSlurmShim_log(CSlurmShim_log_level level, const char *message)
{
    if (!message)
        return;
    /* Always pass the text as an argument, never as the format. */
    switch (level) {
    case CSlurmShim_LOG_ERROR:   slurm_error("%s", message); break;
    case CSlurmShim_LOG_INFO:    slurm_info("%s", message); break;
    case CSlurmShim_LOG_VERBOSE: slurm_verbose("%s", message); break;
    case CSlurmShim_LOG_DEBUG:   slurm_debug("%s", message); break;
    case CSlurmShim_LOG_DEBUG2:  slurm_debug2("%s", message); break;
    default:                     slurm_debug3("%s", message); break;
    }
}

int CSlurmShim_log_enabled(CSlurmShim_log_level level)
{
    return slurm_get_log_level() >= (int)level;
}

void CSlurmShim_set_string(char **field, const char *value)
{
    if (!field)
        return;
    if (*field)
        slurm_xfree((void **)field);
    *field = value ? slurm_xstrdup(value) : NULL;
}

void CSlurmShim_append_message(char **msg, const char *line)
{
    if (!msg || !line)
        return;
    if (*msg && **msg) {
        slurm_xstrcat(msg, "\n");
        slurm_xstrcat(msg, line);
    } else {
        if (*msg)
            slurm_xfree((void **)msg);
        *msg = slurm_xstrdup(line);
    }
}

char *CSlurmShim_extra_conf_path(const char *name)
{
    char *from_slurm, *copy;

    if (!name || !slurm_get_extra_conf_path)
        return NULL;
    from_slurm = slurm_get_extra_conf_path((char *)name);
    if (!from_slurm)
        return NULL;
    copy = strdup(from_slurm);
    slurm_xfree((void **)&from_slurm);
    return copy;
}

const char *CSlurmShim_default_partition(void)
{
    if (!&default_part_name)
        return NULL;
    return default_part_name;
}

uint32_t CSlurmShim_job_desc_job_id(const job_desc_msg_t *job_desc)
{
    return job_desc ? topo_compat_job_desc_id(job_desc) : 0;
}

const char *CSlurmShim_tres_gres_prefix(void)
{
    return TOPO_COMPAT_TRES_GRES_PREFIX;
}

char *CSlurmShim_slurm_conf_path(void)
{
    if (&slurm_conf && slurm_conf.slurm_conf && slurm_conf.slurm_conf[0])
        return strdup(slurm_conf.slurm_conf);
    return CSlurmShim_extra_conf_path("slurm.conf");
}

int CSlurmShim_pin_image(void)
{
    Dl_info info;

    if (!dladdr((void *)&CSlurmShim_pin_image, &info) || !info.dli_fname)
        return -1;
    return dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) ? 0 : -1;
}
