import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { CmError, ExitCode } from '@cm/protocol';
import { findErrorExit, parseRow, uiText, type MachineRow, type VagrantErrorExit } from './machine-readable';

export interface VagrantResult {
  code: number | null;
  rows: MachineRow[];
  /** stdout as printed (machine-readable rows and any human text between them) */
  stdout: string;
  stderr: string;
  error?: VagrantErrorExit;
}

export interface VagrantRunner {
  /** runs `vagrant --machine-readable ...args`; `progress` gets Vagrant's messages for people as they come */
  run(args: string[], opts?: { progress?: Writable }): Promise<VagrantResult>;
}

/** A PATH lookup, as execvp does it. */
export function onPath(program: string, env: NodeJS.ProcessEnv): boolean {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(path.join(dir, program), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

export const VAGRANT_MISSING = 'vagrant is not installed (not found on PATH); install it (Debian: apt-get install --no-install-recommends vagrant) or fix PATH';

/** The real `vagrant`, as a subprocess in the folder of the Vagrantfile. */
export function vagrantRunner(opts: { cwd: string; env: NodeJS.ProcessEnv; signal?: AbortSignal; program?: string }): VagrantRunner {
  const program = opts.program ?? 'vagrant';
  // Vagrant otherwise phones home for version and box-update checks before every command.
  const env = { VAGRANT_CHECKPOINT_DISABLE: '1', VAGRANT_BOX_UPDATE_CHECK_DISABLE: '1', ...opts.env };
  return {
    run(args, { progress } = {}) {
      return new Promise((resolve, reject) => {
        const child = spawn(program, ['--machine-readable', ...args], {
          cwd: opts.cwd,
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
          signal: opts.signal,
          // Vagrant treats SIGINT as Ctrl-C: it stops the machine action cleanly.
          killSignal: 'SIGINT',
        });
        const rows: MachineRow[] = [];
        let stdout = '';
        let stderr = '';
        let pending = '';
        const onLine = (line: string): void => {
          const row = parseRow(line);
          if (!row) return;
          rows.push(row);
          const text = uiText(row);
          if (progress && text !== undefined && text.trim() !== '') {
            // The text already carries Vagrant's own `==> node1:` prefix.
            progress.write(`${text.replace(/\n+$/, '')}\n`);
          }
        };
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (chunk: string) => {
          stdout += chunk;
          pending += chunk;
          let nl: number;
          while ((nl = pending.indexOf('\n')) >= 0) {
            onLine(pending.slice(0, nl));
            pending = pending.slice(nl + 1);
          }
        });
        child.stderr.setEncoding('utf8');
        child.stderr.on('data', (chunk: string) => {
          stderr += chunk;
          progress?.write(chunk);
        });
        child.on('error', (err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') reject(new CmError(VAGRANT_MISSING, ExitCode.ENVIRONMENT));
          else if (err.name === 'AbortError') reject(opts.signal?.reason ?? err);
          else reject(new CmError(`cannot run vagrant: ${err.message}`, ExitCode.ENVIRONMENT));
        });
        child.on('close', (code) => {
          if (pending !== '') onLine(pending);
          if (opts.signal?.aborted) {
            reject(opts.signal.reason);
            return;
          }
          resolve({ code, rows, stdout, stderr, error: findErrorExit(rows) });
        });
      });
    },
  };
}
