/**
 * runtime/activities/ — running activities: the pool that runs them on this node (bounded
 * concurrency, timeouts) and the workers that take offloaded tasks from the hub's work queue and
 * send results back through a port. May import runtime/partition/ (value limits),
 * runtime/nats/, runtime/util/ and actors/.
 */
export { ActivityPool } from './pool.ts'
export { ActivityWorkers, type ResultSender } from './workers.ts'
