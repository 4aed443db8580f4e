# End-to-end tests through the tern binary.
tern_py_test(e2e_train_cli e2e/train_cli.py)
set_tests_properties(e2e_train_cli PROPERTIES LABELS e2e)
tern_py_test(e2e_fineweb_short e2e/fineweb_short.py)
set_tests_properties(e2e_fineweb_short PROPERTIES LABELS e2e)
