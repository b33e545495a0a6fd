/**
 * Typed entity handles of the client: `client.entity(Counter, 'c1').signal.add(5)` and
 * `.call.get()` are proxies that turn a property access into an entity operation message.
 */
import type { EntityOp } from '../actors/messages.ts'
import { signalProxy, toTime, type CallProxy, type SignalProxy } from '../entities/index.ts'

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
  constructor(
    readonly client: HandleSender,
    readonly t: string,
    readonly key: string,
  ) {}
  get signal(): SignalProxy<E> {
    return new Proxy(this, signalHandler) as unknown as SignalProxy<E>
  }
  get call(): CallProxy<E> {
    return new Proxy(this, callHandler) as unknown as CallProxy<E>
  }
  signalAt(when: Date | number): SignalProxy<E> {
    const at = toTime(when)
    return signalProxy<SignalProxy<E>>((op, a) =>
      this.client.signalOp({ k: 'op', t: this.t, key: this.key, op, a, at }),
    )
  }
}

const signalHandler: ProxyHandler<Handle<unknown>> = {
  get: (h, op) =>
    typeof op !== 'string' || op === 'then'
      ? undefined
      : (...a: unknown[]) => h.client.signalOp({ k: 'op', t: h.t, key: h.key, op, a }),
}
const callHandler: ProxyHandler<Handle<unknown>> = {
  get: (h, op) =>
    typeof op !== 'string' || op === 'then'
      ? undefined
      : (...a: unknown[]) => h.client.callOp({ k: 'op', t: h.t, key: h.key, op, a }),
}
