// Opens knex on SQLite (better-sqlite3) or PostgreSQL (pg) with Bobbin's connection settings.
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import knexFactory, { type Knex } from "knex";
import type pg from "pg";
import type BetterSqlite3 from "better-sqlite3";
import type { DatabaseSettings } from "../index.js";

/** PostgreSQL type OID of int8 (bigint), also the type of COUNT(*). */
const INT8_OID = 20;

/**
 * Parses int8 into a JS number on this pool's connections only (pg returns strings by default, to
 * be safe beyond 2^53). Our int8 columns are stream positions, timestamps and counts, all far
 * below 2^53. Passed per connection through pg's `types` option: the global pg.types registry,
 * which other code in the process may rely on, is left alone.
 */
const pgTypes = {
  getTypeParser(oid: number, format?: string) {
    if (oid === INT8_OID && format !== "binary") return (value: string) => Number(value);
    const { types } = loadPg();
    return format === "binary" ? types.getTypeParser(oid, "binary") : types.getTypeParser(oid, "text");
  },
};

/**
 * pg, loaded on first use: only a PostgreSQL database needs it (knex loads its own dialect the same
 * way), and a server on SQLite then does not carry its ~3 MB of heap.
 */
let pgModule: typeof pg | undefined;
const loadPg = (): typeof pg => (pgModule ??= createRequire(import.meta.url)("pg") as typeof pg);

/** Distinct SQL texts kept prepared per SQLite connection (knex varies SQL with `IN` list lengths). */
const PREPARED_STATEMENT_CACHE_SIZE = 500;

/**
 * Makes `connection.prepare(sql)` return the statement prepared earlier for the same SQL text, the
 * least recently used of at most `capacity` texts being finalised first: knex's better-sqlite3
 * dialect prepares every query it runs, and parsing SQL was a visible part of each request's cost.
 *
 * Sharing a statement is safe because of how knex uses it: `_query` calls `.all()` or `.run()`,
 * which bind, run to completion and reset the statement synchronously, so no two uses can
 * interleave on the one JS thread; knex never iterates a statement (its streams are built on
 * `_query`), and it changes a statement's mode only through the `safeIntegers` query option,
 * which Bobbin never sets. A schema change is safe too: SQLite recompiles a prepared statement
 * whose schema changed on its next run.
 */
function cachePreparedStatements(connection: BetterSqlite3.Database, capacity: number): void {
  const prepare = connection.prepare.bind(connection);
  const statements = new Map<string, BetterSqlite3.Statement>();
  connection.prepare = ((sql: string) => {
    // knex names each savepoint after its transaction (`SAVEPOINT trx42`): never seen again.
    if (/^(SAVEPOINT|RELEASE|ROLLBACK TO) /.test(sql)) return prepare(sql);
    let statement = statements.get(sql);
    if (statement !== undefined) {
      // Map keeps insertion order: re-inserting marks it most recently used.
      statements.delete(sql);
    } else {
      statement = prepare(sql);
      if (statements.size >= capacity) statements.delete(statements.keys().next().value as string);
    }
    statements.set(sql, statement);
    return statement;
  }) as BetterSqlite3.Database["prepare"];
}

export function createKnex(settings: DatabaseSettings): Knex {
  if (settings.engine === "sqlite") {
    if (settings.path !== ":memory:") mkdirSync(dirname(settings.path), { recursive: true });
    return knexFactory({
      client: "better-sqlite3",
      connection: { filename: settings.path },
      useNullAsDefault: true,
      // SQLite has one writer; one connection serialises every transaction in this process
      // instead of failing with SQLITE_BUSY. Consequence: inside storage.transaction(work),
      // `work` must use the tx it is given — a query on the pool would wait for the connection
      // the transaction holds.
      pool: {
        min: 1,
        max: 1,
        afterCreate(connection: BetterSqlite3.Database, done: (error: Error | null, connection: BetterSqlite3.Database) => void) {
          try {
            // WAL: readers never block the writer, and a commit is one sequential append.
            connection.pragma("journal_mode = WAL");
            // FULL: under WAL, every commit fsyncs the WAL, so a commit survives power loss too.
            // NORMAL would only fsync at checkpoints: commits survive a process crash but a power
            // loss may drop the last ones — and a hub that acknowledged (sent out) room_seq N and
            // then lost it would hand N to a different event, forking the room's linear log. DESIGN
            // "Nothing is acknowledged before it is durable". Measured on the 2-core dev VM, 1,000
            // single-event transactions: FULL 0.7–1.4 ms each, NORMAL 0.33–0.8 ms; batching events
            // per transaction amortises the fsync. FULL is what every write outside
            // storage.transaction gets; the group commit (group-commit.ts) runs its batches under
            // NORMAL and makes the same sync itself, off the main thread, before answering anyone.
            connection.pragma("synchronous = FULL");
            connection.pragma("foreign_keys = ON");
            // Another process (a `bobbin migrate`, a backup) holding the lock: wait, do not fail.
            connection.pragma("busy_timeout = 5000");
            cachePreparedStatements(connection, PREPARED_STATEMENT_CACHE_SIZE);
            done(null, connection);
          } catch (error) {
            done(error as Error, connection);
          }
        },
      },
    });
  }

  return knexFactory({
    client: "pg",
    connection: { connectionString: settings.url, types: pgTypes },
    ...(settings.schema ? { searchPath: [settings.schema] } : {}),
    pool: { min: 0, max: settings.poolSize ?? 10 },
  });
}
