# The async PostgreSQL pool (needs the `pg` fixture: tests/pg_fixture.cmake)
# and simplectl, the admin CLI, against the same cluster.
include(${CMAKE_CURRENT_LIST_DIR}/../pg_fixture.cmake) # no-op when already included
sd_unit_test(test_db ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_db.c sd_db)
set_tests_properties(test_db PROPERTIES FIXTURES_REQUIRED pg)
# sd_unit_test already sets ENVIRONMENT: append, don't replace.
set_property(TEST test_db APPEND PROPERTY ENVIRONMENT "SIMPLED_TEST_DB=${SD_TEST_DB_CONNINFO}")

add_test(NAME test_simplectl
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_simplectl.sh $<TARGET_FILE:simplectl>)
set_tests_properties(test_simplectl PROPERTIES FIXTURES_REQUIRED pg TIMEOUT 120
  ENVIRONMENT "SIMPLED_TEST_DB=${SD_TEST_DB_CONNINFO}")
