'use strict';
// Copied by scripts/build.mjs into each tools/<cmd>/dist/ and required by the command's bin script.
// Runs main.cjs from V8's code cache (main.cjs.cache beside it) when there is one: compiling the
// 500 KB bundle and the functions a run needs costs about 25 ms of each start-up on the reference
// machine. A run writes the cache as it exits when there is none yet or V8 refused it (another
// node, a new build); V8 checks the cache against the source and its own version and flags.
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Module = require('node:module');

const file = path.join(__dirname, 'main.cjs');
const cacheFile = `${file}.cache`;
let cachedData;
try {
  cachedData = fs.readFileSync(cacheFile);
} catch {
  cachedData = undefined;
}
const script = new vm.Script(Module.wrap(fs.readFileSync(file, 'utf8')), { filename: file, cachedData });
if (cachedData === undefined || script.cachedDataRejected) {
  process.once('exit', () => {
    try {
      // a folder the user cannot write (a system-wide install) keeps its runs from paying for it
      fs.accessSync(__dirname, fs.constants.W_OK);
      const tmp = `${cacheFile}.${process.pid}`;
      fs.writeFileSync(tmp, script.createCachedData());
      fs.renameSync(tmp, cacheFile);
    } catch {
      // only a speed-up: without it the next run compiles the bundle, as this one did
    }
  });
}
const main = new Module(file, module);
main.filename = file;
main.paths = Module._nodeModulePaths(__dirname);
script.runInThisContext()(main.exports, Module.createRequire(file), main, file, __dirname);
