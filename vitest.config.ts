import { defineConfig } from 'vitest/config'

// Integration tests start real nats-server processes; on a 2-core machine run at most two files at
// once so servers and nodes do not starve each other.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    fileParallelism: true,
  },
})
