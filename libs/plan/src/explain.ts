// `cm-plan --explain`: the plan for people, as stages of runs that may go side by side.
import { describeOptions } from './options';
import { describeParam } from './params';
import type { Plan, Unit } from './plan';
import { printExpression } from './expr';

function label(u: Unit): string {
  return u.def.sweep ? `${u.def.name}[${u.def.count}]` : u.def.name;
}

export function explain(plan: Plan, expression?: import('./expr').Node): string {
  const stage = new Map<Unit, number>();
  for (const s of plan.steps) {
    if (s.kind !== 'unit') continue;
    let n = 1;
    for (const d of s.deps.keys()) n = Math.max(n, (stage.get(d) ?? 1) + 1);
    stage.set(s, n);
  }
  const stages = Math.max(0, ...stage.values());
  const jobs = plan.units.reduce((n, u) => n + u.def.count, 0);
  const sweeps = plan.units.filter((u) => u.def.sweep).length;
  const lines: string[] = [];
  if (expression) lines.push(`plan: ${printExpression(expression)}`);
  lines.push(
    `${jobs} job${jobs === 1 ? '' : 's'}${sweeps ? ` (${sweeps} sweep${sweeps === 1 ? '' : 's'})` : ''} in ${stages} stage${stages === 1 ? '' : 's'}, ${plan.sums.length} sum${plan.sums.length === 1 ? '' : 's'}`,
  );
  const width = Math.min(24, Math.max(...plan.units.map((u) => label(u).length)));
  for (let s = 1; s <= stages; s++) {
    lines.push(`stage ${s}`);
    for (const u of plan.units.filter((x) => stage.get(x) === s).sort((a, b) => plan.steps.indexOf(a) - plan.steps.indexOf(b))) {
      const notes: string[] = [];
      if (u.def.sweep) notes.push(u.def.params.map(describeParam).join(' '));
      if (u.deps.size > 0) notes.push(`after ${[...u.deps.keys()].map(label).join(', ')}`);
      notes.push(...describeOptions(u.def.options));
      const firstLine = u.def.body.split('\n')[0];
      const more = u.def.body.includes('\n') ? ' ...' : '';
      lines.push(`  ${label(u).padEnd(width)}  $ ${firstLine}${more}${notes.length ? `   [${notes.join('; ')}]` : ''}`.trimEnd());
    }
  }
  if (plan.sums.length > 0) lines.push('sums');
  for (const sum of plan.sums) {
    const terms = [...sum.inputs.map((x) => (x.kind === 'sum' ? x.id : label(x))), ...sum.sweeps.map((u) => `all of ${label(u)}`)];
    const by = sum.by ? `, one value per ${sum.by.join(' and ')}` : '';
    lines.push(`  ${sum.id} = ${terms.join(' + ')}${by}${sum.final ? '   (the value of the plan)' : ''}`);
  }
  for (const d of plan.unused) lines.push(`unused def: ${d.name}`);
  return `${lines.join('\n')}\n`;
}
