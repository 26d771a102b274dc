#!/usr/bin/env bats
# cm-fetch --to URL and cm-fetch ls|get|rm URL on real stores: the benchmark pipeline's results kept
# in Azurite (Azure Blob Storage's emulator) and on a gathering ssh test host, S3 through s3rver,
# and Azurite killed mid-upload. Every store listens on 127.0.0.1 and is stopped by its pid.

load helpers/common
load helpers/hosts
load helpers/stores
load faults/scenarios
load faults/rows/store

setup_file() {
  cm_hosts_start 3 2
  cm_azurite_start "$BATS_FILE_TMPDIR/azurite"
  echo "$CM_AZURITE_PID $CM_AZURITE_PORT" >"$BATS_FILE_TMPDIR/azurite.pid"
}

teardown_file() {
  read -r CM_AZURITE_PID _ <"$BATS_FILE_TMPDIR/azurite.pid" 2>/dev/null && cm_azurite_stop
  cm_hosts_stop
}

setup() {
  mkdir -p "$BATS_TEST_TMPDIR/work"
  cd "$BATS_TEST_TMPDIR/work" || return 1
  read -r CM_AZURITE_PID CM_AZURITE_PORT <"$BATS_FILE_TMPDIR/azurite.pid"
  export AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$CM_AZURITE_KEY;BlobEndpoint=http://127.0.0.1:$CM_AZURITE_PORT/devstoreaccount1;"
}

# blobs CONTAINER: every blob name in the container, straight from the SDK (not through cm-fetch)
blobs() {
  node -e '
    const { BlobServiceClient } = require(process.argv[1]);
    (async () => {
      const c = BlobServiceClient.fromConnectionString(process.env.AZURE_STORAGE_CONNECTION_STRING).getContainerClient(process.argv[2]);
      for await (const b of c.listBlobsFlat()) console.log(b.name);
    })().catch((e) => { console.error(e.message); process.exit(1); });
  ' "$CM_REPO/node_modules/@azure/storage-blob" "$1"
}

# bench TO RUN: examples/bench.cm's pipeline on th1 and th2, its results stored at TO
bench() {
  run --separate-stderr bash -o pipefail -c "cm-plan -f '$CM_REPO/examples/bench.cm' --run $2 | cm-fetch --stage-in | cm-exec -q -H th1,th2 | cm-fetch --dir results --to $1 | cm-reduce --op mean --json"
}

# the local results tree as "sha256 path" lines, paths below results/
local_sums() {
  (cd results && find "$1" -type f -exec sha256sum {} + | sort -k2)
}

# checks shared by the Azurite and the ssh runs: 150 stored records, ls with checksums, get byte for byte
check_stored() {
  local to=$1 run=$2 provider=$3
  [[ $status == 0 ]] || echo "$stderr" | tail -5 >&3
  assert_equal "$status" 0
  assert_equal "$(jq -c 'select(.kind == "fetch" and .direction == "out") | [.ok, .to, .files[0].provider]' <<<"$output" | sort | uniq -c | awk '{ print $1, $2 }')" "150 [true,\"$to\",\"$provider\"]"
  # the mean per size is still there: cm-reduce read the verified local copies
  assert_equal "$(jq -c 'select(.kind == "value" and .partial == false) | [.group.size, .have]' <<<"$output" | sort | tr '\n' ' ')" '["1000",50] ["2000",50] ["4000",50] '
  want=$(find results -path '*size=4000*' -name time.txt -exec cat {} + | awk '{ s += $1 } END { printf "%.6f", s / NR }')
  got=$(jq -r 'select(.kind == "value" and .group.size == "4000") | .value' <<<"$output")
  assert_equal "$(awk -v g="$got" 'BEGIN { printf "%.6f", g }')" "$want"
  # ls: the records stored there, each file with its checksum, those of the local copies
  run --separate-stderr cm-fetch ls "$to" --run "$run"
  assert_equal "$status" 0
  assert_equal "$(jq -s 'length' <<<"$output")" 150
  jq -r '.files[] | "\(.sha256)  \(.location)"' <<<"$output" | sed "s|$to/||" | sort -k2 >listed.sums
  assert_equal "$(cat listed.sums)" "$(local_sums "$run")"
  # on a terminal: a table with the checksums
  run script -qefc "cm-fetch ls $to --run $run 2>/dev/null" /dev/null
  assert_equal "$(head -1 <<<"$output" | tr -s ' ' | tr -d '\r')" 'RUN JOB SIZE SHA256 LOCATION'
  assert_equal "$(sed 1d <<<"$output" | wc -l)" 150
  # get: every file back, byte for byte, checked against its sha256 on the way
  run --separate-stderr cm-fetch get --dir back --run "$run" "$to"
  assert_equal "$status" 0
  assert_equal "$(jq -c '.ok' <<<"$output" | sort | uniq -c | awk '{ print $1, $2 }')" "150 true"
  diff -r "results/$run" "back/$run"
}

@test "bench.cm into Azurite: 150 records, ls with checksums, get byte for byte, the mean per size" {
  bench az://results/bench bw1
  check_stored az://results/bench bw1 az
  assert_equal "$(blobs results | grep -c '^bench/bw1/bench/size=.*/out/time.txt$')" 150
  assert_equal "$(blobs results | grep -c '^bench/.cm/fetch/bw1/')" 150
  # no credential in what cm-fetch wrote
  ! grep -q "$CM_AZURITE_KEY" <<<"$output$stderr"
}

@test "bench.cm gathered on a second ssh host (ssh://th3/~/store): the files there, ls, get, rm" {
  bench ssh://th3/~/store bs1
  check_stored ssh://th3/~/store bs1 ssh
  # the files on th3 are the ones fetched, and no temp file is left
  (cd "$(cm_host_home th3)/store" && find bs1 -type f -exec sha256sum {} + | sort -k2) >there.sums
  assert_equal "$(cat there.sums)" "$(local_sums bs1)"
  assert_equal "$(find "$(cm_host_home th3)/store" -name '.cm-part-*' | wc -l)" 0
  run --separate-stderr cm-fetch rm --run bs1 ssh://th3/~/store
  assert_equal "$status" 0
  assert_equal "$(jq -s length <<<"$output")" 150
  assert_equal "$(find "$(cm_host_home th3)/store" -type f | wc -l)" 0
  run --separate-stderr cm-fetch ls ssh://th3/~/store --run bs1
  assert_equal "$status" 0
  assert_equal "$output" ""
}

@test "Azurite SIGKILLed mid-upload of a 256 MB result: ok:false, no blob under the final name, nothing listed" {
  FT=$BATS_TEST_TMPDIR
  faults_run fault_store_gone
}

@test "the gathering host's disk fills up: failed stores say so, no temp file, everything listed is there and whole" {
  FT=$BATS_TEST_TMPDIR
  faults_run fault_gather_disk_full
}

@test "S3 (s3rver): --to s3://, ls with checksums, get byte for byte, rm; no credential in the output" {
  cm_s3_start "$BATS_TEST_TMPDIR/s3" res
  printf '@outputs(out.bin)\n@result(n.txt)\ndef w(i=1..6):\n    head -c $((i * 100000)) /dev/urandom > out.bin; echo $i > n.txt\n+w\n' >plan.cm
  run --separate-stderr bash -o pipefail -c 'cm-plan -f plan.cm --run s31 | cm-exec -q -H th1,th2 | cm-fetch --dir results --to s3://res/keep | cm-reduce --json'
  assert_equal "$status" 0
  assert_equal "$(jq -c 'select(.kind == "fetch") | [.ok, .files[].provider]' <<<"$output" | sort -u)" '[true,"s3","s3"]'
  assert_equal "$(jq -c 'select(.kind == "value" and .partial == false) | .value' <<<"$output")" 21
  run --separate-stderr cm-fetch ls s3://res/keep
  assert_equal "$status" 0
  jq -r '.files[] | "\(.sha256)  \(.location)"' <<<"$output" | sed 's|s3://res/keep/||' | sort -k2 >listed.sums
  assert_equal "$(cat listed.sums)" "$(cd results && find s31 -type f -exec sha256sum {} + | sort -k2)"
  run --separate-stderr cm-fetch get --dir back s3://res/keep
  assert_equal "$status" 0
  diff -r results/s31 back/s31
  ! grep -q S3RVER <<<"$output$stderr"
  run --separate-stderr cm-fetch rm s3://res/keep
  assert_equal "$status" 0
  assert_equal "$(jq -s length <<<"$output")" 6
  run --separate-stderr cm-fetch ls s3://res/keep
  assert_equal "$output" ""
  cm_s3_stop
}

@test "--stage-in --from ssh://th3/~/inputs and from az://: the input comes from the location, is staged, runs" {
  cm_ssh th3 'mkdir -p inputs && echo "echo \$((\$1 * 10))" > inputs/run.sh'
  printf '@inputs(run.sh)\ndef w(i=1..3):\n    sh run.sh $i\n+w\n' >plan.cm
  run --separate-stderr bash -o pipefail -c 'cm-plan -f plan.cm | cm-fetch --stage-in --from ssh://th3/~/inputs | cm-exec -q -H th1,th2 | cm-reduce --json'
  assert_equal "$status" 0
  assert_equal "$(jq -c 'select(.kind == "fetch" and .direction == "in") | .files[] | [.provider, .location]' <<<"$output" | sort -u)" '["ssh","ssh://th3/~/inputs/run.sh"]'
  assert_equal "$(jq -c 'select(.kind == "value" and .partial == false) | .value' <<<"$output")" 60
  # an input named by its URL in the plan (@inputs(az://...)), from Azurite
  mkdir -p in && cm_ssh th3 'cat inputs/run.sh' >in/run.sh
  run --separate-stderr node -e '
    const { BlobServiceClient } = require(process.argv[1]);
    const c = BlobServiceClient.fromConnectionString(process.env.AZURE_STORAGE_CONNECTION_STRING).getContainerClient("inputs");
    c.createIfNotExists().then(() => c.getBlockBlobClient("v1/run.sh").uploadFile(process.argv[2])).catch((e) => { console.error(e.message); process.exit(1); });
  ' "$CM_REPO/node_modules/@azure/storage-blob" in/run.sh
  assert_equal "$status" 0
  printf '@inputs(az://inputs/v1/run.sh)\ndef w(i=1..3):\n    sh run.sh $i\n+w\n' >plan-az.cm
  run --separate-stderr bash -o pipefail -c 'cm-plan -f plan-az.cm | cm-fetch --stage-in | cm-exec -q -H th1,th2 | cm-reduce --json'
  assert_equal "$status" 0
  assert_equal "$(jq -c 'select(.kind == "value" and .partial == false) | .value' <<<"$output")" 60
}

@test "bad locations are usage errors (exit 2) before anything runs; no credential in a URL" {
  run --separate-stderr cm-fetch --to 'az://res/x?sig=abc' </dev/null
  assert_equal "$status" 2
  [[ $stderr == *'a query or fragment is not allowed'* ]]
  run --separate-stderr cm-fetch ls 'ssh://user@th1/x'
  assert_equal "$status" 2
  run --separate-stderr cm-fetch ls 'ftp://x/y'
  assert_equal "$status" 2
  [[ $stderr == *'unknown location scheme "ftp"'* ]]
}
