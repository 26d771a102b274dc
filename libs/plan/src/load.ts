// Gathers a plan from its sources: a plan file (def form or YAML), --def options, an expression argument.
import { isAbsolute, resolve } from 'node:path';
import { parseExpression, segmentsOf, type Node } from './expr';
import { makeDef, parseHeader, parsePlanText, type Def } from './planfile';
import { planOf, type Plan } from './plan';
import { sourceError, type Pos } from './source';
import type { parseYamlPlan } from './yamlplan';

export type YamlParser = typeof parseYamlPlan;

/** True when a plan file is in the YAML form (by its name, else by its first line). */
export function isYamlPlan(text: string, source: string): boolean {
  if (/\.ya?ml$/i.test(source)) return true;
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) continue;
    return /^(---|tasks\s*:|plan\s*:)/.test(t);
  }
  return false;
}

export interface PlanInput {
  /**
   * the plan file's text, its name for messages (a path or `stdin`) and, for a file, its folder:
   * the file's relative @inputs are found there, whatever the current directory
   */
  file?: { text: string; source: string; dir?: string };
  /** `NAME=BODY` or `NAME(PARAMS)=BODY`, from --def */
  defs?: string[];
  /** an expression given on the command line; replaces the file's */
  expression?: string;
}

export interface Loaded {
  plan: Plan;
  expression: Node;
}

export function parseDefOption(text: string, k: number): Def {
  const at = (i: number): Pos => ({ source: '--def', line: k + 1, col: i + 1, text });
  const h = parseHeader(text, 0, (i) => text[i] === '=', "'=' and the shell commands (NAME=BODY)", at);
  return makeDef(h.name, h.params, {}, text.slice(h.next).trim(), h.at, `after the '=' (${h.name}='echo hello')`);
}

/**
 * Loads a plan; YAML plans need `yaml` (the parser of ./yamlplan), which loadPlanAsync imports only
 * when a YAML plan is given: the YAML library is half of cm-plan's bundle and of its start time.
 */
export function loadPlan(input: PlanInput, yaml?: YamlParser): Loaded {
  const defs: Def[] = [];
  let expression: Node | undefined;
  let source = 'expression';
  if (input.file) {
    const { text, source: name } = input.file;
    source = name;
    if (isYamlPlan(text, name)) {
      if (!yaml) throw new Error('loadPlan: a YAML plan needs the YAML parser (use loadPlanAsync)');
      const y = yaml(text, name);
      defs.push(...y.defs);
      expression = y.expression;
    } else {
      const p = parsePlanText(text, name);
      defs.push(...p.defs);
      if (p.expression.length > 0) expression = parseExpression(p.expression, name);
    }
    const dir = input.file.dir;
    if (dir !== undefined) {
      // Absolute, so cm-fetch --stage-in finds them from any directory; each is still staged under its own
      // name. A location's URL (az://c/bench.sh, ssh://host/path) is no path: it stays as written.
      for (const d of defs) if (d.options.inputs) d.options.inputs = d.options.inputs.map((f) => (isAbsolute(f) || /^[a-z][a-z0-9+.-]*:/i.test(f) ? f : resolve(dir, f)));
    }
  }
  (input.defs ?? []).forEach((d, k) => defs.push(parseDefOption(d, k)));
  if (input.expression !== undefined) {
    source = 'expression';
    expression = parseExpression(segmentsOf(input.expression, 'expression'), 'expression');
  }
  if (!expression) throw sourceError(source, "empty plan: no expression to run (write one such as 'a | b; c')");
  return { plan: planOf(defs, expression, source), expression };
}

export async function loadPlanAsync(input: PlanInput): Promise<Loaded> {
  const yaml = input.file && isYamlPlan(input.file.text, input.file.source) ? (await import('./yamlplan')).parseYamlPlan : undefined;
  return loadPlan(input, yaml);
}
