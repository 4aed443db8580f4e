# PyTorch parity: refdump runs tern's layers/models on inputs from the Python scripts.
add_executable(refdump torch_ref/refdump.c torch_ref/refdump_block.c)
target_link_libraries(refdump PRIVATE tern_model tern_optim tern_autodiff tern_data)
tern_py_test(torch_layers torch_ref/layers.py)
tern_py_test(torch_gpt torch_ref/gpt.py)
tern_py_test(torch_llama_gguf torch_ref/llama_gguf.py)
