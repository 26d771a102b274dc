// Per-task options: decorator lines above a def (`@timeout(30)`) or keys of a YAML task.
import { isEnvName } from '@cm/protocol';
import { inputError, nearest, type Pos } from './source';

export interface TaskOptions {
  host?: string;
  timeout?: number;
  retries?: number;
  inputs?: string[];
  outputs?: string[];
  result?: string;
  env?: Record<string, string>;
}

export const OPTION_NAMES = ['host', 'timeout', 'retries', 'inputs', 'outputs', 'result', 'env'] as const;
export type OptionName = (typeof OPTION_NAMES)[number];

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
const UNIT: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };

/**
 * Checks one option's values (already split into words) and stores it. `at(k)` locates word k
 * (k = -1: the option name) for errors.
 */
export function setOption(opts: TaskOptions, name: string, words: string[], at: (k: number) => Pos): void {
  if (!(OPTION_NAMES as readonly string[]).includes(name)) {
    const hint = nearest(name, OPTION_NAMES);
    throw inputError(at(-1), `unknown option ${name}${hint ? `; did you mean ${hint}?` : ''} (known: ${OPTION_NAMES.join(', ')})`);
  }
  const key = name as OptionName;
  if (opts[key] !== undefined) throw inputError(at(-1), `option ${name} given twice`);
  const one = (): string => {
    if (words.length !== 1) throw inputError(at(words.length > 1 ? 1 : -1), `${name} takes exactly one value, got ${words.length}`);
    if (words[0] === '') throw inputError(at(0), `${name} needs a value`);
    return words[0];
  };
  switch (key) {
    case 'host': {
      // @host(th1, node[01-04], @gpu): a comma-separated selection, as everywhere a host list is taken
      if (words.length === 0) throw inputError(at(-1), 'host needs a host name, range or @tag');
      words.forEach((v, k) => {
        if (v === '' || /\s/.test(v) || v.startsWith('-')) throw inputError(at(k), `not a host, range or @tag: '${v}'`);
      });
      opts.host = words.join(',');
      return;
    }
    case 'timeout': {
      const v = one();
      const m = DURATION.exec(v);
      const seconds = m ? Number(m[1]) * UNIT[m[2] ?? 's'] : NaN;
      if (!m || !(seconds > 0)) throw inputError(at(0), `a timeout is a positive number of seconds, or with a unit like 90s, 5m, 2h; found '${v}'`);
      opts.timeout = seconds;
      return;
    }
    case 'retries': {
      const v = one();
      if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw inputError(at(0), `retries is a whole number (0, 1, 2, ...), found '${v}'`);
      opts.retries = Number(v);
      return;
    }
    case 'result':
      opts.result = one();
      return;
    case 'inputs':
    case 'outputs':
      if (words.length === 0 || words.some((w) => w === '')) throw inputError(at(words.indexOf('')), `${name} lists one or more files`);
      opts[key] = words;
      return;
    case 'env': {
      const env: Record<string, string> = {};
      words.forEach((w, k) => {
        const eq = w.indexOf('=');
        const variable = eq < 0 ? w : w.slice(0, eq);
        if (eq < 0 || !isEnvName(variable)) throw inputError(at(k), `env takes NAME=value pairs, found '${w}'`);
        if (variable.startsWith('CM_')) throw inputError(at(k), `variables starting with CM_ are reserved for cm (${variable})`);
        env[variable] = w.slice(eq + 1);
      });
      if (words.length === 0) throw inputError(at(-1), 'env takes NAME=value pairs');
      opts.env = env;
      return;
    }
  }
}

/** The options in the order a job record lists them, for --explain. */
export function describeOptions(o: TaskOptions): string[] {
  const out: string[] = [];
  if (o.host) out.push(`host ${o.host}`);
  if (o.timeout !== undefined) out.push(`timeout ${o.timeout}s`);
  if (o.retries !== undefined) out.push(`retries ${o.retries}`);
  if (o.inputs) out.push(`inputs ${o.inputs.join(' ')}`);
  if (o.outputs) out.push(`outputs ${o.outputs.join(' ')}`);
  if (o.result) out.push(`result ${o.result}`);
  if (o.env) out.push(`env ${Object.entries(o.env).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  return out;
}
