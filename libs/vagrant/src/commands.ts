// The cm-vagrant subcommands: Vagrant does the machines, this keeps the Vagrantfile's settings block and
// the inventory in step with what Vagrant reports. Every change to the inventory is made from
// `vagrant status` after the action, so a failed or interrupted action still leaves it true.
import { readFile, writeFile, mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { CmError, ExitCode, type HostRecord, type MachineRecord, type RecordWriter } from '@cm/protocol';
import type { InventoryFile } from '@cm/inventory';
import { describeState, parseStatus, RUNNING, type MachineState } from './status';
import { hostFields, hostRecord, renderSshConfig, sshConfigFromOutput, type SshConfigEntry } from './ssh-config';
import { machineNames, MACHINE_PREFIX, parseSettings, scale, updateVagrantfile, type VagrantSettings } from './vagrantfile';
import { chooseProvider, PROVIDER_PROBES } from './provider';
import { VagrantExit, oneLine, vagrantError } from './errors';
import type { VagrantResult, VagrantRunner } from './runner';

export interface VagrantContext {
  /** folder of the Vagrantfile */
  dir: string;
  vagrant: VagrantRunner;
  writer: RecordWriter;
  stdout: Writable;
  stderr: Writable;
  /** where Vagrant's progress goes (stderr, or nowhere with --quiet) */
  progress?: Writable;
  env: NodeJS.ProcessEnv;
  /** opens the inventory for editing (created when missing) */
  openInventory: () => Promise<InventoryFile>;
  /** path of the Vagrantfile copied for a new --dir */
  templatePath: string;
  installed: (program: string) => boolean;
  tag: string;
  /** slots per machine; default: CPUs per VM */
  slots?: number;
}

export interface UpOptions {
  count: number;
  box?: string;
  provider?: string;
  memory?: number;
  cpus?: number;
  prefix: string;
  /** let Vagrant download a box that is not installed */
  download: boolean;
}

const warn = (ctx: VagrantContext, msg: string): void => {
  ctx.stderr.write(`cm-vagrant: ${msg}\n`);
};

function vagrantfilePath(ctx: VagrantContext): string {
  return path.join(ctx.dir, 'Vagrantfile');
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CmError(`${file}: cannot read: ${(err as Error).message}`, ExitCode.INPUT);
  }
}

async function loadSettings(ctx: VagrantContext): Promise<{ text: string; settings: VagrantSettings }> {
  const file = vagrantfilePath(ctx);
  const text = await readText(file);
  if (text === undefined) throw new CmError(`no Vagrantfile in ${ctx.dir}: start machines with cm-vagrant up N first (or pass --dir)`, ExitCode.INPUT);
  return { text, settings: parseSettings(text, file) };
}

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.cm-${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

function check(command: string, res: VagrantResult): void {
  if (res.error) throw vagrantError(command, res.error);
  if (res.code !== 0) {
    const said = oneLine(res.stderr).slice(0, 400);
    throw new CmError(`vagrant ${command} failed with exit code ${res.code}${said ? `: ${said}` : ''}`, VagrantExit.VAGRANT_FAILED);
  }
}

async function status(ctx: VagrantContext, names: string[]): Promise<MachineState[]> {
  const res = await ctx.vagrant.run(['status', ...names]);
  check('status', res);
  return parseStatus(res.rows);
}

/** ssh-config of machines known to be running; those Vagrant still refuses are returned as missing. */
async function sshConfig(ctx: VagrantContext, names: string[]): Promise<{ entries: SshConfigEntry[]; missing: string[] }> {
  if (names.length === 0) return { entries: [], missing: [] };
  const res = await ctx.vagrant.run(['ssh-config', ...names]);
  // Vagrant stops at the first machine that is not ready, after printing the ones before it.
  if (res.error && !/SSHNotReady$/.test(res.error.errorClass)) throw vagrantError('ssh-config', res.error);
  const entries = sshConfigFromOutput(res.rows, res.stdout).filter((e) => names.includes(e.name));
  const got = new Set(entries.map((e) => e.name));
  return { entries, missing: names.filter((n) => !got.has(n)) };
}

function machineRecord(ctx: VagrantContext, m: MachineState): MachineRecord {
  const rec: MachineRecord = { kind: 'machine', v: 1, name: m.name, state: m.state, dir: ctx.dir };
  if (m.provider) rec.provider = m.provider;
  return rec;
}

function selectNames(settings: VagrantSettings, names: string[]): string[] {
  if (names.length === 0) return settings.nodes;
  const unknown = names.filter((n) => !settings.nodes.includes(n));
  if (unknown.length > 0) throw new CmError(`no machine ${unknown.join(', ')} in the Vagrantfile (machines: ${settings.nodes.join(' ') || 'none'})`, ExitCode.USAGE);
  return names;
}

/**
 * Brings the inventory in line with Vagrant for `names`: running machines are (re)written from their
 * ssh-config, machines that no longer exist are removed, stopped ones are left as they were.
 * Returns the host records written and the running machines Vagrant gave no ssh-config for.
 */
async function syncInventory(ctx: VagrantContext, settings: VagrantSettings, states: MachineState[]): Promise<{ hosts: HostRecord[]; missing: string[] }> {
  const running = states.filter((m) => m.state === RUNNING).map((m) => m.name);
  const gone = states.filter((m) => m.state === 'not_created').map((m) => m.name);
  const { entries, missing } = await sshConfig(ctx, running);
  const inv = await ctx.openInventory();
  const present = new Set(inv.hostNames());
  const hosts: HostRecord[] = [];
  for (const e of entries) {
    const fields = hostFields(e, { slots: ctx.slots ?? settings.cpus, tags: [ctx.tag] });
    inv.setHost(e.name, fields);
    hosts.push(hostRecord(e.name, fields));
  }
  let changed = entries.length > 0;
  for (const name of gone) if (present.has(name)) changed = inv.removeHost(name) || changed;
  if (changed) await inv.save();
  const view = inv.toInventory();
  // The inventory's view has its defaults applied (user, options), which is what cm-exec will use.
  return { hosts: hosts.map((h) => view.get(h.name) ?? h), missing };
}

export async function up(ctx: VagrantContext, opts: UpOptions): Promise<number> {
  if (!MACHINE_PREFIX.test(opts.prefix)) throw new CmError(`--prefix must be a letter then letters, digits or -, got ${JSON.stringify(opts.prefix)}`, ExitCode.USAGE);
  const file = vagrantfilePath(ctx);
  let text = await readText(file);
  let fresh = false;
  if (text === undefined) {
    text = await readText(ctx.templatePath);
    if (text === undefined) throw new CmError(`the Vagrantfile template ${ctx.templatePath} is missing`, ExitCode.ENVIRONMENT);
    fresh = true;
  }
  const current = parseSettings(text, fresh ? ctx.templatePath : file);
  if (fresh) current.nodes = [];
  const provider = chooseProvider({ flag: opts.provider, current: current.provider, env: ctx.env, installed: ctx.installed });
  const probe = PROVIDER_PROBES.find((p) => p.provider === provider);
  if (probe && !ctx.installed(probe.program)) {
    throw new CmError(`provider ${provider} is not usable here: ${probe.program} not found on PATH (install ${probe.hint}, or pick another --provider)`, ExitCode.ENVIRONMENT);
  }
  const box = opts.box ?? current.box;
  const { nodes, removed } = scale(current.nodes, opts.prefix, opts.count);
  const settings: VagrantSettings = {
    box,
    provider,
    memory: opts.memory ?? current.memory,
    cpus: opts.cpus ?? current.cpus,
    nodes,
  };
  const mine = machineNames(opts.prefix, opts.count);

  // vagrant runs in the folder (even `box list`): it must exist first.
  await mkdir(ctx.dir, { recursive: true });
  // Each vagrant call costs seconds (Ruby start, provider probes): ask once what exists, then act
  // only on what needs it, and ask again only when something went wrong.
  let before: MachineState[] = [];
  if (!fresh && current.nodes.length > 0) {
    before = await status(ctx, current.nodes);
  }
  const stateOf = (name: string): string => before.find((m) => m.name === name)?.state ?? 'not_created';

  if (!opts.download && mine.some((n) => stateOf(n) === 'not_created')) {
    const res = await ctx.vagrant.run(['box', 'list']);
    check('box list', res);
    const boxes = boxList(res);
    if (!boxes.some((b) => b.name === box && b.provider === provider)) {
      const other = boxes.filter((b) => b.name === box).map((b) => b.provider);
      throw new CmError(
        `box ${box} is not installed for provider ${provider}` +
          (other.length > 0 ? ` (only for ${other.join(', ')})` : '') +
          `; add it with vagrant box add, or pass --download to let Vagrant fetch it`,
        VagrantExit.BOX_MISSING,
      );
    }
  }

  const doomed = removed.filter((n) => stateOf(n) !== 'not_created');
  if (doomed.length > 0) {
    ctx.progress?.write(`cm-vagrant: scaling down: destroying ${doomed.join(' ')}\n`);
    const res = await ctx.vagrant.run(['destroy', '-f', ...doomed], { progress: ctx.progress });
    const after = await status(ctx, doomed);
    await syncInventory(ctx, current, after);
    check('destroy', res);
    const left = after.filter((m) => m.state !== 'not_created');
    if (left.length > 0) throw new CmError(`scaling down: ${left.map((m) => `${m.name} is still ${describeState(m)}`).join(', ')}`, VagrantExit.STUCK);
  }
  const gone = removed.filter((n) => !doomed.includes(n));
  if (gone.length > 0) await syncInventory(ctx, current, gone.map((name) => ({ name, state: 'not_created' })));

  await writeAtomic(file, updateVagrantfile(text, settings, file));

  const starting = mine.filter((n) => stateOf(n) !== RUNNING);
  let res: VagrantResult | undefined;
  if (starting.length > 0) res = await ctx.vagrant.run(['up', `--provider=${provider}`, ...starting], { progress: ctx.progress });
  const failed = res !== undefined && (res.error !== undefined || res.code !== 0);
  const states = failed
    ? await status(ctx, mine).catch((err: unknown) => {
        // The status of a provider that cannot run says nothing useful: report vagrant up's own error.
        if (res?.error) throw vagrantError('up', res.error);
        throw err;
      })
    : mine.map((name) => ({ name, state: RUNNING }));
  const { hosts, missing } = await syncInventory(ctx, settings, states);
  for (const h of hosts) await ctx.writer.write(h);
  if (res?.error) throw vagrantError('up', res.error);
  let stuck = states.filter((m) => m.state !== RUNNING);
  if (stuck.length === 0 && missing.length > 0) {
    // Vagrant said they were up but has no ssh-config for them: ask what they are.
    stuck = (await status(ctx, missing)).filter((m) => m.state !== RUNNING);
  }
  if (stuck.length > 0) {
    throw new CmError(
      `after vagrant up, ${stuck.map((m) => `${m.name} is ${describeState(m)}`).join(', ')}; see vagrant status in ${ctx.dir}`,
      VagrantExit.STUCK,
    );
  }
  if (res && res.code !== 0) check('up', res);
  if (missing.length > 0) {
    throw new CmError(`vagrant gave no ssh-config for ${missing.join(', ')}, left out of the inventory`, VagrantExit.NOT_RUNNING);
  }
  return ExitCode.OK;
}

export interface BoxEntry {
  name: string;
  provider: string;
  version?: string;
}

export function boxList(res: VagrantResult): BoxEntry[] {
  const boxes: BoxEntry[] = [];
  for (const row of res.rows) {
    const value = row.data[0] ?? '';
    if (row.type === 'box-name') boxes.push({ name: value, provider: '' });
    else if (row.type === 'box-provider' && boxes.length > 0) boxes[boxes.length - 1]!.provider = value;
    else if (row.type === 'box-version' && boxes.length > 0) boxes[boxes.length - 1]!.version = value;
  }
  return boxes;
}

export async function machineStatus(ctx: VagrantContext, names: string[]): Promise<number> {
  const { settings } = await loadSettings(ctx);
  const states = await status(ctx, selectNames(settings, names));
  for (const m of states) await ctx.writer.write(machineRecord(ctx, m));
  return ExitCode.OK;
}

/** halt, suspend, resume, reload: Vagrant acts, then the machines' states are printed. */
export async function lifecycle(ctx: VagrantContext, action: 'halt' | 'suspend' | 'resume' | 'reload', names: string[]): Promise<number> {
  const { settings } = await loadSettings(ctx);
  const chosen = selectNames(settings, names);
  const res = await ctx.vagrant.run([action, ...chosen], { progress: ctx.progress });
  const states = await status(ctx, chosen);
  // A machine that comes back may come back at a new address.
  if (action === 'resume' || action === 'reload') await syncInventory(ctx, settings, states);
  for (const m of states) await ctx.writer.write(machineRecord(ctx, m));
  check(action, res);
  return ExitCode.OK;
}

export async function destroy(ctx: VagrantContext, names: string[]): Promise<number> {
  const { settings } = await loadSettings(ctx);
  const chosen = selectNames(settings, names);
  const res = await ctx.vagrant.run(['destroy', '-f', ...chosen], { progress: ctx.progress });
  const states = await status(ctx, chosen);
  const inv = await ctx.openInventory();
  const present = new Set(inv.hostNames());
  let changed = false;
  for (const m of states) if (m.state === 'not_created' && present.has(m.name)) changed = inv.removeHost(m.name) || changed;
  if (changed) await inv.save();
  for (const m of states) await ctx.writer.write(machineRecord(ctx, m));
  check('destroy', res);
  const left = states.filter((m) => m.state !== 'not_created');
  if (left.length > 0) throw new CmError(`still there after vagrant destroy: ${left.map((m) => `${m.name} (${describeState(m)})`).join(', ')}`, VagrantExit.STUCK);
  return ExitCode.OK;
}

async function runningEntries(ctx: VagrantContext, names: string[]): Promise<{ settings: VagrantSettings; entries: SshConfigEntry[]; down: string[] }> {
  const { settings } = await loadSettings(ctx);
  const chosen = selectNames(settings, names);
  const states = await status(ctx, chosen);
  const running = states.filter((m) => m.state === RUNNING).map((m) => m.name);
  const down = states.filter((m) => m.state !== RUNNING).map((m) => `${m.name} (${describeState(m)})`);
  const { entries, missing } = await sshConfig(ctx, running);
  return { settings, entries, down: [...down, ...missing.map((n) => `${n} (no ssh-config)`)] };
}

function reportDown(ctx: VagrantContext, down: string[]): number {
  if (down.length === 0) return ExitCode.OK;
  warn(ctx, `not running, left out: ${down.join(', ')}`);
  return VagrantExit.NOT_RUNNING;
}

export async function sshConfigCommand(ctx: VagrantContext, names: string[]): Promise<number> {
  const { entries, down } = await runningEntries(ctx, names);
  ctx.stdout.write(renderSshConfig(entries));
  return reportDown(ctx, down);
}

export async function hosts(ctx: VagrantContext, names: string[]): Promise<number> {
  const { settings, entries, down } = await runningEntries(ctx, names);
  for (const e of entries) await ctx.writer.write(hostRecord(e.name, hostFields(e, { slots: ctx.slots ?? settings.cpus, tags: [ctx.tag] })));
  return reportDown(ctx, down);
}
