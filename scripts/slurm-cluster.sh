#!/usr/bin/env bash
# A 3-node Slurm 22.05 cluster on this machine, for the Slurm tests and for trying
# trainrun under Slurm by hand (root; Debian's slurm-wlm and munge, installed by
# scripts/install-deps.sh).
#
#   scripts/slurm-cluster.sh up     [--dir DIR]   start it (stops a previous one in DIR first)
#   scripts/slurm-cluster.sh down   [--dir DIR]   stop everything it started, remove its namespaces
#   scripts/slurm-cluster.sh status [--dir DIR]   sinfo and squeue; exit 1 when it is not up
#   scripts/slurm-cluster.sh env    [--dir DIR]   the variables to use it (eval "$(... env)")
#
# With --skip-if-unavailable, `up` on a machine without root or without Slurm, munge
# or iproute2 writes the reason to DIR/skip and exits 0 (the tests then skip, naming
# it); any other failure to start is an error.
#
# DIR (default: build/slurm-cluster of this checkout, or $TRAINRUN_SLURM_DIR) holds
# everything: slurm.conf and cgroup.conf (Slurm is pointed at them with SLURM_CONF;
# a system-wide /etc/slurm is never read or touched), munge's key and socket, the
# state, spool and log files of each daemon, and cluster.env, which `up` writes:
#   SLURM_CONF, TRAINRUN_SLURM_NODES (node1 node2 node3), TRAINRUN_SLURM_NETNS (the
#   namespaces, in node order), TRAINRUN_SLURM_ADDRS, TRAINRUN_SLURM_SUBNET.
#
# What runs: munged and slurmctld in the root namespaces; per node, `slurmd -N nodeN`
# in a network namespace of its own (a veth on a bridge whose root side is the
# controller's address), in its own UTS namespace (host name nodeN) and mount
# namespace: its own /etc/hosts (every node and the controller) bind-mounted over
# the machine's, a node-local /tmp (DIR/nodeN/tmp), and a fresh sysfs for the
# namespace with the machine's /sys/fs/cgroup rbind-mounted into it (slurmd 22.05
# will not start without cgroups, even with proctrack/linuxproc and task/none).
# Names are unique per DIR (a hash of its path) and the subnet is the first free
# 10.79.X.0/24, so several checkouts can run a cluster at once and none clashes with
# the multi-node tests' 10.88.0.x; slurmctld's port comes from the kernel.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
export PATH=$PATH:/usr/sbin:/sbin  # slurmctld, slurmd, munged
cmd=${1:-}
shift || true
dir=${TRAINRUN_SLURM_DIR:-$repo/build/slurm-cluster}
skip_if_unavailable=
while (($#)); do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --skip-if-unavailable) skip_if_unavailable=1; shift ;;
    *) echo "slurm-cluster: unknown argument $1" >&2; exit 64 ;;
  esac
done
nodes=(node1 node2 node3)

die() { echo "slurm-cluster: $*" >&2; exit 1; }

unavailable() {
  if [[ -n $skip_if_unavailable ]]; then
    mkdir -p "$dir"
    echo "$*" >"$dir/skip"
    echo "slurm-cluster: skipped: $*"
    exit 0
  fi
  die "$*"
}

need() {
  [[ $(id -u) == 0 ]] || unavailable "needs root (network namespaces, mounts, slurmd)"
  local missing=()
  for tool in slurmctld slurmd srun sbatch sinfo scontrol munged ip nsenter unshare python3; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) || unavailable "missing ${missing[*]} (scripts/install-deps.sh installs slurm-wlm, munge, iproute2, util-linux)"
}

# Names derived from DIR, so `down` finds what `up` made even without cluster.env.
names() {
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  id=$(printf '%s' "$dir" | sha1sum | cut -c1-5)
  prefix=trs$id
  bridge=${prefix}b
}

stop_pidfile() {  # kills the daemon whose pid file this is, waits for it
  local file=$1 pid
  [[ -s $file ]] || return 0
  pid=$(cat "$file")
  if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

down() {
  names
  # Everything left in the nodes' namespaces (slurmd, slurmstepd, job processes)
  # was started by this cluster.
  for i in "${!nodes[@]}"; do
    local ns=${prefix}n$((i + 1))
    if ip netns list | grep -qw "$ns"; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
      for _ in $(seq 50); do [[ -z $(ip netns pids "$ns" 2>/dev/null) ]] && break; sleep 0.1; done
      ip netns del "$ns" 2>/dev/null || true
    fi
    ip link del "${prefix}v$((i + 1))" 2>/dev/null || true
    rm -f "$dir/slurmd.${nodes[i]}.pid"
  done
  stop_pidfile "$dir/slurmctld.pid"
  stop_pidfile "$dir/munge/munged.pid"
  ip link del "$bridge" 2>/dev/null || true
  rm -f "$dir/cluster.env"
}

free_subnet() {  # the first 10.79.X.0/24 that no interface or route uses
  local used
  used=$(ip -4 -o addr show; ip -4 route show table all)
  for x in $(seq 0 254); do
    grep -q "10\.79\.$x\." <<<"$used" || { echo "$x"; return; }
  done
  die "no free 10.79.X.0/24 subnet"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'
}

up() {
  need
  down
  names
  local start=$SECONDS
  rm -rf "${dir:?}"/{munge,ctld,spool,log,node*,etc,skip,tests}
  mkdir -p "$dir"/{munge,ctld,spool,log,etc}
  chmod 700 "$dir/munge"

  # munge: its own key, socket, pid and seed in DIR.
  local munge=$dir/munge
  dd if=/dev/urandom of="$munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$munge/munge.key"
  munged --force --key-file="$munge/munge.key" --socket="$munge/munge.socket" \
    --pid-file="$munge/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$munge/munged.seed" || die "munged did not start: $(tail -3 "$dir/log/munged.log" 2>/dev/null)"

  # The network: a bridge whose address is the controller's, a veth per node.
  # The subnet is chosen under a lock so that two clusters starting at once differ.
  local x
  mkdir -p /run/lock
  exec 9>/run/lock/trainrun-slurm-subnet.lock
  flock 9
  x=$(free_subnet)
  local subnet=10.79.$x ctl_addr=10.79.$x.1
  ip link add "$bridge" type bridge
  ip addr add "$ctl_addr/24" dev "$bridge"
  ip link set "$bridge" up
  flock -u 9
  local addrs=() netns=()
  for i in "${!nodes[@]}"; do
    local ns=${prefix}n$((i + 1)) veth=${prefix}v$((i + 1)) addr=$subnet.$((i + 11))
    ip netns add "$ns"
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    ip link set "$veth" master "$bridge" up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    addrs+=("$addr")
    netns+=("$ns")
  done

  # Each node's /etc/hosts names every node and the controller.
  local ctl_name
  ctl_name=$(hostname -s)
  for i in "${!nodes[@]}"; do
    mkdir -p "$dir/${nodes[i]}/tmp"
    chmod 1777 "$dir/${nodes[i]}/tmp"
    {
      echo "127.0.0.1 localhost"
      echo "$ctl_addr $ctl_name slurmctld"
      for j in "${!nodes[@]}"; do echo "${addrs[j]} ${nodes[j]}"; done
    } >"$dir/${nodes[i]}/hosts"
  done

  local port conf=$dir/etc/slurm.conf
  port=$(free_port)
  cat >"$conf" <<EOF
# Written by scripts/slurm-cluster.sh for the cluster in $dir.
ClusterName=trainrun$id
SlurmctldHost=$ctl_name($ctl_addr)
SlurmctldPort=$port
SlurmdPort=6818
AuthType=auth/munge
AuthInfo=socket=$munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.%n.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$dir/etc/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
InactiveLimit=0
MinJobAge=300
# KillWait (SIGTERM to SIGKILL on scancel) is left at Slurm's default, 30 s, which
# trainrun's stop and uploads must fit in, as on most clusters.
TmpFS=/tmp
NodeName=DEFAULT CPUs=4 RealMemory=1000 State=UNKNOWN
EOF
  for i in "${!nodes[@]}"; do
    echo "NodeName=${nodes[i]} NodeAddr=${addrs[i]} NodeHostname=${nodes[i]}" >>"$conf"
  done
  echo "PartitionName=debug Nodes=$(IFS=,; echo "${nodes[*]}") Default=YES MaxTime=INFINITE State=UP" >>"$conf"
  : >"$dir/etc/plugstack.conf"
  echo "CgroupPlugin=autodetect" >"$dir/etc/cgroup.conf"
  export SLURM_CONF=$conf

  slurmctld -f "$conf" -i || die "slurmctld did not start: $(tail -5 "$dir/log/slurmctld.log" 2>/dev/null)"

  # slurmd per node: network namespace, then UTS and mount namespaces in which the
  # node's hosts file, /tmp and a sysfs for its network namespace (with the
  # machine's cgroup hierarchy carried over) are mounted.
  for i in "${!nodes[@]}"; do
    local n=${nodes[i]} nd=$dir/${nodes[i]}
    mkdir -p "$nd/sys"
    nsenter --net="/run/netns/${netns[i]}" unshare --uts --mount --propagation private sh -euc '
      hostname "$1"
      mount --bind "$2/hosts" /etc/hosts
      mount --bind "$2/tmp" /tmp
      mount -t sysfs sysfs "$2/sys"
      mount --rbind /sys/fs/cgroup "$2/sys/fs/cgroup"
      mount --move "$2/sys" /sys
      exec slurmd -f "$3" -N "$1"
    ' sh "$n" "$nd" "$conf" || die "slurmd on $n did not start: $(tail -5 "$dir/log/slurmd.$n.log" 2>/dev/null)"
  done

  # Ready when every node is idle.
  local ok=
  for _ in $(seq 300); do
    if [[ $(sinfo -h -N -o '%N %t' 2>/dev/null | grep -c ' idle$') == "${#nodes[@]}" ]]; then ok=1; break; fi
    sleep 0.1
  done
  cat >"$dir/cluster.env" <<EOF
SLURM_CONF=$conf
TRAINRUN_SLURM_NODES="${nodes[*]}"
TRAINRUN_SLURM_NETNS="${netns[*]}"
TRAINRUN_SLURM_ADDRS="${addrs[*]}"
TRAINRUN_SLURM_SUBNET=$subnet.0/24
TRAINRUN_SLURM_DIR=$dir
EOF
  if [[ -z $ok ]]; then
    sinfo -N >&2 || true
    tail -5 "$dir"/log/*.log >&2 || true
    die "the nodes did not become idle within 30 s (logs in $dir/log)"
  fi
  echo "slurm-cluster: up in $((SECONDS - start)) s: ${nodes[*]} at ${addrs[*]}, slurmctld $ctl_addr:$port"
  echo "slurm-cluster: use it with: export SLURM_CONF=$conf"
}

status() {
  names
  [[ -f $dir/cluster.env ]] || { echo "slurm-cluster: not up ($dir)"; exit 1; }
  # shellcheck disable=SC1091
  export SLURM_CONF
  SLURM_CONF=$(sed -n 's/^SLURM_CONF=//p' "$dir/cluster.env")
  sinfo -N && squeue
}

case $cmd in
  up) up ;;
  down) down; echo "slurm-cluster: down ($dir)" ;;
  status) status ;;
  env) names; [[ -f $dir/cluster.env ]] || die "not up ($dir)"; sed 's/^/export /' "$dir/cluster.env" ;;
  *) echo "usage: $0 up|down|status|env [--dir DIR]" >&2; exit 64 ;;
esac
