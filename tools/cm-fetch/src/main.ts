import { createReadStream } from 'node:fs';
import path from 'node:path';
import { EXIT_CODES, flag, intOpt, str, wantsRecords, type CommandIO, type DocoptArgs } from '@cm/cli';
import { formatTable, RecordWriter } from '@cm/protocol';
import { FetchLines, storeCommand, transferStream, type TransferOptions } from '@cm/transfer';

export const USAGE = `
cm-fetch: copy job outputs back from the hosts as jobs finish (and stage inputs in).

Follows the events of cm-exec on stdin. For each \`finished\` event with exit 0 that declares
\`outputs\` or a \`result\` file, copies those files (relative to the job's \`workdir\`) back into
the results tree and prints a \`fetch\` record: direction "out", the files with local path, size
and sha256, \`result\` = local path of the job's result file, \`params\` = the job's parameters.
Every record is passed on at once, in order; each fetch record follows when its transfer is done,
while other jobs still run.

Where files land: a job with parameters (a sweep's run) in <dir>/<run>/<task>/<name>=<value>/...,
in the plan's order (results/<run>/bench/size=4000/rep=3/out.txt), so a value's files are found by
their path; a job without, or whose values are not plain names (/, spaces, quotes, ...), in
<dir>/<run>/<job>/. Nothing is ever written outside <dir>.

Host hygiene: once a job's files have arrived and match the sha256 its host computed, its folder
(.cm/runs/<run>/<job>) is removed from the host, and the run's folder once empty. It stays with
--keep-workdirs, when the event says "kept": true (cm-exec --keep-workdirs), with --no-verify or on
a host without sha256sum (nothing verified), and for a fetch that failed. A host gone by then
leaves the folder with a warning on stderr; the fetch record stays ok (its files are verified).
Folders left behind go with \`cm-exec --clean\`. An event replayed by \`cm-exec --resume\` whose
folder is gone gets its fetch record from the files already in the results tree.

One ControlMaster connection per host: behind a cm-exec of the same run, the one cm-exec holds
(a host is logged in to once; its master serves cm-fetch past cm-exec's end), else one that
cm-fetch opens in its own private directory when the first job starts there (a \`started\` event),
and closes at exit (AES-GCM first where this CPU has AES instructions, as cm-exec's; local hosts:
\`sh -c\` in $HOME). Over it, one perl process per host for the
whole run (cm-fetch's server) sends each batch
as one tar archive, hashing each file in the same read, and removes the folders: no ssh session
and no process per batch. A file of 16 MiB or more only has its name and size in that archive: it
comes on a session of its own whose output is the local file itself (the ssh master writes it
there; cm-fetch hashes it as it grows, the host's openssl at the same time). Where the host has no perl (or no Digest::SHA), or CM_REMOTE_LOOP=sh,
each transfer is one \`ssh host 'tar -cf - ...'\` instead, up to 8 at once per host.
A job is fetched as soon as it finishes when its host is free; jobs that finish while it is busy
wait and then leave together, up to 64 of one host in one archive. CM_TRACE=2 prints a line per
batch on stderr (when it leaves, when its files are home).
The archive is read by cm-fetch itself: a name that is absolute or holds \`..\`, a symlink, a device
or fifo is refused (an error in the fetch record, ok: false) and never written; the job's other
files are still fetched. Files are written to temp names, checked against the size in the
archive and the sha256 the host computes (its server, or sha256sum; openssl for files of 4 MiB
and more where the host has it; --no-verify skips it), then renamed.
A broken connection, cut stream or checksum mismatch is retried (--retries), then reported.
A local write error (a full disk, EIO, permissions) fails the transfer at once, not retried:
its temp files are removed, the remote tar is stopped, and each job of that archive gets an
ok: false fetch record with the error (exit 1); the files stay on the host for a later fetch.

--stage-in runs in front of cm-exec instead: for each \`job\` record with \`inputs\` (local files or
directories), copies each input once per host into ~/.cm/stage/<sha256>/<name> on every host the
job may run on (its \`host\` pin, else the whole inventory), then passes the job on with
"staged": true and a command that first symlinks the inputs into the job's directory, preceded by
a fetch record (direction "in"); cm-exec fails a job with inputs that was not staged. A host that cannot be reached is named in the record's error (ok stays true while some
host has the inputs; a job that lands on a host without them exits 125 saying so). Jobs sharing
an input share one copy per host; inputs are shared, so treat them as read-only. Records keep
their order: a job waits for its inputs, later records wait for it. Stage-in lives here, not in
cm-exec, so the transfer code stays in one library (@cm/transfer) and cm-exec stays a scheduler.

Results kept elsewhere: with --to URL each job's files, once fetched and verified here, are
also stored at URL, each checked against its sha256 there, then the job's fetch record is stored
beside them (URL/.cm/fetch/<run>/<job>.json): the records are the location's catalogue. Each
file in the record gets "provider" and "location" (its URL); "path" stays the local copy, which
cm-reduce reads. A file goes in under a temporary name (Azure: uncommitted blocks; S3: one PUT)
and takes its name only once whole and checked; a failed store is retried (--retries), then the
record is ok: false and nothing of that job is listed at URL.
  file:DIR               a folder (file:///abs/path or file:rel/path)
  ssh://HOST/PATH        a host of the inventory (/~/PATH: below its login directory)
  az://CONTAINER/PREFIX  Azure Blob Storage; the account from AZURE_STORAGE_CONNECTION_STRING
  s3://BUCKET/PREFIX     S3; credentials, region from the AWS SDK's usual chain (AWS_*,
                         ~/.aws); AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL for another server
A URL holds no user, password, port or query: credentials come from the environment only.
ls lists a location's records, get brings its files back below --dir (checked against their
sha256), rm removes them and their records.

Usage:
  cm-fetch [options] [<file>]
  cm-fetch --stage-in [options] [<file>]
  cm-fetch ls [options] <url>
  cm-fetch get [options] <url>
  cm-fetch rm [options] <url>
  cm-fetch -h | --help

Options:
  --dir DIR          Root of the local results tree [default: results].
  --transfers N      At most N transfers at once (one per host with its server, else
                     at most 8 per host) [default: 4].
  --retries N        Retry a failed transfer N times before reporting it [default: 2].
  --no-verify        Check sizes only; skip the sha256sum on the host (and leave the
                     job folders there: nothing was verified).
  --keep-workdirs    Leave each job's folder on its host after its files are fetched.
  --stage-in         Stage job inputs to the hosts (in front of cm-exec).
  --to URL           Also store each job's fetched files, and its record, at URL.
  --from URL         With --stage-in: take each input (by its file name) from URL.
  --run RUN          ls, get, rm: only the records of that run.
  --json             NDJSON records even on a terminal (there, else: a line per job as its
                     files land, and the totals on stderr; ls: a table).
  -i --inventory FILE  Inventory file (else $CM_INVENTORY, ./cm.yaml, ...; see cm-hosts).

Common options:
  -h --help          Show this text.

${EXIT_CODES}
  (1 here: some transfer failed or was refused; its fetch record says why)

Examples:
  cm-plan -f examples/sweep.cm | cm-exec | cm-fetch --dir results | cm-reduce
  printf '@result(n.txt)\\ndef w(i=1..4):\\n    echo $i > n.txt\\n+w\\n' | cm-plan - | cm-exec | cm-fetch | cm-reduce
  cm-plan -f examples/sweep.cm | cm-fetch --stage-in | cm-exec | cm-fetch | cm-reduce --partial
  cm-plan -f examples/bench.cm | cm-fetch --stage-in | cm-exec | cm-fetch --to az://results/bench | cm-reduce
  cm-fetch ls az://results/bench
  cm-fetch get --dir copy --run bench1 ssh://th3/~/results
  printf '@outputs(a.txt)\\ndef w(i=1..4):\\n    echo $i > a.txt\\nw\\n' | cm-plan - | cm-exec --keep-workdirs | cm-fetch --transfers 8 | grep '"kind":"fetch"'
`;

export interface Args extends Omit<TransferOptions, 'env' | 'cwd'> {
  /** the input (default stdin) */
  file?: string;
  /** ls, get, rm on a location */
  op?: { name: 'ls' | 'get' | 'rm'; url: string; run?: string; json: boolean };
  json: boolean;
}

export function toArgs(a: DocoptArgs): Args {
  const file = str(a, '<file>');
  const name = (['ls', 'get', 'rm'] as const).find((n) => flag(a, n));
  return {
    op: name ? { name, url: str(a, '<url>') as string, run: str(a, '--run'), json: flag(a, '--json') } : undefined,
    to: str(a, '--to'),
    from: str(a, '--from'),
    file: file === '-' ? undefined : file,
    dir: str(a, '--dir') ?? 'results',
    transfers: intOpt(a, '--transfers', { min: 1 }) ?? 4,
    retries: intOpt(a, '--retries', { min: 0 }) ?? 2,
    verify: !flag(a, '--no-verify'),
    stageIn: flag(a, '--stage-in'),
    keepWorkdirs: flag(a, '--keep-workdirs'),
    inventory: str(a, '--inventory'),
    json: flag(a, '--json'),
  };
}

export async function run(args: Args, io: CommandIO): Promise<number> {
  if (args.op) return storeOp(args, args.op, io);
  const input = args.file ? createReadStream(path.resolve(io.cwd, args.file)) : io.stdin;
  // a person at a terminal reads a line per job; records are for the next command of a pipe
  const lines = wantsRecords(io, { json: args.json }) ? undefined : new FetchLines(io.stdout, io.cwd);
  const code = await transferStream({ ...args, env: io.env, cwd: io.cwd }, { ...io, stdout: lines ?? io.stdout, input, source: args.file ?? 'stdin' });
  if (lines) {
    await new Promise<void>((resolve) => lines.end(resolve));
    const totals = lines.summary();
    if (totals !== undefined) io.stderr.write(`cm-fetch: ${totals}\n`);
  }
  return code;
}

async function storeOp(args: Args, op: NonNullable<Args['op']>, io: CommandIO): Promise<number> {
  const records = op.name !== 'ls' || wantsRecords(io, { json: op.json });
  const writer = new RecordWriter(io.stdout);
  const rows: string[][] = [];
  const code = await storeCommand(
    { op: op.name, url: op.url, run: op.run, dir: args.dir, retries: args.retries, inventory: args.inventory, env: io.env, cwd: io.cwd },
    {
      emit: async (rec) => {
        if (records) await writer.write(rec);
        else for (const f of rec.files) rows.push([rec.run ?? '', rec.job, String(f.size), f.sha256, f.location ?? f.path]);
      },
      warn: (m) => io.stderr.write(`cm-fetch: ${m}\n`),
      signal: io.signal,
    },
  );
  if (!records) io.stdout.write(formatTable(['RUN', 'JOB', 'SIZE', 'SHA256', 'LOCATION'], rows));
  await writer.end();
  return code;
}
