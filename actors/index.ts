/**
 * actors/ — actor identity, the wire model (messages, commit records, queries) and the error
 * taxonomy. Imports nothing from the rest of Basalt and nothing of NATS.
 */
export {
  AuthorizationError,
  BadInputError,
  BasaltError,
  CodecError,
  ConnectionError,
  ErrorCode,
  FencedError,
  HubNotFoundError,
  IllegalStateError,
  PartitionUnavailableError,
  PayloadTooLargeError,
  RemoteError,
  TimeoutError,
  UnknownEntityError,
  UnknownOperationError,
  fromErrorInfo,
  toErrorInfo,
  type ErrorInfo,
} from './errors.ts'
export {
  MAX_KEY_BYTES,
  checkKey,
  checkTypeName,
  decodeToken,
  encodeToken,
  entityId,
  fnv1a,
  partitionOf,
  type EntityId,
  type PartitionId,
} from './ids.ts'
export {
  WIRE_VERSION,
  checkEnvelope,
  checkMessage,
  type ActorMessage,
  type ClientEnvelope,
  type CommitRecord,
  type EntityOp,
  type MailboxEnvelope,
  type MailboxPosition,
  type PartitionEnvelope,
  type Query,
  type QueryAnswer,
  type Reply,
  type ReplyEnvelope,
  type ReplyTo,
  type TimerValue,
} from './wire/index.ts'
export { isThenable } from './thenable.ts'
