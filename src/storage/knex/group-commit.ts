// Group commit: storage transactions that arrive while one is running share the next database
// transaction, so that one commit and one sync of the SQLite WAL make a whole batch durable
// instead of one transaction each.
//
// Each caller's `work` still behaves as its own transaction:
// 1. it runs alone, after the works before it in the batch, in its own SAVEPOINT, so it sees what
//    they wrote, exactly as if they had committed before it;
// 2. a `work` that fails is rolled back to its savepoint — only its own writes are undone — and
//    only its caller is rejected, at once; the batch goes on;
// 3. callers whose work succeeded are resolved only once their writes are durable (DESIGN
//    "Nothing is acknowledged before it is durable"): after the batch's COMMIT and then a sync of
//    the WAL that began after that COMMIT (below); if either fails, every one of them is rejected;
// 4. works run in the order their `transaction` calls were made (a FIFO queue), and callers are
//    resolved in that order too: the room writer relies on it to queue a room's appends one after
//    another without waiting for each commit (room-writer.ts "Pipelining").
// Every work is given the batch's one knex transaction, and its savepoint is set and released on
// the connection directly: a knex nested transaction per work (what this did first) cost about a
// quarter of the server's CPU per message send under load (bench/client.ts: 0.84–0.95 ms per send
// before, 0.60–0.66 after), to build its transactor and run its SAVEPOINT and RELEASE through
// knex's runner. What the nested transaction gave, scopeQueries below keeps: a knex query runs
// only during the work that started it, so a query a `work` leaves running (a promise it did not
// await) is refused instead of slipping into a later work's savepoint or the batch.
//
// The WAL sync off the main thread. Under synchronous=FULL (connection.ts) SQLite's COMMIT fsyncs
// the WAL itself, and better-sqlite3 runs it on the one JS thread: ~1.25 ms of a blocked server
// per batch. A batch therefore commits under synchronous=NORMAL, with which "no sync operations
// occur during most transactions" in WAL mode (https://www.sqlite.org/pragma.html#pragma_synchronous):
// COMMIT only write()s the batch's frames to the `-wal` file, and the group commit then
// fdatasync()s that file on libuv's thread pool before resolving anyone. That is the sync FULL
// would have made — in WAL mode a commit is durable once its frames are on disk, recovery replays
// them (https://www.sqlite.org/wal.html) — minus FULL's padding to a sector boundary, which SQLite
// skips anyway on a powersafe-overwrite device (its default, SQLITE_POWERSAFE_OVERWRITE=1).
// What NORMAL still syncs itself stays on the main thread and is as safe as before: the WAL
// header when the WAL restarts after a checkpoint, and the WAL and the database around each
// checkpoint (autocheckpoint runs inside a COMMIT every ~1,000 pages of WAL: measured with
// bench/storage-append.ts, once per ~360 appended events, 4–12 ms each on the 2-core dev VM).
// Handing the fsync to the thread pool has a price when the server is idle: the round trip to a
// pool thread and back cost ~0.5 ms on that VM (fdatasync 0.4 ms on the main thread, 0.9 ms
// through the pool), so one transaction alone waits longer; under load the thread has other
// requests to serve meanwhile, which is the point.
// The WAL file keeps its inode while the database is open — SQLite deletes it only when the last
// connection closes, and restarts or truncates it in place — so one descriptor, opened once per
// connection, serves. synchronous is per connection and cannot change inside a transaction; it is
// FULL again before the connection goes back to the pool, so autocommit writes outside
// `transaction` keep their own fsync.
//
// The connection stays with the group commit until the sync is done: no query outside a batch can
// read a commit before it is durable (as under FULL, where COMMIT blocked everything), so nothing
// not durable can reach a client by another path (a /messages, an /event). Meanwhile the main
// thread is free, and when no query waits for the connection the next batch runs during the sync
// (pipelining); one later sync covers every batch committed before it began.
import { closeSync, fdatasync, openSync } from "node:fs";
import { resolve as resolvePath } from "node:path";
import { promisify } from "node:util";
import type { Knex } from "knex";
import type BetterSqlite3 from "better-sqlite3";
import type { PooledKnexClient } from "./db.js";

interface QueuedWork {
  work: (trx: Knex.Transaction) => Promise<unknown>;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** A work that ran and succeeded, with its result, awaiting durability. */
interface CommittedWork {
  item: QueuedWork;
  value: unknown;
}

export type RunTransaction = <T>(work: (trx: Knex.Transaction) => Promise<T>) => Promise<T>;

/** Makes durable what has been written to the open file `fd`. */
export type SyncFile = (fd: number) => Promise<void>;

export interface GroupCommitOptions {
  /** Most works one batch holds: bounds how long queries outside transactions wait for it. */
  maxBatch: number;
  /** The WAL sync; by default fdatasync on libuv's thread pool. Tests hold it, or fail it. */
  syncFile?: SyncFile;
}

export interface GroupCommit {
  transaction: RunTransaction;
  /** Set once a WAL sync failed: from then on every transaction is refused (see `failure` below). */
  failure(): Error | undefined;
  /** Closes the WAL file descriptor; call after the knex pool is destroyed (no batch runs then). */
  close(): void;
}

/**
 * A `transaction(work)` that batches concurrent calls into one database transaction of at most
 * `maxBatch` works. While a batch runs and its WAL sync is in flight, the group commit holds the
 * (only, on SQLite) connection, as one transaction did before.
 */
export function createGroupCommit(knex: Knex, options: GroupCommitOptions): GroupCommit {
  const client = knex.client as PooledKnexClient<BetterSqlite3.Database>;
  const syncFile = options.syncFile ?? promisify(fdatasync);
  const queue: QueuedWork[] = [];
  let draining = false;
  /** Wakes a connection held for a WAL sync when a work arrives (pipelining, in commitOn). */
  let onArrival: (() => void) | undefined;
  /**
   * Set once a WAL sync failed; from then on every transaction is refused. After a failed fsync
   * the kernel may have dropped the unwritten pages and marked them clean, so a later fsync can
   * succeed without them ("fsyncgate"): nothing written after the failure can be promised
   * durable, and a commit made on top of lost frames would be cut off with them at recovery, as
   * the WAL's checksums chain each frame to those before it. PostgreSQL PANICs in this case; we
   * fail as loudly without owning the process: the batches awaiting the sync and all later ones
   * are rejected, and the connection is made query_only, so that autocommit writes fail too.
   * Reads still work and may show the rejected commits; restarting recovers from what is on
   * disk.
   */
  let failure: Error | undefined;
  /** The WAL descriptor of the pool's connection (`fd` undefined: it has no WAL file to sync). */
  let walFile: { connection: BetterSqlite3.Database; fd: number | undefined } | undefined;

  function fail(error: unknown): Error {
    failure ??= new Error("storage refuses writes: syncing the SQLite WAL failed, so what was committed may not be durable; restart to recover", { cause: error });
    return failure;
  }

  async function drain(): Promise<void> {
    try {
      while (queue.length > 0) {
        // Yielding once to the event loop lets requests received meanwhile (while a batch ran on
        // promise callbacks alone, or COMMIT blocked the thread) reach their `transaction` call
        // and join the next batch.
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (failure) {
          for (const item of queue.splice(0)) item.reject(failure);
          return;
        }
        let connection: BetterSqlite3.Database;
        try {
          connection = await client.acquireConnection();
        } catch (error) {
          // The pool is closed, or timed out: the works that would have formed this batch fail
          // with that error rather than be retried at once, forever.
          for (const item of queue.splice(0, options.maxBatch)) item.reject(error);
          continue;
        }
        try {
          await commitOn(connection);
        } catch (error) {
          // Only PRAGMAs can throw here (runBatch rejects its own works), on a broken connection:
          // a batch may have committed under NORMAL, so nothing can be promised any more.
          fail(error);
        } finally {
          void client.releaseConnection(connection);
        }
      }
    } finally {
      draining = false;
    }
  }

  /** Runs batches on `connection`, which the caller holds, until each is durable. */
  async function commitOn(sqlite: BetterSqlite3.Database): Promise<void> {
    const walFd = walFdOf(sqlite);
    if (walFd === undefined) {
      // Nothing to sync apart (`:memory:`, or no WAL file yet): COMMIT syncs under the
      // connection's own synchronous=FULL, as it did before.
      for (const { item, value } of await runBatch(sqlite)) item.resolve(value);
      return;
    }
    const walSync = createWalSync(() => syncFile(walFd));
    // pragma() compiles the statement each time: SQLite applies these PRAGMAs when it compiles
    // them, so a statement handed out again by the prepared-statement cache (connection.ts) would
    // not be a reliable way to switch.
    sqlite.pragma("synchronous = NORMAL");
    try {
      for (;;) {
        walSync.cover(await runBatch(sqlite));
        if (!walSync.running) break;
        // Pipelining: works that arrive while the WAL syncs form the next batch at once, unless
        // a query outside batches waits for the connection — then it gets it once the sync is
        // done, as it would have got it after the batch's COMMIT under FULL.
        if (queue.length === 0) await Promise.race([walSync.settled(), new Promise<void>((resolve) => (onArrival = resolve))]);
        onArrival = undefined;
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (failure || !walSync.running || queue.length === 0 || (client.pool?.numPendingAcquires() ?? 0) > 0) break;
      }
      await walSync.settled();
    } finally {
      sqlite.pragma("synchronous = FULL");
    }
    if (failure) sqlite.pragma("query_only = ON");
  }

  /**
   * Resolves committed works once a sync that began after their COMMIT succeeded, strictly in
   * order: each sync covers every batch committed before it began, and syncs run one at a time.
   */
  function createWalSync(sync: () => Promise<void>): { cover(committed: CommittedWork[]): void; readonly running: boolean; settled(): Promise<void> } {
    let waiting: CommittedWork[] = [];
    let running: Promise<void> | undefined;

    async function run(): Promise<void> {
      while (waiting.length > 0 && !failure) {
        const covered = waiting;
        waiting = [];
        try {
          // Through a promise, so that a sync throwing at once still leaves this loop async.
          await Promise.resolve().then(sync);
        } catch (error) {
          for (const { item } of covered) item.reject(fail(error));
          break;
        }
        for (const { item, value } of covered) item.resolve(value);
      }
      // After a failure, batches committed since are not durable either (see `failure`).
      for (const { item } of waiting.splice(0)) item.reject(failure);
      running = undefined;
    }

    return {
      cover(committed) {
        if (committed.length === 0) return;
        if (failure) {
          for (const { item } of committed) item.reject(failure);
          return;
        }
        waiting.push(...committed);
        running ??= run();
      },
      get running() {
        return running !== undefined;
      },
      settled: () => running ?? Promise.resolve(),
    };
  }

  /** Runs one batch; returns the works that succeeded and were committed (not yet synced). */
  async function runBatch(sqlite: BetterSqlite3.Database): Promise<CommittedWork[]> {
    const succeeded: CommittedWork[] = [];
    let began = false;
    try {
      await knex.transaction(
        async (outer) => {
          began = true;
          const scope = scopeQueries(outer);
          // Works arriving while the batch runs join it, up to maxBatch.
          while (succeeded.length < options.maxBatch && queue.length > 0) {
            // A sync of an earlier batch failed while this one ran: roll it back.
            if (failure) throw failure;
            const item = queue.shift()!;
            let failed = false;
            try {
              succeeded.push({ item, value: await inSavepoint(sqlite, () => scope.run(item.work)) });
            } catch (error) {
              failed = true;
              item.reject(error);
            }
            // Some SQLite errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM, ...) roll back the whole
            // transaction, not just the statement; what ran before is then gone, and anything run
            // now would autocommit. Stop: the batch is rejected below.
            if (!sqlite.inTransaction) {
              throw new Error(`group commit: the database rolled back the transaction${failed ? " after a work failed" : ""}`);
            }
          }
        },
        { connection: sqlite },
      );
    } catch (error) {
      for (const { item } of succeeded) item.reject(error);
      // No transaction could be begun: the works that would have formed this batch fail with
      // that error rather than be retried at once, forever.
      if (!began) for (const item of queue.splice(0, options.maxBatch)) item.reject(error);
      return [];
    }
    return succeeded;
  }

  /**
   * The descriptor of `connection`'s WAL file, opened once per connection; undefined when there
   * is none to sync: an in-memory database, one not in WAL mode, or a WAL file not created yet
   * (SQLite creates it on the first read; then this is asked again next time).
   */
  function walFdOf(connection: BetterSqlite3.Database): number | undefined {
    if (walFile?.connection === connection) return walFile.fd;
    closeWalFile();
    if (connection.memory || connection.pragma("journal_mode", { simple: true }) !== "wal") {
      walFile = { connection, fd: undefined };
      return undefined;
    }
    try {
      // "r+": fsync needs a writable descriptor on some systems (FlushFileBuffers on Windows);
      // it never creates the file.
      walFile = { connection, fd: openSync(`${resolvePath(connection.name)}-wal`, "r+") };
      return walFile.fd;
    } catch {
      // Not there yet (ENOENT), or out of descriptors: this batch commits under FULL.
      return undefined;
    }
  }

  function closeWalFile(): void {
    if (walFile?.fd !== undefined) closeSync(walFile.fd);
    walFile = undefined;
  }

  return {
    failure: () => failure,
    transaction: <T>(work: (trx: Knex.Transaction) => Promise<T>): Promise<T> => {
      if (failure) return Promise.reject(failure);
      return new Promise<T>((resolve, reject) => {
        queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
        onArrival?.();
        if (!draining) {
          draining = true;
          void drain();
        }
      });
    },
    close: closeWalFile,
  };
}

/**
 * Runs `work` in a savepoint of the open transaction: released when it succeeds, rolled back to
 * (its writes undone, the transaction kept) when it fails. No savepoint is left behind either way,
 * so every work's savepoint can have the same name.
 */
async function inSavepoint<T>(sqlite: BetterSqlite3.Database, work: () => Promise<T>): Promise<T> {
  sqlite.exec("SAVEPOINT group_commit_work");
  let value: T;
  try {
    value = await work();
  } catch (error) {
    // Unless SQLite rolled back the whole transaction already (runBatch stops the batch then).
    if (sqlite.inTransaction) sqlite.exec("ROLLBACK TO group_commit_work; RELEASE group_commit_work");
    throw error;
  }
  sqlite.exec("RELEASE group_commit_work");
  return value;
}

/** knex's query runner, as far as scopeQueries replaces it; knex types its client as `any`. */
interface RunnerClient {
  runner(builder: unknown): { query(query: unknown): Promise<unknown> };
}

/** The error of a query that a work started and left running, or started after it settled. */
const outOfScope = (): Error => new Error("group commit: a query ran after the transaction work that started it had settled (a promise the work did not await?)");

/**
 * Gives each work the batch's transaction `trx` through a handle of its own, and lets its queries
 * reach the database only while that work runs, which is what a knex nested transaction per work
 * guaranteed ("Transaction query already complete"):
 * - the handle refuses to build a query once its work has settled;
 * - a query the work started but left running is rejected when it would reach the database,
 *   instead of running in a later work's savepoint, or in the batch outside any. knex builds a
 *   runner when a query starts (`then`), and the runner executes its statements: each statement
 *   checks that the work that started the query is still the one running.
 */
function scopeQueries(trx: Knex.Transaction): { run<T>(work: (trx: Knex.Transaction) => Promise<T>): Promise<T> } {
  // The transaction's own client object (knex makes one per transaction): this ends with it.
  const client = trx.client as RunnerClient;
  const makeRunner = client.runner;
  let current: object | undefined;
  client.runner = function (this: RunnerClient, builder: unknown) {
    const runner = makeRunner.call(this, builder);
    const owner = current;
    const query = runner.query;
    runner.query = function (this: unknown, statement: unknown) {
      if (owner === undefined || owner !== current) return Promise.reject(outOfScope());
      return query.call(this, statement);
    };
    return runner;
  };
  return {
    async run(work) {
      const token = {};
      const inScope = (): void => {
        if (current !== token) throw outOfScope();
      };
      // `trx("table")`, `trx.raw(...)`, `trx.select(...)`: every query starts from the handle.
      const handle = new Proxy(trx, {
        apply(target, thisArg, args) {
          inScope();
          return Reflect.apply(target, thisArg, args);
        },
        get(target, property) {
          inScope();
          return Reflect.get(target, property);
        },
      });
      current = token;
      try {
        return await work(handle);
      } finally {
        current = undefined;
      }
    },
  };
}
