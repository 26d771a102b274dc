export * from './main';
export * from './memory';
