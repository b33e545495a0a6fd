/**
 * Sets, errors and regular expressions inside user values (entity states, arguments, results,
 * inputs, outputs, event data) keep their type across the wire and storage. Plain msgpack (no
 * `moreTypes`) wrote them as bare arrays: a Set in an entity's state was a Set while the state
 * stayed cached and an array once read back after a restart or a move, and an Error passed as a
 * value arrived as `['Error', 'message', undefined]`.
 *
 * Each is written in the tagged form msgpackr itself uses for these types (a one-byte tag then the
 * value: `s` for a Set, `e` for an error, `x` for a RegExp), so any msgpackr process reads them,
 * and values written before read as they did (bare arrays). An error keeps its name, message and
 * cause (not its stack, nor other fields).
 *
 * A Map cannot be kept this way: msgpackr writes every Map as a msgpack map before it looks for
 * extensions, and a map reads back as a plain object (string keys). docs/ARCHITECTURE.md says so.
 */
import { addExtension } from 'msgpackr'

const SET = 0x73
const ERROR = 0x65
const REGEXP = 0x78

/** The standard error classes, rebuilt by name; any other name is an Error with that name. */
const ERROR_CLASSES: Record<string, ErrorConstructor> = {
  Error,
  EvalError,
  RangeError,
  ReferenceError,
  SyntaxError,
  TypeError,
  URIError,
}

addExtension({
  Class: Set,
  type: SET,
  write: (set: Set<unknown>) => Array.from(set),
  read: (items: unknown) => new Set(items as unknown[]),
})

addExtension({
  Class: Error,
  type: ERROR,
  write: (error: Error) => [error.name, error.message, error.cause],
  read: (data: unknown) => {
    const [name, message, cause] = data as [string, string, unknown]
    const Class = Object.hasOwn(ERROR_CLASSES, name) ? ERROR_CLASSES[name]! : Error
    const error = cause === undefined ? new Class(message) : new Class(message, { cause })
    if (error.name !== name) error.name = name
    return error
  },
})

addExtension({
  Class: RegExp,
  type: REGEXP,
  write: (re: RegExp) => [re.source, re.flags],
  read: (data: unknown) => {
    const [source, flags] = data as [string, string]
    return new RegExp(source, flags)
  },
})
