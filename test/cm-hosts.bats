#!/usr/bin/env bats
# cm-hosts: every subcommand against a temp copy of an inventory, and check against real sshd hosts.

load helpers/common
load helpers/hosts

FIXTURES=$BATS_TEST_DIRNAME/helpers/vagrant-captures

setup_file() {
  cm_hosts_start 3 2
}

teardown_file() {
  cm_hosts_stop
}

setup() {
  INV=$BATS_TEST_TMPDIR/hosts.yaml
  cat >"$INV" <<'EOF'
# lab machines
defaults:
  user: root     # everyone logs in as root
  slots: 2

hosts:
  # the test box
  th1:
    address: 127.0.10.1
    slots: 4    # four cores
    tags: [ test, rack1 ]
  node[01-03]:
    address: 10.0.0.[1-3]   # paired with the names
    port: 2222
  laptop:
    local: true
EOF
  cp "$INV" "$BATS_TEST_TMPDIR/orig.yaml"
}

unchanged() {
  cmp "$BATS_TEST_TMPDIR/orig.yaml" "$INV"
}

@test "list --json prints one host record per expanded host, defaults applied" {
  run --separate-stderr cm-hosts list --json --inventory "$INV"
  assert_equal "$status" 0
  assert_equal "${#lines[@]}" 5
  assert_equal "$(jq -c 'select(.name=="node02") | [.address,.port,.user,.slots,.kind]' <<<"$output")" '["10.0.0.2",2222,"root",2,"host"]'
  run --separate-stderr cm-hosts list 'node[02-03],@rack1' --inventory "$INV" --json
  assert_equal "$status" 0
  assert_equal "$(jq -r .name <<<"$output" | paste -sd, -)" "th1,node02,node03"
}

@test "list prints NDJSON into a pipe, a table with --table, and reads no stdin" {
  run --separate-stderr bash -c 'cm-hosts list --inventory "$1" </dev/zero | head -1 | jq -r .name' _ "$INV"
  assert_equal "$status" 0
  assert_output "th1"
  run --separate-stderr cm-hosts list --table --inventory "$INV"
  assert_equal "$status" 0
  assert_line --index 0 --regexp '^NAME +ADDRESS +USER +PORT +SLOTS +TAGS +VIA$'
  assert_line --index 1 --regexp '^th1 +127\.0\.10\.1 +root +- +4 +test,rack1 +ssh$'
  assert_line --index 5 --regexp '^laptop .* local$'
}

@test "CM_INVENTORY is used when --inventory is absent; a missing explicit file is exit 3" {
  CM_INVENTORY=$INV run --separate-stderr cm-hosts list --json
  assert_equal "$status" 0
  assert_equal "${#lines[@]}" 5
  run --separate-stderr cm-hosts list --inventory "$BATS_TEST_TMPDIR/nope.yaml"
  assert_equal "$status" 3
  [[ $stderr == *"nope.yaml: no such inventory file"* ]]
}

@test "add with no inventory anywhere creates ./cm.yaml, says so on stderr, and later commands here use it" {
  local dir=$BATS_TEST_TMPDIR/fresh home=$BATS_TEST_TMPDIR/home
  mkdir -p "$dir" "$home"
  cd "$dir"
  HOME=$home CM_INVENTORY='' run --separate-stderr cm-hosts add web1 --address 192.0.2.10 --user deploy --slots 4 --tag web
  assert_equal "$status" 0
  assert_equal "$output" ""
  assert_equal "${stderr_lines[0]}" "cm-hosts: created ./cm.yaml (new inventory; cm commands in this folder use it)"
  [[ -f $dir/cm.yaml ]]
  # nothing in the per-user place, which would change the hosts of cm commands in every folder
  [[ ! -e $home/.config ]]
  HOME=$home CM_INVENTORY='' run --separate-stderr cm-hosts list --json
  assert_equal "$(jq -c '[.name,.address,.user,.slots,.tags]' <<<"$output")" '["web1","192.0.2.10","deploy",4,["web"]]'
  # the second add edits the same file and announces nothing new
  HOME=$home CM_INVENTORY='' run --separate-stderr cm-hosts add web2 --local
  assert_equal "$status" 0
  [[ $stderr != *created* ]]
  # import creates it the same way
  mkdir "$dir/other" && cd "$dir/other"
  HOME=$home CM_INVENTORY='' run --separate-stderr cm-hosts import --ssh-config "$FIXTURES/ssh-config-1node-libvirt.txt"
  assert_equal "$status" 0
  [[ $stderr == *$'\ncm-hosts: created ./cm.yaml (new inventory; cm commands in this folder use it)\n'* ]]
  [[ -f $dir/other/cm.yaml && ! -e $home/.config ]]
}

@test "-i FILE means --inventory FILE in every subcommand" {
  local kept=$BATS_TEST_TMPDIR/kept.yaml
  run --separate-stderr cm-hosts add th2 --address 127.0.10.2 --tag test -i "$INV"
  assert_equal "$status" 0
  run --separate-stderr cm-hosts set th2 slots=3 -i "$INV"
  assert_equal "$status" 0
  run --separate-stderr cm-hosts list th2 --json -i "$INV"
  assert_equal "$(jq -c '[.name,.slots]' <<<"$output")" '["th2",3]'
  run --separate-stderr cm-hosts export th2 -i "$INV"
  assert_equal "$status" 0
  assert_line "Host th2"
  run --separate-stderr cm-hosts check laptop --json -i "$INV"
  assert_equal "$status" 0
  assert_equal "$(jq -r '[.host,.up] | @tsv' <<<"$output")" "laptop	true"
  run --separate-stderr cm-hosts remove th2 -i "$INV"
  assert_equal "$status" 0
  unchanged
  run --separate-stderr cm-hosts import --ssh-config "$FIXTURES/ssh-config-1node-libvirt.txt" -i "$kept"
  assert_equal "$status" 0
  [[ $stderr == *"cm-hosts: created $kept (new inventory)"* ]]
  [[ -f $kept ]]
}

@test "an unknown host in a selector is exit 3" {
  run --separate-stderr cm-hosts list th9 --inventory "$INV"
  assert_equal "$status" 3
  [[ $stderr == *"unknown host th9"* ]]
}

@test "add, set and remove keep comments, spacing and key order" {
  run --separate-stderr cm-hosts add th2 --address 127.0.10.2 --slots 3 --tag test --tag rack2 --inventory "$INV"
  assert_equal "$status" 0
  run --separate-stderr cm-hosts set th1 slots=8 user=alice --inventory "$INV"
  assert_equal "$status" 0
  run --separate-stderr cm-hosts set 'node[01-03]' port= options.LogLevel=ERROR --inventory "$INV"
  assert_equal "$status" 0
  run --separate-stderr cm-hosts remove laptop --inventory "$INV"
  assert_equal "$status" 0
  cat >"$BATS_TEST_TMPDIR/expected.yaml" <<'EOF'
# lab machines
defaults:
  user: root     # everyone logs in as root
  slots: 2

hosts:
  # the test box
  th1:
    address: 127.0.10.1
    slots: 8    # four cores
    tags: [ test, rack1 ]
    user: alice
  node[01-03]:
    address: 10.0.0.[1-3]   # paired with the names
    options:
      LogLevel: ERROR
  th2:
    address: 127.0.10.2
    tags: [test, rack2]
    slots: 3
EOF
  diff -u "$BATS_TEST_TMPDIR/expected.yaml" "$INV"
  # no temp files left next to it
  assert_equal "$(ls -A "$BATS_TEST_TMPDIR" | grep -c '\.tmp$' || true)" 0
}

@test "set on part of a range, a duplicate add and bad values change nothing" {
  run --separate-stderr cm-hosts set node02 slots=3 --inventory "$INV"
  assert_equal "$status" 3
  [[ $stderr == *"part of the range node[01-03]"* ]]
  run --separate-stderr cm-hosts add node02 --address x --inventory "$INV"
  assert_equal "$status" 3
  [[ $stderr == *"node02 is already"* ]]
  run --separate-stderr cm-hosts set th1 slots=0 --inventory "$INV"
  assert_equal "$status" 2
  run --separate-stderr cm-hosts add evil --user '-oProxyCommand=x' --inventory "$INV"
  assert_equal "$status" 2
  run --separate-stderr cm-hosts set th1 options.ProxyCommand=x --inventory "$INV"
  assert_equal "$status" 3
  [[ $stderr == *"ProxyCommand"*"allow-list"* ]]
  unchanged
}

# bad_file NAME TEXT WHERE REASON: every command refuses the file with exit 3 at WHERE, and writes nothing
bad_file() {
  printf '%s' "$2" >"$INV"
  cp "$INV" "$BATS_TEST_TMPDIR/orig.yaml"
  for cmd in "list" "add zz --address 10.9.9.9" "set th1 slots=5" "remove th1"; do
    # shellcheck disable=SC2086
    run --separate-stderr cm-hosts $cmd --inventory "$INV"
    assert_equal "$status" 3
    [[ $stderr == "cm-hosts: $INV:$3: "*"$4"* ]] || fail "$1 / $cmd: $stderr"
    unchanged
  done
}

@test "bad inventories: exit 3 with file:line:col, file left byte-identical" {
  bad_file syntax $'hosts:\n  th1: {address: [x\n' 3:1 "YAML syntax error"
  bad_file unknown-key $'hosts:\n  th1:\n    adress: x\n' 3:5 'unknown key "adress"'
  bad_file zero-slots $'hosts:\n  th1:\n    slots: 0\n' 3:12 "slots must be >= 1"
  bad_file negative-slots $'defaults:\n  slots: -2\nhosts:\n  th1: {}\n' 2:10 "slots must be >= 1"
  bad_file duplicate $'hosts:\n  th[1-3]: {}\n  th2: {}\n' 3:3 "duplicate host th2"
  bad_file bad-range $'hosts:\n  th[1-: {}\n' 2:5 "bad host name range"
  bad_file dash-name $'hosts:\n  "-oProxyCommand=sh": {}\n' 2:3 'host name "-oProxyCommand=sh" is not allowed'
  bad_file bad-user $'hosts:\n  th1:\n    user: "root;reboot"\n' 3:11 'user "root;reboot" is not allowed'
  bad_file space-address $'hosts:\n  th1:\n    address: "a b"\n' 3:14 'address "a b" is not allowed'
  bad_file huge-range $'hosts:\n  n[1-999999999]: {}\n' 2:3 "expands to more than 100000"
}

@test "import --ssh-config takes Host blocks, skips wildcards, keeps allowed options" {
  cat >"$BATS_TEST_TMPDIR/ssh_config" <<'EOF'
Host *
  ServerAliveInterval 5
Host web1 web2
  HostName 192.0.2.10
  User deploy
  Port 2200
  IdentityFile ~/.ssh/web
  ProxyJump admin@bastion
  LogLevel ERROR
  ForwardAgent yes
Host *.internal
  User x
EOF
  run --separate-stderr cm-hosts import --ssh-config "$BATS_TEST_TMPDIR/ssh_config" --tag web --inventory "$INV"
  assert_equal "$status" 0
  [[ $stderr == *"skipped pattern Host *"* && $stderr == *"dropped ForwardAgent"* && $stderr == *"2 added, 0 updated"* ]]
  run --separate-stderr cm-hosts list web2 --json --inventory "$INV"
  assert_equal "$(jq -c '[.address,.user,.port,.identity,.jump,.options.LogLevel,.tags]' <<<"$output")" \
    "[\"192.0.2.10\",\"deploy\",2200,\"$HOME/.ssh/web\",\"admin@bastion\",\"ERROR\",[\"web\"]]"
  # the file keeps ~ as written; the loader expands it
  grep -q 'identity: ~/.ssh/web' "$INV"
}

@test "import --vagrant reads real vagrant ssh-config captures, plain and machine-readable" {
  run --separate-stderr cm-hosts import --vagrant "$FIXTURES/ssh-config-3nodes-libvirt.txt" --tag vm --inventory "$INV"
  assert_equal "$status" 0
  run --separate-stderr cm-hosts list @vm --json --inventory "$INV"
  assert_equal "$(jq -r '[.name,.address,.user,.port,.identity,.options.StrictHostKeyChecking] | join(" ")' <<<"$output")" \
"node1 192.168.121.222 vagrant 22 /home/alice/lab/.vagrant/machines/node1/libvirt/private_key no
node2 192.168.121.167 vagrant 22 /home/alice/lab/.vagrant/machines/node2/libvirt/private_key no
node3 192.168.121.64 vagrant 22 /home/alice/lab/.vagrant/machines/node3/libvirt/private_key no"
  # machine-readable, from stdin, into a new file: the same three hosts
  run --separate-stderr bash -c 'cm-hosts import --vagrant - --inventory "$1" < "$2"' _ "$BATS_TEST_TMPDIR/new.yaml" "$FIXTURES/ssh-config-3nodes-machine-readable.txt"
  assert_equal "$status" 0
  run --separate-stderr cm-hosts list --json --inventory "$BATS_TEST_TMPDIR/new.yaml"
  assert_equal "$(jq -r .address <<<"$output" | paste -sd' ' -)" "192.168.121.222 192.168.121.167 192.168.121.64"
  # re-import updates instead of duplicating
  run --separate-stderr cm-hosts import --vagrant "$FIXTURES/ssh-config-1node-libvirt.txt" --inventory "$BATS_TEST_TMPDIR/new.yaml"
  assert_equal "$status" 0
  [[ $stderr == *"0 added, 1 updated"* ]]
}

@test "import --vagrant of a halted or never created machine is exit 3 and writes nothing" {
  for f in ssh-config-halted.txt ssh-config-not-created-machine-readable.txt; do
    run --separate-stderr cm-hosts import --vagrant "$FIXTURES/$f" --inventory "$INV"
    assert_equal "$status" 3
    [[ $stderr == *"no hosts in the vagrant output: The provider for this Vagrant-managed machine"* ]] || fail "$stderr"
    unchanged
  done
}

@test "export writes an ssh config that ssh and import both understand" {
  run --separate-stderr cm-hosts export 'th1,node01' --inventory "$INV"
  assert_equal "$status" 0
  assert_line 'Host node01'
  assert_line '  Port 2222'
  echo "$output" >"$BATS_TEST_TMPDIR/exported"
  run --separate-stderr ssh -G -F "$BATS_TEST_TMPDIR/exported" node01
  assert_equal "$status" 0
  assert_line 'hostname 10.0.0.1'
  assert_line 'port 2222'
  # a round trip: export then import gives the same hosts
  cm-hosts export --inventory "$INV" | cm-hosts import --ssh-config - --inventory "$BATS_TEST_TMPDIR/rt.yaml"
  diff <(cm-hosts list --json --inventory "$INV" | jq -c 'select(.local|not) | [.name,.address,.user,.port]') \
    <(cm-hosts list --json --inventory "$BATS_TEST_TMPDIR/rt.yaml" | jq -c '[.name,.address,.user,.port]')
}

@test "check sees real hosts up with their cpus; a killed sshd is down with the reason, exit 1" {
  run --separate-stderr cm-hosts check --json
  assert_equal "$status" 0
  assert_equal "${#lines[@]}" 3
  assert_equal "$(jq -r 'select(.up and .cpus >= 1 and .suggested_slots == .cpus and (.load|length) == 3) | .hostname' <<<"$output" | sort | paste -sd' ' -)" "th1 th2 th3"
  cm_host_kill 2
  run --separate-stderr cm-hosts check --json
  cm_host_restart 2
  assert_equal "$status" 1
  assert_equal "$(jq -r 'select(.host=="th2") | [.up, .reason] | join(" ")' <<<"$output")" "false connection refused"
  assert_equal "$(jq -r 'select(.up) | .host' <<<"$output" | sort | paste -sd' ' -)" "th1 th3"
  [[ $stderr == *"th2 ($CM_TEST_HOSTS_PREFIX.2) is down: connection refused"* ]]
}

@test "check --table is for people; a local host needs no ssh; a missing ssh is exit 4" {
  run --separate-stderr cm-hosts check th1 --table
  assert_equal "$status" 0
  assert_line --index 0 --regexp '^HOST +STATE +RTT +CPUS +LOAD +SLOTS +SUGGESTED +REASON$'
  assert_line --index 1 --regexp '^th1 +up +[0-9]+ms +[0-9]+ '
  run --separate-stderr cm-hosts check laptop --json --inventory "$INV"
  assert_equal "$status" 0
  assert_equal "$(jq -r '[.up,.local,.cpus > 0] | join(" ")' <<<"$output")" "true true true"
  mkdir "$BATS_TEST_TMPDIR/bin"
  ln -s "$(command -v node)" "$BATS_TEST_TMPDIR/bin/node"
  run --separate-stderr env PATH="$BATS_TEST_TMPDIR/bin" node "$CM_REPO/tools/cm-hosts/dist/main.cjs" check th1
  [[ $stderr == *"ssh not found"* ]]
  assert_equal "$status" 4
}

@test "check over 64 hosts probes them all at once and succeeds" {
  cm_hosts_start_many 64 1
  run --separate-stderr cm-hosts check @many --json --timeout 30
  assert_equal "$status" 0
  assert_equal "$(jq -r 'select(.up) | .host' <<<"$output" | wc -l)" 64
}
