#!/bin/sh
":" //; if [ -n "${NODE_EXTRA_CA_CERTS+x}" ]; then CM_NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS; export CM_NODE_EXTRA_CA_CERTS; unset NODE_EXTRA_CA_CERTS; fi; exec node --interrupt-budget=1048576 "$0" "$@"
'use strict';
// Line 2 is for sh, a string and a comment for node. node reads a NODE_EXTRA_CA_CERTS bundle at
// start-up, before any code runs (45 of 90 ms here); cm makes no TLS connection, so sh sets it
// aside and runMain (libs/cli) puts it back for the jobs and tools cm starts.
// The bundle is built by `npm ci` (the root prepare script); see scripts/build.mjs and start.cjs.
// --interrupt-budget: V8 compiles a function again with TurboFan, on a thread of its own, once it
// has run that much bytecode. cm-fetch runs a great many functions a few thousand times each (per
// record, per file), and at the default (66 KB) those compiles cost more CPU than they saved: 1,000
// small files took 0.47 s of node's CPU, 0.36 s with 1 MB; 5,000 took 1.34 s, 1.07 s (a long run
// still tiers up). On the command line, as cm-exec's flag: V8 refuses a code cache made under others.
require('../dist/start.cjs');
