// Edits the inventory the way a person would: comments, key order and quoting stay as written
// (yaml's Document API edits the parsed tree in place) and the file is replaced atomically.
import { open as openFile, rename, stat, unlink, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { isMap, isScalar, type Scalar, YAMLMap, YAMLSeq, parseDocument, type Document, type Pair } from 'yaml';
import { CmError, ExitCode, PATTERNS, randomHex } from '@cm/protocol';
import { expandRange, isPattern } from './ranges';
import type { Assignments } from './edit';
import { HOST_FIELDS, inventoryFromDocument, parseInventory, parseYaml, readInventoryText, type HostField, type HostFields, type InventoryView } from './load';

const NEW_FILE = `# cm inventory: see config/hosts.example.yaml for every field.
hosts: {}
`;

const TOKEN = new RegExp(PATTERNS.hostToken);

export class InventoryFile {
  private original: string | undefined;

  private constructor(
    readonly path: string,
    private doc: Document,
    text: string | undefined,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.original = text;
  }

  /** True until the first save of a file that did not exist when it was opened. */
  get isNew(): boolean {
    return this.original === undefined;
  }

  /** Opens (and validates) an inventory for editing; `create` starts an empty one when it is missing. */
  static async open(file: string, opts: { create?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<InventoryFile> {
    const env = opts.env ?? process.env;
    let text: string | undefined;
    try {
      text = await readInventoryText(file);
    } catch (err) {
      if (!(opts.create && err instanceof CmError && /no such inventory file/.test(err.message))) throw err;
    }
    const { doc } = text === undefined ? { doc: parseDocument(NEW_FILE) } : parseYaml(text, file);
    // Refuse to edit a file that is already invalid: the user fixes it first, nothing is written.
    inventoryFromDocument(doc, file, env);
    return new InventoryFile(file, doc, text, env);
  }

  private hostsMap(create: boolean): YAMLMap<unknown, unknown> | undefined {
    const contents = this.doc.contents;
    if (contents === null || (isScalar(contents) && contents.value === null)) {
      if (!create) return undefined;
      this.doc.contents = this.doc.createNode({ hosts: {} }) as never;
    }
    const root = this.doc.contents as unknown as YAMLMap<unknown, unknown>;
    let hosts = root.get('hosts', true) as unknown;
    if (!isMap(hosts)) {
      if (!create) return undefined;
      const m = new YAMLMap<unknown, unknown>();
      root.set('hosts', m);
      hosts = m;
    }
    const m = hosts as YAMLMap<unknown, unknown>;
    // `hosts: {}` in a new file is flow style; real entries read better in block style.
    if (create && m.items.length === 0) m.flow = false;
    return m;
  }

  private entries(): Array<{ key: string; pair: Pair<unknown, unknown> }> {
    const m = this.hostsMap(false);
    return (m?.items ?? []).map((pair) => ({ key: String(isScalar(pair.key) ? pair.key.value : pair.key), pair }));
  }

  /** The keys as written (a range stays one entry). */
  hostNames(): string[] {
    return this.entries().map((e) => e.key);
  }

  private find(name: string): Pair<unknown, unknown> | undefined {
    const exact = this.entries().find((e) => e.key === name);
    if (exact) return exact.pair;
    const inRange = this.entries().find((e) => isPattern(e.key) && safeExpand(e.key).includes(name));
    if (inRange) {
      throw new CmError(`host ${name} is part of the range ${inRange.key}; edit the whole range, or split it in the file first`, ExitCode.INPUT);
    }
    return undefined;
  }

  /** The fields an entry sets itself (defaults not applied, ranges not expanded). */
  entry(name: string): HostFields | undefined {
    const pair = this.find(name);
    if (!pair) return undefined;
    return isMap(pair.value) ? ((pair.value as YAMLMap<unknown, unknown>).toJSON() as HostFields) : {};
  }

  addHost(name: string, fields: HostFields): void {
    checkFields(fields);
    const names = expandRange(name);
    const existing = new Set(this.toInventory().hosts.map((h) => h.name));
    const clash = names.find((n) => existing.has(n));
    if (clash !== undefined) throw new CmError(`host ${clash} is already in ${this.path}; use cm-hosts set to change it`, ExitCode.INPUT);
    const m = this.hostsMap(true) as YAMLMap<unknown, unknown>;
    m.add(this.doc.createPair(name, this.fieldsNode(fields)) as never);
  }

  /** Adds the host or updates the given fields, leaving the others (and their comments) alone. */
  setHost(name: string, fields: HostFields): void {
    checkFields(fields);
    const pair = this.find(name);
    if (!pair) {
      this.addHost(name, fields);
      return;
    }
    if (!isMap(pair.value)) {
      pair.value = this.fieldsNode(fields);
      return;
    }
    const m = pair.value as YAMLMap<unknown, unknown>;
    // `a1: {}` (an add with no fields) grows into a block map, as a person would write it.
    if (m.items.length === 0) m.flow = false;
    for (const key of HOST_FIELDS) {
      const value = fields[key];
      if (value === undefined) continue;
      const current = m.get(key, true) as unknown;
      if (isScalar(current) && typeof value !== 'object') {
        // Changing the scalar in place keeps its trailing comment.
        (current as Scalar).value = value;
      } else {
        m.set(key, this.valueNode(key, value));
      }
    }
  }

  /** Removes fields from one entry (`cm-hosts set th1 jump=`). */
  unsetFields(name: string, keys: HostField[]): void {
    const pair = this.find(name);
    if (!pair) throw new CmError(`no host ${name} in ${this.path}`, ExitCode.INPUT);
    if (!isMap(pair.value)) return;
    for (const k of keys) (pair.value as YAMLMap<unknown, unknown>).delete(k);
  }

  removeHost(name: string): boolean {
    const pair = this.find(name);
    if (!pair) return false;
    const m = this.hostsMap(false) as YAMLMap<unknown, unknown>;
    m.items.splice(m.items.indexOf(pair), 1);
    return true;
  }

  /** The validated view of the document as it would be saved. */
  /** The entries of the file a selector covers; a selection must take a range entry whole. */
  entriesFor(selector: string | undefined): string[] {
    const view = this.toInventory();
    const selected = view.select(selector);
    const chosen = new Set(selected.map((h) => h.name));
    const keys: string[] = [];
    for (const h of selected) {
      const key = view.origins.get(h.name)?.key ?? h.name;
      if (keys.includes(key)) continue;
      const members = view.hosts.filter((o) => (view.origins.get(o.name)?.key ?? o.name) === key);
      if (members.some((m) => !chosen.has(m.name))) {
        throw new CmError(`${h.name} is part of the range ${key}; select all of it (${key}) or split the range in the file first`, ExitCode.INPUT);
      }
      keys.push(key);
    }
    return keys;
  }

  /** Removes the entries a selector covers; returns them. */
  removeSelected(selector: string | undefined): string[] {
    const keys = this.entriesFor(selector);
    for (const k of keys) this.removeHost(k);
    return keys;
  }

  /** Applies `cm-hosts set` to the entries a selector covers; returns them. */
  assign(selector: string | undefined, { fields, unset }: Assignments): string[] {
    const keys = this.entriesFor(selector);
    for (const k of keys) {
      if (Object.keys(fields).length > 0) {
        // options merge key by key, so `set th1 options.LogLevel=ERROR` keeps the others
        const own = fields.options ? { ...this.entry(k)?.options, ...fields.options } : undefined;
        this.setHost(k, own ? { ...fields, options: own } : fields);
      }
      if (unset.length > 0) this.unsetFields(k, unset);
    }
    return keys;
  }

  /** Adds imported hosts, or updates those already here (their tags keep theirs and gain `tags`). */
  importHosts(hosts: Array<{ name: string; fields: HostFields }>, tags: string[]): { added: number; updated: number } {
    const existing = new Set(this.hostNames());
    let added = 0;
    let updated = 0;
    for (const h of hosts) {
      const fields: HostFields = { ...h.fields };
      if (tags.length > 0) fields.tags = [...new Set([...(this.entry(h.name)?.tags ?? []), ...tags])];
      if (existing.has(h.name)) {
        this.setHost(h.name, fields);
        updated += 1;
      } else {
        this.addHost(h.name, fields);
        existing.add(h.name);
        added += 1;
      }
    }
    return { added, updated };
  }

  toInventory(): InventoryView {
    // Validates the very text save() would write, so its errors point at real lines.
    return parseInventory(this.toString(), this.path, this.env);
  }

  toString(): string {
    // Keep flow lists as people write them ([a, b]) and never re-wrap long lines.
    const text = this.doc.toString({ flowCollectionPadding: false, lineWidth: 0 });
    return this.original === undefined ? text : keepSpacing(this.original, text);
  }

  /**
   * Validates, then writes a temp file in the same directory, fsyncs it and renames it over the
   * original: readers see the old file or the new one, never half of one.
   */
  async save(): Promise<void> {
    const text = this.toString();
    parseInventory(text, this.path, this.env);
    const dir = path.dirname(this.path);
    await mkdir(dir, { recursive: true });
    const current = await readFile(this.path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (current !== this.original) {
      throw new CmError(`${this.path} changed while cm-hosts was editing it; nothing written, run the command again`, ExitCode.INPUT);
    }
    const mode = await stat(this.path).then(
      (s) => s.mode & 0o7777,
      () => 0o644,
    );
    const tmp = path.join(dir, `.${path.basename(this.path)}.${process.pid}.${randomHex(4)}.tmp`);
    const fh = await openFile(tmp, 'wx', mode);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
      await fh.close();
      await rename(tmp, this.path);
    } catch (err) {
      await fh.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    // The rename itself is durable only once the directory is synced.
    const dh = await openFile(dir, 'r').catch(() => undefined);
    if (dh) await dh.sync().catch(() => undefined).finally(() => dh.close());
    this.original = text;
  }

  private valueNode(key: HostField, value: unknown): unknown {
    if (key === 'tags') {
      const seq = new YAMLSeq();
      seq.flow = true;
      for (const t of value as string[]) seq.add(this.doc.createNode(t));
      return seq;
    }
    return this.doc.createNode(value);
  }

  private fieldsNode(fields: HostFields): YAMLMap<unknown, unknown> {
    const m = new YAMLMap<unknown, unknown>();
    for (const key of HOST_FIELDS) {
      const value = fields[key];
      if (value !== undefined) m.set(key, this.valueNode(key, value));
    }
    return m;
  }
}

/** Equal for lines that differ only in spacing the yaml printer normalises (before comments, in brackets). */
function spacingKey(line: string): string {
  return line.replace(/\s+#/, ' #').replace(/([[{])\s+/g, '$1').replace(/\s+([\]}])/g, '$1').trimEnd();
}

/**
 * yaml re-prints untouched lines with its own spacing (`a: 1   # c` becomes `a: 1 # c`). Lines
 * whose content is unchanged get the user's bytes back, so an edit shows up as a one-line diff.
 */
const COMMENTED = /^(\s*[A-Za-z0-9_][^:#'"]*:)(\s[^#'"]*?)(\s+)(#.*)$/;

function keepSpacing(original: string, printed: string): string {
  const pool = new Map<string, string[]>();
  for (const line of original.split('\n')) {
    const key = spacingKey(line);
    if (key === line) continue;
    const list = pool.get(key);
    if (list) list.push(line);
    else pool.set(key, [line]);
  }
  // A changed value keeps the gap before its comment: `slots: 4    # cores` -> `slots: 8    # cores`.
  const gaps = new Map<string, string>();
  for (const line of original.split('\n')) {
    const m = COMMENTED.exec(line);
    if (m) gaps.set(`${m[1]}\u0000${m[4]}`, m[3] as string);
  }
  const lines = printed.split('\n').map((line) => {
    const list = pool.get(spacingKey(line));
    if (list && list.length > 0) return list.shift() as string;
    const m = COMMENTED.exec(line);
    const gap = m ? gaps.get(`${m[1]}\u0000${m[4]}`) : undefined;
    return m && gap !== undefined ? `${m[1]}${m[2]}${gap}${m[4]}` : line;
  });
  let text = lines.join('\n');
  if (!original.endsWith('\n') && original !== '' && text.endsWith('\n')) text = text.slice(0, -1);
  return text;
}

function safeExpand(key: string): string[] {
  try {
    return expandRange(key);
  } catch {
    return [];
  }
}

/** Checks values given on the command line before they enter the tree (the file check follows at save). */
function checkFields(fields: HostFields): void {
  for (const key of Object.keys(fields)) {
    if (!(HOST_FIELDS as readonly string[]).includes(key)) throw new CmError(`unknown host field ${JSON.stringify(key)}; one of ${HOST_FIELDS.join(', ')}`, ExitCode.USAGE);
  }
  for (const key of ['user'] as const) {
    const v = fields[key];
    if (v !== undefined && !TOKEN.test(v)) throw new CmError(`${key} ${JSON.stringify(v)} is not allowed: it must start with a letter, digit or _ and hold no spaces or shell characters`, ExitCode.USAGE);
  }
  if (fields.slots !== undefined && (!Number.isInteger(fields.slots) || fields.slots < 1)) throw new CmError(`slots must be an integer >= 1, got ${fields.slots}`, ExitCode.USAGE);
  if (fields.port !== undefined && (!Number.isInteger(fields.port) || fields.port < 1 || fields.port > 65535)) throw new CmError(`port must be between 1 and 65535, got ${fields.port}`, ExitCode.USAGE);
  if (fields.tags !== undefined && !Array.isArray(fields.tags)) throw new CmError('tags must be a list', ExitCode.USAGE);
}
