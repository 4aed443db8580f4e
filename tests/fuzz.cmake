# libFuzzer harnesses over every reader of untrusted input (tests/fuzz/README.md), ctest label
# `fuzz`, each run for a few seconds (TERN_FUZZ_SECONDS overrides). They need clang with
# libFuzzer; without it (or in a sanitizer build, where they would be built twice over) each test
# prints SKIP. This file sorts before runtime.cmake, whose artifact fuzzer uses TERN_CLANG.
find_program(TERN_CLANG NAMES clang clang-14)
if(TERN_CLANG)
  file(WRITE ${CMAKE_BINARY_DIR}/fuzz_probe.c
    "#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n")
  execute_process(COMMAND ${TERN_CLANG} -fsanitize=fuzzer,address ${CMAKE_BINARY_DIR}/fuzz_probe.c -o ${CMAKE_BINARY_DIR}/fuzz_probe
    RESULT_VARIABLE _probe OUTPUT_QUIET ERROR_QUIET)
  if(NOT _probe EQUAL 0)
    message(STATUS "tern: clang cannot link libFuzzer: the fuzz tests will print SKIP")
    set(TERN_CLANG "")
  endif()
endif()

set(TERN_FUZZ_TARGETS shard h5_tokens teacher checkpoint config tokenizer tok_bpe tok_maxmatch tok_byte sentencepiece gguf)
set(TERN_FUZZ_DIR ${CMAKE_BINARY_DIR}/fuzz)
if(TERN_CLANG AND NOT TERN_SANITIZE)
  # tests/fuzz is a CMake project of its own, compiled by clang whatever compiles tern
  include(ExternalProject)
  ExternalProject_Add(tern_fuzzers
    SOURCE_DIR ${CMAKE_SOURCE_DIR}/tests/fuzz
    BINARY_DIR ${TERN_FUZZ_DIR}
    CMAKE_ARGS -DCMAKE_C_COMPILER=${TERN_CLANG} -DTERN_CBLAS_INCLUDE=${TERN_CBLAS_INCLUDE} -DTERN_BLAS_LIB=${TERN_BLAS_LIB}
               -DTERN_CJSON_INCLUDE=${TERN_CJSON_INCLUDE} -DTERN_CJSON_LIB=${TERN_CJSON_LIB}
               -DTERN_ZSTD_INCLUDE=${TERN_ZSTD_INCLUDE} -DTERN_ZSTD_LIB=${TERN_ZSTD_LIB}
    INSTALL_COMMAND ""
    BUILD_ALWAYS ON)
elseif(TERN_SANITIZE)
  message(STATUS "tern: the fuzz harnesses are not built in a sanitizer build (they carry their own sanitizers)")
endif()
foreach(t ${TERN_FUZZ_TARGETS})
  add_test(NAME fuzz_${t} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/fuzz/run_fuzz_target.sh ${TERN_FUZZ_DIR}/fuzz_${t} ${t} 7 ${TERN_DATA_DIR})
  set_tests_properties(fuzz_${t} PROPERTIES LABELS fuzz TIMEOUT 120)
endforeach()
