/**
 * The registry the benchmarks' node processes serve (`basalt node --load bench/registry.ts`, started
 * by `bench/cluster.ts`): the `Counter` entity and the benchmark workflows.
 */
import type { RegistryItem } from '../runtime/node/node.ts'
import { Counter } from './entities.ts'
import { benchWorkflows } from './workflows.ts'

/** Entity classes, orchestrations and activities of the benchmarks. */
export const registry: RegistryItem[] = [Counter, ...benchWorkflows]
