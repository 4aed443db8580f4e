# Gated DeltaNet (the gdn block kind, the chimera preset's G and S): chunkwise == recurrent, a
# float64 oracle, gradient checks of every new op and of whole tiny chimera models (unit); PyTorch
# parity of the layer against tests/torch_ref/gdn_ref.py (reference).
tern_unit_test(test_gdn tern_model)
tern_py_test(torch_gdn torch_ref/gdn.py)
# The gdn kind in the artifact format and the runtime (runtime/blocks/gdn.c): trainer vs runtime
# logits, decode vs prefill (logits and states), damaged key/values (unit).
add_executable(test_runtime_gdn unit/test_runtime_gdn.c)
target_link_libraries(test_runtime_gdn PRIVATE ternrt tern_export tern_model)
add_test(NAME test_runtime_gdn COMMAND test_runtime_gdn)
set_tests_properties(test_runtime_gdn PROPERTIES LABELS unit ENVIRONMENT "OMP_NUM_THREADS=1")
# The same through the command lines: train with the chimera seed's ternary QAT, export, tern-run
# eval vs tern eval --quantized (e2e).
tern_py_test(e2e_runtime_gdn_roundtrip e2e/runtime_gdn_roundtrip.py)
set_tests_properties(e2e_runtime_gdn_roundtrip PROPERTIES LABELS e2e TIMEOUT 300)
