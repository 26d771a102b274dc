#!/usr/bin/env bats
# The test hosts themselves: real sshd per host, own hostname and address, kill/restart, many hosts,
# and a stop that leaves nothing behind. Every other bats suite stands on these.

load helpers/common
load helpers/hosts

setup_file() {
  cm_hosts_start 3 2
}

teardown_file() {
  cm_hosts_stop
}

# a live process (zombies are dead: nobody may reap orphans on a minimal init)
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# start `ssh HOST` holding a remote `sleep` open in the background; prints the remote shell's pid
hold_session() {
  local host=$1 out=$BATS_TEST_TMPDIR/$1.session
  ssh -F "$CM_TEST_SSH_CONFIG" "$host" 'echo $$; exec sleep 300' >"$out" 2>&1 </dev/null 3>&- &
  for _ in $(seq 1 500); do
    [[ -s $out ]] && break
    sleep 0.01
  done
  head -1 "$out"
}

@test "each host answers over real ssh with its own hostname" {
  for i in 1 2 3; do
    run --separate-stderr ssh -F "$CM_TEST_SSH_CONFIG" "th$i" hostname
    assert_equal "$status" 0
    assert_output "th$i"
  done
}

@test "each session's server address is its host's own loopback address" {
  [[ $CM_TEST_HOSTS_PREFIX =~ ^127\.0\.1[0-9]$ ]]
  for i in 1 2 3; do
    run --separate-stderr ssh -F "$CM_TEST_SSH_CONFIG" "th$i" 'echo $SSH_CONNECTION'
    assert_equal "$status" 0
    read -r _ _ server port <<<"$output"
    assert_equal "$server" "$CM_TEST_HOSTS_PREFIX.$i"
    assert_equal "$port" 22
  done
}

@test "the inventory alone is enough to log in: address, user, identity, known_hosts" {
  run cat "$CM_INVENTORY"
  assert_line "  identity: \"$CM_TEST_HOSTS_DIR/id_ed25519\""
  assert_line "    UserKnownHostsFile: \"$CM_TEST_HOSTS_DIR/known_hosts\""
  assert_line "    StrictHostKeyChecking: accept-new"
  # parsed with the yaml package the commands use, so the file is what cm-hosts will read
  run --separate-stderr node -e '
    const inv = require(process.argv[1]).parse(require("fs").readFileSync(process.env.CM_INVENTORY, "utf8"));
    for (const [n, h] of Object.entries(inv.hosts)) console.log(n, h.address, h.slots, h.tags.join(","));
  ' "$CM_REPO/node_modules/yaml"
  assert_equal "$status" 0
  assert_output "th1 $CM_TEST_HOSTS_PREFIX.1 2 test
th2 $CM_TEST_HOSTS_PREFIX.2 2 test
th3 $CM_TEST_HOSTS_PREFIX.3 2 test"
  run --separate-stderr ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes \
    -o UserKnownHostsFile="$CM_TEST_HOSTS_DIR/known_hosts" -i "$CM_TEST_HOSTS_DIR/id_ed25519" \
    -l root -- "$CM_TEST_HOSTS_PREFIX.2" hostname
  assert_equal "$status" 0
  assert_output th2
}

@test "each host has its own login directory, as separate machines would" {
  run --separate-stderr ssh -F "$CM_TEST_SSH_CONFIG" th1 'pwd && echo one > staged.txt'
  assert_equal "$status" 0
  assert_output /root
  run --separate-stderr ssh -F "$CM_TEST_SSH_CONFIG" th2 'cat staged.txt'
  assert_equal "$status" 1
  run cat "$(cm_host_home th1)/staged.txt"
  assert_output one
  [[ ! -e /root/staged.txt ]]
}

@test "a killed host refuses connections, its sessions die, and a restart brings it back" {
  local remote
  remote=$(hold_session th3)
  [[ $remote =~ ^[0-9]+$ ]]
  assert running "$remote"
  cm_host_kill 3
  refute running "$remote"
  run --separate-stderr ssh -F "$CM_TEST_SSH_CONFIG" th3 hostname
  assert_equal "$status" 255
  [[ $stderr == *"Connection refused"* ]]
  # the neighbours are untouched
  run --separate-stderr ssh -F "$CM_TEST_SSH_CONFIG" th2 hostname
  assert_equal "$status" 0
  cm_host_restart 3
  run --separate-stderr ssh -F "$CM_TEST_SSH_CONFIG" th3 hostname
  assert_equal "$status" 0
  assert_output th3
}

@test "a frozen host accepts connections but never answers until thawed" {
  cm_host_freeze 2
  run --separate-stderr ssh -F "$CM_TEST_SSH_CONFIG" -o ConnectTimeout=1 th2 hostname
  cm_host_thaw 2
  assert_equal "$status" 255
  [[ $stderr == *"timed out"* ]]
  run --separate-stderr ssh -F "$CM_TEST_SSH_CONFIG" th2 hostname
  assert_equal "$status" 0
  assert_output th2
}

@test "cm_hosts_start_many 64 serves ssh on m1 and m64" {
  cm_hosts_start_many 64 1
  run --separate-stderr ssh -F "$CM_TEST_SSH_CONFIG" m1 'hostname; echo $SSH_CONNECTION'
  assert_equal "$status" 0
  assert_line --index 0 many
  assert_line --index 1 --regexp " $CM_TEST_MANY_PREFIX\.1 22\$"
  run --separate-stderr ssh -F "$CM_TEST_SSH_CONFIG" m64 'echo $SSH_CONNECTION'
  assert_equal "$status" 0
  assert_output --regexp " $CM_TEST_MANY_PREFIX\.64 22\$"
  run grep -c '^  m[0-9]*:$' "$CM_INVENTORY"
  assert_output 64
}

@test "a second set of hosts on the same machine moves to the next address block" {
  local other=$BATS_TEST_TMPDIR/other
  (
    CM_TEST_HOSTS_DIR=$other
    cm_hosts_start 1 2>/dev/null
    echo "$CM_TEST_HOSTS_PREFIX" >"$other/prefix"
  )
  run cat "$other/prefix"
  refute_output "$CM_TEST_HOSTS_PREFIX"
  run --separate-stderr ssh -F "$other/ssh_config" th1 'echo $SSH_CONNECTION'
  assert_equal "$status" 0
  assert_output --regexp " $(cat "$other/prefix")\.1 22\$"
  CM_TEST_HOSTS_DIR=$other cm_hosts_stop
}

@test "cm_hosts_stop leaves nothing it started alive, spares others, and may be called twice" {
  local sessions decoy pid start other=$BATS_TEST_TMPDIR/other
  sessions="$(hold_session th1) $(hold_session m5)"
  # a daemon started by somebody else (another test-host set) must survive our stop
  (CM_TEST_HOSTS_DIR=$other && cm_hosts_start 1 2>/dev/null)
  read -r decoy _ <"$other/hosts/th1/pid"
  assert running "$decoy"
  cm_hosts_stop
  for pid in $sessions; do
    refute running "$pid"
  done
  # all th daemons (including the one restarted above) and the many-host daemons
  [[ $(wc -l <"$CM_TEST_HOSTS_DIR/pids") -ge 8 ]]
  while read -r pid start; do
    refute running "$pid"
  done <"$CM_TEST_HOSTS_DIR/pids"
  run --separate-stderr ssh -F "$CM_TEST_SSH_CONFIG" th1 true
  assert_equal "$status" 255
  assert running "$decoy"
  run cm_hosts_stop
  assert_equal "$status" 0
  CM_TEST_HOSTS_DIR=$other cm_hosts_stop
  refute running "$decoy"
}
