#!/usr/bin/env bats
# The programs cm runs on hosts are real files beside the code that ships them (bundled as text):
# each must parse with the host's own interpreter, POSIX sh (dash here) or perl. The repository's
# bash scripts (test helpers, benchmarks) must parse with bash.

load helpers/common

@test "every sh program that runs on hosts parses with POSIX sh (sh -n)" {
  local f n=0
  while IFS= read -r f; do
    run sh -n "$f"
    assert_equal "$f: $status $output" "$f: 0 "
    n=$((n + 1))
  done < <(git -C "$CM_REPO" ls-files 'libs/*.sh' | sed "s|^|$CM_REPO/|")
  # the job loop, the per-job wrapper, cm-fetch's script and its clean-up, cm-hosts' probe, the Slurm
  # job script and cm-exec --clean's script
  ((n >= 7))
}

@test "every perl program that runs on hosts compiles (perl -c) and holds no single quote" {
  local f n=0
  while IFS= read -r f; do
    run perl -c "$f"
    assert_equal "$f: $status $output" "$f: 0 $f syntax OK"
    # it travels inside one sh single-quoted word
    run grep -c "'" "$f"
    assert_equal "$f: $output" "$f: 0"
    n=$((n + 1))
  done < <(git -C "$CM_REPO" ls-files 'libs/*.pl' | sed "s|^|$CM_REPO/|")
  ((n >= 1))
}

@test "the repository's bash scripts parse (bash -n)" {
  local f
  while IFS= read -r f; do
    run bash -n "$f"
    assert_equal "$f: $status $output" "$f: 0 "
  done < <(git -C "$CM_REPO" ls-files 'bench/*.sh' 'test/*.sh' 'test/*.bash' '.ci/run' | sed "s|^|$CM_REPO/|")
}
