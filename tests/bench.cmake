# The load generator of `scripts/bench.sh presence` (tests/bench/presence_load.c):
# a plain executable, not a test.
add_executable(presence_load ${CMAKE_CURRENT_SOURCE_DIR}/bench/presence_load.c)
set_target_properties(presence_load PROPERTIES C_STANDARD 11 C_STANDARD_REQUIRED ON
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/bench)
