/** Entity classes used by the benchmarks (`bench/run.ts`). */
import { Entity } from '../runtime/index.ts'

/** A counter: `add(n)` is sent as a signal, `get()` as a call. */
export class Counter extends Entity<number> {
  initialState() {
    return 0
  }
  add(n: number) {
    this.state += n
  }
  get() {
    return this.state
  }
}
