/** @jest-config-loader esbuild-register */
/**
 * The fault suite (`npm run test:faults`): real instances as child processes, a PostgreSQL it
 * crash-restarts, a SIEM receiver with an outage switch. Not part of `npm test` (it takes a
 * few minutes); .ci/run runs it after the two `npm test` passes. See server/test/faults/.
 */
import type { Config } from 'jest';
import { setupFiles, transform, transformIgnorePatterns } from './jest.config';

const config: Config = {
  testEnvironment: 'node',
  roots: ['<rootDir>/server/test/faults'],
  testMatch: ['**/*.faults.ts'],
  transform,
  transformIgnorePatterns,
  setupFiles,
  globalSetup: '<rootDir>/server/test/faults/global-setup.ts',
  globalTeardown: '<rootDir>/server/test/faults/global-teardown.ts',
  maxWorkers: 1,
  testTimeout: 300000,
};

export default config;
