/**
 * The bank example: accounts as durable entities, money moved between them by signals that
 * entities send to each other. Each transfer withdraws in one operation and deposits in another
 * (possibly on another partition), so money is "in flight" for a moment; exactly-once delivery
 * means the total across accounts is conserved once the flight has landed. Run it through
 * `npm run demo`.
 */
import { Entity, RemoteError, type Client, type EntityClass } from '../../runtime/index.ts'

/** The state of an {@link Account}. */
export interface AccountState {
  /** Money on the account. */
  balance: number
  /** Transfers this account made (the money left it). */
  sent: number
  /** Transfers this account refused for lack of funds. */
  refused: number
}

/** A bank account. Operations that throw leave its state untouched. */
export class Account extends Entity<AccountState> {
  /** A new account is empty. */
  initialState(): AccountState {
    return { balance: 0, sent: 0, refused: 0 }
  }

  /** (Re)opens the account with `initial` money, forgetting its history. */
  open(initial: number): void {
    this.state = { balance: checkAmount(initial, true), sent: 0, refused: 0 }
  }

  /** Adds money. */
  deposit(amount: number): number {
    this.state.balance += checkAmount(amount)
    return this.state.balance
  }

  /** Takes money out; throws on overdraft, and the account stays as it was. */
  withdraw(amount: number): number {
    checkAmount(amount)
    if (amount > this.state.balance) {
      throw new Error(`insufficient funds on '${this.key}': balance ${this.state.balance}, asked ${amount}`)
    }
    this.state.balance -= amount
    return this.state.balance
  }

  /** The money on the account. */
  balance(): number {
    return this.state.balance
  }

  /** Balance and transfer counters. */
  statement(): AccountState {
    return this.state
  }

  /**
   * Moves `amount` to account `target`: withdraws here and signals a deposit there, atomically
   * with this operation's commit. Returns false (and sends nothing) when the balance is too low
   * or the target is this account.
   */
  transferTo(target: string, amount: number): boolean {
    checkAmount(amount)
    if (target === this.key || amount > this.state.balance) {
      this.state.refused++
      return false
    }
    this.state.balance -= amount
    this.state.sent++
    this.entity(Account, target).signal.deposit(amount)
    return true
  }
}

/** Entity types of the bank example, for a node's `registry`. */
export const bankRegistry: Array<EntityClass<any>> = [Account]

/** Options of {@link runBankExample}. */
export interface BankExampleOptions {
  /** Account keys (default alice, bob, carol, dave, erin). */
  accounts?: string[]
  /** Money each account opens with (default 1000). */
  initial?: number
  /** Number of random transfers (default 200). */
  transfers?: number
  /** Seed of the random transfers (default 42). */
  seed?: number
  /** How long to wait for the transfers to land, in ms (default 15,000). */
  settleTimeoutMs?: number
}

/** What {@link runBankExample} observed, for tests and summaries. */
export interface BankExampleResult {
  /** Final balance per account. */
  balances: Record<string, number>
  /** Sum of the final balances. */
  total: number
  /** Sum of the opening balances. */
  expectedTotal: number
  /** Transfers sent as signals. */
  transfers: number
  /** Transfers that moved money. */
  applied: number
  /** Transfers refused for lack of funds. */
  refused: number
  /** How long the transfers took to land, in ms. */
  settleMs: number
  /** Error message of the refused overdraft call. */
  overdraftError: string
  /** Whether the refused overdraft left the balance as it was. */
  overdraftLeftBalance: boolean
}

/**
 * Runs the bank example against a hub whose node registers {@link Account}: opens accounts, sends
 * random transfers as signals, waits (polling, with a deadline) until every transfer was processed
 * and the money in flight has landed, shows an overdraft being refused, and checks that the total
 * is conserved. Throws when the transfers do not settle in time or the invariant does not hold.
 *
 * @example
 * const result = await runBankExample(client, console.log)
 */
export async function runBankExample(
  client: Client,
  log: (line: string) => void,
  options: BankExampleOptions = {},
): Promise<BankExampleResult> {
  const keys = options.accounts ?? ['alice', 'bob', 'carol', 'dave', 'erin']
  const initial = options.initial ?? 1000
  const count = options.transfers ?? 200
  const random = mulberry32(options.seed ?? 42)
  const account = (key: string) => client.entity(Account, key)
  const expectedTotal = keys.length * initial

  await Promise.all(keys.map((key) => account(key).call.open(initial)))
  log(`opened ${keys.length} accounts (${keys.join(', ')}) with ${initial} each: total ${expectedTotal}`)

  const after = await account(keys[0]!).call.deposit(50)
  const back = await account(keys[0]!).call.withdraw(50)
  log(`${keys[0]}: deposit(50) -> balance ${after}, withdraw(50) -> balance ${back}`)

  const started = Date.now()
  const plan = Array.from({ length: count }, () => {
    const from = keys[Math.floor(random() * keys.length)]!
    const others = keys.filter((k) => k !== from)
    const to = others[Math.floor(random() * others.length)]!
    return { from, to, amount: 1 + Math.floor(random() * 100) }
  })
  await Promise.all(plan.map((t) => account(t.from).signal.transferTo(t.to, t.amount)))
  log(`sent ${count} random transfers (1..100 each) as signals; accounts refuse those they cannot cover`)

  // Settled when every transferTo ran (sent + refused = count) and every deposit it signalled
  // landed (a deposit in flight makes the total fall short: amounts are positive).
  const deadline = Date.now() + (options.settleTimeoutMs ?? 15_000)
  let statements: AccountState[]
  let polls = 0
  for (;;) {
    polls++
    statements = await Promise.all(keys.map((key) => account(key).call.statement()))
    const processed = sum(statements.map((s) => s.sent + s.refused))
    const total = sum(statements.map((s) => s.balance))
    if (processed === count && total === expectedTotal) break
    if (Date.now() > deadline) {
      throw new Error(
        `transfers did not settle in time: ${processed}/${count} processed, total ${total} (expected ${expectedTotal})`,
      )
    }
    await sleep(50)
  }
  const settleMs = Date.now() - started
  const applied = sum(statements.map((s) => s.sent))
  const refused = sum(statements.map((s) => s.refused))
  log(`all transfers landed after ${settleMs} ms (${polls} polls): ${applied} applied, ${refused} refused`)

  const victim = keys[keys.length - 1]!
  const before = await account(victim).call.balance()
  let overdraftError = ''
  try {
    await account(victim).call.withdraw(before + 1)
  } catch (err) {
    overdraftError = err instanceof RemoteError ? err.message : String(err)
  }
  if (overdraftError === '') throw new Error(`withdraw(${before + 1}) from '${victim}' was not refused`)
  const afterRefusal = await account(victim).call.balance()
  log(`withdraw(${before + 1}) from ${victim} refused: "${overdraftError}"; balance still ${afterRefusal}`)

  const balances: Record<string, number> = {}
  for (const key of keys) balances[key] = await account(key).call.balance()
  const total = sum(Object.values(balances))
  log(`balances: ${keys.map((key) => `${key} ${balances[key]}`).join(', ')}`)
  log(`invariant: total ${total} ${total === expectedTotal ? '==' : '!='} opening total ${expectedTotal}`)
  if (total !== expectedTotal)
    throw new Error(`money was created or lost: total ${total}, expected ${expectedTotal}`)

  return {
    balances,
    total,
    expectedTotal,
    transfers: count,
    applied,
    refused,
    settleMs,
    overdraftError,
    overdraftLeftBalance: afterRefusal === before,
  }
}

/** Validates an amount of money. */
function checkAmount(amount: number, zeroAllowed = false): number {
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount < (zeroAllowed ? 0 : 1)) {
    throw new Error(
      `amount must be a ${zeroAllowed ? 'non-negative' : 'positive'} integer (got ${String(amount)})`,
    )
  }
  return amount
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0)
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** A small seeded PRNG (mulberry32), so that every run sends the same transfers. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
