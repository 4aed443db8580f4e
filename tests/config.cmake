# Config ranges, the memory plan against real arenas, and the clean memory refusals
# (tests/unit/test_config.c); the CLI cases are tests/faults/faults_config.py.
tern_unit_test(test_config tern_train)
