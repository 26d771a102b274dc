export { execOnAllocation, execWithClusters, type CoreOptions } from './engine';
export { execJobs } from './jobs';
export { allocate, allocationHosts, partitionHost, SLURM_TAG, type Allocation } from './allocation';
export { SlurmStepTransport, workersTransport, refusingTransport, TRANSPORT } from './transports';
export type { SlurmOptions, SlurmMode } from './options';
export { slurmTime, sallocArgs, srunArgs, sbatchArgs, placementArgs } from './options';
export { parseSqueue } from './batch';
export { preflight } from './proc';
