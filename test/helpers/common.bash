# Loaded by every test/*.bats with `load helpers/common`: the repository's binaries first on PATH,
# bats-support and bats-assert from node_modules, $CM_REPO set.

CM_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CM_REPO
[[ $PATH == "$CM_REPO/node_modules/.bin:"* ]] || export PATH="$CM_REPO/node_modules/.bin:$PATH"

load "$CM_REPO/node_modules/bats-support/load.bash"
load "$CM_REPO/node_modules/bats-assert/load.bash"

# `run --separate-stderr` and `run !` need bats >= 1.5; saying so silences warning BW02
bats_require_minimum_version 1.5.0
