// The command's entry point, bundled by scripts/build.mjs: the usage parsed, the arguments mapped,
// run() called with the process's streams. Specs import main.ts and call run() with their own.
import { setFlagsFromString } from 'node:v8';
import { runMain } from '@cm/cli';
import { run, toArgs, USAGE } from './main';

// A run keeps a few dozen bytes per ended job (its id and how it ended, for deps and duplicate
// ids) while it turns over jobs fast; V8's default growth then lets the heap reach about four times
// what is live before it collects (370 MB of RSS at a million jobs). Growing by 40% past the live
// size keeps it near 140 MB for the same CPU within noise.
setFlagsFromString('--heap-growing-percent=40');

runMain('cm-exec', USAGE, async (argv, io) => run(toArgs(argv, io.env, process.argv.slice(2)), io));
