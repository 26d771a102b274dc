export * from './records';
export * from './validate';
export * from './errors';
export * from './reader';
export * from './writer';
export * from './conventions';
