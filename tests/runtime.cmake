# Export format, runtime kernels, export -> runtime parity, corrupt artifacts, fuzzing, the
# standalone runtime build, and end-to-end round trips through `tern export` and `tern-run`.
tern_unit_test(test_export_format tern_kernels)
tern_unit_test(test_runtime_kernels ternrt)

# Framework forward vs runtime forward on random models of many shapes; also writes small
# artifacts into rt_fixtures/ for the corruption test and the fuzzer (a ctest fixture).
find_package(Threads REQUIRED)
set(TERN_RT_FIXTURES ${CMAKE_BINARY_DIR}/rt_fixtures)
file(MAKE_DIRECTORY ${TERN_RT_FIXTURES})
add_executable(test_runtime_parity unit/test_runtime_parity.c)
# ternrt first: it carries its own copies of the shared tokenizer/util objects
target_link_libraries(test_runtime_parity PRIVATE ternrt tern_export tern_model Threads::Threads)
add_test(NAME test_runtime_parity COMMAND test_runtime_parity ${TERN_RT_FIXTURES})
# the framework side single-threaded (robust on a busy machine); the runtime's sessions ask for
# 2 threads themselves (num_threads), so its parallel paths still run
set_tests_properties(test_runtime_parity PROPERTIES LABELS unit FIXTURES_SETUP rt_artifacts
  ENVIRONMENT "OMP_NUM_THREADS=1")

# The runtime's sources, for the targets below that compile them with their own flags.
set(TERNRT_ROOT ${CMAKE_SOURCE_DIR})
include(${CMAKE_SOURCE_DIR}/runtime/sources.cmake)

# Damaged artifacts under AddressSanitizer + UBSan: the runtime sources are compiled into the
# test with the sanitizers on, whatever the build's own flags.
include(CheckCSourceCompiles)
set(CMAKE_REQUIRED_FLAGS "-fsanitize=address,undefined")
set(CMAKE_REQUIRED_LINK_OPTIONS "-fsanitize=address,undefined")
check_c_source_compiles("int main(void) { return 0; }" TERN_HAVE_ASAN)
unset(CMAKE_REQUIRED_FLAGS)
unset(CMAKE_REQUIRED_LINK_OPTIONS)
add_executable(test_runtime_corrupt unit/test_runtime_corrupt.c ${TERNRT_OWN_SOURCES} ${TERNRT_SHARED_SOURCES})
target_include_directories(test_runtime_corrupt PRIVATE ${CMAKE_SOURCE_DIR} ${TERN_ZSTD_INCLUDE})
target_link_libraries(test_runtime_corrupt PRIVATE ${TERN_ZSTD_LIB} OpenMP::OpenMP_C m)
if(TERN_HAVE_ASAN)
  target_compile_options(test_runtime_corrupt PRIVATE -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -O1 -g)
  target_link_options(test_runtime_corrupt PRIVATE -fsanitize=address,undefined)
endif()
add_test(NAME test_runtime_corrupt COMMAND test_runtime_corrupt ${TERN_RT_FIXTURES})
set_tests_properties(test_runtime_corrupt PROPERTIES LABELS unit FIXTURES_REQUIRED rt_artifacts
  ENVIRONMENT "OMP_NUM_THREADS=1;ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1;UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1")

# libFuzzer over the loader: built with clang when it has libFuzzer (TERN_CLANG, probed by
# tests/fuzz.cmake), run ~15 s by ctest.
set(TERN_FUZZER ${CMAKE_BINARY_DIR}/bin/fuzz_artifact)
if(TERN_CLANG)
  set(_fuzz_src ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_artifact.c ${TERNRT_OWN_SOURCES} ${TERNRT_SHARED_SOURCES}
    ${CMAKE_SOURCE_DIR}/runtime/omp_stub.c)
  add_custom_command(OUTPUT ${TERN_FUZZER}
    COMMAND ${TERN_CLANG} -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
            -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wno-unknown-pragmas -I${CMAKE_SOURCE_DIR} -I${TERN_ZSTD_INCLUDE}
            ${_fuzz_src} ${TERN_ZSTD_LIB} -lm -o ${TERN_FUZZER}
    DEPENDS ${_fuzz_src} ${TERNRT_OWN_HEADERS} ${TERNRT_SHARED_HEADERS}
    COMMENT "Building the artifact fuzzer with clang" VERBATIM)
  add_custom_target(fuzz_artifact ALL DEPENDS ${TERN_FUZZER})
endif()
add_test(NAME fuzz_artifact_loader COMMAND bash ${CMAKE_SOURCE_DIR}/tests/fuzz/run_fuzz.sh ${TERN_FUZZER} ${TERN_RT_FIXTURES} 15)
set_tests_properties(fuzz_artifact_loader PROPERTIES LABELS fuzz FIXTURES_REQUIRED rt_artifacts TIMEOUT 120)

# The runtime as its own CMake project, with nothing of the framework's dependencies (no BLAS,
# HDF5 or cJSON): configure and build it in a scratch folder (debug build: faster to compile).
tern_py_test(runtime_standalone_build e2e/runtime_standalone.py ${CMAKE_SOURCE_DIR}/runtime ${CMAKE_BINARY_DIR}/rt_standalone)
set_tests_properties(runtime_standalone_build PROPERTIES LABELS unit TIMEOUT 300)

# End to end: tiny models trained a few steps, exported, evaluated by both sides.
tern_py_test(e2e_runtime_roundtrip e2e/runtime_roundtrip.py)
set_tests_properties(e2e_runtime_roundtrip PROPERTIES LABELS e2e TIMEOUT 300)
tern_py_test(e2e_runtime_pgolf_size e2e/runtime_pgolf_size.py)
set_tests_properties(e2e_runtime_pgolf_size PROPERTIES LABELS e2e TIMEOUT 300)

# The KV cache: growth with the context used, the fp16 cache, agents' saved state across
# capacities (a GQA GPT exported in memory).
add_executable(test_runtime_kvcache unit/test_runtime_kvcache.c)
target_link_libraries(test_runtime_kvcache PRIVATE ternrt tern_export tern_model)
add_test(NAME test_runtime_kvcache COMMAND test_runtime_kvcache)
set_tests_properties(test_runtime_kvcache PROPERTIES LABELS unit ENVIRONMENT "OMP_NUM_THREADS=1")
