#!/usr/bin/env bash
# The real-Vagrant lab for test/vagrant-lxc.bats: Vagrant's lxc provider inside a private network
# namespace, so the machines reach nothing but each other and the root namespace (through one veth).
#
#   vagrant-lab.sh prepare   install vagrant vagrant-lxc lxc debootstrap if missing; build the Debian box once
#   vagrant-lab.sh start     prepare, clear what an interrupted run left, start netns + dnsmasq
#   vagrant-lab.sh stop      destroy the lab's containers, stop dnsmasq by pid, delete the netns
#   vagrant-lab.sh exec CMD  run CMD inside the lab (netns, netns-view /sys, lab lxcpath, lab VAGRANT_HOME)
#   vagrant-lab.sh status    what is up
#
# test/helpers/vagrant-lab-bin/vagrant calls `exec` so that, with that folder first on PATH, cm-vagrant
# runs the real vagrant inside the lab without knowing about it.
#
# Everything the lab owns lives in $CM_LAB_DIR (default /var/cache/cm-lab, outside the repo, kept between
# runs so the box is built once). Only the machine's own Debian mirror is contacted (apt, debootstrap).
set -euo pipefail

LAB=${CM_LAB_DIR:-/var/cache/cm-lab}
NS=${CM_LAB_NETNS:-cmlab}
# 10.77.3.0/24: the lxc bridge inside the netns; 10.77.4.0/30: the veth between root ns and lab ns.
BRIDGE_NET=10.77.3 LINK_NET=10.77.4
HOST_IF=cmlab0 NS_IF=uplink
BOX_NAME=${CM_LAB_BOX:-cm/debian12}
REAL_VAGRANT=${CM_LAB_REAL_VAGRANT:-/usr/bin/vagrant}
RUN=$LAB/run
export VAGRANT_HOME=$LAB/vagrant.d
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_NO_PLUGINS_UPDATE=1 VAGRANT_BOX_UPDATE_CHECK_DISABLE=1

log() { printf 'vagrant-lab: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# Why lxc cannot work here, or nothing when it can (the bats suite skips with this message).
lab_unusable_reason() {
  [ "$(id -u)" = 0 ] || { echo "needs root (network namespaces, lxc)"; return; }
  command -v ip >/dev/null || { echo "iproute2 (ip) is missing"; return; }
  command -v nsenter >/dev/null && command -v unshare >/dev/null || { echo "util-linux nsenter/unshare missing"; return; }
  [ -d /sys/fs/cgroup ] || { echo "no cgroup filesystem at /sys/fs/cgroup"; return; }
  if ! ip netns add cmlab-probe$$ 2>/dev/null; then echo "cannot create network namespaces here"; return; fi
  ip netns del cmlab-probe$$
  if ! command -v apt-get >/dev/null && ! command -v lxc-start >/dev/null; then
    echo "no apt-get to install lxc and vagrant"; return
  fi
}

install_packages() {
  local missing=()
  command -v vagrant >/dev/null || missing+=(vagrant)
  [ -d /usr/share/rubygems-integration/all/gems ] && ls -d /usr/share/rubygems-integration/all/gems/vagrant-lxc-* >/dev/null 2>&1 \
    || missing+=(vagrant-lxc)
  command -v lxc-start >/dev/null || missing+=(lxc)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]} (--no-install-recommends: without it apt pulls qemu and libvirt)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  }
}

# The machine's own Debian mirror for its release (deb822 .sources first, then one-line sources.list).
debian_mirror() {
  local codename f
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v want="$codename" '
      function flush() { if (uri != "" && deb && suites ~ ("(^| )" want "( |$)")) { print uri; found = 1; exit } uri = ""; suites = ""; deb = 0 }
      /^[ \t]*$/ { flush(); next }
      /^Types:/ { deb = ($0 ~ /(^|[ \t])deb([ \t]|$)/) }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
      END { if (!found) flush() }' "$f"
  done | head -1 | grep . && return 0
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -n -E "s/^deb[ \t]+(\[[^]]*\][ \t]+)?([^ \t]+)[ \t]+$codename[ \t].*/\2/p" "$f"
  done | head -1 | grep . && return 0
  return 1
}

# Builds the lxc box once: a minbase Debian without kernel, vagrant's insecure key, DHCP on e*, a
# local-only resolv.conf (the host resolver is unreachable from the netns: each sudo in the guest would
# stall 5-10 s), an empty fstab (else systemd-remount-fs fails) and host keys made at first boot.
build_box() {
  local box=$LAB/box/debian12-lxc.box
  [ -f "$LAB/box/done" ] && [ -f "$box" ] && return 0
  local mirror codename keys work=$LAB/box.tmp
  mirror=$(debian_mirror) || die "no Debian mirror found in /etc/apt/sources.list*"
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  keys=$(ls -d /usr/share/rubygems-integration/all/gems/vagrant-*/keys 2>/dev/null | head -1)
  [ -f "$keys/vagrant.pub" ] || die "vagrant's insecure public key not found"
  log "building the $codename lxc box from $mirror (once; cached in $LAB/box)"
  rm -rf "$work"; mkdir -p "$work"
  local R=$work/rootfs
  debootstrap --variant=minbase \
    --include=systemd-sysv,udev,openssh-server,sudo,iproute2,netbase,procps,python3-minimal \
    "$codename" "$R" "$mirror" >"$work/debootstrap.log" 2>&1 || die "debootstrap failed: see $work/debootstrap.log"
  chroot "$R" useradd -m -s /bin/bash -U vagrant
  echo 'vagrant ALL=(ALL) NOPASSWD:ALL' >"$R/etc/sudoers.d/vagrant"; chmod 440 "$R/etc/sudoers.d/vagrant"
  install -d -m700 -o1000 -g1000 "$R/home/vagrant/.ssh"
  install -m600 -o1000 -g1000 "$keys/vagrant.pub" "$R/home/vagrant/.ssh/authorized_keys"
  printf '[Match]\nName=e*\n[Network]\nDHCP=ipv4\n[DHCPv4]\nClientIdentifier=mac\n' >"$R/etc/systemd/network/10-dhcp.network"
  chroot "$R" systemctl enable systemd-networkd >/dev/null 2>&1
  : >"$R/etc/machine-id"; rm -f "$R"/etc/ssh/ssh_host_*
  mkdir -p "$R/etc/systemd/system/ssh.service.d"
  printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
    >"$R/etc/systemd/system/ssh.service.d/keygen.conf"
  rm -f "$R/etc/resolv.conf"; printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$R/etc/resolv.conf"
  : >"$R/etc/fstab"
  chroot "$R" apt-get clean; rm -rf "$R"/var/lib/apt/lists/*
  mkdir -p "$work/lxcbox"
  (cd "$work" && tar --numeric-owner -czf lxcbox/rootfs.tar.gz ./rootfs)
  (cd "$work/lxcbox" && echo '{"provider":"lxc","version":"1.0.0"}' >metadata.json &&
    echo 'lxc.apparmor.profile = unconfined' >lxc-config && tar cf ../debian12-lxc.box metadata.json lxc-config rootfs.tar.gz)
  mkdir -p "$LAB/box"
  mv "$work/debian12-lxc.box" "$box"
  rm -rf "$work"
  date -u +%FT%TZ >"$LAB/box/done"
}

add_box() {
  [ -d "$VAGRANT_HOME/boxes/${BOX_NAME//\//-VAGRANTSLASH-}" ] && return 0
  log "adding box $BOX_NAME to $VAGRANT_HOME"
  "$REAL_VAGRANT" box add -f --name "$BOX_NAME" "$LAB/box/debian12-lxc.box" >/dev/null
}

prepare() {
  local why; why=$(lab_unusable_reason)
  [ -z "$why" ] || die "lxc lab unusable: $why"
  mkdir -p "$LAB" "$RUN" "$LAB/lxc" "$VAGRANT_HOME"
  install_packages
  build_box
  add_box
}

# Runs "$@" in the netns with a /sys that shows the netns' devices (vagrant-lxc reads the bridge there)
# while keeping the host's cgroup mounts, and with the lab's own lxcpath over /var/lib/lxc.
lab_exec() {
  [ -e "/run/netns/$NS" ] || die "the lab is not started (vagrant-lab.sh start)"
  mkdir -p /var/lib/lxc /run/cmlab-cg
  exec nsenter --net="/run/netns/$NS" unshare -m --propagation private sh -c '
    mount --rbind /sys/fs/cgroup /run/cmlab-cg && mount -t sysfs sysfs /sys &&
    mount --rbind /run/cmlab-cg /sys/fs/cgroup && mount --bind "$0" /var/lib/lxc && exec "$@"' "$LAB/lxc" "$@"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Containers of the lab (any run, live or stale): all of $LAB/lxc is ours.
destroy_containers() {
  [ -d "$LAB/lxc" ] || return 0
  local c
  for c in "$LAB"/lxc/*/; do
    [ -d "$c" ] || continue
    c=$(basename "$c")
    log "removing container $c"
    if [ -e "/run/netns/$NS" ] && [ -f "$LAB/lxc/$c/config" ]; then
      ( lab_exec lxc-stop -k -n "$c" ) >/dev/null 2>&1 || true
      ( lab_exec lxc-destroy -n "$c" ) >/dev/null 2>&1 || true
    fi
    # A container still stopping may write while we delete (rm then says "Directory not empty"): retry.
    local try
    for try in 1 2 3 4 5; do
      rm -rf "${LAB:?}/lxc/$c" 2>/dev/null && break
      sleep 1
    done
    [ ! -e "$LAB/lxc/$c" ] || log "could not remove $LAB/lxc/$c"
  done
  # Vagrant's global machine index would otherwise list machines whose project folder is gone.
  rm -f "$VAGRANT_HOME/data/machine-index/index"
}

net_down() {
  if pid_alive "$RUN/dnsmasq.pid"; then kill "$(cat "$RUN/dnsmasq.pid")" 2>/dev/null || true; fi
  rm -f "$RUN/dnsmasq.pid" "$RUN/dnsmasq.leases"
  ip link del "$HOST_IF" 2>/dev/null || true
  [ -e "/run/netns/$NS" ] && ip netns del "$NS" 2>/dev/null || true
}

net_up() {
  # Guard in the root netns: without the lab, traffic to the lab's addresses goes nowhere, never out of eth0.
  ip route replace unreachable "$BRIDGE_NET.0/24" metric 4000
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  ip -n "$NS" link add lxcbr0 type bridge
  ip -n "$NS" addr add "$BRIDGE_NET.1/24" dev lxcbr0
  ip -n "$NS" link set lxcbr0 up
  ip link add "$HOST_IF" type veth peer name "$NS_IF" netns "$NS"
  ip addr add "$LINK_NET.1/30" dev "$HOST_IF"; ip link set "$HOST_IF" up
  ip -n "$NS" addr add "$LINK_NET.2/30" dev "$NS_IF"; ip -n "$NS" link set "$NS_IF" up
  ip netns exec "$NS" sysctl -qw net.ipv4.ip_forward=1
  # The only way in: the root netns reaches the machines through the veth (cm-exec's ssh runs there).
  ip route replace "$BRIDGE_NET.0/24" via "$LINK_NET.2" dev "$HOST_IF" metric 100
  # DHCP only (port=0: no DNS; the box resolves nothing), as root so it can write the lease file here.
  ip netns exec "$NS" dnsmasq --conf-file=/dev/null --port=0 --user=root --group=root --bind-interfaces \
    --interface=lxcbr0 --except-interface=lo --listen-address="$BRIDGE_NET.1" \
    --dhcp-range="$BRIDGE_NET.2,$BRIDGE_NET.254" --dhcp-authoritative \
    --dhcp-leasefile="$RUN/dnsmasq.leases" --pid-file="$RUN/dnsmasq.pid"
  pid_alive "$RUN/dnsmasq.pid" || die "dnsmasq did not start"
}

start() {
  exec 9>"$LAB.lock"; flock 9
  prepare
  destroy_containers
  net_down
  net_up
  log "started: netns $NS, bridge $BRIDGE_NET.1/24, reachable from here via $HOST_IF"
}

stop() {
  mkdir -p "$LAB"
  exec 9>"$LAB.lock"; flock 9
  destroy_containers
  net_down
}

status() {
  if [ -e "/run/netns/$NS" ]; then echo "netns $NS: up"; else echo "netns $NS: down"; fi
  if pid_alive "$RUN/dnsmasq.pid"; then echo "dnsmasq: pid $(cat "$RUN/dnsmasq.pid")"; else echo "dnsmasq: down"; fi
  if [ -f "$LAB/box/done" ]; then echo "box: built $(cat "$LAB/box/done")"; else echo "box: not built"; fi
  echo "containers: $(find "$LAB/lxc" -mindepth 2 -maxdepth 2 -name config 2>/dev/null | wc -l)"
}

case "${1:-}" in
  prepare) mkdir -p "$LAB"; exec 9>"$LAB.lock"; flock 9; prepare ;;
  start) start ;;
  stop) stop ;;
  exec) shift; lab_exec "$@" ;;
  status) status ;;
  unusable-reason) lab_unusable_reason ;;
  *) echo "usage: vagrant-lab.sh prepare|start|stop|status|unusable-reason|exec CMD..." >&2; exit 2 ;;
esac
