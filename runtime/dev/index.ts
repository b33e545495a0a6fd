/**
 * runtime/dev/ — development tooling, not the engine: the embedded nats-server launcher that the
 * demo, the CLI's dev commands and the test harness use (random ports, owned temp dirs, stop by
 * pid). May import `node:*` and `@nats-io/*`; only runtime/cli/, examples/, bench/ and tests import
 * it, never the engine.
 */
export {
  findNatsServer,
  NatsServerMissingError,
  NatsServerStartError,
  type NatsClusterMemberOptions,
  type NatsServerOptions,
} from './nats-server-config.ts'
export { isPortClash, startNatsServer, type NatsServer } from './nats-server.ts'
export { createOwnedDir, installHooks, removeOwnedDir, stopAllNatsServers } from './owned-resources.ts'
export { freePort, freePorts, readLogTail, sleep } from './probes.ts'
export { claimStore, reclaimStore, releaseStore } from './store-owner.ts'
