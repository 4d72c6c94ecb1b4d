/*
 * The flat snapshot preempt/topo_aware (C, built against slurmctld's source tree) hands to the
 * Swift planner in job_submit_topo_aware.so, and the decision it gets back. Plain C types only:
 * no Slurm internals cross this line, so the Swift side never sees job_record_t.
 *
 * The C plugin finds the Swift side with dlopen() of job_submit_topo_aware.so from PluginDir
 * (the handle slurmctld already holds when JobSubmitPlugins=topo_aware) and dlsym() of the
 * TopoAwareSwift_preempt* functions below; it checks TOPO_PREEMPT_ABI_VERSION first.
 */
#ifndef TOPO_PREEMPT_ABI_H
#define TOPO_PREEMPT_ABI_H

#include <stdint.h>

#define TOPO_PREEMPT_ABI_VERSION 5u
/* At most this many victims in one decision. */
#define TOPO_PREEMPT_MAX_VICTIMS 256u
/* At most this many target nodes reported with a decision. */
#define TOPO_PREEMPT_MAX_TARGETS 16u

typedef struct {
    const char *name;
    uint32_t available;   /* 0: down, drained, failing, not responding, powered down */
    uint32_t gpu_count;   /* GPUs in the node's GRES state (0: none) */
    uint64_t allocated;   /* GPUs allocated on the node (running and completing jobs) */
} topo_preempt_node_t;

typedef struct {
    uint32_t node;        /* index into nodes */
    uint32_t reserved;
    uint64_t gpus;        /* GPU bitmap on that node */
} topo_preempt_alloc_t;

typedef struct {
    uint32_t job_id;
    uint32_t base_prio;   /* base-policy preemption priority (PriorityTier or QOS priority) */
    uint32_t eligible;    /* the base policy lets the preemptor preempt it, mode requeue/cancel */
    uint32_t alloc_count;
    int64_t start_time;
    uint32_t alloc_first; /* index into allocs */
    uint32_t flags;       /* TOPO_PREEMPT_JOB_* (0 in plugins built before the flag existed) */
} topo_preempt_job_t;

/* topo_preempt_job_t.flags: Slurm already signalled the job for preemption (preempt_time set,
 * e.g. in its GraceTime); its GPUs are on their way to being freed. */
#define TOPO_PREEMPT_JOB_DRAINING 1u

typedef struct {
    uint32_t job_id;
    uint32_t base_prio;
    uint32_t job_prio;        /* Slurm's job priority */
    uint32_t gpus_per_node;   /* 0: none the shim could read */
    uint32_t node_count;
    uint32_t per_socket;      /* --gpus-per-socket: Slurm counts free GPUs per socket */
    uint32_t cpus_per_node;
    uint32_t candidate_count; /* entries in candidate_nodes; UINT32_MAX: every node */
    const uint32_t *candidate_nodes;
    const char *admin_comment;
    const char *partition;    /* comma-separated as Slurm keeps it */
    const char *qos;
    /* ABI 5: nodes named by -w when fewer than node_count (the others are chosen among the
     * candidates; named nodes as many as node_count are the candidates themselves). */
    uint32_t required_count;
    const uint32_t *required_nodes;
    uint32_t segment_size;    /* --segment (topology/block, Slurm 24.05+); 0: none */
    uint32_t segment_flags;   /* TOPO_PREEMPT_SEGMENTS_* (Slurm 25.11+) */
} topo_preempt_request_t;

/* topo_preempt_request_t.segment_flags: --consolidate-segments, --spread-segments. */
#define TOPO_PREEMPT_SEGMENTS_CONSOLIDATE 1u
#define TOPO_PREEMPT_SEGMENTS_SPREAD 2u

typedef struct {
    uint32_t abi_version;
    uint32_t slurm_version;   /* SLURM_VERSION_NUMBER of the running slurmctld (ABI 2) */
    uint32_t exempt_seconds;  /* PreemptExemptTime */
    int64_t now;
    uint32_t node_count;
    uint32_t job_count;
    uint32_t alloc_count;
    uint32_t owner_count;
    const topo_preempt_node_t *nodes;
    const topo_preempt_job_t *jobs;
    const topo_preempt_alloc_t *allocs;
    const uint32_t *pending_owners; /* owners of kept plans still pending */
    topo_preempt_request_t preemptor;
    /* ABI 4: TOPO_PREEMPT_SNAPSHOT_SLOTS, or 0 (a snapshot as above, of the given nodes). */
    uint32_t flags;
    /* With TOPO_PREEMPT_SNAPSHOT_SLOTS: nodes are slurmctld's whole node table; jobs are the
     * plugin's job index by slot (alloc_count 0: a job without GPUs). The planner keeps what it
     * derived between such snapshots; only the slots and nodes listed as dirty (changed since
     * the previous one of this epoch, sequence one less) are read again: only their entries in
     * jobs[] (and allocations) and nodes[] (names) are valid. TOPO_PREEMPT_DIRTY_ALL: every slot
     * or node is given. */
    uint64_t epoch;            /* the index's identity: new after each rebuild of it */
    uint64_t sequence;         /* slot snapshots given in this epoch, this one included */
    uint32_t dirty_job_count;
    uint32_t dirty_node_count;
    const uint32_t *dirty_jobs;
    const uint32_t *dirty_nodes;
    /* With TOPO_PREEMPT_SNAPSHOT_SLOTS, per slot (job_count entries): whether the base policy
     * lets this preemptor take the job's GPUs (topo_preempt_job_t.eligible) and its base_prio;
     * in jobs[] only the dirty slots are filled. */
    const uint8_t *slot_eligible;
    const uint32_t *slot_base_prio;
} topo_preempt_snapshot_t;

#define TOPO_PREEMPT_SNAPSHOT_SLOTS 1u
#define TOPO_PREEMPT_DIRTY_ALL 0xffffffffu

enum {
    TOPO_PREEMPT_BASE_POLICY = 0,  /* answer as the base policy */
    TOPO_PREEMPT_ONLY_VICTIMS = 1, /* only the listed jobs are preemptable */
    TOPO_PREEMPT_VICTIMS_FIRST = 2,/* base policy, listed jobs first */
    TOPO_PREEMPT_NO_VICTIMS = 3,   /* preempt nothing for this job now */
};

typedef struct {
    int32_t action;
    uint32_t planned;      /* 1 when a new plan was made (and logged at info) */
    uint32_t flags;        /* TOPO_PREEMPT_DECISION_* (ABI 3) */
    uint32_t victim_count;
    uint32_t victims[TOPO_PREEMPT_MAX_VICTIMS];
    /* Where the plan puts the job: indices into the snapshot's nodes (ABI 3; 0 targets: no
     * plan, or more than TOPO_PREEMPT_MAX_TARGETS nodes). */
    uint32_t target_count;
    uint32_t target_nodes[TOPO_PREEMPT_MAX_TARGETS];
} topo_preempt_decision_t;

/* topo_preempt_decision_t.flags: the snapshot contradicted itself (jobs' GPUs against the
 * nodes'); the answer is the base policy and the plugin reads its job index again. */
#define TOPO_PREEMPT_DECISION_INCONSISTENT 1u
/* A slot snapshot whose dirty lists do not follow what the planner kept (a missed snapshot, a
 * planner reset): nothing was decided; ask again with every slot and node (TOPO_PREEMPT_DIRTY_ALL). */
#define TOPO_PREEMPT_DECISION_RESYNC 2u

enum {
    TOPO_PREEMPT_BASE_PARTITION_PRIO = 0,
    TOPO_PREEMPT_BASE_QOS = 1,
};

typedef struct {
    uint32_t abi_version;
    int32_t base_policy;
    uint32_t stats_interval;   /* StatsInterval= seconds (0: no summary lines) (ABI 3) */
} topo_preempt_settings_t;

/* What preempt/topo_aware did so far (its own symbol, topo_aware_preempt_stats(), for the
 * plugin harness and metrics; not part of Slurm's API). */
enum {
    TOPO_PREEMPT_REBUILD_START = 0,
    TOPO_PREEMPT_REBUILD_RECONFIGURE,
    TOPO_PREEMPT_REBUILD_PERIOD,
    TOPO_PREEMPT_REBUILD_DISAGREEMENT,
    TOPO_PREEMPT_REBUILD_OVERFLOW,
    TOPO_PREEMPT_REBUILD_REASONS
};

typedef struct {
    uint64_t walks;             /* walks over job_list for preemptors the planner handles */
    uint64_t decisions;         /* decisions made (one per walk that reached PRIO/MODE) */
    uint64_t kept;              /* answered from a kept decision: nothing had changed */
    uint64_t partial;           /* planned on the changed nodes only */
    uint64_t full;              /* planned on the whole cluster */
    uint64_t disagreements;     /* victims or snapshots at odds with the live records */
    uint64_t rebuilds[TOPO_PREEMPT_REBUILD_REASONS];
    uint64_t decide_ns;         /* time spent deciding, all decisions */
    uint64_t last_decide_ns;
    uint32_t indexed_jobs;      /* running jobs in the index */
    uint32_t indexed_gpu_jobs;  /* of which hold GPUs */
} topo_preempt_stats_t;

typedef void (*topo_preempt_stats_fn)(topo_preempt_stats_t *stats);

/* Implemented in Swift (SlurmBridge). All return 0 on success. */
int TopoAwareSwift_preemptSettings(topo_preempt_settings_t *settings);
/* Owners of kept plans: writes up to max ids, returns how many exist (may exceed max). */
uint32_t TopoAwareSwift_preemptPlanOwners(uint32_t *ids, uint32_t max);
/* 1 when the pending job is a preemptor class the planner handles, else 0. */
int TopoAwareSwift_preemptIsPreemptor(const char *admin_comment, const char *partition, const char *qos);
int TopoAwareSwift_preemptDecide(const topo_preempt_snapshot_t *snapshot, topo_preempt_decision_t *decision);
/* Forgets kept plans and the loaded configuration (plugin fini). */
void TopoAwareSwift_preemptReset(void);

/* A job Slurm is preempting now (its grace time is asked for the first time, just before Slurm
 * signals, requeues or cancels it), for the decision log and the jobs' provenance. Optional:
 * found with dlsym(); without it nothing is recorded. */
typedef struct {
    uint32_t victim_id;
    uint32_t preemptor_id;
    int64_t time;
    int64_t start_time;       /* the victim's start (its run's work lost is counted from it) */
    uint32_t alloc_count;     /* entries in node_names and gpus (the victim's GPU nodes) */
    uint32_t reserved;
    const char *mode;         /* Slurm's PreemptMode for the victim, as Slurm writes it (REQUEUE) */
    const char *const *node_names;
    const uint64_t *gpus;     /* GPU bitmap per node */
    const char *victim_system_comment;   /* the jobs' SystemComment and AdminComment as they are */
    const char *victim_admin_comment;
    const char *preemptor_system_comment;
    const char *preemptor_admin_comment;
} topo_preempt_victim_t;

#define TOPO_PREEMPT_COMMENT_MAX 1024u

/* The jobs' new comments, NUL-terminated; an empty one leaves the job's field as it is. */
typedef struct {
    char victim_system[TOPO_PREEMPT_COMMENT_MAX];
    char victim_admin[TOPO_PREEMPT_COMMENT_MAX];
    char preemptor_system[TOPO_PREEMPT_COMMENT_MAX];
    char preemptor_admin[TOPO_PREEMPT_COMMENT_MAX];
} topo_preempt_provenance_t;

/* The plugin's counters for the decision log (a `stats` record): every StatsInterval and at
 * fini. Deciding times as a cumulative histogram: buckets[i] decisions took less than
 * 2^(4+i) microseconds (16 us ... 8.4 s). Optional, found with dlsym(). */
#define TOPO_PREEMPT_STATS_BUCKETS 20u
typedef struct {
    topo_preempt_stats_t stats;
    uint64_t p50_us, p99_us, max_us;
    uint64_t buckets[TOPO_PREEMPT_STATS_BUCKETS];
} topo_preempt_stats_record_t;

void TopoAwareSwift_preemptRecordStats(const topo_preempt_stats_record_t *record);

/* A fallback the C side decides (index overflow, a victim at odds with its live record): a
 * `fallback` record with a reason code and the log line's text. Optional, found with dlsym(). */
void TopoAwareSwift_preemptRecordFallback(uint32_t job_id, const char *reason, const char *message);

/* Records the preemption and writes the provenance: SystemComment (scontrol) gets a sentence,
 * the AdminComment tag (scontrol; stored by slurmdbd with the run, so sacct keeps it) its keys. */
int TopoAwareSwift_preemptVictim(const topo_preempt_victim_t *victim, topo_preempt_provenance_t *out);

#endif
