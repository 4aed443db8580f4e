/* writer.h — builds a tern artifact (export/format.h, docs/FORMAT.md) from a model and its
 * quantization plan: every parameter is stored as the plan says (fp32, fp16, or quantized
 * with kernels/quant.h's quantize_weights — the same quantizer QAT and `tern eval
 * --quantized` use — and bit-packed), together with the run config, the architecture's
 * hyper-parameters in binary and the tokenizer's bytes; the container gets a CRC-32 and is
 * compressed as one zstd frame (content checksum on) behind a skippable-frame preamble. */
#ifndef TERN_EXPORT_WRITER_H
#define TERN_EXPORT_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/util.h"
#include "model/model.h"

struct cJSON;

/* How int4 / int5 / int6 codes are stored (export/format.h TERN_TENSOR_BYTE_CODES). AUTO is the
 * model's default: one code per byte when a block kind of the model asks for it (the TRN
 * oscillator: the TRN hybrid's int5 weights only fit the 16 MB parameter-golf limit that way
 * when they are not trained yet, bit-packed codes barely compress), else bit-packed (the GPT's
 * artifacts as they always were). */
typedef enum ExportIntStorage { EXPORT_INT_AUTO = 0, EXPORT_INT_BITS = 1, EXPORT_INT_BYTES = 2 } ExportIntStorage;

typedef struct ExportOptions {
    int zstd_level;          /* 1..22; 0 = the plan's export.zstd_level */
    int zstd_workers;        /* zstd worker threads (0 = single-threaded, reproducible bytes) */
    int tok_kind;            /* TERN_TOK_NONE | TERN_TOK_FILE | TERN_TOK_BYTE */
    const void *tok_bytes;   /* TERN_TOK_FILE: the tokenizer file's bytes */
    size_t tok_len;
    int int_storage;         /* ExportIntStorage (0 = AUTO) */
} ExportOptions;

typedef struct ExportTensorInfo {
    char name[64];
    char dtype[32];          /* e.g. "int5", "int5/bytes", "ternary2/g128+a8", "fp16" */
    size_t rows, cols, numel;
    size_t raw_bytes;        /* fp32: 4 * numel */
    size_t packed_bytes;     /* packed data + scales as stored */
} ExportTensorInfo;

typedef struct ExportReport {
    size_t ntensors;
    ExportTensorInfo *t;
    size_t params;
    size_t raw_bytes, packed_bytes; /* sums over tensors */
    size_t container_bytes;         /* uncompressed container (header, table, config, ...) */
    size_t file_bytes;              /* the artifact: preamble + zstd frame */
    size_t tokenizer_bytes;
    int zstd_level;
    double seconds_compress;
} ExportReport;

/* Builds the artifact in memory (*out malloc'd, *out_len bytes). m->qplan must be attached
 * (model/qat.h quant_plan_attach); run_config is the checkpoint's resolved run config (stored
 * as JSON text; its data.seq_len becomes the default evaluation window). */
int export_build(const Model *m, const struct cJSON *run_config, const ExportOptions *opt, uint8_t **out,
                 size_t *out_len, ExportReport *rep, Err *err);
void export_report_free(ExportReport *rep);

/* Writes bytes to path through a temporary file in the same folder, fsync'd and renamed into
 * place, so an existing file is never left half-written. */
int export_write_file(const char *path, const uint8_t *data, size_t len, Err *err);

/* Bytes of runtime source code counted toward the parameter-golf limit (see
 * export/code_bytes.cmake): the sources compiled into libternrt and tern-run. */
size_t export_code_bytes(void);
size_t export_code_files(void);

#endif
