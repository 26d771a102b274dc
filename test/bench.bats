#!/usr/bin/env bats
# Every script in bench/ runs once at a tiny size and prints its table, so no benchmark rots between
# the runs that measure (npm run bench). Figures are not checked: tests never assert speed. What is
# checked: exit 0, the table's lines, and none of the "bench: ..." complaints a script prints when a
# contender gave wrong or missing results.

load helpers/common

# bench NAME [ENV=VALUE...] [-- ARGS...]: runs bench/NAME.sh with the environment given, stdout and
# stderr apart
bench() {
  local name=$1 envs=() args=()
  shift
  while (($#)) && [[ $1 != -- ]]; do
    envs+=("$1")
    shift
  done
  [[ ${1:-} == -- ]] && shift
  args=("$@")
  run --separate-stderr env "${envs[@]}" bash "$CM_REPO/bench/$name.sh" "${args[@]}"
}

# no_complaints: the script's stderr holds no "bench: ..." line
no_complaints() {
  assert_equal "$(grep '^bench: ' <<<"$stderr" || true)" ""
}

@test "bench/exec.sh at 20 jobs: cm-exec per transport, GNU parallel -M and the xargs floor, then the sleep test" {
  bench exec N=20 SLEEP_REPEAT=1 SLEEP_JOBS=16
  assert_equal "$status" 0
  no_complaints
  assert_line --regexp '^cm-exec --transport persistent +[0-9.]+  [0-9.]+x the xargs floor'
  assert_line --regexp '^cm-exec --transport ssh +[0-9.]+  '
  assert_line --regexp '^GNU parallel -M +[0-9.]+  '
  assert_line --regexp '^xargs -P16 ssh \(pre-opened masters\) +[0-9.]+  1\.00x \(floor\)'
  assert_line --regexp '^16 x sleep 0.5 on 16 slots +seconds  ratio to ideal 0.50 s'
  assert_line --regexp '^  same, masters kept from a run +[0-9.]+  [0-9.]+x'
}

@test "bench/transport.sh at 24 jobs on 2 hosts x 2 slots: every contender against the xargs floor" {
  bench transport REPEAT=1 -- 24 2 2
  assert_equal "$status" 0
  no_complaints
  assert_line --regexp '^24 jobs \(echo \$CM_JOB\) on 2 hosts x 2 slots'
  for name in persistent persistent-sh persistent-mux per-job parallel xargs; do
    assert_line --regexp "^$name +[0-9]+ +[0-9]+ +24 "
  done
}

@test "bench/plan.sh at 500 runs: cm-plan, awk and GNU parallel --dry-run" {
  bench plan -- 500
  assert_equal "$status" 0
  assert_line --regexp '^tool +lines +wall_s'
  # cm-plan's lines: a job per run and the sweep's reduce record
  assert_line --regexp '^cm-plan +501 '
  for name in awk parallel; do
    assert_line --regexp "^$name +500 "
  done
  assert_line --regexp '^cm-plan --help: '
}

@test "bench/fetch.sh with 10 small files and 1 MB: cm-fetch, scp and rsync, then 10 jobs fetched while they run" {
  bench fetch BENCH_SMALL=10 BENCH_BIG_MB=1
  assert_equal "$status" 0
  assert_line '== 10 small files (40 KiB)'
  assert_line '== one 1 MB file'
  assert_line --regexp '^small, scp -r.*: +[0-9.]+$'
  assert_line --regexp '^big, +rsync.*: +[0-9.]+$'
  assert_line '== 10 jobs writing 4 KiB each, run by cm-exec on th1+th2 (4 slots each), timed from its start'
  assert_line --regexp '^cm-exec \| cm-fetch +[0-9.]+ s '
  assert_line --regexp '^live, +cm-exec, then rsync -a: +[0-9.]+$'
  no_complaints
}

@test "bench/hosts-check.sh on 4 hosts: cm-hosts check against one plain ssh" {
  bench hosts-check BENCH_HOSTS=4 BENCH_REPEAT=1
  assert_equal "$status" 0
  assert_line --regexp '^one plain ssh round trip \(ssh m1 true\): +[0-9.]+ s'
  assert_line --regexp '^cm-hosts check, 4 hosts in parallel: +[0-9.]+ s'
}

@test "bench/slurm.sh at 6 jobs and a chain of 2: every cm-exec --engine slurm mode against raw Slurm" {
  bench slurm N=6 L=2
  if ((status == 4)) && [[ $stderr == *"slurm-lab"* ]]; then
    skip "the Slurm lab could not start: $(tail -1 <<<"$stderr")"
  fi
  assert_equal "$status" 0
  no_complaints
  assert_line --regexp '^cm steps +[0-9.]+ +[0-9.]+ [0-9.]+x the time of raw srun steps'
  assert_line --regexp '^cm workers +[0-9.]+ '
  assert_line --regexp '^cm jobs\+arrays +[0-9.]+ +[0-9.]+ [0-9.]+x the time of raw array'
  assert_line --regexp '^chain cm jobs +[0-9.]+ s'
}

@test "bench/report.sh at 2,000 jobs on 5 hosts x 4 slots: the page's size and paint time in headless chromium" {
  bench report HOSTS=5 SLOTS=4 RUNS=1 -- 2000
  assert_equal "$status" 0
  no_complaints
  assert_line --regexp '^page size \(MB\) +[0-9.]+ +3 '
  assert_line --regexp '^timeline painted \(ms\) +[0-9]+ +2000 '
  assert_line --regexp '^bars drawn +[0-9]+ +2000'
}
