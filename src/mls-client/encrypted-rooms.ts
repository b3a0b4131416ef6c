// A device's encrypted rooms: one RoomGroup per room, fed by /sync in the hub's order (contract
// sections 4 and 5). Welcomes join groups; commits of other devices are applied; messages are
// decrypted; timeline events that arrive before this device's Welcome wait for it; a limited
// timeline is completed with /messages so that no commit is skipped.
import type { ClientEvent } from "./client-server-api.js";
import type { DecryptedEvent, ParsedWelcome } from "./event-content.js";
import type { MlsDevice } from "./device.js";
import { RoomGroup } from "./room-group.js";
import { classifyRoomEvent, type RoomBatch, type RoomItem, type SyncReading } from "./sync-reading.js";

export interface ReceivedMessage {
  roomId: string;
  eventId: string;
  sender: string;
  /** The decrypted event; undefined if this device could not decrypt it (see `error`). */
  event: DecryptedEvent | undefined;
  /** Sent by this device (known from sending; MLS senders cannot decrypt their own messages). */
  own: boolean;
  error?: string;
}

export interface SyncResult {
  messages: ReceivedMessage[];
  /** Rooms joined from a Welcome in this sync, with the commit that added this device. */
  joined: Array<{ roomId: string; commitEventId: string }>;
  /** Other devices' commits applied, in order. */
  commits: Array<{ roomId: string; eventId: string; epoch: bigint }>;
  /** Rooms whose group this device was removed from. */
  removedFrom: string[];
  /** `{roomId: {userId: [deviceId]}}` from the sync's `org.bobbin.mls.departed_devices`. */
  departedDevices: Record<string, Record<string, string[]>>;
  /** Events or Welcomes that could not be used, with the reason. */
  problems: string[];
}

export function emptySyncResult(): SyncResult {
  return { messages: [], joined: [], commits: [], removedFrom: [], departedDevices: {}, problems: [] };
}

export function mergeSyncResults(target: SyncResult, more: SyncResult): void {
  target.messages.push(...more.messages);
  target.joined.push(...more.joined);
  target.commits.push(...more.commits);
  target.removedFrom.push(...more.removedFrom);
  Object.assign(target.departedDevices, more.departedDevices);
  target.problems.push(...more.problems);
}

/** `GET /rooms/{roomId}/messages` backwards: the events before `from`, newest first. */
export type MessagesBefore = (roomId: string, from: string, limit: number) => Promise<{ chunk: ClientEvent[]; end?: string }>;

const BACKFILL_PAGE = 100;
const BACKFILL_MAX_PAGES = 20;

export class EncryptedRooms {
  private readonly groups = new Map<string, RoomGroup>();
  /** Timeline items of rooms this device has no group for yet (a Welcome may still come). */
  private readonly waiting = new Map<string, RoomItem[]>();
  /** Plaintexts of messages this device sent, by event ID, until the timeline shows them. */
  private readonly ownSent = new Map<string, DecryptedEvent>();
  private readonly lastEventIds = new Map<string, string>();

  constructor(
    private readonly device: MlsDevice,
    private readonly messagesBefore: MessagesBefore,
  ) {}

  group(roomId: string): RoomGroup | undefined {
    return this.groups.get(roomId);
  }

  /** A group this device created or joined by itself (external commit). */
  add(group: RoomGroup): void {
    this.groups.set(group.roomId, group);
    this.waiting.delete(group.roomId);
  }

  /** Remembers the plaintext of a message this device sent as `eventId`. */
  sent(eventId: string, event: DecryptedEvent): void {
    this.ownSent.set(eventId, event);
  }

  /** Applies one /sync answer: Welcomes first, then each room's timeline in order. */
  async apply(reading: SyncReading): Promise<SyncResult> {
    const result = emptySyncResult();
    for (const welcome of reading.welcomes) await this.joinFromWelcome(welcome, result);
    for (const batch of reading.rooms) {
      const events = await this.withBackfill(batch);
      for (const event of events) await this.processRoomItem(batch.roomId, classifyRoomEvent(event), result);
      const last = events.at(-1)?.event_id;
      if (last) this.lastEventIds.set(batch.roomId, last);
      if (Object.keys(batch.departedDevices).length > 0) result.departedDevices[batch.roomId] = batch.departedDevices;
    }
    return result;
  }

  /** A limited timeline skipped events since the last sync: fetch them with /messages. */
  private async withBackfill(batch: RoomBatch): Promise<ClientEvent[]> {
    const lastSeen = this.lastEventIds.get(batch.roomId);
    if (!batch.limited || !lastSeen || !batch.prevBatch || batch.events.some((e) => e.event_id === lastSeen)) {
      return lastSeen ? afterEvent(batch.events, lastSeen) : batch.events;
    }
    const missed: ClientEvent[] = [];
    let from: string | undefined = batch.prevBatch;
    for (let page = 0; page < BACKFILL_MAX_PAGES && from; page++) {
      const { chunk, end } = await this.messagesBefore(batch.roomId, from, BACKFILL_PAGE);
      const stop = chunk.findIndex((e) => e.event_id === lastSeen);
      missed.push(...(stop >= 0 ? chunk.slice(0, stop) : chunk));
      if (stop >= 0 || chunk.length === 0) break;
      from = end;
    }
    return [...missed.reverse(), ...batch.events];
  }

  private async joinFromWelcome(item: ParsedWelcome, result: SyncResult): Promise<void> {
    const own = this.device.keyPackages.findByRef(item.welcome.welcome.secrets.map((s) => s.newMember));
    if (!own) {
      result.problems.push(`a Welcome (commit ${item.commitEventId}) names none of this device's KeyPackages`);
      return;
    }
    let group: RoomGroup;
    try {
      group = await RoomGroup.joinFromWelcome(item.welcome, own, item.commitEventId, this.device.cs);
    } catch (error) {
      result.problems.push(`a Welcome (commit ${item.commitEventId}) could not be joined: ${String(error)}`);
      return;
    }
    this.device.keyPackages.consume(own);
    const existing = this.groups.get(group.roomId);
    if (existing?.active && existing.epoch >= group.epoch) return;
    this.groups.set(group.roomId, group);
    result.joined.push({ roomId: group.roomId, commitEventId: item.commitEventId });
    // Timeline events that arrived before the Welcome: older epochs are skipped, the rest applies.
    const waiting = this.waiting.get(group.roomId) ?? [];
    this.waiting.delete(group.roomId);
    for (const waitingItem of waiting) await this.processRoomItem(group.roomId, waitingItem, result);
  }

  private async processRoomItem(roomId: string, item: RoomItem, result: SyncResult): Promise<void> {
    if (item.kind === "other") return;
    const group = this.groups.get(roomId);
    if (!group) {
      if (item.kind !== "malformed") this.waiting.set(roomId, [...(this.waiting.get(roomId) ?? []), item]);
      return;
    }
    if (item.kind === "malformed") {
      result.problems.push(`${roomId}: ${item.type} ${item.eventId} does not parse`);
      return;
    }
    if (item.kind === "commit") {
      try {
        const outcome = await group.processCommit(item.commit, item.eventId);
        if (outcome === "applied") result.commits.push({ roomId, eventId: item.eventId, epoch: group.epoch });
        if (outcome === "gap") result.problems.push(`${roomId}: commit ${item.eventId} is for epoch ${item.commit.epoch}, the group is at ${group.epoch}`);
      } catch (error) {
        result.problems.push(`${roomId}: commit ${item.eventId} could not be processed: ${String(error)}`);
      }
      if (!group.active) {
        this.groups.delete(roomId);
        result.removedFrom.push(roomId);
      }
      return;
    }
    const own = this.ownSent.get(item.eventId);
    if (own) {
      this.ownSent.delete(item.eventId);
      result.messages.push({ roomId, eventId: item.eventId, sender: item.sender, event: own, own: true });
      return;
    }
    const message: ReceivedMessage = { roomId, eventId: item.eventId, sender: item.sender, event: undefined, own: false };
    try {
      message.event = await group.decrypt(item.encrypted.message);
      if (!message.event) message.error = "the plaintext is not an event";
    } catch (error) {
      message.error = String(error);
    }
    result.messages.push(message);
  }
}

/** The events after `eventId` (all of them if it is not among them). */
function afterEvent(events: ClientEvent[], eventId: string): ClientEvent[] {
  const index = events.findIndex((e) => e.event_id === eventId);
  return index >= 0 ? events.slice(index + 1) : events;
}
