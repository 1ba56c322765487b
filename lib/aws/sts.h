/* AWS STS (query protocol): who the configured credentials belong to.
 * AssumeRoleWithWebIdentity is part of the credential chain
 * (aws/credentials.h), not here. */
#ifndef VG_AWS_STS_H
#define VG_AWS_STS_H

#include "aws/client.h"
#include "status.h"

struct vg_sts_identity {
    char account[32];           /* 12 digits */
    char arn[2048];             /* "arn:aws:iam::123456789012:user/alice", ...:assumed-role/... */
    char user_id[256];          /* "AIDA...", or "AROA...:session" for a role */
};

/* GetCallerIdentity: needs no permission, so it checks that credentials work
 * (a refused signature or key gives VG_ERR_AUTH). Thread-safe; *out written
 * only on VG_OK. */
vg_status vg_sts_get_caller_identity(struct vg_aws *a, struct vg_sts_identity *out);

#endif
