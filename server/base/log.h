/* Levelled logging: one line per event on stderr, with a UTC timestamp,
 * the level and the module.  Never pass passwords or HA1 values here. */
#ifndef SD_LOG_H
#define SD_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns 0 or -EINVAL. */
int log_level_parse(const char *name, enum log_level *out);
void log_write(enum log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_ENABLED(lvl) ((lvl) <= log_get_level())
#define LOGE(mod, ...) do { if (LOG_ENABLED(LOG_ERROR)) log_write(LOG_ERROR, mod, __VA_ARGS__); } while (0)
#define LOGW(mod, ...) do { if (LOG_ENABLED(LOG_WARN)) log_write(LOG_WARN, mod, __VA_ARGS__); } while (0)
#define LOGI(mod, ...) do { if (LOG_ENABLED(LOG_INFO)) log_write(LOG_INFO, mod, __VA_ARGS__); } while (0)
#define LOGD(mod, ...) do { if (LOG_ENABLED(LOG_DEBUG)) log_write(LOG_DEBUG, mod, __VA_ARGS__); } while (0)

#endif
