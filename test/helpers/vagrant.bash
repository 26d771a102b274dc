# The Vagrant lxc lab for bats files (test/helpers/vagrant-lab.sh does the work):
#   vagrant_lab_up     in setup_file: skips the file (with the reason) where lxc cannot work, else
#                      starts the lab and puts its vagrant (vagrant-lab-bin, run inside the lab's
#                      network namespace) first on PATH
#   vagrant_lab_down   in teardown_file: destroys every container the lab holds and stops it

VAGRANT_LAB="$CM_REPO/test/helpers/vagrant-lab.sh"

vagrant_lab_up() {
  local why t0=$SECONDS
  why=$("$VAGRANT_LAB" unusable-reason)
  if [ -n "$why" ]; then
    skip "lxc cannot work here: $why"
  fi
  "$VAGRANT_LAB" start >&3 2>&1 || "$VAGRANT_LAB" start
  echo "# vagrant lab ready in $((SECONDS - t0)) s" >&3
  export PATH="$CM_REPO/test/helpers/vagrant-lab-bin:$PATH"
  export CM_SUITE_T0=$SECONDS
}

# true where the lab could run (and so was started by vagrant_lab_up)
vagrant_lab_usable() {
  [ -z "$("$VAGRANT_LAB" unusable-reason)" ]
}

vagrant_lab_down() {
  vagrant_lab_usable || return 0
  "$VAGRANT_LAB" stop
  echo "# vagrant suite: $((SECONDS - ${CM_SUITE_T0:-$SECONDS})) s after the lab was ready" >&3
}
