/**
 * Registry names (`e:Type`, `e:Type#operation`, `o:name`, `a:name`, `f:feature`), as the placement
 * records list what a node runs, in words for messages.
 */

/** The registry name of entity type `type`'s operation `op`: `e:Counter#add`. */
export function operationName(type: string, op: string): string {
  return `e:${type}#${op}`
}

const KINDS: Record<string, string> = {
  e: 'entity type',
  o: 'orchestration',
  a: 'activity',
  f: 'wire feature',
}

/**
 * A registry name in words.
 *
 * @example describeTypeName('e:Account') // "entity type 'Account'"
 * @example describeTypeName('e:Account#deposit') // "operation 'deposit' of entity type 'Account'"
 */
export function describeTypeName(name: string): string {
  const op = /^e:(.+)#([^#]+)$/.exec(name)
  if (op !== null) return `operation '${op[2]}' of entity type '${op[1]}'`
  const kind = KINDS[name.slice(0, name.indexOf(':'))]
  return kind === undefined ? `'${name}'` : `${kind} '${name.slice(name.indexOf(':') + 1)}'`
}
