# The TRN hybrid in the artifact format and the runtime (runtime/blocks/trn.c, runtime/stack.c): framework vs runtime
# logits, decode vs prefill, damaged hyper-parameters (unit); round trips through `tern export` /
# `tern-run` and the default model's parameter-golf size (e2e).
find_package(Threads REQUIRED)
if(NOT TERN_RT_FIXTURES)
  set(TERN_RT_FIXTURES ${CMAKE_BINARY_DIR}/rt_fixtures)
  file(MAKE_DIRECTORY ${TERN_RT_FIXTURES})
endif()
add_executable(test_runtime_trn unit/test_runtime_trn.c)
target_link_libraries(test_runtime_trn PRIVATE ternrt tern_export tern_model Threads::Threads)
add_test(NAME test_runtime_trn COMMAND test_runtime_trn ${TERN_RT_FIXTURES})
# also writes trn.tern into the fixtures folder: the fuzzer's seed corpus gets a TRN artifact
set_tests_properties(test_runtime_trn PROPERTIES LABELS unit FIXTURES_SETUP rt_artifacts
  ENVIRONMENT "OMP_NUM_THREADS=1")

tern_py_test(e2e_runtime_trn_roundtrip e2e/runtime_trn_roundtrip.py)
set_tests_properties(e2e_runtime_trn_roundtrip PROPERTIES LABELS e2e TIMEOUT 300)
tern_py_test(e2e_runtime_trn_pgolf_size e2e/runtime_trn_pgolf_size.py)
set_tests_properties(e2e_runtime_trn_pgolf_size PROPERTIES LABELS e2e TIMEOUT 600)
