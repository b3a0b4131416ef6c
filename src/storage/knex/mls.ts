// The MLS overlay's records (ports.ts MlsRepo): one group row per encrypted room, the commit event
// that started each epoch, and Welcomes waiting for delivery.
import type { Knex } from "knex";
import type { MlsGroupRow, MlsPendingWelcomeRow, MlsRepo } from "../ports.js";
import { toNumber } from "./db.js";

function parseDevices(json: string): MlsGroupRow["devices"] {
  const parsed: unknown = JSON.parse(json);
  if (!Array.isArray(parsed)) return [];
  return parsed.filter((d): d is [string, string] => Array.isArray(d) && typeof d[0] === "string" && typeof d[1] === "string").map(([userId, deviceId]) => ({ userId, deviceId }));
}

const encodeDevices = (devices: MlsGroupRow["devices"]): string => JSON.stringify(devices.map((d) => [d.userId, d.deviceId]));

interface WelcomeRecord {
  room_id: string;
  commit_hash: string;
  epoch: unknown;
  sender_user: string;
  sender_device: string;
  welcome: string;
  targets: string;
  event_id: string | null;
  created_ts: unknown;
}

function welcomeOf(row: WelcomeRecord): MlsPendingWelcomeRow {
  return {
    roomId: row.room_id,
    commitHash: row.commit_hash,
    epoch: toNumber(row.epoch),
    senderUser: row.sender_user,
    senderDevice: row.sender_device,
    welcome: row.welcome,
    targets: parseDevices(row.targets),
    eventId: row.event_id,
    createdTs: toNumber(row.created_ts),
  };
}

export function createMlsRepo(knex: Knex): MlsRepo {
  return {
    async getGroup(roomId) {
      const row = (await knex("mls_groups").select("epoch", "group_info", "commit_event_id", "devices").where({ room_id: roomId }).first()) as
        | { epoch: unknown; group_info: string; commit_event_id: string; devices: string }
        | undefined;
      if (!row) return undefined;
      return { roomId, epoch: toNumber(row.epoch), groupInfo: row.group_info, commitEventId: row.commit_event_id, devices: parseDevices(row.devices) };
    },

    async putGroup(row) {
      await knex("mls_groups")
        .insert({ room_id: row.roomId, epoch: row.epoch, group_info: row.groupInfo, commit_event_id: row.commitEventId, devices: encodeDevices(row.devices) })
        .onConflict("room_id")
        .merge(["epoch", "group_info", "commit_event_id", "devices"]);
      await knex("mls_epochs").insert({ room_id: row.roomId, epoch: row.epoch, commit_event_id: row.commitEventId }).onConflict(["room_id", "epoch"]).merge(["commit_event_id"]);
    },

    async getEpochCommit(roomId, epoch) {
      const row = (await knex("mls_epochs").select("commit_event_id").where({ room_id: roomId, epoch }).first()) as { commit_event_id: string } | undefined;
      return row?.commit_event_id;
    },

    async addPendingWelcome(row) {
      await knex("mls_pending_welcomes")
        .insert({
          room_id: row.roomId,
          commit_hash: row.commitHash,
          epoch: row.epoch,
          sender_user: row.senderUser,
          sender_device: row.senderDevice,
          welcome: row.welcome,
          targets: encodeDevices(row.targets),
          event_id: row.eventId,
          created_ts: row.createdTs,
        })
        .onConflict(["room_id", "commit_hash"])
        .ignore();
    },

    async bindPendingWelcome(roomId, commitHash, eventId) {
      const updated = await knex("mls_pending_welcomes").where({ room_id: roomId, commit_hash: commitHash }).whereNull("event_id").update({ event_id: eventId });
      return updated > 0;
    },

    async getPendingWelcome(roomId, commitHash) {
      const row = (await knex("mls_pending_welcomes").select("*").where({ room_id: roomId, commit_hash: commitHash }).first()) as WelcomeRecord | undefined;
      return row ? welcomeOf(row) : undefined;
    },

    async listPendingWelcomes(limit) {
      const rows = (await knex("mls_pending_welcomes").select("*").orderBy("created_ts", "asc").limit(limit)) as WelcomeRecord[];
      return rows.map(welcomeOf);
    },

    async deletePendingWelcome(roomId, commitHash) {
      await knex("mls_pending_welcomes").where({ room_id: roomId, commit_hash: commitHash }).delete();
    },
  };
}
