// Who receives a hub's event over federation (LM draft "Sending Events"): every server with at
// least one joined user, plus the server of the user a membership event is about "up to the point
// of" that event (a kicked or banned user's server learns of it; a leaving server gets the echo of
// its own leave). The hub itself is never a destination. The room writer queues one outbox row per
// destination in the event's own transaction and wakes the outbound queues after the commit.
import type { RoomEvent } from "../core/events.js";
import { serverNameOf } from "../core/identifiers.js";

/** Implemented by the outbound federation queues (federation/outbound/). */
export interface FederationFanout {
  /** Outbox rows for these destinations committed: send them. */
  wake(destinations: Iterable<string>): void;
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
