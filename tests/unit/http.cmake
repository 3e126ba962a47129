# HTTP server on our loop (libwebsockets, foreign libuv loop).
sd_unit_test(test_http ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_http.c sd_http)
# XCAP node selectors and the element/attribute engine (pure).
sd_unit_test(test_xcap_path ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_xcap_path.c sd_xcap_path)
# XCAP application usages: validation and the pres-rules view (pure).
sd_unit_test(test_xcap_usage ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_xcap_usage.c sd_xcap_usage)
