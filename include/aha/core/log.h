// Logging facade: levels, a console sink and an optional file sink (the run directory's log).
//
// The implementation uses spdlog, but no fmt or spdlog type appears here: the torch wheel ships its own fmt
// headers, which clash with Debian's spdlog, so log.cpp is compiled without torch's include path and this
// header is all the rest of aha sees. Messages are built with operator<< (aha::log::info("step ", step, "
// loss ", loss)).
//
// The sinks are process-wide, as a terminal and a log file are; nothing else in aha is.
#pragma once

#include <string>
#include <string_view>

#include "aha/core/error.h"

namespace aha::log {

enum class Level { trace, debug, info, warn, error, off };

// Parses "trace|debug|info|warn|error|off"; throws aha::Error naming the bad value otherwise.
Level parse_level(std::string_view name);
std::string_view level_name(Level level);

// Messages below `level` are dropped by every sink.
void set_level(Level level);
Level level();

// Console output (stderr, coloured when it is a terminal) on or off.
void set_console(bool enabled);

// Also write every message to `path` (created, appended to). Replaces an earlier file sink.
void open_file(const std::string& path);
void close_file();
void flush();

void write(Level level, std::string_view message);

template <class... Args>
void trace(const Args&... args) {
  if (level() <= Level::trace) write(Level::trace, str(args...));
}
template <class... Args>
void debug(const Args&... args) {
  if (level() <= Level::debug) write(Level::debug, str(args...));
}
template <class... Args>
void info(const Args&... args) {
  if (level() <= Level::info) write(Level::info, str(args...));
}
template <class... Args>
void warn(const Args&... args) {
  if (level() <= Level::warn) write(Level::warn, str(args...));
}
template <class... Args>
void error(const Args&... args) {
  if (level() <= Level::error) write(Level::error, str(args...));
}

}  // namespace aha::log
