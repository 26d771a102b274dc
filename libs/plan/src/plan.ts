// Meaning of an expression: which runs exist, what each waits for, and what is added up.
import type { ListNode, Node } from './expr';
import type { Def } from './planfile';
import { inputError, nearest, sourceError, where, type Pos } from './source';

/** One run of a def, or all runs of a sweep (a sweep is planned as one unit and expanded lazily). */
export interface Unit {
  kind: 'unit';
  def: Def;
  /** units this one waits for, and where the plan asked for it (for error messages) */
  deps: Map<Unit, Pos>;
  at: Pos;
  order: number;
}

export interface Sum {
  kind: 'sum';
  /** `sum:` and what it adds (`sum:a+b`, `sum:bench`); `sum-N` when that is too long or taken */
  id: string;
  /** single runs and sums, in plan order */
  inputs: Array<Unit | Sum>;
  /** whole sweeps added, in plan order */
  sweeps: Unit[];
  /** the names of the tasks added, as written (a sum's own terms in its place), for the id */
  terms: string[];
  /** parameters of every sweep added: one value per combination of their values */
  by?: string[];
  final: boolean;
  at: Pos;
  order: number;
}

export interface Plan {
  defs: Def[];
  /** units and sums in an order where everything comes after what it needs */
  steps: Array<Unit | Sum>;
  units: Unit[];
  sums: Sum[];
  final?: Sum;
  /** defs never used by the expression */
  unused: Def[];
}

type Value = Unit | Sum;

/** Above this many units, redundant (transitive) dependencies are kept rather than computed away. */
const REDUCE_LIMIT = 3000;
/** A run waiting for more than this many others waits for a barrier job instead. */
export const BARRIER_AT = 1000;

export function checkDefs(defs: Def[]): Map<string, Def> {
  const byName = new Map<string, Def>();
  for (const d of defs) {
    const first = byName.get(d.name);
    if (first) throw inputError(d.at, `duplicate def ${d.name} (first defined at ${where(first.at)})`);
    byName.set(d.name, d);
  }
  return byName;
}

/**
 * Plans an expression over the defs. Throws an InputError for an undefined name, a duplicate
 * def, or an order that cannot be kept (a cycle); nothing is printed before this has succeeded.
 */
export function planOf(defs: Def[], expression: Node | undefined, source = 'plan'): Plan {
  const byName = checkDefs(defs);
  if (!expression) throw sourceError(source, "empty plan: no expression to run (write one such as 'a | b; c')");
  const units = new Map<string, Unit>();
  const sums: Sum[] = [];
  let order = 0;

  const unitOf = (name: string, at: Pos): Unit => {
    let u = units.get(name);
    if (u) return u;
    const def = byName.get(name);
    if (!def) {
      const hint = nearest(name, byName.keys());
      const known = byName.size === 0 ? ' (the plan defines no tasks)' : hint ? `; did you mean ${hint}?` : ` (defined: ${[...byName.keys()].slice(0, 10).join(', ')})`;
      throw inputError(at, `undefined task ${name}${known}`);
    }
    u = { kind: 'unit', def, deps: new Map(), at, order: order++ };
    units.set(name, u);
    return u;
  };
  // A wide stage followed by another would need |stage| x |next| dependency ids: past BARRIER_AT
  // runs, the next stage waits for one no-op job that waits for the whole stage instead.
  const barriers = new Map<Set<Unit>, Unit>();
  const barrierFor = (before: Set<Unit>, at: Pos): Unit => {
    let b = barriers.get(before);
    if (!b) {
      const name = `barrier:${barriers.size + 1}`;
      const def: Def = { name, params: [], options: {}, body: ':', at, count: 1, sweep: false };
      b = { kind: 'unit', def, deps: new Map([...before].map((x) => [x, at])), at, order: order++ };
      barriers.set(before, b);
    }
    return b;
  };
  const after = (u: Unit, before: Set<Unit>, at: Pos): void => {
    if (before.size > BARRIER_AT && !before.has(u)) before = new Set([barrierFor(before, at)]);
    // `a; a` asks nothing new of a: the same run is meant.
    for (const b of before) if (b !== u && !u.deps.has(b)) u.deps.set(b, at);
  };

  // `read`: inside a `+`, a name that already ran is only read, not asked to run again after `before`.
  const evaluate = (node: Node, before: Set<Unit>, read: boolean): { done: Set<Unit>; values: Value[] } => {
    switch (node.kind) {
      case 'name': {
        const existed = units.has(node.name);
        const u = unitOf(node.name, node.at);
        if (!existed || !read) after(u, before, node.at);
        return { done: new Set([u]), values: [u] };
      }
      case 'par': {
        const done = new Set<Unit>();
        const values: Value[] = [];
        for (const item of node.items) {
          const r = evaluate(item, before, read);
          for (const u of r.done) done.add(u);
          values.push(...r.values);
        }
        return { done, values };
      }
      case 'seq': {
        // What the next step waits for: only the last step's runs when they already wait for all
        // that came before (so `a1; a2; ...; a5000` stays linear), else everything so far.
        let waitFor = before;
        let values: Value[] = [];
        for (const item of node.items) {
          const r = evaluate(item, waitFor, false);
          const covered = [...r.done].every((u) => [...waitFor].every((w) => w === u || u.deps.has(w)));
          if (covered) waitFor = r.done;
          else {
            waitFor = new Set(waitFor);
            for (const u of r.done) waitFor.add(u);
          }
          values = r.values;
        }
        const done = new Set([...waitFor].filter((u) => !before.has(u)));
        return { done, values };
      }
      case 'sum': {
        const done = new Set<Unit>();
        const inputs: Array<Unit | Sum> = [];
        const sweeps: Unit[] = [];
        const terms: string[] = [];
        for (const item of node.items) {
          const r = evaluate(item, before, true);
          for (const u of r.done) done.add(u);
          for (const v of r.values) {
            if (v.kind === 'sum' && v.by) throw inputError(item.at, `a sum by ${v.by.join(', ')} has one value per group: it cannot be added to others`);
            terms.push(...(v.kind === 'sum' ? v.terms : [v.def.name]));
            if (v.kind === 'unit' && v.def.sweep) {
              if (sweeps.includes(v)) throw inputError(item.at, `sweep ${v.def.name} is added twice in one sum`);
              sweeps.push(v);
            } else inputs.push(v);
          }
        }
        const sum: Sum = { kind: 'sum', id: `sum-${sums.length + 1}`, inputs, sweeps, terms, final: false, at: node.at, order: order++ };
        if (node.by) sum.by = checkBy(node, inputs, sweeps);
        sums.push(sum);
        return { done, values: [sum] };
      }
    }
  };

  const result = evaluate(expression, new Set(), false);
  nameSums(sums);
  const all = [...units.values(), ...barriers.values()];
  checkCycles(all);
  if (all.length <= REDUCE_LIMIT) reduceDeps(all);
  let final: Sum | undefined;
  if (result.values.length === 1 && result.values[0].kind === 'sum') {
    final = result.values[0];
    final.final = true;
  }
  return {
    defs,
    steps: ordered(all, sums),
    units: all,
    sums,
    final,
    unused: defs.filter((d) => !units.has(d.name)),
  };
}

/** Ids longer than this fall back to `sum-N`: a SafeId is at most 200 characters. */
const MAX_ID = 200;

/** Names each sum after what it adds; the first to want a name gets it, a later one `sum-N`. */
function nameSums(sums: Sum[]): void {
  const taken = new Set<string>();
  for (const s of sums) {
    const id = `sum:${s.terms.join('+')}`;
    if (id.length <= MAX_ID && !taken.has(id)) s.id = id;
    taken.add(s.id);
  }
}

/**
 * `+bench by size`: every name after `by` is a parameter of every sweep added, and only sweeps are
 * added (a single run, or a sum's one value, has no parameter values to group by).
 */
function checkBy(node: ListNode, inputs: Array<Unit | Sum>, sweeps: Unit[]): string[] {
  const by = node.by!;
  const single = inputs[0];
  if (single) {
    const what = single.kind === 'sum' ? 'another sum' : `${single.def.name}, a single run`;
    throw inputError(by[0].at, `'by' groups the runs of sweeps, and this sum also adds ${what}`);
  }
  const names = sweeps.map((u) => u.def.params.map((p) => p.name));
  const common = names.reduce((acc, ps) => acc.filter((n) => ps.includes(n)));
  for (const b of by) {
    if (common.includes(b.name)) continue;
    const without = sweeps.filter((u) => !u.def.params.some((p) => p.name === b.name)).map((u) => u.def.name);
    const hint = nearest(b.name, common);
    const there = common.length === 0 ? 'the sweeps added share no parameter' : `parameters of ${sweeps.length === 1 ? sweeps[0].def.name : 'every sweep added'}: ${common.join(', ')}`;
    throw inputError(b.at, `${b.name} is not a parameter of ${without.join(', ')}${hint ? `; did you mean ${hint}?` : ''} (${there})`);
  }
  return by.map((b) => b.name);
}

/** A task runs once, so "a after b" and "b after a" cannot both hold: report the cycle where it closes. */
function checkCycles(units: Unit[]): void {
  const state = new Map<Unit, 1 | 2>();
  for (const start of units) {
    if (state.has(start)) continue;
    const stack: Array<{ u: Unit; it: Iterator<Unit> }> = [{ u: start, it: start.deps.keys() }];
    state.set(start, 1);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const n = top.it.next();
      if (n.done) {
        state.set(top.u, 2);
        stack.pop();
        continue;
      }
      const d = n.value;
      if (state.get(d) === 1) {
        // the cycle: d ... top.u (each waiting for the next one down the stack), then d again
        const path = stack.slice(stack.findIndex((f) => f.u === d)).map((f) => f.u);
        const edges = path.map((u, k) => ({ u, dep: path[k + 1] ?? d }));
        const latest = edges.reduce((a, b) => (later(a.u.deps.get(a.dep)!, b.u.deps.get(b.dep)!) ? a : b));
        const at = latest.u.deps.get(latest.dep)!;
        if (path.length === 1) {
          throw inputError(at, `cycle: ${d.def.name} is asked to run after itself (a name is one run of its def; define another task to run it again)`);
        }
        const names = [...path, d].map((u) => u.def.name).join(' after ');
        throw inputError(at, `cycle: ${names} (a name is one run of its def; define another task to run it again)`);
      }
      if (!state.has(d)) {
        state.set(d, 1);
        stack.push({ u: d, it: d.deps.keys() });
      }
    }
  }
}

function later(a: Pos, b: Pos): boolean {
  return a.line > b.line || (a.line === b.line && a.col > b.col);
}

/** Drops dependencies implied by others (`a; b; c`: c waits for b only), keeping deps lists short. */
function reduceDeps(units: Unit[]): void {
  const reach = new Map<Unit, Set<Unit>>();
  const ancestors = (u: Unit): Set<Unit> => {
    let r = reach.get(u);
    if (r) return r;
    r = new Set();
    for (const d of u.deps.keys()) {
      r.add(d);
      for (const a of ancestors(d)) r.add(a);
    }
    reach.set(u, r);
    return r;
  };
  // Visit in dependency order so the recursion above stays shallow.
  for (const u of ordered(units, [])) ancestors(u as Unit);
  for (const u of units) {
    const deps = [...u.deps.keys()];
    for (const d of deps) {
      if (deps.some((o) => o !== d && u.deps.has(o) && ancestors(o).has(d))) u.deps.delete(d);
    }
  }
}

/** Depth-first post-order in creation order: every step after what it needs, otherwise as written. */
function ordered(units: Unit[], sums: Sum[]): Array<Unit | Sum> {
  const all = [...units, ...sums].sort((a, b) => a.order - b.order);
  const out: Array<Unit | Sum> = [];
  const seen = new Set<Unit | Sum>();
  const needs = (x: Unit | Sum): Array<Unit | Sum> => (x.kind === 'unit' ? [...x.deps.keys()] : [...x.inputs, ...x.sweeps]);
  for (const start of all) {
    if (seen.has(start)) continue;
    seen.add(start);
    const stack: Array<{ x: Unit | Sum; k: number; list: Array<Unit | Sum> }> = [{ x: start, k: 0, list: needs(start).sort((a, b) => a.order - b.order) }];
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      if (top.k < top.list.length) {
        const n = top.list[top.k++];
        if (!seen.has(n)) {
          seen.add(n);
          stack.push({ x: n, k: 0, list: needs(n).sort((a, b) => a.order - b.order) });
        }
        continue;
      }
      out.push(top.x);
      stack.pop();
    }
  }
  return out;
}
