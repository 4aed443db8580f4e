# The CLI fault-injection suite (label `faults`): every tests/faults/faults_*.py is one ctest.
# CI runs it in the normal build and again under ASan + UBSan (make test-sanitize).
file(GLOB TERN_FAULT_SCRIPTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/faults/faults_*.py)
foreach(script ${TERN_FAULT_SCRIPTS})
  get_filename_component(stem ${script} NAME_WE)
  tern_py_test(${stem} faults/${stem}.py)
  set_tests_properties(${stem} PROPERTIES LABELS faults TIMEOUT 900)
endforeach()
