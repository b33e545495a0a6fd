/**
 * Registry names (`e:Type`, `o:name`, `a:name`, `f:feature`), as the placement records list what a
 * node runs, in words for messages.
 */

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
 */
export function describeTypeName(name: string): string {
  const kind = KINDS[name.slice(0, name.indexOf(':'))]
  return kind === undefined ? `'${name}'` : `${kind} '${name.slice(name.indexOf(':') + 1)}'`
}
