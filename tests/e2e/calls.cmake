# End-to-end tests of calls through the proxy (tests/e2e/test_call_*.sh).
# e2e.cmake's glob (test_*.sh) registers them as e2e_call_*, but this file
# sorts before e2e.cmake, so the extra properties are set at the end of
# the directory, once every test exists: label `calls`, and exit status 77
# = skipped (a server built without the proxy wiring answers INVITE 501;
# tests/e2e/scenarios/call_lib.sh then exits 77).
function(sd_calls_finish)
  file(GLOB scripts ${CMAKE_CURRENT_LIST_DIR}/e2e/test_call_*.sh)
  foreach(script ${scripts})
    get_filename_component(name ${script} NAME_WE)
    string(REGEX REPLACE "^test_" "" name ${name})
    if(TEST e2e_${name})
      set_property(TEST e2e_${name} APPEND PROPERTY LABELS calls)
      set_property(TEST e2e_${name} PROPERTY SKIP_RETURN_CODE 77)
    endif()
  endforeach()
endfunction()
cmake_language(DEFER CALL sd_calls_finish)
