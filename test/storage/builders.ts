// One-line builders for the storage suite: rooms, users and PDUs with the fields storage reads.
// Hashes and signatures are placeholders: storage never checks them.
import type { Pdu } from "../../src/core/events.js";
import type { JsonObject } from "../../src/core/json.js";
import type { AppendEvent, OneTimeKeyRow, RoomRow, StorageRepos, UserRow } from "../../src/storage/ports.js";

export const alice = "@alice:example.org";
export const bob = "@bob:example.org";
export const carol = "@carol:example.org";

export function room(roomId: string, overrides: Partial<RoomRow> = {}): RoomRow {
  return { roomId, roomVersion: "I.1", creator: alice, hubServer: "example.org", isPublic: false, createdTs: 1_700_000_000_000, ...overrides };
}

export function user(userId: string, overrides: Partial<UserRow> = {}): UserRow {
  const localpart = userId.slice(1, userId.indexOf(":"));
  return {
    userId,
    localpart,
    passwordHash: null,
    isAdmin: false,
    isGuest: false,
    deactivated: false,
    displayname: null,
    avatarUrl: null,
    createdTs: 1_700_000_000_000,
    appserviceId: null,
    ...overrides,
  };
}

export function pdu(roomId: string, type: string, content: JsonObject, options: { stateKey?: string; sender?: string; ts?: number } = {}): Pdu {
  return {
    room_id: roomId,
    type,
    ...(options.stateKey !== undefined ? { state_key: options.stateKey } : {}),
    sender: options.sender ?? alice,
    origin_server_ts: options.ts ?? 1_700_000_000_000,
    content,
    hashes: { sha256: "placeholder" },
    signatures: {},
    auth_events: [],
    prev_events: [],
  };
}

export const createEvent = (roomId: string): Pdu => pdu(roomId, "m.room.create", { creator: alice }, { stateKey: "" });
export const memberEvent = (roomId: string, userId: string, membership: string): Pdu =>
  pdu(roomId, "m.room.member", { membership }, { stateKey: userId, sender: userId });
export const nameEvent = (roomId: string, name: string): Pdu => pdu(roomId, "m.room.name", { name }, { stateKey: "" });
export const messageEvent = (roomId: string, body: string, sender = alice): Pdu => pdu(roomId, "m.room.message", { msgtype: "m.text", body }, { sender });

export function oneTimeKey(userId: string, deviceId: string, n: number, overrides: Partial<OneTimeKeyRow> = {}): OneTimeKeyRow {
  return { userId, deviceId, keyId: `signed_curve25519:K${n}`, algorithm: "signed_curve25519", key: { key: `key-${n}` }, fallback: false, ...overrides };
}

/**
 * Appends `pdus` to a room in order, each its own event at the next seq and stream position,
 * with event IDs `$<roomTag>-<seq>`. Returns the appended events.
 */
export class RoomLog {
  private nextSeq = 0;
  constructor(
    readonly roomId: string,
    private readonly nextStreamPos: () => number,
  ) {}

  async append(repos: StorageRepos, pdus: Pdu[], options: { softFailed?: boolean } = {}): Promise<AppendEvent[]> {
    const appended: AppendEvent[] = [];
    for (const event of pdus) {
      const roomSeq = this.nextSeq;
      const append: AppendEvent = { eventId: `$${this.roomId.slice(1, this.roomId.indexOf(":"))}-${roomSeq}`, pdu: event, roomSeq, streamPos: this.nextStreamPos(), ...options };
      await repos.events.appendEvent(append);
      this.nextSeq += 1;
      appended.push(append);
    }
    return appended;
  }
}
