# End-to-end tests through the tern binary.
tern_py_test(e2e_train_cli e2e/train_cli.py)
set_tests_properties(e2e_train_cli PROPERTIES LABELS e2e)
tern_py_test(e2e_fineweb_short e2e/fineweb_short.py)
set_tests_properties(e2e_fineweb_short PROPERTIES LABELS e2e)
# Data parallelism through mpirun (prints SKIP when tern was built without MPI).
tern_py_test(e2e_mpi_train e2e/mpi_train.py)
set(_mpiexec "")
if(TERN_HAVE_MPI AND MPIEXEC_EXECUTABLE)
  set(_mpiexec ${MPIEXEC_EXECUTABLE})
endif()
set_property(TEST e2e_mpi_train APPEND PROPERTY ENVIRONMENT "TERN_MPIEXEC=${_mpiexec}")
set_tests_properties(e2e_mpi_train PROPERTIES LABELS e2e)
