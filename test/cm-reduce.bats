#!/usr/bin/env bats
# cm-reduce on hand-written event streams (what cm-exec and cm-fetch print): exact sums, the ops,
# failures and missing inputs, streaming partial values, pass-through, bounded memory.

load helpers/common

fin() { # fin JOB STDOUT [EXTRA-JSON-FIELDS]
  printf '{"kind":"event","v":1,"event":"finished","job":"%s","exit":0,"stdout":"%s"%s}\n' "$1" "$2" "${3:+,$3}"
}
red() { # red ID OP INPUTS-JSON [EXTRA]
  printf '{"kind":"reduce","v":1,"id":"%s","op":"%s","inputs":%s%s}\n' "$1" "$2" "$3" "${4:+,$4}"
}
values() { grep '"kind":"value"' <<<"$output" | jq -c "${1:-.}"; }

setup() {
  cd "$BATS_TEST_TMPDIR" || return 1
}

@test "sum: integers beyond 2^53 exactly, decimals exactly, arrays concatenate, objects add per key" {
  { red big sum '["a","b"]'; fin a 9007199254740993; fin b 9007199254740993; } >in1
  run --separate-stderr cm-reduce in1
  assert_equal "$status" 0
  assert_equal "$(values '.value')" '"18014398509481986"'
  { red d sum '["a","b","c"]'; fin a 0.1; fin b 0.2; fin c -1e-1; } >in2
  run --separate-stderr cm-reduce in2
  assert_equal "$(values '.value')" '0.2'
  { red arr sum '["a","b"]'; fin a '[1,2]'; fin b '[3]'; red obj sum '["c","d"]'; fin c '{\"x\":1,\"y\":[1]}'; fin d '{\"x\":9007199254740992,\"z\":2}'; } >in3
  run --separate-stderr cm-reduce in3
  assert_equal "$status" 0
  assert_equal "$(values '[.id, .value]' | tr -d '\n')" '["arr",[1,2,3]]["obj",{"x":"9007199254740993","y":[1],"z":2}]'
}

@test "min, max, mean, count, concat in plan order, histogram, cmd:" {
  {
    for op in min max mean count concat histogram 'cmd:sort -n | head -1'; do red "${op%%:*}" "$op" '["c","a","b"]'; done
    fin a 10; fin b 2; fin c 3.5
  } >in
  run --separate-stderr cm-reduce in
  assert_equal "$status" 0
  assert_equal "$(values '[.id, .value]' | tr -d '\n')" \
    '["min",2]["max",10]["mean",5.166666666666667]["count",3]["concat","3.5\n10\n2"]["histogram",{"2":1,"10":1,"3.5":1}]["cmd",2]'
}

@test "a value with units is an error naming the job, not NaN; exit 1" {
  { red t sum '["a","b"]'; fin a 5; fin b '12 ms'; } >in
  run --separate-stderr cm-reduce in
  assert_equal "$status" 1
  assert_equal "$(values '.error')" '"job b: \"12 ms\" is not a number, JSON array or object"'
  [[ $stderr == *'cm-reduce: reduce t: job b: "12 ms" is not a number'* ]]
}

@test "a failed input fails the reduction; a missing one too; --allow-missing reduces the rest and lists them" {
  { red t sum '["a","b","c"]'; fin a 1; echo '{"kind":"event","v":1,"event":"finished","job":"b","exit":2}'; } >in
  run --separate-stderr cm-reduce in
  assert_equal "$status" 1
  assert_equal "$(values '[.value, .error]' | tr -d '\n')" '[null,"job b failed (exit 2)"]'
  { red t sum '["a","b","c"]'; fin a 1; fin c 2; } >in
  run --separate-stderr cm-reduce in
  assert_equal "$status" 1
  assert_equal "$(values '[.error, .missing]' | tr -d '\n')" '["missing input: b",["b"]]'
  { red t sum '["a","b","c"]'; fin a 1; echo '{"kind":"event","v":1,"event":"skipped","job":"b"}'; } >in
  run --separate-stderr cm-reduce --allow-missing in
  assert_equal "$status" 0
  assert_equal "$(values '[.value, .partial, .missing]' | tr -d '\n')" '[1,false,["b","c"]]'
}

@test "passes every record through except reduce records, values after the event that completed them" {
  { echo '{"kind":"something","x":1}'; red t sum '["a"]'; fin a 4; echo '{"kind":"fetch","v":1,"job":"z","direction":"out","ok":true,"files":[]}'; } >in
  run --separate-stderr cm-reduce in
  assert_equal "$status" 0
  assert_equal "$(jq -r .kind <<<"$output" | tr '\n' ' ')" "something event value fetch "
  assert_equal "$(head -1 <<<"$output")" '{"kind":"something","x":1}'
}

@test "--partial: a partial value comes out before the last input is even written" {
  # The producer writes the last event only once it has seen a partial value in cm-reduce's output
  # (or after 20 s): a cm-reduce that waited for EOF would show the value after the last event.
  mkfifo pipe
  {
    red t sum '["a","b","c"]'
    fin a 1
    fin b 2
    for _ in $(seq 1 200); do grep -q '"partial":true' out 2>/dev/null && break; sleep 0.1; done
    fin c 3
  } >pipe &
  cm-reduce --partial <pipe >out
  wait
  assert_equal "$(jq -r 'if .kind == "value" then "v\(.value)\(if .partial then "p" else "" end)" else .job end' out | tr '\n' ' ')" "a v1p b v3p c v6 "
}

@test "--op without reduce records reduces every value; --op overrides reduce records" {
  { fin a 3; fin b 9; fin c 4; } >in
  run --separate-stderr cm-reduce --op max in
  assert_equal "$status" 0
  assert_equal "$(values '[.id, .op, .value, .partial]' | tr -d '\n')" '["all","max",9,false]'
  { red t sum '["a","b"]'; fin a 3; fin b 9; } >in
  run --separate-stderr cm-reduce --op count in
  assert_equal "$(values '[.op, .value]' | tr -d '\n')" '["count",2]'
  run --separate-stderr cm-reduce --op 'nope' in
  assert_equal "$status" 2
}

@test "bad input stops with exit 3 and the line" {
  printf '%s\n' '{"kind":"event","v":1,"event":"finished","job":"a","exit":0}' 'garbage' >in
  run --separate-stderr cm-reduce in
  assert_equal "$status" 3
  [[ $stderr == *"in:2: malformed JSON"* ]]
}

@test "a 200,000-run sweep sums in a 16 MB heap (values are not kept); concat of the same does not fit" {
  gen() {
    awk -v op="$1" 'BEGIN {
      n = 200000
      print "{\"kind\":\"reduce\",\"v\":1,\"id\":\"s\",\"op\":\"" op "\",\"inputs\":[],\"sweeps\":{\"w\":" n "}}"
      for (i = 0; i < n; i++) printf "{\"kind\":\"event\",\"v\":1,\"event\":\"finished\",\"job\":\"w-%d\",\"exit\":0,\"stdout\":\"1%0100d\",\"sweep\":\"w\",\"index\":%d}\n", i, 0, i
    }'
  }
  gen sum | NODE_OPTIONS=--max-old-space-size=16 cm-reduce 2>err | grep '"kind":"value"' >out
  assert_equal "$(jq -r .value out)" "2$(printf '%0100d' 0)00000"
  # the same stream with an op that must keep every value runs out of that heap: the limit is real
  run bash -c "$(declare -f gen); gen concat | NODE_OPTIONS=--max-old-space-size=16 cm-reduce >/dev/null 2>&1"
  assert [ "$status" -ne 0 ]
}

# --- by, op lists, the table: real pipelines on the local machine (the default inventory, no ssh) ---

# A home of its own: no inventory there (so the default, the local machine) and the jobs' folders.
local_machine() {
  export HOME=$BATS_TEST_TMPDIR/home
  mkdir -p "$HOME"
  unset CM_INVENTORY
}

# params on job records, as cm-plan writes them for a sweep (its values): older cm-plans gave only env
with_params() { jq -c 'if .kind == "job" and .env then .params = .env else . end'; }

@test "--by size --op mean,p90: cm-plan | cm-exec | cm-reduce gives mean and p90 per size, labelled" {
  local_machine
  cm-plan -d 'b(size=[1,2],rep=1..5)=echo $((size*rep))' +b | with_params | cm-exec 2>/dev/null | cm-reduce --by size --op mean,p90 >out
  # size 1: 1..5, size 2: 2..10; p90 of 5 values is x[3] + 0.6 * (x[4] - x[3])
  assert_equal "$(jq -c 'select(.kind == "value") | [.id, .group, .op, .value, .have, .want]' out | sort | tr -d '\n')" \
    '["sum:b",{"size":"1"},"mean",3,5,5]["sum:b",{"size":"1"},"p90",4.6,5,5]["sum:b",{"size":"2"},"mean",6,5,5]["sum:b",{"size":"2"},"p90",9.2,5,5]'
  # in a pipe every other record passes through
  assert_equal "$(jq -r 'select(.event == "finished") | .params.size' out | sort | uniq -c | tr -s ' ' | tr -d '\n')" ' 5 1 5 2'
}

@test "a reduce record's by (as from +bench by size) on hand-written jobs with params; a failed job fails its group only" {
  local_machine
  {
    for size in 10 20; do
      for rep in 1 2 3; do
        printf '{"kind":"job","v":1,"id":"b-%s-%s","task":"b","deps":[],"command":"echo %s","params":{"size":"%s","rep":"%s"}}\n' "$size" "$rep" $((size + rep)) "$size" "$rep"
      done
    done
    printf '{"kind":"job","v":1,"id":"b-30-1","task":"b","deps":[],"command":"exit 3","params":{"size":"30","rep":"1"}}\n'
    printf '{"kind":"reduce","v":1,"id":"per-size","op":"median,max","inputs":["b-10-1","b-10-2","b-10-3","b-20-1","b-20-2","b-20-3","b-30-1"],"by":["size"]}\n'
  } >jobs.ndjson
  run bash -c 'cm-exec <jobs.ndjson 2>/dev/null >events.ndjson'
  assert_equal "$status" 1 # b-30-1 failed
  run --separate-stderr cm-reduce events.ndjson
  assert_equal "$status" 1
  assert_equal "$(values '[.id, .group.size, .op, .value, .error]' | sort | tr -d '\n')" \
    '["per-size","10","max",13,null]["per-size","10","median",12,null]["per-size","20","max",23,null]["per-size","20","median",22,null]["per-size","30","max",null,"job b-30-1 failed (exit 3)"]["per-size","30","median",null,"job b-30-1 failed (exit 3)"]'
  [[ $stderr == *'reduce per-size size=30: job b-30-1 failed (exit 3)'* ]]
  # a job without the parameter is an error naming the job and the parameter
  run --separate-stderr cm-reduce --by host events.ndjson
  assert_equal "$status" 1
  [[ $stderr == *'job b-10-'?' has no parameter "host" (by host)'* ]]
}

@test "--by on fetched result files: cm-exec | cm-fetch | cm-reduce labels each size's values" {
  local_machine
  cat >b.cm <<'CM'
@outputs(out.txt)
@result(out.txt)
def b(size=[10,20], rep=1..3):
    echo $((size * rep)) > out.txt
+b
CM
  cm-plan -f b.cm | with_params | cm-exec 2>/dev/null | cm-fetch --dir results 2>/dev/null | cm-reduce --by size --op mean,p90 >out
  # the values come from the fetched files (stdout is empty); params from the fetch record or the finished event
  assert_equal "$(jq -c 'select(.kind == "value") | [.group.size, .op, .value]' out | sort | tr -d '\n')" '["10","mean",20]["10","p90",28]["20","mean",40]["20","p90",56]'
  assert_equal "$(jq -r 'select(.kind == "fetch") | .result' out | wc -l)" 6
}

@test "on a terminal: a table of labelled values and nothing else; --json gives records there" {
  local_machine
  cat >pipeline.sh <<'SH'
cm-plan -d 'b(size=[2,10],rep=1..5)=echo $((size*rep))' +b | jq -c 'if .kind == "job" then .params = .env else . end' | cm-exec 2>/dev/null | cm-reduce --by size --op mean,p90 "$@"
SH
  run script -qefc "bash pipeline.sh" /dev/null
  assert_equal "$status" 0
  # size 10 after size 2: numbers sort as numbers
  assert_equal "$(tr -d '\r' <<<"$output")" "ID     SIZE  MEAN  P90
sum:b  2     6     9.2
sum:b  10    30    46"
  run script -qefc "bash pipeline.sh --json" /dev/null
  assert_equal "$status" 0
  output=$(tr -d '\r' <<<"$output")
  assert_equal "$(values '[.group.size, .op, .value]' | sort | tr -d '\n')" '["10","mean",30]["10","p90",46]["2","mean",6]["2","p90",9.2]'
  assert_equal "$(grep -c '"event":"finished"' <<<"$output")" 10
}

@test "on a terminal, an incomplete value shows the error, HAVE/WANT and MISSING" {
  {
    red t mean,p90 '["a","b","c"]' '"by":["size"]'
    fin a 1 '"params":{"size":"1"}'
    fin b 3 '"params":{"size":"1"}'
    echo '{"kind":"event","v":1,"event":"finished","job":"c","exit":2,"params":{"size":"2"}}'
  } >in
  run script -qefc "cm-reduce --allow-missing in" /dev/null
  assert_equal "$status" 0
  assert_equal "$(tr -d '\r' <<<"$output" | grep -v '^cm-reduce:')" "ID  SIZE  MEAN  P90  HAVE/WANT  MISSING
t   1     2     2.8  2/2        -
t   2     -     -    0/1        c"
  run script -qefc "cm-reduce in 2>/dev/null" /dev/null
  assert_equal "$status" 1
  # the error once per row; size 1 first: numbers sort as numbers
  assert_equal "$(tr -d '\r' <<<"$output")" "ID  SIZE  MEAN                          P90  HAVE/WANT  MISSING
t   1     2                             2.8  2/2        -
t   2     error: job c failed (exit 2)  -    0/1        c"
}
