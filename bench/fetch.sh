#!/usr/bin/env bash
# cm-fetch against plain scp and rsync, same files, same hosts, same run:
#   small: 1,000 jobs x one 4 KiB result file, spread over th1 and th2 (what a sweep leaves behind)
#   big:   one job with one 200 MB output file on th1
#   live:  the same 1,000 jobs run by cm-exec (each writes its 4 KiB file): piped into cm-fetch,
#          which fetches while the run goes on, against cm-exec --keep-workdirs then one rsync -a
#          per host of the run's tree; both timed from the start of cm-exec
# cm-fetch reads one finished event per job, as it would behind cm-exec (each host's server sends
# the jobs queued for it as one archive over one connection per host; --transfers 8; sha256 checked
# against the host; CM_REMOTE_LOOP=sh: one `ssh tar` per batch instead). The peers get their best
# case: one `scp -r` / `rsync -a` per host for the whole tree, the two hosts in parallel.
#
#   bash bench/fetch.sh            (BENCH_SMALL=N and BENCH_BIG_MB=M change the sizes)
#   BENCH_ONLY=small|big           only the small files and the live run, or only the big file
#   BENCH_ROUNDS=N                 rounds (default 3): each section runs its contenders in turn, N
#                                  times, and shows the median run by wall time, with every run's
#   BENCH_BASELINE=DIR             also DIR's cm-fetch (another checkout, built), "before" beside "after"
# CPU seconds by bench/cpu-split.pl: host = the test sshds' trees, ctl = the command's tree (with the
# ssh masters it starts). Last, the CPU per file of each copy, in ms: its median run's (a live run's
# less the median run of cm-exec alone), the same file count for all.
set -euo pipefail

CM_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH=$CM_REPO/node_modules/.bin:$PATH
small=${BENCH_SMALL:-1000}
big_mb=${BENCH_BIG_MB:-200}
rounds=${BENCH_ROUNDS:-3}
baseline=${BENCH_BASELINE:+$BENCH_BASELINE/node_modules/.bin/cm-fetch}
only=${BENCH_ONLY:-}

work=$(mktemp -d "${TMPDIR:-/tmp}/cm-bench-fetch.XXXXXX")
export CM_TEST_HOSTS_DIR=$work/hosts
# shellcheck source=../test/helpers/hosts.bash
source "$CM_REPO/test/helpers/hosts.bash"
trap 'cm_hosts_stop; rm -rf "$work"' EXIT
cm_hosts_start 2 4 >/dev/null
cfg=$CM_TEST_SSH_CONFIG

echo "setting up: $small files of 4 KiB on th1+th2, one ${big_mb} MB file on th1" >&2
for h in 1 2; do
  cm_ssh "th$h" "for i in \$(seq 0 $((small - 1))); do [ \$((i % 2 + 1)) = $h ] || continue; d=.cm/runs/small/s\$i; mkdir -p \$d; head -c 4096 /dev/urandom > \$d/f.bin; done"
done
cm_ssh th1 "mkdir -p .cm/runs/big/b0 && head -c $((big_mb * 1000000)) /dev/urandom > .cm/runs/big/b0/big.bin"
# "kept": the same folders are fetched again by each repetition (else cm-fetch removes each one once verified)
for ((i = 0; i < small; i++)); do
  printf '{"kind":"event","v":1,"event":"finished","job":"s%d","run":"small","host":"th%d","exit":0,"workdir":".cm/runs/small/s%d","outputs":["f.bin"],"kept":true}\n' "$i" $((i % 2 + 1)) "$i"
done >"$work/small.ndjson"
echo '{"kind":"event","v":1,"event":"finished","job":"b0","run":"big","host":"th1","exit":0,"workdir":".cm/runs/big/b0","outputs":["big.bin"],"kept":true}' >"$work/big.ndjson"

declare -A secs hostms ctlms B_WALL B_HOST B_CTL
check_count() { # the copy really happened
  local n
  n=$(find "$work/dest" -type f -name "$1" | wc -l)
  [[ $n == "$2" ]] || { echo "bench: expected $2 files named $1, found $n" >&2; exit 1; }
}
# one_run LABEL FN: one run of the exported function FN under cpu-split.pl into an empty dest folder
one_run() {
  local label=$1 wall host ctl
  # the last run's tree is moved aside, not deleted (all go at exit): on ext4 without a journal (this
  # VM's), every inode allocation scans past the inodes of its group freed in the last minutes
  # (recently_deleted), so deleting 2,000 files and folders here taxed the next contender's creations
  [[ ! -e $work/dest ]] || mv "$work/dest" "$(mktemp -d "$work/old.XXXXXX")/"
  mkdir -p "$work/dest"
  # the last run's leftovers (sessions closing, page cache) settle before the clock starts
  sleep 0.3
  perl "$CM_REPO/bench/cpu-split.pl" "$work/split" "$CM_TEST_HOSTS_DIR/pids" "$work/nomatch" -- bash -c "$2" >"$work/out.ndjson"
  read -r wall host ctl _ <"$work/split"
  B_WALL[$label]+="$wall " B_HOST[$label]+="$host " B_CTL[$label]+="$ctl "
}
# section BYTES FILE COUNT LABEL FN LABEL FN...: the contenders in turn, $rounds times (each FN an
# exported function; COUNT files named FILE must land, FILE - checks nothing), then a line per contender
section() {
  local bytes=$1 file=$2 count=$3 r i label w h c
  shift 3
  local -a pairs=("$@")
  for ((i = 0; i < ${#pairs[@]}; i += 2)); do B_WALL[${pairs[i]}]= B_HOST[${pairs[i]}]= B_CTL[${pairs[i]}]=; done
  for ((r = 0; r < rounds; r++)); do
    for ((i = 0; i < ${#pairs[@]}; i += 2)); do
      one_run "${pairs[i]}" "${pairs[i + 1]}"
      [[ $file == - ]] || check_count "$file" "$count"
    done
  done
  printf '%-38s %10s %14s %7s %7s  %s\n' '' wall speed host_s ctl_s 'every run: wall_s'
  for ((i = 0; i < ${#pairs[@]}; i += 2)); do
    label=${pairs[i]}
    read -r w h c < <(awk -v w="${B_WALL[$label]}" -v h="${B_HOST[$label]}" -v c="${B_CTL[$label]}" 'BEGIN {
      n = split(w, W, " "); split(h, H, " "); split(c, C, " ")
      for (i = 1; i <= n; i++) idx[i] = i
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (W[idx[j]] < W[idx[i]]) { t = idx[i]; idx[i] = idx[j]; idx[j] = t }
      k = idx[int((n + 1) / 2)]; print W[k], H[k], C[k] }')
    secs[$label]=$(echo "$w / 1000" | bc -l) hostms[$label]=$h ctlms[$label]=$c
    printf '%-38s %8.2f s %9.1f MB/s %7.2f %7.2f  %s\n' "$label" "${secs[$label]}" "$(echo "$bytes / 1000 / $w" | bc -l)" \
      "$(echo "$h / 1000" | bc -l)" "$(echo "$c / 1000" | bc -l)" \
      "$(awk -v w="${B_WALL[$label]}" 'BEGIN { n = split(w, W, " "); for (i = 1; i <= n; i++) printf "%.2f ", W[i] / 1000 }')"
  done
}

cm_small() { cm-fetch --transfers 8 --dir "$work/dest" "$work/small.ndjson"; }
cm_small_nv() { cm-fetch --transfers 8 --no-verify --dir "$work/dest" "$work/small.ndjson"; }
base_small() { "$baseline" --transfers 8 --dir "$work/dest" "$work/small.ndjson"; }
scp_small() { scp -F "$cfg" -q -r th1:.cm/runs/small "$work/dest/th1" & scp -F "$cfg" -q -r th2:.cm/runs/small "$work/dest/th2" & wait; }
rsync_small() { rsync2 small; }
rsync2() { rsync -a -e "ssh -F $cfg" th1:.cm/runs/$1/ "$work/dest/th1/" & rsync -a -e "ssh -F $cfg" th2:.cm/runs/$1/ "$work/dest/th2/" & wait; }
cm_big() { cm-fetch --transfers 8 --dir "$work/dest" "$work/big.ndjson"; }
cm_big_nv() { cm-fetch --transfers 8 --no-verify --dir "$work/dest" "$work/big.ndjson"; }
base_big() { "$baseline" --transfers 8 --dir "$work/dest" "$work/big.ndjson"; }
scp_big() { scp -F "$cfg" -q th1:.cm/runs/big/b0/big.bin "$work/dest/"; }
rsync_big() { rsync -a -e "ssh -F $cfg" th1:.cm/runs/big/b0/big.bin "$work/dest/"; }
# each live run gets its own id, so no one fetches another's folders
# (each run is a process of its own: the count lives in a file)
execrun() {
  live_n=$(($(<"$work/live_n") + 1))
  echo "$live_n" >"$work/live_n"
  cm-exec --run "live$live_n" "$@" <"$work/live.ndjson"
}
exec_only() { execrun --keep-workdirs; }
exec_fetch() { execrun | cm-fetch --transfers 8 --dir "$work/dest"; }
exec_baseline() { execrun | "$baseline" --transfers 8 --dir "$work/dest"; }
exec_rsync() { execrun --keep-workdirs >/dev/null && rsync2 "live$live_n"; }
export -f cm_small cm_small_nv base_small scp_small rsync_small rsync2 cm_big cm_big_nv base_big scp_big rsync_big
export -f execrun exec_only exec_fetch exec_baseline exec_rsync
export work cfg baseline small

sbytes=$((small * 4096))
bbytes=$((big_mb * 1000000))
echo "load $(cut -d' ' -f1-3 /proc/loadavg); $rounds rounds, the contenders in turn; the median run by wall time"
if [[ -z $only || $only == small ]]; then
  echo "== $small small files ($((sbytes / 1024)) KiB)"
  set -- "cm-fetch (per job, sha256 checked)" cm_small "cm-fetch --no-verify" cm_small_nv
  [[ -z $baseline ]] || set -- "$@" "baseline cm-fetch (per job, sha256 checked)" base_small
  section $sbytes f.bin "$small" "$@" "scp -r (one per host)" scp_small "rsync -a (one per host)" rsync_small
fi
if [[ -z $only || $only == big ]]; then
  echo "== one ${big_mb} MB file"
  set -- "cm-fetch (sha256 checked)" cm_big "cm-fetch --no-verify" cm_big_nv
  [[ -z $baseline ]] || set -- "$@" "baseline cm-fetch (sha256 checked)" base_big
  section $bbytes big.bin 1 "$@" scp scp_big rsync rsync_big
fi
if [[ -z $only || $only == small ]]; then
  echo "== $small jobs writing 4 KiB each, run by cm-exec on th1+th2 (4 slots each), timed from its start"
  printf '@outputs(out.bin)\ndef w(i=1..%d):\n    head -c 4096 /dev/urandom > out.bin\nw\n' "$small" | cm-plan - >"$work/live.ndjson"
  echo 0 >"$work/live_n"
  section $sbytes - 0 "cm-exec alone (no fetch)" exec_only
  set -- "cm-exec | cm-fetch" exec_fetch
  [[ -z $baseline ]] || set -- "$@" "cm-exec | baseline cm-fetch" exec_baseline
  section $sbytes out.bin "$small" "$@" "cm-exec, then rsync -a (one per host)" exec_rsync
fi
echo "== ratios (time / cm-fetch time; > 1 means cm-fetch is faster)"
# ratio SECTION PEER CM [NAME]: PEER's time over CM's, named NAME (default PEER)
ratio() { [[ -n ${secs[$2]:-} && -n ${secs[$3]:-} ]] && printf '%-6s %-26s %6.2f\n' "$1," "${4:-$2}:" "$(echo "${secs[$2]} / ${secs[$3]}" | bc -l)"; return 0; }
ratio small "scp -r (one per host)" "cm-fetch (per job, sha256 checked)"
ratio small "rsync -a (one per host)" "cm-fetch (per job, sha256 checked)"
ratio big scp "cm-fetch (sha256 checked)"
ratio big rsync "cm-fetch (sha256 checked)"
ratio live "cm-exec, then rsync -a (one per host)" "cm-exec | cm-fetch" "cm-exec, then rsync -a"
# per_file SECTION LABEL [LESS]: the median run's CPU per file, less LESS's median run (the cm-exec
# under a live fetch), host and controller apart: what the copy itself costs the machine
per_file() {
  [[ -n ${ctlms[$2]:-} && -n ${ctlms[${3:-$2}]:-} ]] || return 0
  local h=${hostms[$2]} c=${ctlms[$2]}
  [[ -z ${3:-} ]] || h=$(echo "$h - ${hostms[$3]}" | bc -l) c=$(echo "$c - ${ctlms[$3]}" | bc -l)
  printf '%-6s %-40s host %6.3f  ctl %6.3f\n' "$1," "$2:" "$(echo "$h / $small" | bc -l)" "$(echo "$c / $small" | bc -l)"
}
if [[ -n ${ctlms["rsync -a (one per host)"]:-} || -n ${ctlms["cm-exec alone (no fetch)"]:-} ]]; then
  echo "== CPU per file, ms (median runs; live: less the median run of cm-exec alone)"
  per_file small "cm-fetch (per job, sha256 checked)"
  # (a label of its own: the big file's baseline row would overwrite its figures)
  per_file small "baseline cm-fetch (per job, sha256 checked)"
  per_file small "rsync -a (one per host)"
  per_file live "cm-exec | cm-fetch" "cm-exec alone (no fetch)"
  per_file live "cm-exec | baseline cm-fetch" "cm-exec alone (no fetch)"
  per_file live "cm-exec, then rsync -a (one per host)" "cm-exec alone (no fetch)"
fi
