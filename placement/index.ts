/**
 * placement/ — who owns which partition, with which epoch: membership by heartbeats, the leader
 * lease, the balancing policy and the hand-off protocol. Decides; the runtime obeys.
 */
export { PlacementAgent } from './agent.ts'
export { NODE_ID } from './records.ts'
export type { AssignRecord, LeaderRecord, NodeRecord, PlacementOptions } from './records.ts'
export { claimAll, claimPartition, type Assignment, type AssignmentStore } from './assignment.ts'
export { balance } from './policy.ts'
export {
  EXEC_SEQS,
  HubTypes,
  LOCK_OPS,
  PACKED_HISTORY,
  RELEASE_OPS,
  WIRE_FEATURES,
  isFeature,
  type TypeName,
} from './registry.ts'
export { hubTypeNames, readHubTypes } from './registry.ts'
export { readHubOperations, rememberOperations, type HubOperations } from './registry.ts'
export { readPlacement, type PlacementAssignment, type PlacementNode, type PlacementTable } from './table.ts'
