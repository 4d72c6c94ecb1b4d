/*
 * The libslurm client calls of the command-line tool that Swift cannot make directly.
 */
#include "CSlurmClient.h"
#define TOPO_COMPAT_CLIENT
#include "../compat/topo_slurm_compat.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <slurm/slurmdb.h>

/* Exported by libslurm (src/common/bitstring.c, as slurm_bit_*), declared only in Slurm's
 * internal headers (22.05: `int bit_test(bitstr_t *b, bitoff_t bit)`). */
extern int slurm_bit_test(bitstr_t *b, bitoff_t bit);
extern bitoff_t slurm_bit_size(bitstr_t *b);

int CSlurmClient_node_unavailable(uint32_t node_state)
{
    uint32_t base = node_state & NODE_STATE_BASE;

    if ((base == NODE_STATE_DOWN) || (base == NODE_STATE_FUTURE) || (base == NODE_STATE_UNKNOWN))
        return 1;
    return (node_state & (NODE_STATE_DRAIN | NODE_STATE_FAIL | NODE_STATE_NO_RESPOND |
                          NODE_STATE_POWERED_DOWN)) != 0;
}

uint32_t CSlurmClient_slurm_version(void)
{
    return SLURM_VERSION_NUMBER;
}

uint16_t CSlurmClient_show_flags(int detail)
{
    return (uint16_t)(SHOW_ALL | (detail ? SHOW_DETAIL : 0));
}

uint16_t CSlurmClient_preempt_mode_priority(void)
{
    return TOPO_COMPAT_PREEMPT_MODE_PRIORITY;
}

const char *CSlurmClient_tres_gres_prefix(void)
{
    return TOPO_COMPAT_TRES_GRES_PREFIX;
}

const char *CSlurmClient_preempt_params(const slurm_conf_t *conf)
{
    return topo_compat_preempt_params(conf);
}

void CSlurmClient_free_ctl_conf(slurm_conf_t *conf)
{
    topo_compat_free_ctl_conf(conf);
}

int CSlurmClient_requeue(uint32_t job_id, uint32_t flags)
{
    return topo_compat_requeue(job_id, flags);
}

uint32_t CSlurmClient_job_segment_size(const slurm_job_info_t *job)
{
    return topo_compat_job_info_segment_size(job);
}

uint32_t CSlurmClient_job_segment_flags(const slurm_job_info_t *job)
{
    return (topo_compat_job_info_segments_consolidated(job) ? 1u : 0u) |
           (topo_compat_job_info_segments_spread(job) ? 2u : 0u);
}

const char *CSlurmClient_error_text(void)
{
    const char *text = slurm_strerror(topo_compat_errno());
    return text ? text : "unknown error";
}

/* Appends `name` to a malloc'd comma-separated list. */
static int _append(char **list, const char *name)
{
    size_t used = *list ? strlen(*list) : 0, more = strlen(name);
    char *grown = realloc(*list, used + more + 2);

    if (!grown)
        return -1;
    if (used)
        grown[used++] = ',';
    memcpy(grown + used, name, more + 1);
    *list = grown;
    return 0;
}

int CSlurmClient_load_qos(CSlurmClient_qos_t **out, uint32_t *count)
{
    slurmdb_qos_cond_t cond;
    void *db;
    topo_compat_list_t records;
    topo_compat_list_itr_t it;
    slurmdb_qos_rec_t *rec, **by_id = NULL;
    uint32_t n = 0, max_id = 0, i;
    int rc = 0;

    *out = NULL;
    *count = 0;
    memset(&cond, 0, sizeof(cond));
    if (!(db = slurmdb_connection_get(NULL)))
        return -1;
    records = slurmdb_qos_get(db, &cond);
    if (!records) {
        slurmdb_connection_close(&db);
        return -1;
    }
    /* Preempt= is stored as a bitmap of QOS ids: names come from the same list. */
    it = slurm_list_iterator_create(records);
    while ((rec = slurm_list_next(it))) {
        n++;
        if (rec->id > max_id)
            max_id = rec->id;
    }
    slurm_list_iterator_destroy(it);
    *out = calloc(n ? n : 1, sizeof(**out));
    by_id = calloc((size_t)max_id + 1, sizeof(*by_id));
    if (!*out || !by_id) {
        errno = ENOMEM;
        rc = -1;
        goto done;
    }
    it = slurm_list_iterator_create(records);
    while ((rec = slurm_list_next(it)))
        by_id[rec->id] = rec;
    slurm_list_iterator_destroy(it);
    it = slurm_list_iterator_create(records);
    for (i = 0; (rec = slurm_list_next(it)) && (i < n); i++) {
        CSlurmClient_qos_t *q = &(*out)[i];
        bitoff_t bit, bits = rec->preempt_bitstr ? slurm_bit_size(rec->preempt_bitstr) : 0;

        *count = i + 1;
        q->name = strdup(rec->name ? rec->name : "");
        q->priority = rec->priority;
        q->preempt_mode = rec->preempt_mode;
        for (bit = 0; bit < bits; bit++) {
            if (!slurm_bit_test(rec->preempt_bitstr, bit) || ((uint32_t)bit > max_id) ||
                !by_id[bit] || !by_id[bit]->name)
                continue;
            if (_append(&q->preempts, by_id[bit]->name)) {
                rc = -1;
                break;
            }
        }
        if (!q->name || rc)
            break;
    }
    slurm_list_iterator_destroy(it);
done:
    free(by_id);
    slurm_list_destroy(records);
    slurmdb_connection_close(&db);
    if (rc) {
        CSlurmClient_free_qos(*out, *count);
        *out = NULL;
        *count = 0;
    }
    return rc;
}

void CSlurmClient_free_qos(CSlurmClient_qos_t *qos, uint32_t count)
{
    uint32_t i;

    if (!qos)
        return;
    for (i = 0; i < count; i++) {
        free(qos[i].name);
        free(qos[i].preempts);
    }
    free(qos);
}
