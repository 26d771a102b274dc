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

# the line of contender NAME in a bench table: wall, jobs/s, ok of JOBS, then the CPU split and ratios
table_line() {
  assert_line --regexp "^$1 +[0-9.]+ +[0-9]+ +$2/$2 +([-0-9.]+ +){5}[0-9.]+ +([0-9.]+|-)  "
}

@test "bench/exec.sh at 20 jobs: the whole pipeline per transport, the fork limit, GNU parallel -M and the floor, then the sleep test" {
  bench exec N=20 REPEAT=1 SLEEP_REPEAT=1 SLEEP_JOBS=16
  assert_equal "$status" 0
  no_complaints
  assert_line --regexp '^20 tiny jobs \(echo \$i\) through cm-plan \| cm-exec \| cm-reduce on 4 hosts x 4 slots'
  assert_line --regexp '^contender +wall_s +jobs/s +ok +host_ms +ctl_ms +h\+c_ms +machine +other_ms +x_floor +host_x_fk'
  for name in fork-limit floor parallel-M 'cm persistent' 'cm ssh' 'cm persistent kept'; do
    table_line "$name" 20
  done
  assert_line --regexp '^cm persistent: the whole pipeline [0-9.]+x faster than the floor \(target 6x\)$'
  assert_line --regexp '^cm persistent: host CPU of a run of 16 jobs \(the 4 logins and loops, a job per slot\) [0-9]+ ms; past it, -?[0-9.]+ ms/job, (-?[0-9.]+x|-) the fork limit$'
  assert_line --regexp '^16 x sleep 0.5 on 16 slots +seconds  ratio to ideal 0.50 s'
  assert_line --regexp '^cm-plan \| cm-exec --transport persistent +[0-9.]+  [0-9.]+x +[0-9.]+ \([0-9.]+x\); '
  assert_line --regexp '^  same, --keep-connections \(kept\) +[0-9.]+  [0-9.]+x'
  assert_line --regexp '^xargs -P16 ssh \(pre-opened masters\) +[0-9.]+  [0-9.]+x'
  assert_line --regexp '^one key exchange and login \(ssh th1 true, no master; median of 5\): [0-9.]+ s$'
  assert_line --regexp '^a key exchange and login to each of the 4 hosts at once \(as a cold run makes them; median of 5\): [0-9.]+ s$'
  assert_line --regexp '^targets, --transport persistent: kept <= 0.55 s \(ideal \+ 10%\): (met|not met); cold <= [0-9.]+ s '
}

@test "bench/transport.sh at 24 jobs on 2 hosts x 2 slots: every transport against the fork limit, the floor and GNU parallel -M" {
  bench transport REPEAT=1 -- 24 2 2
  assert_equal "$status" 0
  no_complaints
  assert_line --regexp '^24 jobs \(echo I\) on 2 hosts x 2 slots, .*fork limit: dash subshells'
  for name in fork-limit floor parallel-M persistent persistent-sh persistent-mux per-job; do
    table_line "$name" 24
  done
}

@test "bench/scale.sh at 2,000 jobs on 16 hosts: the sum, jobs/s and every command's peak RSS" {
  bench scale -- 2000 16 2
  assert_equal "$status" 0
  no_complaints
  assert_line --regexp '^wall [0-9.]+ s, [0-9]+ jobs/s; sum 2001000 \(want 2001000\)$'
  assert_line --regexp '^CPU per job: hosts [0-9.]+ ms, controller [0-9.]+ ms, machine [0-9.]+ ms'
  for name in cm-plan cm-exec cm-reduce; do
    assert_line --regexp "^controller +$name +[0-9.]+ +1$"
  done
  assert_line --regexp '^host +sshd +[0-9.]+ +[0-9]+$'
  assert_line 'every process under 200 MB RSS: yes'
}

@test "bench/scheduler.sh at 2,000 jobs: CPU per job on 16 and 64 hosts, on 1,000 and 3,000 jobs, and pinned with 64 and 512 waiting" {
  bench scheduler -- 2000 16,64 1000,3000 64,512
  assert_equal "$status" 0
  no_complaints
  assert_line --regexp '^scheduler alone +us/job  x first of its kind$'
  assert_line --regexp '^16 hosts x 4 slots, 2000 jobs +[0-9.]+  1\.00x$'
  assert_line --regexp '^64 hosts x 4 slots, 2000 jobs +[0-9.]+  [0-9.]+x$'
  assert_line --regexp '^16 hosts x 4 slots, 1000 jobs +[0-9.]+  1\.00x$'
  assert_line --regexp '^16 hosts x 4 slots, 3000 jobs +[0-9.]+  [0-9.]+x$'
  assert_line --regexp '^16 x 4, 2000 jobs on @a \(4 hosts\), 64 waiting +[0-9.]+  1\.00x$'
  assert_line --regexp '^16 x 4, 2000 jobs on @a \(4 hosts\), 512 waiting +[0-9.]+  [0-9.]+x$'
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
