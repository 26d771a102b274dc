// Reads the inventory YAML into validated host records. Every complaint names file:line:col of the
// key or value at fault (yaml node ranges + LineCounter), so the user can jump straight to it.
// read with readFileSync: one small file, and node:fs/promises alone costs a command 1.5 ms of CPU
// to load at start-up, before its first job
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isAlias, isMap, isNode, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node, type Pair, type YAMLMap } from 'yaml';
import { CmError, ExitCode, InputError, PATTERNS, type HostRecord, type SlurmPlacement } from '@cm/protocol';
import { ALLOWED_SSH_OPTIONS } from '@cm/ssh';
import { expandRange, PatternError, splitTopLevel, isPattern } from './ranges';

/** Inventories bigger than this are refused before parsing (a host line is ~100 bytes). */
export const MAX_INVENTORY_BYTES = 16 * 1024 * 1024;

const TOKEN = new RegExp(PATTERNS.hostToken);
const TAG = new RegExp(PATTERNS.tag);
const SLURM_NAME = new RegExp(PATTERNS.slurmName);
const JUMP = new RegExp(PATTERNS.jump);

export const HOST_FIELDS = ['address', 'user', 'port', 'identity', 'jump', 'options', 'tags', 'slots', 'local', 'slurm'] as const;
export type HostField = (typeof HOST_FIELDS)[number];
export type HostFields = Partial<Omit<HostRecord, 'kind' | 'v' | 'name'>>;

export interface Inventory {
  /** file path, or '(default)' for the embedded default */
  source: string;
  /** expanded, defaults applied, validated */
  hosts: HostRecord[];
  /** names, ranges, @tag, comma-separated; undefined = all; an unknown name or tag is a CmError */
  select(selector?: string): HostRecord[];
}

/** Where each host came from: the key written in the file (maybe a range) and its position. */
export interface HostOrigin {
  key: string;
  line?: number;
  column?: number;
}

export class InventoryView implements Inventory {
  private readonly byName = new Map<string, HostRecord>();

  constructor(
    readonly source: string,
    readonly hosts: HostRecord[],
    /** host name -> entry key in the file; absent for the embedded default */
    readonly origins: Map<string, HostOrigin> = new Map(),
  ) {
    for (const h of hosts) this.byName.set(h.name, h);
  }

  get(name: string): HostRecord | undefined {
    return this.byName.get(name);
  }

  select(selector?: string): HostRecord[] {
    if (selector === undefined || selector.trim() === '') return [...this.hosts];
    const wanted = new Set<string>();
    for (const { text } of splitTopLevel(selector.trim())) {
      const item = text.trim();
      if (item.startsWith('@')) {
        const tag = item.slice(1);
        // @all is every host, so scripts need not know the tags in use.
        const tagged = tag === 'all' ? this.hosts : this.hosts.filter((h) => h.tags.includes(tag));
        if (tagged.length === 0) throw new CmError(`no host in ${this.source} has tag @${tag}`, ExitCode.INPUT);
        for (const h of tagged) wanted.add(h.name);
        continue;
      }
      const names = expandRange(item);
      const unknown = names.filter((n) => !this.byName.has(n));
      if (unknown.length > 0) {
        const shown = unknown.slice(0, 5).join(', ') + (unknown.length > 5 ? `, ... (${unknown.length} in all)` : '');
        throw new CmError(`unknown host ${shown} (not in ${this.source})`, ExitCode.INPUT);
      }
      for (const n of names) wanted.add(n);
    }
    return this.hosts.filter((h) => wanted.has(h.name));
  }
}

export function defaultInventory(): Inventory {
  return new InventoryView('(default)', [
    { kind: 'host', v: 1, name: 'localhost', address: 'localhost', local: true, slots: os.availableParallelism(), tags: ['local'] },
  ]);
}

export interface LocateOptions {
  path?: string;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

function home(env: NodeJS.ProcessEnv): string {
  return env.HOME && env.HOME !== '' ? env.HOME : os.homedir();
}

/**
 * The search order of docs/design.md: --inventory, $CM_INVENTORY, ./cm.yaml, ./config/hosts.yaml,
 * ~/.config/cm/hosts.yaml. An explicit path (option or variable) is returned even when missing, so
 * a typo is reported instead of silently falling back to another file.
 */
export function resolveInventoryPath(opts: LocateOptions): string | undefined {
  if (opts.path !== undefined && opts.path !== '') return path.resolve(opts.cwd, opts.path);
  const fromEnv = opts.env.CM_INVENTORY;
  if (fromEnv !== undefined && fromEnv !== '') return path.resolve(opts.cwd, fromEnv);
  for (const candidate of [path.join(opts.cwd, 'cm.yaml'), path.join(opts.cwd, 'config', 'hosts.yaml'), path.join(home(opts.env), '.config', 'cm', 'hosts.yaml')]) {
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** The per-user inventory at the end of the search order (cm-vagrant still creates it; cm-hosts does not). */
export function defaultInventoryPath(env: NodeJS.ProcessEnv): string {
  return path.join(home(env), '.config', 'cm', 'hosts.yaml');
}

/**
 * The file an editing command creates when no inventory exists yet: ./cm.yaml, so the new inventory
 * governs this folder only; one in ~/.config would change the hosts of every cm command everywhere.
 */
export function newInventoryPath(cwd: string): string {
  return path.join(cwd, 'cm.yaml');
}

/** What an editing command says when its save created the inventory: later commands here use it. */
export function createdInventoryNote(file: string, cwd: string): string {
  const rel = path.relative(cwd, file);
  const shown = rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? `./${rel}` : file;
  return `created ${shown} (new inventory${file === newInventoryPath(cwd) ? '; cm commands in this folder use it' : ''})`;
}

export async function readInventoryText(file: string): Promise<string> {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new CmError(`${file}: no such inventory file`, ExitCode.INPUT);
    if (e.code === 'EISDIR') throw new CmError(`${file}: is a directory, not an inventory file`, ExitCode.INPUT);
    throw new CmError(`${file}: cannot read: ${e.message}`, ExitCode.INPUT);
  }
  if (buf.length > MAX_INVENTORY_BYTES) throw new CmError(`${file}: larger than ${MAX_INVENTORY_BYTES} bytes; is it an inventory?`, ExitCode.INPUT);
  return buf.toString('utf8');
}

export async function loadInventory(opts: LocateOptions): Promise<Inventory> {
  const file = resolveInventoryPath(opts);
  if (file === undefined) return defaultInventory();
  return parseInventory(await readInventoryText(file), file, opts.env);
}

export interface ParsedInventory {
  doc: Document;
  lineCounter: LineCounter;
}

/** Parses YAML text, turning the first syntax error into a located InputError. */
export function parseYaml(text: string, source: string): ParsedInventory {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true });
  const err = doc.errors[0];
  if (err) {
    const { line, col } = lineCounter.linePos(err.pos[0]);
    const reason = err.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? 'YAML syntax error';
    throw new InputError(source, line, col, `YAML syntax error: ${reason}`, lineText(text, line));
  }
  return { doc, lineCounter };
}

function lineText(text: string, line: number): string | undefined {
  const t = text.split('\n')[line - 1];
  if (t === undefined) return undefined;
  return t.length > 120 ? `${t.slice(0, 117)}...` : t.replace(/\r$/, '');
}

export function parseInventory(text: string, source: string, env: NodeJS.ProcessEnv = process.env): InventoryView {
  const { doc, lineCounter } = parseYaml(text, source);
  return new Loader(doc, lineCounter, source, text, env).load();
}

/** Validates an already parsed document (the editor's view before it saves). */
export function inventoryFromDocument(doc: Document, source: string, env: NodeJS.ProcessEnv = process.env): InventoryView {
  // Edited nodes carry no source ranges; re-reading the text it would save gives real positions.
  return parseInventory(doc.toString({ flowCollectionPadding: false, lineWidth: 0 }), source, env);
}

interface Draft {
  user?: string;
  port?: number;
  identity?: string;
  jump?: string;
  options?: Record<string, string>;
  tags?: string[];
  slots?: number;
  local?: boolean;
  slurm?: SlurmPlacement;
  address?: string[];
  addressNode?: Node;
}

class Loader {
  constructor(
    private readonly doc: Document,
    private readonly lc: LineCounter,
    private readonly source: string,
    private readonly text: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  private fail(node: unknown, reason: string, offsetInNode = 0): never {
    const range = isNode(node) ? node.range : isPair(node) && isNode(node.key) ? node.key.range : undefined;
    if (!range) throw new InputError(this.source, undefined, undefined, reason);
    // Quoted scalars start at the quote; point at the offending character inside.
    const quoted = isScalar(node) && (node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE') ? 1 : 0;
    const { line, col } = this.lc.linePos(range[0] + (offsetInNode > 0 ? offsetInNode + quoted : 0));
    throw new InputError(this.source, line, col, reason, lineText(this.text, line));
  }

  private resolve(node: unknown): unknown {
    let n = node;
    // Aliases are followed one level at a time; the fields below are at most two deep.
    for (let i = 0; i < 8 && isAlias(n); i++) n = n.resolve(this.doc);
    if (isAlias(n)) this.fail(node, 'alias chain too long');
    return n;
  }

  private str(node: unknown, what: string): string {
    const n = this.resolve(node);
    if (!isScalar(n) || n.value === null || typeof n.value === 'boolean' || typeof n.value === 'object') {
      this.fail(node, `${what} must be a string`);
    }
    return String(n.value);
  }

  private token(node: unknown, what: string): string {
    const value = this.str(node, what);
    if (!TOKEN.test(value)) {
      this.fail(node, `${what} ${JSON.stringify(value)} is not allowed: it must start with a letter, digit or _ and hold no spaces or shell characters`);
    }
    return value;
  }

  private int(node: unknown, what: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const n = this.resolve(node);
    if (!isScalar(n) || typeof n.value !== 'number' || !Number.isInteger(n.value)) this.fail(node, `${what} must be an integer`);
    const v = n.value as number;
    if (v < min || v > max) this.fail(node, max === Number.MAX_SAFE_INTEGER ? `${what} must be >= ${min}, got ${v}` : `${what} must be between ${min} and ${max}, got ${v}`);
    return v;
  }

  private map(node: unknown, what: string): YAMLMap<unknown, unknown> | undefined {
    const n = this.resolve(node);
    if (n === null || n === undefined || (isScalar(n) && n.value === null)) return undefined;
    if (!isMap(n)) this.fail(node, `${what} must be a mapping (key: value)`);
    return n as YAMLMap<unknown, unknown>;
  }

  private keyOf(pair: Pair<unknown, unknown>): string {
    const k = this.resolve(pair.key);
    if (!isScalar(k) || k.value === null || typeof k.value === 'object') this.fail(pair.key ?? pair, 'keys must be plain names');
    return String(k.value);
  }

  private fields(m: YAMLMap<unknown, unknown> | undefined, inDefaults: boolean): Draft {
    const d: Draft = {};
    if (!m) return d;
    for (const pair of m.items) {
      const key = this.keyOf(pair);
      const v = pair.value;
      switch (key) {
        case 'address': {
          if (inDefaults) this.fail(pair.key, 'address cannot be a default: every host has its own');
          const text = this.str(v, 'address');
          d.address = this.expand(v, text, 'address');
          d.addressNode = v as Node;
          d.address.forEach((a) => {
            if (!TOKEN.test(a)) this.fail(v, `address ${JSON.stringify(a)} is not allowed: it must start with a letter, digit or _ and hold no spaces or shell characters`);
          });
          break;
        }
        case 'user':
          d.user = this.token(v, 'user');
          break;
        case 'port':
          d.port = this.int(v, 'port', 1, 65535);
          break;
        case 'identity': {
          const p = this.str(v, 'identity');
          if (p === '' || /[\u0000-\u001f]/.test(p)) this.fail(v, 'identity must be a file path without control characters');
          d.identity = p === '~' ? home(this.env) : p.startsWith('~/') ? path.join(home(this.env), p.slice(2)) : p;
          break;
        }
        case 'jump': {
          const j = this.str(v, 'jump');
          if (!JUMP.test(j)) this.fail(v, `jump ${JSON.stringify(j)} is not allowed: [user@]host[:port], comma-separated`);
          for (const hop of j.split(',')) {
            const [user, addr] = hop.includes('@') ? (hop.split('@', 2) as [string, string]) : [undefined, hop];
            if ((user !== undefined && !TOKEN.test(user)) || !TOKEN.test(addr.replace(/:\d+$/, ''))) {
              this.fail(v, `jump hop ${JSON.stringify(hop)} is not allowed: [user@]host[:port]`);
            }
          }
          d.jump = j;
          break;
        }
        case 'options': {
          const om = this.map(v, 'options');
          const opts: Record<string, string> = {};
          for (const op of om?.items ?? []) {
            const name = this.keyOf(op);
            if (!ALLOWED_SSH_OPTIONS.has(name.toLowerCase())) {
              this.fail(op.key, `ssh option ${JSON.stringify(name)} is not on the allow-list (see ALLOWED_SSH_OPTIONS in @cm/ssh)`);
            }
            const ov = this.resolve(op.value);
            if (!isScalar(ov) || ov.value === null || typeof ov.value === 'object') this.fail(op.value ?? op, `ssh option ${name} needs a value`);
            const text = typeof ov.value === 'boolean' ? (ov.value ? 'yes' : 'no') : String(ov.value);
            if (/[\u0000-\u001f]/.test(text)) this.fail(op.value, `ssh option ${name} holds control characters`);
            opts[name] = text;
          }
          d.options = opts;
          break;
        }
        case 'tags': {
          const s = this.resolve(v);
          if (!isSeq(s)) this.fail(v, 'tags must be a list, for example [rack1, gpu]');
          d.tags = s.items.map((item) => {
            const t = this.str(item, 'tag');
            if (!TAG.test(t)) this.fail(item, `tag ${JSON.stringify(t)} is not allowed: letters, digits and _.- , not starting with - or .`);
            return t;
          });
          break;
        }
        case 'slots':
          d.slots = this.int(v, 'slots', 1);
          break;
        case 'local': {
          const b = this.resolve(v);
          if (!isScalar(b) || typeof b.value !== 'boolean') this.fail(v, 'local must be true or false');
          d.local = b.value as boolean;
          break;
        }
        case 'slurm': {
          if (inDefaults) this.fail(pair.key, 'slurm cannot be a default: it makes one entry a Slurm cluster');
          const sm = this.map(v, 'slurm');
          const placement: SlurmPlacement = {};
          for (const sp of sm?.items ?? []) {
            const name = this.keyOf(sp);
            const text = this.str(sp.value, `slurm ${name}`);
            if (name === 'mode') {
              if (text !== 'steps' && text !== 'workers') this.fail(sp.value ?? sp, `slurm mode must be steps or workers, got ${JSON.stringify(text)}`);
              placement.mode = text;
            } else if (name === 'partition' || name === 'account' || name === 'qos') {
              if (!SLURM_NAME.test(text)) this.fail(sp.value ?? sp, `slurm ${name} ${JSON.stringify(text)} is not a valid Slurm name`);
              placement[name] = text;
            } else {
              this.fail(sp.key, `unknown key ${JSON.stringify(name)} under slurm; it takes partition, account, qos, mode`);
            }
          }
          d.slurm = placement;
          break;
        }
        default:
          this.fail(pair.key, `unknown key ${JSON.stringify(key)}; a ${inDefaults ? 'default' : 'host'} takes ${HOST_FIELDS.filter((f) => !inDefaults || f !== 'address').join(', ')}`);
      }
    }
    return d;
  }

  private expand(node: unknown, text: string, what: string): string[] {
    try {
      return expandRange(text);
    } catch (err) {
      if (err instanceof PatternError) this.fail(node, `bad ${what} range: ${err.reason}`, err.index);
      throw err;
    }
  }

  load(): InventoryView {
    const root = this.resolve(this.doc.contents);
    const top = this.map(root, 'the inventory');
    let defaults: Draft = {};
    let hostsMap: YAMLMap<unknown, unknown> | undefined;
    for (const pair of top?.items ?? []) {
      const key = this.keyOf(pair);
      if (key === 'defaults') defaults = this.fields(this.map(pair.value, 'defaults'), true);
      else if (key === 'hosts') hostsMap = this.map(pair.value, 'hosts');
      else this.fail(pair.key, `unknown key ${JSON.stringify(key)}; the inventory takes defaults and hosts`);
    }
    const hosts: HostRecord[] = [];
    const origins = new Map<string, HostOrigin>();
    for (const pair of hostsMap?.items ?? []) {
      const key = this.keyOf(pair);
      const keyNode = pair.key;
      if (splitTopLevel(key).length > 1) this.fail(keyNode, `host key ${JSON.stringify(key)} holds a comma; write one entry per name or range`);
      const names = this.expand(keyNode, key, 'host name');
      const f = this.fields(this.map(pair.value, `host ${key}`), false);
      let addresses = f.address ?? names;
      if (addresses.length === 1 && names.length > 1 && f.address) addresses = names.map(() => f.address?.[0] as string);
      if (addresses.length !== names.length) {
        this.fail(f.addressNode, `address expands to ${addresses.length} values but ${key} to ${names.length}; they pair up one to one`);
      }
      const { line, col } = isNode(keyNode) && keyNode.range ? this.lc.linePos(keyNode.range[0]) : { line: undefined, col: undefined };
      names.forEach((name, i) => {
        if (!TOKEN.test(name)) {
          this.fail(keyNode, `host name ${JSON.stringify(name)} is not allowed: it must start with a letter, digit or _ and hold no spaces or shell characters`);
        }
        const prev = origins.get(name);
        if (prev) this.fail(keyNode, `duplicate host ${name} (also at line ${prev.line}${isPattern(prev.key) ? `, from ${prev.key}` : ''})`);
        origins.set(name, { key, line, column: col });
        const tags = [...new Set([...(defaults.tags ?? []), ...(f.tags ?? [])])];
        const options = defaults.options || f.options ? { ...defaults.options, ...f.options } : undefined;
        const rec: HostRecord = { kind: 'host', v: 1, name, address: addresses[i] as string, tags, slots: f.slots ?? defaults.slots ?? 1 };
        const user = f.user ?? defaults.user;
        if (user !== undefined) rec.user = user;
        const port = f.port ?? defaults.port;
        if (port !== undefined) rec.port = port;
        const identity = f.identity ?? defaults.identity;
        if (identity !== undefined) rec.identity = identity;
        const jump = f.jump ?? defaults.jump;
        if (jump !== undefined) rec.jump = jump;
        if (options !== undefined) rec.options = options;
        const local = f.local ?? defaults.local;
        if (local !== undefined) rec.local = local;
        if (f.slurm !== undefined) rec.slurm = f.slurm;
        hosts.push(rec);
        if (hosts.length > 100_000) this.fail(keyNode, 'more than 100000 hosts in one inventory');
      });
    }
    return new InventoryView(this.source, hosts, origins);
  }
}
