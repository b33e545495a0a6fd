/**
 * runtime/instances/ — orchestration instances in a partition: their data model (statuses,
 * records, summaries), the instance host that runs steps through the replay engine, history
 * chunks and held completion waits. May import runtime/partition/ (its port), runtime/activities/,
 * runtime/nats/, runtime/util/, actors/ and entities/.
 */
export { InstanceHost } from './instance-host.ts'
export { InstanceExistsError, InstanceNotFoundError } from './instance-model.ts'
export {
  RuntimeStatus,
  isTerminal,
  summaryOf,
  statusFieldsOf,
  type InstanceRecord,
  type InstanceStatusFields,
  type InstanceSummary,
  type InstanceView,
  type Workflows,
} from './instance-model.ts'
export { refsOf } from './instance-history.ts'
