/* jsoncfg.h — typed, schema-checked JSON configuration (cJSON underneath).
 *
 * A section of a run config maps onto a C struct through a table of fields (key, type, offset).
 * Reading fills the struct (pre-set to defaults by the caller) and rejects unknown keys and wrong
 * types with a message that names the full key ("config: model.heads must be an integer, got
 * a string"). Writing emits the resolved values, so every run and checkpoint stores the complete
 * config that produced it. `--set a.b=value` overrides go through cfg_set_path on the tree
 * before the sections are read. Lives at the bottom layer because every layer reads its own
 * section. */
#ifndef TERN_JSONCFG_H
#define TERN_JSONCFG_H

#include <stddef.h>

#include "kernels/util.h"

struct cJSON;

typedef enum CfgType {
    CFG_INT,      /* long */
    CFG_SIZE,     /* size_t, non-negative */
    CFG_FLOAT,    /* double */
    CFG_BOOL,     /* int 0/1 */
    CFG_STRING,   /* char[CFG_STR_MAX] */
    CFG_SECTION,  /* nested object handled by the caller: only checked to be an object */
    CFG_ARRAY,    /* array handled by the caller: only checked to be an array */
} CfgType;

#define CFG_STR_MAX 512

typedef struct CfgField {
    const char *key;
    CfgType type;
    size_t offset;
    const char *help;
    /* numeric fields: the accepted closed range [lo, hi] when has_range; every number must be
     * finite whatever its range */
    int has_range;
    double lo, hi;
} CfgField;

#define CFG_F(type_, T, member, help_) {#member, type_, offsetof(T, member), help_, 0, 0.0, 0.0}
/* A nested section or array, read by the caller (CFG_SECTION / CFG_ARRAY). */
#define CFG_CHILD(key_, type_, help_) {key_, type_, 0, help_, 0, 0.0, 0.0}
/* A numeric field with its accepted range (inclusive). */
#define CFG_R(type_, T, member, lo_, hi_, help_) {#member, type_, offsetof(T, member), help_, 1, (lo_), (hi_)}

/* Reads `obj` (may be NULL: nothing to read) into `out`. `where` prefixes key names in errors.
 * Unknown and duplicate keys, wrong types, non-finite numbers and values outside a field's
 * range are errors naming the key. */
int cfg_read(const struct cJSON *obj, const char *where, const CfgField *f, size_t n, void *out, Err *err);
/* Adds every field of `in` to `obj`. */
void cfg_write(struct cJSON *obj, const CfgField *f, size_t n, const void *in);

/* Parses a JSON file (with a clear message on a syntax error: line and column). */
struct cJSON *cfg_load_file(const char *path, Err *err);
/* Applies "a.b.c=value": value is parsed as JSON when it is valid JSON, else taken as a string.
 * Missing intermediate objects are created. */
int cfg_set_path(struct cJSON *root, const char *assignment, Err *err);
/* Child object `key` of obj, created when missing. */
struct cJSON *cfg_section(struct cJSON *obj, const char *key);
/* Writes JSON text to `path` atomically (temp + rename). */
int cfg_save_file(const struct cJSON *root, const char *path, Err *err);

#endif
