/* Amazon DynamoDB (JSON 1.0) on top of vg_aws_call. Items are jansson
 * objects in DynamoDB's attribute-value form:
 *   {"camera": {"S": "porch"}, "ts": {"N": "1718000000123"}}
 * Functions that return a json_t* hand over a new reference (json_decref
 * it); items passed in are borrowed. */
#ifndef VG_AWS_DYNAMODB_H
#define VG_AWS_DYNAMODB_H

#include <stdint.h>

#include <jansson.h>

#include "aws/client.h"
#include "status.h"

/* ---- attribute values -------------------------------------------------- */

/* {"S": s} and {"N": "<v>"}; NULL when out of memory. */
json_t *vg_ddb_s(const char *s);
json_t *vg_ddb_n(int64_t v);
json_t *vg_ddb_nf(double v);

/* item[name] = {"S": value} / {"N": ...}. */
vg_status vg_ddb_set_s(json_t *item, const char *name, const char *value);
vg_status vg_ddb_set_n(json_t *item, const char *name, int64_t v);
vg_status vg_ddb_set_nf(json_t *item, const char *name, double v);

/* The string of item[name].S, borrowed from item; NULL when absent or not S. */
const char *vg_ddb_get_s(const json_t *item, const char *name);
/* item[name].N as a number: VG_ERR_NOT_FOUND when absent, VG_ERR_DECODE
 * when not an N (or not an integer, for get_n). */
vg_status vg_ddb_get_n(const json_t *item, const char *name, int64_t *out);
vg_status vg_ddb_get_nf(const json_t *item, const char *name, double *out);

/* ---- calls --------------------------------------------------------------- */

/* PutItem (replaces an item with the same key). */
vg_status vg_ddb_put_item(struct vg_aws *aws, const char *table, const json_t *item);

/* GetItem by its full key ({"FaceId": {"S": "..."}}); consistent: strongly
 * consistent read. *item gets the item; VG_ERR_NOT_FOUND when there is none
 * (or the table is missing: see vg_aws_last_error_code()). */
vg_status vg_ddb_get_item(struct vg_aws *aws, const char *table, const json_t *key,
                          int consistent, json_t **item);

/* DeleteItem by its full key; deleting an item that is not there is no error. */
vg_status vg_ddb_delete_item(struct vg_aws *aws, const char *table, const json_t *key);

/* Items of one partition key, newest (largest sort key) first:
 *   KeyConditionExpression "#pk = :pk AND #sk >= :since", ScanIndexForward false;
 *   with until as well "#sk BETWEEN :since AND :until", with until alone
 *   "#sk <= :until". */
struct vg_ddb_query {
    const char *table;
    const char *index;          /* a secondary index, NULL for the table */
    const char *pk_name;        /* "camera" */
    const json_t *pk;           /* its value: vg_ddb_s("porch") */
    const char *sk_name;        /* "ts"; NULL with since NULL: the whole partition */
    const json_t *since;        /* lowest sort key returned: vg_ddb_n(t); NULL: no bound */
    int limit;                  /* at most this many items evaluated; 0: up to DynamoDB's
                                 * 1 MB page */
    int oldest_first;           /* 1: ascending instead */
    int consistent;
    const json_t *start_key;    /* a previous page's *last_key, or NULL */
    const json_t *until;        /* highest sort key returned (needs sk_name); NULL: no bound */
};

/* *items gets a JSON array of items; *last_key (may be NULL) the
 * LastEvaluatedKey to pass as start_key for the next page, or NULL when
 * this page was the last. */
vg_status vg_ddb_query(struct vg_aws *aws, const struct vg_ddb_query *q, json_t **items,
                       json_t **last_key);

/* CreateTable, on-demand (PAY_PER_REQUEST), keyed by hash_name (type "S",
 * "N" or "B") and, when range_name is not NULL, range_name/range_type. A
 * table that already exists is VG_OK. Then waits, polling DescribeTable,
 * until the table is ACTIVE: VG_ERR_TIMEOUT after wait_ms (0: 120000). */
vg_status vg_ddb_create_table(struct vg_aws *aws, const char *table, const char *hash_name,
                              const char *hash_type, const char *range_name,
                              const char *range_type, int wait_ms);

/* DescribeTable's TableStatus ("ACTIVE", "CREATING", ...) into out. */
vg_status vg_ddb_table_status(struct vg_aws *aws, const char *table, char *out, size_t cap);

#endif
