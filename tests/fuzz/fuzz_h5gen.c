#include "tests/fuzz/fuzz_h5gen.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/quant.h"

/* Elements actually written per dataset; larger shapes are created chunked and left unwritten
 * (HDF5 reads them as fill values), which is how a small file claims a huge dataset. */
#define GEN_MAX_WRITTEN (1u << 16)
#define GEN_MAX_ATTR_BYTES 2048

GenItem *gen_dataset(GenSpec *s, const char *name, GenType type, int ndim, const size_t *dims) {
    if (s->n == GEN_MAX_ITEMS) return NULL;
    GenItem *it = &s->items[s->n++];
    memset(it, 0, sizeof *it);
    snprintf(it->name, sizeof it->name, "%s", name);
    it->type = type;
    it->ndim = ndim;
    for (int i = 0; i < ndim; i++) it->dims[i] = dims[i];
    it->fuzz_values = 1;
    return it;
}

static GenItem *gen_attr(GenSpec *s, const char *obj, const char *key, GenType type) {
    if (s->n == GEN_MAX_ITEMS) return NULL;
    GenItem *it = &s->items[s->n++];
    memset(it, 0, sizeof *it);
    it->is_attr = 1;
    snprintf(it->obj, sizeof it->obj, "%s", obj);
    snprintf(it->name, sizeof it->name, "%s", key);
    it->type = type;
    return it;
}

GenItem *gen_attr_num(GenSpec *s, const char *obj, const char *key, GenType type, double v) {
    GenItem *it = gen_attr(s, obj, key, type);
    if (it) it->num = v;
    return it;
}

GenItem *gen_attr_str(GenSpec *s, const char *obj, const char *key, const char *v) {
    GenItem *it = gen_attr(s, obj, key, GT_VSTR);
    if (it) it->str = v;
    return it;
}

/* ---------------------------------------------------------------- types and values */

static size_t elem_size(GenType t) {
    static const size_t k[GT_NTYPES] = {1, 2, 4, 8, 1, 4, 8, 2, 4, 8, 0, sizeof(char *)};
    return k[t];
}

static hid_t file_type(GenType t, size_t fixed_len) {
    switch (t) {
    case GT_U8: return H5Tcopy(H5T_STD_U8LE);
    case GT_U16: return H5Tcopy(H5T_STD_U16LE);
    case GT_U32: return H5Tcopy(H5T_STD_U32LE);
    case GT_U64: return H5Tcopy(H5T_STD_U64LE);
    case GT_I8: return H5Tcopy(H5T_STD_I8LE);
    case GT_I32: return H5Tcopy(H5T_STD_I32LE);
    case GT_I64: return H5Tcopy(H5T_STD_I64LE);
    case GT_F16: {
        hid_t h = H5Tcopy(H5T_IEEE_F32LE); /* IEEE half, as tern's teacher files store it */
        H5Tset_fields(h, 15, 10, 5, 0, 10);
        H5Tset_size(h, 2);
        H5Tset_ebias(h, 15);
        return h;
    }
    case GT_F32: return H5Tcopy(H5T_IEEE_F32LE);
    case GT_F64: return H5Tcopy(H5T_IEEE_F64LE);
    case GT_STR: {
        hid_t h = H5Tcopy(H5T_C_S1);
        H5Tset_size(h, fixed_len ? fixed_len : 1);
        return h;
    }
    default: {
        hid_t h = H5Tcopy(H5T_C_S1);
        H5Tset_size(h, H5T_VARIABLE);
        H5Tset_cset(h, H5T_CSET_UTF8);
        return h;
    }
    }
}

/* v saturated into an integer range (NaN -> 0): never an undefined conversion */
static double clampd(double v, double lo, double hi) { return v != v ? 0 : v < lo ? lo : v > hi ? hi : v; }

/* a finite double beyond float's range does not convert (undefined): saturate it */
static float to_float(double v) { return isfinite(v) && fabs(v) > 3e38 ? (v > 0 ? 3e38f : -3e38f) : (float)v; }

static void put_num(GenType t, double v, uint8_t *dst) {
    switch (t) {
    case GT_U8: dst[0] = (uint8_t)clampd(v, 0, 255); break;
    case GT_I8: dst[0] = (uint8_t)(int8_t)clampd(v, -128, 127); break;
    case GT_U16: { uint16_t x = (uint16_t)clampd(v, 0, 65535); memcpy(dst, &x, 2); break; }
    case GT_U32: { uint32_t x = (uint32_t)clampd(v, 0, 4294967295.0); memcpy(dst, &x, 4); break; }
    case GT_I32: { int32_t x = (int32_t)clampd(v, -2147483648.0, 2147483647.0); memcpy(dst, &x, 4); break; }
    case GT_U64: { uint64_t x = v >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)clampd(v, 0, 1.8e19); memcpy(dst, &x, 8); break; }
    case GT_I64: {
        int64_t x = v >= 9223372036854775807.0 ? INT64_MAX : (int64_t)clampd(v, -9.2e18, 9.2e18);
        memcpy(dst, &x, 8);
        break;
    }
    case GT_F16: { uint16_t x = f32_to_f16(to_float(v)); memcpy(dst, &x, 2); break; }
    case GT_F32: { float x = to_float(v); memcpy(dst, &x, 4); break; }
    case GT_F64: memcpy(dst, &v, 8); break;
    default: break;
    }
}

static const double kSpecial[] = {NAN, INFINITY, -INFINITY, 0, -1, 1, 2, 1e30, -1e30, 2147483648.0, 4294967296.0,
                                  9.3e18, 1.8446744073709552e19, 0.5};

/* ---------------------------------------------------------------- mutations */

enum { LAYOUT_PLAIN, LAYOUT_CHUNKED, LAYOUT_SPARSE };

typedef struct Plan {
    GenItem it;
    int drop, layout, wrong_kind, special;
    char str[48];
} Plan;

static void mutate_once(Plan *p, int bucket, Fz *f) {
    GenItem *it = &p->it;
    static const size_t kDims[] = {0, 1, 2, 3, 4, 5, 8, 16, 33};
    switch (bucket) {
    case 0: p->drop = 1; break;
    case 1: it->type = (GenType)fz_range(f, 0, GT_NTYPES - 1); break;
    case 2:
        it->ndim = (int)fz_range(f, 0, it->is_attr ? 2 : 4);
        for (int d = 0; d < it->ndim; d++) {
            size_t c = fz_range(f, 0, 11);
            it->dims[d] = c < 9 ? kDims[c] : c == 9 ? it->dims[d] + 1 : c == 10 ? (it->dims[d] ? it->dims[d] - 1 : 0) : it->dims[d];
        }
        break;
    case 3:
        if (it->ndim == 0 || it->is_attr) break;
        it->dims[fz_range(f, 0, (size_t)it->ndim - 1)] = (size_t)kFzEdgeSizes[fz_range(f, 7, kFzEdgeSizeCount - 1)];
        p->layout = LAYOUT_SPARSE;
        break;
    case 4: p->special = 1 + (int)fz_range(f, 0, TERN_ARRAY_LEN(kSpecial) - 1); break;
    case 5: p->layout = LAYOUT_CHUNKED; break;
    case 6: p->wrong_kind = 1; break;
    default: {
        size_t c = fz_range(f, 0, 3);
        if (c == 0) it->num = kSpecial[fz_range(f, 0, TERN_ARRAY_LEN(kSpecial) - 1)];
        else if (c == 1) it->num = (double)(int64_t)fz_u64(f);
        else if (c == 2) it->num = (double)fz_pick_u64(f, kFzEdgeSizes, kFzEdgeSizeCount);
        else {
            size_t n = fz_range(f, 0, sizeof p->str - 1);
            fz_back(f, p->str, n);
            p->str[n] = 0;
            it->str = p->str;
        }
    }
    }
}

/* One byte per item when it is kept as is; a mutated item reads another for a further change. */
static void plan_item(Plan *p, const GenItem *tmpl, Fz *f) {
    memset(p, 0, sizeof *p);
    p->it = *tmpl;
    for (int k = 0; k < 3; k++) {
        uint8_t m = fz_u8(f);
        if (m < 176) break;
        mutate_once(p, (m - 176) / 10, f);
    }
}

/* A random extra item named from the dictionary. */
static void plan_extra(Plan *p, const GenSpec *s, Fz *f) {
    memset(p, 0, sizeof *p);
    size_t nnames = 0;
    while (s->extra_names && s->extra_names[nnames]) nnames++;
    GenItem *it = &p->it;
    it->is_attr = (int)fz_range(f, 0, 1);
    const char *name = nnames ? s->extra_names[fz_range(f, 0, nnames - 1)] : "x";
    snprintf(it->obj, sizeof it->obj, "%s", fz_range(f, 0, 1) ? "/" : name);
    snprintf(it->name, sizeof it->name, "%s", name);
    it->type = (GenType)fz_range(f, 0, GT_NTYPES - 1);
    it->ndim = (int)fz_range(f, 0, 2);
    for (int d = 0; d < it->ndim; d++) it->dims[d] = fz_range(f, 0, 8);
    it->fuzz_values = 1;
    it->str = "";
    if (fz_u8(f) >= 176) mutate_once(p, (int)fz_range(f, 0, 7), f);
}

/* ---------------------------------------------------------------- writing */

static size_t numel_of(const GenItem *it, int *overflow) {
    size_t n = 1;
    *overflow = 0;
    for (int d = 0; d < it->ndim; d++) {
        if (it->dims[d] && n > SIZE_MAX / it->dims[d]) *overflow = 1;
        else n *= it->dims[d];
    }
    return n;
}

/* The element bytes of an item (malloc'd), or NULL for strings of the variable kind (filled
 * through ptrs, which point at one string). */
static uint8_t *fill_values(const Plan *p, size_t numel, size_t es, Fz *f) {
    const GenItem *it = &p->it;
    uint8_t *buf = calloc(numel ? numel : 1, es ? es : 1);
    if (!buf) abort();
    if (it->type == GT_STR) {
        for (size_t i = 0; i < numel; i++) memcpy(buf + i * es, it->str ? it->str : "", es);
        return buf;
    }
    if (it->fuzz_values && !p->special && !it->is_attr) {
        /* at most 64 bytes, tiled: a few KB of input must still reach the later items */
        size_t want = numel * es, take = TERN_MIN(want, 64);
        fz_back(f, buf, take);
        for (size_t i = take; take && i < want; i++) buf[i] = buf[i - take];
        if (it->fuzz_mod && it->type <= GT_I64) /* integers: the template's range, so that most pass */
            for (size_t i = 0; i < numel; i++) {
                uint64_t v = 0;
                memcpy(&v, buf + i * es, es);
                put_num(it->type, (double)(v % it->fuzz_mod), buf + i * es);
            }
        return buf;
    }
    double v = p->special ? kSpecial[p->special - 1] : it->num;
    for (size_t i = 0; i < numel; i++) put_num(it->type, v, buf + i * es);
    return buf;
}

static hid_t make_space(const GenItem *it) {
    if (it->ndim == 0) return H5Screate(H5S_SCALAR);
    hsize_t d[4];
    for (int i = 0; i < it->ndim; i++) d[i] = it->dims[i];
    return H5Screate_simple(it->ndim, d, NULL);
}

static void write_dataset(hid_t file, const Plan *p, Fz *f) {
    const GenItem *it = &p->it;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    if (p->wrong_kind) {
        hid_t g = H5Gcreate2(file, it->name, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (g >= 0) H5Gclose(g);
        H5Pclose(lcpl);
        return;
    }
    int overflow;
    size_t numel = numel_of(it, &overflow);
    int sparse = it->ndim > 0 && (p->layout == LAYOUT_SPARSE || overflow || numel > GEN_MAX_WRITTEN);
    size_t slen = it->str ? strlen(it->str) : 0;
    hid_t type = file_type(it->type, slen), space = make_space(it), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (it->ndim > 0 && (sparse || p->layout == LAYOUT_CHUNKED)) {
        hsize_t chunk[4];
        for (int i = 0; i < it->ndim; i++) chunk[i] = it->dims[i] == 0 ? 1 : it->dims[i] < 16 ? it->dims[i] : 16;
        H5Pset_chunk(dcpl, it->ndim, chunk);
        if (!sparse) {
            H5Pset_shuffle(dcpl);
            H5Pset_deflate(dcpl, 1);
        }
    }
    hid_t ds = space >= 0 ? H5Dcreate2(file, it->name, type, space, lcpl, dcpl, H5P_DEFAULT) : -1;
    if (ds >= 0 && !sparse && numel) {
        size_t es = it->type == GT_STR ? (slen ? slen : 1) : elem_size(it->type);
        if (it->type == GT_VSTR) {
            const char **ptrs = malloc(numel * sizeof *ptrs);
            for (size_t i = 0; i < numel; i++) ptrs[i] = it->str ? it->str : "";
            H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs);
            free(ptrs);
        } else {
            uint8_t *buf = fill_values(p, numel, es, f);
            H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
            free(buf);
        }
    }
    if (ds >= 0) H5Dclose(ds);
    if (space >= 0) H5Sclose(space);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Tclose(type);
}

static hid_t open_or_make_object(hid_t file, const char *obj) {
    hid_t o = H5Oopen(file, obj, H5P_DEFAULT); /* error printing is off (h5gen_write) */
    if (o >= 0) return o;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t g = H5Gcreate2(file, obj, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    if (g < 0) return -1;
    H5Gclose(g);
    return H5Oopen(file, obj, H5P_DEFAULT);
}

static void write_attr(hid_t file, const Plan *p, Fz *f) {
    const GenItem *it = &p->it;
    if (p->wrong_kind) { /* a dataset where the attribute should be */
        Plan q = *p;
        q.it.is_attr = 0;
        q.wrong_kind = 0;
        snprintf(q.it.name, sizeof q.it.name, "%s/%s", strcmp(it->obj, "/") ? it->obj : "", it->name);
        write_dataset(file, &q, f);
        return;
    }
    int overflow;
    size_t slen = it->str ? strlen(it->str) : 0;
    size_t numel = numel_of(it, &overflow), es = it->type == GT_STR ? (slen ? slen : 1) : elem_size(it->type);
    if (overflow || numel * es > GEN_MAX_ATTR_BYTES) return;
    hid_t o = open_or_make_object(file, it->obj);
    if (o < 0) return;
    hid_t type = file_type(it->type, slen), space = make_space(it);
    H5Adelete(o, it->name); /* an extra item may reuse a key */
    hid_t a = H5Acreate2(o, it->name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0 && numel) {
        if (it->type == GT_VSTR) {
            const char **ptrs = malloc(numel * sizeof *ptrs);
            for (size_t i = 0; i < numel; i++) ptrs[i] = it->str ? it->str : "";
            H5Awrite(a, type, ptrs);
            free(ptrs);
        } else {
            uint8_t *buf = fill_values(p, numel, es, f);
            H5Awrite(a, type, buf);
            free(buf);
        }
    }
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
    H5Oclose(o);
}

void h5gen_write(const GenSpec *s, Fz *f, const char *path) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* Every open file gets a ~1 MB metadata cache from HDF5's free lists; without limits the
     * lists keep it for the next file instead of returning it to ASan's allocator and faulting
     * fresh pages in each time (several times faster). */
    H5set_free_list_limits(-1, -1, -1, -1, -1, -1);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_core(fapl, 1 << 16, 1); /* in memory, written to path once on close */
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (file < 0) fz_fail(__FILE__, __LINE__, "cannot create %s", path);
    size_t nextra = fz_range(f, 0, 7);
    nextra = nextra < 5 ? 0 : nextra - 4; /* mostly none */
    for (size_t i = 0; i < s->n + nextra; i++) {
        Plan p;
        if (i < s->n) plan_item(&p, &s->items[i], f);
        else plan_extra(&p, s, f);
        if (p.drop) continue;
        if (p.it.is_attr) write_attr(file, &p, f);
        else write_dataset(file, &p, f);
    }
    if (H5Fclose(file) < 0) fz_fail(__FILE__, __LINE__, "cannot write %s", path);
    fz_check_h5_closed("h5gen_write");
}
