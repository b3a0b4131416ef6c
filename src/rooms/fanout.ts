// Who receives a hub's event over federation (LM draft "Sending Events"): every server with at
// least one joined user, plus the server of the user a membership event is about "up to the point
// of" that event (a kicked or banned user's server learns of it; a leaving server gets the echo of
// its own leave). The hub itself is never a destination. The room writer queues one outbox row per
// destination in the event's own transaction and wakes the outbound queues after the commit.
import type { Pdu, RoomEvent } from "../core/events.js";
import { serverNameOf } from "../core/identifiers.js";

/** An event of a hub room whose outbox rows committed, with the servers it goes to. */
export interface FanoutEvent {
  readonly streamPos: number;
  readonly eventId: string;
  readonly pdu: Pdu;
  readonly destinations: ReadonlySet<string>;
}

/** Implemented by the outbound federation queues (federation/outbound/). */
export interface FederationFanout {
  /** These events' outbox rows committed: send them. */
  queued(events: readonly FanoutEvent[]): void;
  /** A queued event was redacted: send its redacted copy from now on. */
  redacted(eventId: string, pdu: Pdu): void;
}

/** Applies a membership event to a server → joined-user-count map (`before` is the user's previous membership). */
export function applyMembership(joinedServers: Map<string, number>, userId: string, before: unknown, after: unknown): void {
  if ((before === "join") === (after === "join")) return;
  const server = serverNameOf(userId);
  if (server === undefined) return;
  const count = (joinedServers.get(server) ?? 0) + (after === "join" ? 1 : -1);
  if (count > 0) joinedServers.set(server, count);
  else joinedServers.delete(server);
}

/** The destinations of `event` given the joined servers after it. */
export function destinationsOf(event: RoomEvent, joinedServersAfter: ReadonlyMap<string, number>, self: string): string[] {
  const destinations = new Set(joinedServersAfter.keys());
  if (event.pdu.type === "m.room.member" && typeof event.pdu.state_key === "string") {
    const target = serverNameOf(event.pdu.state_key);
    if (target !== undefined) destinations.add(target);
    const sender = serverNameOf(event.pdu.sender);
    if (sender !== undefined) destinations.add(sender);
  }
  destinations.delete(self);
  return [...destinations];
}
