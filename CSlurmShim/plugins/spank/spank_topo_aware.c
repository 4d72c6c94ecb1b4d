/*
 * spank_topo_aware.so — adds `--gpu-affinity=LEVEL[:MODE]` to sbatch, salloc and srun.
 *
 * The value is passed unchanged into the job's SPANK environment as TOPO_AWARE_GPU_AFFINITY
 * (job_desc_msg_t.spank_job_env), where job_submit/topo_aware checks it and either records it
 * or rejects the job with a message. Checking only in the controller keeps one parser and one
 * set of messages, whatever client submitted the job. Nothing else is done here: the plugin is
 * also loaded by slurmd and slurmstepd, where it does nothing.
 *
 * Install: `optional /path/to/spank_topo_aware.so` in plugstack.conf (PlugStackConfig=).
 * Built with plain cc by scripts/build-plugins (C only, no Swift runtime needed).
 */
#include <stdlib.h>
#include <string.h>
#include <slurm/spank.h>

SPANK_PLUGIN(topo_aware, 1);

#define ENV_NAME "TOPO_AWARE_GPU_AFFINITY"
/* Longer values are cut here; the controller rejects anything over 64 characters anyway. */
#define MAX_VALUE 4096

static char *affinity_value;

static int _set_affinity(int val, const char *optarg, int remote)
{
    (void)val;
    if (remote)
        return 0;
    free(affinity_value);
    affinity_value = strndup(optarg ? optarg : "", MAX_VALUE);
    return affinity_value ? 0 : -1;
}

static struct spank_option affinity_option = {
    "gpu-affinity", "LEVEL[:MODE]",
    "GPU topology this job needs when it preempts others: LEVEL is nvlink, pcie-switch, "
    "host-bridge, numa, socket or node; MODE is guaranteed or best-effort (topo_aware)",
    1, 0, _set_affinity
};

/* Registered here rather than through a static `spank_options` table: Slurm 22.05 does not
 * read that table in allocator context (sbatch, salloc; src/common/plugstack.c). */
int slurm_spank_init(spank_t sp, int ac, char **av)
{
    spank_err_t rc;

    (void)ac;
    (void)av;
    rc = spank_option_register(sp, &affinity_option);
    if (rc != ESPANK_SUCCESS) {
        slurm_error("topo_aware: cannot register --gpu-affinity: %s", spank_strerror(rc));
        return -1;
    }
    return 0;
}

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
    spank_err_t rc;
    spank_context_t ctx = spank_context();

    (void)ac;
    (void)av;
    if (!affinity_value || (ctx != S_CTX_ALLOCATOR && ctx != S_CTX_LOCAL))
        return 0;
    rc = spank_job_control_setenv(sp, ENV_NAME, affinity_value, 1);
    if (rc != ESPANK_SUCCESS) {
        slurm_error("topo_aware: cannot pass --gpu-affinity to the controller: %s",
                    spank_strerror(rc));
        return -1;
    }
    return 0;
}

int slurm_spank_exit(spank_t sp, int ac, char **av)
{
    (void)sp;
    (void)ac;
    (void)av;
    free(affinity_value);
    affinity_value = NULL;
    return 0;
}
