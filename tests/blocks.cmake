# The block registry, the stack's scaffold options, the artifact's key/values and buffers in
# checkpoints (model/block.h, model/stack.h, train/checkpoint.h).
tern_unit_test(test_blocks tern_train)
