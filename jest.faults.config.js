/**
 * The fault suite (`npm run test:faults`): real instances as child processes, a PostgreSQL it
 * crash-restarts, a SIEM receiver with an outage switch. Not part of `npm test` (it takes a
 * few minutes); .ci/run runs it after the two `npm test` passes. See server/test/faults/.
 * @type {import('jest').Config}
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- CommonJS config, like jest.config.js
const base = require('./jest.config.js');

module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/server/test/faults'],
  testMatch: ['**/*.faults.ts'],
  transform: base.transform,
  transformIgnorePatterns: base.transformIgnorePatterns,
  setupFiles: base.setupFiles,
  globalSetup: '<rootDir>/server/test/faults/global-setup.ts',
  globalTeardown: '<rootDir>/server/test/faults/global-teardown.ts',
  maxWorkers: 1,
  testTimeout: 300000,
};
