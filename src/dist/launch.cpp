#include "aha/dist/launch.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <thread>

#include "aha/core/error.h"

namespace aha::dist {

namespace {

volatile sig_atomic_t g_pending_signal = 0;

extern "C" void aha_launch_on_signal(int sig) {
  g_pending_signal = sig;
}

using Clock = std::chrono::steady_clock;

struct Rank {
  pid_t pid = -1;
  int out = -1;  // read end of its output pipe (prefix_output)
  std::string partial;
  bool running = false;
  int status = 0;
};

void write_all(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// Reads what is available; writes whole lines (and, at the end, the rest) with the rank's prefix.
void pump(Rank& r, int64_t rank, bool final) {
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(r.out, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    r.partial.append(buf, static_cast<size_t>(n));
    if (!final) break;
  }
  const std::string prefix = "[rank " + std::to_string(rank) + "] ";
  size_t nl;
  std::string out;
  while ((nl = r.partial.find('\n')) != std::string::npos) {
    out += prefix + r.partial.substr(0, nl + 1);
    r.partial.erase(0, nl + 1);
  }
  if (final && !r.partial.empty()) {
    out += prefix + r.partial + "\n";
    r.partial.clear();
  }
  write_all(1, out);
}

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

std::string describe(int status) {
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + std::to_string(WTERMSIG(status));
  return "exited with code " + std::to_string(exit_code(status));
}

}  // namespace

int64_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  AHA_CHECK(fd >= 0, "cannot open a socket to find a free port: ", std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  ::close(fd);
  AHA_CHECK(ok, "cannot find a free TCP port on 127.0.0.1: ", std::strerror(errno));
  return ntohs(a.sin_port);
}

int launch(const LaunchOptions& o) {
  AHA_CHECK(o.nproc_per_node >= 1, "--nproc-per-node must be at least 1, got ", o.nproc_per_node);
  AHA_CHECK(o.nnodes >= 1, "--nnodes must be at least 1, got ", o.nnodes);
  AHA_CHECK(o.node_rank >= 0 && o.node_rank < o.nnodes, "--node-rank ", o.node_rank, " is outside 0..",
            o.nnodes - 1);
  AHA_CHECK(!o.command.empty(),
            "no command to launch: put it after --, e.g. aha launch --nproc-per-node 2 -- "
            "aha train -c run.json");
  AHA_CHECK(o.master_port >= 0 && o.master_port < 65536, "--master-port ", o.master_port,
            " is not a TCP port");
  const int64_t port = o.master_port > 0 ? o.master_port : (o.nnodes == 1 ? free_port() : 29500);
  const int64_t world = o.nproc_per_node * o.nnodes;

  std::vector<std::string> argv_s = o.command;
  if (argv_s[0] == "aha" && !o.aha_executable.empty()) argv_s[0] = o.aha_executable;
  std::vector<char*> argv;
  for (auto& a : argv_s)
    argv.push_back(a.data());
  argv.push_back(nullptr);

  // One OpenMP thread team per core: torchrun's rule is 1 thread per rank; cores / ranks keeps CPU runs fast.
  std::string omp;
  if (!std::getenv("OMP_NUM_THREADS")) {
    const auto cores = static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
    omp = std::to_string(std::max<int64_t>(1, cores / o.nproc_per_node));
  }

  struct sigaction sa {
  }, old_int{}, old_term{};
  sa.sa_handler = aha_launch_on_signal;
  sigemptyset(&sa.sa_mask);
  g_pending_signal = 0;
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);
  const pid_t parent = ::getpid();

  std::vector<Rank> ranks(static_cast<size_t>(o.nproc_per_node));
  for (int64_t lr = 0; lr < o.nproc_per_node; ++lr) {
    int fds[2] = {-1, -1};
    if (o.prefix_output) AHA_CHECK(::pipe(fds) == 0, "pipe: ", std::strerror(errno));
    const pid_t pid = ::fork();
    AHA_CHECK(pid >= 0, "fork failed for local rank ", lr, ": ", std::strerror(errno));
    if (pid == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      const int64_t rank = o.node_rank * o.nproc_per_node + lr;
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(lr).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(o.nproc_per_node).c_str(), 1);
      ::setenv("GROUP_RANK", std::to_string(o.node_rank).c_str(), 1);
      ::setenv("MASTER_ADDR", o.master_addr.c_str(), 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      ::unsetenv("TORCHELASTIC_USE_AGENT_STORE");
      if (!omp.empty()) ::setenv("OMP_NUM_THREADS", omp.c_str(), 1);
      if (o.prefix_output) {
        ::dup2(fds[1], 1);
        ::dup2(fds[1], 2);
        ::close(fds[0]);
        ::close(fds[1]);
      }
      ::execvp(argv[0], argv.data());
      const std::string msg =
          std::string("aha launch: cannot run ") + argv[0] + ": " + std::strerror(errno) + "\n";
      write_all(2, msg);
      ::_exit(127);
    }
    ::setpgid(pid, pid);  // also here: a signal may come before the child runs
    Rank& r = ranks[static_cast<size_t>(lr)];
    r.pid = pid;
    r.running = true;
    if (o.prefix_output) {
      ::close(fds[1]);
      r.out = fds[0];
    }
  }

  int failed_code = 0;
  int64_t failed_rank = -1;
  std::optional<Clock::time_point> kill_at;
  bool killed = false;
  auto alive = [&] {
    int n = 0;
    for (const auto& r : ranks)
      n += r.running;
    return n;
  };
  // Each rank leads its own process group: the signal reaches what it started too (reward workers, ...).
  auto signal_all = [&](int sig) {
    for (const auto& r : ranks)
      if (r.running && ::kill(-r.pid, sig) != 0) ::kill(r.pid, sig);
  };
  while (alive() > 0) {
    if (o.prefix_output) {
      std::vector<pollfd> pf;
      std::vector<size_t> which;
      for (size_t i = 0; i < ranks.size(); ++i)
        if (ranks[i].out >= 0) {
          pf.push_back({ranks[i].out, POLLIN, 0});
          which.push_back(i);
        }
      if (!pf.empty() && ::poll(pf.data(), pf.size(), 100) > 0) {
        for (size_t k = 0; k < pf.size(); ++k)
          if (pf[k].revents & (POLLIN | POLLHUP))
            pump(ranks[which[k]], o.node_rank * o.nproc_per_node + static_cast<int64_t>(which[k]), false);
      } else if (pf.empty()) {
        ::usleep(100000);
      }
    } else {
      ::usleep(50000);
    }
    if (const int sig = g_pending_signal) {
      g_pending_signal = 0;
      std::fprintf(stderr, "aha launch: forwarding signal %d to %d rank(s)\n", sig, alive());
      signal_all(sig);
    }
    for (size_t i = 0; i < ranks.size(); ++i) {
      Rank& r = ranks[i];
      if (!r.running) continue;
      int status = 0;
      const pid_t got = ::waitpid(r.pid, &status, WNOHANG);
      if (got != r.pid) continue;
      r.running = false;
      r.status = status;
      if (r.out >= 0) {
        pump(r, o.node_rank * o.nproc_per_node + static_cast<int64_t>(i), true);
        ::close(r.out);
        r.out = -1;
      }
      const int code = exit_code(status);
      if (code != 0 && failed_rank < 0) {
        failed_rank = o.node_rank * o.nproc_per_node + static_cast<int64_t>(i);
        failed_code = code;
        if (alive() > 0) {
          std::fprintf(stderr, "aha launch: rank %lld %s; stopping the other %d rank(s)\n",
                       static_cast<long long>(failed_rank), describe(status).c_str(), alive());
          signal_all(SIGTERM);
          kill_at = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.grace_s * 1000));
        } else {
          std::fprintf(stderr, "aha launch: rank %lld %s\n", static_cast<long long>(failed_rank),
                       describe(status).c_str());
        }
      }
    }
    if (kill_at && !killed && Clock::now() >= *kill_at && alive() > 0) {
      std::fprintf(stderr, "aha launch: %d rank(s) still running %.0f s after SIGTERM: SIGKILL\n", alive(),
                   o.grace_s);
      signal_all(SIGKILL);
      killed = true;
    }
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  return failed_code;
}

}  // namespace aha::dist
