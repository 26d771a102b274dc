# The Slurm lab (test/helpers/slurm-lab.sh) for a bats file: `slurm_lab_up` in setup_file starts it
# (or reuses a running one), exports SLURM_CONF, and points HOME at scratch, since jobs work in
# $HOME/.cm/runs/<run>/<job> on the nodes (here: this machine). On failure it returns 1 and leaves
# the lab's last words in $BATS_FILE_TMPDIR/no-slurm. `slurm_lab_down` in teardown_file stops it.

slurm_lab_up() {
  export CM_SLURM_LAB_DIR=${CM_SLURM_LAB_DIR:-/tmp/cm-slurm-lab}
  local out
  if ! out=$("$CM_REPO/test/helpers/slurm-lab.sh" start 3 2>"$BATS_FILE_TMPDIR/no-slurm"); then
    return 1
  fi
  rm -f "$BATS_FILE_TMPDIR/no-slurm"
  eval "$out"
  export SLURM_CONF
  export HOME=$BATS_FILE_TMPDIR/home
  mkdir -p "$HOME"
}

slurm_lab_down() {
  "$CM_REPO/test/helpers/slurm-lab.sh" stop
}

# none_queued REGEX [SQUEUE-OPTION...]: no job (with -s: no step) in Slurm's queue has a name
# matching REGEX (for wait_for)
none_queued() {
  (($(squeue -h "${@:2}" -o %j | grep -cE "$1") == 0))
}

# nodes_idle N: at least N of the lab's nodes are idle, none completing (for wait_for). A node whose
# step was cancelled stays completing while its slurmstepd waits for the step's output to close,
# up to a minute ("Abandoning IO 60 secs after job shutdown initiated" in slurmd's log).
nodes_idle() {
  (($(sinfo -h -N -o '%N %t' | awk '$2 == "idle" { print $1 }' | sort -u | wc -l) >= $1))
}
