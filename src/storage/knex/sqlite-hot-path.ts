// The statements of a message send on SQLite, run synchronously on the one connection instead of
// through knex. Measured on the 2-core dev VM (2026-11-29): knex costs 15–25 µs of CPU per
// statement inside a transaction (query building, its runner) and 50–100 µs outside one (the pool's
// acquire and release on top), against ~5 µs for the prepared statement itself; a send ran four
// of them, the largest storage cost after the commit. Only these statements take this path; the
// rest of Bobbin's SQL stays on knex, written once for both engines.
//
// Running a statement beside knex is safe because SQLite has one connection (connection.ts) and
// better-sqlite3 runs each statement to completion on the JS thread:
// - inside `storage.transaction`, the work holds that connection in its transaction (and
//   savepoint), so a statement run now is part of it, exactly like the knex query it replaces;
// - outside one, a read runs only when no transaction is open on the connection (an autocommit
//   read, as knex's would be); while a group-commit batch is open, it would see the batch's
//   uncommitted writes, so the caller falls back to knex, whose pool waits for the batch.
import type BetterSqlite3 from "better-sqlite3";

/** One row of `events` (see 0001-initial-schema.ts), booleans as SQLite stores them. */
export interface EventRow {
  event_id: string;
  room_id: string;
  room_seq: number;
  stream_pos: number;
  type: string;
  state_key: string | null;
  membership: string | null;
  sender: string;
  origin_server_ts: number;
  json: string;
  soft_failed: boolean;
}

export class SqliteHotPath {
  constructor(private readonly db: BetterSqlite3.Database) {}

  /** Whether a statement may run now: the connection is open and `inTransaction` matches its state. */
  usable(inTransaction: boolean): boolean {
    return this.db.open && this.db.inTransaction === inTransaction;
  }

  clientTxnEventId(userId: string, deviceId: string, txnId: string): string | undefined {
    const row = this.db.prepare("SELECT event_id FROM client_txns WHERE user_id = ? AND device_id = ? AND txn_id = ?").get(userId, deviceId, txnId) as
      | { event_id: string }
      | undefined;
    return row?.event_id;
  }

  /** The first recorded event wins: a racing retry must not overwrite it. */
  putClientTxn(userId: string, deviceId: string, txnId: string, eventId: string, ts: number): void {
    this.db.prepare("INSERT INTO client_txns (user_id, device_id, txn_id, event_id, ts) VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, device_id, txn_id) DO NOTHING").run(userId, deviceId, txnId, eventId, ts);
  }

  /** The room's highest room_seq, or undefined for a room without events. */
  lastRoomSeq(roomId: string): number | undefined {
    const row = this.db.prepare("SELECT MAX(room_seq) AS seq FROM events WHERE room_id = ?").get(roomId) as { seq: number | null } | undefined;
    return row?.seq ?? undefined;
  }

  insertEvent(row: EventRow): void {
    this.db
      .prepare(
        "INSERT INTO events (event_id, room_id, room_seq, stream_pos, type, state_key, membership, sender, origin_server_ts, json, redacted_by, soft_failed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
      )
      .run(row.event_id, row.room_id, row.room_seq, row.stream_pos, row.type, row.state_key, row.membership, row.sender, row.origin_server_ts, row.json, row.soft_failed ? 1 : 0);
  }
}

/**
 * The connection knex's SQLite pool holds (one, kept for the process's life: connection.ts), taken
 * once at start-up for SqliteHotPath.
 */
export async function sqliteConnectionOf(knex: { client: unknown }): Promise<BetterSqlite3.Database> {
  // knex types `client` as `any`; these two methods are its pool's.
  const client = knex.client as { acquireConnection(): Promise<BetterSqlite3.Database>; releaseConnection(connection: BetterSqlite3.Database): Promise<void> };
  const connection = await client.acquireConnection();
  await client.releaseConnection(connection);
  return connection;
}
