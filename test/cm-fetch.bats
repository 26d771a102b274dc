#!/usr/bin/env bats
# cm-fetch on real sshd test hosts, driven by hand-written cm-exec events (real inputs too):
# results come back with matching checksums, hostile names are refused, a dead host is retried
# then reported, stage-in puts one copy per host.
# test/run-bats.sh runs it twice: as is, files come through each host's cm-fetch server (perl); with
# CM_REMOTE_LOOP=sh (${CM_REMOTE_LOOP:-unset} here, read by cm-fetch) by one `ssh tar` per batch.

load helpers/common
load helpers/hosts

# a test that started Azurite (the --help examples) stops it by its pid, passed or failed
teardown() {
  if [[ -n ${CM_AZURITE_PID:-} ]]; then cm_azurite_stop; fi
}

setup_file() {
  cm_hosts_start 3 4
  # 40 "jobs" that ran on th1..th3 and left a result file (and a second output) in their workdir
  local i h
  for h in 1 2 3; do
    cm_ssh "th$h" "for i in \$(seq 1 40); do [ \$((i % 3 + 1)) = $h ] || continue; d=.cm/runs/r1/j\$i; mkdir -p \$d/logs; echo \$((1000000000000000 + i)) > \$d/out.txt; head -c \$((i * 1000)) /dev/urandom > \$d/logs/data.bin; done"
  done
  # kept: the folders stay on the hosts (as after cm-exec --keep-workdirs), so every test can fetch them
  # and compare with the files there
  for i in $(seq 1 40); do
    printf '{"kind":"event","v":1,"event":"finished","job":"j%d","task":"t","run":"r1","host":"th%d","exit":0,"stdout":"","workdir":".cm/runs/r1/j%d","outputs":["logs"],"result":"out.txt","sweep":"s","index":%d,"kept":true}\n' \
      "$i" $((i % 3 + 1)) "$i" $((i - 1))
  done >"$BATS_FILE_TMPDIR/events.ndjson"
}

teardown_file() {
  cm_hosts_stop
}

setup() {
  mkdir -p "$BATS_TEST_TMPDIR/work" "$BATS_TEST_TMPDIR/tmp"
  cd "$BATS_TEST_TMPDIR/work" || return 1
  # cm-fetch's private control directory goes here, so the test can see it is removed
  export TMPDIR=$BATS_TEST_TMPDIR/tmp
}

logins() { # logins H: ssh logins th$H has accepted so far
  grep -c 'Accepted publickey' "$(dirname "$(cm_host_home "th$1")")/log"
}

@test "fetches all 40 results with matching sha256 over one connection per host, passes every event through in order" {
  before=$(for h in 1 2 3; do logins $h; done)
  run --separate-stderr cm-fetch --transfers 6 --dir results <"$BATS_FILE_TMPDIR/events.ndjson"
  assert_equal "$status" 0
  assert_equal "$stderr" ""
  after=$(for h in 1 2 3; do logins $h; done)
  assert_equal "$(paste <(echo "$before") <(echo "$after") | awk '{ print $2 - $1 }' | tr '\n' ' ')" "1 1 1 "
  # events unchanged and in their order; one ok fetch record per job
  assert_equal "$(grep '"kind":"event"' <<<"$output")" "$(cat "$BATS_FILE_TMPDIR/events.ndjson")"
  assert_equal "$(grep -c '"kind":"fetch"' <<<"$output")" 40
  assert_equal "$(grep '"kind":"fetch"' <<<"$output" | grep -c '"ok":true')" 40
  # every fetch record follows its own event
  node -e '
    const seen = new Set();
    for (const l of require("fs").readFileSync(0, "utf8").trim().split("\n")) {
      const r = JSON.parse(l);
      if (r.kind === "event") seen.add(r.job);
      else if (!seen.has(r.job)) { console.error("fetch before event", r.job); process.exit(1); }
    }' <<<"$output"
  # the checksums the records claim are those of the remote files, and of the local copies
  for h in 1 2 3; do
    cm_ssh "th$h" 'cd .cm/runs/r1 && sha256sum */out.txt */logs/data.bin'
  done | awk '{ print $1, "r1/" $2 }' | sort >"$BATS_TEST_TMPDIR/remote.sums"
  jq -r 'select(.kind == "fetch") | .files[] | "\(.sha256) \(.path)"' <<<"$output" | sed "s|$PWD/results/||" | sort >"$BATS_TEST_TMPDIR/claimed.sums"
  assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/remote.sums")" 80
  assert_equal "$(cat "$BATS_TEST_TMPDIR/claimed.sums")" "$(cat "$BATS_TEST_TMPDIR/remote.sums")"
  (cd results && sha256sum r1/*/out.txt r1/*/logs/data.bin) | awk '{ print $1, $2 }' | sort >"$BATS_TEST_TMPDIR/local.sums"
  assert_equal "$(cat "$BATS_TEST_TMPDIR/local.sums")" "$(cat "$BATS_TEST_TMPDIR/remote.sums")"
  # result is the local path of out.txt; no temp files left; control directory removed
  assert_equal "$(jq -r 'select(.kind == "fetch" and .job == "j7") | .result' <<<"$output")" "$PWD/results/r1/j7/out.txt"
  assert_equal "$(find results -name '*.cm-part-*' | wc -l)" 0
  assert_equal "$(ls -A "$TMPDIR")" ""
}

@test "a started event naming outputs opens its host's connection before any job finished, one without does not; CM_TRACE=2 prints a line per batch (--help)" {
  local plain with want="0 1 "
  plain='{"kind":"event","v":1,"event":"started","job":"j1","task":"t","run":"r1","host":"th1","attempt":1}'
  with='{"kind":"event","v":1,"event":"started","job":"j2","task":"t","run":"r1","host":"th2","attempt":1,"outputs":["logs"]}'
  # the sh fallback has no server to start early
  [[ ${CM_REMOTE_LOOP:-} == sh ]] && want="0 0 "
  before=$(for h in 1 2; do logins $h; done)
  run --separate-stderr cm-fetch --dir results <<<"$plain
$with"
  assert_equal "$status" 0
  assert_equal "$stderr" ""
  assert_equal "$output" "$plain
$with"
  after=$(for h in 1 2; do logins $h; done)
  assert_equal "$(paste <(echo "$before") <(echo "$after") | awk '{ print $2 - $1 }' | tr '\n' ' ')" "$want"

  run --separate-stderr env CM_TRACE=2 cm-fetch --transfers 6 --dir results <"$BATS_FILE_TMPDIR/events.ndjson"
  assert_equal "$status" 0
  # stdout stays records: the events and a fetch record per job
  assert_equal "$(grep -c '"kind":"fetch".*"ok":true' <<<"$output")" 40
  assert_equal "$(grep -vc '^{"kind":"\(event\|fetch\)"' <<<"$output")" 0
  # stderr: when each batch leaves and when its files are home, every host's batches adding up to its jobs
  assert_equal "$(grep -Evc '^cm-fetch \+[0-9.]+ th[123]: (a batch of [0-9]+ \([0-9]+ more waiting\)|[0-9]+ home in [0-9]+ ms)$' <<<"$stderr")" 0
  assert_equal "$(sed -n 's/.* \([0-9]*\) home in .*/\1/p' <<<"$stderr" | awk '{ n += $1 } END { print n }')" 40
}

@test "cm-fetch | cm-reduce: exact sum of the fetched result files beyond 2^53" {
  {
    echo '{"kind":"reduce","v":1,"id":"total","op":"sum","inputs":[],"sweeps":{"s":40},"final":true}'
    cat "$BATS_FILE_TMPDIR/events.ndjson"
  } >in.ndjson
  run --separate-stderr bash -o pipefail -c 'cm-fetch <in.ndjson | cm-reduce'
  assert_equal "$status" 0
  # sum of 10^15 + i for i = 1..40 = 40000000000000820 (> 2^53, so a string)
  assert_equal "$(grep '"kind":"value"' <<<"$output")" '{"kind":"value","v":1,"id":"total","op":"sum","value":"40000000000000820","partial":false,"have":40,"want":40,"final":true}'
}

@test "hostile names: ../../x, an absolute path, a symlink to /etc, a fifo are refused; nothing lands outside results" {
  cm_ssh th1 'd=.cm/runs/r2/evil; mkdir -p $d/sub && cd $d && echo fine > ok.txt && ln -sfn /etc etc && ln -sfn /etc/passwd sub/pw && mkfifo ff && echo 7 > ../../x'
  printf '%s\n' '{"kind":"event","v":1,"event":"finished","job":"evil","run":"r2","host":"th1","exit":0,"workdir":".cm/runs/r2/evil","outputs":["../../x","/etc/passwd","etc","sub","ff","ok.txt"]}' >in.ndjson
  run --separate-stderr cm-fetch --dir results <in.ndjson
  assert_equal "$status" 1
  rec=$(grep '"kind":"fetch"' <<<"$output")
  assert_equal "$(jq -r .ok <<<"$rec")" false
  assert_equal "$(jq -r '[.files[].remote] | join(",")' <<<"$rec")" ".cm/runs/r2/evil/ok.txt"
  err=$(jq -r .error <<<"$rec")
  [[ $err == *'refused output "../../x": leaves the job directory'* ]]
  [[ $err == *'refused output "/etc/passwd": absolute path'* ]]
  [[ $err == *'refused "etc": a symlink (to "/etc")'* ]]
  [[ $err == *'refused "sub/pw": a symlink (to "/etc/passwd")'* ]]
  [[ $err == *'refused "ff": a fifo'* ]]
  [[ $stderr == *"cm-fetch: job evil: "* ]]
  # the only things written anywhere under the test's directory are results/r2/evil/{ok.txt,sub}
  assert_equal "$(cd "$BATS_TEST_TMPDIR" && find . -mindepth 1 ! -name 'separate-stderr-*' | sort | tr '\n' ' ')" \
    "./tmp ./work ./work/in.ndjson ./work/results ./work/results/r2 ./work/results/r2/evil ./work/results/r2/evil/ok.txt ./work/results/r2/evil/sub "
  assert_equal "$(cat results/r2/evil/ok.txt)" fine
}

@test "a host that is down: retried, then an ok:false fetch record; the other jobs are fetched" {
  grep -E '"host":"th(1|3)"' "$BATS_FILE_TMPDIR/events.ndjson" | head -4 >in.ndjson
  cm_host_kill 3
  run --separate-stderr cm-fetch --retries 1 <in.ndjson
  cm_host_restart 3
  assert_equal "$status" 1
  assert_equal "$(jq -c 'select(.kind == "fetch" and .host == "th3") | [.ok, .attempt]' <<<"$output" | sort -u)" "[false,2]"
  jq -r 'select(.kind == "fetch" and .host == "th3") | .error' <<<"$output" | grep -q 'ssh connection to th3 failed'
  assert_equal "$(jq -c 'select(.kind == "fetch" and .host == "th1") | .ok' <<<"$output" | sort -u)" "true"
  assert_equal "$(ls -A "$TMPDIR")" ""
}

@test "--stage-in: an input shared by 12 jobs is copied once per host and linked into each job" {
  head -c 300000 /dev/urandom >shared.bin
  want=$(sha256sum shared.bin | cut -d' ' -f1)
  for i in $(seq 1 12); do
    printf '{"kind":"job","v":1,"id":"s%d","task":"s","command":"sha256sum shared.bin | cut -d\\" \\" -f1","deps":[],"inputs":["shared.bin"],"run":"r3"}\n' "$i"
  done >jobs.ndjson
  echo '{"kind":"job","v":1,"id":"pinned","task":"p","command":"cat shared.bin >/dev/null","deps":[],"host":"th2","inputs":["shared.bin"]}' >>jobs.ndjson
  run --separate-stderr cm-fetch --stage-in <jobs.ndjson
  assert_equal "$status" 0
  # order kept: each job preceded by its fetch "in" record
  assert_equal "$(jq -r '.kind + ":" + (.job // .id)' <<<"$output" | head -4 | tr '\n' ' ')" "fetch:s1 job:s1 fetch:s2 job:s2 "
  assert_equal "$(jq -r 'select(.kind == "fetch") | .files[0].sha256' <<<"$output" | sort -u)" "$want"
  # every job whose inputs were staged says so (cm-exec fails a job with inputs that does not)
  assert_equal "$(jq -r 'select(.kind == "job") | .staged' <<<"$output" | sort | uniq -c | awk '{ print $1, $2 }')" "13 true"
  for h in 1 2 3; do
    assert_equal "$(ls "$(cm_host_home "th$h")/.cm/stage")" "$want"
    assert_equal "$(sha256sum <"$(cm_host_home "th$h")/.cm/stage/$want/shared.bin" | cut -d' ' -f1)" "$want"
  done
  # the rewritten command links the input into the job directory (run it as cm-exec would)
  cmd=$(jq -r 'select(.kind == "job" and .id == "s5") | .command' <<<"$output")
  run --separate-stderr cm_ssh th3 "mkdir -p .cm/runs/r3/s5 && cd .cm/runs/r3/s5 && sh -c $(printf %q "$cmd")"
  assert_equal "$status" 0
  assert_equal "$output" "$want"
  # a second run finds the copies there and sends nothing again
  run --separate-stderr cm-fetch --stage-in <jobs.ndjson
  assert_equal "$status" 0
}

@test "--stage-in with a host down: staged on the others, the record names the missing host" {
  echo hello >in.txt
  echo '{"kind":"job","v":1,"id":"d1","task":"d","command":"cat in.txt","deps":[],"inputs":["in.txt"],"run":"r5"}' >jobs.ndjson
  cm_host_kill 3
  run --separate-stderr cm-fetch --stage-in --retries 0 <jobs.ndjson
  cm_host_restart 3
  assert_equal "$status" 0
  rec=$(grep '"kind":"fetch"' <<<"$output")
  assert_equal "$(jq -r .ok <<<"$rec")" true
  [[ $(jq -r .error <<<"$rec") == "not staged on th3: "* ]]
  key=$(sha256sum in.txt | cut -d' ' -f1)
  assert_equal "$(cat "$(cm_host_home th1)/.cm/stage/$key/in.txt")" hello
  assert_equal "$(jq -r 'select(.kind == "job") | .id' <<<"$output")" d1
}

@test "local hosts: same checks, files copied from \$HOME without ssh" {
  home=$BATS_TEST_TMPDIR/home
  mkdir -p "$home/.cm/runs/r4/l1"
  echo 5 >"$home/.cm/runs/r4/l1/v.txt"
  ln -s /etc "$home/.cm/runs/r4/l1/etc"
  printf 'hosts:\n  lap:\n    local: true\n    address: localhost\n' >inv.yaml
  echo '{"kind":"event","v":1,"event":"finished","job":"l1","run":"r4","host":"lap","exit":0,"workdir":".cm/runs/r4/l1","outputs":["etc"],"result":"v.txt"}' >in.ndjson
  HOME=$home run --separate-stderr cm-fetch -i inv.yaml <in.ndjson
  assert_equal "$status" 1
  rec=$(grep '"kind":"fetch"' <<<"$output")
  assert_equal "$(jq -r .result <<<"$rec")" "$PWD/results/r4/l1/v.txt"
  [[ $(jq -r .error <<<"$rec") == *'refused "etc": a symlink'* ]]
  assert_equal "$(cat results/r4/l1/v.txt)" 5
  [[ ! -e results/r4/l1/etc ]]
}

# finished events of run $1 for jobs $2.. on th1, each job folder made there with one result file
_events_on_th1() {
  local run=$1 j
  shift
  for j in "$@"; do
    cm_ssh th1 "mkdir -p .cm/runs/$run/$j && echo 7 > .cm/runs/$run/$j/v.txt"
    printf '{"kind":"event","v":1,"event":"finished","job":"%s","task":"t","run":"%s","host":"th1","exit":0,"workdir":".cm/runs/%s/%s","result":"v.txt"}\n' "$j" "$run" "$run" "$j"
  done
}

@test "a job's folder goes from its host once its files are verified, and the run's folder once empty" {
  _events_on_th1 r6 a b >in.ndjson
  run --separate-stderr cm-fetch <in.ndjson
  assert_equal "$status" 0
  assert_equal "$(jq -c 'select(.kind == "fetch") | .ok' <<<"$output" | tr '\n' ' ')" "true true "
  assert_equal "$(cat results/r6/a/v.txt results/r6/b/v.txt)" "7
7"
  [[ ! -e $(cm_host_home th1)/.cm/runs/r6 ]]
  [[ -d $(cm_host_home th1)/.cm/runs ]]
}

@test "folders stay: kept: true, --keep-workdirs, --no-verify, a failed fetch, a workdir cm-exec did not make" {
  local h
  h=$(cm_host_home th1)
  _events_on_th1 r7 k >in.ndjson
  sed -i 's/}$/,"kept":true}/' in.ndjson
  _events_on_th1 r7 w nv >>in.ndjson
  # a result file that is not there: the fetch fails, nothing removed
  cm_ssh th1 'mkdir -p .cm/runs/r7/m'
  printf '{"kind":"event","v":1,"event":"finished","job":"m","run":"r7","host":"th1","exit":0,"workdir":".cm/runs/r7/m","result":"none.txt"}\n' >>in.ndjson
  # an event naming another folder than .cm/runs/<run>/<job> (written by hand): never removed
  cm_ssh th1 'mkdir -p mine && echo 1 > mine/v.txt'
  printf '{"kind":"event","v":1,"event":"finished","job":"o","run":"r7","host":"th1","exit":0,"workdir":"mine","result":"v.txt"}\n' >>in.ndjson
  run --separate-stderr cm-fetch --keep-workdirs <(grep '"job":"w"' in.ndjson)
  assert_equal "$status" 0
  [[ -f $h/.cm/runs/r7/w/v.txt ]]
  run --separate-stderr cm-fetch --no-verify <(grep '"job":"nv"' in.ndjson)
  assert_equal "$status" 0
  [[ -f $h/.cm/runs/r7/nv/v.txt ]]
  run --separate-stderr cm-fetch <(grep -Ev '"job":"(w|nv|m)"' in.ndjson)
  assert_equal "$status" 0
  [[ -f $h/.cm/runs/r7/k/v.txt && -f $h/mine/v.txt ]]
  run --separate-stderr cm-fetch <(grep '"job":"m"' in.ndjson)
  assert_equal "$status" 1
  [[ -d $h/.cm/runs/r7/m ]]
  # the same events without any reason to keep: they go, and only the failed job's folder is left
  run --separate-stderr cm-fetch <(grep -E '"job":"(w|nv)"' in.ndjson; grep '"job":"k"' in.ndjson | sed 's/,"kept":true//')
  assert_equal "$status" 0
  assert_equal "$(ls "$h/.cm/runs/r7")" m
}

@test "files of jobs with parameters land in <run>/<task>/<name>=<value>/; unsafe values and twins keep to the job id" {
  local j
  for j in p.0 p.1 p.2 p.3 p.4; do cm_ssh th1 "mkdir -p .cm/runs/r8/$j && echo $j > .cm/runs/r8/$j/v.txt"; done
  ev() { printf '{"kind":"event","v":1,"event":"finished","job":"%s","task":"p","run":"r8","host":"th1","exit":0,"workdir":".cm/runs/r8/%s","result":"v.txt","params":%s}\n' "$1" "$1" "$2"; }
  { ev p.0 '{"size":"4000","rep":"3"}'; ev p.1 '{"size":"4000","rep":"4"}'; ev p.2 '{"size":"../../x","rep":"1"}'; ev p.3 '{"size":"4000","rep":"3"}'; ev p.4 '{"size":"a b"}'; } >in.ndjson
  run --separate-stderr cm-fetch <in.ndjson
  assert_equal "$status" 0
  assert_equal "$(cat results/r8/p/size=4000/rep=3/v.txt results/r8/p/size=4000/rep=4/v.txt results/r8/p.2/v.txt results/r8/p.3/v.txt results/r8/p.4/v.txt | tr '\n' ' ')" "p.0 p.1 p.2 p.3 p.4 "
  assert_equal "$(jq -c 'select(.kind == "fetch" and .job == "p.1") | .params' <<<"$output")" '{"size":"4000","rep":"4"}'
  assert_equal "$(cd results && find . -type f | sort | tr '\n' ' ')" "./r8/p.2/v.txt ./r8/p.3/v.txt ./r8/p.4/v.txt ./r8/p/size=4000/rep=3/v.txt ./r8/p/size=4000/rep=4/v.txt "
}

@test "every example of cm-fetch --help runs as written on the test hosts" {
  local ex n=0
  # the --to az:// and ls az:// examples: Azurite on loopback, stopped by pid below
  source "$CM_REPO/test/helpers/stores.bash"
  cm_azurite_start "$BATS_TEST_TMPDIR/azurite"
  while IFS= read -r ex; do
    [[ -n $ex ]] || continue
    run --separate-stderr bash -o pipefail -c "cd '$BATS_TEST_TMPDIR/work' && ln -sfn '$CM_REPO/examples' examples && $ex"
    assert_equal "$ex: $status" "$ex: 0"
    n=$((n + 1))
  done < <(cm-fetch --help | sed -n '/^Examples:/,$p' | tail -n +2 | sed 's/^  //')
  ((n >= 4))
}

@test "--resume replays a job whose folder cm-fetch removed: its record comes again from the results tree" {
  _events_on_th1 r9 a >in.ndjson
  run --separate-stderr cm-fetch <in.ndjson
  assert_equal "$status" 0
  first=$(jq -c 'select(.kind == "fetch") | [.ok, .result, .files[0].sha256]' <<<"$output")
  [[ ! -e $(cm_host_home th1)/.cm/runs/r9 ]]
  run --separate-stderr bash -o pipefail -c "sed 's/}\$/,\"replayed\":true}/' in.ndjson | cm-fetch | cm-reduce"
  assert_equal "$status" 0
  assert_equal "$(jq -c 'select(.kind == "fetch") | [.ok, .result, .files[0].sha256]' <<<"$output")" "$first"
  # not replayed, or nothing home either: the missing folder is an error as before
  run --separate-stderr cm-fetch <in.ndjson
  assert_equal "$status" 1
  rm -r results
  run --separate-stderr cm-fetch <(sed 's/}$/,"replayed":true}/' in.ndjson)
  assert_equal "$status" 1
}
