// Vagrant's --machine-readable output: `timestamp,target,type,data...` one per line, where commas inside a
// field are written `%!(VAGRANT_COMMA)` and newlines `\n`. Vagrant 2.3 also prints the human text of
// some commands (ssh-config) between those lines, so anything that is not such a line is skipped.

export interface MachineRow {
  timestamp: number;
  /** machine name, or '' for the whole environment (ui messages, error-exit) */
  target: string;
  type: string;
  data: string[];
}

const ROW = /^(\d+),([^,]*),([^,]+)(?:,(.*))?$/;

export function unescapeField(field: string): string {
  return field
    .replace(/%!\(VAGRANT_COMMA\)/g, ',')
    .replace(/\\([nrt\\])/g, (_, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c === 't' ? '\t' : '\\'));
}

/** One line, or undefined when it is not a machine-readable row. */
export function parseRow(line: string): MachineRow | undefined {
  const m = ROW.exec(line.replace(/\r$/, ''));
  if (!m) return undefined;
  const rest = m[4];
  return {
    timestamp: Number(m[1]),
    target: m[2] ?? '',
    type: m[3] ?? '',
    data: rest === undefined ? [] : rest.split(',').map(unescapeField),
  };
}

export function parseMachineReadable(text: string): MachineRow[] {
  const rows: MachineRow[] = [];
  for (const line of text.split('\n')) {
    const row = parseRow(line);
    if (row) rows.push(row);
  }
  return rows;
}

export interface VagrantErrorExit {
  /** e.g. Vagrant::Errors::ProviderNotUsable */
  errorClass: string;
  message: string;
}

export function findErrorExit(rows: MachineRow[]): VagrantErrorExit | undefined {
  const row = rows.find((r) => r.type === 'error-exit');
  if (!row) return undefined;
  return { errorClass: row.data[0] ?? '', message: row.data.slice(1).join(',') };
}

/** What Vagrant said to people: `ui` rows (info, output, detail, warn, error), in order. */
export function uiText(row: MachineRow): string | undefined {
  if (row.type !== 'ui') return undefined;
  return row.data.slice(1).join(',');
}
