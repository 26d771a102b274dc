// The report as one HTML file: styles, script (uPlot inside) and the run's data inlined, so it opens
// from a file:// URL, as a mail attachment or on a cluster with no internet.
import { gzipSync } from 'node:zlib';
import page from './page/client.ts?browser';
import { pack, type ReportData } from './data';
import { escapeXml } from './timeline';

/** `</script` inside an inlined script would end it early. */
const inScript = (s: string) => s.replace(/<\/(script)/gi, '<\\/$1');

export function encodeData(d: ReportData): string {
  return gzipSync(JSON.stringify(pack(d)), { level: 9 }).toString('base64');
}

export function reportHtml(d: ReportData): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeXml(d.title)}</title>
<style>${page.css.replace(/<\/(style)/gi, '<\\/$1')}</style>
</head><body>
<div id="header"><h1>${escapeXml(d.title)}</h1></div>
<h2>Timeline</h2><div class="note">One lane per host slot, one bar per attempt, coloured by task; hover a bar for the job.</div><div id="timeline"></div>
<h2>Utilisation</h2><div id="utilisation"></div>
<h2>Per task</h2><div id="tasks"></div>
<h2>Parameters</h2><div id="sweeps"></div>
<h2>Plan</h2><div id="plan" class="plan"></div>
<h2>Jobs</h2><div id="jobs"></div>
<h2>Values</h2><div id="values"></div>
<div id="tip"></div>
<script type="application/octet-stream" id="cm-data">${encodeData(d)}</script>
<script>${inScript(page.js)}</script>
</body></html>
`;
}
