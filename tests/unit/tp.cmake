# Transport layer: framing (pure) and sockets on 127.0.0.1 / ::1.
sd_unit_test(test_frame ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_frame.c sd_tp)
sd_unit_test(test_tp ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_tp.c sd_tp)
