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
  nftables       # nft: the fault suite's host that drops every packet
  bc             # bench/: seconds and ratios
  time           # /usr/bin/time -v: peak RSS in bench/plan.sh
  perl           # the persistent transport's job loop on the test hosts (perl -c in the suite)
  chromium       # test/cm-report.bats and bench/report.sh open cm-report's page headless (playwright-core)
  curl           # test/cm-report.bats: the live page refuses a POST
  openssl        # cm-fetch hashes big files on the host with openssl dgst (transfer.spec.ts checks it)
  dash           # bench/: the fork limit is measured as subshells of one dash
)

# Every program a suite, helper or benchmark calls, with the package that brings it. Checked after the
# install, so a missing one is named here, not met later as a failing test. (The Vagrant and Slurm
# labs install and check their own: test/helpers/vagrant-lab.sh, test/helpers/slurm-lab.sh.)
programs=(
  sshd:openssh-server ssh:openssh-client ssh-keygen:openssh-client scp:openssh-client
  parallel:parallel rsync:rsync ip:iproute2 ss:iproute2 tc:iproute2 ps:procps pgrep:procps
  pstree:psmisc fuser:psmisc unshare:util-linux nsenter:util-linux setsid:util-linux flock:util-linux
  mount:mount jq:jq nft:nftables bc:bc perl:perl timeout:coreutils
  sha256sum:coreutils script:bsdutils tar:tar awk:mawk xargs:findutils find:findutils
  /usr/bin/time:time chromium:chromium curl:curl openssl:openssl dash:dash
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

absent=()
for entry in "${programs[@]}"; do
  prog=${entry%%:*}
  # sshd lives in /usr/sbin, which a non-root PATH may leave out; a path is that file (not a builtin)
  if [[ $prog == /* ]]; then
    [[ -x $prog ]] || absent+=("$prog (package ${entry#*:})")
  else
    command -v "$prog" >/dev/null || [[ -x /usr/sbin/$prog ]] || absent+=("$prog (package ${entry#*:})")
  fi
done
if ((${#absent[@]})); then
  printf 'install-deps.sh: still missing after the install: %s\n' "${absent[@]}" >&2
  exit 4
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
