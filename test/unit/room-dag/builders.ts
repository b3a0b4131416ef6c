// One-line builders for room-dag tests: two servers with fixed keys, a key lookup, and a hub
// room with members on both servers.
import { createHash } from "node:crypto";
import { nativeEd25519 } from "../../../src/core/ed25519.js";
import type { JsonObject } from "../../../src/core/json.js";
import { DEFAULT_ROOM_VERSION, getRoomVersion, type RoomVersionRules } from "../../../src/core/room-versions.js";
import type { VerifyKeyLookup } from "../../../src/core/signing.js";
import { acceptLpdu, buildHubEvent, buildLpdu, RoomLog, type EventDraft, type ServerIdentity } from "../../../src/room-dag/index.js";

export const rules: RoomVersionRules = getRoomVersion(DEFAULT_ROOM_VERSION)!;
export const ROOM = "!room:hub.example";

/** A server whose key seed is derived from its name, so tests are reproducible. */
export function server(serverName: string): ServerIdentity {
  const seed = createHash("sha256").update(serverName).digest();
  return { serverName, key: { keyId: "ed25519:1", signer: nativeEd25519.signerFromSeed(seed) } };
}

export const hub = server("hub.example");
export const participant = server("participant.example");
export const stranger = server("stranger.example");

export function keysOf(...servers: ServerIdentity[]): VerifyKeyLookup {
  return (entity, keyId) => {
    const s = servers.find((candidate) => candidate.serverName === entity && candidate.key.keyId === keyId);
    return s ? nativeEd25519.verifierFromPublicKey(s.key.signer.publicKey) : undefined;
  };
}

export const keys = keysOf(hub, participant, stranger);

let ts = 1_700_000_000_000;
export function draft(type: string, sender: string, content: JsonObject, stateKey?: string): EventDraft {
  return { room_id: ROOM, type, sender, content, origin_server_ts: ts++, ...(stateKey === undefined ? {} : { state_key: stateKey }) };
}

export const alice = "@alice:hub.example";
export const bob = "@bob:participant.example";

/** A public room on the hub: alice created it (PL 100); bob from the participant server joined through an LPDU. */
export function hubRoom(): RoomLog {
  const log = new RoomLog(ROOM);
  log.append(buildHubEvent(draft("m.room.create", alice, { room_version: rules.id }, ""), log, hub, rules));
  log.append(buildHubEvent(draft("m.room.member", alice, { membership: "join" }, alice), log, hub, rules));
  log.append(buildHubEvent(draft("m.room.power_levels", alice, { users: { [alice]: 100 } }, ""), log, hub, rules));
  log.append(buildHubEvent(draft("m.room.join_rules", alice, { join_rule: "public" }, ""), log, hub, rules));
  const join = acceptLpdu(buildLpdu(draft("m.room.member", bob, { membership: "join" }, bob), hub.serverName, participant, rules), {
    rules,
    keys,
    tip: log,
    hub,
  });
  if (join.action !== "accept") throw new Error(`bob's join was not accepted: ${JSON.stringify(join)}`);
  log.append(join.event);
  return log;
}

/** A participant's replica holding the same history as `log`. */
export function replicaOf(log: RoomLog): RoomLog {
  const replica = new RoomLog(log.roomId);
  for (let i = 0; i < log.length; i++) replica.append(log.at(i)!);
  return replica;
}

/** What a transport delivers: a fresh JSON copy. */
export const overTheWire = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;
