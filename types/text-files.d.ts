// Programs that run on hosts are real files (sh, perl), bundled into the commands as text:
// esbuild's text loader (scripts/build.mjs) and a vite plugin (vitest.config.ts) read them.
declare module '*.sh' {
  const text: string;
  export default text;
}
declare module '*.pl' {
  const text: string;
  export default text;
}
// A page's script, bundled for the browser with its dependencies (scripts/browser-bundle.mjs).
declare module '*?browser' {
  const bundle: { js: string; css: string };
  export default bundle;
}
