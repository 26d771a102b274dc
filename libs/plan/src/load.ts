// Gathers a plan from its sources: a plan file (def form or YAML), --def options, an expression argument.
import { parseExpression, segmentsOf, type Node } from './expr';
import { makeDef, parseHeader, parsePlanText, type Def } from './planfile';
import { planOf, type Plan } from './plan';
import { sourceError, type Pos } from './source';
import { looksLikeYaml, parseYamlPlan } from './yamlplan';

export interface PlanInput {
  /** the plan file's text and its name for messages (a path or `stdin`) */
  file?: { text: string; source: string };
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

export function loadPlan(input: PlanInput): Loaded {
  const defs: Def[] = [];
  let expression: Node | undefined;
  let source = 'expression';
  if (input.file) {
    const { text, source: name } = input.file;
    source = name;
    if (/\.ya?ml$/i.test(name) || looksLikeYaml(text)) {
      const y = parseYamlPlan(text, name);
      defs.push(...y.defs);
      expression = y.expression;
    } else {
      const p = parsePlanText(text, name);
      defs.push(...p.defs);
      if (p.expression.length > 0) expression = parseExpression(p.expression, name);
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
