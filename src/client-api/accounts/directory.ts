// The room directory (Client-Server API "Room aliases", "Listing rooms") and the user directory.
import { Errcode, MatrixError } from "../../core/errors.js";
import { isValidServerName } from "../../core/identifiers.js";
import type { JsonObject } from "../../core/json.js";
import type { RoomRow } from "../../storage/ports.js";
import type { ClientApiContext, RemoteDirectory } from "../contracts.js";
import type { Requester } from "../http.js";
import type { AppserviceAccess } from "./auth-service.js";

export interface PublicRoomsChunk {
  room_id: string;
  num_joined_members: number;
  world_readable: boolean;
  guest_can_join: boolean;
  name?: string;
  topic?: string;
  canonical_alias?: string;
  avatar_url?: string;
  join_rule?: string;
  room_type?: string;
}

export interface UserDirectoryResult {
  user_id: string;
  display_name?: string;
  avatar_url?: string;
}

export interface Directory {
  createAlias(requester: Requester, alias: string, roomId: string): Promise<void>;
  resolveAlias(alias: string): Promise<{ room_id: string; servers: string[] }>;
  deleteAlias(requester: Requester, alias: string): Promise<void>;
  getVisibility(roomId: string): Promise<"public" | "private">;
  setVisibility(requester: Requester, roomId: string, visibility: "public" | "private"): Promise<void>;
  publicRooms(options: { limit: number; since?: string; searchTerm?: string }): Promise<{ chunk: PublicRoomsChunk[]; next_batch?: string }>;
  searchUsers(requester: Requester, term: string, limit: number): Promise<{ results: UserDirectoryResult[]; limited: boolean }>;
}

const MAX_ALIAS_BYTES = 255;

/** `#localpart:server_name` (appendices "Room Aliases"): the localpart is any text without `:` or NUL. */
export function parseRoomAlias(alias: string): { localpart: string; server: string } {
  const colon = alias.indexOf(":");
  const valid =
    alias.startsWith("#") &&
    colon > 1 &&
    Buffer.byteLength(alias) <= MAX_ALIAS_BYTES &&
    !alias.includes("\u0000") &&
    isValidServerName(alias.slice(colon + 1));
  if (!valid) throw new MatrixError(Errcode.INVALID_PARAM, 400, "Room alias invalid");
  return { localpart: alias.slice(1, colon), server: alias.slice(colon + 1) };
}

function stringField(content: JsonObject | undefined, key: string): string | undefined {
  const value = content?.[key];
  return typeof value === "string" ? value : undefined;
}

export function createDirectory(ctx: ClientApiContext, remote?: RemoteDirectory, appservices?: AppserviceAccess): Directory {
  const { storage } = ctx;

  async function existingRoom(roomId: string): Promise<RoomRow> {
    const room = await storage.events.getRoom(roomId);
    if (!room) throw new MatrixError(Errcode.NOT_FOUND, 404, "Room not found");
    return room;
  }

  async function stateContent(roomId: string, type: string): Promise<JsonObject | undefined> {
    return (await storage.events.getCurrentStateEvent(roomId, type, ""))?.pdu.content;
  }

  async function chunkOf(room: RoomRow): Promise<PublicRoomsChunk> {
    const roomId = room.roomId;
    const [members, name, topic, alias, avatar, joinRules, visibility, guests, create] = await Promise.all([
      storage.events.getMembers(roomId, "join"),
      stateContent(roomId, "m.room.name"),
      stateContent(roomId, "m.room.topic"),
      stateContent(roomId, "m.room.canonical_alias"),
      stateContent(roomId, "m.room.avatar"),
      stateContent(roomId, "m.room.join_rules"),
      stateContent(roomId, "m.room.history_visibility"),
      stateContent(roomId, "m.room.guest_access"),
      stateContent(roomId, "m.room.create"),
    ]);
    const fields: Array<[keyof PublicRoomsChunk, string | undefined]> = [
      ["name", stringField(name, "name")],
      ["topic", stringField(topic, "topic")],
      ["canonical_alias", stringField(alias, "alias")],
      ["avatar_url", stringField(avatar, "url")],
      ["join_rule", stringField(joinRules, "join_rule")],
      ["room_type", stringField(create, "type")],
    ];
    return {
      room_id: roomId,
      num_joined_members: members.length,
      world_readable: stringField(visibility, "history_visibility") === "world_readable",
      guest_can_join: stringField(guests, "guest_access") === "can_join",
      ...Object.fromEntries(fields.filter(([, v]) => v !== undefined)),
    };
  }

  async function isJoined(userId: string, roomId: string): Promise<boolean> {
    return (await storage.events.getMembershipsOfUser(userId)).get(roomId) === "join";
  }

  return {
    async createAlias(requester, alias, roomId) {
      const { server } = parseRoomAlias(alias);
      if (server !== ctx.serverName) throw new MatrixError(Errcode.INVALID_PARAM, 400, "Room aliases can only be created for this server");
      // Application Service API "Server admin style permissions": exclusive alias namespaces are their
      // service's alone, and a service creates aliases only inside its own namespaces (M_EXCLUSIVE).
      const refusal = appservices?.aliasClaimRefusal(alias, requester.appserviceId);
      if (refusal !== undefined) throw new MatrixError(Errcode.EXCLUSIVE, 400, refusal);
      await existingRoom(roomId);
      const created = await storage.transaction((tx) => tx.aliases.create(alias, roomId, requester.userId));
      if (!created) throw new MatrixError(Errcode.UNKNOWN, 409, `Room alias ${alias} already exists`);
    },

    async resolveAlias(alias) {
      const { server } = parseRoomAlias(alias);
      // An alias of another server: ask that server (federation `query/directory`).
      if (server !== ctx.serverName) {
        if (!remote) throw new MatrixError(Errcode.NOT_FOUND, 404, `Room alias ${alias} not found`);
        return remote.queryAlias(alias);
      }
      let entry = await storage.aliases.get(alias);
      // An unknown alias in a service's namespace: ask the service, which may create it now
      // (Application Service API "Querying", `GET /_matrix/app/v1/rooms/{roomAlias}`).
      if (!entry && appservices && (await appservices.queryAlias(alias))) entry = await storage.aliases.get(alias);
      if (!entry) throw new MatrixError(Errcode.NOT_FOUND, 404, `Room alias ${alias} not found`);
      const room = await storage.events.getRoom(entry.roomId);
      const servers = [ctx.serverName, ...(room && room.hubServer !== ctx.serverName ? [room.hubServer] : [])];
      return { room_id: entry.roomId, servers };
    },

    async deleteAlias(requester, alias) {
      parseRoomAlias(alias);
      const entry = await storage.aliases.get(alias);
      if (!entry) throw new MatrixError(Errcode.NOT_FOUND, 404, `Room alias ${alias} not found`);
      // The spec leaves the policy open; here the alias's creator or a server admin may delete it.
      const serviceOwns = requester.appserviceId !== undefined && appservices?.ownsAlias(requester.appserviceId, alias) === true;
      if (entry.creator !== requester.userId && !requester.isAdmin && !serviceOwns) throw new MatrixError(Errcode.FORBIDDEN, 403, "Only the alias's creator may delete it");
      await storage.transaction((tx) => tx.aliases.delete(alias));
    },

    async getVisibility(roomId) {
      return (await existingRoom(roomId)).isPublic ? "public" : "private";
    },

    async setVisibility(requester, roomId, visibility) {
      await existingRoom(roomId);
      // Publishing needs a joined member (or an admin): outsiders cannot advertise a room.
      if (!requester.isAdmin && !(await isJoined(requester.userId, roomId))) throw new MatrixError(Errcode.FORBIDDEN, 403, "You are not joined to this room");
      await storage.transaction((tx) => tx.events.setRoomPublic(roomId, visibility === "public"));
    },

    async publicRooms({ limit, since, searchTerm }) {
      const term = searchTerm?.toLowerCase();
      const chunk: PublicRoomsChunk[] = [];
      let cursor = since;
      let exhausted = false;
      // A search term filters after the fact, so pages are read until `limit` matches are found.
      while (chunk.length < limit && !exhausted) {
        const page = await storage.events.listPublicRooms({ limit: limit + 1, ...(cursor !== undefined ? { since: cursor } : {}) });
        exhausted = page.length <= limit;
        for (const room of page) {
          cursor = room.roomId;
          const entry = await chunkOf(room);
          const text = [entry.name, entry.topic, entry.canonical_alias].filter(Boolean).join("\n").toLowerCase();
          if (term === undefined || text.includes(term)) chunk.push(entry);
          if (chunk.length >= limit) {
            exhausted &&= room === page[page.length - 1];
            break;
          }
        }
      }
      return { chunk, ...(!exhausted && cursor !== undefined ? { next_batch: cursor } : {}) };
    },

    async searchUsers(_requester, term, limit) {
      // Scope: every active, non-guest local user (documented choice; spec lets servers decide).
      const found = await storage.accounts.searchUsers(term, limit + 1);
      const users = found.filter((u) => !u.deactivated && !u.isGuest);
      return {
        results: users.slice(0, limit).map((u) => ({
          user_id: u.userId,
          ...(u.displayname !== null ? { display_name: u.displayname } : {}),
          ...(u.avatarUrl !== null ? { avatar_url: u.avatarUrl } : {}),
        })),
        limited: found.length > limit,
      };
    },
  };
}
