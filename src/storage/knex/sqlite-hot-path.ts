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
// - outside one, a read runs only while the connection sits idle in knex's pool, i.e. exactly
//   when knex would run the same autocommit read at once. While anything holds it — a
//   group-commit batch, whose writes are uncommitted, or the group commit waiting for the WAL
//   sync that makes a commit durable (group-commit.ts) — the caller falls back to knex, whose
//   pool waits for it.
import type BetterSqlite3 from "better-sqlite3";
import type { PooledKnexClient } from "./db.js";

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
  /** `connectionIdle`: whether nothing holds the connection (knex's pool has it free). */
  constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly connectionIdle: () => boolean,
  ) {}

  /**
   * Whether a statement may run now: inside a transaction (the caller's, which holds the
   * connection), or outside any while the connection is idle.
   */
  usable(inTransaction: boolean): boolean {
    if (!this.db.open) return false;
    return inTransaction ? this.db.inTransaction : !this.db.inTransaction && this.connectionIdle();
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
 * The hot path on the connection knex's SQLite pool holds (one, kept for the process's life:
 * connection.ts), taken once at start-up.
 */
export async function createSqliteHotPath(knex: { client: unknown }): Promise<SqliteHotPath> {
  const client = knex.client as PooledKnexClient<BetterSqlite3.Database>;
  const connection = await client.acquireConnection();
  await client.releaseConnection(connection);
  return new SqliteHotPath(connection, () => client.pool?.numUsed() === 0);
}
