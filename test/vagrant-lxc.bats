#!/usr/bin/env bats
# Real Vagrant machines (vagrant-lxc) driven through the user commands only: cm-vagrant, cm-hosts,
# cm-plan, cm-exec. test/helpers/vagrant-lab.sh prepares the lab (packages, a Debian box built once from
# the machine's own mirror and cached in /var/cache/cm-lab, a private network namespace with dnsmasq);
# its vagrant-lab-bin/vagrant, first on PATH, runs every vagrant call inside that namespace, and the
# machines' addresses are reached from here through the lab's veth route, as cm-exec's ssh needs.
#
# Run alone:  npx bats test/vagrant-lxc.bats      (root; about 3 minutes, plus ~70 s the first time)

load helpers/common
load helpers/vagrant

setup_file() {
  vagrant_lab_up
  export CM_INVENTORY="$BATS_FILE_TMPDIR/inventory.yaml"
  export VM_DIR="$BATS_FILE_TMPDIR/vm"
}

# Whatever a failed test left: the lab destroys every container it holds.
teardown_file() {
  vagrant_lab_down
}

# Host names of the NDJSON host records in $output, sorted, space-separated.
host_names() { jq -r 'select(.kind == "host") | .name' <<<"$output" | sort | tr '\n' ' '; }

@test "cm-vagrant up 2 boots two lxc machines with the real vagrant and adds them to the inventory" {
  run --separate-stderr cm-vagrant up 2 --provider lxc --box cm/debian12 --dir "$VM_DIR"
  [ "$status" -eq 0 ] || { echo "$stderr"; false; }
  [ "$(host_names)" = "node1 node2 " ]
  # vagrant's progress went to stderr, never to stdout
  [[ $stderr == *"Machine booted and ready"* ]]
  # every record is a host on the lab bridge, with vagrant's user and key, slots = CPUs per VM (1)
  run jq -r '[.address, .user, .slots, (.identity | test("/vm/.vagrant/machines/node[12]/lxc/private_key$"))] | @tsv' <<<"$output"
  assert_line --regexp '^10\.77\.3\.[0-9]+	vagrant	1	true$'
  [ "${#lines[@]}" -eq 2 ]
}

@test "cm-hosts list shows both machines with their addresses and slots" {
  run --separate-stderr cm-hosts list --json @vagrant
  [ "$status" -eq 0 ]
  [ "$(host_names)" = "node1 node2 " ]
  run jq -r '"\(.name) \(.address) \(.slots)"' <<<"$output"
  assert_line --regexp '^node1 10\.77\.3\.[0-9]+ 1$'
  assert_line --regexp '^node2 10\.77\.3\.[0-9]+ 1$'
  # the two machines got two different addresses
  [ "$(cut -d' ' -f2 <<<"$output" | sort -u | wc -l)" -eq 2 ]
}

run_hostname_plan() {
  cat >"$BATS_TEST_TMPDIR/plan.cm" <<'EOF'
@host(node1)
def one():
    hostname
@host(node2)
def two():
    hostname
one | two
EOF
  cm-plan -f "$BATS_TEST_TMPDIR/plan.cm" | cm-exec --hosts @vagrant
}

@test "a plan runs on both machines through cm-exec and each returns its own hostname" {
  run --separate-stderr run_hostname_plan
  [ "$status" -eq 0 ] || { echo "$stderr"; echo "$output"; false; }
  run jq -r 'select(.kind == "event" and .event == "finished") | "\(.job) \(.host) \(.exit) \(.stdout | rtrimstr("\n"))"' <<<"$output"
  assert_line 'one node1 0 node1'
  assert_line 'two node2 0 node2'
  [ "${#lines[@]}" -eq 2 ]
}

@test "cm-vagrant halt stops both; up brings them back, reachable again" {
  run --separate-stderr cm-vagrant halt -q --dir "$VM_DIR"
  [ "$status" -eq 0 ] || { echo "$stderr"; false; }
  run jq -r '"\(.name) \(.state)"' <<<"$output"
  assert_output $'node1 stopped\nnode2 stopped'
  run --separate-stderr cm-vagrant up 2 -q --dir "$VM_DIR"
  [ "$status" -eq 0 ] || { echo "$stderr"; false; }
  [ "$(host_names)" = "node1 node2 " ]
  run --separate-stderr run_hostname_plan
  [ "$status" -eq 0 ] || { echo "$stderr"; false; }
  [ "$(jq -r 'select(.event == "finished") | .stdout' <<<"$output" | sort | tr -d '\n')" = "node1node2" ]
}

@test "cm-vagrant up 3 after up 2 adds exactly one machine" {
  local before
  before=$("$VAGRANT_LAB" exec lxc-ls -1 | sort)
  [ "$(wc -l <<<"$before")" -eq 2 ]
  run --separate-stderr cm-vagrant up 3 -q --dir "$VM_DIR"
  [ "$status" -eq 0 ] || { echo "$stderr"; false; }
  [ "$(host_names)" = "node1 node2 node3 " ]
  # the two existing containers are the same ones; one new container
  run "$VAGRANT_LAB" exec lxc-ls -1
  [ "${#lines[@]}" -eq 3 ]
  for c in $before; do assert_line "$c"; done
  run --separate-stderr cm-hosts list --json @vagrant
  [ "$(host_names)" = "node1 node2 node3 " ]
}

@test "cm-vagrant destroy removes the machines and their inventory entries; nothing is left running" {
  run --separate-stderr cm-vagrant destroy -q --dir "$VM_DIR"
  [ "$status" -eq 0 ] || { echo "$stderr"; false; }
  run jq -r '"\(.name) \(.state)"' <<<"$output"
  assert_output $'node1 not_created\nnode2 not_created\nnode3 not_created'
  run grep -c 'node[0-9]' "$CM_INVENTORY"
  assert_output 0
  run "$VAGRANT_LAB" exec lxc-ls -1
  assert_output ''
  run pgrep -f "lxc monitor.*vm_node"
  [ "$status" -eq 1 ]
}
