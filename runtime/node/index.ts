/**
 * runtime/node/ — the node: the one place that wires the components together (hub, partitions,
 * instance and activity hosts, workers, the placement agent). May import every runtime folder
 * below it, placement/, actors/ and entities/; only runtime/cli/ and the public entry import it.
 */
export { Node, type NodeOptions, type RegistryItem } from './node.ts'
export { loadRegistry, splitRegistry, type SplitRegistry } from './registry-module.ts'
export { placementTiming } from './node-options.ts'
