# HTTP server on our loop (libwebsockets, foreign libuv loop).
sd_unit_test(test_http ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_http.c sd_http)
