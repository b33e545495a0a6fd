/**
 * Naming the step a failure came from: a NATS client error says `timeout` or `503`, not which of
 * a partition start's dozen requests it answered.
 */
import { BasaltError } from '../../actors/index.ts'

/**
 * Resolves as `work`; when it rejects with an error from below Basalt (a NATS client error, say),
 * the error's message ends with `(while <what>)` first. The error stays the same object, so checks
 * of its class, name, code or text still hold; Basalt's own errors already say what failed and are
 * left as they are.
 *
 * @example await during('reading the checkpoint', storage.readCheckpoint()) // timeout (while reading the checkpoint)
 */
export async function during<T>(what: string, work: Promise<T>): Promise<T> {
  try {
    return await work
  } catch (err) {
    if (err instanceof Error && !(err instanceof BasaltError) && !err.message.includes(' (while '))
      err.message = `${err.message} (while ${what})`
    throw err
  }
}
