export { execSlurm, type StreamIO } from './stream';
export { runSlurm, freshRunId } from './run';
export type { SlurmOptions, SlurmMode } from './options';
export { slurmTime, sallocArgs, srunArgs, sbatchArgs, placementArgs } from './options';
export { DepTracker, Capture } from './common';
export { parseSqueue } from './batch';
export { preflight } from './proc';
