// What cm-fetch shows a person at a terminal instead of records: a line per job as its files land
// (or why they did not), and a closing line with the totals.
import path from 'node:path';
import { Writable } from 'node:stream';
import { formatBytes, plural, type FetchRecord } from '@cm/protocol';

/** Where `files` landed: the one file, or the folder that holds them all; relative to `cwd` when below it. */
function whereOf(files: string[], cwd: string): string {
  let where = files[0] as string;
  if (files.length > 1) {
    where = path.dirname(where);
    for (const f of files.slice(1)) while (!`${path.dirname(f)}/`.startsWith(`${where}/`)) where = path.dirname(where);
    where = `${where}/`;
  }
  const rel = path.relative(cwd, where);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? `${rel}${files.length > 1 ? '/' : ''}` : where;
}

/** One fetch record as the line a person reads. */
export function describeFetch(rec: FetchRecord, cwd: string): string {
  const host = rec.host ?? '-';
  if (!rec.ok) return `FAILED   ${rec.job}  ${host}  ${rec.error ?? 'failed'}`;
  const bytes = rec.files.reduce((n, f) => n + f.size, 0);
  if (rec.direction === 'in') return `staged   ${rec.job}  ${plural(rec.files.length, 'input')} (${formatBytes(bytes)})${rec.error ? `  (${rec.error})` : ''}`;
  const where = rec.files.length > 0 ? `  ${whereOf(rec.files.map((f) => f.path), cwd)}` : '';
  return `fetched  ${rec.job}  ${host}  ${plural(rec.files.length, 'file')}, ${formatBytes(bytes)}${where}${rec.to ? `  and ${rec.to}` : ''}`;
}

/**
 * A Writable that takes cm-fetch's NDJSON output and writes, to `out`, a line per fetch record (other
 * records are the next command's business: on a terminal there is none); `summary()` gives the totals.
 */
export class FetchLines extends Writable {
  private rest = '';
  private fetched = 0;
  private failed = 0;
  private files = 0;
  private bytes = 0;

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly cwd: string,
  ) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    const lines = (this.rest + chunk.toString('utf8')).split('\n');
    this.rest = lines.pop() ?? '';
    let text = '';
    for (const line of lines) {
      if (!line.includes('"fetch"')) continue;
      const rec = JSON.parse(line) as FetchRecord;
      if (rec.kind !== 'fetch') continue;
      if (rec.direction === 'out') {
        if (rec.ok) {
          this.fetched += 1;
          this.files += rec.files.length;
          this.bytes += rec.files.reduce((n, f) => n + f.size, 0);
        } else this.failed += 1;
      }
      text += `${describeFetch(rec, this.cwd)}\n`;
    }
    if (text === '') done();
    else this.out.write(text, () => done());
  }

  /** "12 jobs fetched (12 files, 3.4 KiB), 1 failed", or undefined when nothing was fetched. */
  summary(): string | undefined {
    if (this.fetched + this.failed === 0) return undefined;
    return `${plural(this.fetched, 'job')} fetched (${plural(this.files, 'file')}, ${formatBytes(this.bytes)})${this.failed > 0 ? `, ${this.failed} failed` : ''}`;
  }
}
