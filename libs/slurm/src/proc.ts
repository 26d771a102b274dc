// Slurm's commands as plain subprocesses, and the checks that Slurm is there and its controller answers.
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { CmError, ExitCode } from '@cm/protocol';

export interface CmdResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export function runCmd(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<CmdResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export function onPath(cmd: string, env: NodeJS.ProcessEnv): boolean {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

export const SLURM_COMMANDS = ['salloc', 'srun', 'sbatch', 'squeue', 'scancel', 'scontrol', 'sinfo'];

/** Slurm's last error line, without the program prefix: what a person needs to read. */
export function slurmMessage(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^(salloc|sbatch): (Pending|job \d+ queued|Granted)/.test(l));
  const errors = lines.filter((l) => /error|fatal|denied|invalid/i.test(l));
  const last = (errors.length ? errors : lines).at(-1) ?? 'no message';
  return last.replace(/^(salloc|sbatch|srun|squeue|scancel|scontrol|sinfo): (error: |fatal: )?/, '');
}

/** Exit 4 (with a clear message) when Slurm is not installed or its controller does not answer. */
export async function preflight(env: NodeJS.ProcessEnv): Promise<void> {
  const missing = SLURM_COMMANDS.filter((c) => !onPath(c, env));
  if (missing.length > 0) {
    throw new CmError(
      `Slurm is not installed here: ${missing.join(', ')} not found on PATH (install slurm-wlm, or use the ssh engine)`,
      ExitCode.ENVIRONMENT,
    );
  }
  let res: CmdResult;
  try {
    res = await runCmd('scontrol', ['ping'], env, 30_000);
  } catch (err) {
    throw new CmError(`cannot run scontrol: ${(err as Error).message}`, ExitCode.ENVIRONMENT);
  }
  if (res.code !== 0 || !/is UP/.test(res.stdout)) {
    const why = res.stdout.trim().split('\n')[0] || slurmMessage(res.stderr);
    throw new CmError(`the Slurm controller does not answer (scontrol ping: ${why})`, ExitCode.ENVIRONMENT);
  }
}

/** Slurm's time display ([D-]H:M:S, M:S, or UNLIMITED) in seconds; undefined when unlimited. */
export function parseSlurmTime(text: string): number | undefined {
  const m = /^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$/.exec(text.trim());
  if (!m) return undefined;
  const parts = [m[2], m[3], m[4]].filter((x) => x !== undefined).map(Number);
  while (parts.length < 3) parts.unshift(0);
  return Number(m[1] ?? 0) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2];
}
