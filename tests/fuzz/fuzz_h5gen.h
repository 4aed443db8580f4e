/* fuzz_h5gen.h — valid HDF5 files with fuzzed contents, for the harnesses of tern's HDF5 readers.
 *
 * The HDF5 library itself is not the target (it crashes on many malformed files: known upstream
 * CVEs we cannot fix), so the fuzzer's bytes never reach it as a file. Instead a harness
 * describes the file its reader expects as a template (datasets and attributes with their types,
 * shapes and values) and h5gen_write lets the bytes decide, item by item, to keep it, drop it,
 * change its type, rank or dimensions (including huge, never-written chunked ones), fill it with
 * extreme values (NaN, Inf, integer limits), store it chunked and compressed, or put an object of
 * the wrong kind under its name; then a few extra items with names from the harness's
 * dictionary. The file is built in memory (core driver) and written once to a scratch path. */
#ifndef TERN_FUZZ_H5GEN_H
#define TERN_FUZZ_H5GEN_H

#include <stddef.h>

#include "tests/fuzz/fuzz_common.h"

typedef enum GenType { GT_U8, GT_U16, GT_U32, GT_U64, GT_I8, GT_I32, GT_I64, GT_F16, GT_F32, GT_F64, GT_STR, GT_VSTR, GT_NTYPES } GenType;

#define GEN_MAX_ITEMS 192

typedef struct GenItem {
    int is_attr;
    char obj[96];      /* attributes: the object that carries them ("/" or a group path) */
    char name[160];    /* dataset path (groups made as needed) or attribute key */
    GenType type;
    int ndim;          /* 0: scalar */
    size_t dims[4];
    double num;        /* numeric attributes / datasets: the template's value (every element) */
    const char *str;   /* string attributes / datasets: the template's value */
    int fuzz_values;   /* datasets: values come from the input's back bytes instead of num */
    uint64_t fuzz_mod; /* integer datasets with fuzz_values: values taken modulo this (0: raw) */
} GenItem;

typedef struct GenSpec {
    GenItem items[GEN_MAX_ITEMS];
    size_t n;
    const char *const *extra_names; /* names extra items may take (NULL-terminated) */
} GenSpec;

/* Template helpers. */
GenItem *gen_dataset(GenSpec *s, const char *name, GenType type, int ndim, const size_t *dims);
GenItem *gen_attr_num(GenSpec *s, const char *obj, const char *key, GenType type, double v);
GenItem *gen_attr_str(GenSpec *s, const char *obj, const char *key, const char *v);

/* Builds the file at path from the template as the input decides (see above). */
void h5gen_write(const GenSpec *s, Fz *f, const char *path);

#endif
