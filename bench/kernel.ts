// npm run bench:kernel — the event kernel's throughput on one core (issue "Event kernel"):
//  (a) crypto ceiling: one Ed25519 verify + one sign per event (the per-event floor, DESIGN.md);
//  (b) hub completion of LPDUs: verify the LPDU signature, check its hash, complete (auth events,
//      prev event, content hash, hub signature, event ID) and authorize against a room with 1,000
//      members, then append;
//  (c) the participant pipeline on the resulting PDUs: both signatures, both hashes, auth, append.
// Prints a table, then one JSON line (last line of output).
import { randomBytes } from "node:crypto";
import { encodeCanonicalJson } from "../src/core/canonical-json.js";
import { getEd25519Backend, type Ed25519BackendName, type Ed25519Verifier } from "../src/core/ed25519.js";
import type { RoomEvent } from "../src/core/events.js";
import { getRoomVersion, DEFAULT_ROOM_VERSION } from "../src/core/room-versions.js";
import type { VerifyKeyLookup } from "../src/core/signing.js";
import { acceptLpdu, buildHubEvent, buildLpdu, receivePdu, RoomLog, type EventDraft, type ServerIdentity } from "../src/room-dag/index.js";

const rules = getRoomVersion(DEFAULT_ROOM_VERSION)!;
const MEMBERS = 1000;
const EVENTS = Number(process.env.BENCH_EVENTS ?? 20000);
const NOBLE_EVENTS = Number(process.env.BENCH_NOBLE_EVENTS ?? 1000);
const ROOM = "!bench:hub.example";
let clock = 1_700_000_000_000;

function identity(serverName: string, backend: Ed25519BackendName): ServerIdentity {
  return { serverName, key: { keyId: "ed25519:1", signer: getEd25519Backend(backend).signerFromSeed(randomBytes(32)) } };
}

function keyLookup(servers: ServerIdentity[], backend: Ed25519BackendName): VerifyKeyLookup {
  const verifiers = new Map<string, Ed25519Verifier>();
  for (const s of servers) verifiers.set(`${s.serverName} ${s.key.keyId}`, getEd25519Backend(backend).verifierFromPublicKey(s.key.signer.publicKey)!);
  return (entity, keyId) => verifiers.get(`${entity} ${keyId}`);
}

const draft = (type: string, sender: string, content: EventDraft["content"], stateKey?: string): EventDraft => ({
  room_id: ROOM,
  type,
  sender,
  content,
  origin_server_ts: clock++,
  ...(stateKey === undefined ? {} : { state_key: stateKey }),
});

function mustAccept(outcome: ReturnType<typeof acceptLpdu>): RoomEvent {
  if (outcome.action !== "accept") throw new Error(`setup event rejected: ${JSON.stringify(outcome)}`);
  return outcome.event;
}

/** A hub room with MEMBERS joined users, half on the hub and half on the participant server. */
function setUpRoom(hub: ServerIdentity, participant: ServerIdentity, keys: VerifyKeyLookup): RoomLog {
  const log = new RoomLog(ROOM);
  const creator = "@creator:hub.example";
  log.append(buildHubEvent(draft("m.room.create", creator, { room_version: rules.id }, ""), log, hub, rules));
  log.append(buildHubEvent(draft("m.room.member", creator, { membership: "join" }, creator), log, hub, rules));
  log.append(buildHubEvent(draft("m.room.power_levels", creator, { users: { [creator]: 100 } }, ""), log, hub, rules));
  log.append(buildHubEvent(draft("m.room.join_rules", creator, { join_rule: "public" }, ""), log, hub, rules));
  for (let i = 1; i < MEMBERS; i++) {
    if (i % 2 === 0) {
      const user = `@user${i}:hub.example`;
      log.append(buildHubEvent(draft("m.room.member", user, { membership: "join" }, user), log, hub, rules));
    } else {
      const user = `@user${i}:participant.example`;
      const lpdu = buildLpdu(draft("m.room.member", user, { membership: "join" }, user), hub.serverName, participant, rules);
      log.append(mustAccept(acceptLpdu(lpdu, { rules, keys, tip: log, hub })));
    }
  }
  if (log.joinedMembers().size !== MEMBERS) throw new Error(`expected ${MEMBERS} members, got ${log.joinedMembers().size}`);
  return log;
}

function messageLpdus(count: number, participant: ServerIdentity, hubServer: string) {
  return Array.from({ length: count }, (_, i) =>
    buildLpdu(
      draft("m.room.message", `@user${(i % (MEMBERS / 2)) * 2 + 1}:participant.example`, { msgtype: "m.text", body: `hello number ${i} from the participant side` }),
      hubServer,
      participant,
      rules,
    ),
  );
}

function eventsPerSecond(count: number, run: () => void): number {
  const start = process.hrtime.bigint();
  run();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return count / seconds;
}

/** (a) One verify and one sign per event over bytes the size of a typical event's canonical JSON. */
function cryptoCeiling(backend: Ed25519BackendName, count: number, messageBytes: number): number {
  const key = identity("hub.example", backend).key;
  const verifier = getEd25519Backend(backend).verifierFromPublicKey(key.signer.publicKey)!;
  const messages = Array.from({ length: 64 }, () => randomBytes(messageBytes));
  const signatures = messages.map((m) => key.signer.sign(m));
  return eventsPerSecond(count, () => {
    for (let i = 0; i < count; i++) {
      const j = i & 63;
      if (!verifier.verify(messages[j]!, signatures[j]!)) throw new Error("verify failed");
      key.signer.sign(messages[j]!);
    }
  });
}

function hubAndParticipant(backend: Ed25519BackendName, count: number) {
  const hub = identity("hub.example", backend);
  const participant = identity("participant.example", backend);
  const keys = keyLookup([hub, participant], backend);
  const hubLog = setUpRoom(hub, participant, keys);
  // The participant's replica starts with the same history (as after a join).
  const replica = new RoomLog(ROOM);
  for (let i = 0; i < hubLog.length; i++) replica.append(hubLog.at(i)!);
  const lpdus = messageLpdus(count, participant, hub.serverName);
  const pdus: RoomEvent[] = [];

  const hubEps = eventsPerSecond(count, () => {
    for (const lpdu of lpdus) {
      const outcome = acceptLpdu(lpdu, { rules, keys, tip: hubLog, hub });
      if (outcome.action !== "accept") throw new Error(`hub rejected: ${JSON.stringify(outcome)}`);
      hubLog.append(outcome.event);
      pdus.push(outcome.event);
    }
  });
  // What arrives over the wire is JSON: give the participant fresh objects, as a transport would.
  const wire = pdus.map((e) => JSON.parse(JSON.stringify(e.pdu)) as unknown);
  const participantEps = eventsPerSecond(count, () => {
    for (const raw of wire) {
      const outcome = receivePdu(raw, { rules, keys, stateBefore: replica, roomId: ROOM });
      if (outcome.action !== "accept") throw new Error(`participant did not accept: ${JSON.stringify(outcome)}`);
      replica.append(outcome.event);
    }
  });
  const sampleBytes = Buffer.byteLength(encodeCanonicalJson(pdus[0]!.pdu as never, rules.canonicalJsonKeyOrder));
  return { hubEps, participantEps, sampleBytes };
}

// Warm up the JIT on a small run first, then measure.
hubAndParticipant("native", 500);
const native = hubAndParticipant("native", EVENTS);
const ceiling = cryptoCeiling("native", EVENTS, native.sampleBytes);
const noble = hubAndParticipant("noble", NOBLE_EVENTS);

const result = {
  crypto_ceiling_eps: Math.round(ceiling),
  hub_complete_eps: Math.round(native.hubEps),
  participant_check_eps: Math.round(native.participantEps),
  ratio: Number((native.hubEps / ceiling).toFixed(3)),
  backend: "native",
  noble_hub_complete_eps: Math.round(noble.hubEps),
};
console.log(`room members: ${MEMBERS}, events: ${EVENTS} (noble: ${NOBLE_EVENTS}), PDU size: ${native.sampleBytes} bytes, node ${process.version}`);
console.table({
  "crypto ceiling (verify+sign)": { "events/s": result.crypto_ceiling_eps },
  "hub completion": { "events/s": result.hub_complete_eps },
  "participant pipeline": { "events/s": result.participant_check_eps },
  "hub completion (noble)": { "events/s": result.noble_hub_complete_eps, },
});
console.log(JSON.stringify(result));
