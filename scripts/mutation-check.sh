#!/usr/bin/env bash
# Puts known bugs into a copy of the product, one at a time, and shows that the tests
# catch each one by failing (not by hanging) within a minute.
#
#   ./scripts/mutation-check.sh            # every mutation
#   ./scripts/mutation-check.sh fail-fast  # those whose name contains the word
#
# The copy lives in $TRAINRUN_MUTATION_DIR (default /tmp/trainrun-mutation)/src with its
# own build folder inside it (so ccache finds what ./build compiled), and the working
# tree and ./build are never touched. Prints a table:
# bug, the tests that caught it, seconds, verdict. Exits 1 when a bug was missed, a
# run hung past the limit, or a mutation no longer applies to the code.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work=${TRAINRUN_MUTATION_DIR:-/tmp/trainrun-mutation}
limit=${TRAINRUN_MUTATION_LIMIT:-60}  # seconds a caught bug may take to show
only=${1:-}

# name | file | perl substitution (must change the file) | test binaries | ctest -R regex
mutations=(
  "fail-fast disabled|runtime/process/supervisor.cc|s/if \(policy_\.RankFailed\(status\.ToExitCode\(\), reason\)\)/if (false \&\& policy_.RankFailed(status.ToExitCode(), reason))/|process_test|^process_test\.(SupervisorTest|PosixProcessSetTest)$"
  "MPI fail-fast disabled|runtime/mpi/mpi_supervisor.cc|s/if \(policy_\.RankFailed\(status\.ToExitCode\(\), why\)\)/if (false \&\& policy_.RankFailed(status.ToExitCode(), why))/|mpi_test|^mpi_test\.MpiSupervisorTest$"
  "grace period ignored|runtime/process/stop_policy.cc|s/kill_deadline_ = stop_began_ \+ grace_period_;/kill_deadline_ = stop_began_;/|process_test mpi_test|^(process_test\.(StopPolicyTest|SupervisorTest)|mpi_test\.MpiSupervisorTest)$"
  "redaction removed|base/redact.cc|s/(std::string RedactUri\(std::string_view uri\) \{)/\$1\n  if (!uri.empty()) return std::string(uri);/|base_test|^base_test\.RedactTest$"
  "digest mismatch ignored|runtime/store/object_transfer.cc|s/(Status CheckMd5\([^)]*\) \{)/\$1\n  if (!actual.empty()) return Status::Ok();/|store_test|^store_test\.ObjectTransferTest$"
  "heartbeat timeout never fires|runtime/cluster/heartbeat.cc|s/if \(now - it->second > options_\.timeout\)/if (false \&\& now - it->second > options_.timeout)/|cluster_test|^cluster_test\.(HeartbeatTest|ControlPlaneTest)$"
  "own stall blamed on peers|runtime/cluster/heartbeat.cc|s/for \(auto& \[peer, heard\] : last_heard_\) heard = now;/(void)now;/|cluster_test|^cluster_test\.(HeartbeatTest|ControlPlaneTest)$"
)

echo "mutation-check: copying the tree to $work/src"
mkdir -p "$work"
rsync -a --delete --exclude /build --exclude /build-\* --exclude /.deps --exclude /.git "$repo/" "$work/src/"
# CMakeLists.txt picks ccache itself, with paths hashed relative to the copy.
cmake -S "$work/src" -B "$work/src/build" -DCMAKE_BUILD_TYPE=Release \
  -DTRAINRUN_BUILD_BENCHMARKS=OFF >/dev/null
all_targets=$(for m in "${mutations[@]}"; do IFS='|' read -r _ _ _ t _ <<<"$m"; echo "$t"; done | sort -u)
echo "mutation-check: building the unmutated tests once ($(echo $all_targets))"
# shellcheck disable=SC2086
cmake --build "$work/src/build" -j "$(nproc)" --target $all_targets >/dev/null

rows=()
status=0
for m in "${mutations[@]}"; do
  IFS='|' read -r name file expr targets tests <<<"$m"
  [[ -z "$only" || "$name" == *"$only"* ]] || continue
  src="$work/src/$file"
  cp "$repo/$file" "$src"
  perl -0pi -e "$expr" "$src"
  if cmp -s "$repo/$file" "$src"; then
    rows+=("$(printf '%-32s %-48s %8s  %s' "$name" "-" "-" "DOES NOT APPLY: update $0")")
    status=1
    continue
  fi
  echo "mutation-check: $name ($file)"
  # shellcheck disable=SC2086
  if ! cmake --build "$work/src/build" -j "$(nproc)" --target $targets >"$work/src/build.log" 2>&1; then
    cp "$repo/$file" "$src"
    rows+=("$(printf '%-32s %-48s %8s  %s' "$name" "-" "-" "DOES NOT BUILD: see $work/src/build.log")")
    status=1
    continue
  fi
  start=$(date +%s.%N)
  set +e
  timeout -s KILL $((limit + 30)) ctest --test-dir "$work/src/build" -R "$tests" \
    --output-on-failure >"$work/ctest.log" 2>&1
  rc=$?
  set -e
  seconds=$(echo "$(date +%s.%N) - $start" | bc)
  cp "$repo/$file" "$src"
  # GoogleTest writes "[  FAILED  ]", the watchdog "[  TIMEOUT ]"; none found is no error.
  caught=$({ grep -oE '^\[  (FAILED|TIMEOUT) +\] [A-Za-z0-9_]+\.[A-Za-z0-9_/]+' "$work/ctest.log" ||
    true; } | awk '{print $NF}' | sort -u | head -n 2 | paste -sd, -)
  if ((rc == 0)); then
    verdict="MISSED"
    status=1
  elif grep -qE '\(Timeout\)|^\[  TIMEOUT \]' "$work/ctest.log" || ((rc == 137)); then
    verdict="HUNG (past ${limit} s)"
    status=1
  elif (($(echo "$seconds > $limit" | bc))); then
    verdict="caught, but slowly"
    status=1
  else
    verdict="caught"
  fi
  rows+=("$(printf '%-32s %-48s %8.1f  %s' "$name" "${caught:--}" "$seconds" "$verdict")")
done
# Leave the copy as the tree is, so the next run starts from a clean build.
# shellcheck disable=SC2086
cmake --build "$work/src/build" -j "$(nproc)" --target $all_targets >/dev/null 2>&1 || true

echo
printf '%-32s %-48s %8s  %s\n' "bug" "caught by" "seconds" "verdict"
for row in "${rows[@]}"; do echo "$row"; done
exit "$status"
