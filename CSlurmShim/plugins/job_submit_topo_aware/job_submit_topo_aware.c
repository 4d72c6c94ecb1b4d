/*
 * The symbols that make this shared object Slurm's `job_submit/topo_aware` plugin
 * (JobSubmitPlugins=topo_aware loads job_submit_topo_aware.so from PluginDir).
 * Each forwards to the shim; kept apart so every plugin .so carries exactly one identity.
 */
#include <slurm/slurm.h>
#include <slurm/slurm_version.h>
#include "CSlurmShim.h"
#include "../../compat/topo_slurm_compat.h"

const char plugin_name[] = "TopoPreempt topology-aware job submit";
const char plugin_type[] = "job_submit/topo_aware";
const uint32_t plugin_version = SLURM_VERSION_NUMBER;

int init(void)
{
    return CSlurmShim_job_submit_init();
}

int fini(void)
{
    return CSlurmShim_job_submit_fini();
}

/* struct job_record is slurmctld-internal; only its address is passed on. */
struct job_record;

int job_submit(job_desc_msg_t *job_desc, uint32_t submit_uid, char **err_msg)
{
    return CSlurmShim_job_submit(job_desc, submit_uid, err_msg);
}

/* job_modify(job_desc, job_ptr, submit_uid), plus char **err_msg from Slurm 23.02. */
int job_modify(job_desc_msg_t *job_desc, struct job_record *job_ptr,
               uint32_t submit_uid TOPO_COMPAT_JOB_MODIFY_ERR_PARAM)
{
    return CSlurmShim_job_modify(job_desc, job_ptr, submit_uid, TOPO_COMPAT_JOB_MODIFY_ERR_ARG);
}
