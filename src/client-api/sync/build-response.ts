// Computes one /sync response (Client-Server API "Syncing") for the stream window
// (since, to]: joined, invited, knocked and left rooms, account data, to-device messages,
// device-list changes and one-time key counts. Pure reads; the engine decides when to run it.
//
// An incremental sync reads only what may have changed since its token (change-cache.ts):
// a room without new events costs no query, and state is read only for rooms newly joined,
// limited timelines or `full_state`.
import { isJsonObject, type JsonObject } from "../../core/json.js";
import { STRIPPED_STATE_TYPES, toStrippedState } from "../../rooms/client-event.js";
import { eventMatches, roomMatches, typeMatches, type RoomEventFilter } from "../../rooms/event-filter.js";
import type { EventDecorator } from "../../rooms/event-decorator.js";
import type { MembershipIndex, RoomMembers } from "../../rooms/membership-index.js";
import type { RecentEvents } from "../../rooms/recent-events.js";
import { formatRoomToken, formatSyncToken, type SyncToken } from "../../rooms/tokens.js";
import { filterVisibleEvents } from "../../rooms/visibility.js";
import type { Storage, StoredEvent } from "../../storage/ports.js";
import { DEFAULT_TIMELINE_LIMIT, type SyncFilter } from "./filter.js";
import type { TypingTracker } from "./typing.js";
import type { StreamChangeCache } from "./change-cache.js";
import type { KeyCountsCache } from "./key-counts.js";
import { departedDevices } from "../../mls-overlay/validate.js";
import { COMMIT_EVENT_TYPE, DEPARTED_DEVICES_SYNC_FIELD } from "../../core/mls-wire.js";

export interface SyncRequest {
  userId: string;
  deviceId: string;
  since?: SyncToken;
  filter: SyncFilter;
  fullState: boolean;
}

export interface SyncReaders {
  storage: Storage;
  decorator: EventDecorator;
  typing: TypingTracker;
  changes: StreamChangeCache;
  memberships: MembershipIndex;
  /** Each room's last events, kept by the room writer; storage answers for what they do not hold. */
  recentEvents: RecentEvents;
  keyCounts: KeyCountsCache;
  /**
   * Devices (`user\0device`) whose last sync returned to-device messages: the next sync deletes
   * them (its token acknowledges them) and reads the inbox again, new message recorded or not,
   * since a sync returns at most TO_DEVICE_LIMIT of them.
   */
  toDeviceBacklog: Set<string>;
}

const PAGE = 50;
/**
 * The first page read for an incremental timeline: a long-polling client usually has a few new
 * events, and every row read is parsed.
 */
const FIRST_INCREMENTAL_PAGE = 8;
const MAX_SCAN = 1_000;
const TO_DEVICE_LIMIT = 1_000;
const MEMBER = "m.room.member";

interface Timeline {
  events: StoredEvent[];
  limited: boolean;
  /** Boundary before the first event returned (or scanned). */
  prevBoundary: number;
}

/**
 * The latest `limit` events of a room with afterPos < streamPos <= toPos that the user may see and
 * the filter matches (ascending), read backward from the end of the log: from the room's recent
 * events in memory first, then from storage for whatever they do not hold.
 */
async function latestEvents(readers: SyncReaders, userId: string, roomId: string, afterPos: number, toPos: number, limit: number, filter: RoomEventFilter, room?: RoomMembers): Promise<Timeline> {
  const { storage } = readers;
  const cached = readers.recentEvents.after(roomId, afterPos);
  let cachePending = cached.complete || cached.events.length > 0;
  let beforeSeq = cached.events[cached.events.length - 1]?.roomSeq;
  /** The next older events (descending roomSeq); `last` when no older one has streamPos > afterPos. */
  const nextPage = async (): Promise<{ events: StoredEvent[]; last: boolean }> => {
    if (cachePending) {
      cachePending = false;
      return { events: cached.events, last: cached.complete };
    }
    const pageSize = beforeSeq === undefined && afterPos > 0 ? FIRST_INCREMENTAL_PAGE : PAGE;
    const page = await storage.events.getRoomEvents(roomId, { direction: "backward", limit: pageSize, ...(beforeSeq === undefined ? {} : { beforeSeq }) });
    beforeSeq = page[page.length - 1]?.roomSeq ?? beforeSeq;
    return { events: page, last: page.length < pageSize };
  };

  const picked: StoredEvent[] = [];
  let prevBoundary = 0;
  let scanned = 0;
  let limited = false;
  for (;;) {
    const page = await nextPage();
    let reachedStart = page.last;
    const run: StoredEvent[] = [];
    for (const event of page.events) {
      if (event.streamPos > toPos) continue;
      if (event.streamPos <= afterPos) {
        reachedStart = true;
        break;
      }
      run.push(event);
    }
    // A page of only events beyond `toPos` has nothing to pick.
    if (run.length > 0) {
      scanned += run.length;
      const ascending = [...run].reverse();
      const visibleEvents = await filterVisibleEvents(storage, roomId, userId, ascending, room);
      // The visible events are a subsequence of the run: as many means all of them (the usual case).
      const visible = visibleEvents.length === ascending.length ? undefined : new Set(visibleEvents.map((e) => e.eventId));
      for (const event of run) {
        // One more event in the window than fits: the timeline has a gap.
        if (picked.length >= limit) {
          limited = true;
          break;
        }
        prevBoundary = event.roomSeq;
        if (!event.softFailed && (visible === undefined || visible.has(event.eventId)) && eventMatches(filter, event.pdu)) picked.push(event);
      }
    }
    if (limited || reachedStart) break;
    if (scanned >= MAX_SCAN) {
      limited = true;
      break;
    }
  }
  picked.reverse();
  return { events: picked, limited, prevBoundary };
}

/** Whether a timeline filter may leave out membership or `m.mls.commit` events (the MLS departed devices above). */
function filterMayHideMls(filter: RoomEventFilter): boolean {
  return filter.types !== undefined || filter.notTypes.length > 0 || filter.senders !== undefined || filter.notSenders.length > 0 || filter.containsUrl === true;
}

export async function buildSyncResponse(readers: SyncReaders, request: SyncRequest, toPos: number, typingSerial: number): Promise<{ body: JsonObject; empty: boolean }> {
  const { storage, decorator, typing, changes: changeCache, keyCounts } = readers;
  const { userId, deviceId, filter } = request;
  const initial = request.since === undefined;
  const sincePos = Math.min(request.since?.streamPos ?? 0, toPos);
  const sinceTyping = request.since?.typingSerial ?? 0;
  const viewer = { userId, deviceId };
  const timelineLimit = filter.timeline.limit ?? DEFAULT_TIMELINE_LIMIT;

  const maybe = (stream: Parameters<StreamChangeCache["mayHaveChanged"]>[0], entity: string): boolean => initial || changeCache.mayHaveChanged(stream, entity, sincePos);

  const memberships = await readers.memberships.membershipsOf(userId);
  const changes = initial || !maybe("membership", userId) ? [] : await storage.events.getMembershipChanges(userId, sincePos, toPos);
  const changedRooms = new Map<string, typeof changes>();
  for (const change of changes) {
    const list = changedRooms.get(change.roomId) ?? [];
    list.push(change);
    changedRooms.set(change.roomId, list);
  }
  const roomFilter = filter.rooms ? { notRooms: filter.notRooms, rooms: filter.rooms } : { notRooms: filter.notRooms };
  const wanted = (roomId: string): boolean => roomMatches(roomFilter, roomId);

  const accountData = maybe("account_data", userId) ? await storage.accountData.getChanged(userId, sincePos, toPos) : [];
  const roomAccountData = new Map<string, Array<{ type: string; content: JsonObject }>>();
  for (const entry of accountData) {
    if (entry.roomId === null || !typeMatches(filter.roomAccountData.types, filter.roomAccountData.notTypes, entry.type)) continue;
    const list = roomAccountData.get(entry.roomId) ?? [];
    list.push({ type: entry.type, content: entry.content });
    roomAccountData.set(entry.roomId, list);
  }

  // Every room joined (device lists), and those the filter wants (the rest of the response).
  const allJoinedIds: string[] = [];
  const joinedIds: string[] = [];
  for (const [roomId, membership] of memberships) {
    if (membership !== "join") continue;
    allJoinedIds.push(roomId);
    if (wanted(roomId)) joinedIds.push(roomId);
  }
  const receiptRooms = joinedIds.filter((roomId) => maybe("receipts", roomId));
  const receipts = receiptRooms.length > 0 ? await storage.receipts.getChanged(receiptRooms, sincePos, toPos) : [];

  const join: JsonObject = {};
  const deviceListUsers = new Set<string>();
  // Users who may no longer share a room with this one: `device_lists.left` once checked below.
  const leftCandidates = new Set<string>();
  for (const roomId of joinedIds) {
    const roomChanges = changedRooms.get(roomId) ?? [];
    // Newly joined: the membership before the window was not join.
    let newlyJoined = false;
    const firstChange = roomChanges[0];
    if (firstChange) {
      const firstEvent = await storage.events.getEvent(firstChange.eventId);
      const before = firstEvent ? await storage.events.getStateEventBefore(roomId, firstEvent.roomSeq, MEMBER, userId) : undefined;
      newlyJoined = before?.pdu.content.membership !== "join";
    }
    const fromStart = initial || newlyJoined;
    const fullState = fromStart || request.fullState;
    const timeline: Timeline =
      fromStart || maybe("room_events", roomId)
        ? await latestEvents(readers, userId, roomId, fromStart ? 0 : sincePos, toPos, timelineLimit, filter.timeline, await readers.memberships.room(roomId))
        : { events: [], limited: false, prevBoundary: 0 };

    let state: StoredEvent[] = [];
    if (fullState || timeline.limited) {
      const first = timeline.events[0];
      const boundary = first ? first.roomSeq : await boundaryAt(storage, roomId, toPos);
      state = await storage.events.getStateBefore(roomId, boundary);
      if (!fullState) state = state.filter((event) => event.streamPos > sincePos);
      state = state.filter((event) => eventMatches({ ...filter.state, senders: undefined, notSenders: [] } as RoomEventFilter, event.pdu) || (event.pdu.type === MEMBER && event.pdu.state_key === userId));
      if (filter.state.lazyLoadMembers) {
        const senders = new Set(timeline.events.map((e) => e.pdu.sender));
        senders.add(userId);
        state = state.filter((event) => event.pdu.type !== MEMBER || senders.has(event.pdu.state_key ?? ""));
      }
      const inTimeline = new Set(timeline.events.map((e) => e.eventId));
      state = state.filter((event) => !inTimeline.has(event.eventId));
    }

    const ephemeral: JsonObject[] = [];
    if ((initial || typing.changedSince(roomId, sinceTyping)) && typeMatches(filter.ephemeral.types, filter.ephemeral.notTypes, "m.typing")) {
      const typingUsers = typing.typingIn(roomId);
      if (!initial || typingUsers.length > 0) ephemeral.push({ type: "m.typing", content: { user_ids: typingUsers } });
    }
    const roomReceipts = receipts.filter((r) => r.roomId === roomId && (r.receiptType !== "m.read.private" || r.userId === userId));
    if (roomReceipts.length > 0 && typeMatches(filter.ephemeral.types, filter.ephemeral.notTypes, "m.receipt")) {
      const content: Record<string, Record<string, Record<string, JsonObject>>> = {};
      for (const receipt of roomReceipts) {
        const byType = (content[receipt.eventId] ??= {});
        const byUser = (byType[receipt.receiptType] ??= {});
        byUser[receipt.userId] = receipt.threadId === null ? { ts: receipt.ts } : { ts: receipt.ts, thread_id: receipt.threadId };
      }
      ephemeral.push({ type: "m.receipt", content: content as unknown as JsonObject });
    }
    const roomData = roomAccountData.get(roomId) ?? [];

    for (const event of timeline.events) {
      if (event.pdu.type !== MEMBER || event.pdu.state_key === undefined || event.pdu.state_key === userId) continue;
      if (event.pdu.content.membership === "join") deviceListUsers.add(event.pdu.state_key);
      else if (event.pdu.content.membership === "leave" || event.pdu.content.membership === "ban") leftCandidates.add(event.pdu.state_key);
    }
    // MLS overlay: devices still in the room's group whose user is no longer joined (MLS wire
    // contract section 5). Told in every sync that starts the room (initial, newly joined,
    // full_state) and whenever a membership or commit event since the token may have changed
    // them — also one the timeline does not show (a limited timeline's gap, a filter hiding it).
    let departed: Record<string, string[]> = {};
    const mlsMayHaveChanged = timeline.events.some((e) => e.pdu.type === MEMBER || e.pdu.type === COMMIT_EVENT_TYPE) || (maybe("room_events", roomId) && (timeline.limited || filterMayHideMls(filter.timeline)));
    if (fullState || mlsMayHaveChanged) {
      const group = await storage.mls.getGroup(roomId);
      const members = group ? (await readers.memberships.room(roomId)).members : undefined;
      if (group && members) departed = departedDevices(group.devices, (member) => members.get(member)?.membership === "join");
    }
    const hasDeparted = Object.keys(departed).length > 0;
    if (!fullState && !hasDeparted && timeline.events.length === 0 && state.length === 0 && ephemeral.length === 0 && roomData.length === 0) continue;

    const entry: JsonObject = {
      timeline: {
        events: (await decorator.decorate(timeline.events, viewer)) as unknown as JsonObject[],
        limited: timeline.limited,
        prev_batch: formatRoomToken(timeline.events[0]?.roomSeq ?? timeline.prevBoundary),
      },
      state: { events: (await decorator.decorate(state, viewer, { prevContent: false })) as unknown as JsonObject[] },
      ephemeral: { events: ephemeral },
      account_data: { events: roomData as unknown as JsonObject[] },
      unread_notifications: { highlight_count: 0, notification_count: 0 },
    };
    if (fullState || roomChanges.length > 0 || timeline.events.some((e) => e.pdu.type === MEMBER)) entry.summary = summaryOf(await readers.memberships.room(roomId), userId);
    if (hasDeparted) entry[DEPARTED_DEVICES_SYNC_FIELD] = departed;
    join[roomId] = entry;
  }

  const invite: JsonObject = {};
  const knock: JsonObject = {};
  const leave: JsonObject = {};
  for (const [roomId, membership] of memberships) {
    if (!wanted(roomId)) continue;
    const changed = changedRooms.get(roomId);
    if (membership === "invite" || membership === "knock") {
      if (!initial && !changed) continue;
      const strippedState = await strippedStateOf(storage, roomId, userId);
      if (membership === "invite") invite[roomId] = { invite_state: { events: strippedState } };
      else knock[roomId] = { knock_state: { events: strippedState } };
    } else if (membership === "leave" || membership === "ban") {
      if (initial ? !filter.includeLeave : !changed) continue;
      if (initial && (await storage.events.isRoomForgotten(userId, roomId))) continue;
      const own = await storage.events.getCurrentStateEvent(roomId, MEMBER, userId);
      if (!own || own.streamPos > toPos) continue;
      // The timeline ends with the leave (or ban) event; the SDK needs it to see the room left.
      const timeline = await latestEvents(readers, userId, roomId, initial ? 0 : sincePos, own.streamPos, timelineLimit, filter.timeline);
      if (!timeline.events.some((e) => e.eventId === own.eventId)) timeline.events.push(own);
      if (!initial) for (const member of await readers.memberships.joinedMembers(roomId)) leftCandidates.add(member);
      leave[roomId] = {
        timeline: {
          events: (await decorator.decorate(timeline.events, viewer)) as unknown as JsonObject[],
          limited: timeline.limited,
          prev_batch: formatRoomToken(timeline.events[0]?.roomSeq ?? timeline.prevBoundary),
        },
        state: { events: [] },
        account_data: { events: (roomAccountData.get(roomId) ?? []) as unknown as JsonObject[] },
      };
    }
  }

  const globalData = accountData
    .filter((entry) => entry.roomId === null && typeMatches(filter.accountData.types, filter.accountData.notTypes, entry.type))
    .map((entry) => ({ type: entry.type, content: entry.content }));

  // Messages up to `since` were delivered by the sync that issued it; they go once others are read.
  const inbox = inboxOf(userId, deviceId);
  let toDevice: Awaited<ReturnType<Storage["toDevice"]["getPending"]>> = [];
  if (readers.toDeviceBacklog.has(inbox) || maybe("to_device", userId)) {
    if (!initial) await storage.toDevice.deleteUpTo(userId, deviceId, sincePos);
    toDevice = await storage.toDevice.getPending(userId, deviceId, toPos, TO_DEVICE_LIMIT);
    if (toDevice.length > 0) readers.toDeviceBacklog.add(inbox);
    else readers.toDeviceBacklog.delete(inbox);
  }

  let changedDevices: string[] = [];
  let leftDevices: string[] = [];
  if (!initial) {
    // The users sharing a room with this one are gathered only when some device list changed since
    // the token or someone may have left: most long-polls have neither.
    let listsChanged: string[] = [];
    if (leftCandidates.size > 0 || changeCache.streamMayHaveChanged("device_lists", sincePos)) {
      const sharing = new Set<string>([userId]);
      for (const roomId of allJoinedIds) {
        for (const member of await readers.memberships.joinedMembers(roomId)) sharing.add(member);
      }
      if (changeCache.anyMayHaveChanged("device_lists", sharing, sincePos)) listsChanged = await storage.keys.getDeviceListChanges([...sharing], sincePos, toPos);
      // Client-Server API "Tracking the device list for a user": `left` lists users with whom the
      // syncing user no longer shares any room.
      leftDevices = [...leftCandidates].filter((u) => u !== userId && !sharing.has(u));
    }
    changedDevices = [...new Set([...listsChanged, ...deviceListUsers])].filter((u) => u.length > 0);
  }

  const { oneTimeKeyCounts: otkCounts, unusedFallbackAlgorithms: fallbackTypes } = await keyCounts.get(userId, deviceId);

  const roomsBody: JsonObject = { join, invite, leave, knock };
  const body: JsonObject = {
    next_batch: formatSyncToken({ streamPos: toPos, typingSerial }),
    rooms: roomsBody,
    account_data: { events: globalData as unknown as JsonObject[] },
    to_device: { events: toDevice.map((m) => ({ sender: m.sender, type: m.type, content: m.content })) },
    device_lists: { changed: changedDevices, left: leftDevices },
    device_one_time_keys_count: otkCounts,
    device_unused_fallback_key_types: fallbackTypes,
    presence: { events: [] },
  };
  const empty =
    Object.keys(join).length + Object.keys(invite).length + Object.keys(leave).length + Object.keys(knock).length === 0 &&
    globalData.length === 0 &&
    toDevice.length === 0 &&
    changedDevices.length === 0;
  return { body, empty };
}

const inboxOf = (userId: string, deviceId: string): string => `${userId}\u0000${deviceId}`;

/**
 * Whether an incremental sync at (`toPos`, `typingSerial`) certainly has nothing to return, so a
 * long-poll may start waiting without computing its empty answer. True only when the token is
 * already at `toPos` (the stream window (since, toPos] is empty), typing in none of the user's
 * rooms changed since the token, no to-device messages are left over from the last sync (they
 * are read again whatever the token), and `full_state` was not asked for. Each of buildSyncResponse's
 * parts is then empty, whatever the filter.
 */
export function nothingNewSince(readers: Pick<SyncReaders, "typing" | "toDeviceBacklog">, request: SyncRequest, memberships: ReadonlyMap<string, string>, toPos: number, typingSerial: number): boolean {
  const { since } = request;
  if (since === undefined || request.fullState || since.streamPos < toPos) return false;
  if (readers.toDeviceBacklog.has(inboxOf(request.userId, request.deviceId))) return false;
  if (since.typingSerial !== typingSerial) {
    for (const roomId of memberships.keys()) if (readers.typing.changedSince(roomId, since.typingSerial)) return false;
  }
  return true;
}

/** The boundary after the last event with streamPos <= toPos. */
async function boundaryAt(storage: Storage, roomId: string, toPos: number): Promise<number> {
  let beforeSeq: number | undefined;
  for (;;) {
    const page = await storage.events.getRoomEvents(roomId, { direction: "backward", limit: PAGE, ...(beforeSeq === undefined ? {} : { beforeSeq }) });
    const fresh = beforeSeq === undefined ? page : page.filter((e) => e.roomSeq < (beforeSeq as number));
    if (fresh.length === 0) return 0;
    for (const event of fresh) if (event.streamPos <= toPos) return event.roomSeq + 1;
    beforeSeq = Math.min(...fresh.map((e) => e.roomSeq));
  }
}

async function strippedStateOf(storage: Storage, roomId: string, userId: string): Promise<JsonObject[]> {
  const state = await storage.events.getCurrentState(roomId);
  const own = state
    .filter((event) => STRIPPED_STATE_TYPES.has(event.pdu.type) || (event.pdu.type === MEMBER && event.pdu.state_key === userId))
    .map((event) => toStrippedState(event) as unknown as JsonObject);
  // A room this server is not in: the stripped state the inviting (or knocked-on) hub sent, kept
  // with the invite or knock (rooms/room-federation.ts storeInviteStub).
  const member = state.find((event) => event.pdu.type === MEMBER && event.pdu.state_key === userId);
  const carried = member?.pdu.unsigned?.invite_room_state;
  if (!Array.isArray(carried)) return own;
  const have = new Set(own.map((e) => `${String(e.type)}\u0000${String(e.state_key)}`));
  const extra = carried.filter(isJsonObject).filter((e) => typeof e.type === "string" && typeof e.state_key === "string" && !have.has(`${e.type}\u0000${e.state_key}`));
  return [...extra.map((e) => ({ content: isJsonObject(e.content) ? e.content : {}, sender: String(e.sender ?? ""), state_key: e.state_key as string, type: e.type as string })), ...own];
}

/** Room summary (Client-Server API "Lazy-loading room members"): counts and up to five heroes. */
function summaryOf(room: RoomMembers, userId: string): JsonObject {
  const joined: string[] = [];
  const invited: string[] = [];
  for (const [member, { membership }] of room.members) {
    if (membership === "join") joined.push(member);
    else if (membership === "invite") invited.push(member);
  }
  const heroes = [...joined, ...invited].filter((member) => member !== userId).sort().slice(0, 5);
  return { "m.heroes": heroes, "m.joined_member_count": joined.length, "m.invited_member_count": invited.length };
}
