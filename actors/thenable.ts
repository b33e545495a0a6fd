/**
 * One test for "is this a promise?", shared by the entity registry and the runtime (which may
 * both import actors/): anything, object or function, with a callable `then` (Promises/A+ §1.1).
 */

/** Whether a value is promise-like: an object or function with a `then` method. */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  )
}
