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
 * Compares two rooms for `order`. Text orders are ascending with rooms lacking the value last;
 * counts (members, state events) and flags are largest first, as Synapse orders them; ties go by
 * room ID so pages are stable.
 */
function compareRooms(order: RoomOrder): (a: AdminRoom, b: AdminRoom) => number {
  const byText = (pick: (r: AdminRoom) => string | null) => (a: AdminRoom, b: AdminRoom) => {
    const x = pick(a);
    const y = pick(b);
    if (x === y) return 0;
    if (x === null) return 1;
    if (y === null) return -1;
    return x < y ? -1 : 1;
  };
  const byNumber = (pick: (r: AdminRoom) => number) => (a: AdminRoom, b: AdminRoom) => pick(b) - pick(a);
  const primary = ((): ((a: AdminRoom, b: AdminRoom) => number) => {
    switch (order) {
      case "name":
      case "alphabetical":
        return byText((r) => r.name);
      case "canonical_alias":
        return byText((r) => r.canonical_alias);
      case "joined_members":
      case "size":
        return byNumber((r) => r.joined_members);
      case "joined_local_members":
        return byNumber((r) => r.joined_local_members);
      case "version":
        return byText((r) => r.version);
      case "creator":
        return byText((r) => r.creator);
      case "encryption":
        return byText((r) => r.encryption);
      case "federatable":
        return byNumber((r) => Number(r.federatable));
      case "public":
        return byNumber((r) => Number(r.public));
      case "join_rules":
        return byText((r) => r.join_rules);
      case "guest_access":
        return byText((r) => r.guest_access);
      case "history_visibility":
        return byText((r) => r.history_visibility);
      case "state_events":
        return byNumber((r) => r.state_events);
    }
  })();
  return (a, b) => primary(a, b) || (a.room_id < b.room_id ? -1 : a.room_id > b.room_id ? 1 : 0);
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
