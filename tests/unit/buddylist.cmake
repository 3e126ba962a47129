sd_unit_test(test_buddylist ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_buddylist.c sd_buddylist)
