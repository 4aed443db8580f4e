# Gated DeltaNet (the gdn block kind, the chimera preset's G and S): chunkwise == recurrent, a
# float64 oracle, gradient checks of every new op and of whole tiny chimera models (unit).
tern_unit_test(test_gdn tern_model)
