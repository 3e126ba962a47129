# The presence end-to-end tests (tests/e2e/test_presence_*.sh) are
# registered by tests/e2e/e2e.cmake, whose glob takes every test_*.sh as
# e2e_NAME with the `pg` fixture, a timeout, RUN_SERIAL and the e2e
# environment; registering them here again would define each test twice.
# This file only labels them, so `ctest -L presence` runs just these.
# (tests/CMakeLists.txt includes the e2e/*.cmake files in sorted order, so
# e2e.cmake has defined the tests by now.)
file(GLOB SD_PRESENCE_E2E CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/test_presence_*.sh)
foreach(script ${SD_PRESENCE_E2E})
  get_filename_component(name ${script} NAME_WE)
  string(REGEX REPLACE "^test_" "" name ${name})
  if(TEST e2e_${name})
    set_property(TEST e2e_${name} APPEND PROPERTY LABELS presence)
  endif()
endforeach()
