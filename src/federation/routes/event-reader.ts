// The reads behind the federation event and state APIs (LM draft "Event and State APIs"): one
// event, the state before an event with its auth chain, and backfill. Every event leaves here as
// the requesting server may see it (./server-visibility.ts): whole, redacted, or not at all.
import type { Pdu } from "../../core/events.js";
import { Errcode, MatrixError } from "../../core/errors.js";
import type { JsonObject } from "../../core/json.js";
import { redact } from "../../core/redaction.js";
import { getRoomVersion, type RoomVersionRules } from "../../core/room-versions.js";
import type { RoomRow, Storage, StoredEvent } from "../../storage/ports.js";
import { loadServerView, type ServerView } from "./server-visibility.js";

/** Largest backfill page served, whatever `limit` asks (the draft: "SHOULD have a maximum"). */
export const MAX_BACKFILL_LIMIT = 100;

export interface EventReader {
  /** The event as `origin` may see it; 404 when unknown or hidden from it. */
  event(origin: string, eventId: string): Promise<Pdu>;
  /** State before `eventId` and its auth chain; 400 M_WRONG_SERVER unless this server is the hub. */
  stateAt(origin: string, roomId: string, eventId: string): Promise<{ pdus: Pdu[]; authChain: Pdu[] }>;
  stateIdsAt(origin: string, roomId: string, eventId: string): Promise<{ pduIds: string[]; authChainIds: string[] }>;
  /** Up to `limit` events ending with `v`, oldest first. */
  backfill(origin: string, roomId: string, v: string, limit: number): Promise<Pdu[]>;
}

/** An event a request starts from, with what is needed to serve the room's events to `origin`. */
interface Anchor {
  event: StoredEvent;
  view: ServerView;
  rules: RoomVersionRules;
}

const notFound = (what: string) => new MatrixError(Errcode.NOT_FOUND, 404, `${what} not found`);

export function createEventReader(deps: { storage: Storage; serverName: string }): EventReader {
  const { storage, serverName } = deps;

  async function roomOf(roomId: string): Promise<RoomRow> {
    const room = await storage.events.getRoom(roomId);
    if (room === undefined) throw notFound("Room");
    return room;
  }

  /** The hub is the only server guaranteed to hold the room's full state (LM draft "GET /state"). */
  function requireHub(room: RoomRow): void {
    if (room.hubServer !== serverName) throw new MatrixError(Errcode.WRONG_SERVER, 400, `${serverName} is not the hub of ${room.roomId}; ask ${room.hubServer}`);
  }

  /** The event, which must be in the room and one `origin` may know of; else 404 (the draft gives no hint which). */
  async function anchor(origin: string, room: RoomRow, eventId: string, known?: StoredEvent): Promise<Anchor> {
    const event = known ?? (await storage.events.getEvent(eventId));
    if (event === undefined || event.roomId !== room.roomId) throw notFound("Event");
    const view = await loadServerView(storage, room.roomId, origin);
    if (view.accessTo(event) === "none") throw notFound("Event");
    const rules = getRoomVersion(room.roomVersion);
    if (rules === undefined) throw new Error(`room ${room.roomId} has unknown room version ${room.roomVersion}`);
    return { event, view, rules };
  }

  /** Events of a room `origin` may see at all: those it may not read are served redacted. */
  function serve(events: StoredEvent[], { view, rules }: Anchor): Pdu[] {
    const redacted = (event: StoredEvent) => redact(event.pdu as unknown as JsonObject, rules.redaction) as unknown as Pdu;
    return events.filter((event) => !event.softFailed).map((event) => (view.accessTo(event) === "full" ? event.pdu : redacted(event)));
  }

  async function stateAndAuthChain(origin: string, roomId: string, eventId: string): Promise<{ anchor: Anchor; state: StoredEvent[]; authChain: StoredEvent[] }> {
    const room = await roomOf(roomId);
    requireHub(room);
    const start = await anchor(origin, room, eventId);
    const state = (await storage.events.getStateBefore(roomId, start.event.roomSeq)).filter((event) => !event.softFailed);
    return { anchor: start, state, authChain: await authChainOf(storage, roomId, state) };
  }

  return {
    async event(origin, eventId) {
      const event = await storage.events.getEvent(eventId);
      if (event === undefined) throw notFound("Event");
      const start = await anchor(origin, await roomOf(event.roomId), eventId, event);
      return serve([start.event], start)[0] as Pdu;
    },

    async stateAt(origin, roomId, eventId) {
      const { anchor: start, state, authChain } = await stateAndAuthChain(origin, roomId, eventId);
      return { pdus: serve(state, start), authChain: serve(authChain, start) };
    },

    async stateIdsAt(origin, roomId, eventId) {
      const { state, authChain } = await stateAndAuthChain(origin, roomId, eventId);
      return { pduIds: state.map((event) => event.eventId), authChainIds: authChain.map((event) => event.eventId) };
    },

    async backfill(origin, roomId, v, limit) {
      const start = await anchor(origin, await roomOf(roomId), v);
      return serve(await precedingEvents(storage, start.event, limit), start);
    },
  };
}

/** `last` and the events before it, at most `limit` in all, soft-failed ones skipped, oldest first. */
async function precedingEvents(storage: Storage, last: StoredEvent, limit: number): Promise<StoredEvent[]> {
  if (limit < 1) return [];
  const events = [last];
  let beforeSeq = last.roomSeq;
  while (events.length < limit && beforeSeq > 0) {
    const page = await storage.events.getRoomEvents(last.roomId, { beforeSeq, direction: "backward", limit: limit - events.length });
    const oldest = page[page.length - 1];
    if (oldest === undefined) break;
    events.push(...page.filter((event) => !event.softFailed));
    beforeSeq = oldest.roomSeq;
  }
  return events.reverse();
}

/**
 * The `auth_events` of `events`, and theirs, recursively, down to `m.room.create` (LM draft "GET
 * /state"), oldest first. One read per event of the chain: the port has no batch read yet.
 */
async function authChainOf(storage: Storage, roomId: string, events: StoredEvent[]): Promise<StoredEvent[]> {
  const chain = new Map<string, StoredEvent>();
  let wanted = [...new Set(events.flatMap((event) => event.pdu.auth_events))];
  while (wanted.length > 0) {
    const found = await Promise.all(wanted.map((eventId) => storage.events.getEvent(eventId)));
    const next = new Set<string>();
    for (const event of found) {
      // An auth event of another room, or one never stored, cannot be served; skip it.
      if (event === undefined || event.roomId !== roomId || event.softFailed || chain.has(event.eventId)) continue;
      chain.set(event.eventId, event);
      for (const eventId of event.pdu.auth_events) if (!chain.has(eventId)) next.add(eventId);
    }
    wanted = [...next];
  }
  return [...chain.values()].sort((a, b) => a.roomSeq - b.roomSeq);
}
