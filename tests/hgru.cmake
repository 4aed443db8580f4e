# Hybrid-GRU (issue #12): the GRU cells and the MLGRU (gradient checks, truncated BPTT, QAT,
# init, presets); PyTorch parity against nn.GRU and float64 references (tests/torch_ref/gru.py).
tern_unit_test(test_gru tern_model)
tern_py_test(torch_gru torch_ref/gru.py)
# the GRU and MLGRU kinds through export and the runtime (runtime/blocks/gru.c, mlgru.c)
add_executable(test_runtime_gru unit/test_runtime_gru.c)
target_link_libraries(test_runtime_gru PRIVATE ternrt tern_export tern_model)
add_test(NAME test_runtime_gru COMMAND test_runtime_gru)
set_tests_properties(test_runtime_gru PROPERTIES LABELS unit ENVIRONMENT "OMP_NUM_THREADS=1")
# the agent API of libternrt: 16 agents from 4 threads, save / restore, streaming
find_package(Threads REQUIRED)
add_executable(test_agents unit/test_agents.c)
target_link_libraries(test_agents PRIVATE ternrt tern_export tern_model Threads::Threads)
add_test(NAME test_agents COMMAND test_agents)
set_tests_properties(test_agents PROPERTIES LABELS unit ENVIRONMENT "OMP_NUM_THREADS=1")
# train -> export -> tern-run eval == tern eval --quantized for each cell; agents through ctypes
tern_py_test(e2e_runtime_hgru_roundtrip e2e/runtime_hgru_roundtrip.py)
set_tests_properties(e2e_runtime_hgru_roundtrip PROPERTIES LABELS e2e TIMEOUT 300)
# GPT-2's vocabulary through MaxMatch (skips without the npm package)
tern_py_test(gpt2_vocab e2e/gpt2_vocab.py)
