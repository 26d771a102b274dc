// Code that runs in a page a command writes (cm-report's HTML) is bundled for the browser and imported as
// text: `import page from './page/client.ts?browser'` gives { js, css }, minified, with its npm
// dependencies inside, so the page needs no network. Used by scripts/build.mjs (esbuild) and vitest.config.ts.
import { build } from 'esbuild';
import { dirname, resolve } from 'node:path';

export async function bundleForBrowser(entry) {
  const out = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    outdir: '/browser-bundle',
    format: 'iife',
    platform: 'browser',
    target: 'chrome100',
    minify: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  const text = (ext) => out.outputFiles.filter((f) => f.path.endsWith(ext)).map((f) => f.text).join('\n');
  return { js: text('.js'), css: text('.css') };
}

const SUFFIX = /\?browser$/;

export const esbuildBrowserPlugin = {
  name: 'browser-bundle',
  setup(b) {
    b.onResolve({ filter: SUFFIX }, (a) => ({ path: resolve(a.resolveDir, a.path.replace(SUFFIX, '')), namespace: 'browser-bundle' }));
    b.onLoad({ filter: /.*/, namespace: 'browser-bundle' }, async (a) => ({
      contents: `export default ${JSON.stringify(await bundleForBrowser(a.path))};`,
      loader: 'js',
      resolveDir: dirname(a.path),
    }));
  },
};

export const viteBrowserPlugin = {
  name: 'browser-bundle',
  enforce: 'pre',
  resolveId(source, importer) {
    if (!SUFFIX.test(source) || !importer) return undefined;
    return `${resolve(dirname(importer), source.replace(SUFFIX, ''))}?browser`;
  },
  async load(id) {
    if (!SUFFIX.test(id)) return undefined;
    return `export default ${JSON.stringify(await bundleForBrowser(id.replace(SUFFIX, '')))};`;
  },
};
