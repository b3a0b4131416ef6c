// LPDU -> PDU -> participant: the full path of an event from a participant's user through the hub
// and back (LM draft "Linearized PDU", "Receiving Events/PDUs").
import { decodeBase64 } from "../../../src/core/base64.js";
import type { Pdu } from "../../../src/core/events.js";
import { computeContentHash, computeEventId } from "../../../src/core/hashes.js";
import type { JsonObject } from "../../../src/core/json.js";
import { verifyEventSignatures } from "../../../src/core/signing.js";
import { acceptLpdu, buildHubEvent, buildLpdu, completeLpdu, receivePdu } from "../../../src/room-dag/index.js";
import { alice, bob, draft, hub, hubRoom, keys, overTheWire, participant, replicaOf, ROOM, rules, server, stranger } from "./builders.js";

const message = (body: string, sender = bob) => draft("m.room.message", sender, { msgtype: "m.text", body });

describe("participant builds an LPDU", () => {
  const lpdu = buildLpdu(message("hi"), hub.serverName, participant, rules);

  test("has no auth_events or prev_events, only hashes.lpdu, names the hub", () => {
    expect(lpdu).not.toHaveProperty("auth_events");
    expect(lpdu).not.toHaveProperty("prev_events");
    expect(Object.keys(lpdu.hashes)).toEqual(["lpdu"]);
    expect(lpdu.hub_server).toBe("hub.example");
    const { hashes: _h, signatures: _s, ...unhashed } = lpdu;
    expect(lpdu.hashes.lpdu.sha256).toBe(computeContentHash(unhashed as unknown as JsonObject, "lpdu", rules));
  });

  test("is signed by the participant's server only", () => {
    expect(Object.keys(lpdu.signatures)).toEqual(["participant.example"]);
    expect(verifyEventSignatures(lpdu as unknown as JsonObject, "participant.example", keys, rules).ok).toBe(true);
  });

  test("refuses to build for a user of another server", () => {
    expect(() => buildLpdu(message("hi", alice), hub.serverName, participant, rules)).toThrow(/cannot build/);
  });
});

describe("hub completes the LPDU and the participant accepts the PDU", () => {
  const log = hubRoom();
  const replica = replicaOf(log);
  const tipBefore = log.lastEvent!.eventId;
  const lpdu = buildLpdu(message("round trip"), hub.serverName, participant, rules);
  const outcome = acceptLpdu(overTheWire(lpdu), { rules, keys, tip: log, hub, roomId: ROOM });
  if (outcome.action !== "accept") throw new Error(JSON.stringify(outcome));
  const { pdu, eventId } = outcome.event;
  log.append(outcome.event);

  test("the PDU carries auth events, one prev event, both hashes and both signatures", () => {
    expect(pdu.prev_events).toEqual([tipBefore]);
    expect(pdu.auth_events).toEqual([log.get("m.room.create", "")!.eventId, log.get("m.room.power_levels", "")!.eventId, log.get("m.room.member", bob)!.eventId]);
    expect(pdu.hub_server).toBe("hub.example");
    expect(pdu.hashes.lpdu).toEqual(lpdu.hashes.lpdu);
    expect(pdu.hashes.sha256).toBe(computeContentHash(pdu as unknown as JsonObject, "pdu", rules));
    expect(pdu.signatures["participant.example"]).toEqual(lpdu.signatures["participant.example"]);
    expect(Object.keys(pdu.signatures).sort()).toEqual(["hub.example", "participant.example"]);
    expect(eventId).toMatch(/^\$[A-Za-z0-9_-]{43}$/);
    expect(eventId).toBe(computeEventId(pdu as unknown as JsonObject, rules));
  });

  test("the participant's pipeline accepts it with the same event ID", () => {
    const received = receivePdu(overTheWire(pdu), { rules, keys, stateBefore: replica, roomId: ROOM });
    expect(received).toMatchObject({ action: "accept", event: { eventId } });
    if (received.action === "accept") replica.append(received.event);
    expect(replica.lastEvent!.eventId).toBe(log.lastEvent!.eventId);
  });

  /** The state the message was authorized against, as the participant's replica holds it. */
  const stateBeforeMessage = () => log.stateBefore(log.indexOf(eventId)!);

  test("tampered content yields the redacted copy under the same event ID", () => {
    const tampered = overTheWire(pdu);
    tampered.content.body = "something else";
    const received = receivePdu(tampered, { rules, keys, stateBefore: stateBeforeMessage(), roomId: ROOM });
    expect(received.action).toBe("store-redacted");
    if (received.action === "store-redacted") {
      expect(received.event.eventId).toBe(eventId);
      expect(received.event.pdu.content).toEqual({});
      expect(received.reason).toMatch(/content hash/);
    }
  });

  test("a tampered hub signature is dropped at step 2", () => {
    const forged = overTheWire(pdu);
    const sig = decodeBase64(forged.signatures["hub.example"]!["ed25519:1"]!)!;
    sig[0] = sig[0]! ^ 1;
    forged.signatures["hub.example"]!["ed25519:1"] = Buffer.from(sig).toString("base64").replace(/=+$/, "");
    expect(receivePdu(forged, { rules, keys, stateBefore: stateBeforeMessage(), roomId: ROOM })).toMatchObject({ action: "drop", step: 2 });
  });

  test("a missing participant (LPDU) signature is dropped at step 2", () => {
    const unsigned = overTheWire(pdu);
    delete (unsigned.signatures as Record<string, unknown>)["participant.example"];
    expect(receivePdu(unsigned, { rules, keys, stateBefore: stateBeforeMessage(), roomId: ROOM })).toMatchObject({ action: "drop", step: 2 });
  });

  test("signatures by other servers are not considered", () => {
    const extra = overTheWire(pdu);
    extra.signatures["stranger.example"] = { "ed25519:1": "AAAA" };
    expect(receivePdu(extra, { rules, keys, stateBefore: stateBeforeMessage(), roomId: ROOM })).toMatchObject({ action: "accept", event: { eventId } });
  });

  test("a hub_server that is not the room's hub is dropped at step 2", () => {
    // The stranger completes bob's LPDU as if it were the hub, signing correctly.
    const fakeHubLog = replicaOf(hubRoom());
    const lpduToStranger = buildLpdu(message("via the wrong hub"), stranger.serverName, participant, rules);
    const completed = acceptLpdu(lpduToStranger, { rules, keys, tip: fakeHubLog, hub: stranger });
    expect(completed.action).toBe("accept");
    if (completed.action !== "accept") return;
    const received = receivePdu(overTheWire(completed.event.pdu), { rules, keys, stateBefore: fakeHubLog, roomId: ROOM });
    expect(received).toMatchObject({ action: "drop", step: 2 });
    if (received.action === "drop") expect(received.reason).toMatch(/not the room's hub/);
  });

  test("an event for another room is dropped at step 1", () => {
    const elsewhere = overTheWire(pdu);
    elsewhere.room_id = "!other:hub.example";
    expect(receivePdu(elsewhere, { rules, keys, stateBefore: stateBeforeMessage(), roomId: ROOM })).toMatchObject({ action: "drop", step: 1 });
  });
});

describe("hub-local events", () => {
  test("carry no hub_server or LPDU hash and are accepted by participants", () => {
    const log = hubRoom();
    const replica = replicaOf(log);
    const event = buildHubEvent(message("from the hub", alice), log, hub, rules);
    expect(event.pdu).not.toHaveProperty("hub_server");
    expect(Object.keys(event.pdu.hashes)).toEqual(["sha256"]);
    expect(Object.keys(event.pdu.signatures)).toEqual(["hub.example"]);
    expect(receivePdu(overTheWire(event.pdu), { rules, keys, stateBefore: replica, roomId: ROOM })).toMatchObject({
      action: "accept",
      event: { eventId: event.eventId },
    });
  });
});

describe("the hub refuses bad LPDUs with the step that failed", () => {
  const log = hubRoom();
  const ctx = { rules, keys, tip: log, hub, roomId: ROOM };

  test("addressed to another hub: step 1", () => {
    const lpdu = buildLpdu(message("hi"), "elsewhere.example", participant, rules);
    expect(acceptLpdu(lpdu, ctx)).toMatchObject({ action: "reject", step: 1 });
  });

  test("with auth_events or prev_events: step 1", () => {
    const lpdu = { ...buildLpdu(message("hi"), hub.serverName, participant, rules), prev_events: ["$x"] };
    expect(acceptLpdu(lpdu, ctx)).toMatchObject({ action: "reject", step: 1 });
  });

  test("over 65,536 bytes: step 1", () => {
    const lpdu = buildLpdu(message("x".repeat(70_000)), hub.serverName, participant, rules);
    const outcome = acceptLpdu(lpdu, ctx);
    expect(outcome).toMatchObject({ action: "reject", step: 1 });
    if (outcome.action === "reject") expect(outcome.reason).toMatch(/65536/);
  });

  test("signed by a key the hub does not know: step 2", () => {
    const impostor = { ...server("participant.example"), key: { ...server("impostor").key } };
    const lpdu = buildLpdu(message("hi"), hub.serverName, impostor, rules);
    expect(acceptLpdu(lpdu, ctx)).toMatchObject({ action: "reject", step: 2 });
  });

  test("content changed after signing: step 3, the LPDU hash", () => {
    const lpdu = overTheWire(buildLpdu(message("hi"), hub.serverName, participant, rules));
    lpdu.content.body = "changed";
    // The body is redacted away before signing, so the signature still holds; the hash catches it.
    expect(acceptLpdu(lpdu, ctx)).toMatchObject({ action: "reject", step: 3 });
  });

  test("from a user who is not joined: step 5, auth rule 6", () => {
    const carol = "@carol:participant.example";
    const lpdu = buildLpdu(message("let me in", carol), hub.serverName, participant, rules);
    expect(acceptLpdu(lpdu, ctx)).toMatchObject({ action: "reject", step: 5, rule: "6" });
  });

  test("rejected by the room policy (e.g. an MLS check): step 5", () => {
    const lpdu = buildLpdu(draft("m.mls.commit", bob, { message: "AAAA", public_group_state: "AAAA" }), hub.serverName, participant, rules);
    const policy = () => ({ ok: false as const, reason: "epoch already committed" });
    expect(acceptLpdu(lpdu, { ...ctx, policy })).toMatchObject({ action: "reject", step: 5, reason: "epoch already committed" });
  });
});

describe("participants check what the hub appends", () => {
  test("an event the auth rules forbid is rejected at step 4 with its rule", () => {
    // A misbehaving hub completes an LPDU from a user who never joined.
    const log = hubRoom();
    const replica = replicaOf(log);
    const carol = "@carol:participant.example";
    const completed = acceptLpdu(buildLpdu(message("sneaky", carol), hub.serverName, participant, rules), {
      rules,
      keys,
      tip: log,
      hub,
    });
    expect(completed.action).toBe("reject");
    // A hub that skips step 5 completes and signs it anyway.
    const forged = completeLpdu(buildLpdu(message("sneaky", carol), hub.serverName, participant, rules), log, hub, rules).pdu;
    expect(receivePdu(overTheWire(forged), { rules, keys, stateBefore: replica, roomId: ROOM })).toMatchObject({
      action: "reject",
      step: 4,
      rule: "6",
    });
  });

  test("a PDU failing the room policy is soft-failed", () => {
    const log = hubRoom();
    const replica = replicaOf(log);
    const outcome = acceptLpdu(buildLpdu(draft("m.mls.commit", bob, { message: "AAAA", public_group_state: "AAAA" }), hub.serverName, participant, rules), {
      rules,
      keys,
      tip: log,
      hub,
    });
    if (outcome.action !== "accept") throw new Error(JSON.stringify(outcome));
    const policy = () => ({ ok: false as const, reason: "commit removes another user's device" });
    expect(receivePdu(overTheWire(outcome.event.pdu), { rules, keys, stateBefore: replica, roomId: ROOM, policy })).toMatchObject({
      action: "soft-fail",
      step: 5,
    });
  });
});

describe("bad input never throws", () => {
  const replica = hubRoom();
  const inputs: unknown[] = [null, undefined, 42, "event", [], {}, { room_id: 1 }, { type: "m.room.message", content: [] }];
  test.each(inputs.map((input) => [JSON.stringify(input) ?? "undefined", input]))("receivePdu(%s) drops at step 1", (_name, input) => {
    expect(receivePdu(input, { rules, keys, stateBefore: replica })).toMatchObject({ action: "drop", step: 1 });
  });
  test.each(inputs.map((input) => [JSON.stringify(input) ?? "undefined", input]))("acceptLpdu(%s) rejects at step 1", (_name, input) => {
    expect(acceptLpdu(input, { rules, keys, tip: replica, hub })).toMatchObject({ action: "reject", step: 1 });
  });
  test("a float anywhere in the event is dropped at step 1", () => {
    const pdu = overTheWire(buildHubEvent(message("hi", alice), replica, hub, rules).pdu) as Pdu;
    (pdu.content as Record<string, unknown>).weight = 1.5;
    expect(receivePdu(pdu, { rules, keys, stateBefore: replica })).toMatchObject({ action: "drop", step: 1 });
  });
});
