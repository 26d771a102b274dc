#!/usr/bin/env bats
# Examples are tests, on real machines: the entries of test/examples/table.txt marked `lab: vagrant`
# (README's cm-vagrant lines, cm-vagrant --help, `vagrant ssh-config | cm-hosts import`), run in table
# order in the Vagrant lab of test/vagrant-lxc.bats (test/helpers/vagrant-lab.sh: lxc machines of the
# box cm/debian12, in a private network namespace). Entries of one session share their folder and
# machines: each session boots once (`up 3`: 3 machines) and its last entry destroys them.
# test/examples.bats runs every other entry; test/examples/runner.bash runs an entry.

load helpers/common
# the entries of a session build on each other: one at a time, in table order
export BATS_NO_PARALLELIZE_WITHIN_FILE=true
load helpers/vagrant
load examples/lib
load examples/runner

register_examples vagrant

# README's `cm-vagrant up 3 --provider lxc` names no box: the Vagrantfile's default. The lab has no
# network to download it: its own box stands in under that name for this file's run.
DEFAULT_BOX=debian/bookworm64

setup_file() {
  vagrant_lab_up
  if ! vagrant box list | grep -q "^$DEFAULT_BOX "; then
    vagrant box add -f --name "$DEFAULT_BOX" "${CM_LAB_DIR:-/var/cache/cm-lab}/box/debian12-lxc.box" >/dev/null
    export EXAMPLES_ADDED_BOX=1
  fi
}

teardown_file() {
  if vagrant_lab_usable && [ -n "${EXAMPLES_ADDED_BOX-}" ]; then
    vagrant box remove -f --provider lxc "$DEFAULT_BOX" >/dev/null 2>&1 || true
  fi
  # Whatever a failed entry left: the lab destroys every container it holds.
  vagrant_lab_down
}

teardown() {
  example_teardown
}
