// To-device inboxes: messages wait per device until a sync past their position acknowledges them.
import type { Knex } from "knex";
import type { ToDeviceMessage, ToDeviceRepo } from "../ports.js";
import { atomically, chunk, parseJsonObject, retireStreamPos, toNumber } from "./db.js";

interface ToDeviceRecord {
  stream_pos: unknown;
  user_id: string;
  device_id: string;
  sender: string;
  type: string;
  content: string;
}

export function createToDeviceRepo(knex: Knex): ToDeviceRepo {
  return {
    async add(messages) {
      for (const batch of chunk(messages, 200)) {
        await knex("to_device").insert(
          batch.map((m) => ({
            stream_pos: m.streamPos,
            user_id: m.userId,
            device_id: m.deviceId,
            sender: m.sender,
            type: m.type,
            content: JSON.stringify(m.content),
          })),
        );
      }
    },

    async getPending(userId, deviceId, toPos, limit) {
      const rows = (await knex("to_device")
        .select("stream_pos", "user_id", "device_id", "sender", "type", "content")
        .where({ user_id: userId, device_id: deviceId })
        .where("stream_pos", "<=", toPos)
        .orderBy([{ column: "stream_pos" }, { column: "id" }])
        .limit(limit)) as ToDeviceRecord[];
      return rows.map(
        (r): ToDeviceMessage => ({
          streamPos: toNumber(r.stream_pos),
          userId: r.user_id,
          deviceId: r.device_id,
          sender: r.sender,
          type: r.type,
          content: parseJsonObject(r.content),
        }),
      );
    },

    async deleteUpTo(userId, deviceId, streamPos) {
      await atomically(knex, async (trx) => {
        const acknowledged = trx("to_device").where({ user_id: userId, device_id: deviceId }).where("stream_pos", "<=", streamPos);
        // Retire the highest position actually deleted, not the client's token: a bogus token must
        // not push the server's stream forward.
        const highest = (await acknowledged.clone().max({ pos: "stream_pos" }).first()) as { pos: unknown } | undefined;
        if (highest?.pos === null || highest?.pos === undefined) return;
        await acknowledged.clone().del();
        await retireStreamPos(trx, toNumber(highest.pos));
      });
    },
  };
}
