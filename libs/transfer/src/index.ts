export * from './paths';
export * from './tar';
export * from './connections';
export * from './fetch';
export * from './stage';
export * from './limit';
export * from './queue';
export * from './stream';
