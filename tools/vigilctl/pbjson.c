#include "pbjson.h"

#include <openssl/evp.h>

#include <string.h>

#include "vigil/v1/vigil.pb-c.h"

static json_t *scalar_json(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return json_integer((json_int_t)*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return json_integer((json_int_t)*(const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT:
        return json_real(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return json_real(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *v =
            protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p);
        return v ? json_string(v->name) : json_integer(*(const int *)p);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return json_string(s ? s : "");
    }
    case PROTOBUF_C_TYPE_BYTES:
        return json_integer((json_int_t)((const ProtobufCBinaryData *)p)->len);
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        return sub ? ctl_pb_to_json(sub) : json_null();
    }
    }
    return json_null();
}

static size_t elem_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    default:
        return 4;
    }
}

/* proto3 maps are repeated entry messages with fields key and value. */
static int is_map_entry(const ProtobufCFieldDescriptor *f)
{
    if (f->type != PROTOBUF_C_TYPE_MESSAGE)
        return 0;
    const ProtobufCMessageDescriptor *d = f->descriptor;
    return d->n_fields == 2 && !strcmp(d->fields[0].name, "key") &&
           !strcmp(d->fields[1].name, "value");
}

static json_t *repeated_json(const ProtobufCFieldDescriptor *f, const char *base)
{
    size_t n = *(const size_t *)(base + f->quantifier_offset);
    const char *arr = *(char *const *)(base + f->offset);
    if (is_map_entry(f)) {
        json_t *obj = json_object();
        for (size_t i = 0; i < n; i++) {
            const ProtobufCMessage *e = ((ProtobufCMessage *const *)arr)[i];
            const ProtobufCMessageDescriptor *d = e->descriptor;
            const char *k = *(char *const *)((const char *)e + d->fields[0].offset);
            json_object_set_new(obj, k ? k : "",
                                scalar_json(&d->fields[1], (const char *)e + d->fields[1].offset));
        }
        return obj;
    }
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, scalar_json(f, arr + i * elem_size(f)));
    return a;
}

static int with_bytes;

void ctl_pb_json_with_bytes(int on) { with_bytes = on; }

/* "<name>_base64" beside "<name>_size", for tests and tools that need the JPEG. */
static void add_base64(json_t *obj, const char *name, const ProtobufCBinaryData *b)
{
    char key[96];
    char *text = malloc(4 * ((b->len + 2) / 3) + 1);
    if (!text)
        return;
    EVP_EncodeBlock((unsigned char *)text, b->data, (int)b->len);
    snprintf(key, sizeof(key), "%s_base64", name);
    json_object_set_new(obj, key, json_string(text));
    free(text);
}

json_t *ctl_pb_to_json(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    json_t *obj = json_object();
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        json_t *v;
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            v = repeated_json(f, base);
        else
            v = scalar_json(f, base + f->offset);
        if (f->type == PROTOBUF_C_TYPE_BYTES && f->label != PROTOBUF_C_LABEL_REPEATED) {
            char key[96];
            snprintf(key, sizeof(key), "%s_size", f->name);
            json_object_set_new(obj, key, v);
            if (with_bytes)
                add_base64(obj, f->name, (const ProtobufCBinaryData *)(base + f->offset));
        } else {
            json_object_set_new(obj, f->name, v);
        }
    }
    return obj;
}

const ProtobufCMessageDescriptor *ctl_descriptor_for_subject(const char *subject)
{
    static const struct {
        const char *kind;
        const ProtobufCMessageDescriptor *d;
    } kinds[] = {
        {"frames", &vigil__v1__frame__descriptor},
        {"detections", &vigil__v1__detection__descriptor},
        {"faces", &vigil__v1__face_crop__descriptor},
        {"identities", &vigil__v1__face_match__descriptor},
        {"alerts", &vigil__v1__alert__descriptor},
        {"deliveries", &vigil__v1__delivery__descriptor},
        {"incidents", &vigil__v1__incident__descriptor},
        {"status", &vigil__v1__camera_status__descriptor},
    };
    const char *dot = strchr(subject, '.');
    if (!dot)
        return NULL;
    const char *kind = dot + 1;
    size_t len = strcspn(kind, ".");
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strlen(kinds[i].kind) == len && !strncmp(kinds[i].kind, kind, len))
            return kinds[i].d;
    return NULL;
}
