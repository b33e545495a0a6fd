/**
 * "Kicked while running, run again" in one place (Netherite's `BatchWorker`). Work is submitted
 * (or the worker just kicked); a cycle takes everything queued so far and processes it as one
 * batch; a kick that arrives while a cycle runs makes another cycle follow, so nothing submitted
 * is left waiting and no two cycles overlap. Synchronous work runs synchronously (no promise per
 * cycle); asynchronous work is awaited before the next cycle.
 */

/** Settings of a {@link BatchWorker}. */
export interface BatchWorkerOptions {
  /**
   * How a run starts after a kick while idle (default: at once, synchronously). E.g.
   * `queueMicrotask`, or a scheduler that runs many workers in one macrotask.
   */
  schedule?: (run: () => void) => void
  /** Called when a cycle throws (the worker then stops running until kicked again). */
  onError?: (err: unknown) => void
  /** Called each time a run ends (the worker is idle). */
  onIdle?: () => void
}

/** Processes queued work in cycles; see the module comment. */
export class BatchWorker<T = never> {
  #queue: T[] = []
  #running = false
  #again = false
  #stopped = false
  #idle: Array<() => void> = []
  readonly #run = (): void => void this.#cycles()

  constructor(
    /** Processes one batch: everything submitted since the previous cycle (empty on a bare kick). */
    readonly work: (batch: T[]) => void | Promise<void>,
    readonly options: BatchWorkerOptions = {},
  ) {}

  /** Whether a run is scheduled or under way. */
  get running(): boolean {
    return this.#running
  }

  /** Queues an item and kicks the worker. */
  submit(item: T): void {
    this.#queue.push(item)
    this.kick()
  }

  /** Makes a cycle run soon: now (or as scheduled) when idle, after the current one when running. */
  kick(): void {
    if (this.#running) {
      this.#again = true
      return
    }
    if (this.#stopped) return
    this.#running = true
    this.#again = true
    if (this.options.schedule === undefined) this.#run()
    else this.options.schedule(this.#run)
  }

  /** Runs no more cycles (one under way finishes); queued items are dropped. */
  stop(): void {
    this.#stopped = true
    this.#queue = []
  }

  /** Resolves when no run is scheduled or under way. */
  idle(): Promise<void> {
    return this.#running ? new Promise((resolve) => this.#idle.push(resolve)) : Promise.resolve()
  }

  async #cycles(): Promise<void> {
    try {
      while (this.#again && !this.#stopped) {
        this.#again = false
        const batch = this.#queue
        if (batch.length > 0) this.#queue = []
        const pending = this.work(batch)
        if (pending !== undefined) await pending
      }
    } catch (err) {
      if (this.options.onError === undefined) throw err
      this.options.onError(err)
    } finally {
      this.#running = false
      this.#again = false
      for (const resolve of this.#idle.splice(0)) resolve()
      this.options.onIdle?.()
    }
  }
}
