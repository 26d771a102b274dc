export * from './args';
export * from './control';
