// cm-reduce's values for people: one row per reduce and group, one column per op.
import { formatTable, type ValueRecord } from '@cm/protocol';

/** Missing inputs shown in a cell before "..." */
const MISSING_SHOWN = 5;

interface Row {
  id: string;
  group: Record<string, string>;
  cells: Map<string, ValueRecord>;
  first: ValueRecord;
}

function cellText(v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'string') return /[\n\t]/.test(v) ? JSON.stringify(v) : v;
  return typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
}

function incomplete(rec: ValueRecord): boolean {
  return (rec.missing?.length ?? 0) > 0 || (rec.want !== undefined && (rec.have ?? 0) < rec.want);
}

/**
 * The table of the last (final) value of each reduce, group and op: columns ID, one per `by`
 * parameter, one per op (the value, `-`, or the error once per row), then HAVE/WANT and MISSING
 * when a row lacks inputs. Reduces in order of first appearance; groups sorted by each parameter,
 * numerically when every value of that parameter is a number, else in order of first appearance.
 */
export function valuesTable(values: ValueRecord[]): string {
  const rows = new Map<string, Row>();
  const params: string[] = [];
  const ops: string[] = [];
  const idOrder = new Map<string, number>();
  for (const rec of values) {
    if (rec.partial) continue;
    const group = rec.group ?? {};
    for (const p of Object.keys(group)) if (!params.includes(p)) params.push(p);
    const op = rec.op ?? '';
    if (!ops.includes(op)) ops.push(op);
    if (!idOrder.has(rec.id)) idOrder.set(rec.id, idOrder.size);
    const key = JSON.stringify([rec.id, group]);
    let row = rows.get(key);
    if (!row) {
      row = { id: rec.id, group, cells: new Map(), first: rec };
      rows.set(key, row);
    }
    row.cells.set(op, rec);
  }
  const all = [...rows.values()];
  const rank = params.map((p) => {
    const seen = all.map((r) => r.group[p]).filter((v): v is string => v !== undefined);
    const numeric = seen.length > 0 && seen.every((v) => v.trim() !== '' && Number.isFinite(Number(v)));
    const order = new Map<string, number>();
    for (const v of seen) if (!order.has(v)) order.set(v, order.size);
    return (v: string | undefined): number => (v === undefined ? Infinity : numeric ? Number(v) : (order.get(v) as number));
  });
  all.sort((a, b) => {
    const d = (idOrder.get(a.id) as number) - (idOrder.get(b.id) as number);
    if (d !== 0) return d;
    for (const [i, p] of params.entries()) {
      const f = rank[i] as (v: string | undefined) => number;
      const x = f(a.group[p]);
      const y = f(b.group[p]);
      if (x !== y) return x < y ? -1 : 1;
    }
    return 0;
  });
  const haveWant = all.some((r) => incomplete(r.first));
  const missing = all.some((r) => (r.first.missing?.length ?? 0) > 0);
  const header = ['ID', ...params.map((p) => p.toUpperCase()), ...ops.map((o) => o.toUpperCase())];
  if (haveWant) header.push('HAVE/WANT');
  if (missing) header.push('MISSING');
  const body = all.map((r) => {
    let shownError: string | undefined;
    const cells = ops.map((op) => {
      const rec = r.cells.get(op);
      if (!rec) return '-';
      if (rec.error === undefined) return cellText(rec.value);
      // Several ops of one failed reduce share its error: say it once.
      if (rec.error === shownError) return '-';
      shownError = rec.error;
      return `error: ${rec.error}`;
    });
    const line = [r.id, ...params.map((p) => r.group[p] ?? '-'), ...cells];
    if (haveWant) line.push(r.first.want === undefined ? String(r.first.have ?? '-') : `${r.first.have ?? 0}/${r.first.want}`);
    if (missing) {
      const m = r.first.missing ?? [];
      line.push(m.length === 0 ? '-' : `${m.slice(0, MISSING_SHOWN).join(',')}${m.length > MISSING_SHOWN ? `,... (${m.length})` : ''}`);
    }
    return line;
  });
  return formatTable(header, body);
}
