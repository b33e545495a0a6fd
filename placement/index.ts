/**
 * placement/ — who owns which partition, with which epoch. Decides; the runtime obeys. Imports
 * nothing of NATS: the runtime hands it an {@link AssignmentStore}.
 */
export { claimAll, claimPartition, type Assignment, type AssignmentStore } from './assignment.ts'
