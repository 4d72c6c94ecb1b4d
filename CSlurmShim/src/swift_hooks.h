/*
 * Functions implemented in Swift (SlurmBridge, with @_cdecl) that the C entry points call.
 * Internal to the shim: not part of the module's public header.
 */
#ifndef CSLURMSHIM_SWIFT_HOOKS_H
#define CSLURMSHIM_SWIFT_HOOKS_H

#include <stdint.h>
#include <slurm/slurm.h>

int TopoAwareSwift_jobSubmitInit(void);
void TopoAwareSwift_jobSubmitFini(void);
int TopoAwareSwift_jobSubmit(job_desc_msg_t *job_desc, uint32_t submit_uid, char **err_msg);
int TopoAwareSwift_jobModify(job_desc_msg_t *job_desc, uint32_t submit_uid);

#endif
