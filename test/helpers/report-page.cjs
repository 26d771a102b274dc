#!/usr/bin/env node
// Opens a cm-report page in Debian's headless chromium (playwright-core, the system browser) and prints
// what a test checks as one JSON line: console errors, the timeline's lanes and bars, the failed bars,
// the counts, and how long the page took. Usage:
//   report-page.cjs URL [--screenshot FILE] [--until-done N] [--runs N] [--timeout SECS]
// --until-done N: print the facts once the page is drawn (a line), then wait until the page's count of
// ended jobs reaches N (a live page) and print them again. --runs N: load the page N times (a fresh
// browser context each) and print each load's timings.
const { chromium } = require('playwright-core');

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const url = argv[0];
const screenshot = opt('--screenshot');
const untilDone = opt('--until-done') === undefined ? undefined : Number(opt('--until-done'));
const runs = Number(opt('--runs', '1'));
const timeoutMs = Number(opt('--timeout', '60')) * 1000;
const browserPath = process.env.CM_CHROMIUM ?? '/usr/bin/chromium';

async function facts(page) {
  return page.evaluate(() => {
    const q = (s) => document.querySelectorAll(s);
    const canvas = document.querySelector('canvas.timeline');
    const mark = (n) => performance.getEntriesByName(n)[0]?.startTime ?? null;
    const paint = performance.getEntriesByType('paint').find((p) => p.name === 'first-contentful-paint');
    return {
      title: document.title,
      lanes: canvas ? Number(canvas.dataset.lanes) : q('svg.timeline g.lane').length,
      laneHosts: [...q('svg.timeline g.lane')].map((g) => `${g.dataset.host}/${g.dataset.slot}`),
      bars: canvas ? Number(canvas.dataset.bars) : q('svg.timeline rect.bar').length,
      canvas: canvas ? { ...canvas.dataset } : null,
      failed: [...q('svg.timeline rect.bar')].filter((r) => r.dataset.status !== 'ok' && r.dataset.status !== 'running').map((r) => `${r.dataset.job}:${r.dataset.status}`),
      counts: Object.fromEntries([...q('.count')].map((c) => [c.dataset.kind, Number(c.dataset.n)])),
      done: Number(document.querySelector('#counts')?.dataset.done ?? -1),
      live: document.querySelector('#live')?.textContent ?? null,
      rows: q('#jobs-table tbody tr').length,
      failedRows: [...q('#jobs-table tbody tr')].filter((r) => r.dataset.status === 'failed').map((r) => r.dataset.job),
      values: q('#values-table tbody tr').length,
      sweeps: q('.sweep').length,
      stages: q('.plan g.stage').length,
      critical: document.querySelector('#critical')?.textContent ?? null,
      charts: q('.uplot').length,
      ms: { fcp: paint?.startTime ?? null, timelineDrawn: mark('cm-timeline'), timelinePainted: mark('cm-timeline-painted') },
    };
  });
}

(async () => {
  const browser = await chromium.launch({ executablePath: browserPath, args: ['--no-sandbox', '--disable-gpu'], timeout: timeoutMs });
  const deadline = Date.now() + timeoutMs;
  try {
    for (let r = 0; r < runs; r++) {
      const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
      const page = await context.newPage();
      const errors = [];
      page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(url, { timeout: timeoutMs });
      await page.waitForSelector('body[data-rendered]', { timeout: Math.max(1, deadline - Date.now()) });
      console.log(JSON.stringify({ ...(await facts(page)), errors }));
      if (untilDone !== undefined) {
        await page.waitForFunction((n) => Number(document.querySelector('#counts')?.dataset.done ?? -1) >= n, untilDone, { timeout: Math.max(1, deadline - Date.now()), polling: 100 });
        console.log(JSON.stringify({ ...(await facts(page)), errors }));
      }
      if (screenshot && r === runs - 1) await page.screenshot({ path: screenshot, fullPage: true });
      await context.close();
    }
  } finally {
    await browser.close();
  }
})().catch((err) => {
  console.error(`report-page: ${err.stack ?? err}`);
  process.exitCode = 1;
});
