#!/usr/bin/env bats
# cm-vagrant against test/stand-ins/vagrant, which replays what the real vagrant 2.3.4 printed
# (test/helpers/vagrant-captures) and keeps machine states between calls. The real thing, with real
# machines, is test/vagrant-lxc.bats.

load helpers/common

setup_file() {
  # A PATH of our own: the stand-in vagrant, the provider programs a test fakes, and this machine's
  # programs minus vagrant and the provider programs, so what is installed here (lxc, say) cannot
  # leak into the provider choice.
  local sys=$BATS_FILE_TMPDIR/sysbin d
  mkdir -p "$sys" "$BATS_FILE_TMPDIR/standin"
  for d in /usr/local/bin /usr/bin /bin /usr/local/sbin /usr/sbin /sbin; do
    [ -d "$d" ] && [ ! -L "$d" ] && cp -rsn "$d/." "$sys/" 2>/dev/null
  done
  rm -f "$sys/vagrant" "$sys/VBoxManage" "$sys/virsh" "$sys/lxc-start"
  ln -sf "$CM_REPO/test/stand-ins/vagrant" "$BATS_FILE_TMPDIR/standin/vagrant"
}

setup() {
  FAKE=$BATS_TEST_TMPDIR/fakebin
  mkdir -p "$FAKE"
  fake_provider virsh # libvirt is the stand-in's default provider
  export PATH="$BATS_FILE_TMPDIR/standin:$FAKE:$BATS_FILE_TMPDIR/sysbin:$CM_REPO/node_modules/.bin"
  export CM_INVENTORY=$BATS_TEST_TMPDIR/inventory.yaml
  export CM_VAGRANT_STANDIN_LOG=$BATS_TEST_TMPDIR/vagrant.log
  DIR=$BATS_TEST_TMPDIR/vm
  printf '# my hosts\nhosts:\n  th1:  # the bastion\n    address: 127.0.10.1\n' >"$CM_INVENTORY"
  unset CM_VAGRANT_SCENARIO CM_VAGRANT_BOXES VAGRANT_DEFAULT_PROVIDER
}

# The program whose presence tells cm-vagrant a provider is installed (only its presence is used).
fake_provider() { printf '#!/bin/sh\nexit 0\n' >"$FAKE/$1"; chmod +x "$FAKE/$1"; }

names() { jq -r "select(.kind == \"${1:-host}\") | .name" <<<"$output" | tr '\n' ' '; }
inventory_hosts() { cm-hosts list --json | jq -r .name | tr '\n' ' '; }
vagrant_calls() { awk -v c="$1" '$2 == c' "$CM_VAGRANT_STANDIN_LOG"; }

@test "up 3 writes the Vagrantfile, runs vagrant up and adds the three machines to the inventory" {
  run --separate-stderr cm-vagrant up 3 --provider libvirt --dir "$DIR"
  [ "$status" -eq 0 ] || { echo "$stderr"; false; }
  [ "$(names)" = "node1 node2 node3 " ]
  run jq -c '[.name, .address, .user, .port, .identity, .slots, .tags, .options]' <<<"$output"
  assert_line '["node1","192.168.121.222","vagrant",22,"/home/alice/lab/.vagrant/machines/node1/libvirt/private_key",1,["vagrant"],{"UserKnownHostsFile":"/dev/null","StrictHostKeyChecking":"no"}]'
  assert_line --partial '["node3","192.168.121.64","vagrant",22,'
  [ "$(inventory_hosts)" = "th1 node1 node2 node3 " ]
  # the user's comments survive
  grep -q '^# my hosts$' "$CM_INVENTORY"
  grep -q '# the bastion' "$CM_INVENTORY"
  grep -q '^CM_NODES = %w\[node1 node2 node3\]$' "$DIR/Vagrantfile"
  grep -q '^CM_PROVIDER = "libvirt"$' "$DIR/Vagrantfile"
  run vagrant_calls up
  assert_output -- '--machine-readable up --provider=libvirt node1 node2 node3'
}

@test "up streams vagrant's progress to stderr and keeps stdout NDJSON" {
  run --separate-stderr cm-vagrant up 2 --provider libvirt --dir "$DIR"
  [ "$status" -eq 0 ]
  [[ $stderr == *"==> node2: Machine booted and ready!"* ]]
  jq -e . <<<"$output" >/dev/null
  run --separate-stderr cm-vagrant up 1 -q --dir "$DIR"
  [ "$status" -eq 0 ]
  [ "$stderr" = "" ]
}

@test "up 5 after up 3 starts exactly two more; up 2 then destroys three" {
  cm-vagrant up 3 -q --provider libvirt --dir "$DIR" >/dev/null
  : >"$CM_VAGRANT_STANDIN_LOG"
  run --separate-stderr cm-vagrant up 5 -q --dir "$DIR"
  [ "$status" -eq 0 ] || { echo "$stderr"; false; }
  [ "$(names)" = "node1 node2 node3 node4 node5 " ]
  run vagrant_calls up
  assert_output -- '--machine-readable up --provider=libvirt node4 node5'
  [ "$(inventory_hosts)" = "th1 node1 node2 node3 node4 node5 " ]

  : >"$CM_VAGRANT_STANDIN_LOG"
  run --separate-stderr cm-vagrant up 2 -q --dir "$DIR"
  [ "$status" -eq 0 ] || { echo "$stderr"; false; }
  [ "$(names)" = "node1 node2 " ]
  run vagrant_calls destroy
  assert_output -- '--machine-readable destroy -f node3 node4 node5'
  [ "$(inventory_hosts)" = "th1 node1 node2 " ]
  grep -q '^CM_NODES = %w\[node1 node2\]$' "$DIR/Vagrantfile"
}

@test "status, halt, suspend, resume and reload print machine records; halt keeps the inventory" {
  cm-vagrant up 2 -q --provider libvirt --dir "$DIR" >/dev/null
  run --separate-stderr cm-vagrant status --dir "$DIR"
  [ "$status" -eq 0 ]
  assert_output "$(printf '{"kind":"machine","v":1,"name":"node%s","state":"running","dir":"%s","provider":"libvirt"}\n' 1 "$DIR" 2 "$DIR")"
  run --separate-stderr cm-vagrant halt -q --dir "$DIR" node2
  [ "$status" -eq 0 ]
  [ "$(jq -r '"\(.name) \(.state)"' <<<"$output")" = "node2 shutoff" ]
  [ "$(inventory_hosts)" = "th1 node1 node2 " ]
  run --separate-stderr cm-vagrant suspend -q --dir "$DIR" node1
  [ "$(jq -r '"\(.name) \(.state)"' <<<"$output")" = "node1 paused" ]
  run --separate-stderr cm-vagrant resume -q --dir "$DIR" node1
  [ "$status" -eq 0 ]
  [ "$(jq -r '"\(.name) \(.state)"' <<<"$output")" = "node1 running" ]
  run --separate-stderr cm-vagrant reload -q --dir "$DIR"
  [ "$status" -eq 0 ]
  [ "$(jq -r '"\(.name) \(.state)"' <<<"$output" | tr '\n' ' ')" = "node1 running node2 running " ]
}

@test "a machine name that is not in the Vagrantfile is a usage error" {
  cm-vagrant up 1 -q --provider libvirt --dir "$DIR" >/dev/null
  run --separate-stderr cm-vagrant halt --dir "$DIR" node7
  [ "$status" -eq 2 ]
  [ "$stderr" = "cm-vagrant: no machine node7 in the Vagrantfile (machines: node1)" ]
}

@test "hosts prints host records of the running machines and leaves the inventory alone" {
  cm-vagrant up 2 -q --provider libvirt --dir "$DIR" >/dev/null
  cp "$CM_INVENTORY" "$BATS_TEST_TMPDIR/before.yaml"
  run --separate-stderr cm-vagrant hosts --dir "$DIR"
  [ "$status" -eq 0 ]
  [ "$(names)" = "node1 node2 " ]
  cmp "$CM_INVENTORY" "$BATS_TEST_TMPDIR/before.yaml"
}

@test "ssh-config prints a config OpenSSH reads" {
  cm-vagrant up 2 -q --provider libvirt --dir "$DIR" >/dev/null
  run --separate-stderr cm-vagrant ssh-config --dir "$DIR"
  [ "$status" -eq 0 ]
  printf '%s\n' "$output" >"$BATS_TEST_TMPDIR/ssh.cfg"
  run ssh -G -F "$BATS_TEST_TMPDIR/ssh.cfg" node2
  assert_line 'hostname 192.168.121.167'
  assert_line 'user vagrant'
  assert_line 'identityfile /home/alice/lab/.vagrant/machines/node2/libvirt/private_key'
}

@test "ssh-config and hosts with a machine not running: the others on stdout, exit 7, the stopped one named" {
  cm-vagrant up 3 -q --provider libvirt --dir "$DIR" >/dev/null
  cm-vagrant halt -q --dir "$DIR" node2 >/dev/null
  run --separate-stderr cm-vagrant ssh-config --dir "$DIR"
  [ "$status" -eq 7 ]
  [ "$(grep -c '^Host ' <<<"$output")" -eq 2 ]
  assert_line 'Host node1'
  assert_line 'Host node3'
  [ "$stderr" = "cm-vagrant: not running, left out: node2 (shutoff)" ]
  run --separate-stderr cm-vagrant hosts --dir "$DIR"
  [ "$status" -eq 7 ]
  [ "$(names)" = "node1 node3 " ]
}

@test "up after a halt starts only the stopped machine and refreshes the inventory" {
  cm-vagrant up 2 -q --provider libvirt --dir "$DIR" >/dev/null
  cm-vagrant halt -q --dir "$DIR" node1 >/dev/null
  : >"$CM_VAGRANT_STANDIN_LOG"
  run --separate-stderr cm-vagrant up 2 -q --dir "$DIR"
  [ "$status" -eq 0 ]
  [ "$(names)" = "node1 node2 " ]
  run vagrant_calls up
  assert_output -- '--machine-readable up --provider=libvirt node1'
}

@test "destroy removes the machines from the inventory and keeps the rest of the file" {
  cm-vagrant up 3 -q --provider libvirt --dir "$DIR" >/dev/null
  run --separate-stderr cm-vagrant destroy -q --dir "$DIR" node3
  [ "$status" -eq 0 ]
  [ "$(jq -r '"\(.name) \(.state)"' <<<"$output")" = "node3 not_created" ]
  [ "$(inventory_hosts)" = "th1 node1 node2 " ]
  run --separate-stderr cm-vagrant destroy -q --dir "$DIR"
  [ "$status" -eq 0 ]
  [ "$(names machine)" = "node1 node2 node3 " ]
  [ "$(inventory_hosts)" = "th1 " ]
  grep -q '# the bastion' "$CM_INVENTORY"
}

@test "vagrant not installed: exit 4, a clear message, nothing written" {
  PATH="$FAKE:$BATS_FILE_TMPDIR/sysbin:$CM_REPO/node_modules/.bin"
  cp "$CM_INVENTORY" "$BATS_TEST_TMPDIR/before.yaml"
  run --separate-stderr cm-vagrant up 2 --provider libvirt --dir "$DIR"
  [ "$status" -eq 4 ]
  [ "$output" = "" ]
  [ "$stderr" = "cm-vagrant: vagrant is not installed (not found on PATH); install it (Debian: apt-get install --no-install-recommends vagrant) or fix PATH" ]
  [ ! -e "$DIR" ]
  cmp "$CM_INVENTORY" "$BATS_TEST_TMPDIR/before.yaml"
}

@test "no provider installed: exit 4 naming what to install" {
  rm "$FAKE/virsh"
  run --separate-stderr cm-vagrant up 1 --dir "$DIR"
  [ "$status" -eq 4 ]
  [[ $stderr == "cm-vagrant: no usable Vagrant provider: install VirtualBox (VBoxManage), or libvirt"* ]]
  [[ $stderr == *"--provider" ]]
}

@test "the provider is chosen from what is installed, else VAGRANT_DEFAULT_PROVIDER wins" {
  rm "$FAKE/virsh"
  fake_provider lxc-start
  export CM_VAGRANT_SCENARIO=lxc
  run --separate-stderr cm-vagrant up 1 -q --dir "$DIR"
  [ "$status" -eq 0 ] || { echo "$stderr"; false; }
  [ "$(jq -r .address <<<"$output")" = "10.0.3.252" ]
  run vagrant_calls up
  assert_output -- '--machine-readable up --provider=lxc node1'
  fake_provider VBoxManage
  run --separate-stderr env VAGRANT_DEFAULT_PROVIDER=lxc cm-vagrant up 1 -q --dir "$BATS_TEST_TMPDIR/vm2"
  [ "$status" -eq 0 ]
  grep -q '^CM_PROVIDER = "lxc"$' "$BATS_TEST_TMPDIR/vm2/Vagrantfile"
}

@test "provider not usable: vagrant's ProviderNotUsable becomes exit 4 with its reason" {
  fake_provider VBoxManage
  export CM_VAGRANT_SCENARIO=provider-not-usable
  run --separate-stderr cm-vagrant up 1 -q --provider virtualbox --dir "$DIR"
  [ "$status" -eq 4 ]
  [[ $stderr == "cm-vagrant: vagrant up failed (ProviderNotUsable): The provider 'virtualbox' that was requested to back the machine 'node1' is reporting that it isn't usable on this system."*"Vagrant could not detect VirtualBox!"* ]]
  [ "$output" = "" ]
  [ "$(inventory_hosts)" = "th1 " ]
  run --separate-stderr cm-vagrant status --dir "$DIR"
  [ "$status" -eq 4 ]
  # and without the program at all, cm-vagrant says so before asking vagrant
  rm "$FAKE/VBoxManage"
  run --separate-stderr cm-vagrant up 1 --provider virtualbox --dir "$BATS_TEST_TMPDIR/vm3"
  [ "$status" -eq 4 ]
  [ "$stderr" = "cm-vagrant: provider virtualbox is not usable here: VBoxManage not found on PATH (install VirtualBox, or pick another --provider)" ]
}

@test "a box that does not exist: exit 6 before any machine is touched" {
  export CM_VAGRANT_BOXES="cm/debian12/lxc"
  run --separate-stderr cm-vagrant up 2 --provider libvirt --box nosuch/box --dir "$DIR"
  [ "$status" -eq 6 ]
  [ "$stderr" = "cm-vagrant: box nosuch/box is not installed for provider libvirt; add it with vagrant box add, or pass --download to let Vagrant fetch it" ]
  [ -z "$(vagrant_calls up)" ]
  [ "$(inventory_hosts)" = "th1 " ]
  run --separate-stderr cm-vagrant up 2 --provider libvirt --box cm/debian12 --dir "$BATS_TEST_TMPDIR/vm2"
  [ "$status" -eq 6 ]
  [[ $stderr == *"(only for lxc)"* ]]
  # with --download vagrant looks for it and fails: still exit 6
  run --separate-stderr cm-vagrant up 1 -q --download --provider libvirt --box nosuch/box --dir "$BATS_TEST_TMPDIR/vm4"
  [ "$status" -eq 6 ]
  [[ $stderr == "cm-vagrant: vagrant up failed (BoxAddShortNotFound): The box 'nosuch/box' could not be found"* ]]
}

@test "a machine stuck shut off after up: exit 8, the running ones added, the stuck one not" {
  export CM_VAGRANT_SCENARIO=stuck
  run --separate-stderr cm-vagrant up 2 -q --provider libvirt --dir "$DIR"
  [ "$status" -eq 8 ]
  [ "$(names)" = "node1 " ]
  [[ $stderr == "cm-vagrant: after vagrant up, node2 is shutoff; see vagrant status in $DIR" ]]
  [ "$(inventory_hosts)" = "th1 node1 " ]
}

@test "a machine stuck not created after up: exit 8 and it stays out of the inventory" {
  export CM_VAGRANT_SCENARIO=never-created
  run --separate-stderr cm-vagrant up 3 -q --provider libvirt --dir "$DIR"
  [ "$status" -eq 8 ]
  [ "$stderr" = "cm-vagrant: after vagrant up, node3 is not created; see vagrant status in $DIR" ]
  [ "$(inventory_hosts)" = "th1 node1 node2 " ]
}

@test "a Vagrantfile that is not cm-vagrant's is left alone (exit 3)" {
  mkdir -p "$DIR"
  printf 'Vagrant.configure("2") do |c|\nend\n' >"$DIR/Vagrantfile"
  run --separate-stderr cm-vagrant up 1 --provider libvirt --dir "$DIR"
  [ "$status" -eq 3 ]
  [[ $stderr == "cm-vagrant: $DIR/Vagrantfile: not a cm-vagrant Vagrantfile"* ]]
  [ "$(cat "$DIR/Vagrantfile")" = $'Vagrant.configure("2") do |c|\nend' ]
}

@test "usage errors exit 2; commands need a Vagrantfile" {
  run --separate-stderr cm-vagrant up many
  [ "$status" -eq 2 ]
  run --separate-stderr cm-vagrant frobnicate
  [ "$status" -eq 2 ]
  run --separate-stderr cm-vagrant status --dir "$DIR"
  [ "$status" -eq 3 ]
  [ "$stderr" = "cm-vagrant: no Vagrantfile in $DIR: start machines with cm-vagrant up N first (or pass --dir)" ]
  run cm-vagrant --help
  [ "$status" -eq 0 ]
  assert_line --partial '6    the box does not exist'
}
