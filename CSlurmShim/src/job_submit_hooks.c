/*
 * job_submit/topo_aware: the C entry points behind Slurm's job_submit plugin symbols.
 * They check the pointers Slurm hands over and forward to Swift; a NULL where Slurm promises
 * an object is logged and the job is let through (a plugin malfunction never blocks users).
 */
#include "CSlurmShim.h"
#include "swift_hooks.h"

int CSlurmShim_job_submit_init(void)
{
    return TopoAwareSwift_jobSubmitInit();
}

int CSlurmShim_job_submit_fini(void)
{
    TopoAwareSwift_jobSubmitFini();
    return SLURM_SUCCESS;
}

int CSlurmShim_job_submit(job_desc_msg_t *job_desc, uint32_t submit_uid, char **err_msg)
{
    if (!job_desc) {
        CSlurmShim_log(CSlurmShim_LOG_ERROR,
                       "job_submit/topo_aware: job_submit: no job description; job let through");
        return SLURM_SUCCESS;
    }
    return TopoAwareSwift_jobSubmit(job_desc, submit_uid, err_msg);
}

int CSlurmShim_job_modify(job_desc_msg_t *job_desc, void *job_ptr, uint32_t submit_uid, char **err_msg)
{
    (void)job_ptr; /* slurmctld-internal; not read by this plugin */
    (void)err_msg; /* Slurm 23.02+ passes one; updates are never refused here */
    if (!job_desc) {
        CSlurmShim_log(CSlurmShim_LOG_ERROR,
                       "job_submit/topo_aware: job_modify: no job description; update let through");
        return SLURM_SUCCESS;
    }
    return TopoAwareSwift_jobModify(job_desc, submit_uid);
}
