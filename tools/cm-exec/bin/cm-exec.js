#!/bin/sh
":" //; if [ -n "${NODE_EXTRA_CA_CERTS+x}" ]; then CM_NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS; export CM_NODE_EXTRA_CA_CERTS; unset NODE_EXTRA_CA_CERTS; fi; exec node --heap-growing-percent=40 "$0" "$@"
'use strict';
// Line 2 is for sh, a string and a comment for node. node reads a NODE_EXTRA_CA_CERTS bundle at
// start-up, before any code runs (45 of 90 ms here); cm makes no TLS connection, so sh sets it
// aside and runMain (libs/cli) puts it back for the jobs and tools cm starts.
// The bundle is built by `npm ci` (the root prepare script); see scripts/build.mjs and start.cjs.
// --heap-growing-percent: a run keeps a few bytes per ended job while it turns jobs over fast, and
// V8's default growth then lets the heap reach about four times what is live before it collects;
// 40% past it keeps a million-job run far under 200 MB. On the command line, not set from the
// code: V8 refuses a code cache made under other flags, and every start would compile again.
require('../dist/start.cjs');
