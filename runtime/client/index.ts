/**
 * runtime/client/ — the client: typed entity handles, instance management, reads and watches, and
 * the batched call transport to partition mailboxes. May import runtime/partition/ (routing and
 * item keys), runtime/instances/ (the instance data model), runtime/nats/, runtime/util/, actors/
 * and entities/; never runtime/node/.
 */
export {
  Client,
  type ClientOptions,
  type EntityPage,
  type EntityState,
  type ScheduledSignal,
} from './client.ts'
export type {
  InstanceFilter,
  InstanceId,
  InstancePage,
  InstanceQuery,
  StartOptions,
  StatusOptions,
  WaitOptions,
} from './options.ts'
export { purgeEach } from './instance-api.ts'
export type { EntityHandle } from './handles.ts'
export type { InstanceStatus } from './status.ts'
