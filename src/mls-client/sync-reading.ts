// Reading what a `/sync` answer holds for MLS (contract sections 4 and 5): Welcomes in to-device
// messages, `m.mls.commit` and `m.room.encrypted` events in each joined room's timeline (in the
// hub's order), and the devices of departed users still in each group. Pure.
import { COMMIT_EVENT_TYPE, DEPARTED_DEVICES_SYNC_FIELD, ENCRYPTED_EVENT_TYPE } from "./algorithms.js";
import type { ClientEvent, SyncResponse } from "./client-server-api.js";
import { parseCommitContent, parseEncryptedContent, parseWelcomeContent, type ParsedCommit, type ParsedEncrypted, type ParsedWelcome } from "./event-content.js";

export type RoomItem =
  | { kind: "commit"; eventId: string; sender: string; commit: ParsedCommit }
  | { kind: "encrypted"; eventId: string; sender: string; encrypted: ParsedEncrypted }
  /** An MLS event whose content does not parse (a server that validates never appends one). */
  | { kind: "malformed"; eventId: string; sender: string; type: string }
  | { kind: "other"; event: ClientEvent };

export interface RoomBatch {
  roomId: string;
  events: ClientEvent[];
  /** The timeline skipped events before these (fetch them from `prevBatch`). */
  limited: boolean;
  prevBatch: string | undefined;
  /** `{userId: [deviceId]}`: devices of users who left, still in the group. */
  departedDevices: Record<string, string[]>;
}

export interface WelcomeItem extends ParsedWelcome {
  sender: string;
}

export interface SyncReading {
  nextBatch: string;
  welcomes: WelcomeItem[];
  rooms: RoomBatch[];
  keyCounts: Record<string, number> | undefined;
}

/** The sync filter the client asks for: long timelines, so that commits are rarely cut off. */
export const SYNC_FILTER = { room: { timeline: { limit: 500 } } };

export function readSync(response: SyncResponse): SyncReading {
  const welcomes: WelcomeItem[] = [];
  for (const event of response.to_device?.events ?? []) {
    if (event.type !== ENCRYPTED_EVENT_TYPE) continue;
    const welcome = parseWelcomeContent(event.content);
    if (welcome) welcomes.push({ ...welcome, sender: event.sender });
  }
  const rooms: RoomBatch[] = Object.entries(response.rooms?.join ?? {}).map(([roomId, room]) => ({
    roomId,
    events: room.timeline?.events ?? [],
    limited: room.timeline?.limited === true,
    prevBatch: room.timeline?.prev_batch,
    departedDevices: readDeparted(room[DEPARTED_DEVICES_SYNC_FIELD]),
  }));
  return { nextBatch: response.next_batch, welcomes, rooms, keyCounts: response.device_one_time_keys_count };
}

function readDeparted(value: unknown): Record<string, string[]> {
  if (typeof value !== "object" || value === null) return {};
  const departed: Record<string, string[]> = {};
  for (const [userId, devices] of Object.entries(value as Record<string, unknown>)) {
    if (Array.isArray(devices)) departed[userId] = devices.filter((d): d is string => typeof d === "string");
  }
  return departed;
}

/** What a timeline event is to the MLS client. */
export function classifyRoomEvent(event: ClientEvent): RoomItem {
  const eventId = event.event_id ?? "";
  if (event.type === COMMIT_EVENT_TYPE && event.state_key === undefined) {
    const commit = parseCommitContent(event.content);
    return commit ? { kind: "commit", eventId, sender: event.sender, commit } : { kind: "malformed", eventId, sender: event.sender, type: event.type };
  }
  if (event.type === ENCRYPTED_EVENT_TYPE && event.state_key === undefined) {
    const encrypted = parseEncryptedContent(event.content);
    return encrypted ? { kind: "encrypted", eventId, sender: event.sender, encrypted } : { kind: "malformed", eventId, sender: event.sender, type: event.type };
  }
  return { kind: "other", event };
}
