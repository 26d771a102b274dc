#!/usr/bin/env bash
# Bundles the @cm/slurm test driver (test/helpers/slurm-run.ts) into $1 (a .cjs file), as
# scripts/build.mjs bundles the commands.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
"$repo/node_modules/.bin/esbuild" "$repo/test/helpers/slurm-run.ts" --bundle --platform=node --target=node20 \
  --format=cjs --log-level=warning --outfile="$1"
