/**
 * runtime/dev/ — development tooling, not the engine: the embedded nats-server launcher that the
 * demo, the CLI's dev commands and the test harness use (random ports, owned temp dirs, stop by
 * pid). May import `node:*` and `@nats-io/*`; only runtime/cli/, examples/, bench/ and tests import
 * it, never the engine.
 */
export {
  NatsServerMissingError,
  NatsServerStartError,
  createOwnedDir,
  findNatsServer,
  freePort,
  freePorts,
  installHooks,
  readLogTail,
  removeOwnedDir,
  sleep,
  startNatsServer,
  stopAllNatsServers,
  type NatsClusterMemberOptions,
  type NatsServer,
  type NatsServerOptions,
} from './nats-server.ts'
