export * from './decimal';
export * from './value';
export * from './ops';
export * from './engine';
export * from './table';
