import { createReadStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CmError, ExitCode, readRecords, RecordWriter } from '@cm/protocol';
import { EXIT_CODES, flag, intOpt, numOpt, str, strs, wantsRecords, type CommandIO, type DocoptArgs } from '@cm/cli';
import { parallelJoblog, reportHtml, RunLog, serveLive, timelineSvg, type LiveServer } from '@cm/report';

export const USAGE = `
cm-report: a picture of a run: one HTML report, a live page, the timeline, a GNU parallel joblog.

Reads a run's records, cm-exec's events on stdin or joblog files (cm-exec --joblog), and passes
every record on unchanged, so it sits anywhere in a pipe after cm-exec. At the end of its input it
writes what the options ask for. The report is one HTML file with its scripts, styles and data
inlined (no network at view time: it opens from a file:// URL, as a mail attachment, on a cluster
with no internet). It shows the run's header (run id, hosts, wall time, counts), a timeline (a lane
per host slot, a bar per attempt coloured by task, failures, retries, timeouts and hosts going down
marked, the job on hover), utilisation (running jobs against slots over time, in total and per host,
and the efficiency: job time / (slots x wall time)), per task the durations and outcomes, the values
against each parameter of a sweep (cm-reduce's value records when they come through, else the jobs'
numeric stdout or durations: mean and standard deviation), the plan's stages with its critical
path, a sortable table of the jobs and cm-reduce's values.

Lanes: a host has as many as its slots when host records are in the input (cm-hosts list --json),
else as many as it ran jobs at once. Up to 5,000 bars the timeline is SVG (an element per bar); above,
a canvas; above 720 lanes, a row per host with its bars drawn translucent. A retried attempt's times
are those of the events around it (started and retry events carry none).

Usage:
  cm-report [options] [<file>...]
  cm-report -h | --help

Options:
  -o FILE --output FILE   Write the HTML report to FILE.
  --svg FILE              Write the timeline alone to FILE (SVG, for papers).
  --parallel-joblog FILE  Write a joblog in GNU parallel's format (Seq, Host, Starttime, JobRuntime,
                          Send, Receive, Exitval, Signal, Command): a line per attempt that ran;
                          Command is the job's command when job records came through, else its id.
  --serve                 Serve the report live while the records pass through, on
                          http://127.0.0.1:PORT/ (the URL is printed on stderr); the page updates as
                          events arrive (server-sent events). Read-only: GET only. PORT is the first
                          argument after --serve when it is all digits (a free port when none).
  --listen ADDR           The address --serve listens on [default: 127.0.0.1].
  --linger SECS           After the input ended, go on serving the final page for SECS seconds, or
                          until Ctrl-C (stdout is closed at once, so the rest of the pipe ends)
                          [default: 0]. With 0, it ends once each open page fetched the final
                          data (at most 5 s).
  --title TEXT            The report's title (default: "cm run <run ids>").
  --command TEXT          The command line to show in the header (no record carries it).
  --json                  Pass the records through even on a terminal.

Common options:
  -h --help               Show this text.

On a terminal (without --json) the records are not printed; a line on stderr says what was written.

${EXIT_CODES}
  (cm-report itself: 0 when it wrote everything, whatever the jobs did)

Examples:
  cm-plan -f examples/sweep.cm | cm-exec | cm-report -o report.html | cm-reduce
                      # the run's report in report.html; the values go on to cm-reduce
  cm-plan -f examples/sweep.cm | cm-exec | cm-reduce | cm-report -o report.html >/dev/null
                      # with cm-reduce's values in the report
  cm-report -o report.html --svg timeline.svg run.joblog    # from cm-exec --joblog run.joblog
  cm-report --parallel-joblog parallel.log run.joblog && cut -f 1,2,7 parallel.log
                      # for scripts written against GNU parallel --joblog
  cm-plan -f examples/sweep.cm | cm-exec | cm-report --serve 8080 | cm-reduce
                      # open http://127.0.0.1:8080/ while the run goes on
`;

export interface Args {
  files: string[];
  output?: string;
  svg?: string;
  parallelJoblog?: string;
  serve?: { port: number; host: string; lingerSecs: number };
  title?: string;
  command?: string;
  json: boolean;
}

export function toArgs(a: DocoptArgs): Args {
  let files = strs(a, '<file>');
  let serve: Args['serve'];
  if (flag(a, '--serve')) {
    let port = 0;
    if (files.length > 0 && /^\d+$/.test(files[0]!)) {
      port = Number(files[0]);
      files = files.slice(1);
      if (port > 65535) throw new CmError(`--serve ${port}: not a port (0 to 65535)`, ExitCode.USAGE);
    }
    serve = { port, host: str(a, '--listen') ?? '127.0.0.1', lingerSecs: numOpt(a, '--linger') ?? 0 };
  } else {
    intOpt(a, '--linger');
  }
  const args: Args = {
    files,
    output: str(a, '--output'),
    svg: str(a, '--svg'),
    parallelJoblog: str(a, '--parallel-joblog'),
    serve,
    title: str(a, '--title'),
    command: str(a, '--command'),
    json: flag(a, '--json'),
  };
  if (!args.output && !args.svg && !args.parallelJoblog && !args.serve) {
    throw new CmError('nothing to write: give -o FILE, --svg FILE, --parallel-joblog FILE or --serve', ExitCode.USAGE);
  }
  return args;
}

export async function run(args: Args, io: CommandIO): Promise<number> {
  const writer = new RecordWriter(io.stdout);
  const records = wantsRecords(io, { json: args.json });
  const log = new RunLog({ title: args.title, command: args.command, live: args.serve !== undefined, now: args.serve ? Date.now : undefined });
  let server: LiveServer | undefined;
  if (args.serve) {
    try {
      server = await serveLive(() => log.snapshot(), { host: args.serve.host, port: args.serve.port });
    } catch (err) {
      throw new CmError(`--serve: cannot listen on ${args.serve.host}:${args.serve.port}: ${(err as Error).message}`, ExitCode.USAGE);
    }
    io.stderr.write(`cm-report: serving ${server.url}\n`);
  }
  let stopped = false;
  const sources = args.files.length > 0 ? args.files : ['-'];
  try {
    writer.onClose(() => {
      stopped = true;
    });
    for (const file of sources) {
      const input = file === '-' ? io.stdin : createReadStream(path.resolve(io.cwd, file));
      const source = file === '-' ? 'stdin' : file;
      for await (const { record, raw } of readRecords(input, { source })) {
        if (io.signal.aborted) break;
        if (records && !stopped) {
          const w = writer.writeLine(raw);
          if (w) await w;
        }
        log.add(record);
        server?.changed();
      }
      if (io.signal.aborted) break;
    }
    log.end();
    await writer.end();
    if (io.signal.aborted) throw io.signal.reason;
    const d = log.snapshot();
    const wrote: string[] = [];
    if (args.output) {
      await writeFile(path.resolve(io.cwd, args.output), reportHtml(d));
      wrote.push(args.output);
    }
    if (args.svg) {
      await writeFile(path.resolve(io.cwd, args.svg), `${timelineSvg(d)}\n`);
      wrote.push(args.svg);
    }
    if (args.parallelJoblog) {
      await writeFile(path.resolve(io.cwd, args.parallelJoblog), parallelJoblog(log.ranAttempts()));
      wrote.push(args.parallelJoblog);
    }
    if (!records && wrote.length > 0) {
      const c = d.counts;
      io.stderr.write(`cm-report: wrote ${wrote.join(', ')}: ${c.jobs} jobs, ${c.ok} ok, ${c.failed + c.timeout + c.gaveUp} failed, ${c.skipped} skipped\n`);
    }
    if (server) {
      await server.ended();
      if (args.serve!.lingerSecs > 0) {
        io.stderr.write(`cm-report: the run ended; serving the final page for ${args.serve!.lingerSecs} s (Ctrl-C ends)\n`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, args.serve!.lingerSecs * 1000);
          io.signal.addEventListener('abort', () => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    }
  } finally {
    await server?.close();
  }
  return ExitCode.OK;
}
