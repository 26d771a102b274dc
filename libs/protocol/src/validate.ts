import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { RECORD_SCHEMAS, isKnownKind, type AnyRecord, type ForeignRecord, type RecordKind } from './records';

const checks = new Map<RecordKind, TypeCheck<(typeof RECORD_SCHEMAS)[RecordKind]>>();

function checkerFor(kind: RecordKind): TypeCheck<(typeof RECORD_SCHEMAS)[RecordKind]> {
  let check = checks.get(kind);
  if (!check) {
    // Compiled on first use: a command that never sees a kind never pays for its schema.
    check = TypeCompiler.Compile(RECORD_SCHEMAS[kind]);
    checks.set(kind, check);
  }
  return check;
}

/** Returns null when `value` is a valid record, else a one-line reason naming the offending field. */
export function recordProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'a record must be a JSON object';
  const kind = (value as { kind?: unknown }).kind;
  if (typeof kind !== 'string' || kind === '') return 'a record needs a "kind" string';
  if (!isKnownKind(kind)) return null;
  const check = checkerFor(kind);
  if (check.Check(value)) return null;
  const first = check.Errors(value).First();
  if (!first) return `not a valid ${kind} record`;
  const where = first.path === '' ? '' : ` at ${first.path.slice(1).replace(/\//g, '.')}`;
  return `${kind} record${where}: ${first.message}`;
}

export function isRecordOf<K extends RecordKind>(rec: AnyRecord | ForeignRecord, kind: K): rec is Extract<AnyRecord, { kind: K }> {
  return rec.kind === kind;
}
