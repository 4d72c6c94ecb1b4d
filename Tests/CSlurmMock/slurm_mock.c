/*
 * Recorded stand-ins for Slurm's exported API; see CSlurmMock.h.
 */
#include "CSlurmMock.h"

#include <slurm/slurmdb.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Client API state (see CSlurmMock_set_client_data). */
static job_info_msg_t *client_jobs;
static node_info_msg_t *client_nodes;
static partition_info_msg_t *client_partitions;
static slurm_conf_t *client_conf;
static int client_error, client_inits, client_loads, client_frees;

#define MAX_LINES 4096
#define MOCK_MAGIC 0x534c55524d4f434bULL /* "SLURMOCK" */

static char *lines[MAX_LINES];
static int line_count;
static int log_level = 3;
static long live_allocations;
static int bad_frees;
static char *conf_dir;

/* slurmctld's global, normally defined by the slurmctld executable. */
char *default_part_name;

struct header {
    uint64_t magic;
    size_t size;
};

static void *mock_alloc(size_t size)
{
    struct header *h = calloc(1, sizeof(*h) + size);
    if (!h)
        abort();
    h->magic = MOCK_MAGIC;
    h->size = size;
    live_allocations++;
    return h + 1;
}

static struct header *header_of(void *p)
{
    struct header *h = (struct header *)p - 1;
    return h->magic == MOCK_MAGIC ? h : NULL;
}

static void record(const char *prefix, const char *fmt, va_list ap)
{
    char text[8192];
    vsnprintf(text, sizeof(text), fmt, ap);
    if (line_count >= MAX_LINES)
        return;
    size_t n = strlen(prefix) + strlen(text) + 1;
    lines[line_count] = malloc(n);
    if (!lines[line_count])
        abort();
    snprintf(lines[line_count], n, "%s%s", prefix, text);
    line_count++;
}

#define LOGGER(name, prefix)                        \
    void name(const char *fmt, ...)                 \
    {                                               \
        va_list ap;                                 \
        va_start(ap, fmt);                          \
        record(prefix, fmt, ap);                    \
        va_end(ap);                                 \
    }

LOGGER(slurm_error, "error: ")
LOGGER(slurm_info, "info: ")
LOGGER(slurm_verbose, "verbose: ")
LOGGER(slurm_debug, "debug: ")
LOGGER(slurm_debug2, "debug2: ")
LOGGER(slurm_debug3, "debug3: ")

int slurm_get_log_level(void) { return log_level; }

char *slurm_xstrdup(const char *str)
{
    if (!str)
        return NULL;
    size_t n = strlen(str);
    char *copy = mock_alloc(n + 1);
    memcpy(copy, str, n + 1);
    return copy;
}

void slurm_xfree(void **ptr)
{
    if (!ptr || !*ptr)
        return;
    struct header *h = header_of(*ptr);
    if (!h) {
        bad_frees++;
        *ptr = NULL;
        return;
    }
    h->magic = 0;
    free(h);
    live_allocations--;
    *ptr = NULL;
}

void slurm_xstrcat(char **str1, const char *str2)
{
    if (!str1 || !str2)
        return;
    size_t old = *str1 ? strlen(*str1) : 0;
    char *joined = mock_alloc(old + strlen(str2) + 1);
    if (*str1)
        memcpy(joined, *str1, old);
    strcpy(joined + old, str2);
    slurm_xfree((void **)str1);
    *str1 = joined;
}

char *slurm_get_extra_conf_path(char *conf_name)
{
    if (!conf_dir || !conf_name)
        return NULL;
    char *path = mock_alloc(strlen(conf_dir) + strlen(conf_name) + 2);
    sprintf(path, "%s/%s", conf_dir, conf_name);
    return path;
}

void CSlurmMock_reset(void)
{
    client_jobs = NULL; client_nodes = NULL; client_partitions = NULL; client_conf = NULL;
    client_error = client_inits = client_loads = client_frees = 0;
    for (int i = 0; i < line_count; i++)
        free(lines[i]);
    line_count = 0;
    log_level = 3;
    live_allocations = 0;
    bad_frees = 0;
    free(conf_dir);
    conf_dir = NULL;
    default_part_name = NULL; /* a test's name, owned by the test via CSlurmMock_set_default_partition */
}

void CSlurmMock_clear_log(void)
{
    for (int i = 0; i < line_count; i++)
        free(lines[i]);
    line_count = 0;
}

void CSlurmMock_set_log_level(int level) { log_level = level; }
int CSlurmMock_log_count(void) { return line_count; }
const char *CSlurmMock_log_line(int index)
{
    return (index >= 0 && index < line_count) ? lines[index] : NULL;
}
long CSlurmMock_live_allocations(void) { return live_allocations; }
int CSlurmMock_bad_frees(void) { return bad_frees; }

void CSlurmMock_set_conf_dir(const char *dir)
{
    free(conf_dir);
    conf_dir = dir ? strdup(dir) : NULL;
}

void CSlurmMock_set_default_partition(const char *name)
{
    static char *owned;
    free(owned);
    owned = name ? strdup(name) : NULL;
    default_part_name = owned;
}

char *CSlurmMock_xstrdup(const char *text) { return slurm_xstrdup(text); }
void CSlurmMock_xfree(char **field) { slurm_xfree((void **)field); }

/* ---- client API ---- */

void CSlurmMock_set_client_data(job_info_msg_t *jobs, node_info_msg_t *nodes, partition_info_msg_t *partitions, int error)
{
    client_jobs = jobs;
    client_nodes = nodes;
    client_partitions = partitions;
    client_error = error;
}
int CSlurmMock_client_inits(void) { return client_inits; }
int CSlurmMock_client_loads(void) { return client_loads; }
int CSlurmMock_client_frees(void) { return client_frees; }

void slurm_init(const char *conf) { (void)conf; client_inits++; }
int slurm_get_errno(void) { return client_error; }
char *slurm_strerror(int errnum) { return errnum ? "mock failure" : "no error"; }

int slurm_load_jobs(time_t update_time, job_info_msg_t **resp, uint16_t show_flags)
{
    (void)update_time; (void)show_flags;
    client_loads++;
    *resp = client_jobs;
    return client_jobs ? SLURM_SUCCESS : SLURM_ERROR;
}
int slurm_load_node(time_t update_time, node_info_msg_t **resp, uint16_t show_flags)
{
    (void)update_time; (void)show_flags;
    client_loads++;
    *resp = client_nodes;
    return client_nodes ? SLURM_SUCCESS : SLURM_ERROR;
}
int slurm_load_partitions(time_t update_time, partition_info_msg_t **resp, uint16_t show_flags)
{
    (void)update_time; (void)show_flags;
    client_loads++;
    *resp = client_partitions;
    return client_partitions ? SLURM_SUCCESS : SLURM_ERROR;
}
void slurm_free_job_info_msg(job_info_msg_t *msg) { if (msg) client_frees++; }
void slurm_free_node_info_msg(node_info_msg_t *msg) { if (msg) client_frees++; }
void slurm_free_partition_info_msg(partition_info_msg_t *msg) { if (msg) client_frees++; }

void CSlurmMock_set_client_conf(slurm_conf_t *conf) { client_conf = conf; }

int slurm_load_ctl_conf(time_t update_time, slurm_conf_t **resp)
{
    (void)update_time;
    client_loads++;
    *resp = client_conf;
    if (!client_conf) {
        client_error = 1;
        return -1;
    }
    return SLURM_SUCCESS;
}
void slurm_free_ctl_conf(slurm_conf_t *conf) { if (conf) client_frees++; }
int slurm_requeue(uint32_t job_id, uint32_t flags)
{
    (void)job_id; (void)flags;
    client_error = 1;
    return -1;
}

/* slurmdbd is never reached by the unit tests: the connection fails, as without slurmdbd. The
 * list and bitmap calls the QOS reader makes are present so SlurmClient links. */
void *slurmdb_connection_get(uint16_t *persist_conn_flags)
{
    (void)persist_conn_flags;
    client_error = 1;
    return NULL;
}
int slurmdb_connection_close(void **db_conn) { (void)db_conn; return SLURM_SUCCESS; }
List slurmdb_qos_get(void *db_conn, slurmdb_qos_cond_t *qos_cond) { (void)db_conn; (void)qos_cond; return NULL; }
ListIterator slurm_list_iterator_create(List l) { (void)l; return NULL; }
void slurm_list_iterator_destroy(ListIterator i) { (void)i; }
void *slurm_list_next(ListIterator i) { (void)i; return NULL; }
void slurm_list_destroy(List l) { (void)l; }
int slurm_bit_test(bitstr_t *b, bitoff_t bit) { (void)b; (void)bit; return 0; }
bitoff_t slurm_bit_size(bitstr_t *b) { (void)b; return 0; }
