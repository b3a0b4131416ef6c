// Reading rooms for clients: state, single events, /messages pagination, /context, members.
// History visibility (DESIGN.md; Client-Server API "Room History Visibility") decides what a user
// who is not joined, or joined late, may read.
import { Errcode, MatrixError } from "../core/errors.js";
import type { JsonObject } from "../core/json.js";
import type { Storage, StoredEvent } from "../storage/ports.js";
import type { StreamTracker } from "../storage/stream-tracker.js";
import type { ClientEvent } from "./client-event.js";
import type { EventDecorator, Viewer } from "./event-decorator.js";
import { eventMatches, type RoomEventFilter } from "./event-filter.js";
import type { Pdu } from "../core/events.js";
import { formatHubToken, formatRoomToken, parsePaginationToken } from "./tokens.js";
import { filterVisibleEvents } from "./visibility.js";

const MEMBER = "m.room.member";
/** Raw events read per storage call while paginating. */
const PAGE = 50;
/** Pagination stops after scanning this many raw events, handing back a token to continue. */
const MAX_SCAN = 2_000;

/** Which state a user may read: the current state, or the state when they left (boundary). */
type StateAccess = { kind: "current" } | { kind: "until"; boundarySeq: number };

export interface MessagesRequest {
  from?: string;
  to?: string;
  dir: "b" | "f";
  limit: number;
  filter: RoomEventFilter;
}

export interface MessagesResponse {
  start: string;
  end?: string;
  chunk: ClientEvent[];
  state: ClientEvent[];
}

interface PageResult {
  events: StoredEvent[];
  /** Boundary after the last consumed event (backward: before it). */
  cursor: number;
  exhausted: boolean;
}

/** Older history of a room hosted elsewhere, from its hub (the federation layer provides it). */
export interface HubHistory {
  /** Up to `limit` events of `roomId` up to and including `eventId`, newest first, checked. */
  backfill(roomId: string, eventId: string, limit: number): Promise<Array<{ eventId: string; pdu: Pdu }>>;
}

export class RoomQueries {
  constructor(
    private readonly storage: Storage,
    private readonly streams: StreamTracker,
    private readonly decorator: EventDecorator,
    private readonly hubHistory: () => HubHistory | undefined = () => undefined,
  ) {}

  private async requireRoom(roomId: string): Promise<void> {
    if (!(await this.storage.events.getRoom(roomId))) throw new MatrixError(Errcode.NOT_FOUND, 404, `Unknown room ${roomId}`);
  }

  private async historyVisibility(roomId: string): Promise<unknown> {
    return (await this.storage.events.getCurrentStateEvent(roomId, "m.room.history_visibility", ""))?.pdu.content.history_visibility;
  }

  /** Current state for members and world-readable rooms; the state at their leave for former members. */
  async stateAccess(userId: string, roomId: string): Promise<StateAccess> {
    await this.requireRoom(roomId);
    const member = await this.storage.events.getCurrentStateEvent(roomId, MEMBER, userId);
    const membership = member?.pdu.content.membership;
    if (membership === "join") return { kind: "current" };
    if ((await this.historyVisibility(roomId)) === "world_readable") return { kind: "current" };
    if (member && (membership === "leave" || membership === "ban") && !(await this.storage.events.isRoomForgotten(userId, roomId))) {
      return { kind: "until", boundarySeq: member.roomSeq + 1 };
    }
    throw new MatrixError(Errcode.FORBIDDEN, 403, `${userId} is not in room ${roomId}`);
  }

  async requireJoined(userId: string, roomId: string): Promise<void> {
    await this.requireRoom(roomId);
    const member = await this.storage.events.getCurrentStateEvent(roomId, MEMBER, userId);
    if (member?.pdu.content.membership !== "join") throw new MatrixError(Errcode.FORBIDDEN, 403, `${userId} is not joined to room ${roomId}`);
  }

  private async stateEvents(roomId: string, access: StateAccess): Promise<StoredEvent[]> {
    return access.kind === "current" ? this.storage.events.getCurrentState(roomId) : this.storage.events.getStateBefore(roomId, access.boundarySeq);
  }

  async getState(viewer: Viewer, roomId: string): Promise<ClientEvent[]> {
    const access = await this.stateAccess(viewer.userId, roomId);
    return this.decorator.decorate(await this.stateEvents(roomId, access), viewer, { prevContent: false });
  }

  async getStateEvent(viewer: Viewer, roomId: string, type: string, stateKey: string): Promise<StoredEvent> {
    const access = await this.stateAccess(viewer.userId, roomId);
    const event =
      access.kind === "current"
        ? await this.storage.events.getCurrentStateEvent(roomId, type, stateKey)
        : await this.storage.events.getStateEventBefore(roomId, access.boundarySeq, type, stateKey);
    if (!event) throw new MatrixError(Errcode.NOT_FOUND, 404, `No ${type} state with key ${JSON.stringify(stateKey)} in ${roomId}`);
    return event;
  }

  /** An event the user may see (404 otherwise, as the spec asks, so existence is not revealed). */
  async getVisibleEvent(viewer: Viewer, roomId: string, eventId: string): Promise<StoredEvent> {
    await this.requireRoom(roomId);
    const event = await this.storage.events.getEvent(eventId);
    const notFound = new MatrixError(Errcode.NOT_FOUND, 404, `Event ${eventId} not found`);
    if (!event || event.roomId !== roomId || event.softFailed || event.streamPos > this.streams.visible) throw notFound;
    if (await this.forgotten(viewer.userId, roomId)) throw notFound;
    const visible = await filterVisibleEvents(this.storage, roomId, viewer.userId, [event]);
    if (visible.length === 0) throw notFound;
    return event;
  }

  async getEvent(viewer: Viewer, roomId: string, eventId: string): Promise<ClientEvent> {
    const event = await this.getVisibleEvent(viewer, roomId, eventId);
    const [client] = await this.decorator.decorate([event], viewer);
    return client as ClientEvent;
  }

  /** A former or current member, or anyone in a world-readable room, may paginate. */
  private async requirePaginationAccess(userId: string, roomId: string): Promise<void> {
    await this.requireRoom(roomId);
    const member = await this.storage.events.getCurrentStateEvent(roomId, MEMBER, userId);
    if (member && !(await this.forgotten(userId, roomId))) return;
    if ((await this.historyVisibility(roomId)) === "world_readable") return;
    throw new MatrixError(Errcode.FORBIDDEN, 403, `${userId} is not in room ${roomId}`);
  }

  /** A former member who forgot the room no longer reads its history (unless it is world-readable). */
  private async forgotten(userId: string, roomId: string): Promise<boolean> {
    if (!(await this.storage.events.isRoomForgotten(userId, roomId))) return false;
    return (await this.historyVisibility(roomId)) !== "world_readable";
  }

  /** The room boundary of a pagination token; sync tokens map to the first event after their position. */
  private async boundaryOf(roomId: string, raw: string, name: string): Promise<number> {
    const token = parsePaginationToken(raw, name);
    if (token.kind === "room") return token.boundarySeq;
    if (token.kind === "hub") throw new MatrixError(Errcode.INVALID_PARAM, 400, `${name} is a token of the hub's history, which only /messages backwards accepts`);
    let beforeSeq: number | undefined;
    for (;;) {
      const page = await this.storage.events.getRoomEvents(roomId, { direction: "backward", limit: PAGE, ...(beforeSeq === undefined ? {} : { beforeSeq }) });
      const fresh = beforeSeq === undefined ? page : page.filter((e) => e.roomSeq < (beforeSeq as number));
      if (fresh.length === 0) return 0;
      for (const event of fresh) if (event.streamPos <= token.streamPos) return event.roomSeq + 1;
      beforeSeq = Math.min(...fresh.map((e) => e.roomSeq));
    }
  }

  /** The boundary after the last event visible to syncs. */
  private async liveEnd(roomId: string): Promise<number> {
    const visible = this.streams.visible;
    const last = await this.storage.events.getLastEvent(roomId);
    if (!last) return 0;
    if (last.streamPos <= visible) return last.roomSeq + 1;
    return this.boundaryOf(roomId, `s${visible}_0`, "from");
  }

  /**
   * Up to `limit` events from `boundary` in `dir` that the user may see and `filter` matches;
   * `stopAt` is a boundary not to cross.
   */
  async paginate(userId: string, roomId: string, boundary: number, dir: "b" | "f", limit: number, filter: RoomEventFilter, stopAt?: number): Promise<PageResult> {
    const visiblePos = this.streams.visible;
    const out: StoredEvent[] = [];
    let cursor = boundary;
    let scanned = 0;
    while (out.length < limit && scanned < MAX_SCAN) {
      const raw =
        dir === "b"
          ? (await this.storage.events.getRoomEvents(roomId, { beforeSeq: cursor, direction: "backward", limit: PAGE })).filter((e) => e.roomSeq < cursor)
          : (await this.storage.events.getRoomEvents(roomId, { afterSeq: cursor - 1, direction: "forward", limit: PAGE })).filter((e) => e.roomSeq >= cursor);
      // Keep the run contiguous and within what syncs may see; stop at `stopAt`.
      const run: StoredEvent[] = [];
      let ended = raw.length === 0;
      for (const event of raw) {
        if (event.streamPos > visiblePos || (stopAt !== undefined && (dir === "b" ? event.roomSeq < stopAt : event.roomSeq >= stopAt))) {
          ended = true;
          break;
        }
        run.push(event);
      }
      if (run.length === 0) return { events: out, cursor, exhausted: true };
      scanned += run.length;
      const ascending = dir === "b" ? [...run].reverse() : run;
      const visible = new Set((await filterVisibleEvents(this.storage, roomId, userId, ascending)).map((e) => e.eventId));
      for (const event of run) {
        cursor = dir === "b" ? event.roomSeq : event.roomSeq + 1;
        if (visible.has(event.eventId) && !event.softFailed && eventMatches(filter, event.pdu)) {
          out.push(event);
          if (out.length >= limit) break;
        }
      }
      if (out.length >= limit) break;
      if (ended || raw.length < PAGE || (dir === "b" && cursor === 0)) return { events: out, cursor, exhausted: true };
    }
    return { events: out, cursor, exhausted: dir === "b" && cursor === 0 };
  }

  async getMessages(viewer: Viewer, roomId: string, request: MessagesRequest): Promise<MessagesResponse> {
    await this.requirePaginationAccess(viewer.userId, roomId);
    const fromToken = request.from === undefined ? undefined : parsePaginationToken(request.from, "from");
    if (fromToken?.kind === "hub") return this.hubMessages(viewer, roomId, fromToken.eventId, request);
    const replica = await this.storage.events.getReplicaHistory(roomId);
    const boundary =
      request.from !== undefined ? await this.boundaryOf(roomId, request.from, "from") : request.dir === "b" ? await this.liveEnd(roomId) : 0;
    const stopAt = request.to !== undefined ? await this.boundaryOf(roomId, request.to, "to") : undefined;
    // A replica's local timeline starts at its join; the state before it is not history.
    const floor = replica !== undefined && request.dir === "b" ? Math.max(stopAt ?? 0, replica.firstSeq) : stopAt;
    const page = await this.paginate(viewer.userId, roomId, boundary, request.dir, request.limit, request.filter, floor);
    const response: MessagesResponse = {
      start: request.from ?? formatRoomToken(boundary),
      chunk: await this.decorator.decorate(page.events, viewer),
      state: request.filter.lazyLoadMembers ? await this.membersOfSenders(roomId, page.events, viewer) : [],
    };
    if (!page.exhausted || (request.dir === "f" && page.events.length > 0)) response.end = formatRoomToken(page.cursor);
    else if (request.dir === "b" && replica?.beforeEventId && stopAt === undefined && (await this.mayReadHistoryBeforeJoin(roomId))) {
      // Past the replica's start: the hub's history (LM draft "backfill").
      response.end = formatHubToken(replica.beforeEventId);
    }
    return response;
  }

  /** History before this server joined is shown when the room shares it (shared, world_readable). */
  private async mayReadHistoryBeforeJoin(roomId: string): Promise<boolean> {
    const visibility = await this.historyVisibility(roomId);
    return visibility === undefined || visibility === "shared" || visibility === "world_readable";
  }

  /** /messages backwards through the hub's history of a replica. */
  private async hubMessages(viewer: Viewer, roomId: string, eventId: string, request: MessagesRequest): Promise<MessagesResponse> {
    const history = this.hubHistory();
    if (request.dir !== "b" || !history || !(await this.mayReadHistoryBeforeJoin(roomId))) return { start: request.from as string, chunk: [], state: [] };
    const fetched = await history.backfill(roomId, eventId, request.limit);
    const events: StoredEvent[] = fetched.map((e) => ({ eventId: e.eventId, roomId, roomSeq: -1, streamPos: 0, pdu: e.pdu, redactedBy: null, softFailed: false }));
    const shown = events.filter((e) => eventMatches(request.filter, e.pdu));
    const response: MessagesResponse = { start: request.from as string, chunk: await this.decorator.decorate(shown, viewer), state: [] };
    const oldest = events[events.length - 1];
    const previous = oldest?.pdu.prev_events?.[0];
    // The create event starts every room: nothing precedes it.
    if (oldest && previous !== undefined && oldest.pdu.type !== "m.room.create") response.end = formatHubToken(previous);
    return response;
  }

  private async membersOfSenders(roomId: string, events: StoredEvent[], viewer: Viewer): Promise<ClientEvent[]> {
    const senders = [...new Set(events.map((e) => e.pdu.sender))];
    const members = await Promise.all(senders.map((sender) => this.storage.events.getCurrentStateEvent(roomId, MEMBER, sender)));
    return this.decorator.decorate(members.filter((m): m is StoredEvent => m !== undefined), viewer, { prevContent: false });
  }

  async getContext(viewer: Viewer, roomId: string, eventId: string, limit: number, filter: RoomEventFilter): Promise<JsonObject> {
    const event = await this.getVisibleEvent(viewer, roomId, eventId);
    const beforeLimit = Math.floor(limit / 2);
    const before = await this.paginate(viewer.userId, roomId, event.roomSeq, "b", beforeLimit, filter);
    const after = await this.paginate(viewer.userId, roomId, event.roomSeq + 1, "f", limit - beforeLimit, filter);
    const lastSeq = after.events.length > 0 ? (after.events[after.events.length - 1] as StoredEvent).roomSeq : event.roomSeq;
    const state = await this.storage.events.getStateBefore(roomId, lastSeq + 1);
    const senders = new Set([event, ...before.events, ...after.events].map((e) => e.pdu.sender));
    const shownState = filter.lazyLoadMembers ? state.filter((s) => s.pdu.type !== MEMBER || senders.has(s.pdu.state_key ?? "")) : state;
    const [decorated] = await this.decorator.decorate([event], viewer);
    return {
      start: formatRoomToken(before.cursor),
      end: formatRoomToken(after.cursor),
      event: decorated as unknown as JsonObject,
      events_before: (await this.decorator.decorate(before.events, viewer)) as unknown as JsonObject[],
      events_after: (await this.decorator.decorate(after.events, viewer)) as unknown as JsonObject[],
      state: (await this.decorator.decorate(shownState, viewer, { prevContent: false })) as unknown as JsonObject[],
    };
  }

  async getMembers(viewer: Viewer, roomId: string, options: { at?: string; membership?: string; notMembership?: string }): Promise<ClientEvent[]> {
    const access = await this.stateAccess(viewer.userId, roomId);
    let boundary = access.kind === "until" ? access.boundarySeq : undefined;
    if (options.at !== undefined) {
      const at = await this.boundaryOf(roomId, options.at, "at");
      boundary = boundary === undefined ? at : Math.min(boundary, at);
    }
    const state = boundary === undefined ? await this.storage.events.getCurrentState(roomId) : await this.storage.events.getStateBefore(roomId, boundary);
    const members = state.filter((event) => {
      if (event.pdu.type !== MEMBER) return false;
      const membership = event.pdu.content.membership;
      if (options.membership !== undefined && membership !== options.membership) return false;
      return options.notMembership === undefined || membership !== options.notMembership;
    });
    return this.decorator.decorate(members, viewer, { prevContent: false });
  }

  async getJoinedMembers(userId: string, roomId: string): Promise<Record<string, { display_name?: string; avatar_url?: string }>> {
    await this.requireJoined(userId, roomId);
    const joined: Record<string, { display_name?: string; avatar_url?: string }> = {};
    for (const event of await this.storage.events.getCurrentState(roomId)) {
      if (event.pdu.type !== MEMBER || event.pdu.content.membership !== "join" || event.pdu.state_key === undefined) continue;
      const profile: { display_name?: string; avatar_url?: string } = {};
      if (typeof event.pdu.content.displayname === "string") profile.display_name = event.pdu.content.displayname;
      if (typeof event.pdu.content.avatar_url === "string") profile.avatar_url = event.pdu.content.avatar_url;
      joined[event.pdu.state_key] = profile;
    }
    return joined;
  }

  async getJoinedRooms(userId: string): Promise<string[]> {
    const memberships = await this.storage.events.getMembershipsOfUser(userId);
    return [...memberships].filter(([, membership]) => membership === "join").map(([roomId]) => roomId);
  }

  /** `serverAdmin`: a server admin reads any room's aliases (admin tools such as synadm rely on it). */
  async getAliases(userId: string, roomId: string, options: { serverAdmin?: boolean } = {}): Promise<string[]> {
    if (options.serverAdmin) {
      if (!(await this.storage.events.getRoom(roomId))) throw new MatrixError(Errcode.NOT_FOUND, 404, `Unknown room ${roomId}`);
      return this.storage.aliases.listForRoom(roomId);
    }
    const access = await this.stateAccess(userId, roomId);
    if (access.kind !== "current") throw new MatrixError(Errcode.FORBIDDEN, 403, `${userId} is not in room ${roomId}`);
    return this.storage.aliases.listForRoom(roomId);
  }
}
