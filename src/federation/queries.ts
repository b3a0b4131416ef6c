// Federation queries (Server-Server API "Querying for information"): what this server answers
// about its users, and asking other servers about theirs.
import { Errcode, MatrixError } from "../core/errors.js";
import { serverNameOf } from "../core/identifiers.js";
import { isJsonObject } from "../core/json.js";
import type { RemoteProfiles } from "../client-api/contracts.js";
import type { Storage } from "../storage/ports.js";
import type { FederationClient } from "./transport/client.js";
import { FederationRequestError } from "./transport/errors.js";

export type ProfileField = "displayname" | "avatar_url";

export interface ProfileAnswer {
  displayname?: string;
  avatar_url?: string;
}

/** Answers `query/profile` for this server's users. */
export interface LocalQueries {
  profile(userId: string, field?: ProfileField): Promise<ProfileAnswer>;
}

export function createLocalQueries(deps: { storage: Storage; serverName: string }): LocalQueries {
  return {
    async profile(userId, field) {
      if (serverNameOf(userId) !== deps.serverName) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${userId} is not a user of ${deps.serverName}`);
      const user = await deps.storage.accounts.getUser(userId);
      if (!user || user.deactivated) throw new MatrixError(Errcode.NOT_FOUND, 404, "Profile not found");
      const answer: ProfileAnswer = {};
      if (user.displayname !== null && field !== "avatar_url") answer.displayname = user.displayname;
      if (user.avatarUrl !== null && field !== "displayname") answer.avatar_url = user.avatarUrl;
      return answer;
    },
  };
}

/** Asks a user's own server for their profile (the client API's view of remote users). */
export function createRemoteProfiles(client: FederationClient): RemoteProfiles {
  return {
    async queryProfile(userId) {
      const server = serverNameOf(userId);
      if (server === undefined) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${userId} is not a user ID`);
      let response;
      try {
        response = await client.request(server, "GET", "/_matrix/federation/v1/query/profile", { query: { user_id: userId } });
      } catch (error) {
        if (error instanceof FederationRequestError) throw new MatrixError(Errcode.NOT_FOUND, 404, `Profile not found: ${server} is unreachable (${error.message})`);
        throw error;
      }
      if (response.status === 404) throw new MatrixError(Errcode.NOT_FOUND, 404, "Profile not found");
      if (response.status !== 200 || !isJsonObject(response.json)) {
        throw new MatrixError(Errcode.NOT_FOUND, 404, `Profile not found: ${server} answered ${response.status}`);
      }
      const { displayname, avatar_url } = response.json;
      return {
        ...(typeof displayname === "string" ? { displayname } : {}),
        ...(typeof avatar_url === "string" ? { avatar_url } : {}),
      };
    },
  };
}
