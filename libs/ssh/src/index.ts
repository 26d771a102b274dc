export * from './args';
export * from './control';
export * from './masters';
