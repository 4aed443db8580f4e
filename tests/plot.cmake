# Loss plots (train/plot.h): known metrics -> PNG / SVG read back (tests/unit/test_plot.c); the CLI
# cases are tests/faults/faults_plot.py.
tern_unit_test(test_plot tern_train)
