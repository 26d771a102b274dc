# Fault rows for cm-fetch --to (results kept at a location): the store going away mid-upload, and a
# full disk on the gathering host. Sourced by test/faults/table.sh (every rows/*.bash: each file adds
# its scenario names to FAULT_ROWS) and called by test/cm-fetch-store.bats.
# Needs what scenarios.bash needs, plus test/helpers/stores.bash.

FAULT_ROWS+=(store_gone gather_disk_full)

# Azurite SIGKILLed while a 256 MB result goes up in blocks: the fetch record says ok:false, no blob
# is under the final name (uncommitted blocks are not a blob), the catalogue does not list the job.
fault_store_gone() {
  local tok=cmf-gone$$ check=ok dir=$FT/gone-az rc port watcher nrec
  cm_azurite_start "$dir" || { row "store gone mid-upload (Azurite SIGKILLed)" 1 - - 0 - 1 "azurite did not start" ""; return 1; }
  port=$CM_AZURITE_PORT
  cm-plan -d "big()=: $tok; head -c 268435456 /dev/urandom > big.bin; echo 1" big --run gone1 |
    jq -c 'if .kind == "job" then .outputs = ["big.bin"] else . end' >"$FT/gone.jobs"
  # once Azurite holds 16 MB of the upload's blocks it is killed
  (wait_for 180 cm_azurite_bytes_over "$dir" 16777216 && kill -KILL "$CM_AZURITE_PID") 3>&- &
  watcher=$!
  cm-exec -H th1 <"$FT/gone.jobs" 2>/dev/null | timeout -k 5 180 cm-fetch --dir "$FT/gone.results" --to az://gone/x >"$FT/gone.out" 2>"$FT/gone.err"
  rc=${PIPESTATUS[1]}
  wait "$watcher" || check="Azurite was not killed mid-upload"
  cm_azurite_stop
  cm_azurite_start "$dir" "$port" || check="Azurite did not start again"
  [[ $(jq -c 'select(.kind == "fetch") | [.ok, .to]' "$FT/gone.out") == '[false,"az://gone/x"]' ]] || check="fetch record: $(jq -c 'select(.kind == "fetch")' "$FT/gone.out" | head -c 300)"
  [[ $(jq -r 'select(.kind == "fetch") | .error' "$FT/gone.out") == 'not stored at az://gone/x: '* ]] || check="error does not say it was not stored"
  [[ -z $(jq -r 'select(.kind == "fetch") | .files[]?.location // empty' "$FT/gone.out") ]] || check="a file is named as stored"
  cm_blobs gone >"$FT/gone.blobs" || check="cannot list the container"
  ! grep -q 'x/gone1/big/big.bin' "$FT/gone.blobs" || check="a blob is under the final name"
  nrec=$(cm-fetch ls az://gone/x 2>/dev/null | wc -l)
  ((nrec == 0)) || check="$nrec records listed"
  cm_azurite_stop
  row "store gone mid-upload (Azurite SIGKILLed)" 1 0 0 "$(leftovers "$tok")" "$rc" 1 "$check" "blobs=$(wc -l <"$FT/gone.blobs") listed=$nrec"
}

# The gathering host's disk fills up (a 2 MB tmpfs at th3's ~/fullstore, mounted inside th3's own
# mount namespace, where its sshd and sessions see it): the stores that fail say so, no temp file is
# left, everything there is whole and named by an ok record, and ls lists exactly the stored jobs.
fault_gather_disk_full() {
  local tok=cmf-gfull$$ check=ok pid start rc nbad nok stray cut mnt=/root/fullstore
  read -r pid start <"$CM_TEST_HOSTS_DIR/hosts/th3/pid"
  th3() { nsenter -t "$pid" -m -- "$@"; }
  th3 sh -c "mkdir -p $mnt && mount -t tmpfs -o size=2m tmpfs $mnt" || { row "gathering host disk full (2 MB tmpfs)" 10 - - 0 - 1 "mount failed" ""; return 1; }
  cm-plan -d "w(i=1..10)=: $tok; head -c 400000 /dev/urandom > out.bin; echo \$i" w --run gfull1 |
    jq -c 'if .kind == "job" then .outputs = ["out.bin"] else . end' >"$FT/gfull.jobs"
  cm-exec -H th1,th2 <"$FT/gfull.jobs" 2>/dev/null | timeout -k 5 120 cm-fetch --dir "$FT/gfull.results" --to ssh://th3/~/fullstore >"$FT/gfull.out" 2>"$FT/gfull.err"
  rc=${PIPESTATUS[1]}
  nbad=$(jq -r 'select(.kind == "fetch" and .ok == false) | .job' "$FT/gfull.out" | wc -l)
  nok=$(jq -r 'select(.kind == "fetch" and .ok == true) | .job' "$FT/gfull.out" | wc -l)
  ((nbad > 0)) || check="no store failed on a full disk"
  [[ $(jq -r 'select(.kind == "fetch" and .ok == false) | .error' "$FT/gfull.out" | head -1) == *'No space left'* ]] ||
    check="failure does not say the disk is full: $(jq -r 'select(.kind == "fetch" and .ok == false) | .error' "$FT/gfull.out" | head -1 | head -c 300)"
  [[ $(th3 find "$mnt" -name '.cm-part-*' | wc -l) == 0 ]] || check="temp files left on the gathering host"
  # every stored file is named by an ok record (with its sha256), and every ok record's files are there, whole
  cut=$(jq -r 'select(.kind == "fetch" and .ok == true) | .files[] | "\(.sha256)  \(.location)"' "$FT/gfull.out" |
    sed "s|ssh://th3/~/fullstore/|$mnt/|" | th3 sha256sum -c --quiet 2>&1 | wc -l)
  ((cut == 0)) || check="$cut stored files missing or cut"
  stray=$(th3 find "$mnt" -type f ! -path '*/.cm/fetch/*' | sed "s|^$mnt/|ssh://th3/~/fullstore/|" |
    grep -vcFx -f <(jq -r 'select(.kind == "fetch" and .ok == true) | .files[].location' "$FT/gfull.out") || true)
  ((stray == 0)) || check="$stray stored files no ok record names"
  [[ $(cm-fetch ls ssh://th3/~/fullstore 2>/dev/null | jq -s length) == "$nok" ]] || check="ls does not list the $nok stored jobs"
  th3 umount "$mnt"
  th3 rmdir "$mnt"
  row "gathering host disk full during cm-fetch --to (2 MB tmpfs)" 10 $((10 - nok - nbad)) 0 "$(leftovers "$tok")" "$rc" 1 "$check" "stored=$nok failed=$nbad stray=$stray"
}
