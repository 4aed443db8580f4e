# mLSTM: the chunkwise and parallel forms against the recurrent reference, gradient checks of the
# mLSTM ops and whole tiny chimera models (tests/unit/test_mlstm.c).
tern_unit_test(test_mlstm tern_model)
tern_py_test(torch_mlstm torch_ref/mlstm.py)
