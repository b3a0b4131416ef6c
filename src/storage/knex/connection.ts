// Opens knex on SQLite (better-sqlite3) or PostgreSQL (pg) with Bobbin's connection settings.
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import knexFactory, { type Knex } from "knex";
import pg from "pg";
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
    return format === "binary" ? pg.types.getTypeParser(oid, "binary") : pg.types.getTypeParser(oid, "text");
  },
};

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
            // per transaction amortises the fsync.
            connection.pragma("synchronous = FULL");
            connection.pragma("foreign_keys = ON");
            // Another process (a `bobbin migrate`, a backup) holding the lock: wait, do not fail.
            connection.pragma("busy_timeout = 5000");
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
