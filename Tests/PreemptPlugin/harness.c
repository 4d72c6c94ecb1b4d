/*
 * The plugin harness: slurmctld's side of the preempt API (see harness.h).
 */
#include "harness.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- what only the slurmctld executable defines ------------------------------------------ */

time_t last_job_update;
time_t last_part_update;
time_t last_node_update; /* slurmctld's own, as in slurmctld (libslurmfull has one too) */
__typeof__(job_list) job_list;

/* Job records by id: open addressing, linear probing, deletion by backward shift. */
static job_record_t **by_id;
static uint32_t by_id_cap, by_id_count;

static uint32_t _slot(uint32_t id, uint32_t cap)
{
	return (id * 2654435761u) & (cap - 1);
}

static void _index_put(job_record_t *job)
{
	uint32_t i;

	if ((by_id_count + 1) * 2 > by_id_cap) {
		job_record_t **old = by_id;
		uint32_t old_cap = by_id_cap;
		by_id_cap = old_cap ? old_cap * 2 : 1024;
		by_id = xcalloc(by_id_cap, sizeof(*by_id));
		by_id_count = 0;
		for (i = 0; i < old_cap; i++)
			if (old[i])
				_index_put(old[i]);
		xfree(old);
	}
	for (i = _slot(job->job_id, by_id_cap); by_id[i]; i = (i + 1) & (by_id_cap - 1))
		if (by_id[i]->job_id == job->job_id) {
			by_id[i] = job;
			return;
		}
	by_id[i] = job;
	by_id_count++;
}

static void _index_remove(uint32_t id)
{
	uint32_t i, j, mask = by_id_cap - 1;

	if (!by_id_cap)
		return;
	for (i = _slot(id, by_id_cap); by_id[i]; i = (i + 1) & mask)
		if (by_id[i]->job_id == id)
			break;
	if (!by_id[i])
		return;
	by_id[i] = NULL;
	by_id_count--;
	for (j = (i + 1) & mask; by_id[j]; j = (j + 1) & mask) {
		job_record_t *moved = by_id[j];
		uint32_t home = _slot(moved->job_id, by_id_cap);
		/* Move it back when its home is not in (i, j]. */
		if ((i < j) ? ((home <= i) || (home > j)) : ((home <= i) && (home > j))) {
			by_id[i] = moved;
			by_id[j] = NULL;
			i = j;
		}
	}
}

extern job_record_t *find_job_record(uint32_t job_id)
{
	uint32_t i;

	if (!by_id_cap)
		return NULL;
	for (i = _slot(job_id, by_id_cap); by_id[i]; i = (i + 1) & (by_id_cap - 1))
		if (by_id[i]->job_id == job_id)
			return by_id[i];
	return NULL;
}

/* As slurmctld: the job's --sockets-per-node, else 1. */
extern uint16_t job_get_sockets_per_node(job_record_t *job_ptr)
{
	if (job_ptr && job_ptr->details && job_ptr->details->mc_ptr &&
	    job_ptr->details->mc_ptr->sockets_per_node &&
	    (job_ptr->details->mc_ptr->sockets_per_node != NO_VAL16))
		return job_ptr->details->mc_ptr->sockets_per_node;
	return 1;
}

/* ---- the plugin ------------------------------------------------------------------------- */

typedef struct {
	void *handle;
	int (*init)(void);
	void (*fini)(void);
	bool (*preemptable)(job_record_t *, job_record_t *);
	bool (*check)(job_queue_rec_t *, job_queue_rec_t *);
	topo_compat_preempt_data_t data;
	topo_preempt_stats_fn stats;
	bool initialized;
} api_t;

/* The plugin under test, and optionally a stock preempt plugin of the same release to compare
 * with (h_use_stock); `active` answers h_pass and the direct calls. */
static api_t plugin, stock, *active = &plugin;

static int _load(api_t *api, const char *path)
{
	api->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!api->handle) {
		fprintf(stderr, "harness: cannot load %s: %s\n", path, dlerror());
		return -1;
	}
	api->init = (int (*)(void))dlsym(api->handle, "init");
	api->fini = (void (*)(void))dlsym(api->handle, "fini");
	api->preemptable = (bool (*)(job_record_t *, job_record_t *))dlsym(api->handle, "preempt_p_preemptable");
	api->check = (bool (*)(job_queue_rec_t *, job_queue_rec_t *))dlsym(api->handle, "preempt_p_job_preempt_check");
	api->stats = (topo_preempt_stats_fn)dlsym(api->handle, "topo_aware_preempt_stats");
	if (!api->init || !api->fini || !api->preemptable || !api->check ||
	    topo_compat_preempt_data_resolve(api->handle, &api->data)) {
		fprintf(stderr, "harness: %s lacks the preempt API of Slurm %s\n", path, SLURM_VERSION_STRING);
		return -1;
	}
	return 0;
}

int h_load_stock(const char *path)
{
	if (_load(&stock, path))
		return -1;
	(void)stock.init();
	stock.initialized = true;
	return 0;
}

void h_use_stock(bool use)
{
	active = (use && stock.handle) ? &stock : &plugin;
}

static char *work_dir, *log_path;
static bool write_files = true;
/* h_pass's candidate arrays, kept between passes. */
static job_record_t **pass_jobs;
static uint32_t *pass_prio;
static int pass_cap;
static int gpus_per_node, island_size;

int h_start(const h_options_t *options)
{
	log_options_t opts = LOG_OPTS_STDERR_ONLY;
	char *dir;

	opts.stderr_level = LOG_LEVEL_QUIET;
	if (options->log_file) {
		opts.logfile_level = options->log_level ? options->log_level : LOG_LEVEL_INFO;
		log_path = xstrdup(options->log_file);
		if (truncate(log_path, 0) && (errno != ENOENT))
			fprintf(stderr, "harness: cannot empty %s: %s\n", log_path, strerror(errno));
	} else {
		opts.stderr_level = options->log_level ? options->log_level : LOG_LEVEL_INFO;
	}
	log_init("preempt-harness", opts, 0, log_path);
	work_dir = xstrdup(options->work_dir);
	if (options->plugin_dir) {
		dir = xstrdup(options->plugin_dir);
	} else {
		char *slash;
		dir = xstrdup(options->plugin);
		slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		else
			xstrcat(dir, ".");
	}
	slurm_conf.plugindir = dir;
	slurm_conf.slurm_conf = xstrdup_printf("%s/slurm.conf", work_dir);
	slurm_conf.preempt_mode = PREEMPT_MODE_REQUEUE;
	slurm_conf.preempt_exempt_time = NO_VAL;
	job_list = list_create(NULL);

	return _load(&plugin, options->plugin);
}

void h_plugin_init(void)
{
	if (!plugin.initialized)
		(void)plugin.init();
	plugin.initialized = true;
}

void h_plugin_fini(void)
{
	if (plugin.initialized)
		plugin.fini();
	plugin.initialized = false;
}

bool h_preemptable(job_record_t *preemptee, job_record_t *preemptor)
{
	return active->preemptable(preemptee, preemptor);
}

bool h_preempt_check(job_record_t *preemptor, job_record_t *preemptee)
{
	job_queue_rec_t a = { .job_ptr = preemptor, .part_ptr = preemptor->part_ptr, .priority = preemptor->priority };
	job_queue_rec_t b = { .job_ptr = preemptee, .part_ptr = preemptee->part_ptr, .priority = preemptee->priority };

	return active->check(&a, &b);
}

uint32_t h_prio(job_record_t *job) { return topo_compat_preempt_prio(&active->data, job); }
uint16_t h_mode(job_record_t *job) { return topo_compat_preempt_mode(&active->data, job); }
uint32_t h_grace(job_record_t *job) { return topo_compat_preempt_grace(&active->data, job); }

void h_stats(topo_preempt_stats_t *out)
{
	memset(out, 0, sizeof(*out));
	if (plugin.stats)
		plugin.stats(out);
}

void h_conf(uint16_t preempt_mode, uint32_t exempt_time)
{
	slurm_conf.preempt_mode = preempt_mode;
	slurm_conf.preempt_exempt_time = exempt_time;
}

uint64_t h_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- records ------------------------------------------------------------------------------ */

static part_record_t **parts;
static int part_count;
static slurmdb_qos_rec_t **qoses;
static int qos_count;
#define MAX_QOS 64

void h_write_files(bool write)
{
	write_files = write;
}

static void _write(const char *name, const char *text)
{
	char *path;
	FILE *f;

	if (!write_files)
		return;
	path = xstrdup_printf("%s/%s", work_dir, name);
	f = fopen(path, "w");

	if (!f || (fputs(text, f) < 0) || fclose(f)) {
		fprintf(stderr, "harness: cannot write %s: %s\n", path, strerror(errno));
		exit(2);
	}
	xfree(path);
}

static gres_state_t *_gres_state(void *data, int type)
{
	gres_state_t *gres = xmalloc(sizeof(*gres));

	gres->gres_name = xstrdup("gpu");
	gres->plugin_id = 7696487; /* gres/gpu's id as Slurm hashes "gpu" */
	gres->gres_data = data;
	gres->state_type = type;
	return gres;
}

/* Drops a node's GRES state (gres_list and its GPU state). */
static void _free_node_gres(node_record_t *node)
{
	gres_state_t *gres;

	while (node->gres_list && (gres = list_pop(node->gres_list))) {
		gres_node_state_t *gn = gres->gres_data;
		if (gn) {
			FREE_NULL_BITMAP(gn->gres_bit_alloc);
			xfree(gn);
		}
		xfree(gres->gres_name);
		xfree(gres);
	}
	FREE_NULL_LIST(node->gres_list);
}

static void _free_node(node_record_t *node)
{
	if (!node)
		return;
	_free_node_gres(node);
	xfree(node->name);
	xfree(node);
}

static void _free_gres_job_list(__typeof__(job_list) l)
{
	gres_state_t *gres;

	if (!l)
		return;
	while ((gres = list_pop(l))) {
		gres_job_state_t *gj = gres->gres_data;
		if (gj) {
			uint32_t i;
			for (i = 0; gj->gres_bit_alloc && (i < gj->node_cnt); i++)
				FREE_NULL_BITMAP(gj->gres_bit_alloc[i]);
			xfree(gj->gres_bit_alloc);
			xfree(gj);
		}
		xfree(gres->gres_name);
		xfree(gres);
	}
	list_destroy(l);
}

static void _free_job(job_record_t *job)
{
	_free_gres_job_list(job->gres_list_alloc);
	_free_gres_job_list(job->gres_list_req);
	FREE_NULL_BITMAP(job->node_bitmap);
	if (job->details) {
		FREE_NULL_BITMAP(job->details->req_node_bitmap);
		FREE_NULL_BITMAP(job->details->exc_node_bitmap);
		xfree(job->details->req_nodes);
		xfree(job->details->mc_ptr);
		xfree(job->details);
	}
	xfree(job->partition);
	xfree(job->admin_comment);
	xfree(job);
}

static void _clear(void)
{
	job_record_t *job;
	int i;

	while ((job = list_pop(job_list)))
		_free_job(job);
	xfree(by_id);
	by_id_cap = by_id_count = 0;
	for (i = 0; i < node_record_count; i++)
		_free_node(node_record_table_ptr[i]);
	xfree(node_record_table_ptr);
	node_record_count = 0;
	for (i = 0; i < part_count; i++) {
		FREE_NULL_BITMAP(parts[i]->node_bitmap);
		xfree(parts[i]->name);
		xfree(parts[i]);
	}
	xfree(parts);
	part_count = 0;
	for (i = 0; i < qos_count; i++) {
		FREE_NULL_BITMAP(qoses[i]->preempt_bitstr);
		xfree(qoses[i]->name);
		xfree(qoses[i]);
	}
	xfree(qoses);
	qos_count = 0;
}

void h_stop(void)
{
	h_plugin_fini();
	if (stock.initialized)
		stock.fini();
	stock.initialized = false;
	active = &plugin;
	_clear();
	FREE_NULL_LIST(job_list);
	xfree(pass_jobs);
	xfree(pass_prio);
	pass_cap = 0;
	xfree(slurm_conf.plugindir);
	xfree(slurm_conf.slurm_conf);
	xfree(work_dir);
	xfree(log_path);
	log_fini();
}

void h_cluster(int count, int gpus, int island)
{
	char *text = NULL;
	int i, g, h;

	_clear();
	gpus_per_node = gpus;
	island_size = (island > 0) ? island : gpus;
	node_record_table_ptr = xcalloc(count ? count : 1, sizeof(node_record_t *));
	for (i = 0; i < count; i++) {
		node_record_t *node = xmalloc(sizeof(*node));
		gres_node_state_t *gn = xmalloc(sizeof(*gn));

		node->name = xstrdup_printf("gpu%05d", i + 1);
		node->index = i;
		node->node_state = NODE_STATE_IDLE;
		gn->gres_cnt_avail = gpus;
		gn->gres_bit_alloc = bit_alloc(gpus ? gpus : 1);
		node->gres_list = list_create(NULL);
		list_append(node->gres_list, _gres_state(gn, GRES_STATE_TYPE_NODE));
		node_record_table_ptr[i] = node;
	}
	node_record_count = count;
	rehash_node();

	last_job_update = time(NULL);
	/* The node table and partitions were loaded a second ago (slurmctld's times count seconds). */
	last_node_update = last_part_update = time(NULL) - 1;
	if (!write_files)
		return;
	xstrfmtcat(text, "ClusterName=harness\nSlurmctldHost=localhost\n"
		   "NodeName=gpu[00001-%05d] Sockets=2 CoresPerSocket=8 ThreadsPerCore=1 CPUs=16 RealMemory=1000 Gres=gpu:%d State=UNKNOWN\n",
		   count, gpus);
	_write("slurm.conf", text);
	xfree(text);
	/* Links: -1 self, 1 NVLink within an island, 0 PCIe; Cores: half the GPUs per socket. */
	for (g = 0; g < gpus; g++) {
		xstrfmtcat(text, "NodeName=gpu[00001-%05d] Name=gpu File=/dev/nvidia%d Cores=%s Links=",
			   count, g, (g < gpus / 2) ? "0-7" : "8-15");
		for (h = 0; h < gpus; h++)
			xstrfmtcat(text, "%s%d", h ? "," : "",
				   (h == g) ? -1 : ((h / island_size) == (g / island_size)) ? 1 : 0);
		xstrcat(text, "\n");
	}
	_write("gres.conf", text);
	xfree(text);
}

void h_topo_aware_conf(const char *text)
{
	_write("topo_aware.conf", text);
}

int h_node_count(void)
{
	return node_record_count;
}

part_record_t *h_partition(const char *name, uint16_t tier, uint16_t preempt_mode, uint32_t grace_time)
{
	part_record_t *part = xmalloc(sizeof(*part));

	part->name = xstrdup(name);
	part->priority_tier = tier;
	part->preempt_mode = preempt_mode;
	part->grace_time = grace_time;
	part->node_bitmap = bit_alloc(node_record_count ? node_record_count : 1);
	if (node_record_count)
		bit_nset(part->node_bitmap, 0, node_record_count - 1);
	xrecalloc(parts, part_count + 1, sizeof(*parts));
	parts[part_count++] = part;
	return part;
}

slurmdb_qos_rec_t *h_qos(const char *name, uint32_t priority, uint16_t preempt_mode, const char *preempts)
{
	slurmdb_qos_rec_t *qos = xmalloc(sizeof(*qos));
	char *list, *tok, *save = NULL;
	int i;

	qos->id = qos_count + 1;
	qos->name = xstrdup(name);
	qos->priority = priority;
	qos->preempt_mode = preempt_mode;
	qos->preempt_bitstr = bit_alloc(MAX_QOS);
	if (preempts) {
		list = xstrdup(preempts);
		for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
			for (i = 0; i < qos_count; i++)
				if (!strcmp(qoses[i]->name, tok))
					bit_set(qos->preempt_bitstr, qoses[i]->id);
		xfree(list);
	}
	xrecalloc(qoses, qos_count + 1, sizeof(*qoses));
	qoses[qos_count++] = qos;
	return qos;
}

static gres_node_state_t *_node_gpus(int node)
{
	gres_state_t *gres;

	if ((node < 0) || (node >= node_record_count) || !node_record_table_ptr[node]->gres_list)
		return NULL;
	gres = list_peek(node_record_table_ptr[node]->gres_list);
	return gres ? gres->gres_data : NULL;
}

static job_record_t *_job(uint32_t id, part_record_t *part)
{
	job_record_t *job = xmalloc(sizeof(*job));

	job->magic = JOB_MAGIC;
	job->job_id = id;
	job->part_ptr = part;
	job->partition = xstrdup(part ? part->name : "");
	job->priority = 1000;
	job->details = xmalloc(sizeof(*job->details));
	job->details->min_nodes = 1;
	job->details->min_cpus = 1;
	list_append(job_list, job);
	_index_put(job);
	h_touch();
	return job;
}

/* Gives a job GPUs: node bitmap, GRES allocation, node GRES state (as a job start does). */
static void _allocate(job_record_t *job, int count, const int *nodes, const uint64_t *masks)
{
	gres_job_state_t *gj = xmalloc(sizeof(*gj));
	int i, g;

	job->job_state = JOB_RUNNING;
	job->start_time = time(NULL);
	job->node_bitmap = bit_alloc(node_record_count ? node_record_count : 1);
	for (i = 0; i < count; i++)
		bit_set(job->node_bitmap, nodes[i]);
	job->node_cnt = count;
	job->total_nodes = count;
	job->details->min_nodes = count;
	gj->node_cnt = count;
	gj->gres_bit_alloc = xcalloc(count, sizeof(bitstr_t *));
	/* Per-node bitmaps in node order (as Slurm keeps them: the job's n-th node). */
	for (i = 0; i < count; i++) {
		int n = nodes[i], k, rank = 0;
		for (k = 0; k < count; k++)
			if (nodes[k] < nodes[i])
				rank++;
		gj->gres_bit_alloc[rank] = bit_alloc(gpus_per_node ? gpus_per_node : 1);
		for (g = 0; g < gpus_per_node; g++)
			if (masks[i] & (1ull << g)) {
				gres_node_state_t *gn = _node_gpus(n);
				bit_set(gj->gres_bit_alloc[rank], g);
				if (gn && gn->gres_bit_alloc && (g < bit_size(gn->gres_bit_alloc)))
					bit_set(gn->gres_bit_alloc, g);
			}
		node_record_table_ptr[n]->node_state = NODE_STATE_ALLOCATED;
	}
	job->gres_list_alloc = list_create(NULL);
	list_append(job->gres_list_alloc, _gres_state(gj, GRES_STATE_TYPE_JOB));
	last_node_update = time(NULL); /* the nodes' state changed (allocated), as in slurmctld */
}

/* Takes a job's GPUs away (node GRES state, node bitmap, GRES allocation). */
static void _release(job_record_t *job)
{
	gres_state_t *gres;

	if (job->gres_list_alloc && (gres = list_peek(job->gres_list_alloc)) && gres->gres_data) {
		gres_job_state_t *gj = gres->gres_data;
		int node, offset = 0;
		for (node = 0; job->node_bitmap && (node < node_record_count); node++) {
			gres_node_state_t *gn;
			if (!bit_test(job->node_bitmap, node))
				continue;
			gn = _node_gpus(node);
			if (gn && gn->gres_bit_alloc && (offset < (int)gj->node_cnt) && gj->gres_bit_alloc[offset] &&
			    (bit_size(gn->gres_bit_alloc) == bit_size(gj->gres_bit_alloc[offset])))
				bit_and_not(gn->gres_bit_alloc, gj->gres_bit_alloc[offset]);
			offset++;
		}
	}
	if (job->gres_list_alloc)
		last_node_update = time(NULL);
	_free_gres_job_list(job->gres_list_alloc);
	job->gres_list_alloc = NULL;
	FREE_NULL_BITMAP(job->node_bitmap);
}

job_record_t *h_run_multi(uint32_t id, part_record_t *part, int count, const int *nodes,
			  const uint64_t *masks, long age)
{
	job_record_t *job = _job(id, part);

	_allocate(job, count, nodes, masks);
	job->start_time = time(NULL) - age;
	return job;
}

void h_requeue(job_record_t *job, int node, uint64_t gpus)
{
	_release(job);
	job->restart_cnt++;
	_allocate(job, 1, &node, &gpus);
	h_touch();
}

job_record_t *h_run(uint32_t id, part_record_t *part, int node, uint64_t gpus, long age)
{
	return h_run_multi(id, part, 1, &node, &gpus, age);
}

job_record_t *h_pending(uint32_t id, part_record_t *part, uint32_t gpus, uint32_t nodes, const char *admin_comment)
{
	job_record_t *job = _job(id, part);
	gres_job_state_t *gj = xmalloc(sizeof(*gj));

	job->job_state = JOB_PENDING;
	job->details->min_nodes = nodes;
	job->details->min_cpus = nodes;
	job->admin_comment = admin_comment ? xstrdup(admin_comment) : NULL;
	gj->gres_per_node = gpus;
	job->gres_list_req = list_create(NULL);
	list_append(job->gres_list_req, _gres_state(gj, GRES_STATE_TYPE_JOB));
	return job;
}

job_record_t *h_job(uint32_t id)
{
	return find_job_record(id);
}

static int _is(void *x, void *key)
{
	return x == key;
}

void h_complete(job_record_t *job)
{
	if (!job)
		return;
	_release(job);
	job->job_state = JOB_COMPLETE;
	job->end_time = time(NULL);
	h_touch();
}

void h_end(job_record_t *job)
{
	if (!job)
		return;
	_release(job);
	_index_remove(job->job_id);
	list_delete_all(job_list, _is, job);
	_free_job(job);
	h_touch();
}

int h_job_gpus(job_record_t *job, int max, int *nodes, uint64_t *masks)
{
	gres_state_t *gres;
	gres_job_state_t *gj;
	int node, offset = 0, count = 0;

	if (!IS_JOB_RUNNING(job) || !job->gres_list_alloc || !job->node_bitmap ||
	    !(gres = list_peek(job->gres_list_alloc)) || !(gj = gres->gres_data) || !gj->gres_bit_alloc)
		return 0;
	for (node = 0; node < node_record_count; node++) {
		uint64_t mask = 0;
		bitoff_t g;
		if (!bit_test(job->node_bitmap, node))
			continue;
		if (offset >= (int)gj->node_cnt)
			break;
		for (g = 0; gj->gres_bit_alloc[offset] && (g < bit_size(gj->gres_bit_alloc[offset])); g++)
			if (bit_test(gj->gres_bit_alloc[offset], g)) {
				if (g >= 64)
					return -1;
				mask |= 1ull << g;
			}
		offset++;
		if (!mask)
			continue;
		if (count == max)
			return -1;
		nodes[count] = node;
		masks[count++] = mask;
	}
	return count;
}

void h_rewrite_gpus(job_record_t *job, uint64_t gpus)
{
	gres_state_t *gres = list_peek(job->gres_list_alloc);
	gres_job_state_t *gj = gres->gres_data;
	gres_node_state_t *gn = _node_gpus((int)bit_ffs(job->node_bitmap));
	int g;

	bit_and_not(gn->gres_bit_alloc, gj->gres_bit_alloc[0]);
	bit_clear_all(gj->gres_bit_alloc[0]);
	for (g = 0; g < gpus_per_node; g++)
		if (gpus & (1ull << g)) {
			bit_set(gj->gres_bit_alloc[0], g);
			bit_set(gn->gres_bit_alloc, g);
		}
}

void h_signal(job_record_t *job)
{
	job->preempt_time = time(NULL);
	h_touch();
}

void h_touch(void)
{
	last_job_update = time(NULL);
}

void h_node_state(int node, uint32_t flags, bool set)
{
	if ((node < 0) || (node >= node_record_count))
		return;
	if (set)
		node_record_table_ptr[node]->node_state |= flags;
	else
		node_record_table_ptr[node]->node_state &= ~flags;
	last_node_update = time(NULL);
}

void h_node_gres(int node, int gpus)
{
	node_record_t *n;
	gres_node_state_t *gn;

	if ((node < 0) || (node >= node_record_count))
		return;
	n = node_record_table_ptr[node];
	if (gpus < 0) {
		_free_node_gres(n);
		last_node_update = time(NULL);
		return;
	}
	if ((gn = _node_gpus(node)))
		gn->gres_cnt_avail = gpus;
	last_node_update = time(NULL);
}

/* ---- one pass in Slurm's order ------------------------------------------------------------- */

typedef struct {
	job_record_t *preemptor;
	job_record_t **jobs;
	uint32_t *prio;
	int count, cap, calls;
} pass_arg_t;



static int _add_candidate(void *x, void *arg)
{
	job_record_t *job = x;
	pass_arg_t *p = arg;

	p->calls++;
	if (!active->preemptable(job, p->preemptor))
		return 0;
	if (!IS_JOB_RUNNING(job) && !IS_JOB_SUSPENDED(job))
		return 0;
	if (!job->node_bitmap || !p->preemptor->part_ptr || !p->preemptor->part_ptr->node_bitmap ||
	    !bit_overlap_any(job->node_bitmap, p->preemptor->part_ptr->node_bitmap))
		return 0;
	if (p->count == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 256;
		xrecalloc(p->jobs, p->cap, sizeof(*p->jobs));
		xrecalloc(p->prio, p->cap, sizeof(*p->prio));
	}
	p->jobs[p->count++] = job;
	return 0;
}

void h_pass(job_record_t *preemptor, h_pass_t *out)
{
	pass_arg_t p = { .preemptor = preemptor, .jobs = pass_jobs, .prio = pass_prio, .cap = pass_cap };
	int i, j;

	memset(out, 0, sizeof(*out));
	list_for_each(job_list, _add_candidate, &p);
	/* The candidates sorted by PRIO (lowest first; insertion sort keeps ties in list order). */
	for (i = 0; i < p.count; i++)
		p.prio[i] = h_prio(p.jobs[i]);
	for (i = 1; i < p.count; i++) {
		job_record_t *job = p.jobs[i];
		uint32_t prio = p.prio[i];
		for (j = i; (j > 0) && (p.prio[j - 1] > prio); j--) {
			p.jobs[j] = p.jobs[j - 1];
			p.prio[j] = p.prio[j - 1];
		}
		p.jobs[j] = job;
		p.prio[j] = prio;
	}
	out->preemptable_calls = p.calls;
	for (i = 0; i < p.count; i++) {
		uint16_t mode = h_mode(p.jobs[i]);
		if (out->count < 4096) {
			out->ids[out->count] = p.jobs[i]->job_id;
			out->modes[out->count] = mode;
			out->count++;
		}
		if ((mode != PREEMPT_MODE_OFF) && (out->removable < 4096))
			out->removable_ids[out->removable++] = p.jobs[i]->job_id;
	}
	pass_jobs = p.jobs;
	pass_prio = p.prio;
	pass_cap = p.cap;
}

static int _nothing(void *x, void *arg)
{
	(void)x;
	(*(int *)arg)++;
	return 0;
}

void h_floor_pass(void)
{
	int calls = 0;

	list_for_each(job_list, _nothing, &calls);
	__asm__ volatile("" : : "r"(calls) : "memory");
}

/* ---- the log ------------------------------------------------------------------------------- */

int h_log_count(const char *needle)
{
	return h_log_count_level(needle, false);
}

int h_log_count_level(const char *needle, bool with_debug)
{
	FILE *f;
	char line[8192];
	int count = 0;

	if (!log_path)
		return 0;
	log_flush();
	f = fopen(log_path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle) && (with_debug || !strstr(line, "] debug")))
			count++;
	fclose(f);
	return count;
}

void h_log_clear(void)
{
	if (log_path && truncate(log_path, 0))
		fprintf(stderr, "harness: cannot empty %s: %s\n", log_path, strerror(errno));
}
