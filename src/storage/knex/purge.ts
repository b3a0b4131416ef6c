// Purging a room from the database (Synapse Admin API "Delete Room" with `purge: true`): every row
// that belongs to the room or to one of its events, in one transaction, children before parents
// (state_history and current_state reference events, events reference rooms). The block record
// (blocked_rooms) stays: a purged room that was blocked keeps local users out.
import type { Knex } from "knex";
import type { PurgeRepo, RoomPurge } from "../ports.js";
import { atomically, retireStreamPos, toNumberOrNull, type Engine } from "./db.js";

/** Tables keyed by one of the room's events, by the column naming it. */
const BY_EVENT_ID: ReadonlyArray<[table: string, column: string]> = [
  ["client_txns", "event_id"],
  ["federation_outbox_events", "event_id"],
  ["federation_outbox_extra_pdus", "event_id"],
  ["hub_completed_lpdus", "event_id"],
];

/**
 * Tables keyed by the room, children of `events` first, `rooms` last. Any other table with a
 * `room_id` column (one a later migration adds) is purged too, before these.
 */
const BY_ROOM_ID: readonly string[] = [
  "state_history",
  "current_state",
  "receipts",
  "account_data",
  "room_aliases",
  "forgotten_rooms",
  "replica_history",
  "hub_violations",
  "events",
  "rooms",
];

/** Kept: a blocked room stays blocked after its purge. */
const KEPT: readonly string[] = ["blocked_rooms"];

/** Stream tables among them: the highest position deleted is retired (see stream_retired). */
const STREAM_TABLES: readonly string[] = ["events", "receipts", "account_data"];

/** Every table of the schema with a `room_id` column. */
async function tablesWithRoomId(knex: Knex, engine: Engine): Promise<string[]> {
  const result: unknown =
    engine === "sqlite"
      ? await knex.raw("SELECT m.name AS name FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table' AND p.name = 'room_id'")
      : await knex.raw("SELECT table_name AS name FROM information_schema.columns WHERE column_name = 'room_id' AND table_schema = current_schema()");
  // better-sqlite3 answers the rows, pg a result holding them.
  const rows = (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as Array<{ name: string }>;
  return rows.map((row) => row.name);
}

export function createPurgeRepo(knex: Knex, engine: Engine): PurgeRepo {
  return {
    async purgeRoom(roomId) {
      const others = (await tablesWithRoomId(knex, engine)).filter((table) => !BY_ROOM_ID.includes(table) && !KEPT.includes(table)).sort();
      return atomically(knex, async (trx) => {
        const counts: Record<string, number> = {};
        let highestPos = 0;
        for (const table of STREAM_TABLES) {
          const row = (await trx(table).max({ pos: "stream_pos" }).where("room_id", roomId).first()) as { pos: unknown } | undefined;
          highestPos = Math.max(highestPos, toNumberOrNull(row?.pos) ?? 0);
        }
        const roomEvents = trx("events").select("event_id").where("room_id", roomId);
        for (const [table, column] of BY_EVENT_ID) counts[table] = await trx(table).whereIn(column, roomEvents.clone()).del();
        for (const table of [...others, ...BY_ROOM_ID]) counts[table] = await trx(table).where("room_id", roomId).del();
        // A sync token may already hold these positions: they are never handed out again.
        if (highestPos > 0) await retireStreamPos(trx, highestPos);
        const purge: RoomPurge = { roomId, events: counts.events ?? 0, rows: counts };
        return purge;
      });
    },
  };
}
