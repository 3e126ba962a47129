# A short pass of every libFuzzer target (scripts/fuzz.sh builds them with
# clang and the sanitizers).  Longer runs: scripts/fuzz.sh SECONDS.
add_test(NAME fuzz_smoke COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/fuzz.sh 15)
set_tests_properties(fuzz_smoke PROPERTIES TIMEOUT 900 RUN_SERIAL TRUE
  ENVIRONMENT "SIMPLED_FUZZ_DIR=${CMAKE_BINARY_DIR}/fuzz")
