// The fate of every job in a run: node account.mjs JOBS EVENTS [JOBLOG]
// JOBS: the job records given to cm-exec; EVENTS: its stdout; JOBLOG: its --joblog (optional).
// Prints one line of key=value: jobs, final (jobs with a final event), lost (jobs with none),
// dup (jobs with more than one in EVENTS), logdup (more than one final line in JOBLOG), unknown (final
// events for ids never given), finished, failed, gaveup, skipped, replayed, reattached, loglines (final
// lines in JOBLOG), and the reasons seen.
import { readFileSync } from 'node:fs';

const [jobsPath, eventsPath, joblogPath] = process.argv.slice(2);
const lines = (p) => readFileSync(p, 'utf8').split('\n').filter((l) => l !== '');
const FINAL = new Set(['finished', 'gave-up', 'skipped']);

const ids = new Set();
for (const l of lines(jobsPath)) {
  const r = JSON.parse(l);
  if (r.kind === 'job') ids.add(r.id);
}
const count = new Map();
const tally = { finished: 0, failed: 0, gaveup: 0, skipped: 0, replayed: 0, reattached: 0 };
const reasons = new Map();
let unknown = 0;
let bad = 0;
for (const l of lines(eventsPath)) {
  let r;
  try {
    r = JSON.parse(l);
  } catch {
    bad++;
    continue;
  }
  if (r.kind !== 'event' || !FINAL.has(r.event)) continue;
  if (!ids.has(r.job)) unknown++;
  count.set(r.job, (count.get(r.job) ?? 0) + 1);
  if (r.replayed) tally.replayed++;
  if (r.reattached) tally.reattached++;
  if (r.event === 'finished') tally[r.exit === 0 ? 'finished' : 'failed']++;
  else if (r.event === 'gave-up') tally.gaveup++;
  else tally.skipped++;
  if (r.reason) reasons.set(r.reason, (reasons.get(r.reason) ?? 0) + 1);
}
let lost = 0;
let dup = 0;
for (const id of ids) {
  const n = count.get(id) ?? 0;
  if (n === 0) lost++;
  if (n > 1) dup++;
}
let logdup = 0;
let loglines = 0;
if (joblogPath) {
  const seen = new Map();
  for (const l of lines(joblogPath)) {
    const r = JSON.parse(l);
    // a joblog also holds a started line per job a dead cm-exec may leave running (--reattach-within)
    if (!FINAL.has(r.event)) continue;
    loglines++;
    seen.set(r.job, (seen.get(r.job) ?? 0) + 1);
  }
  for (const n of seen.values()) if (n > 1) logdup++;
}
const why = [...reasons].map(([k, v]) => `${k.replace(/\s+/g, '_')}:${v}`).join(',') || '-';
console.log(
  `jobs=${ids.size} final=${count.size - unknown} lost=${lost} dup=${dup} unknown=${unknown} badlines=${bad}` +
    ` finished=${tally.finished} failed=${tally.failed} gaveup=${tally.gaveup} skipped=${tally.skipped}` +
    ` replayed=${tally.replayed} reattached=${tally.reattached} loglines=${loglines} logdup=${logdup} reasons=${why}`,
);
