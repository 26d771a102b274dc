#!/usr/bin/env bash
# What the bats suites and benchmarks need from Debian, installed with apt-get when missing.
# Idempotent and quick when everything is there; run as root on Debian 12 (no systemd needed).
set -euo pipefail

packages=(
  openssh-server # the test hosts' sshd
  openssh-client # ssh, ssh-keygen
  parallel       # GNU parallel, the peer in bench/
  rsync          # transfers
  iproute2       # ip, ss, tc
  procps         # ps
  psmisc         # pstree, fuser
  util-linux     # unshare
  mount          # mount --bind inside each host's mount namespace
  jq             # bats suites read NDJSON records with jq
)

missing=()
for p in "${packages[@]}"; do
  if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) != installed ]]; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if ((EUID != 0)); then
    echo "install-deps.sh: missing ${missing[*]}; run me as root (or: apt-get install ${missing[*]})" >&2
    exit 4
  fi
  echo "install-deps.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # openssh-server's postinst would start a system sshd on *:22, which takes the port the test hosts
  # listen on: forbid service starts during the install unless a policy is already in place.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
  fi
  trap '((own_policy)) && rm -f "$policy"' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi

# sshd's privilege separation directory, normally made at boot by systemd-tmpfiles
if ((EUID == 0)) && [[ ! -d /run/sshd ]]; then
  mkdir -m 0755 -p /run/sshd
fi

# A system sshd on the wildcard address would take port 22 from every test host.
if ss -Hltn 'sport = :22' 2>/dev/null | awk '{print $4}' | grep -qE '^(0\.0\.0\.0|\*|\[::\]):22$'; then
  echo "install-deps.sh: warning: a server listens on *:22; test hosts need CM_TEST_HOSTS_PORT=<free port>" >&2
fi
exit 0
