import { existsSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { CmError, ExitCode, formatTable, PATTERNS, RecordWriter, type HostRecord, type MachineRecord } from '@cm/protocol';
import { EXIT_CODES, flag, intOpt, str, strs, wantsRecords, type CommandIO, type DocoptArgs } from '@cm/cli';
import { createdInventoryNote, hostsTable, InventoryFile, newInventoryPath, resolveInventoryPath } from '@cm/inventory';
import {
  destroy,
  hosts,
  lifecycle,
  machineStatus,
  onPath,
  sshConfigCommand,
  up,
  vagrantRunner,
  VAGRANT_MISSING,
  type VagrantContext,
  type UpOptions,
} from '@cm/vagrant';

export const USAGE = `
cm-vagrant: start N Vagrant machines and keep them in the cm inventory.

\`up N\` writes (or updates) DIR/Vagrantfile for N numbered machines PREFIX1..PREFIXN from the
repository's Vagrantfile template, runs the real \`vagrant up\` (its progress on stderr), reads
\`vagrant ssh-config\` and writes each running machine into the inventory (tag TAG, slots = CPUs per
VM unless --slots), printing their host records. \`up 5\` after \`up 3\` adds two machines; \`up 2\`
then destroys the last three. Only the settings block of the Vagrantfile is rewritten; the rest is
yours to edit. The provider is --provider, else the one the Vagrantfile already uses, else
$VAGRANT_DEFAULT_PROVIDER, else the first installed of virtualbox, libvirt, lxc.

The other commands act on all machines of the Vagrantfile, or on the names given, and print one
{"kind":"machine",...} record per machine with its state afterwards; \`destroy\` also removes the
machines from the inventory, \`resume\` and \`reload\` refresh their addresses there. \`halt\` keeps
them in the inventory. \`hosts\` prints the host records of the running machines without touching
the inventory. \`ssh-config\` prints an OpenSSH config file (not NDJSON) for \`ssh -F FILE name\`.

Usage:
  cm-vagrant up <n> [options] [--box BOX] [--provider P] [--memory MB] [--cpus C] [--prefix NAME] [--download]
  cm-vagrant (status | halt | suspend | resume | reload | destroy | ssh-config | hosts) [options] [<name>...]
  cm-vagrant -h | --help

Options:
  --box BOX          Vagrant box of new machines [default from the Vagrantfile: debian/bookworm64].
  --provider P       virtualbox, libvirt, lxc, ... (see above).
  --memory MB        memory per machine (virtualbox, libvirt; lxc shares the host's).
  --cpus C           CPUs per machine (virtualbox, libvirt); also the default slots.
  --prefix NAME      machine names are NAME1..NAMEn [default: node].
  --download         let Vagrant download a box that is not installed (otherwise: exit 6).
  --dir DIR          folder of the Vagrantfile and .vagrant/ [default: .].
  --tag TAG          tag of the machines in the inventory [default: vagrant].
  --slots S          slots of each machine in the inventory (default: its CPUs).
  -q --quiet         do not copy Vagrant's progress to stderr.
  --json             records even on a terminal (there, by default: a table of the machines or
                     hosts the records describe).

Common options:
  -i FILE, --inventory FILE
                     inventory to edit (else $CM_INVENTORY, ./cm.yaml, ./config/hosts.yaml,
                     ~/.config/cm/hosts.yaml; none: ./cm.yaml is created).
  -h --help          Show this text.

${EXIT_CODES}
  cm-vagrant also uses:
  4    vagrant is not installed, or the provider is not usable (VirtualBox missing, ...)
  6    the box does not exist (not installed for the provider; see --download)
  7    some machines are not running: the running ones were printed or added, the others named on stderr
  8    after vagrant up (or destroy) a machine is stuck: not created, shut off, ...
  9    vagrant failed for another reason (its message is shown)

Examples:
  cm-vagrant up 3 --provider lxc --box cm/debian12 --dir ~/cluster
  cm-vagrant up 3 --dir ~/cluster && cm-hosts list @vagrant
  cm-plan -d 'h(i=1..3)=hostname' h | cm-exec --hosts @vagrant | cm-reduce --op concat
  cm-vagrant status --dir ~/cluster | grep -v '"state":"running"'
  cm-vagrant ssh-config --dir ~/cluster > ssh.cfg && ssh -F ssh.cfg node1 uptime
  cm-vagrant destroy --dir ~/cluster
`;

type Command = 'up' | 'status' | 'halt' | 'suspend' | 'resume' | 'reload' | 'destroy' | 'ssh-config' | 'hosts';
const COMMANDS: Command[] = ['up', 'status', 'halt', 'suspend', 'resume', 'reload', 'destroy', 'ssh-config', 'hosts'];

/** `up`'s own options are the library's UpOptions; the rest is shared by every subcommand. */
export interface Args extends UpOptions {
  command: Command;
  names: string[];
  dir: string;
  tag: string;
  slots?: number;
  quiet: boolean;
  json: boolean;
  inventory?: string;
}

export function toArgs(a: DocoptArgs): Args {
  const command = COMMANDS.find((c) => a[c] === true);
  if (!command) throw new CmError('no command given', ExitCode.USAGE);
  const n = str(a, '<n>');
  if (command === 'up' && (n === undefined || !/^\d+$/.test(n))) throw new CmError(`up N: N must be a whole number, got ${JSON.stringify(n)}`, ExitCode.USAGE);
  const tag = str(a, '--tag') ?? 'vagrant';
  if (!new RegExp(PATTERNS.tag).test(tag)) throw new CmError(`--tag ${JSON.stringify(tag)}: letters, digits and _.- only`, ExitCode.USAGE);
  return {
    command,
    count: Number(n ?? 0),
    names: strs(a, '<name>'),
    box: str(a, '--box'),
    provider: str(a, '--provider'),
    memory: intOpt(a, '--memory', { min: 64 }),
    cpus: intOpt(a, '--cpus', { min: 1 }),
    prefix: str(a, '--prefix') ?? 'node',
    download: flag(a, '--download'),
    dir: str(a, '--dir') ?? '.',
    tag,
    slots: intOpt(a, '--slots', { min: 1 }),
    quiet: flag(a, '--quiet'),
    json: flag(a, '--json'),
    inventory: str(a, '--inventory'),
  };
}

/** The repository's Vagrantfile, three levels above tools/cm-vagrant/dist/main.cjs. */
function templatePath(env: NodeJS.ProcessEnv): string {
  if (env.CM_VAGRANT_TEMPLATE) return env.CM_VAGRANT_TEMPLATE;
  return path.resolve(__dirname, '..', '..', '..', 'Vagrantfile');
}

export async function run(args: Args, io: CommandIO): Promise<number> {
  // Checked first: every command needs it, and a missing binary deserves a message of its own.
  if (!onPath('vagrant', io.env)) throw new CmError(VAGRANT_MISSING, ExitCode.ENVIRONMENT);
  const dir = path.resolve(io.cwd, args.dir);
  // a person at a terminal gets the records as a table, printed once the command is done
  const shown = wantsRecords(io, { json: args.json }) ? undefined : new PassThrough();
  const lines: string[] = [];
  shown?.on('data', (chunk: Buffer) => lines.push(chunk.toString('utf8')));
  const writer = new RecordWriter(shown ?? io.stdout);
  const inventoryPath = resolveInventoryPath({ path: args.inventory, env: io.env, cwd: io.cwd }) ?? newInventoryPath(io.cwd);
  let created: string | undefined;
  const ctx: VagrantContext = {
    dir,
    vagrant: vagrantRunner({ cwd: dir, env: io.env, signal: io.signal }),
    writer,
    stdout: io.stdout,
    stderr: io.stderr,
    progress: args.quiet ? undefined : io.stderr,
    env: io.env,
    openInventory: async () => {
      const file = await InventoryFile.open(inventoryPath, { create: true, env: io.env });
      if (file.isNew) created = file.path;
      return file;
    },
    templatePath: templatePath(io.env),
    installed: (program) => onPath(program, io.env),
    tag: args.tag,
    slots: args.slots,
  };
  let code: number;
  switch (args.command) {
    case 'up':
      code = await up(ctx, {
        count: args.count,
        box: args.box,
        provider: args.provider,
        memory: args.memory,
        cpus: args.cpus,
        prefix: args.prefix,
        download: args.download,
      });
      break;
    case 'status':
      code = await machineStatus(ctx, args.names);
      break;
    case 'destroy':
      code = await destroy(ctx, args.names);
      break;
    case 'ssh-config':
      code = await sshConfigCommand(ctx, args.names);
      break;
    case 'hosts':
      code = await hosts(ctx, args.names);
      break;
    default:
      code = await lifecycle(ctx, args.command, args.names);
  }
  // said once the file exists: a new inventory changes what later cm commands here use
  if (created !== undefined && existsSync(created)) io.stderr.write(`cm-vagrant: ${createdInventoryNote(created, io.cwd)}\n`);
  await writer.end();
  if (shown) io.stdout.write(recordsTable(lines.join('')));
  return code;
}

/** Machine and host records as the tables a person reads: machines by state, hosts as cm-hosts lists them. */
function recordsTable(ndjson: string): string {
  const records = ndjson.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as MachineRecord | HostRecord);
  const machines = records.filter((r): r is MachineRecord => r.kind === 'machine');
  const hosts = records.filter((r): r is HostRecord => r.kind === 'host');
  let out = '';
  if (machines.length > 0) out += formatTable(['NAME', 'STATE', 'PROVIDER', 'DIR'], machines.map((m) => [m.name, m.state, m.provider ?? '-', m.dir]));
  if (hosts.length > 0) out += hostsTable(hosts);
  return out;
}
