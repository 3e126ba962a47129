# End-to-end tests: every tests/e2e/test_*.sh is one CTest test, e2e_NAME,
# run by bash against the real simpled and PostgreSQL (fixture `pg`, from
# tests/pg_fixture.cmake), one at a time (they listen on ports and share
# the database), each bounded by a timeout.  See tests/e2e/lib.sh.

# The fixture `pg` and SD_TEST_DB_CONNINFO (this file sorts before it; its
# include guard makes including it here safe).
include(${CMAKE_CURRENT_LIST_DIR}/../pg_fixture.cmake)

find_program(SD_SIPP sipp)
if(NOT SD_SIPP)
  message(STATUS "sipp not found: the e2e tests will fail until sip-tester is installed")
  set(SD_SIPP sipp)
endif()
# Debian's python3 first: the client uses the standard library only.
find_program(SD_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT SD_PYTHON3)
  find_program(SD_PYTHON3 python3)
endif()
if(NOT SD_PYTHON3)
  set(SD_PYTHON3 python3)
endif()

set(SD_E2E_ENV
  "SIMPLED_BIN=$<TARGET_FILE:simpled>"
  "SIMPLECTL_BIN=$<TARGET_FILE:simplectl>"
  "SIMPLED_TEST_DB=${SD_TEST_DB_CONNINFO}"
  "SIPP=${SD_SIPP}"
  "PYTHON=${SD_PYTHON3}"
  "SIMPLED_DEV_DB=${CMAKE_SOURCE_DIR}/scripts/dev-db.sh"
  "E2E_WORKDIR=${CMAKE_BINARY_DIR}/e2e")

file(GLOB SD_E2E_SCRIPTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/test_*.sh)
list(SORT SD_E2E_SCRIPTS)
foreach(script ${SD_E2E_SCRIPTS})
  get_filename_component(name ${script} NAME_WE)
  string(REGEX REPLACE "^test_" "" name ${name})
  add_test(NAME e2e_${name} COMMAND bash ${script})
  set_tests_properties(e2e_${name} PROPERTIES
    FIXTURES_REQUIRED pg
    TIMEOUT 300
    RUN_SERIAL TRUE
    LABELS e2e
    ENVIRONMENT "${SD_E2E_ENV}")
endforeach()
