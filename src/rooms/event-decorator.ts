// Turns stored events into the client format with the `unsigned` fields clients rely on: `age`,
// `transaction_id` for the sending device, `redacted_because`, and for state events in timelines
// `prev_content`/`replaces_state` (the SDK uses them to describe membership changes).
import type { JsonObject } from "../core/json.js";
import type { Storage, StoredEvent } from "../storage/ports.js";
import { toClientEvent, type ClientEvent } from "./client-event.js";
import type { TransactionEchoes } from "./transaction-echoes.js";

export interface Viewer {
  userId: string;
  deviceId?: string;
}

export class EventDecorator {
  constructor(
    private readonly storage: Storage,
    private readonly echoes: TransactionEchoes,
    private readonly now: () => number,
  ) {}

  /** The common case (not redacted, no `prev_content` wanted) is answered without a read. */
  async decorate(events: StoredEvent[], viewer: Viewer, options: { prevContent: boolean } = { prevContent: true }): Promise<ClientEvent[]> {
    if (events.length === 0) return [];
    const now = this.now();
    const decorated: ClientEvent[] = new Array<ClientEvent>(events.length);
    const reads: Array<Promise<void>> = [];
    events.forEach((event, i) => {
      const unsigned: JsonObject = { age: Math.max(0, now - event.pdu.origin_server_ts) };
      if (viewer.deviceId !== undefined) {
        const txnId = this.echoes.transactionIdFor(event.eventId, viewer.userId, viewer.deviceId);
        if (txnId !== undefined) unsigned.transaction_id = txnId;
      }
      const replaces = options.prevContent && event.pdu.state_key !== undefined && event.roomSeq > 0;
      if (event.redactedBy === null && !replaces) decorated[i] = toClientEvent(event, unsigned);
      else reads.push(this.readUnsigned(event, unsigned, replaces).then(() => void (decorated[i] = toClientEvent(event, unsigned))));
    });
    if (reads.length > 0) await Promise.all(reads);
    return decorated;
  }

  /** `redacted_because`, and with `replaces` the state event's `prev_content`, from storage. */
  private async readUnsigned(event: StoredEvent, unsigned: JsonObject, replaces: boolean): Promise<void> {
    if (event.redactedBy !== null) {
      const redaction = await this.storage.events.getEvent(event.redactedBy);
      if (redaction) unsigned.redacted_because = toClientEvent(redaction) as unknown as JsonObject;
    }
    if (replaces) {
      const previous = await this.storage.events.getStateEventBefore(event.roomId, event.roomSeq, event.pdu.type, event.pdu.state_key ?? "");
      if (previous) {
        unsigned.prev_content = previous.pdu.content;
        unsigned.prev_sender = previous.pdu.sender;
        unsigned.replaces_state = previous.eventId;
      }
    }
  }
}
