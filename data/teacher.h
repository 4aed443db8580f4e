/* teacher.h — teacher-logit files for distillation (HDF5, documented in docs/FORMAT.md).
 *
 * One row per token position of a shard: row r holds the teacher's view of the token at
 * position offset + r of that shard, predicting position offset + r + 1.
 *   /indices  int32   [N, k]   the k largest logits' vocabulary ids, largest first
 *   /values   f16|f32 [N, k]   those logits (already divided by the temperature)
 *   /lse      float32 [N]      log-sum-exp over the FULL vocabulary of the same scaled logits,
 *                              so the probability mass outside the top k is known
 * attributes: format = "tern-teacher-logits", version = 1, k, vocab_size, temperature,
 *             shard (path of the token shard), offset (first shard position), seq_len (the
 *             teacher's context window), teacher (description).
 * Datasets are chunked (rows) and compressed (shuffle + deflate); the file grows by appending
 * rows and is renamed into place when closed. The reader streams any row range. */
#ifndef TERN_TEACHER_H
#define TERN_TEACHER_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/util.h"

typedef struct TeacherMeta {
    size_t k, vocab_size, seq_len;
    double temperature;
    uint64_t offset;
    char shard[512];
    char teacher[256];
    int fp16;
} TeacherMeta;

typedef struct TeacherWriter {
    hid_t f, d_idx, d_val, d_lse;
    size_t rows;
    TeacherMeta meta;
    char *path, *tmp;
} TeacherWriter;

int teacher_writer_open(TeacherWriter *w, const char *path, const TeacherMeta *meta, Err *err);
/* Appends n rows: idx/val are [n, k] row-major, lse [n]. */
int teacher_writer_append(TeacherWriter *w, const int32_t *idx, const float *val, const float *lse, size_t n, Err *err);
/* Finishes the file (rename into place). On error or abort, nothing is left under `path`. */
int teacher_writer_close(TeacherWriter *w, Err *err);
void teacher_writer_abort(TeacherWriter *w);

typedef struct TeacherReader {
    hid_t f, d_idx, d_val, d_lse;
    size_t rows;
    TeacherMeta meta;
    char *path;
} TeacherReader;

/* expected_vocab > 0: a teacher whose vocab differs is an error naming the file. */
int teacher_reader_open(TeacherReader *r, const char *path, size_t expected_vocab, Err *err);
/* Rows [row, row + n): idx/val [n, k], lse [n] (any of them may be NULL). */
int teacher_read(TeacherReader *r, size_t row, size_t n, int32_t *idx, float *val, float *lse, Err *err);
/* Rows aligned with a loader window at shard position `pos` (T positions). */
int teacher_read_window(TeacherReader *r, size_t pos, size_t T, int32_t *idx, float *val, float *lse, Err *err);
void teacher_reader_close(TeacherReader *r);

/* Top-k of one row of logits (already scaled) with the full log-sum-exp. */
void teacher_topk_row(const float *logits, size_t V, size_t k, int32_t *idx, float *val, float *lse);

#endif
