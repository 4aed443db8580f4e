# TRN hybrid: scan kernels, the fused TRN core, BigramHash and whole-model gradient checks; PyTorch
# parity of a TRN block and small trn_hybrid models (tests/torch_ref/trn.py, trn_ref.py).
tern_unit_test(test_trn tern_model)
tern_py_test(torch_trn torch_ref/trn.py)
