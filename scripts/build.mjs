#!/usr/bin/env node
// Bundles each tools/<cmd>/src/cli.ts (and the main.ts it runs) into one CommonJS file so a command starts with a
// single file read and no TypeScript loader (cm-plan --help must start in well under 150 ms).
import { build } from 'esbuild';
import { readdirSync, existsSync, copyFileSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { esbuildBrowserPlugin } from './browser-bundle.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const HOST_PROGRAMS = { '.sh': 'text', '.pl': 'text' };
const only = process.argv.slice(2);
const tools = readdirSync(join(root, 'tools')).filter(
  (name) => existsSync(join(root, 'tools', name, 'src', 'cli.ts')) && (only.length === 0 || only.includes(name)),
);
await Promise.all(
  tools.map(async (name) => {
    const dist = join(root, 'tools', name, 'dist');
    await build({
      // cli.ts runs the command; main.ts holds it (usage, Args, run) for the specs to import
      entryPoints: [join(root, 'tools', name, 'src', 'cli.ts')],
      outfile: join(dist, 'main.cjs'),
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      sourcemap: 'linked',
      logLevel: 'warning',
      legalComments: 'none',
      minifySyntax: true,
      minifyWhitespace: true,
      // programs that run on hosts live in real files (sh -n / perl -c checked) and ship as text
      loader: HOST_PROGRAMS,
      // a page's script (`import page from './client.ts?browser'`) is bundled for the browser, as text
      plugins: [esbuildBrowserPlugin],
      // cloud SDKs load from node_modules only when an az:// or s3:// location is used: bundled,
      // they would grow every cm-fetch start by megabytes of code most runs never touch
      external: ['@azure/storage-blob', '@aws-sdk/client-s3'],
    });
    // the bin script starts the bundle through start.cjs, from V8's code cache once a run made one;
    // a new bundle must not meet the cache of the old one (V8 would refuse it, at a cost)
    copyFileSync(join(root, 'scripts', 'start.cjs'), join(dist, 'start.cjs'));
    rmSync(join(dist, 'main.cjs.cache'), { force: true });
  }),
);

// The JSON Schemas in config/schemas/ are written from the protocol's TypeBox definitions, so the
// schema editors and other tools see is the one cm validates with.
if (only.length === 0) {
  const { createRequire } = await import('node:module');
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const tmp = join(root, 'node_modules', '.cache', 'cm', 'protocol.cjs');
  await build({
    entryPoints: [join(root, 'libs', 'protocol', 'src', 'records.ts')],
    outfile: tmp,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    logLevel: 'warning',
  });
  const { RECORD_SCHEMAS } = createRequire(import.meta.url)(tmp);
  const dir = join(root, 'config', 'schemas');
  mkdirSync(dir, { recursive: true });
  for (const [kind, schema] of Object.entries(RECORD_SCHEMAS)) {
    const doc = { $schema: 'https://json-schema.org/draft/2020-12/schema', title: `cm ${kind} record`, ...schema, $id: `cm-${kind}.schema.json` };
    writeFileSync(join(dir, `${kind}.schema.json`), `${JSON.stringify(doc, null, 2)}\n`);
  }
}
