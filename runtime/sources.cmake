# The sources of libternrt and tern-run, shared by runtime/CMakeLists.txt (which builds them)
# and export/CMakeLists.txt (which counts their bytes for the parameter-golf size table).
# TERNRT_ROOT must be the repository root. The framework files listed here are pure C on libc
# (the tokenizers, the bits-per-byte rule, Err/xmalloc, the fast exp / sigmoid / tanh and the
# scalar math of the TRN core, of the GRU cells, of Gated DeltaNet, of the mLSTM block and of MoE routing): the
# runtime compiles the very same files as the trainer, so prompts are encoded, bytes counted and
# TRN oscillators, GRU, delta-rule and mLSTM steps and MoE routes computed by the same code.
file(GLOB TERNRT_OWN_SOURCES CONFIGURE_DEPENDS ${TERNRT_ROOT}/runtime/*.c ${TERNRT_ROOT}/runtime/blocks/*.c)
list(FILTER TERNRT_OWN_SOURCES EXCLUDE REGEX ".*/tern_run\\.c$")
list(FILTER TERNRT_OWN_SOURCES EXCLUDE REGEX ".*/omp_stub\\.c$")
file(GLOB TERNRT_OWN_HEADERS CONFIGURE_DEPENDS ${TERNRT_ROOT}/runtime/*.h)
set(TERNRT_SHARED_SOURCES
  ${TERNRT_ROOT}/data/tokenizer.c
  ${TERNRT_ROOT}/data/sentencepiece.c
  ${TERNRT_ROOT}/data/protobuf.c
  ${TERNRT_ROOT}/data/tok_byte.c
  ${TERNRT_ROOT}/data/tok_bpe.c
  ${TERNRT_ROOT}/data/tok_maxmatch.c
  ${TERNRT_ROOT}/data/bpb.c
  ${TERNRT_ROOT}/data/gen_args.c
  ${TERNRT_ROOT}/kernels/util.c)
set(TERNRT_SHARED_HEADERS
  ${TERNRT_ROOT}/export/format.h
  ${TERNRT_ROOT}/data/tokenizer.h
  ${TERNRT_ROOT}/data/tokenizer_impl.h
  ${TERNRT_ROOT}/data/sentencepiece.h
  ${TERNRT_ROOT}/data/protobuf.h
  ${TERNRT_ROOT}/data/bpb.h
  ${TERNRT_ROOT}/data/gen_args.h
  ${TERNRT_ROOT}/kernels/util.h
  ${TERNRT_ROOT}/kernels/fastmath.h
  ${TERNRT_ROOT}/kernels/trn_math.h
  ${TERNRT_ROOT}/kernels/gru_math.h
  ${TERNRT_ROOT}/kernels/gdn_math.h
  ${TERNRT_ROOT}/kernels/mlstm_math.h
  ${TERNRT_ROOT}/kernels/moe_math.h)
# Everything needed to compile and run an artifact: the code bytes counted toward the
# 16,000,000-byte parameter-golf limit (C sources and headers; build files and docs excluded).
set(TERNRT_CODE_FILES ${TERNRT_OWN_SOURCES} ${TERNRT_ROOT}/runtime/tern_run.c ${TERNRT_OWN_HEADERS}
  ${TERNRT_SHARED_SOURCES} ${TERNRT_SHARED_HEADERS})
