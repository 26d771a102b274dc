#!/usr/bin/env bats
# cm-plan: the task language to job and reduce records (issue 5).

load helpers/common

setup() {
  cd "$BATS_TEST_TMPDIR"
}

ASSIGNMENT_RECORDS='{"kind":"reduce","v":1,"id":"sum:a+b+c+d","op":"sum","inputs":["a","b","c","d"],"final":true}
{"kind":"job","v":1,"id":"a","task":"a","command":"echo 1","deps":[]}
{"kind":"job","v":1,"id":"b","task":"b","command":"echo 2","deps":[]}
{"kind":"job","v":1,"id":"c","task":"c","command":"echo 3","deps":[]}
{"kind":"job","v":1,"id":"d","task":"d","command":"echo 4","deps":["a","b","c"]}'

@test "the assignment's example: a, b, c in parallel, d after them, one sum of all four" {
  run --separate-stderr cm-plan -f "$CM_REPO/examples/assignment.cm"
  [ "$status" -eq 0 ]
  [ "$output" = "$ASSIGNMENT_RECORDS" ]
  [ "$stderr" = "" ]
}

@test "the same plan from --def and an expression, from stdin, and from YAML" {
  run --separate-stderr cm-plan --def a='echo 1' --def b='echo 2' -d c='echo 3' -d d='echo 4' '(a | b | c); d; a+b+c+d'
  [ "$status" -eq 0 ]
  [ "$output" = "$ASSIGNMENT_RECORDS" ]
  run --separate-stderr bash -c "cm-plan - < '$CM_REPO/examples/assignment.cm'"
  [ "$status" -eq 0 ]
  [ "$output" = "$ASSIGNMENT_RECORDS" ]
  run --separate-stderr cm-plan -f "$CM_REPO/examples/assignment.yaml"
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = '{"kind":"reduce","v":1,"id":"sum:a+b+c+d","op":"sum","inputs":["a","b","c","d"],"final":true}' ]
  [ "${lines[4]}" = '{"kind":"job","v":1,"id":"d","task":"d","command":"# several lines are fine\necho 4","deps":["a","b","c"],"timeout":30,"retries":1}' ]
}

@test "an expression with -f runs a part of the file's plan" {
  run --separate-stderr cm-plan -f "$CM_REPO/examples/assignment.cm" 'a | b'
  [ "$status" -eq 0 ]
  [ "${#lines[@]}" -eq 2 ]
  [ "$stderr" = "$(printf 'cm-plan: warning: def c is never used (%s:5)\ncm-plan: warning: def d is never used (%s:7)' "$CM_REPO/examples/assignment.cm" "$CM_REPO/examples/assignment.cm")" ]
}

@test "a sweep: one job per value with the parameter in env and params, summed with +NAME" {
  run --separate-stderr cm-plan -d 'bench(i=1..3)=echo $i' +bench
  [ "$status" -eq 0 ]
  assert_equal "${lines[0]}" '{"kind":"reduce","v":1,"id":"sum:bench","op":"sum","inputs":[],"sweeps":{"bench":3},"final":true}'
  assert_equal "${lines[1]}" '{"kind":"job","v":1,"id":"bench.0","task":"bench","command":"echo $i","deps":[],"env":{"i":"1"},"sweep":"bench","index":0,"params":{"i":"1"}}'
  assert_equal "${lines[3]}" '{"kind":"job","v":1,"id":"bench.2","task":"bench","command":"echo $i","deps":[],"env":{"i":"3"},"sweep":"bench","index":2,"params":{"i":"3"}}'
  run --separate-stderr cm-plan -f "$CM_REPO/examples/sweep.cm"
  [ "$status" -eq 0 ]
  [ "${#lines[@]}" -eq 111 ]
}

@test "a syntax error: exit 3, file:line:col, the line and a caret, no record" {
  printf 'def a():\n    echo 1\ndef b():\n    echo 2\n(a | b;\n' > bad.cm
  run --separate-stderr cm-plan -f bad.cm
  [ "$status" -eq 3 ]
  [ "$output" = "" ]
  [ "$stderr" = "$(printf "cm-plan: bad.cm:5:8: expected a task name or '(' after ';', found the end of the plan\n  (a | b;\n         ^")" ]
}

@test "an undefined name suggests the nearest def; unbalanced parentheses, duplicates, empty bodies, cycles: exit 3" {
  run --separate-stderr cm-plan -d prepare='echo 1' -d bench='echo 2' 'prepair; bench'
  [ "$status" -eq 3 ]
  [ "$output" = "" ]
  [ "$stderr" = "$(printf 'cm-plan: expression:1:1: undefined task prepair; did you mean prepare?\n  prepair; bench\n  ^')" ]
  run --separate-stderr cm-plan -d a='echo 1' -d b='echo 2' '(a | b'
  [ "$status" -eq 3 ]
  [[ $stderr == *"unbalanced parentheses"* ]]
  run --separate-stderr cm-plan -d a='echo 1' -d a='echo 2' a
  [ "$status" -eq 3 ]
  [[ $stderr == "cm-plan: --def:2:1: duplicate def a"* ]]
  printf 'def a():\n\na\n' > empty.cm
  run --separate-stderr cm-plan -f empty.cm
  [ "$status" -eq 3 ]
  [[ $stderr == "cm-plan: empty.cm:1:5: def a has an empty body"* ]]
  run --separate-stderr cm-plan -d a='echo 1' -d b='echo 2' 'a; b; a'
  [ "$status" -eq 3 ]
  [[ $stderr == "cm-plan: expression:1:7: cycle: a after b after a"* ]]
  printf 'def a():\n    echo 1\n' > noexpr.cm
  run --separate-stderr cm-plan -f noexpr.cm
  [ "$status" -eq 3 ]
  [[ $stderr == "cm-plan: noexpr.cm: empty plan"* ]]
  [ "$output" = "" ]
}

@test "a bad sweep is refused before any job is printed" {
  run --separate-stderr cm-plan -d 'bench(i=1..1000000)=echo $i' -d b='echo' 'bench; bb'
  [ "$status" -eq 3 ]
  [ "$output" = "" ]
}

@test "| head -1 on a million-run sweep ends quietly with 0" {
  run --separate-stderr bash -c 'set -o pipefail; cm-plan -d "bench(i=1..1000000)=echo \$i" +bench | head -2 | tail -1'
  [ "$status" -eq 0 ]
  [ "$output" = '{"kind":"job","v":1,"id":"bench.0","task":"bench","command":"echo $i","deps":[],"env":{"i":"1"},"sweep":"bench","index":0,"params":{"i":"1"}}' ]
  [ "$stderr" = "" ]
}

@test "--explain prints stages for people" {
  run --separate-stderr cm-plan --explain -f "$CM_REPO/examples/assignment.cm"
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = 'plan: a | b | c; d; a + b + c + d' ]
  [ "${lines[1]}" = '4 jobs in 2 stages, 1 sum' ]
  [ "${lines[7]}" = '  d  $ echo 4   [after a, b, c]' ]
  [ "${lines[9]}" = '  sum:a+b+c+d = a + b + c + d   (the value of the plan)' ]
}

@test "usage errors exit 2; --help exits 0" {
  run --separate-stderr cm-plan
  [ "$status" -eq 2 ]
  run --separate-stderr cm-plan --bogus
  [ "$status" -eq 2 ]
  run --separate-stderr cm-plan --help
  [ "$status" -eq 0 ]
  [[ $output == *"Exit codes"* ]]
}

# final VALUES: the value of the record marked final, from cm-reduce's output on stdin
final_value() {
  node -e 'for (const l of require("fs").readFileSync(0, "utf8").split("\n")) {
    if (!l) continue; const r = JSON.parse(l); if (r.kind === "value" && r.final) console.log(JSON.stringify(r.value)); }'
}

@test "end to end on the embedded default (no inventory): the assignment's example adds up to 10" {
  mkdir home work
  cd work
  run --separate-stderr env -u CM_INVENTORY HOME="$BATS_TEST_TMPDIR/home" bash -c \
    "set -o pipefail; cm-plan -f '$CM_REPO/examples/assignment.cm' | cm-exec | cm-reduce | tee out.ndjson | grep -c '\"event\":\"finished\",.*\"exit\":0'"
  [ "$status" -eq 0 ]
  [ "$output" = 4 ]
  run final_value < out.ndjson
  [ "$output" = 10 ]
}

@test "NODE_EXTRA_CA_CERTS: node does not load it at start-up, and a local job sees it as it was set" {
  mkdir home work
  cd work
  # node warns on stderr when it fails to load the file at start-up; the bin scripts set it aside
  run --separate-stderr env -u CM_INVENTORY HOME="$BATS_TEST_TMPDIR/home" NODE_EXTRA_CA_CERTS=/nonexistent/ca.pem bash -c \
    "set -o pipefail; printf 'def a(): echo \"[\$NODE_EXTRA_CA_CERTS] [\${CM_NODE_EXTRA_CA_CERTS-unset}]\"\na\n' >t.cm
     cm-plan -f t.cm | cm-exec | cm-reduce"
  [ "$status" -eq 0 ]
  [[ $output == *'"stdout":"[/nonexistent/ca.pem] [unset]\n"'* ]]
  [[ $stderr != *Warning* ]]
}

@test "start-up code cache: the first run writes it, a corrupt one is refused and rewritten, output the same" {
  # a copy of the command, so the repository's own cache is left alone
  mkdir -p copy/bin copy/dist
  cp "$CM_REPO/tools/cm-plan/bin/cm-plan.js" copy/bin/
  cp "$CM_REPO/tools/cm-plan/dist/main.cjs" "$CM_REPO/tools/cm-plan/dist/start.cjs" copy/dist/
  expected=$(cm-plan -d 'a=echo 1' -d 'b=echo 2' 'a | b')
  run copy/bin/cm-plan.js -d 'a=echo 1' -d 'b=echo 2' 'a | b'
  [ "$status" -eq 0 ]
  [ "$output" = "$expected" ]
  [ -s copy/dist/main.cjs.cache ]
  head -c 4096 /dev/urandom >copy/dist/main.cjs.cache
  run copy/bin/cm-plan.js -d 'a=echo 1' -d 'b=echo 2' 'a | b'
  [ "$status" -eq 0 ]
  [ "$output" = "$expected" ]
  [ "$(stat -c %s copy/dist/main.cjs.cache)" -ne 4096 ]
  ! ls copy/dist/main.cjs.cache.* 2>/dev/null
}

@test "end to end on real ssh test hosts: the assignment's example, a sweep, a host pin" {
  load helpers/hosts
  cm_hosts_start 2 4
  run --separate-stderr bash -c "set -o pipefail; cm-plan -f '$CM_REPO/examples/assignment.cm' | cm-exec | cm-reduce"
  [ "$status" -eq 0 ]
  [ "$(final_value <<<"$output")" = 10 ]
  # every job ran on a test host, not locally
  [[ $output == *'"host":"th'* ]]
  [[ $output != *'"host":"localhost"'* ]]

  # 100 runs of bench (2 * i) and 9 of study (n * size): 10100 + 420
  run --separate-stderr bash -c "set -o pipefail; cm-plan -f '$CM_REPO/examples/sweep.cm' | cm-exec | cm-reduce"
  [ "$status" -eq 0 ]
  [ "$(final_value <<<"$output")" = 10520 ]

  printf '@host(th2)\ndef where():\n    hostname\ndef one():\n    echo 1\nwhere; one + one\n' > pin.cm
  run --separate-stderr bash -c "set -o pipefail; cm-plan -f pin.cm | cm-exec"
  [ "$status" -eq 0 ]
  [[ $output == *'"event":"finished","job":"where"'*'"host":"th2"'*'"stdout":"th2\n"'* ]]
  cm_hosts_stop
}

teardown() {
  if declare -F cm_hosts_stop >/dev/null; then cm_hosts_stop; fi
}

@test "--run puts the run id on every record; a bad one is a usage error" {
  run --separate-stderr cm-plan --run r1 -d a='echo 1' 'a + a'
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = '{"kind":"reduce","v":1,"id":"sum:a+a","op":"sum","inputs":["a","a"],"final":true,"run":"r1"}' ]
  [ "${lines[1]}" = '{"kind":"job","v":1,"id":"a","task":"a","command":"echo 1","deps":[],"run":"r1"}' ]
  run --separate-stderr cm-plan --run ../x -d a='echo 1' a
  [ "$status" -eq 2 ]
}

@test "comments and blank lines anywhere: inside a def's body at any indentation, after the expression" {
  printf '# a plan\ndef a():\n    echo 1\n# column 0, inside the body\n\n    echo 2\ndef b():  # why b\n    echo b\n\n# before the expression\na; b  # after it\n# the end\n' > c.cm
  run --separate-stderr cm-plan -f c.cm
  [ "$status" -eq 0 ]
  [ "$output" = '{"kind":"job","v":1,"id":"a","task":"a","command":"echo 1\n\necho 2","deps":[]}
{"kind":"job","v":1,"id":"b","task":"b","command":"echo b","deps":["a"]}' ]
  # an error after such comments still points at its line and column
  printf 'def a():\n    echo 1\n# c\n    echo 2\n\n# d\na | bb\n' > e.cm
  run --separate-stderr cm-plan -f e.cm
  [ "$status" -eq 3 ]
  [[ $stderr == "cm-plan: e.cm:7:5: undefined task bb"* ]]
}

@test "examples/bench.cm: 150 jobs with params and bench.sh found from any directory; one sum by size" {
  run --separate-stderr cm-plan -f "$CM_REPO/examples/bench.cm"
  [ "$status" -eq 0 ]
  [ "$stderr" = "" ]
  [ "${#lines[@]}" -eq 151 ]
  assert_equal "${lines[1]}" "{\"kind\":\"job\",\"v\":1,\"id\":\"bench.0\",\"task\":\"bench\",\"command\":\"sh bench.sh \\\"\$size\\\"\",\"deps\":[],\"env\":{\"size\":\"1000\",\"rep\":\"1\"},\"timeout\":60,\"inputs\":[\"$CM_REPO/examples/bench.sh\"],\"outputs\":[\"out/time.txt\"],\"result\":\"out/time.txt\",\"sweep\":\"bench\",\"index\":0,\"params\":{\"size\":\"1000\",\"rep\":\"1\"}}"
  [[ ${lines[150]} == *'"id":"bench.149"'*'"params":{"size":"4000","rep":"50"}}' ]]
  [ "$(printf '%s\n' "${lines[@]}" | grep -c '"params":{"size":"2000",')" -eq 50 ]
  assert_equal "${lines[0]}" '{"kind":"reduce","v":1,"id":"sum:bench","op":"sum","inputs":[],"sweeps":{"bench":150},"by":["size"],"final":true}'
  run --separate-stderr cm-plan --explain -f "$CM_REPO/examples/bench.cm"
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = 'plan: +bench by size' ]
  [ "${lines[-1]}" = '  sum:bench = all of bench[150], one value per size   (the value of the plan)' ]
}

@test "by: a name that is not a parameter of the sweep is an input error at its place, listing those there are" {
  printf 'def bench(size=[1, 2], rep=1..3):\n    echo $size\n+bench by sise\n' > by.cm
  run --separate-stderr cm-plan -f by.cm
  [ "$status" -eq 3 ]
  [ "$output" = "" ]
  [ "$stderr" = "$(printf 'cm-plan: by.cm:3:11: sise is not a parameter of bench; did you mean size? (parameters of bench: size, rep)\n  +bench by sise\n            ^')" ]
  run --separate-stderr cm-plan -f by.cm '+bench by size, rep'
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = '{"kind":"reduce","v":1,"id":"sum:bench","op":"sum","inputs":[],"sweeps":{"bench":6},"by":["size","rep"],"final":true}' ]
}

@test "a plan file given as the expression: exit 2 and did you mean -f" {
  printf 'def a(): echo 1\na\n' > plan.cm
  run --separate-stderr cm-plan plan.cm
  [ "$status" -eq 2 ]
  [ "$output" = "" ]
  [ "$stderr" = "cm-plan: plan.cm is a plan file, not an expression: did you mean -f plan.cm?" ]
  run --separate-stderr cm-plan other.yaml
  [ "$status" -eq 2 ]
  [[ $stderr == *"did you mean -f other.yaml?" ]]
}
