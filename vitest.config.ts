import { defineConfig } from 'vitest/config';
// @ts-expect-error: a plain .mjs module shared with scripts/build.mjs
import { viteBrowserPlugin } from './scripts/browser-bundle.mjs';

export default defineConfig({
  // programs that run on hosts (*.sh, *.pl beside the code) are imported as text, as esbuild's text
  // loader does for the bundles (scripts/build.mjs)
  plugins: [
    viteBrowserPlugin,
    {
      name: 'host-programs-as-text',
      transform(code: string, id: string) {
        return /\.(sh|pl)$/.test(id) ? { code: `export default ${JSON.stringify(code)};`, map: null } : undefined;
      },
    },
  ],
  test: {
    include: ['libs/*/src/**/*.spec.ts', 'tools/*/src/**/*.spec.ts'],
    pool: 'threads',
  },
});
