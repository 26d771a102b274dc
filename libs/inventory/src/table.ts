// Plain aligned columns for people (cm-hosts list/check on a terminal); pipes get NDJSON instead.
import { formatTable, type HostRecord } from '@cm/protocol';
import type { CheckRecord } from './check';


export function hostsTable(hosts: HostRecord[]): string {
  return formatTable(
    ['NAME', 'ADDRESS', 'USER', 'PORT', 'SLOTS', 'TAGS', 'VIA'],
    hosts.map((h) => [h.name, h.address, h.user ?? '-', h.port === undefined ? '-' : String(h.port), String(h.slots), h.tags.join(',') || '-', h.local ? 'local' : h.slurm ? `slurm ${h.slurm.partition ?? '(default partition)'}` : h.jump ? `jump ${h.jump}` : 'ssh']),
  );
}

export function checkTable(results: CheckRecord[]): string {
  return formatTable(
    ['HOST', 'STATE', 'RTT', 'CPUS', 'LOAD', 'SLOTS', 'SUGGESTED', 'REASON'],
    results.map((r) => [
      r.host,
      r.up ? 'up' : 'down',
      `${r.rtt_ms.toFixed(0)}ms`,
      r.cpus === undefined ? '-' : String(r.cpus),
      r.load ? r.load.map((n) => n.toFixed(2)).join(' ') : '-',
      String(r.slots),
      r.suggested_slots === undefined ? '-' : String(r.suggested_slots),
      r.reason ?? '',
    ]),
  );
}
