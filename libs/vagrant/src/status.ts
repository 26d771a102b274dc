import type { MachineRow } from './machine-readable';

export interface MachineState {
  name: string;
  provider?: string;
  /** Vagrant's state id: running, shutoff, stopped, not_created, saved, paused, frozen, ... */
  state: string;
  /** human: "not created" */
  short?: string;
  long?: string;
}

/** The machines of `vagrant status --machine-readable`, in Vagrant's order. */
export function parseStatus(rows: MachineRow[]): MachineState[] {
  const byName = new Map<string, MachineState>();
  const get = (name: string): MachineState => {
    let m = byName.get(name);
    if (!m) {
      m = { name, state: 'unknown' };
      byName.set(name, m);
    }
    return m;
  };
  for (const row of rows) {
    if (row.target === '') continue;
    const value = row.data[0] ?? '';
    switch (row.type) {
      case 'provider-name':
        get(row.target).provider = value;
        break;
      case 'metadata':
        if (value === 'provider') get(row.target).provider ??= row.data[1];
        break;
      case 'state':
        get(row.target).state = value;
        break;
      case 'state-human-short':
        get(row.target).short = value;
        break;
      case 'state-human-long':
        get(row.target).long = row.data.join(',');
        break;
      default:
        break;
    }
  }
  return [...byName.values()];
}

export const RUNNING = 'running';

/** States a `vagrant up` leaves a machine in when it failed to boot or was never built. */
export function isStuck(state: string): boolean {
  return state !== RUNNING;
}

export function describeState(m: MachineState): string {
  return m.short ?? m.state.replace(/_/g, ' ');
}
