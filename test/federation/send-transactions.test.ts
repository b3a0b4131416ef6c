// PUT /send/{txnId} under attack and under retry (LM draft "Sending Events", "Receiving
// Events/PDUs"; Matrix Server-Server API "Transactions"). Two real servers on loopback: A is the
// hub of a public room, B a participant whose user joined through B's client API, so LPDUs from
// B are allowed. The test signs requests as B with B's key (A fetches it from the running B), and
// in the last case as A towards B, to play a hub that tampers with an event's content.
import { createServer, type Server, type Socket } from "node:net";
import { randomBytes } from "node:crypto";
import { jest } from "@jest/globals";
import { nativeEd25519 } from "../../src/core/ed25519.js";
import type { RoomEvent } from "../../src/core/events.js";
import { computeEventId } from "../../src/core/hashes.js";
import type { JsonObject } from "../../src/core/json.js";
import { getRoomVersion, type RoomVersionRules } from "../../src/core/room-versions.js";
import { signEvent } from "../../src/core/signing.js";
import { buildHubEvent, buildLpdu, type RoomTip } from "../../src/room-dag/index.js";
import { rawRequest, signedRequest, type RawResponse } from "../support/federation-requests.js";
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";

jest.setTimeout(60_000);

let a: TestServer;
let b: TestServer;
let alice: { userId: string; accessToken: string };
let bob: { userId: string; accessToken: string };
let roomId: string;
let rules: RoomVersionRules;
const federation = { allowInsecureHttp: true, trustedKeyServers: [], outbound: { backoff: { initialMs: 100, maxMs: 1_000 } } };
const q = encodeURIComponent;

beforeAll(async () => {
  const [portA, portB] = [await freePort(), await freePort()];
  a = await startTestServer({ serverName: `localhost:${portA}`, port: portA, federation });
  b = await startTestServer({ serverName: `localhost:${portB}`, port: portB, federation });
  alice = await a.register("alice");
  bob = await b.register("bob");
  roomId = await publicRoomJoinedByBob();
  const create = await a.homeserver.storage.events.getCurrentStateEvent(roomId, "m.room.create", "");
  rules = getRoomVersion(String(create?.pdu.content.room_version))!;
  expect(rules).toBeDefined();
});
afterAll(async () => {
  await a?.close();
  await b?.close();
});

async function publicRoomJoinedByBob(): Promise<string> {
  const created = await a.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: { preset: "public_chat" } });
  expect(created.status).toBe(200);
  const id: string = created.body.room_id;
  const joined = await b.request("POST", `/_matrix/client/v3/join/${q(id)}`, { token: bob.accessToken, body: {} });
  expect(joined.status).toBe(200);
  return id;
}

let txnCounter = 0;
const newTxnId = (): string => `t${Date.now()}-${++txnCounter}`;

/** A transaction body as B sends it to A. */
const transaction = (pdus: unknown[], edus: unknown[] = []): JsonObject => ({ origin: b.serverName, origin_server_ts: Date.now(), pdus, edus }) as JsonObject;

/** PUT /send as B to A, signed with B's key. */
const sendAsB = (txnId: string, body: JsonObject, prefix = "/_matrix/federation/v1"): Promise<RawResponse> => signedRequest(a, b, "PUT", `${prefix}/send/${q(txnId)}`, body);

/** An LPDU of a message by Bob, signed by B, addressed to A as hub. */
function bobsLpdu(body: string): JsonObject {
  const draft = { room_id: roomId, type: "m.room.message", sender: bob.userId, content: { msgtype: "m.text", body }, origin_server_ts: Date.now() };
  return buildLpdu(draft, a.serverName, { serverName: b.serverName, key: b.signingKey }, rules) as unknown as JsonObject;
}

const logOf = async (server: TestServer, room = roomId) => server.homeserver.storage.events.getRoomEvents(room, { direction: "forward", limit: 10_000 });
const bodiesOnA = async (): Promise<unknown[]> => (await logOf(a)).map((e) => e.pdu.content.body);

describe("LPDUs that fail their checks", () => {
  test("a valid LPDU is placed (the control case for the two below)", async () => {
    const lpdu = bobsLpdu("control");
    const answer = await sendAsB(newTxnId(), transaction([lpdu]));
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ failed_pdus: {} });
    expect(await bodiesOnA()).toContain("control");
  });

  test("an LPDU signed with a key that is not B's is in failed_pdus under its own ID, and not in A's log", async () => {
    const good = bobsLpdu("forged signature");
    const { signatures: _dropped, ...unsigned } = good;
    const impostor = { keyId: b.signingKey.keyId, signer: nativeEd25519.signerFromSeed(randomBytes(32)) };
    const forged = signEvent({ ...unsigned, signatures: {} } as JsonObject, b.serverName, impostor, rules);
    expect(forged.signatures).not.toEqual(good.signatures);
    const before = await logOf(a);

    const answer = await sendAsB(newTxnId(), transaction([forged]));

    expect(answer.status).toBe(200);
    const lpduId = computeEventId(forged, rules);
    expect(Object.keys(answer.body.failed_pdus)).toEqual([lpduId]);
    expect(typeof answer.body.failed_pdus[lpduId].error).toBe("string");
    const after = await logOf(a);
    expect(after.length).toBe(before.length);
    expect(after.map((e) => e.pdu.content.body)).not.toContain("forged signature");
  });

  test("an LPDU whose content changed after it was hashed and signed is refused the same way", async () => {
    const lpdu = bobsLpdu("as signed");
    // The signature covers the redacted LPDU, which has no message content: only the LPDU hash
    // tells the change (pipeline step 3), and an LPDU with a bad hash is refused, not redacted.
    const altered = { ...lpdu, content: { msgtype: "m.text", body: "altered after signing" } };
    const before = await logOf(a);

    const answer = await sendAsB(newTxnId(), transaction([altered]));

    expect(answer.status).toBe(200);
    const lpduId = computeEventId(altered, rules);
    expect(Object.keys(answer.body.failed_pdus)).toEqual([lpduId]);
    expect(answer.body.failed_pdus[lpduId].error).toMatch(/hash/);
    const after = await logOf(a);
    expect(after.length).toBe(before.length);
    expect(after.map((e) => e.pdu.content.body)).not.toContain("altered after signing");
    expect(after.map((e) => e.pdu.content.body)).not.toContain("as signed");
  });
});

describe("transaction IDs", () => {
  test("a replayed transaction is answered identically and places nothing twice", async () => {
    const txnId = newTxnId();
    const lpdus = [bobsLpdu("replay 1"), bobsLpdu("replay 2")];
    const body = transaction(lpdus);
    const first = await sendAsB(txnId, body);
    expect(first.status).toBe(200);
    const countAfterFirst = (await logOf(a)).length;
    expect((await bodiesOnA()).filter((text) => text === "replay 1" || text === "replay 2")).toEqual(["replay 1", "replay 2"]);

    const replay = await sendAsB(txnId, body);
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual(first.body);
    expect((await logOf(a)).length).toBe(countAfterFirst);

    // The transaction ID, not the LPDUs' own deduplication, decides: a replay of the same ID that
    // carries a new LPDU is answered from the stored answer and processes nothing (Server-Server
    // API "Transactions": the same transaction ID is the same transaction).
    const sameIdNewContent = await sendAsB(txnId, transaction([bobsLpdu("smuggled into a replay")]));
    expect(sameIdNewContent.status).toBe(200);
    expect(sameIdNewContent.body).toEqual(first.body);
    expect((await logOf(a)).length).toBe(countAfterFirst);
    expect(await bodiesOnA()).not.toContain("smuggled into a replay");
  });

  test("a replay through another path alias of /send is the same transaction", async () => {
    const txnId = newTxnId();
    const body = transaction([bobsLpdu("alias replay")]);
    const first = await sendAsB(txnId, body, "/_matrix/federation/unstable/org.matrix.i-d.ralston-mimi-linearized-matrix.02");
    expect(first.status).toBe(200);
    const count = (await logOf(a)).length;
    const again = await sendAsB(txnId, body, "/_matrix/federation/v2");
    expect(again.body).toEqual(first.body);
    expect((await logOf(a)).length).toBe(count);
  });

  describe("while a transaction from the same origin is in flight", () => {
    // Deterministic slowness: the first transaction holds an LPDU signed by a server whose key
    // endpoint accepts connections and never answers (a tarpit), so A's key fetch keeps the
    // transaction in flight until the test closes those sockets. The tarpit's first connection
    // proves A is processing the transaction (keys are fetched after it is registered in flight).
    let tarpit: Server;
    let tarpitName: string;
    const sockets: Socket[] = [];
    let connected: Promise<void>;
    /** Once released, the tarpit refuses at once, so a retried key fetch cannot stall the test. */
    let released = false;
    const release = (): void => {
      released = true;
      for (const socket of sockets) socket.destroy();
    };

    beforeAll(async () => {
      let onConnect!: () => void;
      connected = new Promise((resolve) => (onConnect = resolve));
      tarpit = createServer((socket) => {
        socket.on("error", () => undefined);
        if (released) {
          socket.destroy();
          return;
        }
        sockets.push(socket);
        onConnect();
      });
      await new Promise<void>((resolve) => tarpit.listen(0, "127.0.0.1", resolve));
      tarpitName = `localhost:${(tarpit.address() as { port: number }).port}`;
    });
    afterAll(async () => {
      release();
      await new Promise((resolve) => tarpit.close(resolve));
    });

    test("another txnId gets 400 M_BAD_STATE; the same txnId waits for the same answer; afterwards the other is accepted", async () => {
      const stalling = { ...bobsLpdu("stall"), sender: `@mallory:${tarpitName}`, signatures: { [tarpitName]: { "ed25519:x": "AAAA" } } };
      const firstTxn = newTxnId();
      const firstBody = transaction([bobsLpdu("in flight"), stalling]);
      const first = sendAsB(firstTxn, firstBody);
      await connected;

      const other = await sendAsB(newTxnId(), transaction([bobsLpdu("while busy")]));
      expect(other.status).toBe(400);
      expect(other.body.errcode).toBe("M_BAD_STATE");

      const retryOfFirst = sendAsB(firstTxn, firstBody);
      // Release the key fetch: the stalling LPDU fails, the transaction completes.
      release();
      const [firstAnswer, retryAnswer] = await Promise.all([first, retryOfFirst]);
      expect(firstAnswer.status).toBe(200);
      expect(retryAnswer.body).toEqual(firstAnswer.body);
      expect(Object.keys(firstAnswer.body.failed_pdus)).toEqual([computeEventId(stalling, rules)]);
      expect(await bodiesOnA()).toContain("in flight");
      expect(await bodiesOnA()).not.toContain("while busy");

      // The refused transaction was not recorded: sent again once A is free, it is processed.
      const later = await sendAsB(newTxnId(), transaction([bobsLpdu("after the busy one")]));
      expect(later.status).toBe(200);
      expect(later.body).toEqual({ failed_pdus: {} });
      expect(await bodiesOnA()).toContain("after the busy one");
    });
  });
});

describe("transaction shape and limits", () => {
  test("51 PDUs or 101 EDUs are refused with 400, and nothing of them is placed", async () => {
    const before = (await logOf(a)).length;
    const pdus = Array.from({ length: 51 }, (_, i) => bobsLpdu(`too many ${i}`));
    const tooManyPdus = await sendAsB(newTxnId(), transaction(pdus));
    expect(tooManyPdus.status).toBe(400);
    expect(typeof tooManyPdus.body.errcode).toBe("string");
    expect((await logOf(a)).length).toBe(before);

    const edus = Array.from({ length: 101 }, () => ({ edu_type: "m.typing", content: { room_id: roomId, user_id: bob.userId, typing: true } }));
    const tooManyEdus = await sendAsB(newTxnId(), transaction([], edus));
    expect(tooManyEdus.status).toBe(400);
    expect(typeof tooManyEdus.body.errcode).toBe("string");
  });

  test("exactly 50 PDUs and 100 EDUs are accepted, all 50 placed in order", async () => {
    const before = (await logOf(a)).length;
    const pdus = Array.from({ length: 50 }, (_, i) => bobsLpdu(`batch ${i}`));
    const edus = Array.from({ length: 100 }, () => ({ edu_type: "m.typing", content: { room_id: roomId, user_id: bob.userId, typing: false } }));
    const answer = await sendAsB(newTxnId(), transaction(pdus, edus));
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ failed_pdus: {} });
    const placed = (await logOf(a)).slice(before).map((e) => e.pdu.content.body);
    expect(placed).toEqual(pdus.map((_, i) => `batch ${i}`));
  });

  test("a body that is not JSON is 400 M_NOT_JSON", async () => {
    const path = `/_matrix/federation/v1/send/${newTxnId()}`;
    const answer = await rawRequest(a.baseUrl, "PUT", path, { body: "{not json", headers: { authorization: 'X-Matrix origin="x",destination="y",key="ed25519:a",sig="AAAA"' } });
    expect(answer.status).toBe(400);
    expect(answer.body.errcode).toBe("M_NOT_JSON");
  });

  test.each<[string, unknown]>([
    ["an array", []],
    ["a string", "pdus"],
    ["pdus an object", { pdus: { 0: {} } }],
    ["edus a string", { pdus: [], edus: "none" }],
  ])("a transaction that is %s is 400 M_BAD_JSON", async (_name, body) => {
    const answer = await signedRequest(a, b, "PUT", `/_matrix/federation/v1/send/${newTxnId()}`, body as JsonObject);
    expect(answer.status).toBe(400);
    expect(answer.body.errcode).toBe("M_BAD_JSON");
  });

  // `pdus` is a required array (Server-Server API); null is not an empty list.
  test("a transaction whose pdus is null is 400 M_BAD_JSON", async () => {
    const answer = await signedRequest(a, b, "PUT", `/_matrix/federation/v1/send/${newTxnId()}`, { pdus: null, edus: [] });
    expect(answer.status).toBe(400);
    expect(answer.body.errcode).toBe("M_BAD_JSON");
  });

  test("junk entries in pdus are answered per entry, never as an error of the whole transaction", async () => {
    const answer = await sendAsB(newTxnId(), transaction([1, "x", null, [], { room_id: "not a room" }, { room_id: "!unknown:nowhere.invalid", type: "m.room.message" }]));
    expect(answer.status).toBe(200);
    expect(Object.keys(answer.body.failed_pdus).length).toBeGreaterThanOrEqual(2);
  });
});

describe("a participant receiving a tampered PDU from its hub", () => {
  /** A's tip of `room` read from A's storage: what the hub would build its next event on. */
  async function tipOnA(room: string): Promise<RoomTip> {
    const state = await a.homeserver.storage.events.getCurrentState(room);
    const byKey = new Map(state.map((e) => [`${e.pdu.type}\u0000${e.pdu.state_key}`, { eventId: e.eventId, pdu: e.pdu } as RoomEvent]));
    const [last] = await a.homeserver.storage.events.getRoomEvents(room, { direction: "backward", limit: 1 });
    return { get: (type, stateKey) => byKey.get(`${type}\u0000${stateKey}`), lastEvent: last ? { eventId: last.eventId, pdu: last.pdu } : undefined };
  }

  /** A message by Alice as A's hub would build it (signed with A's key), not placed on A. */
  async function alicesMessageSignedByA(room: string, body: string): Promise<RoomEvent> {
    const draft = { room_id: room, type: "m.room.message", sender: alice.userId, content: { msgtype: "m.text", body }, origin_server_ts: Date.now() };
    return buildHubEvent(draft, await tipOnA(room), { serverName: a.serverName, key: a.signingKey }, rules);
  }

  /** PUT /send as A (the room's hub) to B, signed with A's key. */
  const sendAsA = (pdus: unknown[]): Promise<RawResponse> =>
    signedRequest(b, a, "PUT", `/_matrix/federation/v1/send/${q(`tamper-${newTxnId()}`)}`, { origin: a.serverName, origin_server_ts: Date.now(), pdus, edus: [] } as JsonObject);

  test("B stores the redacted copy of a PDU whose content no longer matches its hash, and the intact one whole", async () => {
    // A room of its own: the events built here are never placed on A, so A's log moves on without them.
    const room = await publicRoomJoinedByBob();
    const intact = await alicesMessageSignedByA(room, "intact");
    const intactAnswer = await sendAsA([intact.pdu]);
    expect(intactAnswer.status).toBe(200);
    expect(intactAnswer.body).toEqual({ failed_pdus: {} });
    const intactOnB = await b.homeserver.storage.events.getEvent(intact.eventId);
    expect(intactOnB?.pdu.content).toEqual({ msgtype: "m.text", body: "intact" });

    const original = await alicesMessageSignedByA(room, "what Alice said");
    // Content changed after hashing and signing: A's signature (over the redacted event) still
    // verifies and the event ID is unchanged, but hashes.sha256 no longer matches (receive step 3).
    const tampered = { ...original.pdu, content: { msgtype: "m.text", body: "what the hub made of it" } };
    expect(computeEventId(tampered as unknown as JsonObject, rules)).toBe(original.eventId);

    const answer = await sendAsA([tampered]);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ failed_pdus: {} });
    const stored = await b.homeserver.storage.events.getEvent(original.eventId);
    expect(stored).toBeDefined();
    expect(stored?.pdu.content).toEqual({});
    expect(stored?.pdu.hashes.sha256).toBe(original.pdu.hashes.sha256);
    const logOnB = await logOf(b, room);
    expect(logOnB.map((e) => e.eventId).slice(-2)).toEqual([intact.eventId, original.eventId]);
    expect(JSON.stringify(logOnB)).not.toContain("what the hub made of it");

    // B's client sees the event without its content.
    const messages = await b.request("GET", `/_matrix/client/v3/rooms/${q(room)}/messages?dir=b&limit=3`, { token: bob.accessToken });
    expect(messages.status).toBe(200);
    const seen = messages.body.chunk.find((e: { event_id: string }) => e.event_id === original.eventId);
    expect(seen?.content).toEqual({});
  });

  test("B keeps an event its hub appended against the rules out of state and records it for the admins", async () => {
    const room = await publicRoomJoinedByBob();
    // A message by a user of A who never joined: the auth rules refuse it; a correct hub never appends it.
    const draft = { room_id: room, type: "m.room.message", sender: `@mallory:${a.serverName}`, content: { msgtype: "m.text", body: "not a member" }, origin_server_ts: Date.now() };
    const forbidden = buildHubEvent(draft, await tipOnA(room), { serverName: a.serverName, key: a.signingKey }, rules);
    const answer = await sendAsA([forbidden.pdu]);
    expect(answer.status).toBe(200);
    const stored = await b.homeserver.storage.events.getEvent(forbidden.eventId);
    expect(stored?.softFailed).toBe(true);
    const violations = await b.homeserver.storage.federation.listHubViolations(room);
    expect(violations).toEqual([expect.objectContaining({ roomId: room, eventId: forbidden.eventId, hubServer: a.serverName })]);
    expect(violations[0]?.reason).toMatch(/auth rule/);
    // Bob's client never sees it.
    const messages = await b.request("GET", `/_matrix/client/v3/rooms/${q(room)}/messages?dir=b&limit=5`, { token: bob.accessToken });
    expect(messages.body.chunk.map((e: { event_id: string }) => e.event_id)).not.toContain(forbidden.eventId);
  });
});
