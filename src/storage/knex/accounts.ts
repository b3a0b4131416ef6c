// Users, devices and access tokens.
import type { Knex } from "knex";
import type { AccessRevocation, AccessTokenRow, AccountsRepo, DeviceRow, UserRow } from "../ports.js";
import { atomically, chunk, containsPattern, retireStreamPos, toBool, toNumber, toNumberOrNull } from "./db.js";

interface UserRecord {
  user_id: string;
  localpart: string;
  password_hash: string | null;
  is_admin: unknown;
  is_guest: unknown;
  deactivated: unknown;
  displayname: string | null;
  avatar_url: string | null;
  created_ts: unknown;
  appservice_id: string | null;
}

interface DeviceRecord {
  user_id: string;
  device_id: string;
  display_name: string | null;
  last_seen_ts: unknown;
  last_seen_ip: string | null;
  created_ts: unknown;
}

interface AccessTokenRecord {
  token_hash: string;
  user_id: string;
  device_id: string;
  created_ts: unknown;
  expires_ts: unknown;
}

function toUserRow(r: UserRecord): UserRow {
  return {
    userId: r.user_id,
    localpart: r.localpart,
    passwordHash: r.password_hash,
    isAdmin: toBool(r.is_admin),
    isGuest: toBool(r.is_guest),
    deactivated: toBool(r.deactivated),
    displayname: r.displayname,
    avatarUrl: r.avatar_url,
    createdTs: toNumber(r.created_ts),
    appserviceId: r.appservice_id,
  };
}

function toDeviceRow(r: DeviceRecord): DeviceRow {
  return {
    userId: r.user_id,
    deviceId: r.device_id,
    displayName: r.display_name,
    lastSeenTs: toNumberOrNull(r.last_seen_ts),
    lastSeenIp: r.last_seen_ip,
    createdTs: toNumber(r.created_ts),
  };
}

function toAccessTokenRow(r: AccessTokenRecord): AccessTokenRow {
  return {
    tokenHash: r.token_hash,
    userId: r.user_id,
    deviceId: r.device_id,
    createdTs: toNumber(r.created_ts),
    expiresTs: toNumberOrNull(r.expires_ts),
  };
}

const userColumns = {
  passwordHash: "password_hash",
  isAdmin: "is_admin",
  isGuest: "is_guest",
  deactivated: "deactivated",
  displayname: "displayname",
  avatarUrl: "avatar_url",
  appserviceId: "appservice_id",
} as const;

/** Deletes the devices with their access tokens, keys and to-device inbox, atomically. */
async function deleteDevicesAndTheirData(knex: Knex, userId: string, deviceIds: string[]): Promise<void> {
  await atomically(knex, async (trx) => {
    for (const ids of chunk(deviceIds)) {
      const inbox = (await trx("to_device").where("user_id", userId).whereIn("device_id", ids).max({ pos: "stream_pos" }).first()) as
        | { pos: unknown }
        | undefined;
      if (inbox?.pos !== null && inbox?.pos !== undefined) await retireStreamPos(trx, toNumber(inbox.pos));
      for (const table of ["to_device", "device_keys", "one_time_keys", "access_tokens", "devices"]) {
        await trx(table).where("user_id", userId).whereIn("device_id", ids).del();
      }
    }
  });
}

/** The user flags that decide what an access token may do (see AccessRevocation). */
const accessFlags = ["isAdmin", "isGuest", "deactivated"] as const;

/** `revoked` is told about every write that may take access away (Storage.onAccessRevoked). */
export function createAccountsRepo(knex: Knex, revoked: (revocation: AccessRevocation) => void): AccountsRepo {
  return {
    async createUser(user) {
      await knex("users").insert({
        user_id: user.userId,
        localpart: user.localpart,
        password_hash: user.passwordHash,
        is_admin: user.isAdmin,
        is_guest: user.isGuest,
        deactivated: user.deactivated,
        displayname: user.displayname,
        avatar_url: user.avatarUrl,
        created_ts: user.createdTs,
        appservice_id: user.appserviceId,
      });
    },

    async getUser(userId) {
      const row = (await knex("users").where("user_id", userId).first()) as UserRecord | undefined;
      return row && toUserRow(row);
    },

    async getUserByLocalpart(localpart) {
      const row = (await knex("users").where("localpart", localpart).first()) as UserRecord | undefined;
      return row && toUserRow(row);
    },

    async updateUser(userId, changes) {
      const update: Record<string, unknown> = {};
      for (const [field, column] of Object.entries(userColumns)) {
        const value = changes[field as keyof typeof userColumns];
        if (value !== undefined) update[column] = value;
      }
      if (Object.keys(update).length === 0) return;
      try {
        await knex("users").where("user_id", userId).update(update);
      } finally {
        if (accessFlags.some((flag) => changes[flag] !== undefined)) revoked({ userId });
      }
    },

    async listUsers({ from = 0, limit, nameContains, userIdContains, includeGuests = true, includeDeactivated = true }) {
      const filtered = knex("users").where((q) => {
        if (!includeGuests) q.where("is_guest", false);
        if (!includeDeactivated) q.where("deactivated", false);
        if (nameContains !== undefined && nameContains !== "") {
          const pattern = containsPattern(nameContains);
          q.whereRaw("(LOWER(user_id) LIKE ? ESCAPE '\\' OR LOWER(COALESCE(displayname, '')) LIKE ? ESCAPE '\\')", [pattern, pattern]);
        }
        if (userIdContains !== undefined && userIdContains !== "") q.whereRaw("LOWER(user_id) LIKE ? ESCAPE '\\'", [containsPattern(userIdContains)]);
      });
      const countRow = (await filtered.clone().count({ n: "*" }).first()) as { n: unknown } | undefined;
      const rows = (await filtered.clone().select("*").orderBy("user_id").offset(from).limit(limit)) as UserRecord[];
      return { users: rows.map(toUserRow), total: countRow ? toNumber(countRow.n) : 0 };
    },

    async searchUsers(term, limit) {
      // LOWER folds ASCII only on SQLite; the user directory is best-effort for other scripts.
      const pattern = containsPattern(term);
      const rows = (await knex("users")
        .where("deactivated", false)
        .whereRaw("(LOWER(user_id) LIKE ? ESCAPE '\\' OR LOWER(COALESCE(displayname, '')) LIKE ? ESCAPE '\\')", [pattern, pattern])
        .orderBy("user_id")
        .limit(limit)) as UserRecord[];
      return rows.map(toUserRow);
    },

    async upsertDevice(device) {
      await knex("devices")
        .insert({
          user_id: device.userId,
          device_id: device.deviceId,
          display_name: device.displayName,
          last_seen_ts: device.lastSeenTs,
          last_seen_ip: device.lastSeenIp,
          created_ts: device.createdTs,
        })
        .onConflict(["user_id", "device_id"])
        .merge(["display_name", "last_seen_ts", "last_seen_ip"]);
    },

    async getDevice(userId, deviceId) {
      const row = (await knex("devices").where({ user_id: userId, device_id: deviceId }).first()) as DeviceRecord | undefined;
      return row && toDeviceRow(row);
    },

    async listDevices(userId) {
      const rows = (await knex("devices").where("user_id", userId).orderBy("device_id")) as DeviceRecord[];
      return rows.map(toDeviceRow);
    },

    async updateDevice(userId, deviceId, changes) {
      const update: Record<string, unknown> = {};
      if (changes.displayName !== undefined) update.display_name = changes.displayName;
      if (changes.lastSeenTs !== undefined) update.last_seen_ts = changes.lastSeenTs;
      if (changes.lastSeenIp !== undefined) update.last_seen_ip = changes.lastSeenIp;
      if (Object.keys(update).length > 0) await knex("devices").where({ user_id: userId, device_id: deviceId }).update(update);
    },

    async deleteDevices(userId, deviceIds) {
      if (deviceIds.length === 0) return;
      try {
        await deleteDevicesAndTheirData(knex, userId, deviceIds);
      } finally {
        revoked({ userId });
      }
    },

    async createAccessToken(token) {
      await knex("access_tokens").insert({
        token_hash: token.tokenHash,
        user_id: token.userId,
        device_id: token.deviceId,
        created_ts: token.createdTs,
        expires_ts: token.expiresTs,
      });
    },

    async getAccessToken(tokenHash) {
      const row = (await knex("access_tokens").where("token_hash", tokenHash).first()) as AccessTokenRecord | undefined;
      return row && toAccessTokenRow(row);
    },

    async deleteAccessToken(tokenHash) {
      try {
        await knex("access_tokens").where("token_hash", tokenHash).del();
      } finally {
        revoked({ tokenHash });
      }
    },

    async deleteAccessTokensOfUser(userId) {
      try {
        await knex("access_tokens").where("user_id", userId).del();
      } finally {
        revoked({ userId });
      }
    },
  };
}
