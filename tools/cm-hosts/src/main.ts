import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CmError, ExitCode, RecordWriter } from '@cm/protocol';
import { EXIT_CODES, flag, wantsRecords, intOpt, numOpt, str, strs, type CommandIO, type DocoptArgs } from '@cm/cli';
import {
  checkHosts,
  checkTable,
  hostsTable,
  InventoryFile,
  loadInventory,
  newInventoryPath,
  createdInventoryNote,
  parseAssignments,
  parseSshConfig,
  parseVagrantSshConfig,
  resolveInventoryPath,
  toSshConfig,
  type CheckRecord,
  type HostFields,
} from '@cm/inventory';

export const USAGE = `
cm-hosts: the inventory of machines cm runs jobs on (a YAML file you can also edit by hand).

list prints the selected hosts; check probes them over ssh, all at once; add, set, remove and
import edit the file, keeping its comments and key order, and replace it atomically (a crash
never leaves half a file; an invalid result is never written). cm-hosts is a source: it never
reads stdin (except import --vagrant -), so it can start any pipeline.

Usage:
  cm-hosts list [<selector>] [--json | --table] [options]
  cm-hosts add <name> [--address=A] [--user=U] [--port=P] [--identity=F] [--jump=J] [--slots=N] [--local] [--tag=T]... [options]
  cm-hosts remove <selector> [options]
  cm-hosts set <selector> <key=value>... [options]
  cm-hosts check [<selector>] [--json | --table] [--timeout=S] [--parallel=N] [options]
  cm-hosts import (--ssh-config=FILE | --vagrant=FILE) [--tag=T]... [options]
  cm-hosts export [<selector>] [options]
  cm-hosts -h | --help

Selectors: names, ranges (node[01-04]), @tag (@all is every host), comma-separated: th1,node[1-3],@gpu.
A host inside a range entry (node05 of node[01-16]) is edited with its whole range.

Output: NDJSON on stdout when it is not a terminal or with --json (list: \`host\` records, the input
of other cm commands; check: \`check\` records {host, address, up, reason, rtt_ms, cpus, load, hostname,
slots, suggested_slots}); an aligned table on a terminal or with --table.

Options:
  --address=A      Address to ssh to (default: the name); a range pairs up with a range name.
  --user=U         Login user.
  --port=P         ssh port.
  --identity=F     Private key file (~ is $HOME).
  --jump=J         ProxyJump host(s): [user@]host[:port], comma-separated.
  --slots=N        Jobs that run on the host at once [default in file: 1].
  --local          Run jobs as local subprocesses, without ssh.
  --tag=T          Tag (repeat for more); import adds it to every imported host.
  --json           NDJSON records, even on a terminal.
  --table          A table for people, even in a pipe.
  --timeout=S      Seconds for each host's probe, connecting included [default: 10].
                   check runs one ssh per host (all at once, up to --parallel) with the
                   curve25519 key exchange first (8x cheaper in CPU than OpenSSH 9's default;
                   the probe carries nothing secret); a host's own KexAlgorithms wins.
  --parallel=N     Hosts probed at once [default: 128].
  --ssh-config=FILE  Import the Host entries of an OpenSSH client config (wildcard Hosts skipped).
  --vagrant=FILE   Import \`vagrant ssh-config\` output (plain or --machine-readable; - = stdin).
  set keys: address, user, port, identity, jump, slots, local, tags (tags=a,b), options.NAME;
  an empty value (jump=) removes the key from the entry.

Common options:
  -i FILE, --inventory=FILE  The inventory. Else $CM_INVENTORY, ./cm.yaml, ./config/hosts.yaml,
                    ~/.config/cm/hosts.yaml; none: one local host, localhost (slots = CPUs).
                    add and import create the file when it does not exist yet: ./cm.yaml when
                    none was found, so the new hosts serve cm commands in this folder only.
  -h --help         Show this text.

${EXIT_CODES}
  (1 here: check found a host down)

Examples:
  cm-hosts add th1 --address 127.0.10.1 --user root --slots 4 --tag test
  cm-hosts add 'node[01-16]' --address '10.0.0.[1-16]' --jump bastion --tag rack1
  cm-hosts set @rack1 slots=8 tags=rack1,big
  cm-hosts check @rack1 --json | jq -r 'select(.up|not) | .host + ": " + .reason'
  cm-hosts list --json | jq -r .name
  vagrant ssh-config | cm-hosts import --vagrant - --tag vm
  cm-hosts export > ~/.ssh/cm_config && ssh -F ~/.ssh/cm_config th1 hostname
`;

type Command = 'list' | 'add' | 'remove' | 'set' | 'check' | 'import' | 'export';

export interface Args {
  command: Command;
  selector?: string;
  name?: string;
  assignments: string[];
  fields: HostFields;
  json: boolean;
  table: boolean;
  timeout: number;
  parallel: number;
  sshConfig?: string;
  vagrant?: string;
  tags: string[];
  inventory?: string;
}

export function toArgs(a: DocoptArgs): Args {
  const command = (['list', 'add', 'remove', 'set', 'check', 'import', 'export'] as const).find((c) => flag(a, c));
  if (!command) throw new CmError('no command given', ExitCode.USAGE);
  const fields: HostFields = {};
  const address = str(a, '--address');
  if (address !== undefined) fields.address = address;
  const user = str(a, '--user');
  if (user !== undefined) fields.user = user;
  const port = intOpt(a, '--port', { min: 1 });
  if (port !== undefined) fields.port = port;
  const identity = str(a, '--identity');
  if (identity !== undefined) fields.identity = identity;
  const jump = str(a, '--jump');
  if (jump !== undefined) fields.jump = jump;
  const slots = intOpt(a, '--slots', { min: 1 });
  if (slots !== undefined) fields.slots = slots;
  if (flag(a, '--local')) fields.local = true;
  const tags = strs(a, '--tag');
  if (command === 'add' && tags.length > 0) fields.tags = tags;
  return {
    command,
    selector: str(a, '<selector>'),
    name: str(a, '<name>'),
    assignments: strs(a, '<key=value>'),
    fields,
    json: flag(a, '--json'),
    table: flag(a, '--table'),
    timeout: numOpt(a, '--timeout') ?? 10,
    parallel: intOpt(a, '--parallel', { min: 1 }) ?? 128,
    sshConfig: str(a, '--ssh-config'),
    vagrant: str(a, '--vagrant'),
    tags,
    inventory: str(a, '--inventory'),
  };
}

function inventoryPath(args: Args, io: CommandIO): string | undefined {
  return resolveInventoryPath({ path: args.inventory, env: io.env, cwd: io.cwd });
}

async function openForEdit(args: Args, io: CommandIO, create: boolean): Promise<InventoryFile> {
  let file = inventoryPath(args, io);
  if (file === undefined) {
    if (!create) throw new CmError('no inventory file to edit (see --inventory); add or import creates one', ExitCode.INPUT);
    file = newInventoryPath(io.cwd);
  }
  return InventoryFile.open(file, { create, env: io.env });
}

/** Saves an edit; a file that did not exist is announced, since it changes what later commands use. */
async function saveEdit(file: InventoryFile, io: CommandIO, note: (text: string) => void): Promise<void> {
  const created = file.isNew;
  await file.save();
  if (created) note(createdInventoryNote(file.path, io.cwd));
}

async function readSource(file: string, io: CommandIO): Promise<string> {
  if (file !== '-') {
    try {
      return await readFile(path.resolve(io.cwd, file), 'utf8');
    } catch (err) {
      throw new CmError(`${file}: cannot read: ${(err as Error).message}`, ExitCode.INPUT);
    }
  }
  const chunks: Buffer[] = [];
  for await (const c of io.stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

export async function run(args: Args, io: CommandIO): Promise<number> {
  const out = new RecordWriter(io.stdout);
  const note = (text: string) => io.stderr.write(`cm-hosts: ${text}\n`);

  switch (args.command) {
    case 'list': {
      const inv = await loadInventory({ path: args.inventory, env: io.env, cwd: io.cwd });
      const hosts = inv.select(args.selector);
      if (wantsRecords(io, args)) {
        for (const h of hosts) {
          if (out.closed) break;
          await out.write(h);
        }
      } else io.stdout.write(hostsTable(hosts));
      await out.end();
      return ExitCode.OK;
    }

    case 'export': {
      const inv = await loadInventory({ path: args.inventory, env: io.env, cwd: io.cwd });
      io.stdout.write(toSshConfig(inv.select(args.selector)));
      await out.end();
      return ExitCode.OK;
    }

    case 'check': {
      const inv = await loadInventory({ path: args.inventory, env: io.env, cwd: io.cwd });
      const hosts = inv.select(args.selector);
      const json = wantsRecords(io, args);
      const results = await checkHosts(
        hosts,
        { timeout: args.timeout, parallel: args.parallel, signal: io.signal, configFile: io.env.CM_SSH_CONFIG || undefined },
        json ? (r: CheckRecord) => out.write(r) : undefined,
      );
      if (!json) io.stdout.write(checkTable(results));
      const down = results.filter((r) => !r.up);
      for (const r of down) note(`${r.host} (${r.address}) is down: ${r.reason}`);
      await out.end();
      return down.length > 0 ? ExitCode.FAILURES : ExitCode.OK;
    }

    case 'add': {
      const file = await openForEdit(args, io, true);
      file.addHost(args.name as string, args.fields);
      await saveEdit(file, io, note);
      note(`added ${args.name} to ${file.path}`);
      return ExitCode.OK;
    }

    case 'remove':
    case 'set': {
      const file = await openForEdit(args, io, false);
      const keys = args.command === 'remove' ? file.removeSelected(args.selector) : file.assign(args.selector, parseAssignments(args.assignments));
      await file.save();
      note(`${args.command === 'remove' ? 'removed' : 'updated'} ${keys.join(', ')} in ${file.path}`);
      return ExitCode.OK;
    }

    case 'import': {
      const source = args.sshConfig ?? (args.vagrant as string);
      const label = source === '-' ? 'stdin' : source;
      const text = await readSource(source, io);
      const result = args.sshConfig !== undefined ? parseSshConfig(text, label) : parseVagrantSshConfig(text, label);
      for (const n of result.notes) note(n);
      const file = await openForEdit(args, io, true);
      const { added, updated } = file.importHosts(result.hosts, args.tags);
      await saveEdit(file, io, note);
      note(`imported ${result.hosts.length} hosts from ${label} into ${file.path} (${added} added, ${updated} updated)`);
      return ExitCode.OK;
    }
  }
}
