/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/server/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } },
    ],
    // jose (used by jwks-rsa) is ESM-only; Node loads it natively, Jest (before Node 24.9) needs it as CommonJS.
    '^.+/node_modules/jose/.+\\.js$': ['@swc/jest', { jsc: { target: 'es2022' }, module: { type: 'commonjs' } }],
  },
  transformIgnorePatterns: ['/node_modules/(?!jose/)'],
  globalSetup: '<rootDir>/server/test/helpers/global-setup.ts',
  globalTeardown: '<rootDir>/server/test/helpers/global-teardown.ts',
  maxWorkers: 2,
  testTimeout: 30000,
  // Outbound network is refused in tests except to local peers (see helpers/no-network.ts).
  setupFiles: ['<rootDir>/server/test/helpers/no-network.ts'],
};
