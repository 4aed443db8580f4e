# MoE channel mixer (the moe block kind, the chimera preset's E): sort-based dispatch == the dense
# per-token reference, determinism, gradient checks of op_moe and of tiny chimera models with MoE
# layers, the routing-bias buffer and its update (unit).
tern_unit_test(test_moe tern_model)
