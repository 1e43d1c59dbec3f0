// trainrun: the on-node runtime of a training job. See README.md and
// docs/architecture.md.
//
// main() owns the command line, the consoles and the exit code; everything else is
// in the libraries.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "base/fd_limit.h"
#include "base/redact.h"
#include "launcher/command_signals.h"
#include "launcher/exit_codes.h"
#include "launcher/history_command.h"
#include "launcher/mpi_rank_command.h"
#include "launcher/rsh_command.h"
#include "launcher/run_command.h"
#include "launcher/topology_command.h"
#include "launcher/version.h"
#include "runtime/process/process_posix.h"
#include "runtime/report/console.h"
#include "runtime/run/restart_policy.h"

namespace {

using trainrun::ConsoleRanks;

// The environment variable CLI11 reads for a flag: --node-rank -> TRAINRUN_NODE_RANK.
std::string EnvName(const std::string& flag) {
  std::string name = "TRAINRUN_";
  for (char c : flag) name += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  return name;
}

void AddHistoryFlag(CLI::App* app, std::string* history) {
  app->add_option("--history", *history,
                  "Run history URI (file:///path or a path, az://ACCOUNT/CONTAINER/prefix, "
                  "s3://BUCKET/prefix); default: $TRAINRUN_HISTORY, else "
                  "~/.local/share/trainrun/history")
      ->envname("TRAINRUN_HISTORY");
}

}  // namespace

int main(int argc, char** argv) {
  // Before any thread exists, so every thread inherits the mask.
  trainrun::BlockSupervisionSignals();
  // A node holds 3 descriptors per rank and one per control connection: the usual
  // soft limit of 1024 is far below what the hard limit allows (README, Limits).
  trainrun::Result<trainrun::FdLimit> fd_limit = trainrun::RaiseFdLimit();
  // Credentials trainrun may read (job token, storage keys, SAS tokens) are known by
  // value from here on, so no message, log or record can carry one.
  trainrun::RegisterSecretsFromEnvironment(environ);
  trainrun::Console out(STDOUT_FILENO);
  trainrun::Console err(STDERR_FILENO);

  // Open MPI's launch agent and the rank wrapper take a command line that is not
  // theirs to parse (it is full of options meant for orted or the program).
  if (argc >= 2 && std::string(argv[1]) == "rsh") {
    std::vector<std::string> words(argv + 2, argv + argc);
    if (!words.empty() && words[0] == "--") words.erase(words.begin());
    if (words.size() < 2) {
      err.Write("trainrun rsh: usage: trainrun rsh HOST COMMAND...\n", false);
      return 255;
    }
    std::string host = words[0];
    words.erase(words.begin());
    return trainrun::RshCommand(host, words, &err);
  }
  if (argc >= 2 && std::string(argv[1]) == "mpi-rank") {
    std::vector<std::string> words(argv + 2, argv + argc);
    if (!words.empty() && words[0] == "--") words.erase(words.begin());
    return trainrun::MpiRankCommand(words, &err);
  }

  // `trainrun check JOB [flags]` is `trainrun run` with the same flags, discovery and
  // rendezvous, that runs only the preflight (README "Preflight").
  bool check_only = false;
  std::vector<char*> args(argv, argv + argc);
  static char run_word[] = "run";
  if (argc >= 2 && std::string(argv[1]) == "check") {
    check_only = true;
    args[1] = run_word;
  }

  CLI::App app{"trainrun: runs a training job on this node (one `trainrun run` per node)",
               "trainrun"};
  app.set_version_flag("--version", std::string("trainrun ") + trainrun::kTrainrunVersion);
  app.require_subcommand(1);
  app.fallthrough();

  // trainrun run
  trainrun::RunOptions run;
  std::string console = "all";
  CLI::App* run_cmd = app.add_subcommand("run", "Run a job file on this node");
  run_cmd->add_option("job", run.job_file, "The job file (JSON, RunConfiguration fields)")
      ->required();
  auto flag = [&](const std::string& name, auto* value, const std::string& help) {
    return run_cmd->add_option("--" + name, *value, help)->envname(EnvName(name));
  };
  flag("node-rank", &run.node_rank, "This node's rank in the job (0 = head)");
  flag("nnodes", &run.nnodes, "Number of nodes in the job");
  flag("master-addr", &run.master_addr, "The head node's host name or address");
  CLI::Option* control_port =
      flag("control-port", &run.control_port,
           "The head's control port (default 29400; under Slurm 29400 + SLURM_JOB_ID mod 1000)")
          ->check(CLI::Range(1, 65535));
  flag("rendezvous-timeout", &run.rendezvous_timeout_seconds,
       "Seconds the nodes wait for each other (default: the job file's, else 600)")
      ->check(CLI::Range(1.0, 7 * 86400.0));
  flag("heartbeat-timeout", &run.heartbeat_timeout_seconds,
       "Seconds of silence after which a node is lost (default 10)")
      ->check(CLI::Range(1.0, 3600.0));
  flag("run-id", &run.run_id, "Run id (overrides the job file's runId)");
  flag("max-restarts", &run.max_restarts,
       "Times the ranks are started again after a retryable failure (overrides the job file's "
       "maxRestarts; default 0)")
      ->check(CLI::Range(0, trainrun::kMaxRestartsLimit));
  flag("workdir", &run.workdir, "Where run directories are made (default /tmp/trainrun)");
  flag("topology-xml", &run.topology_xml, "An hwloc XML topology to plan binding with");
  flag("grace-period", &run.grace_period_seconds,
       "Seconds between SIGTERM and SIGKILL when stopping ranks (default: fitted to the stop "
       "timeout when there is one, else 30)")
      ->check(CLI::Range(0.0, 86400.0));
  flag("unkillable-timeout", &run.unkillable_timeout_seconds,
       "Seconds trainrun waits for ranks after SIGKILL before it records them as unkillable "
       "and finalizes without them (default 60, less under a stop timeout)")
      ->check(CLI::Range(0.0, 86400.0));
  flag("stop-timeout", &run.stop_timeout_seconds,
       "Seconds the scheduler or container engine waits between its SIGTERM to trainrun and "
       "its SIGKILL; trainrun stops the ranks and uploads within it (default: Slurm's "
       "KillWait, 30 under Kubernetes, 10 in a container, else none; 0: none)")
      ->check(CLI::Range(0.0, 7.0 * 86400));
  flag("isolation", &run.isolation,
       "How the ranks' processes are kept from outliving trainrun: auto (a PID namespace "
       "where permitted, else process groups), process-group or none (default auto)")
      ->check(CLI::IsMember({"auto", "process-group", "none"}));
  flag("finalize-timeout", &run.finalize_timeout_seconds,
       "Seconds Finalizing keeps retrying uploads to an unreachable run history before it "
       "exits 74 with the files on local disk (default 600)")
      ->check(CLI::Range(0.0, 7.0 * 86400));
  flag("log-upload-interval", &run.log_upload_interval_seconds,
       "Seconds between uploads of the logs to run history while the ranks run (default 5)")
      ->check(CLI::Range(0.1, 3600.0));
  flag("lease-interval", &run.lease_interval_seconds,
       "Seconds between renewals of the run's lease in history; a run not renewed for 4 "
       "intervals is shown as Lost (default 15)")
      ->check(CLI::Range(0.1, 3600.0));
  flag("console", &console, "Rank output on the console: all, rank0 or none (default all)")
      ->check(CLI::IsMember({"all", "rank0", "none"}));
  AddHistoryFlag(run_cmd, &run.history);
  run_cmd->add_flag("--dry-run", run.dry_run, "Print the launch plan and start nothing")
      ->envname("TRAINRUN_DRY_RUN");
  run_cmd->add_flag("--verbose,-v", run.verbose, "Show trainrun's decisions on the terminal too")
      ->envname("TRAINRUN_VERBOSE");
  run_cmd
      ->add_flag("--json-events", run.json_events, "Report on stderr as JSON lines instead of text")
      ->envname("TRAINRUN_JSON_EVENTS");

  // trainrun history ...
  trainrun::HistoryOptions history;
  CLI::App* history_cmd = app.add_subcommand("history", "Browse run history");
  history_cmd->require_subcommand(1);
  AddHistoryFlag(history_cmd, &history.history);
  history_cmd->add_option("--experiment,-e", history.experiment, "Only this experiment");
  history_cmd
      ->add_option("--clock-skew-margin", history.clock_skew_margin_seconds,
                   "Seconds past its lease's expiry before a run is shown as Lost, for clocks "
                   "that disagree (default 30)")
      ->envname("TRAINRUN_CLOCK_SKEW_MARGIN")
      ->check(CLI::Range(0.0, 86400.0));
  CLI::App* list_cmd = history_cmd->add_subcommand("list", "List runs, newest first");
  list_cmd->add_flag("--json", history.json, "JSON instead of a table");
  list_cmd->add_option("--limit,-n", history.limit, "Only the newest N runs");
  CLI::App* show_cmd = history_cmd->add_subcommand("show", "Show one run's record");
  show_cmd->add_option("run", history.run_id, "Run id")->required();
  show_cmd->add_flag("--json", history.json, "The run record (run.json) as it is");
  CLI::App* files_cmd = history_cmd->add_subcommand("files", "List a run's files");
  files_cmd->add_option("run", history.run_id, "Run id")->required();
  CLI::App* download_cmd =
      history_cmd->add_subcommand("download", "Download a run's file or folder");
  download_cmd->add_option("run", history.run_id, "Run id")->required();
  download_cmd->add_option("path", history.path,
                           "File or folder in the run, e.g. outputs/model.pt or outputs "
                           "(default: everything)");
  download_cmd->add_option("-o,--output", history.output,
                           "Where to write it (default: its name in the current folder)");
  CLI::App* logs_cmd = history_cmd->add_subcommand("logs", "Print a run's logs");
  logs_cmd->add_option("run", history.run_id, "Run id")->required();
  logs_cmd->add_option("--rank", history.rank, "Only this rank's log");
  logs_cmd->add_flag("--system", history.system, "trainrun's system log instead of the ranks'");
  logs_cmd->add_flag("--follow,-f", history.follow, "Keep printing until the run ends");
  CLI::App* metrics_cmd = history_cmd->add_subcommand(
      "metrics", "The metrics a run's ranks logged: latest, min, max and steps");
  metrics_cmd->add_option("run", history.run_id, "Run id")->required();
  metrics_cmd->add_flag("--json", history.json, "JSON instead of a table");
  metrics_cmd->add_option("--plot", history.plot,
                          "Draw each metric against step, one line per rank, into this .svg");
  for (CLI::App* sub : {list_cmd, show_cmd, files_cmd, download_cmd, logs_cmd}) {
    sub->fallthrough();
  }

  // trainrun topology
  trainrun::TopologyOptions topology;
  CLI::App* topology_cmd =
      app.add_subcommand("topology", "Show GPUs, NUMA nodes, NICs and the per-rank binding plan");
  topology_cmd
      ->add_option("--topology-xml", topology.topology_xml,
                   "An hwloc XML topology instead of this machine's")
      ->envname("TRAINRUN_TOPOLOGY_XML");
  topology_cmd
      ->add_option("--nproc,-n", topology.nproc, "Ranks to plan (default: one per GPU, else 1)")
      ->check(CLI::Range(1, 4096));
  topology_cmd
      ->add_option("--gpus-per-process", topology.gpus_per_process, "GPUs per rank (default 1)")
      ->check(CLI::Range(1, 64));
  topology_cmd->add_flag("--json", topology.json, "JSON instead of tables");

  // Listed for the help; its command line is parsed as `run`'s (above).
  app.add_subcommand("check",
                     "Run only the job file's preflight (GPU health, NCCL check) on this node, "
                     "with `run`'s flags; exit 0 or 75");

  // Inside MPI jobs only: Open MPI's launch agent, and the wrapper of each rank.
  app.add_subcommand("rsh",
                     "Open MPI's remote launch agent in a trainrun MPI job: rsh HOST COMMAND...");
  app.add_subcommand("mpi-rank",
                     "Runs one rank of a trainrun MPI job under mpirun: mpi-rank -- PROGRAM...");

  CLI::App* help_cmd = app.add_subcommand("help", "Show this help");
  // Once a subcommand is parsed, app.help() describes that subcommand instead.
  const std::string usage = app.help();

  try {
    app.parse(static_cast<int>(args.size()), args.data());
  } catch (const CLI::ParseError& e) {
    // Prints the help, the version or the error (with CLI11's own words).
    int code = app.exit(e);
    return code == 0 ? 0 : trainrun::kExitUsage;
  }

  if (help_cmd->parsed()) {
    out.Write(usage, false);
    return 0;
  }
  if (run_cmd->parsed()) {
    run.check_only = check_only;
    if (fd_limit.ok()) {
      run.fd_limit_note =
          fd_limit->soft == fd_limit->before
              ? fmt::format("open-file limit (RLIMIT_NOFILE): {} (the hard limit is {})",
                            fd_limit->soft, fd_limit->hard)
              : fmt::format("open-file limit (RLIMIT_NOFILE): raised from {} to {}, the hard limit",
                            fd_limit->before, fd_limit->soft);
    } else {
      run.fd_limit_note =
          fmt::format("the open-file limit could not be raised: {}", fd_limit.status().message());
      run.fd_limit_failed = true;
    }
    if (control_port->count() == 0) {
      trainrun::ControlPortChoice port = trainrun::DefaultControlPort(trainrun::CurrentEnvMap());
      run.control_port = port.port;
      run.control_port_reason = port.reason;
    }
    run.console = console == "rank0"  ? ConsoleRanks::kRank0
                  : console == "none" ? ConsoleRanks::kNone
                                      : ConsoleRanks::kAll;
    return trainrun::RunJob(run, &out, &err);
  }
  // Every other command ends on SIGINT, SIGTERM or SIGHUP with 128 + the signal
  // (command_signals.h): at once when it writes no file, else once it has cleaned up.
  using HistoryCommand =
      int (*)(const trainrun::HistoryOptions&, trainrun::Console*, trainrun::Console*);
  auto interruptibly = [&](HistoryCommand command, trainrun::Duration grace) {
    return trainrun::RunInterruptibly(
        [&](const trainrun::CancelToken& cancel) {
          history.cancel = &cancel;
          return command(history, &out, &err);
        },
        grace);
  };
  constexpr trainrun::Duration kAtOnce{};
  if (topology_cmd->parsed()) {
    return trainrun::RunInterruptibly(
        [&](const trainrun::CancelToken&) { return trainrun::ShowTopology(topology, &out, &err); },
        kAtOnce);
  }
  if (list_cmd->parsed()) return interruptibly(trainrun::HistoryList, kAtOnce);
  if (show_cmd->parsed()) return interruptibly(trainrun::HistoryShow, kAtOnce);
  if (files_cmd->parsed()) return interruptibly(trainrun::HistoryFiles, kAtOnce);
  if (download_cmd->parsed())
    return interruptibly(trainrun::HistoryDownload, trainrun::kCommandStopGrace);
  if (logs_cmd->parsed()) return interruptibly(trainrun::HistoryLogs, trainrun::kCommandStopGrace);
  if (metrics_cmd->parsed()) return interruptibly(trainrun::HistoryMetrics, kAtOnce);
  return trainrun::kExitUsage;
}
