// The plan as the events tell it: tasks in stages by their deps, and the critical path, the chain of
// deps whose durations add up the most.
import type { PlanData } from './data';

interface PlanJob {
  id: string;
  task: string;
  deps: string[];
  after: string[];
}

export function planOf(jobs: PlanJob[], tasks: string[], last: Map<string, { start: number; end: number }>): PlanData {
  const byId = new Map(jobs.map((j) => [j.id, j]));
  const taskDeps = new Map<string, Set<string>>(tasks.map((t) => [t, new Set()]));
  let hasDeps = false;
  for (const j of jobs) {
    for (const d of [...j.deps, ...j.after]) {
      const dep = byId.get(d);
      if (!dep) continue;
      hasDeps = true;
      if (dep.task !== j.task) taskDeps.get(j.task)!.add(dep.task);
    }
  }
  // stage of a task: the longest chain of task deps before it (a cycle between tasks cannot come from a plan)
  const stage = new Map<string, number>();
  const stageOf = (t: string, seen: Set<string>): number => {
    const known = stage.get(t);
    if (known !== undefined) return known;
    if (seen.has(t)) return 0;
    seen.add(t);
    let s = 0;
    for (const d of taskDeps.get(t) ?? []) s = Math.max(s, stageOf(d, seen) + 1);
    stage.set(t, s);
    return s;
  };
  tasks.forEach((t) => stageOf(t, new Set()));

  // longest path by duration over the job DAG, iteratively (100,000 jobs in a chain would overflow the stack)
  const dur = (id: string) => {
    const a = last.get(id);
    return a ? a.end - a.start : 0;
  };
  const best = new Map<string, { total: number; prev?: string }>();
  const visit = (root: string) => {
    const stack: Array<{ id: string; expanded: boolean }> = [{ id: root, expanded: false }];
    const onStack = new Set<string>();
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (best.has(top.id)) {
        stack.pop();
        continue;
      }
      const j = byId.get(top.id);
      const deps = j ? [...j.deps, ...j.after].filter((d) => byId.has(d)) : [];
      if (!top.expanded) {
        top.expanded = true;
        onStack.add(top.id);
        for (const d of deps) if (!best.has(d) && !onStack.has(d)) stack.push({ id: d, expanded: false });
        continue;
      }
      stack.pop();
      onStack.delete(top.id);
      let total = 0;
      let prev: string | undefined;
      for (const d of deps) {
        const b = best.get(d);
        if (b && b.total > total) {
          total = b.total;
          prev = d;
        }
      }
      best.set(top.id, { total: total + dur(top.id), prev });
    }
  };
  let end: string | undefined;
  for (const j of jobs) {
    visit(j.id);
    if (end === undefined || best.get(j.id)!.total > best.get(end)!.total) end = j.id;
  }
  const critical: string[] = [];
  for (let id = end; id !== undefined; id = best.get(id)!.prev) critical.unshift(id);
  const criticalTasks = new Set(critical.map((id) => byId.get(id)!.task));
  return {
    tasks: tasks
      .map((name) => ({ name, stage: stage.get(name) ?? 0, jobs: jobs.filter((j) => j.task === name).length, deps: [...taskDeps.get(name)!], critical: criticalTasks.has(name) }))
      .sort((a, b) => a.stage - b.stage),
    critical,
    criticalMs: end ? best.get(end)!.total : 0,
    hasDeps,
  };
}
