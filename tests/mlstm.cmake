# mLSTM: the chunkwise and parallel forms against the recurrent reference, gradient checks of the
# mLSTM ops and whole tiny chimera models (tests/unit/test_mlstm.c).
tern_unit_test(test_mlstm tern_model)
tern_py_test(torch_mlstm torch_ref/mlstm.py)
# The mlstm block in the artifact format and the runtime (runtime/blocks/mlstm.c): trainer vs
# runtime logits, decode state == prefill state, damaged key/values.
add_executable(test_runtime_mlstm unit/test_runtime_mlstm.c)
target_link_libraries(test_runtime_mlstm PRIVATE ternrt tern_export tern_model)
add_test(NAME test_runtime_mlstm COMMAND test_runtime_mlstm)
set_tests_properties(test_runtime_mlstm PROPERTIES LABELS unit ENVIRONMENT "OMP_NUM_THREADS=1")
tern_py_test(e2e_runtime_mlstm_roundtrip e2e/runtime_mlstm_roundtrip.py)
set_tests_properties(e2e_runtime_mlstm_roundtrip PROPERTIES LABELS e2e TIMEOUT 300)
