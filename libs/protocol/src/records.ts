// Every NDJSON record cm's commands exchange, defined once: the TypeBox value is the JSON Schema
// (exported to config/schemas/ by scripts/schemas.mjs) and Static<> gives the TypeScript type.
import { Type, type Static, type TSchema } from '@sinclair/typebox';

export const PROTOCOL_VERSION = 1 as const;

const Version = Type.Literal(PROTOCOL_VERSION, { description: 'protocol version' });

/**
 * The character rules every command shares, as regular-expression sources. They keep names that reach
 * a command line (ssh, Slurm) or a local path (the results tree) from ever being read as an option,
 * shell code or a path step: never a leading '-' or '.', no whitespace, quotes or metacharacters.
 */
export const PATTERNS = {
  safeId: '^[A-Za-z0-9_][A-Za-z0-9_.:@+=,-]*$',
  hostToken: '^[A-Za-z0-9_][A-Za-z0-9_.%:-]*$',
  tag: '^[A-Za-z0-9_][A-Za-z0-9_.-]*$',
  jump: '^[A-Za-z0-9_][A-Za-z0-9_.@:,[\\]-]*$',
  /** a Slurm partition, account or QOS: never read as an option or a list */
  slurmName: '^[A-Za-z0-9_][A-Za-z0-9_.+:@-]*$',
} as const;

/** An inventory entry that is a Slurm cluster: cm-exec asks it for an allocation whose nodes are hosts. */
export const SlurmPlacement = Type.Object(
  {
    partition: Type.Optional(Type.String({ pattern: PATTERNS.slurmName })),
    account: Type.Optional(Type.String({ pattern: PATTERNS.slurmName })),
    qos: Type.Optional(Type.String({ pattern: PATTERNS.slurmName })),
    mode: Type.Optional(Type.Union([Type.Literal('steps'), Type.Literal('workers')], { description: 'a job per srun step (default), or cm\'s job loop on each node' })),
  },
  { additionalProperties: false },
);
export type SlurmPlacement = Static<typeof SlurmPlacement>;

/** A name that may become part of a local path (results tree) or a remote argument: never `-x`, `..` or `/`. */
export const SafeId = Type.String({
  pattern: PATTERNS.safeId,
  maxLength: 200,
  description: 'job, task or run identifier: letters, digits and _.:@+=,- ; never starts with - or .',
});

/** Host names and users reach the ssh command line: no leading '-', no whitespace or shell metacharacters. */
export const HostToken = Type.String({
  pattern: PATTERNS.hostToken,
  maxLength: 255,
});

const StringMap = Type.Record(Type.String(), Type.String());

/**
 * A run's parameters, name -> value (a sweep's values, in the def's order): the job's env holds them
 * for the shell; this copy travels on its events and fetch records, so results can be grouped by them.
 */
export const Params = Type.Record(Type.String(), Type.String(), { description: "the run's parameters: name -> value" });
export type Params = Static<typeof Params>;

export const HostRecord = Type.Object(
  {
    kind: Type.Literal('host'),
    v: Version,
    name: HostToken,
    address: HostToken,
    user: Type.Optional(HostToken),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    identity: Type.Optional(Type.String({ description: 'path of the private key file (never its content)' })),
    jump: Type.Optional(Type.String({ pattern: PATTERNS.jump })),
    options: Type.Optional(StringMap),
    tags: Type.Array(Type.String({ pattern: PATTERNS.tag })),
    slots: Type.Integer({ minimum: 1 }),
    local: Type.Optional(Type.Boolean({ description: 'run as a local subprocess, without ssh' })),
    slurm: Type.Optional(SlurmPlacement),
  },
  { additionalProperties: false, $id: 'host', description: 'one machine of the inventory, or a Slurm cluster (slurm)' },
);
export type HostRecord = Static<typeof HostRecord>;

export const JobRecord = Type.Object(
  {
    kind: Type.Literal('job'),
    v: Version,
    id: SafeId,
    task: SafeId,
    command: Type.String({ description: 'shell snippet run by sh -c on the host' }),
    deps: Type.Array(SafeId, { description: 'ids of jobs that must finish successfully first' }),
    after: Type.Optional(Type.Array(SafeId, { description: 'ids of jobs that must have ended (any state) first' })),
    host: Type.Optional(Type.String({ description: 'pin: a host name, a host-range pattern or @tag' })),
    env: Type.Optional(StringMap),
    timeout: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: 'seconds' })),
    retries: Type.Optional(Type.Integer({ minimum: 0 })),
    inputs: Type.Optional(Type.Array(Type.String(), { description: 'local files staged to the host before start' })),
    staged: Type.Optional(Type.Boolean({ description: 'cm-fetch --stage-in put the inputs on the hosts: cm-exec fails a job with inputs without it' })),
    outputs: Type.Optional(Type.Array(Type.String(), { description: 'remote paths (relative to the job dir) fetched back' })),
    result: Type.Optional(Type.String({ description: '"stdout" (default) or the output file holding the value' })),
    sweep: Type.Optional(SafeId),
    index: Type.Optional(Type.Integer({ minimum: 0 })),
    run: Type.Optional(SafeId),
    params: Type.Optional(Params),
  },
  { additionalProperties: false, $id: 'job', description: 'one run of a task' },
);
export type JobRecord = Static<typeof JobRecord>;

export const ReduceRecord = Type.Object(
  {
    kind: Type.Literal('reduce'),
    v: Version,
    id: SafeId,
    op: Type.String({ description: 'sum, min, max, mean, count, concat, histogram, or cmd:<shell command>' }),
    inputs: Type.Array(SafeId, { description: 'job or reduce ids, in plan order' }),
    sweeps: Type.Optional(
      Type.Record(Type.String(), Type.Integer({ minimum: 0 }), {
        description: 'sweep name -> number of runs; every job of the sweep is an input (keeps 1e6-run sweeps off one line)',
      }),
    ),
    final: Type.Optional(Type.Boolean({ description: 'the value of the whole plan' })),
    by: Type.Optional(Type.Array(Type.String(), { minItems: 1, description: 'parameter names: one value per combination of their values' })),
    run: Type.Optional(SafeId),
  },
  { additionalProperties: false, $id: 'reduce', description: 'fold the results of inputs into one value' },
);
export type ReduceRecord = Static<typeof ReduceRecord>;

export const EventType = Type.Union(
  [
    Type.Literal('queued'),
    Type.Literal('started'),
    Type.Literal('finished'),
    Type.Literal('retry'),
    Type.Literal('gave-up'),
    Type.Literal('skipped'),
    Type.Literal('host-down'),
    Type.Literal('host-up'),
  ],
  { description: 'finished (exit 0 = done, else failed), gave-up and skipped are final states of a job' },
);
export type EventType = Static<typeof EventType>;

export const EventRecord = Type.Object(
  {
    kind: Type.Literal('event'),
    v: Version,
    event: EventType,
    job: Type.Optional(SafeId),
    task: Type.Optional(SafeId),
    run: Type.Optional(SafeId),
    host: Type.Optional(Type.String()),
    attempt: Type.Optional(Type.Integer({ minimum: 1 })),
    transport: Type.Optional(Type.String()),
    exit: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
    signal: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    start: Type.Optional(Type.String({ description: 'ISO 8601: when the job (started: this attempt; retry: the attempt that failed) started' })),
    end: Type.Optional(Type.String({ description: 'ISO 8601' })),
    duration: Type.Optional(Type.Number({ description: 'seconds' })),
    stdout: Type.Optional(Type.String()),
    stderr: Type.Optional(Type.String()),
    stdout_bytes: Type.Optional(Type.Integer({ minimum: 0 })),
    stderr_bytes: Type.Optional(Type.Integer({ minimum: 0 })),
    truncated: Type.Optional(Type.Boolean()),
    log: Type.Optional(Type.String({ description: 'local file with the whole output when the cap cut it' })),
    workdir: Type.Optional(Type.String({ description: 'remote directory the job ran in' })),
    outputs: Type.Optional(Type.Array(Type.String())),
    result: Type.Optional(Type.String()),
    sweep: Type.Optional(SafeId),
    index: Type.Optional(Type.Integer({ minimum: 0 })),
    reason: Type.Optional(Type.String()),
    at: Type.Optional(Type.String({ description: 'host-down, host-up: when cm-exec saw it (ISO 8601)' })),
    running: Type.Optional(Type.Integer({ minimum: 0, description: 'jobs running on the host when this one started' })),
    replayed: Type.Optional(Type.Boolean({ description: 'a final event read back from the joblog by --resume' })),
    params: Type.Optional(Params),
    kept: Type.Optional(Type.Boolean({ description: "the job's workdir stays on its host (--keep-workdirs): nothing downstream removes it" })),
    deps: Type.Optional(Type.Array(SafeId, { description: "queued: the job's deps, when it has any" })),
    after: Type.Optional(Type.Array(SafeId, { description: "queued: the job's after, when it has any" })),
    spool: Type.Optional(Type.String({ description: "joblog started lines: the folder on the host keeping the job's results for a --resume to collect" })),
    reattach_within: Type.Optional(Type.Integer({ minimum: 0, description: 'joblog started lines: seconds the host keeps the job after cm-exec was last seen (--reattach-within)' })),
    reattached: Type.Optional(Type.Boolean({ description: 'a job collected from its host (a cm-exec that died started it, or its session was lost), not followed live' })),
    slurm_job: Type.Optional(Type.String({ description: 'joblog queued lines in Slurm jobs mode: the Slurm job id ("123" or "123_4", an array task)' })),
  },
  { additionalProperties: false, $id: 'event', description: 'what cm-exec did with a job or host' },
);
export type EventRecord = Static<typeof EventRecord>;

export const FetchedFile = Type.Object(
  {
    remote: Type.String(),
    path: Type.String({ description: 'local path inside the results tree' }),
    size: Type.Integer({ minimum: 0 }),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    provider: Type.Optional(
      Type.Union([Type.Literal('file'), Type.Literal('ssh'), Type.Literal('az'), Type.Literal('s3')], { description: 'where the stored copy is kept (cm-fetch --to)' }),
    ),
    location: Type.Optional(Type.String({ description: 'URL of the stored copy, checked against sha256 (cm-fetch --to); never holds a credential' })),
  },
  { additionalProperties: false },
);
export type FetchedFile = Static<typeof FetchedFile>;

export const FetchRecord = Type.Object(
  {
    kind: Type.Literal('fetch'),
    v: Version,
    job: SafeId,
    task: Type.Optional(SafeId),
    run: Type.Optional(SafeId),
    host: Type.Optional(Type.String()),
    direction: Type.Union([Type.Literal('in'), Type.Literal('out')]),
    ok: Type.Boolean(),
    files: Type.Array(FetchedFile),
    result: Type.Optional(Type.String({ description: 'local path of the job result file, if it declared one' })),
    attempt: Type.Optional(Type.Integer({ minimum: 1 })),
    error: Type.Optional(Type.String()),
    sweep: Type.Optional(SafeId),
    index: Type.Optional(Type.Integer({ minimum: 0 })),
    params: Type.Optional(Params),
    to: Type.Optional(Type.String({ description: 'cm-fetch --to: the location the files were stored at (each file names its own copy); path stays the local copy' })),
  },
  { additionalProperties: false, $id: 'fetch', description: 'files moved to or from a job' },
);
export type FetchRecord = Static<typeof FetchRecord>;

export const ValueRecord = Type.Object(
  {
    kind: Type.Literal('value'),
    v: Version,
    id: SafeId,
    op: Type.Optional(Type.String()),
    value: Type.Unknown({ description: 'the value; integers beyond 2^53 are decimal strings' }),
    partial: Type.Boolean(),
    have: Type.Optional(Type.Integer({ minimum: 0 })),
    want: Type.Optional(Type.Integer({ minimum: 0 })),
    missing: Type.Optional(Type.Array(Type.String())),
    error: Type.Optional(Type.String()),
    final: Type.Optional(Type.Boolean()),
    group: Type.Optional(Type.Record(Type.String(), Type.String(), { description: "with a reduce's by: the parameter values this value is for" })),
  },
  { additionalProperties: false, $id: 'value', description: 'a (partial) reduced value' },
);
export type ValueRecord = Static<typeof ValueRecord>;

export const CheckRecord = Type.Object(
  {
    kind: Type.Literal('check'),
    v: Version,
    host: Type.String(),
    address: Type.String(),
    up: Type.Boolean(),
    reason: Type.Optional(Type.String({ description: 'why the host is down: connection refused, timed out, ...' })),
    rtt_ms: Type.Number({ minimum: 0, description: 'ms from starting ssh to the probe answer' }),
    cpus: Type.Optional(Type.Integer({ minimum: 1 })),
    load: Type.Optional(Type.Array(Type.Number(), { description: '1, 5 and 15 minute load averages' })),
    hostname: Type.Optional(Type.String()),
    slots: Type.Integer({ minimum: 1 }),
    suggested_slots: Type.Optional(Type.Integer({ minimum: 1 })),
    local: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, $id: 'check', description: 'cm-hosts check: one probed host' },
);
export type CheckRecord = Static<typeof CheckRecord>;

export const MachineRecord = Type.Object(
  {
    kind: Type.Literal('machine'),
    v: Version,
    name: Type.String(),
    state: Type.String({ description: "Vagrant's state: running, poweroff, shutoff, not_created, ..." }),
    provider: Type.Optional(Type.String()),
    dir: Type.String({ description: 'folder of the Vagrantfile' }),
  },
  { additionalProperties: false, $id: 'machine', description: 'cm-vagrant: one machine and its state' },
);
export type MachineRecord = Static<typeof MachineRecord>;

export const CleanRecord = Type.Object(
  {
    kind: Type.Literal('clean'),
    v: Version,
    host: Type.String(),
    ok: Type.Boolean(),
    runs: Type.Array(
      Type.Object({ run: Type.String(), bytes: Type.Integer({ minimum: 0, description: 'disk usage before removal (du -k x 1024)' }) }, { additionalProperties: false }),
      { description: 'the run folders removed from .cm/runs on the host' },
    ),
    bytes: Type.Integer({ minimum: 0, description: 'sum of the runs\' bytes' }),
    error: Type.Optional(Type.String()),
  },
  { additionalProperties: false, $id: 'clean', description: 'cm-exec --clean: what one host had removed' },
);
export type CleanRecord = Static<typeof CleanRecord>;

export const RECORD_SCHEMAS = {
  host: HostRecord,
  job: JobRecord,
  reduce: ReduceRecord,
  event: EventRecord,
  fetch: FetchRecord,
  value: ValueRecord,
  check: CheckRecord,
  machine: MachineRecord,
  clean: CleanRecord,
} as const satisfies Record<string, TSchema>;

export type RecordKind = keyof typeof RECORD_SCHEMAS;
export type AnyRecord =
  | HostRecord
  | JobRecord
  | ReduceRecord
  | EventRecord
  | FetchRecord
  | ValueRecord
  | CheckRecord
  | MachineRecord
  | CleanRecord;
export type RecordOf<K extends RecordKind> = Static<(typeof RECORD_SCHEMAS)[K]>;

/** A record of a kind this version of cm does not know: passed through untouched. */
export interface ForeignRecord {
  kind: string;
  [key: string]: unknown;
}

export function isKnownKind(kind: string): kind is RecordKind {
  return Object.prototype.hasOwnProperty.call(RECORD_SCHEMAS, kind);
}
