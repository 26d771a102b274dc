import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { InputError, recordProblem } from '@cm/protocol';
import { loadPlan as load, parseExpressionText, planLines, printExpression, shapeOf, explain, type Node, type PlanInput } from './index';

import { parseYamlPlan } from './yamlplan';

const loadPlan = (input: PlanInput) => load(input, parseYamlPlan);

const ASSIGNMENT = `def a():
    echo 1
def b():
    echo 2
def c():
    echo 3
def d():
    echo 4
(a | b | c); d; a+b+c+d
`;

function records(input: PlanInput): Array<Record<string, unknown>> {
  const { plan } = loadPlan(input);
  return [...planLines(plan)].map((l) => {
    const r = JSON.parse(l);
    expect(recordProblem(r)).toBeNull();
    return r;
  });
}
const file = (text: string, source = 'plan.cm'): PlanInput => ({ file: { text, source } });
const defs = (expression: string, ...names: string[]): PlanInput => ({ defs: names.map((n) => `${n}=echo ${n}`), expression });
const deps = (rs: Array<Record<string, unknown>>): Record<string, unknown> =>
  Object.fromEntries(rs.filter((r) => r.kind === 'job').map((r) => [r.id, r.deps]));

function errorOf(input: PlanInput): InputError {
  try {
    loadPlan(input);
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return err as InputError;
  }
  throw new Error('expected an InputError');
}

describe('the assignment example', () => {
  it('runs a, b, c in parallel, d after them, and adds all four once', () => {
    const rs = records(file(ASSIGNMENT));
    // the reduce first: cm-reduce knows what to add before the values pass
    expect(rs).toEqual([
      { kind: 'reduce', v: 1, id: 'sum:a+b+c+d', op: 'sum', inputs: ['a', 'b', 'c', 'd'], final: true },
      { kind: 'job', v: 1, id: 'a', task: 'a', command: 'echo 1', deps: [] },
      { kind: 'job', v: 1, id: 'b', task: 'b', command: 'echo 2', deps: [] },
      { kind: 'job', v: 1, id: 'c', task: 'c', command: 'echo 3', deps: [] },
      { kind: 'job', v: 1, id: 'd', task: 'd', command: 'echo 4', deps: ['a', 'b', 'c'] },
    ]);
  });
  it('is the same from --def and an expression', () => {
    const rs = records({ defs: ['a=echo 1', 'b=echo 2', 'c=echo 3', 'd=echo 4'], expression: '(a | b | c); d; a+b+c+d' });
    expect(rs).toEqual(records(file(ASSIGNMENT)));
  });
  it('is the same from YAML', () => {
    const yaml = `tasks:\n  a: echo 1\n  b: echo 2\n  c: echo 3\n  d: echo 4\nplan: (a | b | c); d; a+b+c+d\n`;
    expect(records(file(yaml, 'plan.yaml'))).toEqual(records(file(ASSIGNMENT)));
    const steps = `tasks:\n  a: echo 1\n  b: echo 2\n  c: echo 3\n  d: echo 4\nplan:\n  - a | b | c\n  - d\n  - a+b+c+d\n`;
    expect(records(file(steps, 'stdin'))).toEqual(records(file(ASSIGNMENT)));
  });
});

describe('grammar', () => {
  const shape = (t: string) => shapeOf(parseExpressionText(t));
  it('binds + tighter than | tighter than ;', () => {
    expect(shape('a | b + c; d')).toEqual({ seq: [{ par: ['a', { sum: ['b', 'c'] }] }, 'd'] });
    expect(shape('a; b | c + d')).toEqual({ seq: ['a', { par: ['b', { sum: ['c', 'd'] }] }] });
  });
  it('groups with parentheses and keeps n-ary chains flat', () => {
    expect(shape('(a; b) | c')).toEqual({ par: [{ seq: ['a', 'b'] }, 'c'] });
    expect(shape('a+b+c+d')).toEqual({ sum: ['a', 'b', 'c', 'd'] });
    expect(shape('((a))')).toEqual('a');
  });
  it('reads a leading + as the sum of one operand', () => {
    expect(shape('+bench')).toEqual({ sum: ['bench'] });
    expect(shape('a; +bench | c')).toEqual({ seq: ['a', { par: [{ sum: ['bench'] }, 'c'] }] });
  });
  it('treats a line break between operands as ; and continues after or before an operator', () => {
    expect(shape('a | b\nc\n\nd')).toEqual({ seq: [{ par: ['a', 'b'] }, 'c', 'd'] });
    expect(shape('a |\n b\n| c')).toEqual({ par: ['a', 'b', 'c'] });
    expect(shape('(a\n;b)')).toEqual({ seq: ['a', 'b'] });
    expect(shape('a | b\n+b + c')).toEqual({ seq: [{ par: ['a', 'b'] }, { sum: ['b', 'c'] }] });
    expect(shape('a +\nb')).toEqual({ sum: ['a', 'b'] });
  });
  it('ignores comments', () => {
    expect(shape('a | b  # both at once')).toEqual({ par: ['a', 'b'] });
  });
});

describe('semantics', () => {
  it('a name is one run: used again, it is the same job', () => {
    const rs = records(defs('a; b; a + b', 'a', 'b'));
    expect(rs.filter((r) => r.kind === 'job').map((r) => r.id)).toEqual(['a', 'b']);
    expect(deps(rs)).toEqual({ a: [], b: ['a'] });
  });
  it('runs operands of + that have not run yet first, in parallel, after the left side', () => {
    const rs = records(defs('a; b + c', 'a', 'b', 'c'));
    expect(deps(rs)).toEqual({ a: [], b: ['a'], c: ['a'] });
    expect(rs[0]).toMatchObject({ kind: 'reduce', inputs: ['b', 'c'], final: true });
  });
  it('waits only for the last step of a chain (earlier ones are implied)', () => {
    expect(deps(records(defs('a; b; c; d', 'a', 'b', 'c', 'd')))).toEqual({ a: [], b: ['a'], c: ['b'], d: ['c'] });
    expect(deps(records(defs('(a; b) | c; d', 'a', 'b', 'c', 'd')))).toEqual({ a: [], b: ['a'], c: [], d: ['b', 'c'] });
  });
  it('adds the values of a parallel group and nests sums', () => {
    const rs = records(defs('(a | b) + (c + d)', 'a', 'b', 'c', 'd'));
    const sums = rs.filter((r) => r.kind === 'reduce');
    expect(sums).toEqual([
      { kind: 'reduce', v: 1, id: 'sum:c+d', op: 'sum', inputs: ['c', 'd'] },
      { kind: 'reduce', v: 1, id: 'sum:a+b+c+d', op: 'sum', inputs: ['a', 'b', 'sum:c+d'], final: true },
    ]);
  });
  it('names a sum after what it adds, as written, and falls back to sum-N when taken or too long', () => {
    const ids = (e: string, ...names: string[]) => records(defs(e, ...names)).filter((r) => r.kind === 'reduce').map((r) => r.id);
    expect(ids('b; a; b + a', 'a', 'b')).toEqual(['sum:b+a']);
    expect(ids('a + b; (a + b) | c', 'a', 'b', 'c')).toEqual(['sum:a+b', 'sum-2']);
    const long = Array.from({ length: 40 }, (_, i) => `task_${i}`);
    expect(ids(long.join(' + '), ...long)).toEqual(['sum-1']);
    expect(ids(long.slice(0, 20).join(' + '), ...long.slice(0, 20))).toEqual([`sum:${long.slice(0, 20).join('+')}`]);
    expect(records({ defs: ['bench(i=1..3)=echo $i'], expression: '+bench' })[0]!.id).toBe('sum:bench');
  });
  it('marks no sum final when the plan does not end in one', () => {
    expect(records(defs('a + b; c', 'a', 'b', 'c')).find((r) => r.kind === 'reduce')).not.toHaveProperty('final');
    expect(records(defs('a | b', 'a', 'b')).some((r) => r.kind === 'reduce')).toBe(false);
  });
  it('orders records so every job comes after its dependencies', () => {
    const rs = records(defs('a | (b; a)', 'a', 'b'));
    expect(rs.map((r) => r.id)).toEqual(['b', 'a']);
    expect(deps(rs)).toEqual({ a: ['b'], b: [] });
  });
  it('puts one barrier job between two wide stages instead of |stage| ids on every next job', () => {
    const first = Array.from({ length: 1500 }, (_, i) => `w${i}`);
    const rs = records(defs(`(${first.join(' | ')}); (x | y); x + y`, ...first, 'x', 'y'));
    const barrier = rs.find((r) => r.id === 'barrier:1')!;
    expect(barrier).toMatchObject({ command: ':', deps: first });
    expect(deps(rs)).toMatchObject({ x: ['barrier:1'], y: ['barrier:1'] });
    expect(rs.indexOf(barrier)).toBe(1501);
  });
  it('explains the stages', () => {
    const { plan, expression } = loadPlan(file(ASSIGNMENT));
    expect(explain(plan, expression)).toMatch(/stage 1\n {2}a {2}\$ echo 1\n {2}b.*\n {2}c.*\nstage 2\n {2}d {2}\$ echo 4 {3}\[after a, b, c\]\nsums\n {2}sum:a\+b\+c\+d = a \+ b \+ c \+ d/);
  });
});

describe('def bodies and options', () => {
  it('strips the common indentation of a several-line body and keeps blank lines inside', () => {
    const rs = records(file('def a():\n    for i in 1 2; do\n      echo $i\n    done\n\n    echo end\n\na\n'));
    expect(rs[0].command).toBe('for i in 1 2; do\n  echo $i\ndone\n\necho end');
  });
  it('reads comments and blank lines at any indentation inside a body as part of the def', () => {
    const text = '# a plan\ndef a():\n    echo 1\n# column 0: the plan file\'s\n\n    # indented: kept for the shell\n    echo 2\n  # less indented than the code: the plan file\'s\n    echo 3\n# between defs\ndef b():  # after the header\n    echo b\n\n# before the expression\na; b  # after it\n# and at the end\n';
    const rs = records(file(text));
    expect(rs.map((r) => [r.id, r.command, r.deps])).toEqual([
      ['a', 'echo 1\n\n# indented: kept for the shell\necho 2\necho 3', []],
      ['b', 'echo b', ['a']],
    ]);
  });
  it('keeps error positions after comments inside bodies', () => {
    const text = 'def a():\n    echo 1\n# a comment\n    echo 2\n\n# another\na | bb\n';
    expect(errorOf(file(text)).message).toMatch(/^plan\.cm:7:5: undefined task bb/);
    expect(errorOf(file('def a():\n# c\n    echo\n  # d\n@retries(x)\ndef b():\n  echo\na\n')).message).toMatch(/^plan\.cm:5:10: retries is a whole number/);
  });
  it('resolves relative @inputs against the plan file\'s folder, and leaves absolute ones and other sources alone', () => {
    const text = '@inputs(bench.sh, data/in.csv, /abs/x, az://inputs/tool.sh)\n@outputs(out/t.txt)\ndef a():\n  sh bench.sh\na\n';
    const from = (input: PlanInput) => records(input)[0];
    expect(from({ file: { text, source: 'p/plan.cm', dir: '/home/u/p' } })).toMatchObject({ inputs: ['/home/u/p/bench.sh', '/home/u/p/data/in.csv', '/abs/x', 'az://inputs/tool.sh'], outputs: ['out/t.txt'] });
    expect(from({ file: { text, source: 'stdin' } })).toMatchObject({ inputs: ['bench.sh', 'data/in.csv', '/abs/x', 'az://inputs/tool.sh'] });
    const yaml = 'tasks:\n  a:\n    run: sh bench.sh\n    inputs: [bench.sh]\nplan: a\n';
    expect(from({ file: { text: yaml, source: 'p.yaml', dir: '/home/u/p' } })).toMatchObject({ inputs: ['/home/u/p/bench.sh'] });
  });
  it('takes a body on the def line', () => {
    expect(records(file('def a(): echo hi\na'))[0].command).toBe('echo hi');
  });
  it('puts decorator options on the job', () => {
    const text = `@host(@gpu)\n@timeout(5m)\n@retries(2)\n@inputs(data.csv, "my file.txt")\n@outputs(out/result.txt)\n@result(out/result.txt)\n@env(MODE=fast, N=3)\ndef fit():\n    python3 fit.py\nfit\n`;
    expect(records(file(text))[0]).toEqual({
      kind: 'job', v: 1, id: 'fit', task: 'fit', command: 'python3 fit.py', deps: [],
      host: '@gpu', env: { MODE: 'fast', N: '3' }, timeout: 300, retries: 2,
      inputs: ['data.csv', 'my file.txt'], outputs: ['out/result.txt'], result: 'out/result.txt',
    });
  });
  it('takes a comma-separated host selection and refuses a bad one', () => {
    expect(records(file('@host(th1, node[01-04], @gpu)\ndef a():\n  echo\na'))[0].host).toBe('th1,node[01-04],@gpu');
    expect(errorOf(file('@host(-oProxyCommand=x)\ndef a():\n  echo\na')).message).toMatch(/^plan\.cm:1:7: not a host/);
  });
  it('reads the same options from YAML', () => {
    const yaml = `tasks:\n  fit:\n    run: |\n      python3 fit.py\n      echo done\n    host: th1\n    timeout: 30\n    retries: 1\n    inputs: data.csv\n    outputs: [a.txt, b.txt]\n    result: a.txt\nplan: fit\n`;
    expect(records(file(yaml, 'p.yml'))[0]).toMatchObject({ command: 'python3 fit.py\necho done', host: 'th1', timeout: 30, retries: 1, inputs: ['data.csv'], outputs: ['a.txt', 'b.txt'], result: 'a.txt' });
  });
});

describe('sweeps', () => {
  it('runs a def once per value, with the parameter in the environment', () => {
    const rs = records({ defs: ['prep=echo prep', 'bench(i=1..3)=echo $i'], expression: 'prep; +bench' });
    expect(rs).toEqual([
      { kind: 'reduce', v: 1, id: 'sum:bench', op: 'sum', inputs: [], sweeps: { bench: 3 }, final: true },
      { kind: 'job', v: 1, id: 'prep', task: 'prep', command: 'echo prep', deps: [] },
      ...[1, 2, 3].map((i) => ({ kind: 'job', v: 1, id: `bench.${i - 1}`, task: 'bench', command: 'echo $i', deps: ['prep'], env: { i: String(i) }, sweep: 'bench', index: i - 1, params: { i: String(i) } })),
    ]);
  });
  it('crosses several parameters, the last varying fastest, and pads, steps and lists', () => {
    const rs = records(file('def s(n=[a, "b c"], k=08..12 step 2, mode=fast):\n  echo\ns\n'));
    expect(rs.map((r) => r.env)).toEqual([
      { n: 'a', k: '08', mode: 'fast' }, { n: 'a', k: '10', mode: 'fast' }, { n: 'a', k: '12', mode: 'fast' },
      { n: 'b c', k: '08', mode: 'fast' }, { n: 'b c', k: '10', mode: 'fast' }, { n: 'b c', k: '12', mode: 'fast' },
    ]);
  });
  it('writes each environment variable once, swept values over @env ones', () => {
    const { plan } = loadPlan(file('@env(A=1, i=0)\ndef s(i=[x, "q\\"], c=5):\n  echo\ns'));
    expect([...planLines(plan)].map((l) => l.match(/"env":(\{[^}]*\})/)![1])).toEqual(['{"A":"1","c":"5","i":"x"}', '{"A":"1","c":"5","i":"q\\\\"}']);
  });
  it('counts down and takes a constant as a plain environment variable', () => {
    expect(records(file('def s(i=3..1):\n  echo\ns')).map((r) => r.env)).toEqual([{ i: '3' }, { i: '2' }, { i: '1' }]);
    expect(records(file('def s(x=5):\n  echo\ns'))[0]).toMatchObject({ id: 's', env: { x: '5' } });
  });
  it('puts params on every run of a def with parameters: its values in the def\'s order, constants too', () => {
    const rs = records(file('@env(A=1, i=0)\ndef s(i=[x, "q r"], c=5, k=1..2):\n  echo\ndef one(x=5, y="a b"):\n  echo\ndef none():\n  echo\ns | one | none'));
    expect(rs.map((r) => r.params)).toEqual([
      { i: 'x', c: '5', k: '1' }, { i: 'x', c: '5', k: '2' }, { i: 'q r', c: '5', k: '1' }, { i: 'q r', c: '5', k: '2' },
      { x: '5', y: 'a b' }, undefined,
    ]);
    for (const r of rs.filter((x) => x.params)) for (const [k, v] of Object.entries(r.params as object)) expect((r.env as Record<string, string>)[k]).toBe(v);
  });
  it('adds a sweep with other values in one sum', () => {
    const rs = records({ defs: ['a=echo 1', 'bench(i=1..4)=echo $i'], expression: 'a + bench' });
    expect(rs[0]).toEqual({ kind: 'reduce', v: 1, id: 'sum:a+bench', op: 'sum', inputs: ['a'], sweeps: { bench: 4 }, final: true });
  });
  it('lists the runs of a small sweep a job waits for', () => {
    const rs = records({ defs: ['b=echo', 'bench(i=1..3)=echo $i'], expression: 'bench; b' });
    expect(deps(rs).b).toEqual(['bench.0', 'bench.1', 'bench.2']);
  });
  it('puts a tree of barrier jobs behind a large sweep, so no line lists a million ids', () => {
    const { plan } = loadPlan({ defs: ['b=echo', 'bench(i=1..2500)=echo $i'], expression: 'bench; b' });
    const tail: Array<Record<string, unknown>> = [];
    for (const line of planLines(plan)) {
      const r = JSON.parse(line);
      if (r.sweep !== 'bench') tail.push(r);
    }
    expect(tail.map((r) => [r.id, (r.deps as string[]).length])).toEqual([
      ['bench.all.0', 1000], ['bench.all.1', 1000], ['bench.all.2', 500], ['bench.all', 3], ['b', 1],
    ]);
    expect(tail[2].deps).toContain('bench.2499');
    expect(tail[4].deps).toEqual(['bench.all']);
  });
  it('generates a huge sweep lazily', () => {
    const { plan } = loadPlan({ defs: ['bench(i=1..100000000)=echo $i'], expression: '+bench' });
    const it = planLines(plan);
    expect(JSON.parse(it.next().value as string)).toMatchObject({ kind: 'reduce', sweeps: { bench: 100000000 } });
    expect(JSON.parse(it.next().value as string)).toMatchObject({ id: 'bench.0', env: { i: '1' } });
    expect(JSON.parse(it.next().value as string)).toMatchObject({ id: 'bench.1', env: { i: '2' } });
  });
});

describe('by', () => {
  const sweeps = ['bench(size=[64, 128], rep=1..3)=echo $size', 'study(size=[1, 2], n=1..2)=echo $n', 'a=echo 1'];
  it('puts by on the reduce record of a sum of sweeps', () => {
    expect(records({ defs: sweeps, expression: '+bench by size' })[0]).toEqual({ kind: 'reduce', v: 1, id: 'sum:bench', op: 'sum', inputs: [], sweeps: { bench: 6 }, by: ['size'], final: true });
    expect(records({ defs: sweeps, expression: '+bench by size, rep' })[0]).toMatchObject({ by: ['size', 'rep'] });
    expect(records({ defs: sweeps, expression: 'bench + study by size' })[0]).toMatchObject({ id: 'sum:bench+study', sweeps: { bench: 6, study: 4 }, by: ['size'] });
    expect(records({ defs: sweeps, expression: 'a; +bench by\n  size,\n  rep' })[0]).toMatchObject({ by: ['size', 'rep'] });
    expect(records(file('def bench(size=[1, 2]):\n  echo\n+bench by size  # per size\n'))[0]).toMatchObject({ by: ['size'] });
  });
  it('parses and prints by as part of a sum', () => {
    const e = parseExpressionText('a; +bench by size, rep | c');
    expect(printExpression(e)).toBe('a; +bench by size, rep | c');
    expect(shapeOf(parseExpressionText(printExpression(e)))).toEqual(shapeOf(e));
  });
  it('refuses a name that is not a parameter of every sweep added, listing those there are', () => {
    expect(errorOf({ defs: sweeps, expression: '+bench by sise' }).message).toMatch(/^expression:1:11: sise is not a parameter of bench; did you mean size\? \(parameters of bench: size, rep\)/);
    expect(errorOf({ defs: sweeps, expression: 'bench + study by rep' }).message).toMatch(/^expression:1:18: rep is not a parameter of study \(parameters of every sweep added: size\)/);
    expect(errorOf(file('def bench(size=[1, 2]):\n  echo\n# c\n\n+bench by n\n')).message).toBe("plan.cm:5:11: n is not a parameter of bench (parameters of bench: size)\n  +bench by n\n            ^");
  });
  it('refuses by on a sum of single runs, a grouped sum added to more, and by in the wrong place', () => {
    expect(errorOf({ defs: sweeps, expression: 'a + bench by size' }).message).toMatch(/^expression:1:14: 'by' groups the runs of sweeps, and this sum also adds a, a single run/);
    expect(errorOf({ defs: sweeps, expression: '(+bench by size) + study' }).message).toMatch(/^expression:1:2: a sum by size has one value per group/);
    expect(errorOf({ defs: sweeps, expression: '+bench by size + study' }).message).toMatch(/^expression:1:16: a sum with 'by' has one value per group/);
    expect(errorOf({ defs: sweeps, expression: 'bench by size' }).message).toMatch(/^expression:1:7: 'by' follows a sum: \+bench by PARAM/);
    expect(errorOf({ defs: sweeps, expression: '+bench by' }).message).toMatch(/^expression:1:10: expected a parameter name after 'by', found the end of the plan/);
    expect(errorOf({ defs: sweeps, expression: '+bench by size, size' }).message).toMatch(/given twice/);
    expect(errorOf({ defs: sweeps, expression: 'a, bench' }).message).toMatch(/^expression:1:2: unexpected character ',': use '\|'/);
    expect(errorOf({ defs: ['by=echo'], expression: 'by' }).message).toMatch(/^--def:1:1: 'by' is a reserved word/);
  });
  it('shows by in --explain', () => {
    const { plan, expression } = loadPlan({ defs: sweeps, expression: '+bench by size' });
    expect(explain(plan, expression)).toContain('plan: +bench by size\n');
    expect(explain(plan, expression)).toContain('  sum:bench = all of bench[6], one value per size   (the value of the plan)');
  });
});

describe('bad input', () => {
  it('points at a syntax error with the line, a caret and what was expected', () => {
    const e = errorOf(file('def a():\n  echo\ndef b():\n  echo\n(a | b;\n'));
    expect(e.message).toBe("plan.cm:5:8: expected a task name or '(' after ';', found the end of the plan\n  (a | b;\n         ^");
    expect(errorOf(defs('a b', 'a', 'b')).message).toMatch(/^expression:1:3: expected an operator/);
    expect(errorOf(defs('a |', 'a')).message).toMatch(/^expression:1:4: expected a task name or '\(' after '\|'/);
  });
  it('names unbalanced parentheses', () => {
    expect(errorOf(defs('(a | b', 'a', 'b')).message).toMatch(/^expression:1:1: unbalanced parentheses: this '\(' is never closed/);
    expect(errorOf(defs('a | b)', 'a', 'b')).message).toMatch(/^expression:1:6: unbalanced parentheses: this '\)' has no matching/);
    expect(errorOf(defs('()', 'a')).message).toMatch(/empty parentheses/);
  });
  it('suggests the nearest def for an undefined name', () => {
    expect(errorOf(defs('bench | prepare', 'bench', 'prepare_data')).message).toMatch(/^expression:1:9: undefined task prepare; did you mean prepare_data\?/);
    expect(errorOf(defs('x', 'abc')).message).toMatch(/undefined task x \(defined: abc\)/);
    expect(errorOf({ expression: 'a' }).message).toMatch(/undefined task a \(the plan defines no tasks\)/);
  });
  it('refuses a duplicate def, an empty body and an empty expression', () => {
    expect(errorOf(file('def a():\n  echo\ndef a():\n  echo 2\na\n')).message).toMatch(/^plan\.cm:3:5: duplicate def a \(first defined at plan\.cm:1:5\)/);
    expect(errorOf(file('def a():\n\ndef b():\n  echo\na\n')).message).toMatch(/^plan\.cm:1:5: def a has an empty body/);
    expect(errorOf(file('def a():\n  echo\n# nothing to run\n')).message).toMatch(/^plan\.cm: empty plan/);
    expect(errorOf(file('def a():\n  echo\n   # \n')).message).toMatch(/empty plan/);
  });
  it('reports a cycle where it closes', () => {
    expect(errorOf(defs('a; b; a', 'a', 'b')).message).toMatch(/^expression:1:7: cycle: a after b after a/);
    expect(errorOf(defs('(a; b) | (b; a)', 'a', 'b')).message).toMatch(/cycle: (a after b after a|b after a after b)/);
  });
  it('explains bad options and parameters', () => {
    expect(errorOf(file('@timout(3)\ndef a():\n  echo\na')).message).toMatch(/^plan\.cm:1:2: unknown option timout; did you mean timeout\?/);
    expect(errorOf(file('@timeout(soon)\ndef a():\n  echo\na')).message).toMatch(/^plan\.cm:1:10: a timeout is a positive number/);
    expect(errorOf(file('@retries(2)\na')).message).toMatch(/must be followed by the def/);
    expect(errorOf(file('def a(i=1..x):\n  echo\na')).message).toMatch(/^plan\.cm:1:9: a range is INTEGER\.\.INTEGER/);
    expect(errorOf(file('def a(i):\n  echo\na')).message).toMatch(/expected '=' and values after parameter i/);
    expect(errorOf(file('def a(i=1..100000, j=1..100000):\n  echo\na')).message).toMatch(/more than 1000000000 runs/);
    expect(errorOf(file('def a(CM_X=1..2):\n  echo\na')).message).toMatch(/reserved/);
  });
  it('locates errors inside a YAML plan in the file', () => {
    expect(errorOf(file('tasks:\n  a: echo 1\nplan: a | bb\n', 'p.yaml')).message).toMatch(/^p\.yaml:3:11: undefined task bb; did you mean a\?/);
    expect(errorOf(file('tasks:\n  a: echo 1\nplan: |\n  a |\n  (a\n', 'p.yaml')).message).toMatch(/^p\.yaml:5:3: unbalanced/);
    expect(errorOf(file('tasks:\n  a:\n    run: echo\n    hots: x\nplan: a\n', 'p.yaml')).message).toMatch(/^p\.yaml:4:5: unknown task key 'hots'; did you mean host\?/);
    expect(errorOf(file('tasks: [\n', 'p.yaml')).message).toMatch(/^p\.yaml:\d+:\d+: YAML:/);
  });
});

// Random expressions over a few names: printing and parsing again gives the same tree.
const NAMES = ['a', 'b', 'c', 'bench', 'x_1'];
const exprArb: fc.Arbitrary<Node> = fc.letrec<{ node: Node }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(...NAMES).map((name): Node => ({ kind: 'name', name, at: undefined as never })),
    fc.tuple(fc.constantFrom('seq', 'par'), fc.array(tie('node'), { minLength: 2, maxLength: 4 })).map(([kind, items]): Node => ({ kind: kind as 'seq' | 'par', items, at: undefined as never })),
    fc.array(tie('node'), { minLength: 1, maxLength: 4 }).map((items): Node => ({ kind: 'sum', items, at: undefined as never })),
  ),
})).node;

describe('properties', () => {
  it('print then parse gives the same tree', () => {
    fc.assert(
      fc.property(exprArb, (node) => {
        expect(shapeOf(parseExpressionText(printExpression(node)))).toEqual(shapeOf(node));
      }),
      { numRuns: 500 },
    );
  });
  it('plans any printed expression over defined names, or reports a cycle', () => {
    fc.assert(
      fc.property(exprArb, (node) => {
        try {
          for (const line of planLines(loadPlan(defs(printExpression(node), ...NAMES)).plan)) expect(recordProblem(JSON.parse(line))).toBeNull();
        } catch (err) {
          expect(err).toBeInstanceOf(InputError);
          expect((err as Error).message).toMatch(/cycle/);
        }
      }),
      { numRuns: 300 },
    );
  });
  it('never throws anything but an InputError on random bytes', () => {
    const sources = [
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('utf8')),
      fc.array(fc.constantFrom('a', 'b', '(', ')', '|', ';', '+', ' ', '\n', 'def ', ':', '@', '=', '[', ']', '..', ',', '"', '\t', '#', 'x', '1', '-', 'tasks:', 'plan:', '  '), { maxLength: 60 }).map((p) => p.join('')),
    ];
    for (const src of sources) {
      fc.assert(
        fc.property(src, fc.constantFrom('plan.cm', 'plan.yaml'), (text, name) => {
          try {
            const { plan } = loadPlan(file(text, name));
            let n = 0;
            for (const line of planLines(plan)) {
              expect(recordProblem(JSON.parse(line))).toBeNull();
              if (++n > 1000) break;
            }
          } catch (err) {
            if (!(err instanceof InputError)) throw err;
          }
          try {
            loadPlan({ defs: ['a=echo', 'b=echo'], expression: text });
          } catch (err) {
            if (!(err instanceof InputError)) throw err;
          }
        }),
        { numRuns: 1000 },
      );
    }
  });
});
