#!/usr/bin/env bats
# The whole data path on real test hosts: cm-plan | cm-exec | cm-fetch | cm-reduce.

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

@test "40 jobs write result files remotely: all fetched, checksums match, exact sum, partial value before the slow job ends" {
  cat >plan.cm <<'EOF'
@result(out.txt)
@outputs(out.txt)
def w(i=1..40):
    echo $((1000000000000000 + i)) > out.txt
def slow():
    i=0; while [ ! -e GO ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done; echo 5
+w + slow
EOF
  # the slow job ends once a partial value is out (or after a minute): streaming, whatever the speed
  sed -i "s|GO|$PWD/go|" plan.cm
  (wait_for 120 grep -q '"partial":true' out.ndjson && touch go) 3>&- &
  local waiter=$!
  # --keep-workdirs: the files stay on the hosts, to be compared with what came back
  run --separate-stderr bash -o pipefail -c 'cm-plan -f plan.cm --run pf1 | cm-exec -q --keep-workdirs | cm-fetch --dir results | cm-reduce --partial | tee out.ndjson'
  wait "$waiter" || true
  assert_equal "$status" 0
  assert_equal "$(jq -c 'select(.kind == "fetch") | .ok' <<<"$output" | sort | uniq -c | awk '{ print $1, $2 }')" "40 true"
  # checksums in the fetch records are those of the files on the hosts
  for h in 1 2 3; do
    cm_ssh "th$h" 'cd .cm/runs/pf1 2>/dev/null && sha256sum */out.txt || true'
  done | awk '{ print $1, $2 }' | sort >remote.sums
  # (the local files are under their parameters, results/pf1/w/i=N/: compare by the remote names)
  jq -r 'select(.kind == "fetch") | .files[] | "\(.sha256) \(.remote)"' <<<"$output" | sed "s|^\([0-9a-f]*\) .*/pf1/|\1 |" | sort >claimed.sums
  assert_equal "$(jq -r 'select(.kind == "fetch") | .files[].path' <<<"$output" | grep -c "^$PWD/results/pf1/w/i=[0-9]*/out.txt$")" 40
  assert_equal "$(wc -l <remote.sums)" 40
  assert_equal "$(cat claimed.sums)" "$(cat remote.sums)"
  # sum of 10^15 + i for i = 1..40, plus 5: beyond 2^53, exact
  assert_equal "$(jq -c 'select(.kind == "value" and .partial == false) | [.value, .have, .want, .final]' <<<"$output")" '["40000000000000825",41,41,true]'
  # streaming: the first partial value is in the stream before the slow job's finished event
  first_partial=$(jq -r 'select(.kind != "reduce") | (.kind + ":" + (.event // "") + ":" + (.job // "") + ":" + ((.partial // "") | tostring))' <<<"$output" | grep -n '^value:::true' | head -1 | cut -d: -f1)
  slow_done=$(jq -r 'select(.kind != "reduce") | (.kind + ":" + (.event // "") + ":" + (.job // ""))' <<<"$output" | grep -n '^event:finished:slow$' | cut -d: -f1)
  [[ -n $first_partial && -n $slow_done ]]
  ((first_partial < slow_done))
}

@test "a job listing ../../x and a symlink to /etc in its outputs: refused, nothing outside the results tree, the rest fetched" {
  cat >plan.cm <<'EOF'
@outputs(../../x, etc, ok.txt)
def evil():
    echo 7 > ../../x; ln -s /etc etc; echo fine > ok.txt
evil
EOF
  run --separate-stderr bash -c 'cm-plan -f plan.cm --run pf2 | cm-exec -q | cm-fetch --dir results'
  assert_equal "$status" 1
  rec=$(jq -c 'select(.kind == "fetch")' <<<"$output")
  assert_equal "$(jq -r '.ok' <<<"$rec")" false
  [[ $(jq -r .error <<<"$rec") == *'refused output "../../x": leaves the job directory'* ]]
  [[ $(jq -r .error <<<"$rec") == *'refused "etc": a symlink (to "/etc")'* ]]
  assert_equal "$(cat results/pf2/evil/ok.txt)" fine
  assert_equal "$(cd "$BATS_TEST_TMPDIR" && find . -mindepth 1 ! -name 'separate-stderr-*' | sort | tr '\n' ' ')" \
    "./work ./work/plan.cm ./work/results ./work/results/pf2 ./work/results/pf2/evil ./work/results/pf2/evil/ok.txt "
}

@test "stage-in: an input file reaches the hosts before the jobs that read it" {
  seq 1 1000 >numbers.txt
  cat >plan.cm <<'EOF'
@inputs(numbers.txt)
def count(i=1..6):
    wc -l < numbers.txt
+count
EOF
  run --separate-stderr bash -o pipefail -c 'cm-plan -f plan.cm --run pf3 | cm-fetch --stage-in | cm-exec -q | cm-fetch | cm-reduce'
  assert_equal "$status" 0
  assert_equal "$(jq -c 'select(.kind == "value") | .value' <<<"$output")" 6000
  assert_equal "$(jq -c 'select(.kind == "fetch" and .direction == "in") | .ok' <<<"$output" | sort -u)" true
}

# logins: "Accepted publickey" lines in the log of a test host's sshd
logins() { grep -c 'Accepted publickey' "$CM_TEST_HOSTS_DIR/hosts/$1/log"; }

@test "cm-exec | cm-fetch logs in to a host once: cm-fetch rides cm-exec's master, which serves it after cm-exec has exited" {
  # the later jobs end once cm-fetch's server runs over their own connection (a child of the sshd
  # that runs them): cm-fetch then rides that connection before cm-exec ends
  cat >plan.cm <<'EOF'
@outputs(a.txt)
def w(i=1..4):
    echo $i > a.txt
    if [ $i != 1 ]; then
        s=$PPID; while [ "$(ps -o comm= -p $s)" != sshd ]; do s=$(ps -o ppid= -p $s | tr -d ' '); done
        n=0; until ps -o args= --ppid $s | grep -q cm-fetch-server || [ $n -gt 1200 ]; do sleep 0.05; n=$((n + 1)); done
    fi
w
EOF
  # the records after the first started event reach cm-fetch only once cm-exec has exited (and
  # told its master to stop listening): its fetches ride a master cm-exec no longer holds
  cat >hold.sh <<'EOF'
while IFS= read -r l; do printf '%s\n' "$l"; [[ $l == *'"started"'* ]] && break; done
rest=$(cat)
printf '%s\n' "$rest"
EOF
  local before
  before=$(logins th1)
  run --separate-stderr bash -o pipefail -c 'cm-plan -f plan.cm --run pf4 | cm-exec -q -H th1 | bash hold.sh | cm-fetch --dir results'
  assert_equal "$status" 0
  assert_equal "$(jq -c 'select(.kind == "fetch") | .ok' <<<"$output" | sort | uniq -c | awk '{ print $1, $2 }')" "4 true"
  assert_equal "$(cat results/pf4/w/i=*/a.txt | sort | tr '\n' ' ')" "1 2 3 4 "
  assert_equal "$(($(logins th1) - before))" 1
}
