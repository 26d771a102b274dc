#!/usr/bin/env bats
# Host hygiene on real test hosts: a run leaves no .cm/runs/<run> behind. Jobs with no outputs lose
# their folder when they end (perl loop, sh loop, per-job ssh, local hosts); jobs with outputs keep
# it until cm-fetch has verified their files; --keep-workdirs keeps everything; cm-exec --clean
# removes what is left, by run or by age.

load helpers/common
load helpers/hosts

setup_file() {
  cm_hosts_start 3 4
}

teardown_file() {
  cm_hosts_stop
}

setup() {
  mkdir -p "$BATS_TEST_TMPDIR/work"
  cd "$BATS_TEST_TMPDIR/work" || return 1
}

# left RUN: the hosts (th1..th3) where .cm/runs/RUN is still there, space-separated
left() {
  local h out=
  for h in 1 2 3; do [[ -e $(cm_host_home "th$h")/.cm/runs/$1 ]] && out+="th$h "; done
  echo "$out"
}

# 24 jobs, each writing into its folder, spread over the three hosts
plan_without_outputs() {
  cat >plan.cm <<'EOF'
def w(i=1..24):
    mkdir -p sub/deeper; head -c 10000 /dev/zero > sub/deeper/f; echo $i
+w
EOF
}

@test "perl loop: no .cm/runs/<run> is left on any host after a run of jobs without outputs" {
  plan_without_outputs
  run --separate-stderr bash -o pipefail -c 'cm-plan -f plan.cm --run hy1 | cm-exec -q | cm-reduce'
  assert_equal "$status" 0
  assert_equal "$(jq -c 'select(.kind == "value") | .value' <<<"$output")" 300
  assert_equal "$(left hy1)" ""
  # .cm/runs itself stays: other runs share it
  [[ -d $(cm_host_home th1)/.cm/runs ]]
}

@test "--remote-loop sh: no .cm/runs/<run> is left on any host" {
  plan_without_outputs
  run --separate-stderr bash -o pipefail -c 'cm-plan -f plan.cm --run hy2 | cm-exec -q --remote-loop sh | cm-reduce'
  assert_equal "$status" 0
  assert_equal "$(jq -c 'select(.kind == "value") | .value' <<<"$output")" 300
  assert_equal "$(jq -r 'select(.event == "started") | .transport' <<<"$output" | sort -u)" persistent
  assert_equal "$(left hy2)" ""
}

@test "--transport ssh: no .cm/runs/<run> is left on any host, and a job's exit code is kept" {
  plan_without_outputs
  echo 'def bad():
    echo x > f; exit 3
bad' >bad.cm
  run --separate-stderr bash -o pipefail -c 'cm-plan -f plan.cm --run hy3 | cm-exec -q --transport ssh | cm-reduce'
  assert_equal "$status" 0
  assert_equal "$(jq -c 'select(.kind == "value") | .value' <<<"$output")" 300
  assert_equal "$(left hy3)" ""
  run --separate-stderr bash -c 'cm-plan -f bad.cm --run hy3b | cm-exec -q --transport ssh'
  assert_equal "$status" 1
  assert_equal "$(jq -r 'select(.event == "finished") | .exit' <<<"$output")" 3
  assert_equal "$(left hy3b)" ""
}

@test "local hosts (the default inventory): no .cm/runs/<run> left in \$HOME" {
  plan_without_outputs
  mkdir -p "$BATS_TEST_TMPDIR/home"
  run --separate-stderr env -u CM_INVENTORY HOME="$BATS_TEST_TMPDIR/home" bash -o pipefail -c 'cm-plan -f plan.cm --run hy4 | cm-exec -q | cm-reduce'
  assert_equal "$status" 0
  assert_equal "$(jq -c 'select(.kind == "value") | .value' <<<"$output")" 300
  assert_equal "$(jq -r 'select(.event == "started") | .transport' <<<"$output" | sort -u)" local
  [[ -d $BATS_TEST_TMPDIR/home/.cm/runs ]]
  [[ ! -e $BATS_TEST_TMPDIR/home/.cm/runs/hy4 ]]
}

@test "with outputs: the folders are still there after cm-exec, gone after cm-fetch has verified them" {
  cat >plan.cm <<'EOF'
@result(v.txt)
def r(i=1..12):
    echo $i > v.txt
def plain():
    echo 0
+r + plain
EOF
  cm-plan -f plan.cm --run hy5 | cm-exec -q >events.ndjson
  assert_equal "$(jq -r 'select(.event == "finished") | .kept' events.ndjson | sort -u)" null
  # the 12 folders of r wait for cm-fetch; plain's went when it ended
  local n=0 h
  for h in 1 2 3; do n=$((n + $(find "$(cm_host_home "th$h")/.cm/runs/hy5" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l))); done
  assert_equal "$n" 12
  for h in 1 2 3; do [[ ! -e $(cm_host_home "th$h")/.cm/runs/hy5/plain ]]; done
  run --separate-stderr bash -o pipefail -c 'cm-fetch <events.ndjson | cm-reduce'
  assert_equal "$status" 0
  assert_equal "$(jq -c 'select(.kind == "value") | .value' <<<"$output")" 78
  assert_equal "$(jq -c 'select(.kind == "fetch") | .ok' <<<"$output" | sort | uniq -c | awk '{ print $1, $2 }')" "12 true"
  assert_equal "$(left hy5)" ""
}

@test "--keep-workdirs: cm-exec keeps every folder and says kept; cm-fetch leaves them" {
  cat >plan.cm <<'EOF'
@outputs(o.txt)
def k(i=1..6):
    echo $i > o.txt
def plain(i=1..6):
    echo $i
+k + plain
EOF
  run --separate-stderr bash -o pipefail -c 'cm-plan -f plan.cm --run hy6 | cm-exec -q --keep-workdirs | cm-fetch'
  assert_equal "$status" 0
  assert_equal "$(jq -r 'select(.event == "finished") | .kept' <<<"$output" | sort | uniq -c | awk '{ print $1, $2 }')" "12 true"
  assert_equal "$(jq -c 'select(.kind == "fetch") | .ok' <<<"$output" | sort | uniq -c | awk '{ print $1, $2 }')" "6 true"
  local n=0 h
  for h in 1 2 3; do n=$((n + $(find "$(cm_host_home "th$h")/.cm/runs/hy6" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l))); done
  assert_equal "$n" 12
}

@test "cm-exec --clean --run ID: that run's folders go on every host, others stay; a record per host" {
  local h
  for h in 1 2 3; do
    cm_ssh "th$h" 'mkdir -p .cm/runs/c1/a .cm/runs/c1/b .cm/runs/c2/a && head -c 50000 /dev/zero > .cm/runs/c1/a/f'
  done
  run --separate-stderr cm-exec --clean --run c1
  assert_equal "$status" 0
  assert_equal "$(jq -c '[.kind, .host, .ok, [.runs[].run]]' <<<"$output" | sort | tr '\n' ' ')" \
    '["clean","th1",true,["c1"]] ["clean","th2",true,["c1"]] ["clean","th3",true,["c1"]] '
  (($(jq -s 'map(.bytes) | min' <<<"$output") >= 50000))
  assert_equal "$(left c1)" ""
  assert_equal "$(left c2)" "th1 th2 th3 "
  # -H: only the hosts asked for
  run --separate-stderr cm-exec --clean -H th2
  assert_equal "$status" 0
  assert_equal "$(jq -r .host <<<"$output")" th2
  assert_equal "$(left c2)" "th1 th3 "
}

@test "cm-exec --clean --older-than 7d: folders untouched for 7 days go, fresh ones stay; a table on a terminal" {
  local h
  for h in 1 2 3; do
    cm_ssh "th$h" "mkdir -p .cm/runs/old/a .cm/runs/new/a && echo x > .cm/runs/old/a/f && find .cm/runs/old -exec touch -d '8 days ago' {} +"
  done
  run --separate-stderr cm-exec --clean --older-than 7d
  assert_equal "$status" 0
  assert_equal "$(jq -r '.runs[].run' <<<"$output" | sort | uniq -c | awk '{ print $1, $2 }')" "3 old"
  assert_equal "$(left old)" ""
  assert_equal "$(left new)" "th1 th2 th3 "
  # on a terminal: a table for people (script gives stdout a TTY)
  run script -qec "cm-exec --clean --run new" /dev/null
  assert_equal "$status" 0
  [[ $output == *HOST*FOLDERS*SIZE*RUNS* ]]
  [[ $output == *"3 run folders removed"*"on 3 hosts"* ]]
  assert_equal "$(left new)" ""
}

@test "cm-exec --clean: a host that is down fails (exit 1) and the others are cleaned" {
  local h
  for h in 1 2 3; do cm_ssh "th$h" 'mkdir -p .cm/runs/d1/a'; done
  cm_host_kill 2
  run --separate-stderr cm-exec --clean --run d1 --connect-timeout 2
  cm_host_restart 2
  assert_equal "$status" 1
  assert_equal "$(jq -c '[.host, .ok]' <<<"$output" | sort | tr '\n' ' ')" '["th1",true] ["th2",false] ["th3",true] '
  [[ $(jq -r 'select(.host == "th2") | .error' <<<"$output") == "cannot connect"* ]]
  [[ $stderr == *"cm-exec: th2: cannot connect"* ]]
  assert_equal "$(left d1)" "th2 "
}

@test "cm-exec --older-than without --clean, or a bad AGE: usage error" {
  run --separate-stderr cm-exec --older-than 7d
  assert_equal "$status" 2
  run --separate-stderr cm-exec --clean --older-than 7w
  assert_equal "$status" 2
  [[ $stderr == *"--older-than"*"30m, 12h, 7d"* ]]
}
