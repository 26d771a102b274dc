#!/usr/bin/env node
// Bundles each tools/<cmd>/src/main.ts into one CommonJS file so a command starts with a
// single file read and no TypeScript loader (cm-plan --help must start in well under 150 ms).
import { build } from 'esbuild';
import { readdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const only = process.argv.slice(2);
const tools = readdirSync(join(root, 'tools')).filter(
  (name) => existsSync(join(root, 'tools', name, 'src', 'main.ts')) && (only.length === 0 || only.includes(name)),
);
await Promise.all(
  tools.map((name) =>
    build({
      entryPoints: [join(root, 'tools', name, 'src', 'main.ts')],
      outfile: join(root, 'tools', name, 'dist', 'main.cjs'),
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      sourcemap: 'linked',
      logLevel: 'warning',
      legalComments: 'none',
    }),
  ),
);
