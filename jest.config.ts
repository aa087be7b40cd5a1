/** @jest-config-loader esbuild-register */
/**
 * Jest reads this TypeScript config through esbuild-register (the docblock above; Node 20 has no
 * TypeScript loader of its own). Tests are transformed by @swc/jest.
 */
import type { Config } from 'jest';

/** How every test file (and jose, which is ESM-only) is turned into CommonJS for Jest. */
export const transform: Config['transform'] = {
  '^.+\\.ts$': [
    '@swc/jest',
    { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } },
  ],
  // jose (used by jwks-rsa) is ESM-only; Node loads it natively, Jest (before Node 24.9) needs it as CommonJS.
  '^.+/node_modules/jose/.+\\.js$': ['@swc/jest', { jsc: { target: 'es2022' }, module: { type: 'commonjs' } }],
};
export const transformIgnorePatterns = ['/node_modules/(?!jose/)'];
/** Outbound network is refused in tests except to local peers (see helpers/no-network.ts). */
export const setupFiles = ['<rootDir>/server/test/helpers/no-network.ts'];

const config: Config = {
  testEnvironment: 'node',
  roots: ['<rootDir>/server/test'],
  testMatch: ['**/*.test.ts'],
  transform,
  transformIgnorePatterns,
  globalSetup: '<rootDir>/server/test/helpers/global-setup.ts',
  globalTeardown: '<rootDir>/server/test/helpers/global-teardown.ts',
  maxWorkers: 2,
  testTimeout: 30000,
  setupFiles,
};

export default config;
