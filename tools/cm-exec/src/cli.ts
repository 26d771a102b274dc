// The command's entry point, bundled by scripts/build.mjs: the usage parsed, the arguments mapped,
// run() called with the process's streams. Specs import main.ts and call run() with their own.
import { runMain } from '@cm/cli';
import { run, toArgs, USAGE } from './main';

runMain('cm-exec', USAGE, async (argv, io) => run(toArgs(argv, io.env, process.argv.slice(2)), io));
