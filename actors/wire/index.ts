/**
 * actors/wire/ — the wire model: the messages actors send each other, the envelopes clients and
 * partitions publish to mailboxes, replies, queries and their answers, commit records and the
 * activity tasks and outcomes that travel over the task work queue. Data shapes and their
 * validation only; may import actors/ (errors, ids), nothing else — no NATS, no `node:`.
 */
export {
  WIRE_VERSION,
  activityTaskOf,
  activityCallId,
  activityTaskTuple,
  checkEnvelope,
  checkMessage,
  type ActivityOutcome,
  type ActivityTask,
  type ActivityTaskTuple,
  type ActorMessage,
  type ClientEnvelope,
  type CommitRecord,
  type ControlMessage,
  type DoneMessage,
  type EntityOp,
  type EventMessage,
  type InstanceFilter,
  type LockMessage,
  type LogWriter,
  type MailboxEnvelope,
  type MailboxPosition,
  type PartitionEnvelope,
  type ProbeUnit,
  type Query,
  type QueryAnswer,
  type Reply,
  type ReplyEnvelope,
  type ReplyTo,
  type StartMessage,
  type TimerValue,
  type UnlockMessage,
  type WaitMessage,
} from './messages.ts'
