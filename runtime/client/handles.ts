/**
 * Typed entity handles of the client: `client.entity(Counter, 'c1').signal.add(5)` and
 * `.call.get()` are proxies that turn a property access into an entity operation message. The
 * class is known here, so an operation it does not have is refused at once
 * (`UnknownOperationError`), and arguments go through the class's schemas, if any, before they
 * are sent (`BadInputError`); the node checks them again.
 */
import type { EntityOp } from '../../actors/wire/index.ts'
import {
  checkOperation,
  signalProxy,
  toTime,
  type CallProxy,
  type OperationTable,
  type SignalProxy,
} from '../../entities/index.ts'

/** What a handle sends its operations through (the client). */
export interface HandleSender {
  signalOp(msg: EntityOp): Promise<void>
  callOp(msg: EntityOp): Promise<unknown>
}

/** Typed access to one entity. */
export interface EntityHandle<E> {
  /** One-way operations; each promise resolves once the signal is durably queued. */
  signal: SignalProxy<E>
  /** Two-way operations; each promise resolves to the operation's result. */
  call: CallProxy<E>
  /** Signals delivered at `when` (Date or ms since the epoch), never earlier. */
  signalAt(when: Date | number): SignalProxy<E>
}

/** A typed entity handle; its proxies are made on first use and share one handler. */
export class Handle<E> implements EntityHandle<E> {
  readonly t: string
  constructor(
    readonly client: HandleSender,
    readonly ops: OperationTable,
    readonly key: string,
  ) {
    this.t = ops.type
  }
  get signal(): SignalProxy<E> {
    return new Proxy(this, signalHandler) as unknown as SignalProxy<E>
  }
  get call(): CallProxy<E> {
    return new Proxy(this, callHandler) as unknown as CallProxy<E>
  }
  signalAt(when: Date | number): SignalProxy<E> {
    const at = toTime(when, 'signalAt')
    return signalProxy<SignalProxy<E>>((op, a) => this.send({ k: 'op', t: this.t, key: this.key, op, a, at }))
  }

  /** Checks an operation, then sends it: a signal, or a call when `call` is set. */
  send(msg: EntityOp, call = false): Promise<unknown> {
    try {
      checkOperation(this.ops, this.key, msg.op, msg.a)
    } catch (err) {
      return Promise.reject(err as Error)
    }
    return call ? this.client.callOp(msg) : this.client.signalOp(msg)
  }
}

const signalHandler: ProxyHandler<Handle<unknown>> = {
  get: (h, op) =>
    typeof op !== 'string' || op === 'then'
      ? undefined
      : (...a: unknown[]) => h.send({ k: 'op', t: h.t, key: h.key, op, a }),
}
const callHandler: ProxyHandler<Handle<unknown>> = {
  get: (h, op) =>
    typeof op !== 'string' || op === 'then'
      ? undefined
      : (...a: unknown[]) => h.send({ k: 'op', t: h.t, key: h.key, op, a }, true),
}
