#!/usr/bin/env bash
# cm-hosts check over N hosts (default 64) against one single plain `ssh HOST true` round trip, same
# machine, same sshds, same run. check runs one ssh per host at once, so the ratio should stay near
# 1 (plus node's start-up), not near N. BENCH_SEQUENTIAL=1 also times N plain ssh in a row.
#
#   bash bench/hosts-check.sh          (BENCH_HOSTS=N, BENCH_REPEAT=R change the sizes)
set -euo pipefail

CM_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH=$CM_REPO/node_modules/.bin:$PATH
n=${BENCH_HOSTS:-64}
repeat=${BENCH_REPEAT:-5}

work=$(mktemp -d "${TMPDIR:-/tmp}/cm-bench-hosts.XXXXXX")
export CM_TEST_HOSTS_DIR=$work/hosts
# shellcheck source=../test/helpers/hosts.bash
source "${CM_HOSTS_HELPER:-$CM_REPO/test/helpers/hosts.bash}"
trap 'cm_hosts_stop; rm -rf "$work"' EXIT
cm_hosts_start_many "$n" 1 >/dev/null
cfg=$CM_TEST_SSH_CONFIG

now() { date +%s.%N; }
# median SECONDS...
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# warm up: host keys known, page cache hot, sshd forked once
ssh -F "$cfg" m1 true
cm-hosts check m1 --json >/dev/null

single=() fast=() check=() one=()
for ((r = 0; r < repeat; r++)); do
  t0=$(now); ssh -F "$cfg" m1 true; t1=$(now)
  single+=("$(echo "$t1 - $t0" | bc -l)")
  # the key exchange check prefers (see libs/inventory/src/check.ts)
  t0=$(now); ssh -F "$cfg" -o KexAlgorithms=^curve25519-sha256 m1 true; t1=$(now)
  fast+=("$(echo "$t1 - $t0" | bc -l)")
  t0=$(now); cm-hosts check m1 --json >/dev/null; t1=$(now)
  one+=("$(echo "$t1 - $t0" | bc -l)")
  t0=$(now)
  up=$(cm-hosts check @many --json --timeout 60 | jq -r 'select(.up) | .host' | wc -l)
  t1=$(now)
  check+=("$(echo "$t1 - $t0" | bc -l)")
  [[ $up == "$n" ]] || { echo "only $up of $n hosts up" >&2; exit 1; }
done

s=$(median "${single[@]}")
f=$(median "${fast[@]}")
o=$(median "${one[@]}")
c=$(median "${check[@]}")
printf 'one plain ssh round trip (ssh m1 true):  %6.3f s  (median of %d)\n' "$s" "$repeat"
printf 'the same with curve25519 key exchange:   %6.3f s\n' "$f"
printf 'cm-hosts check, 1 host:                  %6.3f s\n' "$o"
printf 'cm-hosts check, %d hosts in parallel:    %6.3f s\n' "$n" "$c"
printf 'ratio check(%d hosts) / one ssh:         %6.2f   (%d sequential ssh would be ~%d)\n' "$n" "$(echo "$c / $s" | bc -l)" "$n" "$n"
printf 'ratio check(%d hosts) / one curve25519 ssh: %6.2f\n' "$n" "$(echo "$c / $f" | bc -l)"
printf 'ratio check(%d hosts) / check(1 host):   %6.2f\n' "$n" "$(echo "$c / $o" | bc -l)"
if [[ ${BENCH_SEQUENTIAL:-0} == 1 ]]; then
  t0=$(now)
  for ((i = 1; i <= n; i++)); do ssh -F "$cfg" "m$i" true; done
  t1=$(now)
  printf '%d plain ssh one after another:          %6.3f s\n' "$n" "$(echo "$t1 - $t0" | bc -l)"
fi
