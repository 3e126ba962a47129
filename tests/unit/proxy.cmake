# Unit tests of the proxy's pure parts (server/proxy: fwd, alias,
# directory).  Registered only once sd_proxy is in the build (the lead
# adds add_subdirectory(proxy) in server/CMakeLists.txt).
if(TARGET sd_proxy)
  sd_unit_test(test_proxy ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_proxy.c sd_proxy)
endif()
