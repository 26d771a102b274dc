import { CmError, ExitCode } from '@cm/protocol';

/** The part of a Vagrantfile cm-vagrant owns; everything around it belongs to the user. */
export interface VagrantSettings {
  box: string;
  /** '' = let cm-vagrant choose */
  provider: string;
  memory: number;
  cpus: number;
  nodes: string[];
}

const BEGIN = '# >>> cm-vagrant settings';
const END = '# <<< cm-vagrant settings';

export const BOX_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$/;
export const MACHINE_PREFIX = /^[A-Za-z][A-Za-z0-9-]{0,50}$/;
export const PROVIDER_NAME = /^[a-z][a-z0-9_-]*$/;

function block(text: string, source: string): { start: number; end: number; body: string } {
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (start < 0 || end < start) {
    throw new CmError(
      `${source}: not a cm-vagrant Vagrantfile (no "${BEGIN}" block); use another --dir or remove the file`,
      ExitCode.INPUT,
    );
  }
  const bodyStart = text.indexOf('\n', start) + 1;
  return { start: bodyStart, end, body: text.slice(bodyStart, end) };
}

export function parseSettings(text: string, source = 'Vagrantfile'): VagrantSettings {
  const { body } = block(text, source);
  const str = (key: string): string | undefined => {
    const m = new RegExp(`^${key}\\s*=\\s*"([^"\\\\#]*)"\\s*$`, 'm').exec(body);
    return m ? m[1] : undefined;
  };
  const int = (key: string): number | undefined => {
    const m = new RegExp(`^${key}\\s*=\\s*(\\d+)\\s*$`, 'm').exec(body);
    return m ? Number(m[1]) : undefined;
  };
  const nodesMatch = /^CM_NODES\s*=\s*%w\[([^\]]*)\]\s*$/m.exec(body);
  const box = str('CM_BOX');
  const provider = str('CM_PROVIDER');
  const memory = int('CM_MEMORY');
  const cpus = int('CM_CPUS');
  if (box === undefined || provider === undefined || memory === undefined || cpus === undefined || !nodesMatch) {
    const line = text.slice(0, text.indexOf(BEGIN)).split('\n').length;
    throw new CmError(`${source}:${line}: the cm-vagrant settings block is damaged; expected CM_BOX, CM_PROVIDER, CM_MEMORY, CM_CPUS, CM_NODES`, ExitCode.INPUT);
  }
  const nodes = (nodesMatch[1] ?? '').split(/\s+/).filter((n) => n !== '');
  return { box, provider, memory, cpus, nodes };
}

export function renderSettings(s: VagrantSettings): string {
  return [
    `CM_BOX = ${JSON.stringify(s.box)}`,
    `CM_PROVIDER = ${JSON.stringify(s.provider)}`,
    `CM_MEMORY = ${s.memory}`,
    `CM_CPUS = ${s.cpus}`,
    `CM_NODES = %w[${s.nodes.join(' ')}]`,
    '',
  ].join('\n');
}

/** The Vagrantfile text with its settings block replaced; the rest is kept byte for byte. */
export function updateVagrantfile(text: string, s: VagrantSettings, source = 'Vagrantfile'): string {
  for (const n of s.nodes) if (!/^[A-Za-z][A-Za-z0-9-]*$/.test(n)) throw new CmError(`bad machine name ${JSON.stringify(n)}`, ExitCode.USAGE);
  if (!BOX_NAME.test(s.box)) throw new CmError(`bad box name ${JSON.stringify(s.box)}`, ExitCode.USAGE);
  if (s.provider !== '' && !PROVIDER_NAME.test(s.provider)) throw new CmError(`bad provider name ${JSON.stringify(s.provider)}`, ExitCode.USAGE);
  const { start, end } = block(text, source);
  return text.slice(0, start) + renderSettings(s) + text.slice(end);
}

/** prefix1..prefixN */
export function machineNames(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);
}

/**
 * The machines after scaling to N: the names kept (in order) and those to destroy. Numbers already in
 * use are kept so a machine keeps its name, address and data across `up 5` / `up 3`.
 */
export function scale(current: string[], prefix: string, n: number): { nodes: string[]; removed: string[] } {
  const wanted = machineNames(prefix, n);
  const others = current.filter((c) => !c.startsWith(prefix) || !/^\d+$/.test(c.slice(prefix.length)));
  const removed = current.filter((c) => !others.includes(c) && !wanted.includes(c));
  return { nodes: [...others, ...wanted], removed };
}
