// Profiles (Client-Server API "Profiles"): display name and avatar URL of local users. A change
// is handed to the ProfilePropagator, which updates the user's membership events.
import { Errcode, MatrixError } from "../../core/errors.js";
import { serverNameOf } from "../../core/identifiers.js";
import type { ClientApiContext, ProfilePropagator, RemoteProfiles } from "../contracts.js";
import type { AppserviceAccess } from "./auth-service.js";

export type ProfileField = "displayname" | "avatar_url";

export interface Profile {
  displayname?: string;
  avatar_url?: string;
}

export interface Profiles {
  getProfile(userId: string): Promise<Profile>;
  setField(userId: string, field: ProfileField, value: string | null): Promise<void>;
}

export function createProfiles(ctx: ClientApiContext, propagator: ProfilePropagator, remote?: RemoteProfiles, appservices?: AppserviceAccess): Profiles {
  async function localUser(userId: string) {
    const user = await ctx.storage.accounts.getUser(userId);
    if (!user || user.deactivated) throw new MatrixError(Errcode.NOT_FOUND, 404, "Profile not found");
    return user;
  }

  return {
    async getProfile(userId) {
      // A user of another server: ask that server (federation `query/profile`).
      const server = serverNameOf(userId);
      if (server !== undefined && server !== ctx.serverName) {
        if (!remote) throw new MatrixError(Errcode.NOT_FOUND, 404, "Profile not found");
        return remote.queryProfile(userId);
      }
      // A user of a service's namespace that does not exist yet: ask the service, which may create
      // it now (Application Service API "Querying", `GET /_matrix/app/v1/users/{userId}`).
      if (appservices && !(await ctx.storage.accounts.getUser(userId))) await appservices.queryUser(userId);
      const user = await localUser(userId);
      return {
        ...(user.displayname !== null ? { displayname: user.displayname } : {}),
        ...(user.avatarUrl !== null ? { avatar_url: user.avatarUrl } : {}),
      };
    },

    async setField(userId, field, value) {
      const user = await localUser(userId);
      const changes = field === "displayname" ? { displayname: value } : { avatarUrl: value };
      await ctx.storage.transaction((tx) => tx.accounts.updateUser(userId, changes));
      const profile = { displayname: user.displayname, avatarUrl: user.avatarUrl, ...changes };
      await propagator.profileChanged(userId, profile);
    },
  };
}
