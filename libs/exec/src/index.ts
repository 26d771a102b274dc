export { Scheduler, workdirOf, type Action, type SchedulerOptions, type SchedulerStats } from './scheduler';
export { parseHalt, haltReached, type HaltPolicy } from './halt';
export { JobLog, readJoblog } from './joblog';
export { execute, freshRunId, DEFAULT_TRANSPORT, type ExecOptions, type ExecIO, type TransportName } from './engine';
export { OutputCapture } from './transport/capture';
export { LocalTransport } from './transport/local';
export { SshTransport, remoteCommand, remoteWrapper, shQuote } from './transport/ssh';
export type { Transport, JobLaunch, JobOutcome } from './transport/types';
export { PersistentTransport, PERSISTENT_UNAVAILABLE } from './transport/persistent';
