// What the admin API does to accounts (Synapse Admin API "User Admin API": list, query,
// create or modify, deactivate, the admin flag, devices, joined rooms). Accounts are created by
// the same AuthService the client API and the CLI's register-user use, and deactivated the way
// `POST /account/deactivate` does it (leave every room, delete devices and tokens).
import type { Logger } from "pino";
import { Errcode, MatrixError } from "../../core/errors.js";
import type { JsonValue } from "../../core/json.js";
import { serverNameOf } from "../../core/identifiers.js";
import type { AuthService } from "../../client-api/accounts/auth-service.js";
import { deleteDevices } from "../../client-api/accounts/device-lists.js";
import { localpartOf, localpartOfUsername } from "../../client-api/accounts/usernames.js";
import type { ClientApiContext, ProfilePropagator } from "../../client-api/contracts.js";
import type { UserRow } from "../../storage/ports.js";
import { logAdminAction } from "./guard.js";

/** A user as the admin API shows it (`GET /v2/users/{userId}` and the list's entries). */
export interface AdminUser {
  name: string;
  displayname: string | null;
  avatar_url: string | null;
  admin: boolean;
  deactivated: boolean;
  is_guest: boolean;
  /** Milliseconds since the epoch. */
  creation_ts: number;
  appservice_id: string | null;
  user_type: null;
  locked: boolean;
  shadow_banned: boolean;
}

export interface UserListQuery {
  from: number;
  limit: number;
  /** Part of the user ID or display name. */
  name?: string;
  /** Part of the user ID. */
  userId?: string;
  guests: boolean;
  deactivated: boolean;
}

/** The changes `PUT /v2/users/{userId}` may carry; absent fields keep their value. */
export interface UserChanges {
  password?: string;
  logoutDevices: boolean;
  displayname?: string | null;
  avatarUrl?: string | null;
  admin?: boolean;
  deactivated?: boolean;
}

export interface AdminDevice {
  device_id: string;
  display_name: string | null;
  last_seen_ip: string | null;
  last_seen_ts: number | null;
  user_id: string;
}

export interface UserAdmin {
  list(query: UserListQuery): Promise<{ users: AdminUser[]; next_token?: string; total: number }>;
  get(userId: string): Promise<AdminUser>;
  /** Creates the account when it does not exist; `created` says which happened. */
  put(admin: string, userId: string, changes: UserChanges): Promise<{ created: boolean; user: AdminUser }>;
  deactivate(admin: string, userId: string): Promise<void>;
  isAdmin(userId: string): Promise<boolean>;
  setAdmin(admin: string, userId: string, isAdmin: boolean): Promise<void>;
  devices(userId: string): Promise<AdminDevice[]>;
  joinedRooms(userId: string): Promise<string[]>;
}

export interface UserAdminDeps {
  ctx: ClientApiContext;
  auth: AuthService;
  /** The room service: profile changes reach membership events, a deactivated user leaves rooms. */
  rooms: ProfilePropagator;
  logger: Logger;
}

function toAdminUser(user: UserRow): AdminUser {
  return {
    name: user.userId,
    displayname: user.displayname,
    avatar_url: user.avatarUrl,
    admin: user.isAdmin,
    deactivated: user.deactivated,
    is_guest: user.isGuest,
    creation_ts: user.createdTs,
    appservice_id: user.appserviceId,
    user_type: null,
    locked: false,
    shadow_banned: false,
  };
}

export function createUserAdmin(deps: UserAdminDeps): UserAdmin {
  const { ctx, auth, rooms, logger } = deps;
  const { storage, serverName } = ctx;

  /** Accounts exist only for this server's users (Synapse answers 400 for others too). */
  function requireLocal(userId: string): void {
    if (serverNameOf(userId) !== serverName) throw new MatrixError(Errcode.INVALID_PARAM, 400, "Only users of this server can be managed here");
  }

  async function existingUser(userId: string): Promise<UserRow> {
    requireLocal(userId);
    const user = await storage.accounts.getUser(userId);
    if (!user) throw new MatrixError(Errcode.NOT_FOUND, 404, "User not found");
    return user;
  }

  /** Deletes every device of the user, their tokens with them, and announces it. */
  async function logOutEverywhere(userId: string): Promise<void> {
    const devices = await storage.accounts.listDevices(userId);
    await deleteDevices(ctx, userId, devices.map((d) => d.deviceId));
    await storage.transaction((tx) => tx.accounts.deleteAccessTokensOfUser(userId));
  }

  /** Client-Server API "Account deactivation": no password, no rooms, no sessions. */
  async function deactivateAccount(userId: string): Promise<void> {
    await storage.transaction((tx) => tx.accounts.updateUser(userId, { deactivated: true, passwordHash: null }));
    await rooms.leaveAllRooms(userId);
    await logOutEverywhere(userId);
  }

  /** Creates the account; returns what to log of it. */
  async function createAccount(userId: string, changes: UserChanges): Promise<Record<string, JsonValue>> {
    const localpart = localpartOf(userId);
    if (localpartOfUsername(localpart, serverName) !== localpart) throw new MatrixError(Errcode.INVALID_USERNAME, 400, "User IDs must be lower case");
    await auth.registerUser({ localpart, password: changes.password ?? null, admin: changes.admin ?? false });
    return { admin: changes.admin ?? false, password_set: changes.password !== undefined };
  }

  /**
   * Applies the changes of `PUT /v2/users/{userId}` to an existing account (just created when
   * `created`: its password and admin flag are set already); returns what to log of them.
   */
  async function modifyAccount(admin: string, user: UserRow, changes: UserChanges, created: boolean): Promise<Record<string, JsonValue>> {
    const userId = user.userId;
    const logged: Record<string, JsonValue> = {};
    const reactivating = changes.deactivated === false && user.deactivated;
    if (reactivating && changes.password === undefined) {
      throw new MatrixError(Errcode.MISSING_PARAM, 400, "A password is needed to reactivate an account");
    }
    if (changes.admin === false && userId === admin && user.isAdmin) throw new MatrixError(Errcode.INVALID_PARAM, 400, "You may not demote yourself");
    if (reactivating) {
      await storage.transaction((tx) => tx.accounts.updateUser(userId, { deactivated: false }));
      logged.deactivated = false;
    }
    if (changes.password !== undefined && !created) {
      await auth.setPassword(userId, changes.password);
      logged.password_changed = true;
      if (changes.logoutDevices) await logOutEverywhere(userId);
    }
    if (changes.admin !== undefined && changes.admin !== user.isAdmin && !created) {
      await storage.transaction((tx) => tx.accounts.updateUser(userId, { isAdmin: changes.admin }));
      logged.admin = changes.admin;
    }
    const profileChanged =
      (changes.displayname !== undefined && changes.displayname !== user.displayname) || (changes.avatarUrl !== undefined && changes.avatarUrl !== user.avatarUrl);
    if (profileChanged) {
      const profile = { displayname: changes.displayname !== undefined ? changes.displayname : user.displayname, avatarUrl: changes.avatarUrl !== undefined ? changes.avatarUrl : user.avatarUrl };
      await storage.transaction((tx) => tx.accounts.updateUser(userId, profile));
      // The user's membership events carry the profile (Client-Server API "Events on Change of Profile Information").
      if (!user.deactivated || reactivating) await rooms.profileChanged(userId, profile);
      logged.displayname = profile.displayname;
      logged.avatar_url = profile.avatarUrl;
    }
    if (changes.deactivated === true && !user.deactivated) {
      await deactivateAccount(userId);
      logged.deactivated = true;
    }
    return logged;
  }

  return {
    async list(query) {
      const { users, total } = await storage.accounts.listUsers({
        from: query.from,
        limit: query.limit,
        ...(query.name !== undefined ? { nameContains: query.name } : {}),
        ...(query.userId !== undefined ? { userIdContains: query.userId } : {}),
        includeGuests: query.guests,
        includeDeactivated: query.deactivated,
      });
      const next = query.from + users.length;
      // No next_token when nothing is left (Synapse Admin API "List Accounts").
      return { users: users.map(toAdminUser), ...(next < total && users.length > 0 ? { next_token: String(next) } : {}), total };
    },

    async get(userId) {
      return toAdminUser(await existingUser(userId));
    },

    async put(admin, userId, changes) {
      requireLocal(userId);
      let user = await storage.accounts.getUser(userId);
      const created = user === undefined;
      const creation = created ? await createAccount(userId, changes) : {};
      user ??= await existingUser(userId);
      const changed = { ...creation, ...(await modifyAccount(admin, user, changes, created)) };
      // One entry per request; a modification that changed nothing is not an action.
      if (created || Object.keys(changed).length > 0) logAdminAction(logger, admin, created ? "create_user" : "modify_user", { user_id: userId, ...changed });
      return { created, user: toAdminUser(await existingUser(userId)) };
    },

    async deactivate(admin, userId) {
      const user = await existingUser(userId);
      // Deactivating twice is harmless: the leaves and deletions find nothing left.
      await deactivateAccount(user.userId);
      logAdminAction(logger, admin, "deactivate_user", { user_id: userId });
    },

    async isAdmin(userId) {
      return (await existingUser(userId)).isAdmin;
    },

    async setAdmin(admin, userId, isAdmin) {
      const user = await existingUser(userId);
      if (!isAdmin && userId === admin) throw new MatrixError(Errcode.INVALID_PARAM, 400, "You may not demote yourself");
      if (user.isAdmin === isAdmin) return;
      await storage.transaction((tx) => tx.accounts.updateUser(userId, { isAdmin }));
      logAdminAction(logger, admin, "set_admin", { user_id: userId, admin: isAdmin });
    },

    async devices(userId) {
      const user = await existingUser(userId);
      const devices = await storage.accounts.listDevices(user.userId);
      return devices.map((d) => ({ device_id: d.deviceId, display_name: d.displayName, last_seen_ip: d.lastSeenIp, last_seen_ts: d.lastSeenTs, user_id: d.userId }));
    },

    async joinedRooms(userId) {
      // Any user the server knows rooms of, local or not (Synapse does the same).
      const memberships = await storage.events.getMembershipsOfUser(userId);
      return [...memberships].filter(([, membership]) => membership === "join").map(([roomId]) => roomId).sort();
    },
  };
}
