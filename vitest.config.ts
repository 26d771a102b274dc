import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['libs/*/src/**/*.spec.ts', 'tools/*/src/**/*.spec.ts'],
    pool: 'threads',
  },
});
