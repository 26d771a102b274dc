// What `cm-hosts set` says to change, as fields to set and fields to remove.
import { CmError, ExitCode } from '@cm/protocol';
import { HOST_FIELDS, type HostField, type HostFields } from './load';

export interface Assignments {
  fields: HostFields;
  unset: HostField[];
}

/** `slots=8`, `tags=a,b`, `options.LogLevel=ERROR`, `jump=` (remove). */
export function parseAssignments(assignments: string[]): Assignments {
  const fields: HostFields = {};
  const unset: HostField[] = [];
  for (const text of assignments) {
    const eq = text.indexOf('=');
    if (eq <= 0) throw new CmError(`${JSON.stringify(text)}: expected KEY=VALUE`, ExitCode.USAGE);
    const key = text.slice(0, eq);
    const value = text.slice(eq + 1);
    if (key.startsWith('options.')) {
      fields.options = { ...fields.options, [key.slice(8)]: value };
      continue;
    }
    if (!(HOST_FIELDS as readonly string[]).includes(key) || key === 'options') {
      throw new CmError(`unknown key ${JSON.stringify(key)}; one of ${HOST_FIELDS.filter((f) => f !== 'options').join(', ')}, options.NAME`, ExitCode.USAGE);
    }
    const field = key as HostField;
    if (value === '') {
      unset.push(field);
      continue;
    }
    switch (field) {
      case 'port':
      case 'slots': {
        if (!/^\d+$/.test(value) || Number(value) < 1) throw new CmError(`${key} must be a positive integer, got ${JSON.stringify(value)}`, ExitCode.USAGE);
        fields[field] = Number(value);
        break;
      }
      case 'local':
        if (value !== 'true' && value !== 'false') throw new CmError(`local must be true or false, got ${JSON.stringify(value)}`, ExitCode.USAGE);
        fields.local = value === 'true';
        break;
      case 'tags':
        fields.tags = value.split(',').filter((t) => t !== '');
        break;
      case 'address':
      case 'user':
      case 'identity':
      case 'jump':
        fields[field] = value;
        break;
    }
  }
  return { fields, unset };
}
