// The external-process reward (process.h): one worker child, JSON lines over pipes, deadlines with poll().
//
// What must hold: aha never blocks past the deadline (both pipe ends are non-blocking and every wait is a
// poll with the time left), never dies of SIGPIPE when the worker is gone (writes run with SIGPIPE blocked
// and a pending one is consumed), never leaves a zombie (every child is reaped after its process group is
// killed), and never runs a shell.
#include "aha/reward/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

#include "aha/core/error.h"
#include "aha/core/log.h"

extern char** environ;

namespace aha::reward {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxReplyBytes = size_t{64} << 20;  // a longer line is garbage
constexpr int kProtocol = 1;

std::string join(const std::vector<std::string>& argv) {
  std::string out = "[";
  for (size_t i = 0; i < argv.size(); ++i)
    out += (i ? ", " : "") + argv[i];
  return out + "]";
}

// write() that returns EPIPE instead of raising SIGPIPE when the reader is gone. The signal is blocked in
// this thread only, and consumed if the write raised it, so no process-wide handler is touched.
ssize_t write_no_sigpipe(int fd, const char* data, size_t size) {
  sigset_t pipe_set, old_mask, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
  const ssize_t n = ::write(fd, data, size);
  const int err = errno;
  if (n < 0 && err == EPIPE && !was_pending) {
    const timespec zero{0, 0};
    while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  errno = err;
  return n;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) +
           ")";
  return "ended";
}

// One running worker: its pid (also its process group) and our ends of its stdin and stdout.
class Worker {
 public:
  explicit Worker(const std::vector<std::string>& argv) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0) AHA_FAIL("pipe: ", std::strerror(errno));
    if (pipe2(out, O_CLOEXEC) != 0) {
      const int err = errno;
      ::close(in[0]);
      ::close(in[1]);
      AHA_FAIL("pipe: ", std::strerror(err));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGCHLD})
      sigaddset(&defaults, sig);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    std::vector<char*> args;
    for (const auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = posix_spawnp(&pid_, args[0], &actions, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(in[0]);
    ::close(out[1]);
    if (rc != 0) {
      ::close(in[1]);
      ::close(out[0]);
      throw Error(std::string("cannot start: ") + std::strerror(rc), "reward process " + join(argv));
    }
    in_ = in[1];
    out_ = out[0];
    fcntl(in_, F_SETFL, fcntl(in_, F_GETFL) | O_NONBLOCK);
    fcntl(out_, F_SETFL, fcntl(out_, F_GETFL) | O_NONBLOCK);
  }

  // Closes its stdin and gives it half a second to exit, then kills its process group.
  ~Worker() {
    close_fd(in_);
    const auto until = Clock::now() + std::chrono::milliseconds(500);
    while (!exited_ && Clock::now() < until) {
      poll_exit();
      if (!exited_) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    kill();
    close_fd(out_);
  }

  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  pid_t pid() const { return pid_; }

  // Kills the worker's process group (whatever it started too) and reaps it; returns how it ended. The
  // worker is reaped only here, so its pid, which is also the group's id, cannot have been reused.
  std::string kill() {
    if (!reaped_) {
      ::kill(-pid_, SIGKILL);
      int status = 0;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      reaped_ = true;
      if (!exited_) ended_ = describe_status(status);
    }
    return ended_;
  }

  // After the worker closed its stdout: waits up to `ms` for it to exit, so that the log can say how.
  void await_exit(int ms) {
    const auto until = Clock::now() + std::chrono::milliseconds(ms);
    while (!exited_ && Clock::now() < until) {
      poll_exit();
      if (!exited_) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  // Output the worker wrote outside a request (or its exit) while it was idle.
  bool idle_output() {
    pollfd p{out_, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }

  // Writes `request` and reads one line back within `timeout_s`; on failure returns false with the reason.
  bool exchange(const std::string& request, std::string& reply, double timeout_s, std::string& why) {
    const auto deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
    size_t written = 0;
    std::string buffer;
    char chunk[65536];
    while (true) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        why = "did not answer within " + str(timeout_s) + " s";
        return false;
      }
      pollfd fds[2];
      nfds_t n = 0;
      if (written < request.size()) fds[n++] = {in_, POLLOUT, 0};
      const nfds_t read_at = n;
      fds[n++] = {out_, POLLIN, 0};
      const int ready = ::poll(fds, n, static_cast<int>(std::min<int64_t>(left, 1000)));
      if (ready < 0 && errno != EINTR) {
        why = std::string("poll failed: ") + std::strerror(errno);
        return false;
      }
      if (ready <= 0) continue;
      if (read_at == 1 && fds[0].revents != 0) {
        const ssize_t k = write_no_sigpipe(in_, request.data() + written, request.size() - written);
        if (k > 0) {
          written += static_cast<size_t>(k);
        } else if (k < 0 && errno != EAGAIN && errno != EINTR) {
          if (errno == EPIPE) {  // the worker closed its stdin or died: how it ended tells more
            await_exit(200);
            why = exited_ ? ended_ : "closed its stdin before reading the request";
          } else {
            why = std::string("writing the request failed: ") + std::strerror(errno);
          }
          return false;
        }
      }
      if (fds[read_at].revents == 0) continue;
      const ssize_t k = ::read(out_, chunk, sizeof chunk);
      if (k < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        why = std::string("reading the answer failed: ") + std::strerror(errno);
        return false;
      }
      if (k == 0) {
        await_exit(200);
        why = exited_ ? ended_ : "closed its stdout";
        return false;
      }
      buffer.append(chunk, static_cast<size_t>(k));
      const size_t newline = buffer.find('\n');
      if (newline == std::string::npos) {
        if (buffer.size() > kMaxReplyBytes) {
          why = "answered a line longer than " + std::to_string(kMaxReplyBytes >> 20) + " MiB";
          return false;
        }
        continue;
      }
      if (written < request.size()) {
        why = "answered before reading the whole request: " + preview(buffer);
        return false;
      }
      if (newline + 1 != buffer.size()) {
        why = "wrote more than one line: " + preview(buffer.substr(newline + 1));
        return false;
      }
      reply = buffer.substr(0, newline);
      return true;
    }
  }

  static std::string preview(const std::string& s) {
    std::string p = s.substr(0, 80);
    for (char& c : p)
      if (c == '\n' || c == '\r') c = ' ';
    return "\"" + p + (s.size() > 80 ? "...\"" : "\"");
  }

 private:
  // Notices an exit without reaping (WNOWAIT): the zombie keeps the pid ours until kill().
  void poll_exit() {
    siginfo_t info{};
    if (exited_ || waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
        info.si_pid != pid_)
      return;
    exited_ = true;
    ended_ = info.si_code == CLD_EXITED ? "exited with status " + std::to_string(info.si_status)
                                        : "was killed by signal " + std::to_string(info.si_status) + " (" +
                                              strsignal(info.si_status) + ")";
  }
  static void close_fd(int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }

  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
  bool exited_ = false, reaped_ = false;
  std::string ended_;  // how the worker ended, once it has
};

// The worker's answer for n samples, or false with the reason.
bool parse_reply(const std::string& line, size_t n, std::vector<Score>& out, std::string& why) {
  const Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    why = "answered something that is not JSON: " + Worker::preview(line);
    return false;
  }
  if (!j.is_object() || !j.contains("scores") || !j["scores"].is_array()) {
    why = "answered without a \"scores\" list: " + Worker::preview(line);
    return false;
  }
  const Json& scores = j["scores"];
  if (scores.size() != n) {
    why = "answered " + std::to_string(scores.size()) + " scores for " + std::to_string(n) + " samples";
    return false;
  }
  out.assign(n, Score{});
  for (size_t i = 0; i < n; ++i) {
    const Json& e = scores[i];
    const Json* value = &e;
    if (e.is_object()) {
      for (auto it = e.begin(); it != e.end(); ++it) {
        if (it.key() != "score" && it.key() != "extras") {
          why = "score " + std::to_string(i) + " has an unknown key \"" + it.key() + "\"";
          return false;
        }
      }
      value = e.contains("score") ? &e["score"] : nullptr;
      if (e.contains("extras")) {
        const Json& x = e["extras"];
        if (!x.is_object()) {
          why = "the extras of score " + std::to_string(i) + " are not an object";
          return false;
        }
        for (auto it = x.begin(); it != x.end(); ++it) {
          if (!it->is_number()) {
            why = "extra \"" + it.key() + "\" of score " + std::to_string(i) + " is not a number";
            return false;
          }
          out[i].extras.emplace_back(it.key(), it->get<double>());
        }
      }
    }
    if (value && value->is_number()) {
      out[i].value = value->get<double>();
    } else if (value && !value->is_null()) {
      why = "score " + std::to_string(i) + " is a " + value->type_name() + ", not a number or null";
      return false;
    }
  }
  return true;
}

Json sample_json(const Sample& s) {
  return Json{{"id", s.id},
              {"prompt", std::string(s.prompt)},
              {"completion", std::string(s.completion)},
              {"completion_tokens", s.completion_tokens},
              {"truncated", s.truncated},
              {"fields", s.fields && s.fields->is_object() ? *s.fields : Json::object()}};
}

std::string sample_ids(const std::vector<Sample>& samples, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end && i < begin + 20; ++i) {
    if (i > begin) out += ", ";
    if (samples[i].id >= 0) {
      out += std::to_string(samples[i].id);
    } else {
      out += '#';
      out += std::to_string(i);
      out += " of the batch";
    }
  }
  if (end - begin > 20) out += ", ... (" + std::to_string(end - begin) + " in all)";
  return out;
}

}  // namespace

struct ProcessReward::State {
  ProcessOptions options;
  std::mutex mutex;
  std::unique_ptr<Worker> worker;  // null between a failure and the next chunk
  int64_t starts = 0;
};

ProcessReward::ProcessReward(ProcessOptions options) : state_(std::make_unique<State>()) {
  AHA_CHECK(!options.argv.empty(), "reward ", options.name, ": argv is empty");
  AHA_CHECK(options.timeout_s > 0, "reward ", options.name, ": timeout_s must be > 0");
  AHA_CHECK(options.batch_size > 0, "reward ", options.name, ": batch_size must be > 0");
  state_->options = std::move(options);
  state_->worker = std::make_unique<Worker>(state_->options.argv);
  state_->starts = 1;
}

ProcessReward::~ProcessReward() = default;

int64_t ProcessReward::restarts() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->starts - 1;
}

Score ProcessReward::score(const Sample& sample) const {
  return score_batch({sample})[0];
}

std::vector<Score> ProcessReward::score_batch(const std::vector<Sample>& samples) const {
  State& st = *state_;
  const ProcessOptions& o = st.options;
  std::vector<Score> out(samples.size());
  std::lock_guard<std::mutex> lock(st.mutex);
  const std::string who = "reward " + o.name + " " + join(o.argv);
  for (size_t begin = 0; begin < samples.size(); begin += static_cast<size_t>(o.batch_size)) {
    const size_t end = std::min(samples.size(), begin + static_cast<size_t>(o.batch_size));
    // A worker that printed or exited while idle is replaced before it sees the next request.
    if (st.worker && st.worker->idle_output()) {
      log::warn(who, ": the worker wrote output (or exited) between requests; restarting it");
      st.worker.reset();
    }
    std::string why;
    bool ok = false;
    if (!st.worker) {
      try {
        st.worker = std::make_unique<Worker>(o.argv);
        ++st.starts;
      } catch (const Error& e) {
        why = e.message();
      }
    }
    if (st.worker) {
      Json request{{"protocol", kProtocol}, {"samples", Json::array()}};
      for (size_t i = begin; i < end; ++i)
        request["samples"].push_back(sample_json(samples[i]));
      const std::string line = request.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
      std::string reply;
      std::vector<Score> scores;
      ok = st.worker->exchange(line, reply, o.timeout_s, why) && parse_reply(reply, end - begin, scores, why);
      if (ok) {
        for (size_t i = begin; i < end; ++i)
          out[i] = std::move(scores[i - begin]);
      }
    }
    if (ok) continue;
    st.worker.reset();  // kills its process group
    const std::string fallback = o.fallback_score ? str(*o.fallback_score) : "reward.fallback_score";
    log::warn(who, ": the worker ", why, "; samples ", sample_ids(samples, begin, end),
              " get the fallback score ", fallback, "; restarting the worker");
    for (size_t i = begin; i < end; ++i) {
      out[i] = Score::failure(o.fallback_score);
      out[i].extras.emplace_back("failed", 1.0);
    }
  }
  return out;
}

ProcessOptions process_options(const Json& p) {
  const std::string name = "process";
  check_param_keys(p, name, {"argv", "timeout_s", "batch_size", "fallback_score"});
  ProcessOptions o;
  o.argv = param_strings(p, name, "argv");
  if (o.argv.empty() || o.argv[0].empty())
    throw Error(
        "needs the worker's argv, e.g. [\"python3\", \"reward.py\"] (no shell: one string per argument)",
        "reward process: params.argv");
  o.timeout_s = param_number(p, name, "timeout_s", o.timeout_s);
  if (!(o.timeout_s > 0)) throw Error("must be > 0", "reward process: params.timeout_s");
  const double batch = param_number(p, name, "batch_size", static_cast<double>(o.batch_size));
  if (!(batch >= 1) || batch != static_cast<double>(static_cast<int64_t>(batch)))
    throw Error("must be a whole number >= 1", "reward process: params.batch_size");
  o.batch_size = static_cast<int64_t>(batch);
  if (p.contains("fallback_score")) o.fallback_score = param_number(p, name, "fallback_score", 0);
  return o;
}

void register_process(Registry& r) {
  r.add(
      "process", [](const Json& p) { return std::make_unique<ProcessReward>(process_options(p)); },
      "an external worker in any language, over JSON lines on stdin/stdout (argv, timeout_s, batch_size)");
}

}  // namespace aha::reward
