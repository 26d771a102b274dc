# Test hosts behind a network namespace, for faults that need the network: packets dropped (a host
# that stops answering, not one that refuses) and added latency. Built on test/helpers/hosts.bash
# (load it first, and call cm_hosts_start first: this adds to its inventory).
#
#   cm_ns_host_start NAME        an sshd in a new network namespace, reached over a veth pair
#                                (198.18.N.1 here, 198.18.N.2 there: RFC 2544's benchmark range, which
#                                leaves the namespace for nowhere); added to inventory.yaml
#   cm_ns_host_drop NAME         every packet the host sends is dropped (nft in its namespace)
#   cm_ns_host_clear NAME        packets flow again
#   cm_slow_host_start NAME TH MS   host NAME reaches test host TH through delay-proxy.mjs, which
#                                holds every chunk MS ms each way (this kernel has no netem);
#                                listens on 127.0.30.N:22
#   cm_ns_hosts_stop             sshds, proxies and namespaces gone (safe to call twice)
#
# Namespaces are named cmf<pid>-<N> after the shell that made them, and only those are removed.

_cm_ns_list() { echo "${CM_TEST_HOSTS_DIR:?}/ns.list"; }

cm_ns_host_start() {
  local name=${1:?usage: cm_ns_host_start NAME} n ns dir wrapper slots=${2:-2}
  _cm_hosts_dir || return 1
  touch "$(_cm_ns_list)"
  # the first 198.18.N.0/30 no other run holds
  for ((n = 1; n < 250; n++)); do
    ip -o addr show | grep -qF " 198.18.$n.1/30 " || break
  done
  ns=cmf$$-$n
  ip netns add "$ns" || return 1
  ip link add "${ns}h" type veth peer name "${ns}n" || return 1
  ip link set "${ns}n" netns "$ns"
  ip addr add "198.18.$n.1/30" dev "${ns}h"
  ip link set "${ns}h" up
  ip -n "$ns" addr add "198.18.$n.2/30" dev "${ns}n"
  ip -n "$ns" link set "${ns}n" up
  ip -n "$ns" link set lo up
  echo "$name $ns 198.18.$n.2 ${ns}n" >>"$(_cm_ns_list)"
  dir=$CM_TEST_HOSTS_DIR/hosts/$name
  _cm_prepare "$dir" "$name" "198.18.$n.2" || return 1
  # hosts.bash execs $CM_SSHD after hostname and mount: this one enters the namespace first (same pid)
  wrapper=$dir/sshd-in-ns
  printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$ns" "${CM_SSHD:-/usr/sbin/sshd}" >"$wrapper"
  chmod +x "$wrapper"
  CM_SSHD=$wrapper _cm_launch "$dir" "$name" "$dir/home"
  _cm_await "$dir" "198.18.$n.2" || _cm_die "sshd of $name did not start (log: $dir/log)" || return 1
  echo "$name 198.18.$n.2 $slots $dir" >>"$CM_TEST_HOSTS_DIR/th.list"
  _cm_write_configs
}

_cm_ns_of() { awk -v n="$1" '$1 == n { print $2, $4 }' "$(_cm_ns_list)"; }

cm_ns_host_drop() {
  local ns dev
  read -r ns dev < <(_cm_ns_of "${1:?}")
  ip netns exec "$ns" nft add table inet cmfault &&
    ip netns exec "$ns" nft add chain inet cmfault out '{ type filter hook output priority 0; policy drop; }'
}

cm_ns_host_clear() {
  local ns dev
  read -r ns dev < <(_cm_ns_of "${1:?}")
  ip netns exec "$ns" nft delete table inet cmfault 2>/dev/null || true
}

cm_slow_host_start() {
  local name=${1:?usage: cm_slow_host_start NAME TH MS} th=${2:?} ms=${3:?} n addr target dir pid
  _cm_hosts_dir || return 1
  touch "$CM_TEST_HOSTS_DIR/proxy.pids"
  target=$(awk -v n="$th" '$1 == n { print $2 }' "$CM_TEST_HOSTS_DIR/th.list")
  [[ -n $target ]] || _cm_die "no test host $th" || return 1
  dir=$CM_TEST_HOSTS_DIR/hosts/$name
  mkdir -p "$dir"
  # the first free 127.0.30.N (another run may hold some)
  for ((n = 1; n <= 100; n++)); do
    addr=127.0.30.$n
    node "$(dirname "${BASH_SOURCE[0]}")/delay-proxy.mjs" "$addr:22" "$target:22" "$ms" >"$dir/proxy.out" 2>&1 3>&- &
    pid=$!
    disown "$pid"
    for _ in $(seq 1 500); do
      grep -qs ready "$dir/proxy.out" && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.02
    done
    if grep -qs ready "$dir/proxy.out"; then
      echo "$(_cm_proc_id "$pid")" >>"$CM_TEST_HOSTS_DIR/proxy.pids"
      break
    fi
    kill "$pid" 2>/dev/null
  done
  grep -qs ready "$dir/proxy.out" || _cm_die "delay proxy for $name did not start: $(cat "$dir/proxy.out")" || return 1
  # same host (and key) as $th, reached through the proxy
  echo "$name $addr 2 $(awk -v n="$th" '$1 == n { print $4 }' "$CM_TEST_HOSTS_DIR/th.list")" >>"$CM_TEST_HOSTS_DIR/th.list"
  _cm_write_configs
}

cm_ns_hosts_stop() {
  local f name ns addr dev recs=()
  f=${CM_TEST_HOSTS_DIR:-}/ns.list
  [[ -f $f ]] || return 0
  while read -r name ns addr dev; do
    [[ -f $CM_TEST_HOSTS_DIR/hosts/$name/pid ]] && recs+=("$(<"$CM_TEST_HOSTS_DIR/hosts/$name/pid")")
  done <"$f"
  if [[ -f $CM_TEST_HOSTS_DIR/proxy.pids ]]; then
    mapfile -t -O "${#recs[@]}" recs <"$CM_TEST_HOSTS_DIR/proxy.pids"
    : >"$CM_TEST_HOSTS_DIR/proxy.pids"
  fi
  ((${#recs[@]})) && _cm_kill_trees "${recs[@]}"
  while read -r name ns addr dev; do
    ip netns del "$ns" 2>/dev/null || true
    ip link del "${ns}h" 2>/dev/null || true
  done <"$f"
  : >"$f"
}
