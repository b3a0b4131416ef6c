// Rooms, the linear event log, and the state index over it (DESIGN.md "Storage").
import type { Knex } from "knex";
import type { Pdu } from "../../core/events.js";
import type { JsonObject } from "../../core/json.js";
import type { EventsRepo, RoomRow, StoredEvent } from "../ports.js";
import { atomically, chunk, toBool, toNumber } from "./db.js";
import type { SqliteHotPath } from "./sqlite-hot-path.js";

interface RoomRecord {
  room_id: string;
  room_version: string;
  creator: string;
  hub_server: string;
  is_public: unknown;
  created_ts: unknown;
}

export interface EventRecord {
  event_id: string;
  room_id: string;
  room_seq: unknown;
  stream_pos: unknown;
  json: string;
  redacted_by: string | null;
  soft_failed: unknown;
}

/** The columns a StoredEvent is built from, qualified for joins. */
const eventColumns = ["e.event_id", "e.room_id", "e.room_seq", "e.stream_pos", "e.json", "e.redacted_by", "e.soft_failed"];

function toRoomRow(r: RoomRecord): RoomRow {
  return {
    roomId: r.room_id,
    roomVersion: r.room_version,
    creator: r.creator,
    hubServer: r.hub_server,
    isPublic: toBool(r.is_public),
    createdTs: toNumber(r.created_ts),
  };
}

export function toStoredEvent(r: EventRecord): StoredEvent {
  return {
    eventId: r.event_id,
    roomId: r.room_id,
    roomSeq: toNumber(r.room_seq),
    streamPos: toNumber(r.stream_pos),
    pdu: JSON.parse(r.json) as Pdu,
    redactedBy: r.redacted_by,
    softFailed: toBool(r.soft_failed),
  };
}

function toNumberOrUndefined(value: unknown): number | undefined {
  return value === null || value === undefined ? undefined : toNumber(value);
}

/** content.membership of a member state event, else null. */
function membershipOf(pdu: Pdu): string | null {
  if (pdu.type !== "m.room.member" || typeof pdu.state_key !== "string") return null;
  const membership = pdu.content.membership;
  return typeof membership === "string" ? membership : null;
}

export function createEventsRepo(knex: Knex, hotPath?: SqliteHotPath): EventsRepo {
  return {
    async createRoom(room) {
      await knex("rooms").insert({
        room_id: room.roomId,
        room_version: room.roomVersion,
        creator: room.creator,
        hub_server: room.hubServer,
        is_public: room.isPublic,
        created_ts: room.createdTs,
      });
    },

    async getRoom(roomId) {
      const row = (await knex("rooms").where("room_id", roomId).first()) as RoomRecord | undefined;
      return row && toRoomRow(row);
    },

    async setRoomPublic(roomId, isPublic) {
      await knex("rooms").where("room_id", roomId).update({ is_public: isPublic });
    },

    async listPublicRooms({ limit, since }) {
      const query = knex("rooms").where("is_public", true).orderBy("room_id").limit(limit);
      if (since !== undefined) query.where("room_id", ">", since);
      return ((await query) as RoomRecord[]).map(toRoomRow);
    },

    async appendEvent({ eventId, pdu, roomSeq, streamPos, softFailed = false }) {
      const roomId = pdu.room_id;
      await atomically(knex, async (trx) => {
        // The room writer is the single writer of a room and places each event right after its
        // head; a wrong seq means two writers or a lost update, never something to paper over.
        // The unique (room_id, room_seq) index refuses duplicates on every engine; this read also
        // refuses gaps, and states the expected seq in the error.
        const last = (await trx("events").where("room_id", roomId).max({ seq: "room_seq" }).first()) as { seq: unknown } | undefined;
        const expected = last?.seq === null || last?.seq === undefined ? 0 : toNumber(last.seq) + 1;
        if (roomSeq !== expected) throw new Error(`appendEvent ${eventId}: room ${roomId} expects room_seq ${expected}, got ${roomSeq}`);
        const stateKey = typeof pdu.state_key === "string" ? pdu.state_key : null;
        const membership = membershipOf(pdu);
        await trx("events").insert({
          event_id: eventId,
          room_id: roomId,
          room_seq: roomSeq,
          stream_pos: streamPos,
          type: pdu.type,
          state_key: stateKey,
          membership,
          sender: pdu.sender,
          origin_server_ts: pdu.origin_server_ts,
          json: JSON.stringify(pdu),
          redacted_by: null,
          soft_failed: softFailed,
        });
        if (stateKey === null || softFailed) return;
        // Coming back into a room undoes having forgotten it.
        if (membership === "join" || membership === "invite" || membership === "knock") {
          await trx("forgotten_rooms").where({ user_id: stateKey, room_id: roomId }).delete();
        }
        await trx("state_history").insert({ room_id: roomId, type: pdu.type, state_key: stateKey, room_seq: roomSeq, event_id: eventId });
        await trx("current_state")
          .insert({ room_id: roomId, type: pdu.type, state_key: stateKey, event_id: eventId, membership })
          .onConflict(["room_id", "type", "state_key"])
          .merge(["event_id", "membership"]);
      });
    },

    async appendEvents(events) {
      const first = events[0];
      if (first === undefined) return;
      const roomId = first.pdu.room_id;
      await atomically(knex, async (trx) => {
        // A message's send appends here inside its transaction (sqlite-hot-path.ts).
        const hot = hotPath?.usable(true) ? hotPath : undefined;
        const last = hot ? hot.lastRoomSeq(roomId) : toNumberOrUndefined(((await trx("events").where("room_id", roomId).max({ seq: "room_seq" }).first()) as { seq: unknown } | undefined)?.seq);
        let expected = last === undefined ? 0 : last + 1;
        for (const { eventId, pdu, roomSeq } of events) {
          if (pdu.room_id !== roomId) throw new Error(`appendEvents ${eventId}: not in room ${roomId}`);
          if (roomSeq !== expected) throw new Error(`appendEvents ${eventId}: room ${roomId} expects room_seq ${expected}, got ${roomSeq}`);
          expected++;
        }
        const rows = events.map(({ eventId, pdu, roomSeq, streamPos, softFailed = false }) => ({
          event_id: eventId,
          room_id: roomId,
          room_seq: roomSeq,
          stream_pos: streamPos,
          type: pdu.type,
          state_key: typeof pdu.state_key === "string" ? pdu.state_key : null,
          membership: membershipOf(pdu),
          sender: pdu.sender,
          origin_server_ts: pdu.origin_server_ts,
          json: JSON.stringify(pdu),
          redacted_by: null,
          soft_failed: softFailed,
        }));
        if (hot) for (const row of rows) hot.insertEvent(row);
        else for (const part of chunk(rows)) await trx("events").insert(part);
        const state = rows.filter((row): row is typeof row & { state_key: string } => row.state_key !== null && !row.soft_failed);
        // Coming back into a room undoes having forgotten it.
        const returning = [...new Set(state.filter((row) => row.membership === "join" || row.membership === "invite" || row.membership === "knock").map((row) => row.state_key))];
        for (const users of chunk(returning)) await trx("forgotten_rooms").where("room_id", roomId).whereIn("user_id", users).delete();
        const history = state.map((row) => ({ room_id: roomId, type: row.type, state_key: row.state_key, room_seq: row.room_seq, event_id: row.event_id }));
        for (const part of chunk(history)) await trx("state_history").insert(part);
        // One row per key, the last one: an upsert may not touch a row twice in one statement.
        const current = new Map(state.map((row) => [`${row.type}\u0000${row.state_key}`, { room_id: roomId, type: row.type, state_key: row.state_key, event_id: row.event_id, membership: row.membership }]));
        for (const part of chunk([...current.values()])) {
          await trx("current_state").insert(part).onConflict(["room_id", "type", "state_key"]).merge(["event_id", "membership"]);
        }
      });
    },

    async forgetRoom(userId, roomId) {
      await knex("forgotten_rooms").insert({ user_id: userId, room_id: roomId }).onConflict(["user_id", "room_id"]).ignore();
    },

    async isRoomForgotten(userId, roomId) {
      return (await knex("forgotten_rooms").where({ user_id: userId, room_id: roomId }).first()) !== undefined;
    },

    async getEvent(eventId) {
      const row = (await knex("events as e").select(eventColumns).where("e.event_id", eventId).first()) as EventRecord | undefined;
      return row && toStoredEvent(row);
    },

    async getEvents(eventIds) {
      const found: StoredEvent[] = [];
      for (const ids of chunk([...new Set(eventIds)])) {
        const rows = (await knex("events as e").select(eventColumns).whereIn("e.event_id", ids)) as EventRecord[];
        found.push(...rows.map(toStoredEvent));
      }
      return found;
    },

    async getLastEvent(roomId) {
      const row = (await knex("events as e").select(eventColumns).where("e.room_id", roomId).orderBy("e.room_seq", "desc").first()) as
        | EventRecord
        | undefined;
      return row && toStoredEvent(row);
    },

    async getRoomEvents(roomId, { afterSeq, beforeSeq, direction, limit }) {
      const query = knex("events as e")
        .select(eventColumns)
        .where("e.room_id", roomId)
        .orderBy("e.room_seq", direction === "forward" ? "asc" : "desc")
        .limit(limit);
      if (afterSeq !== undefined) query.where("e.room_seq", ">", afterSeq);
      if (beforeSeq !== undefined) query.where("e.room_seq", "<", beforeSeq);
      return ((await query) as EventRecord[]).map(toStoredEvent);
    },

    async getEventsInStreamRange(roomIds, fromPos, toPos, limitPerRoom) {
      const events: StoredEvent[] = [];
      for (const ids of chunk(roomIds)) {
        // The latest `limitPerRoom` of each room (a sync timeline), in one query on both engines
        // (window functions: SQLite >= 3.25, bundled by better-sqlite3).
        const ranked = knex("events as e")
          .select([...eventColumns, knex.raw("ROW_NUMBER() OVER (PARTITION BY e.room_id ORDER BY e.stream_pos DESC) AS rn")])
          .whereIn("e.room_id", ids)
          .where("e.stream_pos", ">", fromPos)
          .where("e.stream_pos", "<=", toPos)
          .where("e.soft_failed", false);
        const rows = (await knex.select("*").from(ranked.as("ranked")).where("rn", "<=", limitPerRoom)) as EventRecord[];
        events.push(...rows.map(toStoredEvent));
      }
      return events.sort((a, b) => a.streamPos - b.streamPos);
    },

    async setReplicaHistory(roomId, firstSeq, beforeEventId) {
      await knex("replica_history").insert({ room_id: roomId, first_seq: firstSeq, before_event_id: beforeEventId }).onConflict("room_id").ignore();
    },

    async getReplicaHistory(roomId) {
      const row = (await knex("replica_history").where("room_id", roomId).first()) as { first_seq: unknown; before_event_id: string | null } | undefined;
      return row ? { firstSeq: toNumber(row.first_seq), beforeEventId: row.before_event_id } : undefined;
    },

    async redactEvent(eventId, redactionId, redactedPdu) {
      await knex("events").where("event_id", eventId).update({ redacted_by: redactionId, json: JSON.stringify(redactedPdu) });
    },

    async getCurrentState(roomId) {
      const rows = (await knex("current_state as s")
        .join("events as e", "e.event_id", "s.event_id")
        .select(eventColumns)
        .where("s.room_id", roomId)
        .orderBy(["s.type", "s.state_key"])) as EventRecord[];
      return rows.map(toStoredEvent);
    },

    async getCurrentStateEvent(roomId, type, stateKey) {
      const row = (await knex("current_state as s")
        .join("events as e", "e.event_id", "s.event_id")
        .select(eventColumns)
        .where({ "s.room_id": roomId, "s.type": type, "s.state_key": stateKey })
        .first()) as EventRecord | undefined;
      return row && toStoredEvent(row);
    },

    async getStateBefore(roomId, roomSeq) {
      // Per (type, state_key), the latest state_history row below roomSeq: one range scan of the
      // primary key (room_id, type, state_key, room_seq), then the events by primary key.
      const latest = knex("state_history")
        .select("type", "state_key")
        .max({ seq: "room_seq" })
        .where("room_id", roomId)
        .where("room_seq", "<", roomSeq)
        .groupBy("type", "state_key")
        .as("latest");
      const rows = (await knex("state_history as h")
        .join(latest, (on) => on.on("h.type", "latest.type").andOn("h.state_key", "latest.state_key").andOn("h.room_seq", "latest.seq"))
        .join("events as e", "e.event_id", "h.event_id")
        .select(eventColumns)
        .where("h.room_id", roomId)
        .orderBy(["h.type", "h.state_key"])) as EventRecord[];
      return rows.map(toStoredEvent);
    },

    async getStateEventBefore(roomId, roomSeq, type, stateKey) {
      const row = (await knex("state_history as h")
        .join("events as e", "e.event_id", "h.event_id")
        .select(eventColumns)
        .where({ "h.room_id": roomId, "h.type": type, "h.state_key": stateKey })
        .where("h.room_seq", "<", roomSeq)
        .orderBy("h.room_seq", "desc")
        .first()) as EventRecord | undefined;
      return row && toStoredEvent(row);
    },

    async getMembershipsOfUser(userId) {
      const rows = (await knex("current_state")
        .select("room_id", "membership")
        .where({ state_key: userId, type: "m.room.member" })
        .whereNotNull("membership")) as Array<{ room_id: string; membership: string }>;
      return new Map(rows.map((r) => [r.room_id, r.membership]));
    },

    async getMembers(roomId, membership) {
      const query = knex("current_state").select("state_key").where({ room_id: roomId, type: "m.room.member" }).orderBy("state_key");
      if (membership !== undefined) query.where("membership", membership);
      else query.whereNotNull("membership");
      return ((await query) as Array<{ state_key: string }>).map((r) => r.state_key);
    },

    async listRoomSummaries({ localServer, stateTypes }) {
      const rooms = ((await knex("rooms").select("*").orderBy("room_id")) as RoomRecord[]).map(toRoomRow);
      // One grouped scan of current_state gives every room's counts.
      const localPattern = `%:${localServer.replace(/[\\%_]/g, (c) => `\\${c}`)}`;
      const counts = (await knex("current_state")
        .select("room_id")
        .count({ state_events: "*" })
        .select(knex.raw("SUM(CASE WHEN membership = 'join' THEN 1 ELSE 0 END) AS joined"))
        .select(knex.raw("SUM(CASE WHEN membership = 'join' AND state_key LIKE ? ESCAPE '\\' THEN 1 ELSE 0 END) AS joined_local", [localPattern]))
        .groupBy("room_id")) as Array<{ room_id: string; state_events: unknown; joined: unknown; joined_local: unknown }>;
      const countsByRoom = new Map(counts.map((c) => [c.room_id, c]));
      const stateRows =
        stateTypes.length === 0
          ? []
          : ((await knex("current_state as s")
              .join("events as e", "e.event_id", "s.event_id")
              .select("s.room_id", "s.type", "e.json")
              .where("s.state_key", "")
              .whereIn("s.type", stateTypes)) as Array<{ room_id: string; type: string; json: string }>);
      const stateByRoom = new Map<string, Record<string, JsonObject>>();
      for (const row of stateRows) {
        const state = stateByRoom.get(row.room_id) ?? {};
        state[row.type] = (JSON.parse(row.json) as Pdu).content;
        stateByRoom.set(row.room_id, state);
      }
      return rooms.map((room) => {
        const c = countsByRoom.get(room.roomId);
        return {
          room,
          joinedMembers: c ? toNumber(c.joined ?? 0) : 0,
          joinedLocalMembers: c ? toNumber(c.joined_local ?? 0) : 0,
          stateEvents: c ? toNumber(c.state_events) : 0,
          state: stateByRoom.get(room.roomId) ?? {},
        };
      });
    },

    async getMembershipChanges(userId, fromPos, toPos) {
      // `membership IS NOT NULL` lets both planners use the partial index events_membership_stream.
      const rows = (await knex("events")
        .select("room_id", "membership", "stream_pos", "event_id")
        .whereNotNull("membership")
        .where({ state_key: userId, type: "m.room.member", soft_failed: false })
        .where("stream_pos", ">", fromPos)
        .where("stream_pos", "<=", toPos)
        .orderBy("stream_pos")) as Array<{ room_id: string; membership: string; stream_pos: unknown; event_id: string }>;
      return rows.map((r) => ({ roomId: r.room_id, membership: r.membership, streamPos: toNumber(r.stream_pos), eventId: r.event_id }));
    },
  };
}
