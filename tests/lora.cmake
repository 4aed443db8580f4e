# LoRA fine-tuning (issue 16): the adapted linear, frozen-base step, merge, base hash, QAT bake.
tern_unit_test(test_lora tern_model tern_optim)
