export * from './source';
export * from './expr';
export * from './params';
export * from './options';
export * from './planfile';
// ./yamlplan is imported on demand by loadPlanAsync, never from here: see load.ts.
export * from './plan';
export * from './emit';
export * from './explain';
export * from './load';
