/**
 * runtime/activities/ — running activities: the pool that runs them on this node (bounded
 * concurrency, timeouts) and the workers that take offloaded tasks from the hub's work queue and
 * send results back through a port, and the span of an activity execution. May import
 * runtime/partition/ (value limits), runtime/nats/, runtime/metrics/, runtime/util/ and actors/.
 */
export { ActivityPool } from './pool.ts'
export { ActivityWorkers, type ResultSender } from './workers.ts'
export { tracedActivity } from './activity-spans.ts'
