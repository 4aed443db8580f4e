# References built outside tern: the official byte-counting rule (Python + sentencepiece).
add_executable(bpb_count ref/bpb_count.c)
target_link_libraries(bpb_count PRIVATE tern_data)
tern_py_test(bpb_reference ref/bpb_ref.py)
