// A ProcessSet whose processes follow a script instead of running: "exit 3 after
// 0.5 s", "ignore SIGTERM", "die of SIGSEGV after 2 s". Wait() advances a FakeClock
// to the next scripted event, so supervision scenarios run in microseconds.
//
// Besides the processes it spawns, it can play processes it did not spawn but that
// trainrun hears about, as an MPI job's ranks (mpirun starts them; each one's wrapper
// reports its start and end to trainrun): ScriptReported().
#pragma once

#include <signal.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/process/process.h"
#include "tests/fakes/fake_clock.h"

namespace trainrun::testing {

struct ProcessScript {
  // When the process ends by itself, and how; none = runs until signalled.
  std::optional<Duration> exit_after;
  ExitStatus exit_status;
  // How it reacts to SIGTERM/SIGINT: exits this long after (with that signal), or
  // ignores it when false.
  bool honours_term = true;
  Duration term_delay = std::chrono::milliseconds(10);
  // In an uninterruptible sleep: even SIGKILL does not end it, and Inspect() says
  // state 'D' in "request_wait_answer".
  bool unkillable = false;
  // Spawn fails with this status instead (e.g. kNotFound).
  std::optional<Status> spawn_error;
};

class ScriptedProcessSet : public ProcessSet {
 public:
  explicit ScriptedProcessSet(FakeClock* clock) : clock_(clock) {}

  // The script for the process whose environment has RANK=<rank>.
  void Script(int rank, ProcessScript script) { scripts_[rank] = script; }
  // trainrun itself receives `signal` at `at` (time since the fake epoch).
  void SendSignalAt(Duration at, int signal) { signals_.push_back({TimePoint{} + at, signal}); }

  // A process for `rank` that this set did not spawn: at `start_at` (time since the
  // fake epoch) it gets a pid and `on_start(pid)` is called; from then on it follows
  // `script` (exit_after counts from its start) and reacts to SignalGroup like a
  // spawned one. When it ends, `on_exit(status)` is called; Wait() never returns a
  // kExited event for it (a ProcessSet does not report what it did not spawn). Both
  // callbacks run inside Wait(), where a rank server's thread would call in.
  void ScriptReported(int rank, Duration start_at, ProcessScript script,
                      std::function<void(int pid)> on_start,
                      std::function<void(const ExitStatus&)> on_exit) {
    reported_.push_back(
        {TimePoint{} + start_at, rank, script, std::move(on_start), std::move(on_exit)});
  }

  Result<int> Spawn(const SpawnSpec& spec) override {
    int rank = RankOf(spec);
    ProcessScript script = scripts_.count(rank) ? scripts_[rank] : ProcessScript{};
    if (script.spawn_error) return *script.spawn_error;
    int pid = next_pid_++;
    Proc proc;
    proc.rank = rank;
    proc.script = script;
    if (script.exit_after) {
      proc.exit_at = clock_->Now() + *script.exit_after;
      proc.exit_status = script.exit_status;
    }
    procs_[pid] = proc;
    spawned_.push_back(rank);
    return pid;
  }

  bool Running(int pid) override {
    auto it = procs_.find(pid);
    if (it == procs_.end() || it->second.reaped) return false;
    return !it->second.exit_at || *it->second.exit_at > clock_->Now();
  }

  Status SignalGroup(int pgid, int signal) override {
    signals_sent_.push_back({pgid, signal, clock_->Now()});
    auto it = procs_.find(pgid);
    if (it == procs_.end() || it->second.reaped) return Status::Ok();
    Proc& proc = it->second;
    ExitStatus killed;
    killed.signal = signal;
    if (proc.script.unkillable) return Status::Ok();
    if (signal == SIGKILL) {
      Schedule(proc, clock_->Now(), killed);
    } else if ((signal == SIGTERM || signal == SIGINT) && proc.script.honours_term) {
      Schedule(proc, clock_->Now() + proc.script.term_delay, killed);
    }
    return Status::Ok();
  }

  std::vector<ProcessEvent> Wait(std::optional<TimePoint> deadline) override {
    if (interrupted_) {
      interrupted_ = false;
      ProcessEvent e;
      e.kind = ProcessEvent::Kind::kInterrupt;
      return {e};
    }
    std::optional<TimePoint> next;
    for (auto& [pid, proc] : procs_) {
      if (!proc.reaped && proc.exit_at && (!next || *proc.exit_at < *next)) next = proc.exit_at;
    }
    for (const auto& s : signals_) {
      if (!s.delivered && (!next || s.at < *next)) next = s.at;
    }
    for (const auto& r : reported_) {
      if (!r.started && (!next || r.at < *next)) next = r.at;
    }
    if (++waits_ > kMaxWaits) {
      ADD_FAILURE() << "Wait() was called " << kMaxWaits << " times without the run ending; "
                    << "still running: " << LiveRanks();
      return KillEverything();
    }
    if (!next || (deadline && *deadline < *next)) {
      if (!deadline) {
        // A real Wait would block for ever: nothing is scheduled and no deadline
        // given. Fail now, then end every process so the caller's loop ends too.
        stuck_ = true;
        ADD_FAILURE() << "Wait() would block for ever with nothing scheduled; still running: "
                      << LiveRanks() << " (were the other ranks never stopped?)";
        return KillEverything();
      }
      clock_->AdvanceTo(*deadline);
      return {};
    }
    clock_->AdvanceTo(*next);
    std::vector<ProcessEvent> events;
    for (auto& s : signals_) {
      if (!s.delivered && s.at <= clock_->Now()) {
        s.delivered = true;
        ProcessEvent e;
        e.kind = ProcessEvent::Kind::kSignal;
        e.signal = s.signal;
        events.push_back(e);
      }
    }
    std::vector<std::function<void()>> reports;  // called once the maps are consistent
    for (auto& [pid, proc] : procs_) {
      if (!proc.reaped && proc.exit_at && *proc.exit_at <= clock_->Now()) {
        proc.reaped = true;
        if (proc.on_exit) {
          reports.push_back(
              [on_exit = proc.on_exit, status = proc.exit_status] { on_exit(status); });
          continue;
        }
        ProcessEvent e;
        e.kind = ProcessEvent::Kind::kExited;
        e.pid = pid;
        e.status = proc.exit_status;
        events.push_back(e);
      }
    }
    for (auto& r : reported_) {
      if (r.started || r.at > clock_->Now()) continue;
      r.started = true;
      int pid = next_pid_++;
      Proc proc;
      proc.rank = r.rank;
      proc.script = r.script;
      proc.on_exit = r.on_exit;
      if (r.script.exit_after) {
        proc.exit_at = clock_->Now() + *r.script.exit_after;
        proc.exit_status = r.script.exit_status;
      }
      procs_[pid] = proc;
      reports.push_back([on_start = r.on_start, pid] { on_start(pid); });
    }
    for (const auto& report : reports) report();
    return events;
  }

  void Interrupt() override { interrupted_ = true; }
  ProcessState Inspect(int pid) override {
    auto it = procs_.find(pid);
    if (it == procs_.end() || it->second.reaped) return {};
    if (it->second.script.unkillable) return {'D', "request_wait_answer"};
    return {'S', "do_wait"};
  }
  Clock* clock() override { return clock_; }

  struct SentSignal {
    int pgid;
    int signal;
    TimePoint at;
  };
  const std::vector<SentSignal>& signals_sent() const { return signals_sent_; }
  const std::vector<int>& spawned_ranks() const { return spawned_; }
  // True if Wait() was asked to block for ever with nothing scheduled: a bug.
  bool stuck() const { return stuck_; }
  int PidOf(int rank) const {
    for (const auto& [pid, proc] : procs_) {
      if (proc.rank == rank) return pid;
    }
    return -1;
  }

 private:
  struct Proc {
    int rank = 0;
    ProcessScript script;
    std::optional<TimePoint> exit_at;
    ExitStatus exit_status;
    bool reaped = false;
    std::function<void(const ExitStatus&)> on_exit;  // set for a reported process
  };
  struct Reported {
    TimePoint at;
    int rank;
    ProcessScript script;
    std::function<void(int)> on_start;
    std::function<void(const ExitStatus&)> on_exit;
    bool started = false;
  };
  struct PendingSignal {
    TimePoint at;
    int signal;
    bool delivered = false;
  };

  // Every live process ends now by SIGKILL: how a stuck scenario is cut short.
  std::vector<ProcessEvent> KillEverything() {
    std::vector<ProcessEvent> events;
    std::vector<std::function<void(const ExitStatus&)>> reported_exits;
    ExitStatus killed;
    killed.signal = SIGKILL;
    for (auto& [pid, proc] : procs_) {
      if (proc.reaped) continue;
      proc.reaped = true;
      if (proc.on_exit) {
        reported_exits.push_back(proc.on_exit);
        continue;
      }
      ProcessEvent e;
      e.kind = ProcessEvent::Kind::kExited;
      e.pid = pid;
      e.status = killed;
      events.push_back(e);
    }
    for (auto& r : reported_) r.started = true;  // never to start now
    for (const auto& on_exit : reported_exits) on_exit(killed);
    return events;
  }

  std::string LiveRanks() const {
    std::string out;
    for (const auto& [pid, proc] : procs_) {
      if (proc.reaped) continue;
      out += (out.empty() ? "rank " : ", rank ") + std::to_string(proc.rank);
    }
    return out.empty() ? "nothing" : out;
  }

  // The earliest of what is scheduled and `at` wins: a process dies once.
  static void Schedule(Proc& proc, TimePoint at, ExitStatus status) {
    if (proc.exit_at && *proc.exit_at <= at) return;
    proc.exit_at = at;
    proc.exit_status = status;
  }

  static int RankOf(const SpawnSpec& spec) {
    for (const std::string& e : spec.env) {
      if (e.rfind("RANK=", 0) == 0) return std::stoi(e.substr(5));
    }
    return -1;
  }

  FakeClock* clock_;
  std::map<int, ProcessScript> scripts_;
  std::map<int, Proc> procs_;
  std::vector<PendingSignal> signals_;
  std::vector<Reported> reported_;
  std::vector<SentSignal> signals_sent_;
  std::vector<int> spawned_;
  int next_pid_ = 1000;
  // A scenario that needs more waits than this is spinning: fail it.
  static constexpr int kMaxWaits = 100'000;
  int waits_ = 0;
  bool interrupted_ = false;
  bool stuck_ = false;
};

}  // namespace trainrun::testing
