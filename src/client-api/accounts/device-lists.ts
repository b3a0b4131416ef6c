// Device-list changes: a user's devices or device keys changed, so every user who shares a room
// with them (and the user's own other devices) must learn it through `/sync` and `/keys/changes`.
import type { Storage } from "../../storage/ports.js";
import type { ClientApiContext } from "../contracts.js";

/** The user and every user who currently shares a joined room with them. */
export async function usersSharingRoomsWith(storage: Storage, userId: string): Promise<Set<string>> {
  const users = new Set<string>([userId]);
  const memberships = await storage.events.getMembershipsOfUser(userId);
  for (const [roomId, membership] of memberships) {
    if (membership !== "join") continue;
    for (const member of await storage.events.getMembers(roomId, "join")) users.add(member);
  }
  return users;
}

/** Wakes the syncs of everyone who should see `userId`'s device-list change at `streamPos`. */
export async function notifyDeviceListChange(ctx: ClientApiContext, userId: string, streamPos: number): Promise<void> {
  ctx.notifier.notifyUsers(await usersSharingRoomsWith(ctx.storage, userId), streamPos);
}

/**
 * Deletes devices (their tokens, keys and inboxes with them) and reports the device-list change,
 * also to the servers that share a room with the user (Server-Server API "Device Management": a
 * deleted device, e.g. a logout, is an `m.device_list_update`; LM draft "Device Info Publishing").
 */
export async function deleteDevices(ctx: ClientApiContext, userId: string, deviceIds: string[]): Promise<void> {
  if (deviceIds.length === 0) return;
  const pos = await ctx.streams.withPositions(1, async ([streamPos]) => {
    ctx.notifier.recordChange("device_lists", [userId], streamPos!);
    await ctx.storage.transaction(async (tx) => {
      await tx.accounts.deleteDevices(userId, deviceIds);
      await tx.keys.markDeviceListChanged(userId, streamPos!);
    });
    return streamPos!;
  });
  await notifyDeviceListChange(ctx, userId, pos);
  for (const deviceId of deviceIds) await ctx.remoteEdus?.deviceListChanged(userId, deviceId, { deleted: true });
}
