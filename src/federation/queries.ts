// Federation queries (Server-Server API "Querying for information"): what this server answers
// about its users, and asking other servers about theirs.
import { Errcode, MatrixError } from "../core/errors.js";
import { serverNameOf } from "../core/identifiers.js";
import { isJsonObject } from "../core/json.js";
import type { RemoteDirectory, RemoteProfiles } from "../client-api/contracts.js";
import type { Storage } from "../storage/ports.js";
import type { FederationClient } from "./transport/client.js";
import { FederationRequestError } from "./transport/errors.js";

export type ProfileField = "displayname" | "avatar_url";

export interface ProfileAnswer {
  displayname?: string;
  avatar_url?: string;
}

/** Answers `query/profile` and `query/directory` for this server's users and aliases. */
export interface LocalQueries {
  profile(userId: string, field?: ProfileField): Promise<ProfileAnswer>;
  directory(alias: string): Promise<{ room_id: string; servers: string[] }>;
}

/**
 * Application services asked about users and aliases of theirs that do not exist yet
 * (Application Service API "Querying"), for other servers as for this server's clients.
 */
export interface LocalEntityQueries {
  /** True when a service answered 200 (it may have created the user). */
  queryUser(userId: string): Promise<boolean>;
  queryAlias(alias: string): Promise<boolean>;
}

export function createLocalQueries(deps: { storage: Storage; serverName: string; appservices?: LocalEntityQueries }): LocalQueries {
  return {
    async profile(userId, field) {
      if (serverNameOf(userId) !== deps.serverName) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${userId} is not a user of ${deps.serverName}`);
      let user = await deps.storage.accounts.getUser(userId);
      // A bridge's ghost not created yet: its service may create it now.
      if (!user && deps.appservices && (await deps.appservices.queryUser(userId))) user = await deps.storage.accounts.getUser(userId);
      if (!user || user.deactivated) throw new MatrixError(Errcode.NOT_FOUND, 404, "Profile not found");
      const answer: ProfileAnswer = {};
      if (user.displayname !== null && field !== "avatar_url") answer.displayname = user.displayname;
      if (user.avatarUrl !== null && field !== "displayname") answer.avatar_url = user.avatarUrl;
      return answer;
    },

    async directory(alias) {
      const colon = alias.indexOf(":");
      if (!alias.startsWith("#") || colon < 0 || alias.slice(colon + 1) !== deps.serverName) {
        throw new MatrixError(Errcode.INVALID_PARAM, 400, `${alias} is not a room alias of ${deps.serverName}`);
      }
      let entry = await deps.storage.aliases.get(alias);
      if (!entry && deps.appservices && (await deps.appservices.queryAlias(alias))) entry = await deps.storage.aliases.get(alias);
      if (!entry) throw new MatrixError(Errcode.NOT_FOUND, 404, `Room alias ${alias} not found`);
      const room = await deps.storage.events.getRoom(entry.roomId);
      const servers = [deps.serverName, ...(room && room.hubServer !== deps.serverName ? [room.hubServer] : [])];
      return { room_id: entry.roomId, servers };
    },
  };
}

/** A GET to another server's query endpoint; unreachable servers and non-200 answers are M_NOT_FOUND. */
async function queryRemote(client: FederationClient, server: string, path: string, query: Record<string, string>, what: string): Promise<Record<string, unknown>> {
  let response;
  try {
    response = await client.request(server, "GET", path, { query });
  } catch (error) {
    if (error instanceof FederationRequestError) throw new MatrixError(Errcode.NOT_FOUND, 404, `${what} not found: ${server} is unreachable (${error.message})`);
    throw error;
  }
  if (response.status !== 200 || !isJsonObject(response.json)) throw new MatrixError(Errcode.NOT_FOUND, 404, `${what} not found (${server} answered ${response.status})`);
  return response.json;
}

/** Asks an alias's own server where it points. */
export function createRemoteDirectory(client: FederationClient): RemoteDirectory {
  return {
    async queryAlias(alias) {
      const server = alias.startsWith("#") && alias.includes(":") ? alias.slice(alias.indexOf(":") + 1) : undefined;
      if (server === undefined) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${alias} is not a room alias`);
      const answer = await queryRemote(client, server, "/_matrix/federation/v1/query/directory", { room_alias: alias }, `Room alias ${alias}`);
      const servers = Array.isArray(answer.servers) ? answer.servers.filter((s): s is string => typeof s === "string") : [];
      if (typeof answer.room_id !== "string") throw new MatrixError(Errcode.NOT_FOUND, 404, `Room alias ${alias} not found (bad answer from ${server})`);
      return { room_id: answer.room_id, servers };
    },
  };
}

/** Asks a user's own server for their profile (the client API's view of remote users). */
export function createRemoteProfiles(client: FederationClient): RemoteProfiles {
  return {
    async queryProfile(userId) {
      const server = serverNameOf(userId);
      if (server === undefined) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${userId} is not a user ID`);
      const { displayname, avatar_url } = await queryRemote(client, server, "/_matrix/federation/v1/query/profile", { user_id: userId }, "Profile");
      return {
        ...(typeof displayname === "string" ? { displayname } : {}),
        ...(typeof avatar_url === "string" ? { avatar_url } : {}),
      };
    },
  };
}
