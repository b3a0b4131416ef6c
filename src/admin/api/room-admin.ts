// What the admin API shows of rooms (Synapse Admin API "Rooms": list, details, members, state).
// Read-only: nothing here changes a room, so nothing is logged as an admin action.
import { Errcode, MatrixError } from "../../core/errors.js";
import type { JsonObject } from "../../core/json.js";
import { toClientEvent, type ClientEvent } from "../../rooms/client-event.js";
import type { RoomSummary, Storage } from "../../storage/ports.js";

/** A room as the admin API shows it (the list's entries and `GET /v1/rooms/{roomId}`). */
export interface AdminRoom {
  room_id: string;
  name: string | null;
  topic: string | null;
  avatar: string | null;
  canonical_alias: string | null;
  joined_members: number;
  joined_local_members: number;
  version: string;
  creator: string;
  encryption: string | null;
  federatable: boolean;
  public: boolean;
  join_rules: string | null;
  guest_access: string | null;
  history_visibility: string | null;
  state_events: number;
  room_type: string | null;
}

/** Orders of the room list (Synapse Admin API "List Room API" `order_by`, its deprecated aliases included). */
export const ROOM_ORDERS = [
  "name",
  "alphabetical",
  "canonical_alias",
  "joined_members",
  "size",
  "joined_local_members",
  "version",
  "creator",
  "encryption",
  "federatable",
  "public",
  "join_rules",
  "guest_access",
  "history_visibility",
  "state_events",
] as const;
export type RoomOrder = (typeof ROOM_ORDERS)[number];

export interface RoomListQuery {
  from: number;
  limit: number;
  orderBy: RoomOrder;
  /** "f": the order's natural direction; "b": reversed. */
  dir: "f" | "b";
  /** Part of the room's name, canonical alias or ID, any case. */
  searchTerm?: string;
}

export interface RoomList {
  rooms: AdminRoom[];
  offset: number;
  total_rooms: number;
  next_batch?: number;
  prev_batch?: number;
}

export interface RoomAdmin {
  list(query: RoomListQuery): Promise<RoomList>;
  get(roomId: string): Promise<AdminRoom>;
  members(roomId: string): Promise<string[]>;
  state(roomId: string): Promise<ClientEvent[]>;
}

/** The state events (state key "") whose contents the room list shows. */
const SUMMARY_STATE = ["m.room.create", "m.room.name", "m.room.topic", "m.room.avatar", "m.room.canonical_alias", "m.room.encryption", "m.room.join_rules", "m.room.guest_access", "m.room.history_visibility"];

function stringField(content: JsonObject | undefined, key: string): string | null {
  const value = content?.[key];
  return typeof value === "string" ? value : null;
}

function toAdminRoom(summary: RoomSummary): AdminRoom {
  const { room, state } = summary;
  const create = state["m.room.create"];
  return {
    room_id: room.roomId,
    name: stringField(state["m.room.name"], "name"),
    topic: stringField(state["m.room.topic"], "topic"),
    avatar: stringField(state["m.room.avatar"], "url"),
    canonical_alias: stringField(state["m.room.canonical_alias"], "alias"),
    joined_members: summary.joinedMembers,
    joined_local_members: summary.joinedLocalMembers,
    version: room.roomVersion,
    creator: room.creator,
    encryption: stringField(state["m.room.encryption"], "algorithm"),
    // Client-Server API `m.room.create`: `m.federate` false keeps the room on this server.
    federatable: create?.["m.federate"] !== false,
    public: room.isPublic,
    join_rules: stringField(state["m.room.join_rules"], "join_rule"),
    guest_access: stringField(state["m.room.guest_access"], "guest_access"),
    history_visibility: stringField(state["m.room.history_visibility"], "history_visibility"),
    state_events: summary.stateEvents,
    room_type: stringField(create, "type"),
  };
}

/**
 * What each order sorts by, and whether its natural direction is descending. As Synapse's room
 * list sorts (`get_rooms_paginate`): text ascending, member and state-event counts and the room
 * version descending, the `federatable` and `public` flags ascending (false first).
 */
const ORDER_KEYS: Record<RoomOrder, { key: (r: AdminRoom) => string | number | null; descending: boolean }> = {
  name: { key: (r) => r.name, descending: false },
  alphabetical: { key: (r) => r.name, descending: false },
  canonical_alias: { key: (r) => r.canonical_alias, descending: false },
  joined_members: { key: (r) => r.joined_members, descending: true },
  size: { key: (r) => r.joined_members, descending: true },
  joined_local_members: { key: (r) => r.joined_local_members, descending: true },
  version: { key: (r) => r.version, descending: true },
  creator: { key: (r) => r.creator, descending: false },
  encryption: { key: (r) => r.encryption, descending: false },
  federatable: { key: (r) => Number(r.federatable), descending: false },
  public: { key: (r) => Number(r.public), descending: false },
  join_rules: { key: (r) => r.join_rules, descending: false },
  guest_access: { key: (r) => r.guest_access, descending: false },
  history_visibility: { key: (r) => r.history_visibility, descending: false },
  state_events: { key: (r) => r.state_events, descending: true },
};

function compareValues(x: string | number, y: string | number): number {
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Compares two rooms for `order` in its natural direction. Rooms lacking the value come last; ties
 * go by room ID in the same direction (Synapse orders by the column, then the room ID, both one
 * way), so pages are stable.
 */
function compareRooms(order: RoomOrder): (a: AdminRoom, b: AdminRoom) => number {
  const { key, descending } = ORDER_KEYS[order];
  const sign = descending ? -1 : 1;
  return (a, b) => {
    const x = key(a);
    const y = key(b);
    if (x === null || y === null) {
      if (x !== y) return x === null ? 1 : -1;
    } else {
      const primary = compareValues(x, y);
      if (primary !== 0) return sign * primary;
    }
    return sign * compareValues(a.room_id, b.room_id);
  };
}

function matchesSearch(room: AdminRoom, term: string): boolean {
  const needle = term.toLowerCase();
  return [room.name, room.canonical_alias, room.room_id].some((value) => value !== null && value.toLowerCase().includes(needle));
}

export function createRoomAdmin(deps: { storage: Storage; serverName: string }): RoomAdmin {
  const { storage, serverName } = deps;

  async function requireRoom(roomId: string) {
    const room = await storage.events.getRoom(roomId);
    if (!room) throw new MatrixError(Errcode.NOT_FOUND, 404, "Room not found");
    return room;
  }

  return {
    async list(query) {
      // Every room's summary is read, then filtered, ordered and paged here: the orders depend on
      // state contents (names, aliases) that the tables do not index.
      const summaries = await storage.events.listRoomSummaries({ localServer: serverName, stateTypes: SUMMARY_STATE });
      let rooms = summaries.map(toAdminRoom);
      if (query.searchTerm !== undefined && query.searchTerm !== "") rooms = rooms.filter((r) => matchesSearch(r, query.searchTerm!));
      const compare = compareRooms(query.orderBy);
      rooms.sort(query.dir === "b" ? (a, b) => compare(b, a) : compare);
      const page = rooms.slice(query.from, query.from + query.limit);
      const next = query.from + page.length;
      return {
        rooms: page,
        offset: query.from,
        total_rooms: rooms.length,
        ...(next < rooms.length ? { next_batch: next } : {}),
        ...(query.from > 0 ? { prev_batch: Math.max(0, query.from - query.limit) } : {}),
      };
    },

    async get(roomId) {
      const room = await requireRoom(roomId);
      const currentState = await storage.events.getCurrentState(roomId);
      const summary: RoomSummary = { room, joinedMembers: 0, joinedLocalMembers: 0, stateEvents: currentState.length, state: {} };
      for (const { pdu } of currentState) {
        if (pdu.type === "m.room.member" && pdu.content.membership === "join") {
          summary.joinedMembers += 1;
          if (typeof pdu.state_key === "string" && pdu.state_key.endsWith(`:${serverName}`)) summary.joinedLocalMembers += 1;
        } else if (pdu.state_key === "" && SUMMARY_STATE.includes(pdu.type)) {
          summary.state[pdu.type] = pdu.content;
        }
      }
      return toAdminRoom(summary);
    },

    async members(roomId) {
      await requireRoom(roomId);
      return storage.events.getMembers(roomId, "join");
    },

    async state(roomId) {
      await requireRoom(roomId);
      return (await storage.events.getCurrentState(roomId)).map((event) => toClientEvent(event));
    },
  };
}
