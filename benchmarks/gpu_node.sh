#!/bin/bash
# What README "Install" ran on a lent GPU node, to run again on another one.
#
#   benchmarks/gpu_node.sh pack [DIR]   here, after a build and a portable build:
#                                       DIR (default build/gpu-node) gets the portable
#                                       trainrun, static bare_spawn/peak_rss/spew, and
#                                       gpu_health_probe and trainrun-nccl-check with the
#                                       Debian 12 libraries they load (so the probe
#                                       needs glibc 2.34 or newer on the node)
#   benchmarks/gpu_node.sh run [DIR]    on the GPU node, from a copy of this tree with DIR:
#                                       prints the node, the portable trainrun's topology
#                                       (NVML; the per-boot cache made, used, and rebuilt
#                                       for CUDA_VISIBLE_DEVICES), GPU health, a preflight
#                                       with the NCCL check (when the node has libnccl), a
#                                       DDP rank over NCCL (when PYTHON has torch), a rank's
#                                       background process and a kill -9 of trainrun
#                                       (nothing may be left), and the launch benchmark
#                                       beside mpirun and torchrun where they are found.
# PYTHON (default /opt/torch/.venv/bin/python3, else python3) runs torch and torchrun.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-}
kit=$(realpath -m "${2:-$here/build/gpu-node}")

pack() {
  local build=$here/build
  local portable
  for portable in "$here/build-portable" "$build/portable" ""; do
    [ -x "$portable/launcher/trainrun" ] && break
  done
  [ -n "$portable" ] || {
    echo "gpu_node.sh: no portable trainrun: run scripts/build.sh --portable --no-install" \
      "(build-portable/) or ctest -R portable.build (build/portable/)" >&2
    exit 1
  }
  [ -x "$build/tests/gpu_health_probe" ] || {
    echo "gpu_node.sh: $build/tests/gpu_health_probe is missing: cmake --build build" \
      "--target gpu_health_probe" >&2
    exit 1
  }
  rm -rf "$kit"
  mkdir -p "$kit/launcher" "$kit/benchmarks" "$kit/bin" "$kit/lib"
  cp "$portable/launcher/trainrun" "$kit/launcher/"
  for helper in bare_spawn peak_rss spew; do
    g++ -O2 -static -o "$kit/benchmarks/$helper" "$here/benchmarks/$helper.cc" || exit 1
  done
  cp "$build/tests/gpu_health_probe" "$kit/bin/"
  [ -x "$build/gpu/nccl/trainrun-nccl-check" ] && cp "$build/gpu/nccl/trainrun-nccl-check" "$kit/bin/"
  # Their libraries from this machine (not libc: the node's own is used).
  for binary in "$kit"/bin/*; do
    ldd "$binary" | awk '/=> \// {print $3}' | grep -v -E 'libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|ld-linux|libnccl' |
      while read -r lib; do cp -L "$lib" "$kit/lib/"; done
  done
  du -sh "$kit"
}

run() {
  local trainrun=$kit/launcher/trainrun
  local python=${PYTHON:-/opt/torch/.venv/bin/python3}
  [ -x "$python" ] || python=python3
  local work
  work=$(mktemp -d /tmp/trainrun-gpu-node-XXXXXX)
  mkdir -p "$work/src"
  step() { echo; echo "=== $*"; }
  job() {  # NAME COMMAND-JSON [MORE-FIELDS]
    echo "{\"command\":$2,\"sourceDirectory\":\"src\",\"experimentName\":\"gpu\",\"runId\":\"$1\"${3:-}}" > "$work/$1.json"
  }
  go() {  # NAME [ENV=VALUE...]: runs the job NAME
    local name=$1
    shift
    env "$@" "$trainrun" run "$work/$name.json" --history "$work/history" --workdir "$work/runs" --console all
    echo "exit code $?"
  }
  step node
  uname -r; nproc; grep -m1 PRETTY_NAME /etc/os-release; ldd --version | head -1
  nvidia-smi --query-gpu=name,driver_version,persistence_mode,pci.bus_id --format=csv
  step "trainrun topology: read from the machine, then from the per-boot cache"
  "$trainrun" --version
  "$trainrun" topology
  "$trainrun" topology --json > "$work/topology.json" && echo "(again: $(grep -c busId "$work/topology.json") bus id lines)"
  printf 'echo "rank $RANK CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES OMP_NUM_THREADS=$OMP_NUM_THREADS"\ngrep Cpus_allowed_list /proc/self/status\nnvidia-smi -L\n' > "$work/src/probe.sh"
  printf 'sleep 301 &\nexit 3\n' > "$work/src/leave.sh"
  cat > "$work/src/cuda.py" << 'PY'
import os, torch, torch.distributed as dist
dist.init_process_group("nccl")  # MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE from trainrun
t = torch.ones(4, device="cuda") * (dist.get_rank() + 1)
dist.all_reduce(t)
print(f"rank {dist.get_rank()}/{dist.get_world_size()} on {torch.cuda.get_device_name(0)}, "
      f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}, all_reduce {t.tolist()}")
dist.destroy_process_group()
PY
  job probe '["/bin/sh","probe.sh"]'
  job probe-visible '["/bin/sh","probe.sh"]'
  job probe-two '["/bin/sh","probe.sh"]' ',"processCountPerNode":2'
  step "ranks bound to the GPU"
  go probe
  go probe-visible CUDA_VISIBLE_DEVICES=0
  go probe-two
  grep -h "binding: topology" "$work"/history/gpu/probe*/system_logs/trainrun_node_0.log | cut -c1-160
  step "GPU health"
  LD_LIBRARY_PATH=$kit/lib "$kit/bin/gpu_health_probe" > "$work/health.json"
  echo "exit code $?"
  local nccl
  nccl=$(ldconfig -p | grep -o '/[^ ]*libnccl\.so\.2$' | head -1)
  if [ -n "$nccl" ] && [ -x "$kit/bin/trainrun-nccl-check" ]; then
    step "preflight: GPU health and the NCCL check ($nccl)"
    job preflight '["/bin/sh","probe.sh"]' ',"preflight":true'
    go preflight LD_LIBRARY_PATH="$kit/lib" TRAINRUN_NCCL_CHECK="$kit/bin/trainrun-nccl-check"
  fi
  if "$python" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    step "torch DDP over NCCL, one rank"
    job cuda "[\"$python\",\"cuda.py\"]"
    go cuda
  fi
  step "a rank's background process ends with the run"
  job leave '["/bin/sh","leave.sh"]'
  go leave
  sleep 0.3
  if pgrep -f "sleep 301" > /dev/null; then echo "LEFT ALIVE: sleep 301"; else echo "nothing left"; fi
  step "kill -9 of trainrun: its ranks' processes go"
  job kill9 '["/bin/sh","-c","sleep 302 & sleep 303"]'
  "$trainrun" run "$work/kill9.json" --history "$work/history" --workdir "$work/runs" --console none &
  local pid=$!
  sleep 1
  kill -9 "$pid"
  sleep 0.5
  if pgrep -f "sleep 30[23]" > /dev/null; then echo "LEFT ALIVE: $(pgrep -af 'sleep 30[23]')"; else echo "nothing left"; fi
  step "launch benchmark"
  cd "$here" || exit 1
  python3 benchmarks/launch_bench.py --build "$kit" --trainrun "$trainrun" --ranks 1,8 --reps 10 \
    --peers mpirun,torchrun --python "$python" --log-mib 0
  for tmp in /tmp /dev/shm; do
    echo "--- TMPDIR=$tmp"
    TMPDIR=$tmp python3 benchmarks/launch_bench.py --build "$kit" --trainrun "$trainrun" --ranks 1,8 --reps 20 --peers "" --log-mib 0 | tail -4
  done
  rm -rf "$work"
}

case "$mode" in
  pack) pack ;;
  run) run ;;
  *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 64 ;;
esac
