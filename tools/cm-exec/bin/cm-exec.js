#!/bin/sh
":" //; if [ -n "${NODE_EXTRA_CA_CERTS+x}" ]; then CM_NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS; export CM_NODE_EXTRA_CA_CERTS; unset NODE_EXTRA_CA_CERTS; fi; exec node --heap-growing-percent=40 --interrupt-budget=262144 "$0" "$@"
'use strict';
// Line 2 is for sh, a string and a comment for node. node reads a NODE_EXTRA_CA_CERTS bundle at
// start-up, before any code runs (45 of 90 ms here); cm makes no TLS connection, so sh sets it
// aside and runMain (libs/cli) puts it back for the jobs and tools cm starts.
// The bundle is built by `npm ci` (the root prepare script); see scripts/build.mjs and start.cjs.
// --heap-growing-percent: a run keeps a few bytes per ended job while it turns jobs over fast, and
// V8's default growth then lets the heap reach about four times what is live before it collects;
// 40% past it keeps a million-job run far under 200 MB.
// --interrupt-budget: V8 compiles a hot function again with TurboFan once it has run that much
// bytecode; at 4 times the default, a run of a few thousand jobs makes fewer compiles it never pays
// back (2,000 jobs over kept connections: 580-740 ms of CPU with cm-exec's ssh clients, median 640;
// 430-550 with it, median 480), and a longer one still gets there (12,000: 1.73-2.05 s either way).
// 16 times (cm-fetch's) made the longer runs dearer (1.96-2.29 s).
// Both on the command line, not set from the code: V8 refuses a code cache made under other
// flags, and every start would compile again.
require('../dist/start.cjs');
