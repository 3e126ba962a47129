sd_unit_test(test_auth ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_auth.c sd_auth)
