// Group commit: storage transactions that arrive while one is running share the next database
// transaction, so that one commit — one fsync of the SQLite WAL under synchronous=FULL (see
// connection.ts) — makes a whole batch durable instead of one transaction each.
//
// Each caller's `work` still behaves as its own transaction:
// 1. it runs alone, after the works before it in the batch, in its own SAVEPOINT (a knex nested
//    transaction), so it sees what they wrote, exactly as if they had committed before it;
// 2. a `work` that fails is rolled back to its savepoint — only its own writes are undone — and
//    only its caller is rejected, at once; the batch goes on;
// 3. callers whose work succeeded are resolved only after the batch's COMMIT returned, i.e. once
//    their writes are durable (DESIGN "Nothing is acknowledged before it is durable"); if the
//    commit fails, every one of them is rejected.
// 4. works run in the order their `transaction` calls were made (a FIFO queue): the room writer
//    relies on it to queue a room's appends one after another without waiting for each commit
//    (room-writer.ts "Pipelining").
// A nested transaction refuses queries once it has settled ("Transaction query already complete"),
// so a query a `work` leaves running cannot slip into a later work's savepoint or the batch.
import type { Knex } from "knex";
import type BetterSqlite3 from "better-sqlite3";
import type { Engine } from "./db.js";

interface QueuedWork {
  work: (trx: Knex.Transaction) => Promise<unknown>;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

export type RunTransaction = <T>(work: (trx: Knex.Transaction) => Promise<T>) => Promise<T>;

/**
 * A `transaction(work)` that batches concurrent calls into one database transaction of at most
 * `maxBatch` works. While a batch runs, its callers hold the (only, on SQLite) connection, as one
 * transaction did before; `maxBatch` bounds how long queries outside transactions wait for it.
 */
export function createGroupCommit(knex: Knex, engine: Engine, options: { maxBatch: number }): RunTransaction {
  const queue: QueuedWork[] = [];
  let draining = false;

  async function drain(): Promise<void> {
    try {
      while (queue.length > 0) {
        // A batch runs on promise callbacks alone and better-sqlite3's COMMIT blocks the thread
        // through its fsync, so nothing could arrive while a batch runs: requests received
        // meanwhile wait in their sockets. Yielding once to the event loop lets them reach
        // their `transaction` call and join the next batch.
        await new Promise<void>((resolve) => setImmediate(resolve));
        await runBatch();
      }
    } finally {
      draining = false;
    }
  }

  async function runBatch(): Promise<void> {
    /** Works that ran and succeeded, with their results, awaiting the commit. */
    const succeeded: Array<{ item: QueuedWork; value: unknown }> = [];
    let began = false;
    try {
      await knex.transaction(async (outer) => {
        began = true;
        const sqlite = engine === "sqlite" ? await rawSqliteConnection(outer) : undefined;
        // Works arriving while the batch runs join it, up to maxBatch.
        while (succeeded.length < options.maxBatch && queue.length > 0) {
          const item = queue.shift()!;
          let failed = false;
          try {
            succeeded.push({ item, value: await outer.transaction((inner) => item.work(inner)) });
          } catch (error) {
            failed = true;
            item.reject(error);
          }
          // Some SQLite errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM, ...) roll back the whole
          // transaction, not just the statement; what ran before is then gone, and anything run
          // now would autocommit. Stop: the batch is rejected below.
          if (sqlite && !sqlite.inTransaction) {
            throw new Error(`group commit: the database rolled back the transaction${failed ? " after a work failed" : ""}`);
          }
        }
      });
    } catch (error) {
      for (const { item } of succeeded) item.reject(error);
      // No transaction could be begun (the pool is closed, or timed out): the works that would
      // have formed this batch fail with that error rather than be retried at once, forever.
      if (!began) for (const item of queue.splice(0, options.maxBatch)) item.reject(error);
      return;
    }
    for (const { item, value } of succeeded) item.resolve(value);
  }

  return <T>(work: (trx: Knex.Transaction) => Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
      if (!draining) {
        draining = true;
        void drain();
      }
    });
}

/**
 * The better-sqlite3 connection a knex transaction runs on: a transaction's client hands out the
 * one connection it holds. knex types `client` as `any`; only `acquireConnection` is used.
 */
async function rawSqliteConnection(trx: Knex.Transaction): Promise<BetterSqlite3.Database> {
  const client = trx.client as { acquireConnection(): Promise<BetterSqlite3.Database> };
  return client.acquireConnection();
}
