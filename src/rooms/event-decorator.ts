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

  async decorate(events: StoredEvent[], viewer: Viewer, options: { prevContent: boolean } = { prevContent: true }): Promise<ClientEvent[]> {
    return Promise.all(events.map((event) => this.decorateOne(event, viewer, options.prevContent)));
  }

  private async decorateOne(event: StoredEvent, viewer: Viewer, prevContent: boolean): Promise<ClientEvent> {
    const unsigned: JsonObject = { age: Math.max(0, this.now() - event.pdu.origin_server_ts) };
    if (viewer.deviceId !== undefined) {
      const txnId = this.echoes.transactionIdFor(event.eventId, viewer.userId, viewer.deviceId);
      if (txnId !== undefined) unsigned.transaction_id = txnId;
    }
    if (event.redactedBy !== null) {
      const redaction = await this.storage.events.getEvent(event.redactedBy);
      if (redaction) unsigned.redacted_because = toClientEvent(redaction) as unknown as JsonObject;
    }
    if (prevContent && event.pdu.state_key !== undefined && event.roomSeq > 0) {
      const previous = await this.storage.events.getStateEventBefore(event.roomId, event.roomSeq, event.pdu.type, event.pdu.state_key);
      if (previous) {
        unsigned.prev_content = previous.pdu.content;
        unsigned.prev_sender = previous.pdu.sender;
        unsigned.replaces_state = previous.eventId;
      }
    }
    return toClientEvent(event, unsigned);
  }
}
