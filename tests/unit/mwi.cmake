# Unit tests of the message-summary package's parser and composer
# (presence/pkg_message_summary.c, RFC 3842 §5).
sd_unit_test(test_mwi ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_mwi.c sd_presence_core)
