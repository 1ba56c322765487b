/* Amazon DynamoDB items, queries and tables over vg_aws_call. See dynamodb.h. */
#include "aws/dynamodb.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timeutil.h"

#define TARGET_PREFIX "DynamoDB_20120810."

/* ---- attribute values -------------------------------------------------- */

json_t *vg_ddb_s(const char *s)
{
    return s ? json_pack("{s:s}", "S", s) : NULL;
}

json_t *vg_ddb_n(int64_t v)
{
    char num[32];
    snprintf(num, sizeof(num), "%lld", (long long)v);
    return json_pack("{s:s}", "N", num);
}

json_t *vg_ddb_nf(double v)
{
    char num[40];
    if (!isfinite(v))
        return NULL;
    snprintf(num, sizeof(num), "%.17g", v);
    return json_pack("{s:s}", "N", num);
}

static vg_status set_attr(json_t *item, const char *name, json_t *value)
{
    if (!item || !name || !value) {
        json_decref(value);
        return vg_errf(VG_ERR_INVALID, "dynamodb: attribute %s: no item, name or value",
                       name ? name : "(null)");
    }
    return json_object_set_new(item, name, value) == 0 ? VG_OK : VG_ERR_NOMEM;
}

vg_status vg_ddb_set_s(json_t *item, const char *name, const char *value)
{
    return set_attr(item, name, vg_ddb_s(value));
}

vg_status vg_ddb_set_n(json_t *item, const char *name, int64_t v)
{
    return set_attr(item, name, vg_ddb_n(v));
}

vg_status vg_ddb_set_nf(json_t *item, const char *name, double v)
{
    return set_attr(item, name, vg_ddb_nf(v));
}

const char *vg_ddb_get_s(const json_t *item, const char *name)
{
    return json_string_value(json_object_get(json_object_get(item, name), "S"));
}

static vg_status get_num(const json_t *item, const char *name, const char **num)
{
    const json_t *attr = json_object_get(item, name);
    if (!attr)
        return vg_errf(VG_ERR_NOT_FOUND, "dynamodb: no attribute %s", name);
    if (!(*num = json_string_value(json_object_get(attr, "N"))) || !**num)
        return vg_errf(VG_ERR_DECODE, "dynamodb: attribute %s is not a number", name);
    return VG_OK;
}

vg_status vg_ddb_get_n(const json_t *item, const char *name, int64_t *out)
{
    const char *num = NULL;
    char *end = NULL;
    vg_status st = get_num(item, name, &num);
    if (st != VG_OK)
        return st;
    errno = 0;
    long long v = strtoll(num, &end, 10);
    if (errno || *end)
        return vg_errf(VG_ERR_DECODE, "dynamodb: attribute %s = %s is not a 64-bit integer",
                       name, num);
    *out = v;
    return VG_OK;
}

vg_status vg_ddb_get_nf(const json_t *item, const char *name, double *out)
{
    const char *num = NULL;
    char *end = NULL;
    vg_status st = get_num(item, name, &num);
    if (st != VG_OK)
        return st;
    errno = 0;
    double v = strtod(num, &end);
    if (errno || *end)
        return vg_errf(VG_ERR_DECODE, "dynamodb: attribute %s = %s is not a number", name, num);
    *out = v;
    return VG_OK;
}

/* ---- the call ------------------------------------------------------------ */

static vg_status check_table(const char *t)
{
    size_t len = t ? strlen(t) : 0;
    if (len < 3 || len > 255)
        return vg_errf(VG_ERR_INVALID, "dynamodb: table name must be 3..255 characters");
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)t[i]) && !strchr("_.-", t[i]))
            return vg_errf(VG_ERR_INVALID, "dynamodb: table %s: only A-Z a-z 0-9 _ . -", t);
    return VG_OK;
}

/* POST one operation; *out (may be NULL) gets the decoded answer. Takes
 * ownership of body. */
static vg_status ddb_call(struct vg_aws *aws, const char *op, json_t *body, json_t **out)
{
    char api[64], target[96];
    snprintf(api, sizeof(api), "dynamodb.%s", op);
    snprintf(target, sizeof(target), TARGET_PREFIX "%s", op);
    struct vg_aws_request r = {
        .api = api, .service = "dynamodb", .endpoint_id = "DYNAMODB", .method = "POST",
        .path = "/", .content_type = "application/x-amz-json-1.0", .target = target,
    };
    return vg_aws_call_json(aws, &r, body, JSON_COMPACT, out);
}

/* ---- items --------------------------------------------------------------- */

vg_status vg_ddb_put_item(struct vg_aws *aws, const char *table, const json_t *item)
{
    vg_status st = check_table(table);
    if (st != VG_OK)
        return st;
    if (!json_is_object(item))
        return vg_errf(VG_ERR_INVALID, "dynamodb.PutItem: item is not an object");
    return ddb_call(aws, "PutItem",
                    json_pack("{s:s, s:O}", "TableName", table, "Item", (json_t *)item), NULL);
}

vg_status vg_ddb_get_item(struct vg_aws *aws, const char *table, const json_t *key,
                          int consistent, json_t **item)
{
    json_t *answer = NULL;
    vg_status st = check_table(table);
    if (st != VG_OK)
        return st;
    if (!json_is_object(key))
        return vg_errf(VG_ERR_INVALID, "dynamodb.GetItem: key is not an object");
    json_t *body = json_pack("{s:s, s:O, s:b}", "TableName", table, "Key", (json_t *)key,
                             "ConsistentRead", consistent);
    if ((st = ddb_call(aws, "GetItem", body, &answer)) != VG_OK)
        return st;
    json_t *found = json_object_get(answer, "Item");
    if (!json_is_object(found)) {
        json_decref(answer);
        return vg_errf(VG_ERR_NOT_FOUND, "dynamodb.GetItem %s: no such item", table);
    }
    *item = json_incref(found);
    json_decref(answer);
    return VG_OK;
}

vg_status vg_ddb_delete_item(struct vg_aws *aws, const char *table, const json_t *key)
{
    json_t *answer = NULL;
    vg_status st = check_table(table);
    if (st != VG_OK)
        return st;
    if (!json_is_object(key))
        return vg_errf(VG_ERR_INVALID, "dynamodb.DeleteItem: key is not an object");
    json_t *body = json_pack("{s:s, s:O}", "TableName", table, "Key", (json_t *)key);
    st = ddb_call(aws, "DeleteItem", body, &answer);
    json_decref(answer);
    return st;
}

/* ---- query --------------------------------------------------------------- */

static const char *key_condition(const struct vg_ddb_query *q)
{
    if (q->since && q->until)
        return "#pk = :pk AND #sk BETWEEN :since AND :until";
    if (q->since)
        return "#pk = :pk AND #sk >= :since";
    return q->until ? "#pk = :pk AND #sk <= :until" : "#pk = :pk";
}

static json_t *query_body(const struct vg_ddb_query *q)
{
    json_t *b = json_pack("{s:s, s:s, s:{s:s}, s:{s:O}, s:b, s:b}", "TableName", q->table,
                          "KeyConditionExpression", key_condition(q),
                          "ExpressionAttributeNames", "#pk", q->pk_name,
                          "ExpressionAttributeValues", ":pk", (json_t *)q->pk,
                          "ScanIndexForward", q->oldest_first, "ConsistentRead", q->consistent);
    int bad = !b;
    if (b && (q->since || q->until))
        bad |= json_object_set_new(json_object_get(b, "ExpressionAttributeNames"), "#sk",
                                   json_string(q->sk_name));
    if (b && q->since)
        bad |= json_object_set(json_object_get(b, "ExpressionAttributeValues"), ":since",
                               (json_t *)q->since);
    if (b && q->until)
        bad |= json_object_set(json_object_get(b, "ExpressionAttributeValues"), ":until",
                               (json_t *)q->until);
    if (b && q->index)
        bad |= json_object_set_new(b, "IndexName", json_string(q->index));
    if (b && q->limit > 0)
        bad |= json_object_set_new(b, "Limit", json_integer(q->limit));
    if (b && q->start_key)
        bad |= json_object_set(b, "ExclusiveStartKey", (json_t *)q->start_key);
    if (bad) {
        json_decref(b);
        return NULL;
    }
    return b;
}

vg_status vg_ddb_query(struct vg_aws *aws, const struct vg_ddb_query *q, json_t **items,
                       json_t **last_key)
{
    json_t *answer = NULL;
    vg_status st = check_table(q->table);
    if (st != VG_OK)
        return st;
    if (!q->pk_name || !json_is_object(q->pk) || ((q->since || q->until) && !q->sk_name) ||
        q->limit < 0 || (q->since && !json_is_object(q->since)) ||
        (q->until && !json_is_object(q->until)))
        return vg_errf(VG_ERR_INVALID, "dynamodb.Query %s: needs pk_name and pk, sk_name with "
                       "since or until, limit >= 0", q->table);
    if ((st = ddb_call(aws, "Query", query_body(q), &answer)) != VG_OK)
        return st;
    json_t *found = json_object_get(answer, "Items");
    if (!json_is_array(found)) {
        json_decref(answer);
        return vg_errf(VG_ERR_DECODE, "dynamodb.Query %s: answer has no Items", q->table);
    }
    *items = json_incref(found);
    if (last_key) {
        json_t *lk = json_object_get(answer, "LastEvaluatedKey");
        *last_key = json_is_object(lk) ? json_incref(lk) : NULL;
    }
    json_decref(answer);
    return VG_OK;
}

/* ---- tables -------------------------------------------------------------- */

static int valid_type(const char *t)
{
    return t && (!strcmp(t, "S") || !strcmp(t, "N") || !strcmp(t, "B"));
}

static json_t *create_body(const char *table, const char *hash_name, const char *hash_type,
                           const char *range_name, const char *range_type)
{
    json_t *b = json_pack("{s:s, s:s, s:[{s:s, s:s}], s:[{s:s, s:s}]}", "TableName", table,
                          "BillingMode", "PAY_PER_REQUEST", "AttributeDefinitions",
                          "AttributeName", hash_name, "AttributeType", hash_type, "KeySchema",
                          "AttributeName", hash_name, "KeyType", "HASH");
    if (b && range_name &&
        (json_array_append_new(json_object_get(b, "AttributeDefinitions"),
                               json_pack("{s:s, s:s}", "AttributeName", range_name,
                                         "AttributeType", range_type)) ||
         json_array_append_new(json_object_get(b, "KeySchema"),
                               json_pack("{s:s, s:s}", "AttributeName", range_name, "KeyType",
                                         "RANGE")))) {
        json_decref(b);
        return NULL;
    }
    return b;
}

vg_status vg_ddb_table_status(struct vg_aws *aws, const char *table, char *out, size_t cap)
{
    json_t *answer = NULL;
    vg_status st = check_table(table);
    if (st != VG_OK)
        return st;
    if ((st = ddb_call(aws, "DescribeTable", json_pack("{s:s}", "TableName", table),
                       &answer)) != VG_OK)
        return st;
    const char *status =
        json_string_value(json_object_get(json_object_get(answer, "Table"), "TableStatus"));
    if (status)
        snprintf(out, cap, "%s", status);
    else
        st = vg_errf(VG_ERR_DECODE, "dynamodb.DescribeTable %s: no TableStatus", table);
    json_decref(answer);
    return st;
}

/* Poll DescribeTable (100 ms, doubling up to 2 s) until ACTIVE. */
static vg_status wait_active(struct vg_aws *aws, const char *table, int wait_ms)
{
    int64_t deadline = vg_mono_us() + (int64_t)wait_ms * 1000;
    int64_t delay_us = 100000;
    char status[32] = "";
    for (;;) {
        vg_status st = vg_ddb_table_status(aws, table, status, sizeof(status));
        /* A new table can be briefly invisible to DescribeTable. */
        if (st != VG_OK && st != VG_ERR_NOT_FOUND)
            return st;
        if (st == VG_OK && !strcmp(status, "ACTIVE"))
            return VG_OK;
        if (vg_mono_us() + delay_us > deadline)
            return vg_errf(VG_ERR_TIMEOUT, "dynamodb: table %s not ACTIVE after %d ms (%s)",
                           table, wait_ms, status[0] ? status : "not found");
        vg_sleep_us(delay_us);
        delay_us = delay_us * 2 > 2000000 ? 2000000 : delay_us * 2;
    }
}

vg_status vg_ddb_create_table(struct vg_aws *aws, const char *table, const char *hash_name,
                              const char *hash_type, const char *range_name,
                              const char *range_type, int wait_ms)
{
    vg_status st = check_table(table);
    if (st != VG_OK)
        return st;
    if (!hash_name || !*hash_name || !valid_type(hash_type) ||
        (range_name && (!*range_name || !valid_type(range_type))))
        return vg_errf(VG_ERR_INVALID, "dynamodb.CreateTable %s: key names need a type of "
                       "S, N or B", table);
    st = ddb_call(aws, "CreateTable",
                  create_body(table, hash_name, hash_type, range_name, range_type), NULL);
    if (st != VG_OK && strcmp(vg_aws_last_error_code(), "ResourceInUseException") != 0)
        return st;
    return wait_active(aws, table, wait_ms > 0 ? wait_ms : 120000);
}
