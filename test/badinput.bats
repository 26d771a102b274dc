#!/usr/bin/env bats
# Bad input, generated rather than only hand-picked: hostile host names, users, jump hosts and
# options; job ids and runs that would leave the results tree; malformed NDJSON, YAML and plan
# files; wrong types, missing fields, invalid UTF-8, 10 MB lines. Each must end with exit 3 and
# file:line(:col), run nothing (a marker file never appears) and write nothing; unknown kinds pass
# through every filter byte for byte. No ssh host is needed: nothing may get that far.

# bats: parallel tests
load helpers/common

setup() {
  M=$BATS_TEST_TMPDIR/marker
  export M
}

# payloads that would become ssh options or shell code if they reached a command line unquoted
payloads() {
  printf '%s\n' "-oProxyCommand=touch $M" "-oLocalCommand=touch $M" "a;touch $M" "\$(touch $M)" "\`touch $M\`" \
    "a|touch $M" "a&&touch $M" "a touch $M" "-F$M" a b -- - "a'b" 'a"b' 'a\b'
  # and generated ones: a pseudo-random run of shell or option characters before a marker command
  node -e 'const cs = ["-", ";", "|", "&", "$(", "`", " ", "\t", ">", "<", "*", "!", "#", "~", "\\"];
    let s = 7; const r = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let i = 0; i < 12; i++) { let p = ""; for (let j = 0; j < 1 + Math.floor(r() * 3); j++) p += cs[Math.floor(r() * cs.length)];
      console.log(p + "touch " + process.argv[1]); }' "$M"
}

job_line() { jq -nc --arg c "touch $M" '{kind:"job",v:1,id:"a",task:"a",command:$c,deps:[]}'; }

@test "hostile address, user, jump and host names: exit 3 with file:line:col, nothing run" {
  local n=0 field p inv=$BATS_TEST_TMPDIR/inv.yaml
  job_line >"$BATS_TEST_TMPDIR/job"
  while IFS= read -r p; do
    [[ $p == a || $p == b ]] && continue
    for field in address user jump; do
      {
        echo "hosts:"
        echo "  h1:"
        [[ $field == address ]] || echo "    address: 127.0.0.1"
        printf '    %s: %s\n' "$field" "$(jq -Rn --arg p "$p" '$p')"
      } >"$inv"
      run --separate-stderr cm-exec --inventory "$inv" <"$BATS_TEST_TMPDIR/job"
      [[ $status == 3 ]] || { echo "$field=$p: exit $status: $stderr"; return 1; }
      [[ $stderr == "cm-exec: $inv:"[34]:[0-9]* ]] || { echo "$field=$p: no file:line:col: $stderr"; return 1; }
      [[ -z $output ]] || { echo "$field=$p: wrote $output"; return 1; }
      [[ ! -e $M ]] || { echo "$field=$p: the marker was created"; return 1; }
      n=$((n + 1))
    done
    # the same payload as a host name (the mapping key)
    printf 'hosts:\n  %s:\n    address: 127.0.0.1\n' "$(jq -Rn --arg p "$p" '$p')" >"$inv"
    run --separate-stderr cm-hosts list --inventory="$inv" --json
    [[ $status == 3 && $stderr == "cm-hosts: $inv:2:"* ]] || { echo "name=$p: exit $status: $stderr"; return 1; }
    [[ ! -e $M ]] || { echo "name=$p: the marker was created"; return 1; }
  done < <(payloads)
  ((n >= 75))
}

@test "ssh options that run commands are refused in the inventory, with where" {
  local opt inv=$BATS_TEST_TMPDIR/inv.yaml
  job_line >"$BATS_TEST_TMPDIR/job"
  for opt in ProxyCommand LocalCommand KnownHostsCommand PermitLocalCommand ControlPath IdentityAgent Include Match; do
    printf 'hosts:\n  h1:\n    address: 127.0.0.1\n    options:\n      %s: "touch %s"\n' "$opt" "$M" >"$inv"
    run --separate-stderr cm-exec --inventory "$inv" <"$BATS_TEST_TMPDIR/job"
    [[ $status == 3 ]] || { echo "$opt: exit $status: $stderr"; return 1; }
    [[ $stderr == *"$opt"* ]] || { echo "$opt: not named: $stderr"; return 1; }
    [[ ! -e $M ]]
  done
  # an allowed option holding a newline would start a new ssh_config line
  printf 'hosts:\n  h1:\n    address: 127.0.0.1\n    options:\n      LogLevel: "ERROR\\nProxyCommand touch %s"\n' "$M" >"$inv"
  run --separate-stderr cm-exec --inventory "$inv" <"$BATS_TEST_TMPDIR/job"
  assert_equal "$status" 3
  [[ ! -e $M ]]
}

@test "job ids and runs that would leave the results tree: exit 3 naming the line, in every filter" {
  local bad cmd field
  touch "$BATS_TEST_TMPDIR/start"
  for bad in ../x ../../etc/passwd /abs a/b .. . .hidden -rf '$(touch x)' 'a b' '' $'a\nb' 'é'; do
    for field in id run; do
      {
        echo '{"kind":"note","n":1}'
        jq -nc --arg b "$bad" --arg f "$field" --arg c "touch $M" '{kind:"job",v:1,id:"a",task:"a",command:$c,deps:[]} | .[$f] = $b'
      } >"$BATS_TEST_TMPDIR/in"
      run --separate-stderr cm-exec <"$BATS_TEST_TMPDIR/in"
      [[ $status == 3 && $stderr == "cm-exec: stdin:2: job record at $field"* ]] || { echo "job $field=$bad: $status $stderr"; return 1; }
      # the record before the bad one went through, nothing after it
      assert_equal "$output" '{"kind":"note","n":1}'
    done
    # a finished event naming such a job or run, written by hand, for cm-fetch and cm-reduce
    for field in job run; do
      jq -nc --arg b "$bad" --arg f "$field" '{kind:"event",v:1,event:"finished",job:"a",run:"r",host:"localhost",exit:0,workdir:".",outputs:["x"]} | .[$f] = $b' >"$BATS_TEST_TMPDIR/in"
      for cmd in "cm-fetch --dir $BATS_TEST_TMPDIR/results" cm-reduce; do
        run --separate-stderr $cmd <"$BATS_TEST_TMPDIR/in"
        [[ $status == 3 && $stderr == *": stdin:1: event record at $field"* ]] || { echo "$cmd $field=$bad: $status $stderr"; return 1; }
      done
    done
  done
  [[ ! -e $M ]]
  # nothing was written: no results tree, no file the hostile names point at
  [[ ! -e $BATS_TEST_TMPDIR/results ]]
  assert_equal "$(find "$BATS_TEST_TMPDIR" / -xdev -maxdepth 2 -newer "$BATS_TEST_TMPDIR/start" \( -name x -o -name passwd -o -name abs -o -name b -o -name .hidden \) 2>/dev/null)" ""
}

@test "generated malformed NDJSON: every filter stops with exit 3 at the exact line, having run nothing" {
  local line cmd
  # generated bad lines: every cut of a job line, each field missing, wrong types, non-objects
  node -e 'const job = {kind:"job",v:1,id:"a",task:"a",command:"echo",deps:[]};
    const s = JSON.stringify(job); const out = [];
    for (let i = 1; i < s.length; i += 4) out.push(s.slice(0, i));
    for (const k of Object.keys(job)) { const r = {...job}; delete r[k]; out.push(JSON.stringify(r)); }
    for (const [k, v] of [["v", "1"], ["deps", "a"], ["command", 7], ["id", null], ["timeout", "x"], ["env", [1]], ["retries", -1], ["colour", "red"]]) out.push(JSON.stringify({...job, [k]: v}));
    out.push("[1,2]", "\"job\"", "42", "null", "{\"kind\":3}", "{\"kind\":\"\"}", "{\"v\":1}", "{\"kind\":\"job\",\"v\":1,\"id\":\"a\"}", "{\"kind\":\"event\",\"v\":1,\"event\":\"finished\",\"job\":7}");
    console.log(out.join("\n"))' >"$BATS_TEST_TMPDIR/bad"
  (($(wc -l <"$BATS_TEST_TMPDIR/bad") >= 30))
  while IFS= read -r line; do
    # a good foreign record and a blank line first, the bad one on line 3, a job after it
    printf '{"kind":"note"}\n\n%s\n%s\n' "$line" "$(job_line)" >"$BATS_TEST_TMPDIR/in"
    for cmd in cm-exec "cm-fetch --dir $BATS_TEST_TMPDIR/r" cm-reduce; do
      run --separate-stderr $cmd <"$BATS_TEST_TMPDIR/in"
      # cm-fetch and cm-reduce do not consume jobs: a job record with an unknown field is still theirs to refuse
      [[ $status == 3 && $stderr == *": stdin:3"* ]] || { echo "$cmd <<< $line: exit $status: $stderr"; return 1; }
      [[ $stderr != *"    at "* ]] || { echo "$cmd: stack trace: $stderr"; return 1; }
      assert_equal "$output" '{"kind":"note"}'
    done
  done <"$BATS_TEST_TMPDIR/bad"
  [[ ! -e $M ]]
}

@test "invalid UTF-8 anywhere in a line: exit 3 with line and column; nothing run" {
  local b col cmd l='{"kind":"note","s":"abcdefghijklmn"}'
  for b in '\xff' '\xc3' '\xe2\x82' '\xed\xa0\x80' '\xc0\xaf' '\xf8\x88\x80\x80\x80'; do
    for col in 2 12 20; do
      printf '{"kind":"x"}\n%s%b%s\n%s\n' "${l:0:col}" "$b" "${l:col}" "$(job_line)" >"$BATS_TEST_TMPDIR/in"
      for cmd in cm-exec cm-reduce "cm-fetch --dir $BATS_TEST_TMPDIR/r"; do
        run --separate-stderr $cmd <"$BATS_TEST_TMPDIR/in"
        [[ $status == 3 && $stderr =~ ": stdin:2:"[0-9]+": invalid UTF-8" ]] || { echo "$cmd $b at $col: exit $status: $stderr"; return 1; }
        assert_equal "$output" '{"kind":"x"}'
      done
    done
  done
  [[ ! -e $M ]]
}

@test "unknown kinds pass through cm-exec, cm-fetch and cm-reduce byte for byte, a 10 MB line and odd Unicode included" {
  node -e 'const out = [];
    out.push(JSON.stringify({kind: "note", text: "é€𝄞\u2028 \"q\" \\\\ \t", n: 1e300, big: 12345678901234567890}));
    out.push("{ \"kind\" : \"spaced\" ,  \"keep\":[ 1, 2 ], \"num\": 1.50 }");
    out.push(JSON.stringify({kind: "huge", blob: "x".repeat(10 * 1024 * 1024)}));
    out.push(JSON.stringify({kind: "job-like", id: "../../x", command: "touch " + process.argv[1]}));
    out.push("{\"kind\":\"dup\",\"a\":1,\"a\":2}");
    for (let i = 0; i < 50; i++) out.push(JSON.stringify({kind: "k" + i.toString(36), ["f" + i]: [i, String(i), {i}]}));
    process.stdout.write(out.join("\n") + "\n")' "$M" >"$BATS_TEST_TMPDIR/in"
  cm-exec <"$BATS_TEST_TMPDIR/in" 2>"$BATS_TEST_TMPDIR/err1" | cm-fetch --dir "$BATS_TEST_TMPDIR/r" 2>"$BATS_TEST_TMPDIR/err2" |
    cm-reduce >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err3"
  assert_equal "${PIPESTATUS[*]}" "0 0 0"
  cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
  [[ ! -e $M ]]
}

@test "generated malformed inventories: exit 3 with file:line:col or a valid list, never a crash, file unchanged" {
  local i c inv=$BATS_TEST_TMPDIR/inv.yaml rc3=0
  local good='defaults:
  user: root
  slots: 2
hosts:
  th[1-3]:
    address: 127.0.10.[1-3]
    tags: [test, rack1]
  solo:
    address: 10.0.0.1
    port: 2222
    options: {LogLevel: ERROR}'
  # prefixes of the file cut every 7 bytes, then bytes replaced by YAML metacharacters
  for ((i = 1; i < ${#good}; i += 7)); do
    printf '%s' "${good:0:i}" >"$inv"
    cp "$inv" "$inv.orig"
    run --separate-stderr cm-hosts list --inventory="$inv" --json
    [[ $status == 0 || $status == 3 ]] || { echo "prefix $i: exit $status: $stderr"; return 1; }
    if [[ $status == 3 ]]; then
      rc3=$((rc3 + 1))
      [[ $stderr == "cm-hosts: $inv:"[0-9]*:[0-9]* ]] || { echo "prefix $i: no file:line:col: $stderr"; return 1; }
    fi
    cmp -s "$inv" "$inv.orig"
  done
  for ((i = 3; i < ${#good}; i += 9)); do
    for c in ':' '[' '{' '"' '&' '*' '|' '-' $'\t'; do
      printf '%s%s%s' "${good:0:i}" "$c" "${good:i+1}" >"$inv"
      run --separate-stderr cm-hosts list --inventory="$inv" --json
      [[ $status == 0 || $status == 3 ]] || { echo "byte $i to '$c': exit $status: $stderr"; return 1; }
      if [[ $status == 3 ]]; then
        rc3=$((rc3 + 1))
        [[ $stderr == "cm-hosts: $inv:"[0-9]*:[0-9]* ]] || { echo "byte $i to '$c': no file:line:col: $stderr"; return 1; }
      fi
    done
  done
  ((rc3 > 20))
}

@test "generated malformed plan files: exit 3 with file:line:col, no record printed" {
  local i c body f=$BATS_TEST_TMPDIR/plan.cm n=0
  local good='@timeout(30)
def a():
    echo 1
def b(i=1..3, s=[x, "y z"]):
    echo $i $s
def c(): echo 3
(a | b); +b + c'
  for ((i = 1; i < ${#good}; i += 4)); do
    for c in '(' ')' '|' ';' '+' '@' ':' '=' '[' '"'; do
      printf '%s%s%s\n' "${good:0:i}" "$c" "${good:i+1}" >"$f"
      run --separate-stderr cm-plan -f "$f"
      [[ $status == 0 || $status == 3 ]] || { echo "'$c' at $i: exit $status: $stderr"; return 1; }
      if [[ $status == 3 ]]; then
        n=$((n + 1))
        [[ $stderr == "cm-plan: $f:"[0-9]*:[0-9]* ]] || { echo "'$c' at $i: no file:line:col: $stderr"; return 1; }
        [[ -z $output ]] || { echo "'$c' at $i: printed records before the error"; return 1; }
      fi
    done
  done
  ((n > 50))
  # YAML plans with wrong types
  for body in 'tasks: 3' 'tasks: {a: [1]}' 'tasks: {a: {command: [x]}}' 'plan: [a]' $'tasks: {a: echo}\nplan: b'; do
    printf '%s\n' "$body" >"$BATS_TEST_TMPDIR/plan.yaml"
    run --separate-stderr cm-plan -f "$BATS_TEST_TMPDIR/plan.yaml"
    [[ $status == 3 && $stderr == "cm-plan: $BATS_TEST_TMPDIR/plan.yaml:"[0-9]* ]] || { echo "yaml <<$body>>: exit $status: $stderr"; return 1; }
  done
}
