# Unit tests of the request originator (server/sip/uac.c) over loopback
# sockets.  Messaging itself is tested end to end (tests/e2e/test_message_*.sh).
sd_unit_test(test_uac ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_uac.c sd_sip)
