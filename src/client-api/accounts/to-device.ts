// Send-to-device messaging (Client-Server API "Send-to-Device messaging"). Messages to local
// devices go to their inboxes, one stream position each; a retried transaction ID is answered
// without sending again. Messages for users of other servers become EDUs (ctx.remoteEdus).
import type { Logger } from "pino";
import { serverNameOf } from "../../core/identifiers.js";
import type { JsonObject } from "../../core/json.js";
import type { ToDeviceMessage } from "../../storage/ports.js";
import type { ClientApiContext } from "../contracts.js";
import type { Requester } from "../http.js";

export interface ToDevice {
  send(requester: Requester, eventType: string, txnId: string, messages: Map<string, Map<string, JsonObject>>, log: Logger): Promise<void>;
}

/** Transaction IDs share ClientTxnsRepo with room sends; a prefix keeps the two apart. */
const TXN_PREFIX = "m.send_to_device:";
/** What ClientTxnsRepo records for a completed to-device transaction (it stores an event ID slot). */
const TXN_DONE = "sent";

export function createToDevice(ctx: ClientApiContext): ToDevice {
  const { storage } = ctx;
  return {
    async send(requester, eventType, txnId, messages, log) {
      const txnKey = TXN_PREFIX + txnId;
      if ((await storage.clientTxns.get(requester.userId, requester.deviceId, txnKey)) !== undefined) return;

      const targets: Array<{ userId: string; deviceId: string; content: JsonObject }> = [];
      const remote = new Map<string, Map<string, JsonObject>>();
      for (const [userId, devices] of messages) {
        if (serverNameOf(userId) !== ctx.serverName) {
          if (ctx.remoteEdus) remote.set(userId, devices);
          else log.info({ user_id: userId, type: eventType }, "to-device message for a remote user dropped: federation not available");
          continue;
        }
        const known = await storage.accounts.listDevices(userId);
        const knownIds = new Set(known.map((d) => d.deviceId));
        for (const [deviceId, content] of devices) {
          // `*` addresses every device of the user.
          const ids = deviceId === "*" ? [...knownIds] : knownIds.has(deviceId) ? [deviceId] : [];
          for (const id of ids) targets.push({ userId, deviceId: id, content });
        }
      }

      // Queued before the transaction ID is recorded: a failure here fails the request, and its retry sends again.
      if (remote.size > 0) await ctx.remoteEdus?.toDevice(requester.userId, eventType, remote);
      const lastPos = await ctx.streams.withPositions(targets.length, async (positions) => {
        targets.forEach((t, i) => ctx.notifier.recordChange("to_device", [t.userId], positions[i]!));
        const rows: ToDeviceMessage[] = targets.map((t, i) => ({
          streamPos: positions[i]!,
          userId: t.userId,
          deviceId: t.deviceId,
          sender: requester.userId,
          type: eventType,
          content: t.content,
        }));
        await storage.transaction(async (tx) => {
          if (rows.length > 0) await tx.toDevice.add(rows);
          await tx.clientTxns.put(requester.userId, requester.deviceId, txnKey, TXN_DONE, ctx.now());
        });
        return positions.length > 0 ? positions[positions.length - 1]! : undefined;
      });
      if (lastPos !== undefined) ctx.notifier.notifyUsers(new Set(targets.map((t) => t.userId)), lastPos);
    },
  };
}
