export * from './machine-readable';
export * from './status';
export * from './ssh-config';
export * from './vagrantfile';
export * from './provider';
export * from './errors';
export * from './runner';
export * from './commands';
