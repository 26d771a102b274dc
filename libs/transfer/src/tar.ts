// A streaming reader for the tar archives `tar -cf -` writes on the remote host (ustar, GNU long
// names, pax headers). We read the archive ourselves instead of running a local `tar -x`, so each
// entry's name and type is checked before a byte of it touches the disk.

export class TarFormatError extends Error {}

/** big: a file cm-fetch's server only announced (its size, no body), to be fetched on its own */
export type EntryType = 'file' | 'big' | 'dir' | 'symlink' | 'hardlink' | 'device' | 'fifo' | 'other';

export interface TarEntry {
  name: string;
  type: EntryType;
  /** the raw type flag, for messages */
  flag: string;
  size: number;
  linkname: string;
  mode: number;
}

export interface BodySink {
  write(chunk: Buffer): Promise<void> | void;
}

export interface TarHandler {
  /** called once per entry; return a sink to receive a file's body, or null to skip it */
  entry(e: TarEntry): Promise<BodySink | null>;
  /** called after the last body chunk of an entry that got a sink */
  entryEnd(e: TarEntry): Promise<void>;
}

/** Pulls exact byte counts out of an async stream of chunks without copying bodies. */
export class ByteReader {
  private chunk: Buffer = Buffer.alloc(0);
  private off = 0;
  private done = false;
  constructor(private readonly it: AsyncIterator<Buffer>) {}

  private async fill(): Promise<boolean> {
    while (this.off >= this.chunk.length) {
      if (this.done) return false;
      const next = await this.it.next();
      if (next.done) {
        this.done = true;
        return false;
      }
      this.chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
      this.off = 0;
    }
    return true;
  }

  /** n bytes; null at a clean EOF; a TarFormatError when the stream stops inside them */
  async exact(n: number): Promise<Buffer | null> {
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      if (!(await this.fill())) {
        if (got === 0) return null;
        throw new TarFormatError('archive truncated');
      }
      const take = Math.min(n - got, this.chunk.length - this.off);
      parts.push(this.chunk.subarray(this.off, this.off + take));
      this.off += take;
      got += take;
    }
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  }

  /** hands n bytes to fn in slices as they arrive */
  async pipe(n: number, fn: ((b: Buffer) => Promise<void> | void) | null): Promise<void> {
    let left = n;
    while (left > 0) {
      if (!(await this.fill())) throw new TarFormatError('archive truncated inside a file');
      const take = Math.min(left, this.chunk.length - this.off);
      const slice = this.chunk.subarray(this.off, this.off + take);
      this.off += take;
      left -= take;
      if (fn) {
        const p = fn(slice);
        if (p) await p;
      }
    }
  }

  /** the next line without its newline; null at a clean EOF */
  async line(limit: number): Promise<string | null> {
    const parts: Buffer[] = [];
    let size = 0;
    while (await this.fill()) {
      const nl = this.chunk.indexOf(0x0a, this.off);
      // the whole line in this chunk (a reply's line per file, nearly always): no copy to join
      if (nl !== -1 && parts.length === 0) {
        const text = this.chunk.toString('utf8', this.off, nl);
        this.off = nl + 1;
        return text;
      }
      const end = nl === -1 ? this.chunk.length : nl;
      parts.push(this.chunk.subarray(this.off, end));
      size += end - this.off;
      this.off = nl === -1 ? end : end + 1;
      if (nl !== -1) return Buffer.concat(parts).toString('utf8');
      if (size > limit) throw new TarFormatError(`a line of more than ${limit} bytes`);
    }
    if (size === 0) return null;
    throw new TarFormatError('stream ended inside a line');
  }

  async rest(limit: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let size = 0;
    while (await this.fill()) {
      const slice = this.chunk.subarray(this.off);
      this.off = this.chunk.length;
      size += slice.length;
      if (size > limit) throw new TarFormatError(`more than ${limit} bytes after the archive`);
      parts.push(slice);
    }
    return Buffer.concat(parts);
  }
}

function cstr(buf: Buffer, start: number, len: number): string {
  const end = buf.indexOf(0, start);
  return buf.toString('utf8', start, end === -1 || end > start + len ? start + len : end);
}

function num(buf: Buffer, start: number, len: number): number {
  // GNU base-256 for sizes of 8 GiB and more: high bit of the first byte set.
  if ((buf[start] as number) & 0x80) {
    let v = (buf[start] as number) & 0x7f;
    for (let i = start + 1; i < start + len; i += 1) v = v * 256 + (buf[i] as number);
    if (!Number.isSafeInteger(v)) throw new TarFormatError('size too large');
    return v;
  }
  const text = cstr(buf, start, len).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`bad octal field ${JSON.stringify(text)}`);
  return parseInt(text, 8);
}

function checksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < 512; i += 1) sum += i >= 148 && i < 156 ? 32 : (h[i] as number);
  return num(h, 148, 8) === sum;
}

function typeOf(flag: string): EntryType {
  switch (flag) {
    case '0':
    case '\0':
    case '7':
    case '':
      return 'file';
    case '5':
      return 'dir';
    case '2':
      return 'symlink';
    case '1':
      return 'hardlink';
    case '3':
    case '4':
      return 'device';
    case '6':
      return 'fifo';
    case 'B':
      return 'big';
    default:
      return 'other';
  }
}

function parsePax(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length) {
    const sp = body.indexOf(0x20, i);
    if (sp === -1) break;
    const len = Number(body.toString('ascii', i, sp));
    if (!Number.isInteger(len) || len <= 0 || i + len > body.length) throw new TarFormatError('bad pax header');
    const rec = body.toString('utf8', sp + 1, i + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

const pad = (n: number): number => (512 - (n % 512)) % 512;
const MAX_META = 1024 * 1024;

/**
 * Reads a whole archive, calling the handler per entry, and returns the bytes that follow the
 * end-of-archive marker (the remote side appends checksums there).
 */
export async function readTar(source: AsyncIterable<Buffer>, handler: TarHandler, trailerLimit = 64 * 1024 * 1024): Promise<Buffer> {
  const r = new ByteReader(source[Symbol.asyncIterator]());
  await readEntries(r, handler);
  // After the first zero block: the second (tar always writes it), then padding and our trailer.
  return r.rest(trailerLimit);
}

/**
 * Reads one archive from a stream that goes on after it (cm-fetch's server): its entries, then
 * exactly the two zero blocks that end it, leaving the reader at the byte after them.
 */
export async function readArchive(r: ByteReader, handler: TarHandler): Promise<void> {
  await readEntries(r, handler);
  const second = await r.exact(512);
  if (second === null || !second.every((b) => b === 0)) throw new TarFormatError('archive without its second end block');
}

/** Calls the handler per entry, up to and including the first zero block. */
async function readEntries(r: ByteReader, handler: TarHandler): Promise<void> {
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax: Record<string, string> = {};
  for (;;) {
    const h = await r.exact(512);
    if (h === null) throw new TarFormatError('archive ended without its end marker');
    if (h.every((b) => b === 0)) return;
    if (!checksumOk(h)) throw new TarFormatError('bad header checksum');
    const flag = String.fromCharCode(h[156] as number);
    let size = num(h, 124, 12);
    if (flag === 'L' || flag === 'K' || flag === 'x' || flag === 'g') {
      if (size > MAX_META) throw new TarFormatError('metadata entry too large');
      const body = (await r.exact(size + pad(size))) ?? Buffer.alloc(0);
      if (flag === 'L') longName = cstr(body, 0, size);
      else if (flag === 'K') longLink = cstr(body, 0, size);
      else if (flag === 'x') pax = parsePax(body.subarray(0, size));
      continue;
    }
    const ustar = h.toString('ascii', 257, 262) === 'ustar';
    const prefix = ustar ? cstr(h, 345, 155) : '';
    let name = cstr(h, 0, 100);
    if (prefix !== '') name = `${prefix}/${name}`;
    name = pax.path ?? longName ?? name;
    const linkname = pax.linkpath ?? longLink ?? cstr(h, 157, 100);
    if (pax.size !== undefined) size = Number(pax.size);
    longName = longLink = undefined;
    pax = {};
    const type = typeOf(flag);
    // Only regular files carry a body that belongs to the entry; the rest have size 0 in practice.
    const bodySize = type === 'file' || type === 'other' ? size : 0;
    const entry: TarEntry = { name, type, flag, size: type === 'big' ? size : bodySize, linkname, mode: num(h, 100, 8) };
    const sink = await handler.entry(entry);
    await r.pipe(bodySize, sink ? (b) => sink.write(b) : null);
    await r.pipe(pad(bodySize), null);
    if (sink) await handler.entryEnd(entry);
  }
}
