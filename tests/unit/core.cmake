# Unit tests of the core modules written with the server (config, SIP
# message helpers, transactions).
add_library(sd_config_only STATIC ${CMAKE_SOURCE_DIR}/server/config.c)
target_link_libraries(sd_config_only PUBLIC sd_base)
sd_unit_test(test_config ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_config.c sd_config_only)
sd_unit_test(test_sipmsg ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_sipmsg.c sd_sip)
sd_unit_test(test_txn ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_txn.c sd_sip)
