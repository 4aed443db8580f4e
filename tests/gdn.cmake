# Gated DeltaNet (the gdn block kind, the chimera preset's G and S): chunkwise == recurrent, a
# float64 oracle, gradient checks of every new op and of whole tiny chimera models (unit); PyTorch
# parity of the layer against tests/torch_ref/gdn_ref.py (reference).
tern_unit_test(test_gdn tern_model)
tern_py_test(torch_gdn torch_ref/gdn.py)
