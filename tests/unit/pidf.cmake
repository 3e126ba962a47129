sd_unit_test(test_pidf ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_pidf.c sd_pidf)
