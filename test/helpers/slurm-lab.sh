#!/usr/bin/env bash
# A real single-machine Slurm cluster for tests and benchmarks: its own munged, one slurmctld and
# N slurmd (nodes sl1..slN, 2 CPUs each, partition `lab`, plus a partition `tiny` with MaxTime=1),
# all run as root without systemd and tracked by pid + start time.
#
#   slurm-lab.sh start [N]   install slurm-wlm + munge if missing, start (or reuse) the cluster, wait for
#                            the nodes; prints `export SLURM_CONF=...` for eval. N defaults to 3.
#   slurm-lab.sh stop        stop exactly the processes `start` recorded (safe to call twice)
#   slurm-lab.sh status      exit 0 when the cluster answers
#   slurm-lab.sh env         print the export line only
#
# Everything lives in $CM_SLURM_LAB_DIR (default /tmp/cm-slurm-lab): slurm.conf, the munge key and
# socket, state, spool, logs, pid files. Nothing in /etc is touched, so a site's own Slurm (and
# ../shared/lab/slurm, on ports 6817/6818) can run beside it: ours listens on $CM_SLURM_LAB_PORT
# (default 16817) and the slurmd on the ports after it. A start after an interrupted run kills the
# recorded leftovers (if they are still the same processes) and starts clean.
# Exit codes: 0 ok, 4 Slurm cannot be installed or does not come up.
set -euo pipefail

D=${CM_SLURM_LAB_DIR:-/tmp/cm-slurm-lab}
PORT=${CM_SLURM_LAB_PORT:-16817}
NODES=3

die() {
  echo "slurm-lab: $*" >&2
  exit 4
}

# shellcheck source=procs.bash
source "$(dirname "${BASH_SOURCE[0]}")/procs.bash"

# Records the daemon whose pid file is $1 (waits for it to appear) in $D/procs.
record() {
  local pidfile=$1 i pid id
  for i in $(seq 1 100); do
    if [[ -s $pidfile ]]; then
      pid=$(cat "$pidfile")
      if id=$(_cm_proc_id "$pid"); then
        echo "$id $2" >>"$D/procs"
        return 0
      fi
    fi
    sleep 0.1
  done
  die "$2 did not start; see $D/log/"
}

stop() {
  [[ -f $D/procs ]] || return 0
  local pid start name now left=()
  # slurmd first, munged last: the daemons talk to munged while they shut down.
  while read -r pid start name; do
    now=$(_cm_proc_id "$pid" || true)
    [[ $now == "$pid $start" ]] && kill "$pid" 2>/dev/null && left+=("$pid $start")
  done < <(tac "$D/procs")
  local i entry
  for i in $(seq 1 50); do
    local still=()
    for entry in "${left[@]}"; do
      # shellcheck disable=SC2086
      now=$(_cm_proc_id ${entry%% *} || true)
      [[ $now == "$entry" ]] && still+=("$entry")
    done
    left=("${still[@]}")
    ((${#left[@]} == 0)) && break
    sleep 0.1
  done
  for entry in "${left[@]}"; do kill -KILL "${entry%% *}" 2>/dev/null || true; done
  rm -f "$D/procs"
  stop_stepds
}

# A step's slurmstepd runs apart from slurmd (ppid 1) and is not recorded at start; one whose step did
# not end (Slurm: "JOB NOT ENDING WITH SIGNALS") keeps retrying the gone controller forever. The lab's
# are those working in its folder: they are stopped by pid, nobody else's is touched.
stop_stepds() {
  local pid cwd
  for pid in $(pgrep -x slurmstepd || true); do
    cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || continue
    [[ $cwd == "$D" || $cwd == "$D"/* ]] && kill -KILL "$pid" 2>/dev/null
  done
  return 0
}

env_line() {
  echo "export SLURM_CONF=$D/slurm.conf"
}

answers() {
  [[ -f $D/slurm.conf ]] && SLURM_CONF=$D/slurm.conf timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP'
}

install_slurm() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && return 0
  [[ $(id -u) == 0 ]] || die "slurm-wlm and munge are not installed and we are not root"
  command -v apt-get >/dev/null || die "slurm-wlm and munge are not installed and there is no apt-get"
  local log=/tmp/cm-slurm-lab-apt.log
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge >"$log" 2>&1; then
    apt-get update >>"$log" 2>&1 || die "apt-get update failed; see $log"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge >>"$log" 2>&1 ||
      die "apt-get install slurm-wlm munge failed; see $log"
  fi
}

write_conf() {
  local host last=$((PORT + NODES))
  host=$(hostname -s)
  cat >"$D/slurm.conf" <<EOF
# Written by test/helpers/slurm-lab.sh: a throw-away cluster on one machine.
ClusterName=cmlab
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/munge.socket
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$PORT
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/%n
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd-%n.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Short scheduling cycles: tests submit many tiny jobs and wait for each dependency link.
SchedulerParameters=sched_interval=1,bf_interval=1,sched_min_interval=0,batch_sched_delay=0,default_queue_depth=2000,defer_batch
ReturnToService=2
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
MaxJobCount=100000
# Reject at submission what can never run (time limit over the partition's), as most sites do.
EnforcePartLimits=ALL
MaxArraySize=100001
KillWait=2
Waittime=0
NodeName=sl[1-$NODES] NodeHostname=$host NodeAddr=127.0.0.1 Port=[$((PORT + 1))-$last] CPUs=2 RealMemory=2000 State=UNKNOWN
PartitionName=lab Nodes=sl[1-$NODES] Default=YES MaxTime=INFINITE State=UP
PartitionName=tiny Nodes=sl[1-$NODES] MaxTime=1 State=UP
EOF
}

start() {
  install_slurm
  if [[ -f $D/procs ]] && answers && (($(SLURM_CONF=$D/slurm.conf sinfo -h -N -p lab -o %N | wc -l) == NODES)); then
    env_line
    return 0
  fi
  stop
  install -d -m 755 "$D"
  rm -rf "$D/state" "$D/spool" "$D/run" "$D/munge"
  install -d -m 755 "$D/state" "$D/spool" "$D/run" "$D/log"
  # munged wants its socket directory searchable by all and its key readable by itself only.
  install -d -o munge -g munge -m 755 "$D/munge"
  install -d -o munge -g munge -m 700 "$D/munge/private"
  # Our own key and socket: the site's munged (if any) is left alone.
  head -c 1024 /dev/urandom | install -o munge -g munge -m 400 /dev/stdin "$D/munge/private/munge.key"
  : >"$D/procs"
  runuser -u munge -- /usr/sbin/munged --socket="$D/munge/munge.socket" --key-file="$D/munge/private/munge.key" \
    --pid-file="$D/munge/munged.pid" --log-file="$D/munge/private/munged.log" --seed-file="$D/munge/private/munged.seed" ||
    die "munged did not start; see $D/munge/private/munged.log"
  record "$D/munge/munged.pid" munged
  write_conf
  export SLURM_CONF=$D/slurm.conf
  slurmctld -c -i || die "slurmctld did not start; see $D/log/slurmctld.log"
  record "$D/run/slurmctld.pid" slurmctld
  local i n
  for i in $(seq 1 "$NODES"); do
    n=sl$i
    mkdir -p "$D/spool/$n"
    slurmd -N "$n" || die "slurmd $n did not start; see $D/log/slurmd-$n.log"
    record "$D/run/slurmd-$n.pid" "slurmd-$n"
  done
  for i in $(seq 1 100); do
    if (($(sinfo -h -N -p lab -t idle -o %N 2>/dev/null | wc -l) == NODES)); then
      env_line
      return 0
    fi
    sleep 0.2
  done
  die "the nodes did not become idle: $(sinfo -N 2>&1 | tr '\n' ' ')"
}

case ${1:-} in
start)
  NODES=${2:-3}
  start
  ;;
stop) stop ;;
status) answers ;;
env) env_line ;;
*)
  echo "usage: slurm-lab.sh start [N] | stop | status | env" >&2
  exit 2
  ;;
esac
