# MoE channel mixer (the moe block kind, the chimera preset's E): sort-based dispatch == the dense
# per-token reference, determinism, gradient checks of op_moe and of tiny chimera models with MoE
# layers, the routing-bias buffer and its update (unit).
tern_unit_test(test_moe tern_model)
# The moe kind in the artifact format and the runtime (runtime/blocks/moe.c): the routing bias in
# the artifact, trainer vs runtime logits, decode vs prefill, damaged key/values (unit).
add_executable(test_runtime_moe unit/test_runtime_moe.c)
target_link_libraries(test_runtime_moe PRIVATE ternrt tern_export tern_model)
add_test(NAME test_runtime_moe COMMAND test_runtime_moe)
set_tests_properties(test_runtime_moe PROPERTIES LABELS unit ENVIRONMENT "OMP_NUM_THREADS=1")
# PyTorch parity of the layer against tests/torch_ref/moe_ref.py (float64, dense masks) (reference).
tern_py_test(torch_moe torch_ref/moe.py)
# Through the command lines: train EGE with the chimera seed's ternary QAT (load balance in
# metrics.jsonl, biases in the checkpoint, bit-exact resume, 2 MPI ranks == 2 micro-steps),
# export, tern-run eval vs tern eval --quantized (e2e).
tern_py_test(e2e_runtime_moe_roundtrip e2e/runtime_moe_roundtrip.py)
set_tests_properties(e2e_runtime_moe_roundtrip PROPERTIES LABELS e2e TIMEOUT 300)
set(_moe_mpiexec "")
if(TERN_HAVE_MPI AND MPIEXEC_EXECUTABLE)
  set(_moe_mpiexec ${MPIEXEC_EXECUTABLE})
endif()
set_property(TEST e2e_runtime_moe_roundtrip APPEND PROPERTY ENVIRONMENT "TERN_MPIEXEC=${_moe_mpiexec}")
