# Hybrid-GRU (issue #12): the GRU cells and the MLGRU (gradient checks, truncated BPTT, QAT,
# init, presets); PyTorch parity against nn.GRU and float64 references (tests/torch_ref/gru.py).
tern_unit_test(test_gru tern_model)
tern_py_test(torch_gru torch_ref/gru.py)
