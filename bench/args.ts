/**
 * Parsing of the benchmark runner's numeric flags (`bench/run.ts`), apart from the runner so it can
 * be unit-tested without starting anything: whole numbers (`--instances 10000`) and comma-separated
 * lists of them (`--concurrency 256,1024,2048`, `--nodes 1,2,3`). Bad values are rejected with a
 * {@link BadInputError} that names the flag and quotes what was given.
 */
import { BadInputError } from '../runtime/index.ts'

/**
 * `text` as an integer of at least `min`, for the flag `--<flag>`.
 *
 * @throws BadInputError naming the flag and the value when `text` is not such an integer.
 * @example positiveInt('instances', '10000') // 10000
 */
export function positiveInt(flag: string, text: string, min = 1): number {
  const trimmed = text.trim()
  const n = trimmed === '' ? NaN : Number(trimmed)
  if (!Number.isSafeInteger(n) || n < min)
    throw new BadInputError(`--${flag} must be an integer >= ${min} (got ${JSON.stringify(text)})`)
  return n
}

/**
 * `text` as a comma-separated list of distinct integers of at least `min`, in the order given, for
 * the flag `--<flag>`. A single number is a list of one.
 *
 * @throws BadInputError naming the flag, the whole value and the offending item when an item is
 *   empty, not such an integer, or listed twice.
 * @example positiveIntList('concurrency', '256,1024,2048') // [256, 1024, 2048]
 */
export function positiveIntList(flag: string, text: string, min = 1): number[] {
  const items = text.split(',').map((item) => item.trim())
  const values: number[] = []
  for (const item of items) {
    const n = item === '' ? NaN : Number(item)
    if (!Number.isSafeInteger(n) || n < min)
      throw new BadInputError(
        `--${flag} must be a comma-separated list of integers >= ${min}: ` +
          `${JSON.stringify(item)} is not one (got ${JSON.stringify(text)})`,
      )
    if (values.includes(n))
      throw new BadInputError(`--${flag} lists ${n} twice (got ${JSON.stringify(text)})`)
    values.push(n)
  }
  return values
}

/**
 * `text` as a comma-separated list of distinct names out of `choices`, in the order given, for the
 * flag `--<flag>`.
 *
 * @throws BadInputError naming the flag, the offending item and the choices when an item is not one
 *   of them or is listed twice.
 * @example choiceList('faults', 'member', ['stop', 'kill', 'member']) // ['member']
 */
export function choiceList<T extends string>(flag: string, text: string, choices: readonly T[]): T[] {
  const values: T[] = []
  for (const item of text.split(',').map((i) => i.trim())) {
    const choice = choices.find((c) => c === item)
    if (choice === undefined)
      throw new BadInputError(
        `--${flag} must be a comma-separated list of ${choices.join(', ')}: ` +
          `${JSON.stringify(item)} is not one (got ${JSON.stringify(text)})`,
      )
    if (values.includes(choice))
      throw new BadInputError(`--${flag} lists ${choice} twice (got ${JSON.stringify(text)})`)
    values.push(choice)
  }
  return values
}
