# End-to-end tests of messaging (tests/e2e/test_message_*.sh), registered
# like e2e.cmake does: fixture pg, one at a time, bounded.  e2e.cmake's
# glob (test_*.sh) sorts before this file and may already have registered
# them; then only the label is added here.
include(${CMAKE_CURRENT_LIST_DIR}/../pg_fixture.cmake)
file(GLOB SD_MSG_E2E CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/test_message_*.sh)
list(SORT SD_MSG_E2E)
foreach(script ${SD_MSG_E2E})
  get_filename_component(name ${script} NAME_WE)
  string(REGEX REPLACE "^test_" "" name ${name})
  if(NOT TEST e2e_${name})
    add_test(NAME e2e_${name} COMMAND bash ${script})
    set_tests_properties(e2e_${name} PROPERTIES
      FIXTURES_REQUIRED pg
      TIMEOUT 300
      RUN_SERIAL TRUE
      ENVIRONMENT "${SD_E2E_ENV}")
  endif()
  set_property(TEST e2e_${name} APPEND PROPERTY LABELS e2e messaging)
endforeach()
