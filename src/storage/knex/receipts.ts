// Receipts: one row per (room, user, receipt type, thread), replaced by each newer receipt.
import type { Knex } from "knex";
import type { ReceiptRow, ReceiptsRepo } from "../ports.js";
import { chunk, toNumber } from "./db.js";

const unthreaded = "";

interface ReceiptRecord {
  room_id: string;
  user_id: string;
  receipt_type: string;
  thread_id: string;
  event_id: string;
  ts: unknown;
  stream_pos: unknown;
}

function toReceiptRow(r: ReceiptRecord): ReceiptRow {
  return {
    roomId: r.room_id,
    userId: r.user_id,
    receiptType: r.receipt_type,
    threadId: r.thread_id === unthreaded ? null : r.thread_id,
    eventId: r.event_id,
    ts: toNumber(r.ts),
    streamPos: toNumber(r.stream_pos),
  };
}

export function createReceiptsRepo(knex: Knex): ReceiptsRepo {
  return {
    async put(receipt) {
      await knex("receipts")
        .insert({
          room_id: receipt.roomId,
          user_id: receipt.userId,
          receipt_type: receipt.receiptType,
          thread_id: receipt.threadId ?? unthreaded,
          event_id: receipt.eventId,
          ts: receipt.ts,
          stream_pos: receipt.streamPos,
        })
        .onConflict(["room_id", "user_id", "receipt_type", "thread_id"])
        .merge(["event_id", "ts", "stream_pos"]);
    },

    async getChanged(roomIds, fromPos, toPos) {
      const receipts: ReceiptRow[] = [];
      for (const ids of chunk(roomIds)) {
        const rows = (await knex("receipts")
          .whereIn("room_id", ids)
          .where("stream_pos", ">", fromPos)
          .where("stream_pos", "<=", toPos)) as ReceiptRecord[];
        receipts.push(...rows.map(toReceiptRow));
      }
      return receipts.sort((a, b) => a.streamPos - b.streamPos);
    },
  };
}
