// Compiled WITHOUT torch's include path (see log.h): spdlog and Debian's fmt are used here only.
#include "aha/core/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>
#include <mutex>

namespace aha::log {
namespace {

struct State {
  std::mutex mutex;
  std::shared_ptr<spdlog::sinks::stderr_color_sink_mt> console =
      std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  std::shared_ptr<spdlog::sinks::basic_file_sink_mt> file;
  std::shared_ptr<spdlog::logger> logger;
  std::atomic<Level> level{Level::info};
  bool console_on = true;

  State() { rebuild(); }

  // Called with the mutex held (or from the constructor).
  void rebuild() {
    std::vector<spdlog::sink_ptr> sinks;
    if (console_on) sinks.push_back(console);
    if (file) sinks.push_back(file);
    logger = std::make_shared<spdlog::logger>("aha", sinks.begin(), sinks.end());
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %v");
    logger->set_level(spdlog::level::trace);  // filtering happens in aha::log::level
    logger->flush_on(spdlog::level::warn);
  }
};

State& state() {
  static State s;
  return s;
}

spdlog::level::level_enum to_spdlog(Level l) {
  switch (l) {
    case Level::trace:
      return spdlog::level::trace;
    case Level::debug:
      return spdlog::level::debug;
    case Level::info:
      return spdlog::level::info;
    case Level::warn:
      return spdlog::level::warn;
    case Level::error:
      return spdlog::level::err;
    case Level::off:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

}  // namespace

Level parse_level(std::string_view name) {
  for (Level l : {Level::trace, Level::debug, Level::info, Level::warn, Level::error, Level::off}) {
    if (level_name(l) == name) return l;
  }
  throw Error(str("unknown log level \"", name, "\" (expected trace, debug, info, warn, error or off)"));
}

std::string_view level_name(Level l) {
  switch (l) {
    case Level::trace:
      return "trace";
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warn";
    case Level::error:
      return "error";
    case Level::off:
      return "off";
  }
  return "?";
}

void set_level(Level l) {
  state().level.store(l);
}
Level level() {
  return state().level.load();
}

void set_console(bool enabled) {
  State& s = state();
  std::lock_guard lock(s.mutex);
  s.console_on = enabled;
  s.rebuild();
}

void open_file(const std::string& path) {
  State& s = state();
  std::lock_guard lock(s.mutex);
  try {
    s.file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
  } catch (const spdlog::spdlog_ex& e) {
    throw Error(str("cannot open log file: ", e.what()), path);
  }
  s.rebuild();
}

void close_file() {
  State& s = state();
  std::lock_guard lock(s.mutex);
  if (s.file) s.file->flush();
  s.file.reset();
  s.rebuild();
}

void flush() {
  State& s = state();
  std::lock_guard lock(s.mutex);
  s.logger->flush();
}

void write(Level l, std::string_view message) {
  if (l < level() || l == Level::off) return;
  State& s = state();
  std::lock_guard lock(s.mutex);
  s.logger->log(to_spdlog(l), spdlog::string_view_t(message.data(), message.size()));
}

}  // namespace aha::log
