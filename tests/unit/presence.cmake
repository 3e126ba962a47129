# Unit tests of the event framework and its packages (pure parts).
sd_unit_test(test_event ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_event.c sd_presence_core)
sd_unit_test(test_slab ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_slab.c sd_presence_core)
# Dialog records, the dialog package and call-completion bodies.
sd_unit_test(test_dialog ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_dialog.c sd_presence_core)
