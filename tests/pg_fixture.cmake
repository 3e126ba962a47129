# CTest fixture `pg`: a private PostgreSQL cluster under the build tree,
# started by scripts/dev-db.sh and migrated by simplectl, for every test
# that declares FIXTURES_REQUIRED pg.
#
#   pg_start    (setup of pg and pg_server)  dev-db.sh start DIR PORT
#   pg_migrate  (setup of pg, needs pg_server) simplectl --db ... migrate
#   pg_stop     (cleanup of pg and pg_server) dev-db.sh stop DIR
#
# Tests get the connection string through SD_TEST_DB_CONNINFO, e.g.
#   set_property(TEST t APPEND PROPERTY ENVIRONMENT "SIMPLED_TEST_DB=${SD_TEST_DB_CONNINFO}")
# A file included before this one (tests/CMakeLists.txt includes in sorted
# path order) may include it first itself: the guard makes that safe.
include_guard(GLOBAL)

set(SD_TEST_PG_DIR ${CMAKE_BINARY_DIR}/test-pg)
set(SD_TEST_PG_PORT 54329 CACHE STRING "port of the private test PostgreSQL (one per build tree when several run at once)")
set(SD_TEST_DB_CONNINFO "host=${SD_TEST_PG_DIR}/run port=${SD_TEST_PG_PORT} dbname=simpled user=postgres")
set(SD_DEV_DB ${CMAKE_SOURCE_DIR}/scripts/dev-db.sh)

add_test(NAME pg_start COMMAND bash ${SD_DEV_DB} start ${SD_TEST_PG_DIR} ${SD_TEST_PG_PORT})
set_tests_properties(pg_start PROPERTIES FIXTURES_SETUP "pg;pg_server" TIMEOUT 120)

add_test(NAME pg_migrate
  COMMAND simplectl --db "${SD_TEST_DB_CONNINFO}" migrate --schema ${CMAKE_SOURCE_DIR}/schema)
set_tests_properties(pg_migrate PROPERTIES
  FIXTURES_SETUP pg FIXTURES_REQUIRED pg_server TIMEOUT 120)

add_test(NAME pg_stop COMMAND bash ${SD_DEV_DB} stop ${SD_TEST_PG_DIR})
set_tests_properties(pg_stop PROPERTIES FIXTURES_CLEANUP "pg;pg_server" TIMEOUT 120)
