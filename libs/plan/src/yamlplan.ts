// The YAML form: `tasks:` (name -> shell text, or a map of options) and `plan:` (a string or a list of steps).
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node as YamlNode, type Pair } from 'yaml';
import { parseExpression, type Node } from './expr';
import { OPTION_NAMES, setOption, type TaskOptions } from './options';
import { parseParams, type Param } from './params';
import { makeDef, parseHeader, type Def } from './planfile';
import { inputError, nearest, sourceError, type Pos, type Segment } from './source';

export interface YamlPlan {
  defs: Def[];
  expression?: Node;
}

const TASK_KEYS = ['run', 'params', ...OPTION_NAMES];

export function parseYamlPlan(text: string, source: string): YamlPlan {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const lines = text.split('\n');
  const posOf = (offset: number): Pos => {
    const { line, col } = lc.linePos(offset);
    return { source, line, col, text: (lines[line - 1] ?? '').replace(/\r$/, '') };
  };
  const nodePos = (node: YamlNode | null | undefined, fallback = 0): Pos => posOf(node?.range?.[0] ?? fallback);
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    throw inputError(posOf(e.pos[0]), `YAML: ${e.message.split('\n')[0]}`);
  }
  const root = doc.contents;
  if (!isMap(root)) throw sourceError(source, "a YAML plan is a map with 'tasks:' and 'plan:'");
  let tasksNode: YamlNode | undefined;
  let planNode: YamlNode | undefined;
  for (const pair of root.items as Pair<YamlNode, YamlNode>[]) {
    const key = isScalar(pair.key) ? String(pair.key.value) : '';
    if (key === 'tasks') tasksNode = pair.value ?? undefined;
    else if (key === 'plan') planNode = pair.value ?? undefined;
    else {
      const hint = nearest(key, ['tasks', 'plan']);
      throw inputError(nodePos(pair.key), `unknown key '${key}'${hint ? `; did you mean ${hint}?` : ''} (a YAML plan has tasks: and plan:)`);
    }
  }
  const defs: Def[] = [];
  if (tasksNode !== undefined && !isMap(tasksNode)) throw inputError(nodePos(tasksNode), 'tasks: is a map of task name -> shell commands or options');
  for (const pair of (isMap(tasksNode) ? tasksNode.items : []) as Pair<YamlNode, YamlNode>[]) {
    defs.push(taskDef(pair, nodePos, source));
  }

  // Each line of the plan text is found again in the file, so errors point into the file itself.
  const segmentsOf = (node: YamlNode): Segment[] => {
    if (!isScalar(node) || typeof node.value !== 'string') throw inputError(nodePos(node), 'a plan step is a string such as "(a | b); c"');
    const start = node.range?.[0] ?? 0;
    let offset = start;
    return node.value.split('\n').map((t) => {
      const found = t.trim() === '' ? -1 : text.indexOf(t.trim(), offset);
      const base = found >= 0 ? found - (t.length - t.trimStart().length) : start;
      if (found >= 0) offset = found + t.trim().length;
      const p = posOf(Math.max(0, base));
      return { source, line: p.line, col: p.col, text: t, lineText: p.text };
    });
  };
  let expression: Node | undefined;
  if (planNode !== undefined && planNode !== null) {
    if (isSeq(planNode)) {
      const steps = (planNode.items as YamlNode[]).map((item) => parseExpression(segmentsOf(item), source));
      if (steps.length === 1) expression = steps[0];
      else if (steps.length > 1) expression = { kind: 'seq', items: steps, at: steps[0].at };
    } else {
      expression = parseExpression(segmentsOf(planNode), source);
    }
  }
  return { defs, expression };
}

function words(node: YamlNode, what: string, nodePos: (n: YamlNode) => Pos): string[] {
  if (isSeq(node)) return (node.items as YamlNode[]).map((n) => words(n, what, nodePos)[0]);
  if (isScalar(node) && node.value !== null && typeof node.value !== 'object') return [String(node.value)];
  throw inputError(nodePos(node), `${what}: expected a value or a list of values`);
}

function taskDef(pair: Pair<YamlNode, YamlNode>, nodePos: (n: YamlNode | null | undefined) => Pos, source: string): Def {
  const keyNode = pair.key;
  if (!isScalar(keyNode)) throw inputError(nodePos(keyNode), 'a task name is a plain string such as a or bench(i=1..10)');
  const keyText = String(keyNode.value);
  const keyPos = nodePos(keyNode);
  const keyAt = (i: number): Pos => ({ ...keyPos, col: keyPos.col + i });
  const h = parseHeader(keyText, 0, (i) => i >= keyText.length, 'the end of the task name', keyAt);
  const params: Param[] = [...h.params];
  const options: TaskOptions = {};
  let body: string | undefined;
  const value = pair.value;
  if (isScalar(value) && value.value !== null && typeof value.value !== 'object') {
    body = String(value.value);
  } else if (isMap(value)) {
    for (const item of value.items as Pair<YamlNode, YamlNode>[]) {
      const key = isScalar(item.key) ? String(item.key.value) : '';
      const at = nodePos(item.key);
      const v = item.value;
      if (key === 'run' || key === 'command') {
        if (!isScalar(v) || typeof v.value !== 'string') throw inputError(nodePos(v ?? item.key), `${key}: the shell commands of ${h.name}, as a string`);
        body = v.value;
      } else if (key === 'params') {
        if (!isMap(v)) throw inputError(nodePos(v ?? item.key), 'params: a map of name -> range (1..10), list ([a, b]) or value');
        for (const p of v.items as Pair<YamlNode, YamlNode>[]) {
          const name = isScalar(p.key) ? String(p.key.value) : '';
          const pAt = nodePos(p.value ?? p.key);
          if (isSeq(p.value)) {
            const text = `${name}=[${words(p.value, name, nodePos).map((w) => JSON.stringify(w)).join(', ')}]`;
            params.push(...parseParams(text, () => pAt));
          } else {
            const w = words(p.value as YamlNode, name, nodePos)[0];
            params.push(...parseParams(`${name}=${/^-?\d+\.\.-?\d+(\s+step\s+\d+)?$/.test(w) ? w : JSON.stringify(w)}`, () => pAt));
          }
          if (params.filter((q) => q.name === name).length > 1) throw inputError(pAt, `duplicate parameter ${name}`);
        }
      } else if (TASK_KEYS.includes(key)) {
        if (key === 'env') {
          if (!isMap(v)) throw inputError(nodePos(v ?? item.key), 'env: a map of NAME: value');
          const pairs = (v.items as Pair<YamlNode, YamlNode>[]).map((p) => `${isScalar(p.key) ? String(p.key.value) : ''}=${words(p.value as YamlNode, 'env', nodePos)[0]}`);
          setOption(options, 'env', pairs, (k) => (k < 0 ? at : nodePos((v.items[k] as Pair<YamlNode, YamlNode>).key)));
        } else {
          const ws = v === null || v === undefined ? [] : words(v, key, nodePos);
          const items = isSeq(v) ? (v.items as YamlNode[]) : [];
          setOption(options, key, ws, (k) => (k < 0 ? at : nodePos(items[k] ?? v)));
        }
      } else {
        const hint = nearest(key, TASK_KEYS);
        throw inputError(at, `unknown task key '${key}'${hint ? `; did you mean ${hint}?` : ''} (known: ${TASK_KEYS.join(', ')})`);
      }
    }
  } else {
    throw inputError(nodePos(value ?? keyNode), `task ${h.name}: give its shell commands as a string, or a map with run: and options`);
  }
  if (body === undefined) throw inputError(keyPos, `task ${h.name} has no run: (the shell commands it runs)`);
  return makeDef(h.name, params, options, dedentBlock(body), h.at, 'as its value or its run:');
}

function dedentBlock(body: string): string {
  return body.replace(/\s+$/, '');
}
