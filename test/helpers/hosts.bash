# Real OpenSSH test hosts for bats (and for bench/ scripts: plain bash, no bats needed).
#
#   cm_hosts_start K [SLOTS]       hosts th1..thK, one sshd each on 127.0.10.I:22, hostname thI
#   cm_hosts_stop                  stop every process these functions started (safe to call twice)
#   cm_host_kill I                 th$I dies: its sshd, connections and sessions are SIGKILLed
#   cm_host_restart I              th$I comes back (same host key, same address)
#   cm_hosts_start_many N [SLOTS]  hosts m1..mN on 127.0.20.1.., 127.0.21.1.. (250 per octet)
#   cm_host_freeze I / cm_host_thaw I   th$I hangs (SIGSTOP of its sshd and sessions) / resumes
#   cm_host_home NAME              the directory that is NAME's /root (its login directory)
#   cm_ssh NAME CMD...             ssh to a test host with the generated ssh_config
#   cm_host_options NAME 'K: v'... the host's own ssh options in the inventory
#
# Everything lives in $CM_TEST_HOSTS_DIR (default $BATS_FILE_TMPDIR/cm-hosts, else a mktemp dir):
# inventory.yaml ($CM_INVENTORY), ssh_config ($CM_TEST_SSH_CONFIG), id_ed25519, known_hosts.
#
# Inventory: th hosts carry tags [test], m hosts [many]; CM_TEST_HOSTS_PORT=N (default 22) moves
# every host to another port when something else holds port 22 on the wildcard address.
#
# Each sshd runs in its own UTS and mount namespace: `hostname` says thI, and /root is a private
# directory per host (cm_host_home), so a file staged on th1 is not visible on th2, as on real machines.
# CM_TEST_HOSTS_SHARED_HOME=1 keeps the real /root instead.
#
# Addresses: if 127.0.10.I:22 is taken (another bats run on the same machine), the next free block
# 127.0.11.x .. 127.0.19.x is used (m hosts: 127.0.22/24/26/28.x, in $CM_TEST_MANY_PREFIX);
# $CM_TEST_HOSTS_PREFIX holds the block in use ("127.0.10"), so tests compare with
# "$CM_TEST_HOSTS_PREFIX.$I", never a literal.
# OpenSSH listens on at most 16 addresses per daemon (MAX_LISTEN_SOCKS), so start_many runs one sshd
# per 16 hosts; all m hosts share one hostname ("many") and one home directory.
#
# Processes are tracked by pid and start time (a recycled pid is never signalled); a host's sessions
# are found through the process tree below its daemon. A remote command that detaches itself from that
# tree (setsid + double fork) is not found: tests should not leave daemons behind on test hosts.

CM_SSHD=${CM_SSHD:-/usr/sbin/sshd}

_cm_die() {
  echo "hosts.bash: $*" >&2
  return 1
}

# shellcheck source=procs.bash
source "$(dirname "${BASH_SOURCE[0]}")/procs.bash"

# the given pids and all their descendants, from one snapshot of the process table
_cm_tree() {
  ps -e -o pid=,ppid= | awk -v roots="$*" '
    { kids[$2] = kids[$2] " " $1 }
    END {
      n = split(roots, queue, " ")
      for (i = 1; i <= n; i++) {
        print queue[i]
        m = split(kids[queue[i]], k, " ")
        for (j = 1; j <= m; j++) queue[++n] = k[j]
      }
    }'
}

# _cm_kill_trees "PID START"...: SIGKILL recorded daemons (those still alive) and everything below
# them. The trees are frozen with SIGSTOP first, top down and until they stop growing, so a
# connection accepted meanwhile cannot escape.
_cm_kill_trees() {
  local rec pid start roots=() tree prev="" i
  for rec in "$@"; do
    read -r pid start <<<"$rec"
    _cm_alive "$pid" "$start" && roots+=("$pid")
  done
  ((${#roots[@]})) || return 0
  kill -STOP "${roots[@]}" 2>/dev/null || true
  for ((i = 0; i < 20; i++)); do
    tree=$(_cm_tree "${roots[@]}")
    # shellcheck disable=SC2086
    kill -STOP $tree 2>/dev/null || true
    [[ $tree == "$prev" ]] && break
    prev=$tree
  done
  # shellcheck disable=SC2086
  kill -KILL $tree 2>/dev/null || true
  for rec in "$@"; do
    read -r pid start <<<"$rec"
    for ((i = 0; i < 500; i++)); do
      _cm_alive "$pid" "$start" || continue 2
      sleep 0.01
    done
    _cm_die "process $pid did not die"
    return 1
  done
}

_cm_kill_tree() { _cm_kill_trees "$1 $2"; }

_cm_hosts_dir() {
  if [[ -z ${CM_TEST_HOSTS_DIR:-} ]]; then
    if [[ -n ${BATS_FILE_TMPDIR:-} ]]; then
      CM_TEST_HOSTS_DIR=$BATS_FILE_TMPDIR/cm-hosts
    else
      CM_TEST_HOSTS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cm-hosts.XXXXXX") || return 1
    fi
  fi
  export CM_TEST_HOSTS_DIR
  local d=$CM_TEST_HOSTS_DIR
  mkdir -p "$d/hosts" "$d/many" || return 1
  touch "$d/pids" "$d/th.list" "$d/m.list"
  if [[ ! -f $d/id_ed25519 ]]; then
    ssh-keygen -q -t ed25519 -N '' -C cm-test -f "$d/id_ed25519" || return 1
    cp "$d/id_ed25519.pub" "$d/authorized_keys"
    : >"$d/known_hosts"
  fi
  # sshd refuses to start without its privilege separation directory (normally made by systemd)
  [[ -d /run/sshd ]] || mkdir -m 0755 -p /run/sshd
  [[ -x $CM_SSHD ]] || _cm_die "$CM_SSHD not found: run test/install-deps.sh"
}

# Without PAM, sshd refuses a locked account ('!' in shadow) even with a valid key; PAM does not.
_cm_use_pam() {
  local pw
  pw=$(getent shadow root 2>/dev/null | cut -d: -f2)
  if [[ $pw == '!'* ]]; then echo yes; else echo no; fi
}

# _cm_sshd_config DIR NAME ADDRESSES... : the sshd_config of one daemon
_cm_sshd_config() {
  local dir=$1 name=$2 port=${CM_TEST_HOSTS_PORT:-22} a
  shift 2
  {
    for a in "$@"; do echo "ListenAddress $a:$port"; done
    cat <<EOF
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $CM_TEST_HOSTS_DIR/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM $(_cm_use_pam)
StrictModes no
UseDNS no
MaxSessions 100
MaxStartups 200:30:400
LoginGraceTime 30
PrintMotd no
PrintLastLog no
X11Forwarding no
LogLevel INFO
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
  } >"$dir/sshd_config"
}

# _cm_prepare DIR NAME ADDRESSES...: host key and config of one daemon (kept across restarts)
_cm_prepare() {
  local dir=$1
  mkdir -p "$dir/home"
  chmod 700 "$dir/home"
  [[ -f $dir/host_key ]] || ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$dir/host_key" || return 1
  _cm_sshd_config "$@"
}

# _cm_launch DIR HOSTNAME HOME: start the daemon of DIR in the background; no waiting
_cm_launch() {
  local dir=$1 name=$2 home=$3 pid id
  : >"$dir/log"
  if [[ ${CM_TEST_HOSTS_SHARED_HOME:-0} == 1 ]]; then
    unshare --uts -- /bin/sh -c 'hostname "$1" && exec "$2" -D -f "$3" -E "$4"' \
      sh "$name" "$CM_SSHD" "$dir/sshd_config" "$dir/log" \
      </dev/null >>"$dir/log" 2>&1 3>&- &
  else
    unshare --uts --mount --propagation private -- /bin/sh -c \
      'hostname "$1" && mount --bind "$5" /root && exec "$2" -D -f "$3" -E "$4"' \
      sh "$name" "$CM_SSHD" "$dir/sshd_config" "$dir/log" "$home" \
      </dev/null >>"$dir/log" 2>&1 3>&- &
  fi
  pid=$!
  # not a job of this shell: no "Killed" notices later; bash still reaps it when it dies
  disown "$pid"
  id=$(_cm_proc_id "$pid") || id="$pid 0"
  echo "$id" >"$dir/pid"
  echo "$id" >>"$CM_TEST_HOSTS_DIR/pids"
  [[ -n ${CM_TEST_PID_LEDGER:-} ]] && echo "$id" >>"$CM_TEST_PID_LEDGER"
  return 0
}

# _cm_await DIR ADDRESSES...: 0 when listening on all, 2 when an address is taken, 1 on other failure
_cm_await() {
  local dir=$1 port=${CM_TEST_HOSTS_PORT:-22} i pid start
  shift
  read -r pid start <"$dir/pid"
  for ((i = 0; i < 1000; i++)); do
    # the log is this daemon's alone, and names only the addresses it was given
    grep -q "Bind to port $port on .* failed" "$dir/log" && return 2
    # (sshd ends its log lines with \r\n)
    (($(grep -c "^Server listening on .* port $port\." "$dir/log") >= $#)) && return 0
    if ! _cm_alive "$pid" "$start"; then
      # the exec from sh to sshd keeps the pid but changes nothing we record, so a dead pid is fatal
      grep -q 'Address already in use\|Cannot bind any address' "$dir/log" && return 2
      return 1
    fi
    sleep 0.01
  done
  return 1
}

_cm_known_hosts() {
  local d=$CM_TEST_HOSTS_DIR port=${CM_TEST_HOSTS_PORT:-22} name addr slots key dir
  {
    while read -r name addr slots dir; do
      key=$(cut -d' ' -f1,2 "$dir/host_key.pub")
      if [[ $port == 22 ]]; then echo "$addr $key"; else echo "[$addr]:$port $key"; fi
    done < <(cat "$d/th.list" "$d/m.list")
  } >"$d/known_hosts"
}

# inventory.yaml (docs/design.md format) and ssh_config from th.list and m.list
# cm_host_options NAME 'Key: value'...: the host's own ssh options in the inventory (rewritten now)
cm_host_options() {
  local name=${1:?usage: cm_host_options NAME 'Key: value'...}
  shift
  mkdir -p "$CM_TEST_HOSTS_DIR/options"
  printf '%s\n' "$@" >"$CM_TEST_HOSTS_DIR/options/$name"
  _cm_write_configs
}

_cm_write_configs() {
  local d=$CM_TEST_HOSTS_DIR port=${CM_TEST_HOSTS_PORT:-22} name addr slots dir tags
  _cm_known_hosts
  {
    echo "# written by test/helpers/hosts.bash; hosts th* are separate sshds, m* share a few"
    echo "defaults:"
    echo "  user: root"
    echo "  identity: \"$d/id_ed25519\""
    echo "  options:"
    echo "    UserKnownHostsFile: \"$d/known_hosts\""
    echo "    StrictHostKeyChecking: accept-new"
    echo "hosts:"
    while read -r name addr slots dir; do
      tags=test
      [[ $name == m* ]] && tags=many
      echo "  $name:"
      echo "    address: $addr"
      [[ $port == 22 ]] || echo "    port: $port"
      echo "    slots: $slots"
      echo "    tags: [$tags]"
      # a host's own ssh options (cm_host_options)
      if [[ -s $d/options/$name ]]; then
        echo "    options:"
        sed 's/^/      /' "$d/options/$name"
      fi
    done < <(cat "$d/th.list" "$d/m.list")
  } >"$d/inventory.yaml.tmp" && mv "$d/inventory.yaml.tmp" "$d/inventory.yaml"
  {
    while read -r name addr slots dir; do
      echo "Host $name"
      echo "  HostName $addr"
    done < <(cat "$d/th.list" "$d/m.list")
    echo "Host *"
    echo "  Port $port"
    echo "  User root"
    echo "  IdentityFile $d/id_ed25519"
    echo "  IdentitiesOnly yes"
    echo "  UserKnownHostsFile $d/known_hosts"
    echo "  GlobalKnownHostsFile /dev/null"
    echo "  StrictHostKeyChecking accept-new"
    echo "  BatchMode yes"
    echo "  ConnectTimeout 10"
    echo "  LogLevel ERROR"
  } >"$d/ssh_config.tmp" && mv "$d/ssh_config.tmp" "$d/ssh_config"
  export CM_INVENTORY=$d/inventory.yaml
  export CM_TEST_SSH_CONFIG=$d/ssh_config
}

# _cm_stop_list FILE: stop the daemons of the hosts in th.list or m.list
_cm_stop_list() {
  local name addr slots dir recs=()
  while read -r name addr slots dir; do
    [[ -f $dir/pid ]] && recs+=("$(<"$dir/pid")")
  done <"$1"
  _cm_kill_trees "${recs[@]}"
}

cm_hosts_start() {
  local k=${1:?usage: cm_hosts_start K [SLOTS]} slots=${2:-4} d i o rc r dir recs
  [[ $k =~ ^[0-9]+$ && $k -ge 1 && $k -le 250 ]] || _cm_die "K must be 1..250, not '$k'" || return 1
  _cm_hosts_dir || return 1
  d=$CM_TEST_HOSTS_DIR
  _cm_stop_list "$d/th.list"
  : >"$d/th.list"
  for ((o = 10; o <= 19; o++)); do
    for ((i = 1; i <= k; i++)); do
      dir=$d/hosts/th$i
      _cm_prepare "$dir" "th$i" "127.0.$o.$i" || return 1
      _cm_launch "$dir" "th$i" "$dir/home"
    done
    rc=0
    for ((i = 1; i <= k; i++)); do
      r=0
      _cm_await "$d/hosts/th$i" "127.0.$o.$i" || r=$?
      ((r > rc)) && rc=$r
    done
    if ((rc == 0)); then
      for ((i = 1; i <= k; i++)); do echo "th$i 127.0.$o.$i $slots $d/hosts/th$i"; done >"$d/th.list"
      export CM_TEST_HOSTS_PREFIX=127.0.$o
      _cm_write_configs
      return 0
    fi
    recs=()
    for ((i = 1; i <= k; i++)); do recs+=("$(<"$d/hosts/th$i/pid")"); done
    _cm_kill_trees "${recs[@]}"
    if ((rc == 1)); then
      for ((i = 1; i <= k; i++)); do
        if [[ -s $d/hosts/th$i/log ]] && ! grep -q 'Server listening' "$d/hosts/th$i/log"; then
          sed 's/^/  /' "$d/hosts/th$i/log" >&2
          break
        fi
      done
      _cm_die "sshd for th1..th$k did not start (logs in $d/hosts)"
      return 1
    fi
    echo "hosts.bash: 127.0.$o.1..$k port ${CM_TEST_HOSTS_PORT:-22} in use, trying the next block" >&2
  done
  _cm_die "no free address block 127.0.10-19.x for $k hosts (set CM_TEST_HOSTS_PORT to use another port)"
}

cm_hosts_start_many() {
  local n=${1:?usage: cm_hosts_start_many N [SLOTS]} slots=${2:-4} d base g groups j rc r dir recs
  local -a addrs
  [[ $n =~ ^[0-9]+$ && $n -ge 1 && $n -le 500 ]] || _cm_die "N must be 1..500, not '$n'" || return 1
  _cm_hosts_dir || return 1
  d=$CM_TEST_HOSTS_DIR
  _cm_stop_list "$d/m.list"
  : >"$d/m.list"
  mkdir -p "$d/many/home"
  groups=$(((n + 15) / 16))
  for base in 20 22 24 26 28; do
    for ((g = 0; g < groups; g++)); do
      addrs=()
      for ((j = g * 16 + 1; j <= n && j <= g * 16 + 16; j++)); do
        addrs+=("127.0.$((base + (j - 1) / 250)).$(((j - 1) % 250 + 1))")
      done
      dir=$d/many/g$g
      _cm_prepare "$dir" many "${addrs[@]}" || return 1
      _cm_launch "$dir" many "$d/many/home"
      echo "${addrs[*]}" >"$dir/addresses"
    done
    rc=0
    for ((g = 0; g < groups; g++)); do
      # shellcheck disable=SC2046
      r=0
      _cm_await "$d/many/g$g" $(cat "$d/many/g$g/addresses") || r=$?
      ((r > rc)) && rc=$r
    done
    if ((rc == 0)); then
      for ((j = 1; j <= n; j++)); do
        echo "m$j 127.0.$((base + (j - 1) / 250)).$(((j - 1) % 250 + 1)) $slots $d/many/g$(((j - 1) / 16))"
      done >"$d/m.list"
      export CM_TEST_MANY_PREFIX=127.0.$base
      _cm_write_configs
      return 0
    fi
    recs=()
    for ((g = 0; g < groups; g++)); do recs+=("$(<"$d/many/g$g/pid")"); done
    _cm_kill_trees "${recs[@]}"
    if ((rc == 1)); then
      sed 's/^/  /' "$d/many/g0/log" >&2
      _cm_die "sshd for m1..m$n did not start (logs in $d/many)"
      return 1
    fi
    echo "hosts.bash: 127.0.$base.x port ${CM_TEST_HOSTS_PORT:-22} in use, trying the next block" >&2
  done
  _cm_die "no free address block for $n hosts"
}

cm_hosts_stop() {
  [[ -n ${CM_TEST_HOSTS_DIR:-} && -f $CM_TEST_HOSTS_DIR/pids ]] || return 0
  local recs=()
  # every daemon ever started from this directory, including restarted and replaced ones
  mapfile -t recs <"$CM_TEST_HOSTS_DIR/pids"
  _cm_kill_trees "${recs[@]}"
}

# _cm_th_dir I: the directory of host thI, or an error
_cm_th_dir() {
  local dir=${CM_TEST_HOSTS_DIR:-}/hosts/th$1
  [[ -n ${CM_TEST_HOSTS_DIR:-} ]] && grep -q "^th$1 " "$CM_TEST_HOSTS_DIR/th.list" 2>/dev/null ||
    _cm_die "no test host th$1 (call cm_hosts_start first)" || return 1
  echo "$dir"
}

cm_host_kill() {
  local dir pid start
  dir=$(_cm_th_dir "${1:?usage: cm_host_kill I}") || return 1
  read -r pid start <"$dir/pid"
  _cm_kill_tree "$pid" "$start"
}

cm_host_restart() {
  local i=${1:?usage: cm_host_restart I} dir pid start addr
  dir=$(_cm_th_dir "$i") || return 1
  read -r pid start <"$dir/pid"
  _cm_kill_tree "$pid" "$start" || return 1
  addr=$(awk -v n="th$i" '$1 == n { print $2 }' "$CM_TEST_HOSTS_DIR/th.list")
  _cm_launch "$dir" "th$i" "$dir/home"
  _cm_await "$dir" "$addr" || _cm_die "th$i did not come back (log: $dir/log)"
}

# cm_host_freeze I: th$I hangs (daemon and sessions SIGSTOPped): connections are accepted by the
# kernel but never answered, running commands make no progress; cm_host_thaw I resumes it.
cm_host_freeze() { _cm_signal_host "${1:?usage: cm_host_freeze I}" STOP; }
cm_host_thaw() { _cm_signal_host "${1:?usage: cm_host_thaw I}" CONT; }

_cm_signal_host() {
  local dir pid start tree
  dir=$(_cm_th_dir "$1") || return 1
  read -r pid start <"$dir/pid"
  _cm_alive "$pid" "$start" || _cm_die "th$1 is not running" || return 1
  tree=$(_cm_tree "$pid")
  # shellcheck disable=SC2086
  kill -"$2" $tree 2>/dev/null || true
}

cm_host_home() {
  local name=${1:?usage: cm_host_home NAME} dir
  [[ ${CM_TEST_HOSTS_SHARED_HOME:-0} == 1 ]] && { echo /root; return 0; }
  dir=$(awk -v n="$name" '$1 == n { print $4 }' "$CM_TEST_HOSTS_DIR/th.list" "$CM_TEST_HOSTS_DIR/m.list" 2>/dev/null)
  [[ -n $dir ]] || _cm_die "no test host $name" || return 1
  [[ $name == m* ]] && dir=$CM_TEST_HOSTS_DIR/many
  echo "$dir/home"
}

cm_ssh() {
  ssh -F "${CM_TEST_SSH_CONFIG:?no test hosts started}" "$@"
}
