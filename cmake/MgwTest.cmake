# mgw_add_unit_test(wire_frame ibwire [more libs...]): tests/test_wire_frame.c -> ctest "wire_frame".
function(mgw_add_unit_test name)
  add_executable(test_${name} ${PROJECT_SOURCE_DIR}/tests/test_${name}.c)
  target_link_libraries(test_${name} PRIVATE ${ARGN} mgw_build PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND test_${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT 60 LABELS unit)
endfunction()
