#!/usr/bin/env node
'use strict';
// The bundle is built by `npm ci` (the root prepare script); see scripts/build.mjs.
require('../dist/main.cjs');
