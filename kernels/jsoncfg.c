#include "kernels/jsoncfg.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *json_type_name(const cJSON *v) {
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "invalid";
}

int cfg_read(const cJSON *obj, const char *where, const CfgField *f, size_t n, void *out, Err *err) {
    if (!obj) return 0;
    if (!cJSON_IsObject(obj)) return err_set(err, "config: %s must be an object, got %s", where, json_type_name(obj));
    for (const cJSON *it = obj->child; it; it = it->next) {
        const CfgField *fd = NULL;
        for (size_t i = 0; i < n; i++)
            if (!strcmp(f[i].key, it->string)) fd = &f[i];
        if (!fd) {
            char known[1024] = "";
            size_t used = 0;
            for (size_t i = 0; i < n && used + 40 < sizeof known; i++)
                used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", f[i].key);
            return err_set(err, "config: unknown key %s.%s (known: %s)", where, it->string, known);
        }
        for (const cJSON *prev = obj->child; prev != it; prev = prev->next)
            if (!strcmp(prev->string, it->string))
                return err_set(err, "config: duplicate key %s.%s", where, it->string);
        if ((fd->type == CFG_INT || fd->type == CFG_SIZE || fd->type == CFG_FLOAT) && cJSON_IsNumber(it)) {
            double v = it->valuedouble;
            if (!isfinite(v)) return err_set(err, "config: %s.%s must be finite", where, it->string);
            if (fd->has_range && (v < fd->lo || v > fd->hi))
                return err_set(err, "config: %s.%s must be in [%.10g, %.10g], got %.10g", where, it->string, fd->lo, fd->hi, v);
            /* beyond 2^53 a double no longer holds every integer; no size or count needs that */
            if (fd->type != CFG_FLOAT && fabs(v) > 9007199254740992.0)
                return err_set(err, "config: %s.%s is out of range (%.10g)", where, it->string, v);
        }
        char *p = (char *)out + fd->offset;
        switch (fd->type) {
        case CFG_INT:
        case CFG_SIZE: {
            if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble))
                return err_set(err, "config: %s.%s must be an integer, got %s", where, it->string,
                               cJSON_IsNumber(it) ? "a fractional number" : json_type_name(it));
            if (fd->type == CFG_SIZE) {
                if (it->valuedouble < 0)
                    return err_set(err, "config: %s.%s must be >= 0, got %g", where, it->string, it->valuedouble);
                *(size_t *)p = (size_t)it->valuedouble;
            } else {
                *(long *)p = (long)it->valuedouble;
            }
            break;
        }
        case CFG_FLOAT:
            if (!cJSON_IsNumber(it))
                return err_set(err, "config: %s.%s must be a number, got %s", where, it->string, json_type_name(it));
            *(double *)p = it->valuedouble;
            break;
        case CFG_BOOL:
            if (!cJSON_IsBool(it))
                return err_set(err, "config: %s.%s must be true or false, got %s", where, it->string, json_type_name(it));
            *(int *)p = cJSON_IsTrue(it);
            break;
        case CFG_STRING:
            if (!cJSON_IsString(it))
                return err_set(err, "config: %s.%s must be a string, got %s", where, it->string, json_type_name(it));
            if (strlen(it->valuestring) >= CFG_STR_MAX)
                return err_set(err, "config: %s.%s is longer than %d characters", where, it->string, CFG_STR_MAX - 1);
            strcpy(p, it->valuestring);
            break;
        case CFG_SECTION:
            if (!cJSON_IsObject(it))
                return err_set(err, "config: %s.%s must be an object, got %s", where, it->string, json_type_name(it));
            break;
        case CFG_ARRAY:
            if (!cJSON_IsArray(it))
                return err_set(err, "config: %s.%s must be an array, got %s", where, it->string, json_type_name(it));
            break;
        }
    }
    return 0;
}

void cfg_write(cJSON *obj, const CfgField *f, size_t n, const void *in) {
    for (size_t i = 0; i < n; i++) {
        const char *p = (const char *)in + f[i].offset;
        cJSON_DeleteItemFromObjectCaseSensitive(obj, f[i].key);
        switch (f[i].type) {
        case CFG_INT: cJSON_AddNumberToObject(obj, f[i].key, (double)*(const long *)p); break;
        case CFG_SIZE: cJSON_AddNumberToObject(obj, f[i].key, (double)*(const size_t *)p); break;
        case CFG_FLOAT: cJSON_AddNumberToObject(obj, f[i].key, *(const double *)p); break;
        case CFG_BOOL: cJSON_AddBoolToObject(obj, f[i].key, *(const int *)p); break;
        case CFG_STRING: cJSON_AddStringToObject(obj, f[i].key, p); break;
        case CFG_SECTION:
        case CFG_ARRAY: break;
        }
    }
}

static char *read_text(const char *path, size_t *len, Err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(err, "%s: cannot open (%s)", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
            } else {
                buf = nb;
            }
        }
    }
    fclose(f);
    if (!buf) {
        err_set(err, "%s: out of memory", path);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

cJSON *cfg_load_file(const char *path, Err *err) {
    size_t len;
    char *text = read_text(path, &len, err);
    if (!text) return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t off = end ? (size_t)(end - text) : 0, line = 1, col = 1;
        for (size_t i = 0; i < off && i < len; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        err_set(err, "%s: invalid JSON near line %zu, column %zu", path, line, col);
    } else if (!cJSON_IsObject(root)) {
        err_set(err, "%s: the config must be a JSON object", path);
        cJSON_Delete(root);
        root = NULL;
    }
    free(text);
    return root;
}

cJSON *cfg_section(cJSON *obj, const char *key) {
    cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!s) s = cJSON_AddObjectToObject(obj, key);
    return s;
}

int cfg_set_path(cJSON *root, const char *assignment, Err *err) {
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment) return err_set(err, "--set %s: expected key.path=value", assignment);
    char path[512];
    size_t plen = (size_t)(eq - assignment);
    if (plen >= sizeof path) return err_set(err, "--set: key too long");
    memcpy(path, assignment, plen);
    path[plen] = 0;
    const char *value = eq + 1;
    /* JSON only when the WHOLE value parses ("2bit" is a string, not the number 2) */
    cJSON *v = cJSON_ParseWithOpts(value, NULL, 1);
    if (!v) v = cJSON_CreateString(value);
    cJSON *node = root;
    char *save = NULL;
    char *tok = strtok_r(path, ".", &save);
    while (tok) {
        char *next = strtok_r(NULL, ".", &save);
        if (!next) {
            if (!cJSON_IsObject(node)) {
                cJSON_Delete(v);
                return err_set(err, "--set %s: parent of %s is not an object", assignment, tok);
            }
            if (cJSON_GetObjectItemCaseSensitive(node, tok)) cJSON_ReplaceItemInObjectCaseSensitive(node, tok, v);
            else cJSON_AddItemToObject(node, tok, v);
            return 0;
        }
        cJSON *child = cJSON_GetObjectItemCaseSensitive(node, tok);
        if (!child) child = cJSON_AddObjectToObject(node, tok);
        if (!cJSON_IsObject(child)) {
            cJSON_Delete(v);
            return err_set(err, "--set %s: %s is not an object", assignment, tok);
        }
        node = child;
        tok = next;
    }
    cJSON_Delete(v);
    return err_set(err, "--set %s: empty key", assignment);
}

int cfg_save_file(const cJSON *root, const char *path, Err *err) {
    char *text = cJSON_Print(root);
    if (!text) return err_set(err, "%s: cannot serialise config", path);
    size_t n = strlen(text);
    text[n] = '\n'; /* cJSON's buffer ends in the NUL this overwrites: the file is text + newline */
    int rc = write_file_atomic(path, text, n + 1, err);
    cJSON_free(text);
    return rc;
}
