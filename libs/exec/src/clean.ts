// cm-exec --clean: removes run folders (.cm/runs/<run>) on every selected host at once, a run's or
// those older than an age, and tells per host what went and how much space it held. For the folders
// a run left behind: jobs whose outputs were never fetched, --keep-workdirs, runs that were killed.
import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { CmError, ExitCode, formatBytes, formatTable, plural, RecordWriter, shQuote, type CleanRecord, type HostRecord } from '@cm/protocol';
import { sshArgs } from '@cm/ssh';
import CLEAN_SH from './clean.sh';

const CLEAN = CLEAN_SH.replace(/^\s*#.*\n/gm, '');

/** hosts cleaned at once: one ssh each, no ControlMaster (one command per host) */
const AT_ONCE = 32;

const AGE_UNITS: Record<string, number> = { m: 1, h: 60, d: 24 * 60 };

/** `30m`, `12h`, `7d` -> minutes (find's -mmin unit). */
export function parseAge(text: string): number {
  const m = /^([1-9][0-9]*)([mhd])$/.exec(text);
  if (!m) throw new CmError(`--older-than ${JSON.stringify(text)}: give a number and m, h or d (30m, 12h, 7d)`, ExitCode.USAGE);
  return Number(m[1]) * (AGE_UNITS[m[2] as string] as number);
}

/** The command the login shell runs: clean.sh with the run and the age in minutes ('' for any). */
export function cleanScript(run: string | undefined, minutes: number | undefined): string {
  return `set -- ${shQuote(run ?? '')} ${shQuote(minutes === undefined ? '' : String(minutes))}\n${CLEAN}`;
}

/** What clean.sh printed and how it ended, as the host's record. */
export function cleanRecord(host: string, code: number | null, stdout: string, stderr: string, viaSsh: boolean): CleanRecord {
  const runs: CleanRecord['runs'] = [];
  for (const m of stdout.matchAll(/^cm-removed (\d+) (\S+)$/gm)) runs.push({ run: m[2] as string, bytes: Number(m[1]) });
  const rec: CleanRecord = { kind: 'clean', v: 1, host, ok: code === 0, runs, bytes: runs.reduce((n, r) => n + r.bytes, 0) };
  if (code !== 0) {
    const said = stderr.split('\n').map((l) => l.replace(/\r$/, '').trim()).filter(Boolean);
    const why = viaSsh && code === 255 ? 'cannot connect' : `exit ${code ?? 'by signal'}`;
    rec.error = said.length > 0 ? `${why}: ${said.slice(-3).join(' / ')}` : why;
  }
  return rec;
}


export interface CleanOptions {
  hosts: HostRecord[];
  /** only this run's folder */
  run?: string;
  /** only folders in which nothing changed for this many minutes */
  olderThan?: number;
  /** login directory of local hosts */
  home: string;
  /** NDJSON records (a pipe, --json) or a table for people */
  records: boolean;
  sshConfig?: string;
  connectTimeout?: number;
  strictHostKeys?: boolean;
}

export interface CleanIO {
  stdout: Writable;
  stderr: Writable;
  signal: AbortSignal;
}

function cleanHost(host: HostRecord, script: string, opts: CleanOptions, signal: AbortSignal): Promise<CleanRecord> {
  return new Promise((resolve) => {
    let file = 'sh';
    let args = ['-c', script];
    if (!host.local) {
      file = 'ssh';
      try {
        // LogLevel=ERROR: no "Permanently added" notes in the host's error
        args = [
          '-o',
          'LogLevel=ERROR',
          ...sshArgs(host, { configFile: opts.sshConfig, connectTimeout: opts.connectTimeout, hostKeyChecking: opts.strictHostKeys ? 'yes' : 'accept-new' }),
          script,
        ];
      } catch (err) {
        resolve({ kind: 'clean', v: 1, host: host.name, ok: false, runs: [], bytes: 0, error: (err as Error).message });
        return;
      }
    }
    const child = spawn(file, args, { cwd: host.local ? opts.home : undefined, stdio: ['ignore', 'pipe', 'pipe'], signal });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => {
      if (err.length < 16384) err += c.toString('utf8');
    });
    child.on('error', (e) => {
      err += e.message;
    });
    child.on('close', (code) => resolve(cleanRecord(host.name, code, out, err, !host.local)));
  });
}

/** Cleans every host, AT_ONCE at a time; exit 1 when a host failed. */
export async function cleanRuns(opts: CleanOptions, io: CleanIO): Promise<number> {
  const hosts = opts.hosts.filter((h) => !h.slurm);
  for (const h of opts.hosts) if (h.slurm) io.stderr.write(`cm-exec: ${h.name} is a Slurm cluster: --clean does not reach its nodes\n`);
  if (hosts.length === 0) throw new CmError('no hosts selected', ExitCode.INPUT);
  const script = cleanScript(opts.run, opts.olderThan);
  const writer = new RecordWriter(io.stdout);
  const done: CleanRecord[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < hosts.length && !io.signal.aborted) {
      const rec = await cleanHost(hosts[next++] as HostRecord, script, opts, io.signal);
      done.push(rec);
      if (opts.records) await writer.write(rec);
      if (!rec.ok) io.stderr.write(`cm-exec: ${rec.host}: ${rec.error}\n`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(AT_ONCE, hosts.length) }, worker));
  if (io.signal.aborted) throw io.signal.reason;
  if (!opts.records) {
    const order = new Map(hosts.map((h, i) => [h.name, i]));
    done.sort((a, b) => (order.get(a.host) as number) - (order.get(b.host) as number));
    const rows = done.map((r) => [r.host, String(r.runs.length), formatBytes(r.bytes), r.ok ? r.runs.map((x) => x.run).join(' ') : `failed: ${r.error}`]);
    const total = done.reduce((n, r) => n + r.bytes, 0);
    io.stdout.write(formatTable(['HOST', 'FOLDERS', 'SIZE', 'RUNS'], rows));
    const folders = done.reduce((n, r) => n + r.runs.length, 0);
    io.stdout.write(`${plural(folders, 'run folder')} removed (${formatBytes(total)}) on ${plural(done.length, 'host')}\n`);
  }
  await writer.end();
  return done.some((r) => !r.ok) ? ExitCode.FAILURES : ExitCode.OK;
}
