// Device management (Client-Server API "Device Management"). Deleting devices needs the user's
// password again through UIA, and deleting the requester's own device logs it out.
import { Errcode, MatrixError } from "../../core/errors.js";
import type { JsonObject } from "../../core/json.js";
import type { DeviceRow } from "../../storage/ports.js";
import type { ClientApiContext } from "../contracts.js";
import type { Requester } from "../http.js";
import { deleteDevices, notifyDeviceListChange } from "./device-lists.js";
import type { Sessions } from "./sessions.js";

export interface ClientDevice {
  device_id: string;
  display_name?: string;
  last_seen_ip?: string;
  last_seen_ts?: number;
}

export interface Devices {
  list(userId: string): Promise<ClientDevice[]>;
  get(userId: string, deviceId: string): Promise<ClientDevice>;
  rename(userId: string, deviceId: string, displayName: string | null): Promise<void>;
  delete(requester: Requester, deviceIds: string[], auth: JsonObject | undefined): Promise<void>;
}

function toClientDevice(device: DeviceRow): ClientDevice {
  return {
    device_id: device.deviceId,
    ...(device.displayName !== null ? { display_name: device.displayName } : {}),
    ...(device.lastSeenIp !== null ? { last_seen_ip: device.lastSeenIp } : {}),
    ...(device.lastSeenTs !== null ? { last_seen_ts: device.lastSeenTs } : {}),
  };
}

export function createDevices(ctx: ClientApiContext, sessions: Sessions): Devices {
  return {
    async list(userId) {
      return (await ctx.storage.accounts.listDevices(userId)).map(toClientDevice);
    },

    async get(userId, deviceId) {
      const device = await ctx.storage.accounts.getDevice(userId, deviceId);
      if (!device) throw new MatrixError(Errcode.NOT_FOUND, 404, "Device not found");
      return toClientDevice(device);
    },

    async rename(userId, deviceId, displayName) {
      const device = await ctx.storage.accounts.getDevice(userId, deviceId);
      if (!device) throw new MatrixError(Errcode.NOT_FOUND, 404, "Device not found");
      await ctx.storage.transaction((tx) => tx.accounts.updateDevice(userId, deviceId, { displayName }));
      // Other users see device display names in key queries: a device-list change.
      const pos = await ctx.streams.withPositions(1, async ([streamPos]) => {
        ctx.notifier.recordChange("device_lists", [userId], streamPos!);
        await ctx.storage.transaction((tx) => tx.keys.markDeviceListChanged(userId, streamPos!));
        return streamPos!;
      });
      await notifyDeviceListChange(ctx, userId, pos);
    },

    async delete(requester, deviceIds, auth) {
      await sessions.requirePassword(requester, "delete_devices", auth);
      const existing = new Set((await ctx.storage.accounts.listDevices(requester.userId)).map((d) => d.deviceId));
      const deleted = deviceIds.filter((id) => existing.has(id));
      // deleteDevices announces the deletions to other servers.
      await deleteDevices(ctx, requester.userId, deleted);
    },
  };
}
