// The MLS overlay's group records (ports.ts MlsRepo): one row per encrypted room.
import type { Knex } from "knex";
import type { MlsGroupRow, MlsRepo } from "../ports.js";
import { toNumber } from "./db.js";

function parseDevices(json: string): MlsGroupRow["devices"] {
  const parsed: unknown = JSON.parse(json);
  if (!Array.isArray(parsed)) return [];
  return parsed.filter((d): d is [string, string] => Array.isArray(d) && typeof d[0] === "string" && typeof d[1] === "string").map(([userId, deviceId]) => ({ userId, deviceId }));
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
      const devices = JSON.stringify(row.devices.map((d) => [d.userId, d.deviceId]));
      await knex("mls_groups")
        .insert({ room_id: row.roomId, epoch: row.epoch, group_info: row.groupInfo, commit_event_id: row.commitEventId, devices })
        .onConflict("room_id")
        .merge(["epoch", "group_info", "commit_event_id", "devices"]);
    },
  };
}
