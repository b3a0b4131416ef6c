// The MLS overlay across a hub and a participant (MLS wire contract sections 3–5): KeyPackages
// claimed over federation, a Welcome delivered to a device of the other server, a participant's
// commit validated by the hub and appended by both, racing commits (exactly one wins, the other
// gets 409 whichever server it was sent to), and both servers keeping the same group record.
import { jest } from "@jest/globals";
import { decodeBase64 } from "../../src/core/base64.js";
import type { JsonObject } from "../../src/core/json.js";
import { EPOCH_CONFLICT_ERRCODE, KEY_PACKAGE_ALGORITHM, ROOM_ALGORITHM, WELCOME_ALGORITHM } from "../../src/core/mls-wire.js";
import { acceptAll, decodeMlsMessage, emptyPskIndex, processMessage, type CiphersuiteImpl } from "ts-mls";
import { decodeKeyPackage } from "ts-mls/keyPackage.js";
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";
import { waitFor } from "../support/wait.js";
import { b64, commit, createRoomGroup, deviceObject, encrypt, join, makeDevice, makeKeyPackage, suite, type Member, type TestDevice } from "./mls-builders.js";

jest.setTimeout(60_000);

type Session = { userId: string; accessToken: string; deviceId: string };
const MLS = "/_matrix/client/unstable/org.bobbin.mls";
const q = encodeURIComponent;
const federation = { allowInsecureHttp: true, trustedKeyServers: [], outbound: { backoff: { initialMs: 100, maxMs: 1_000 } } };

let hub: TestServer;
let participant: TestServer;
let cs: CiphersuiteImpl;

beforeAll(async () => {
  cs = await suite();
  const [hubPort, participantPort] = [await freePort(), await freePort()];
  hub = await startTestServer({ serverName: `localhost:${hubPort}`, port: hubPort, federation });
  participant = await startTestServer({ serverName: `localhost:${participantPort}`, port: participantPort, federation });
});
afterAll(async () => {
  await hub?.close();
  await participant?.close();
});

async function publish(server: TestServer, session: Session): Promise<{ device: TestDevice; packages: Map<string, Awaited<ReturnType<typeof makeKeyPackage>>> }> {
  const device = await makeDevice(cs, session.userId, session.deviceId);
  const packages = await Promise.all([makeKeyPackage(cs, device), makeKeyPackage(cs, device)]);
  const upload = await server.request("POST", "/_matrix/client/v3/keys/upload", {
    token: session.accessToken,
    body: { device_keys: await deviceObject(cs, device), one_time_keys: Object.fromEntries(packages.map((kp) => [kp.keyId, kp.encoded])) },
  });
  expect(upload.status).toBe(200);
  expect(upload.body.one_time_key_counts[KEY_PACKAGE_ALGORITHM]).toBe(2);
  return { device, packages: new Map(packages.map((kp) => [kp.keyId, kp])) };
}

async function syncToDevice(server: TestServer, session: Session, since?: string): Promise<{ events: any[]; next: string }> {
  const sync = await server.request("GET", `/_matrix/client/v3/sync?timeout=0${since ? `&since=${q(since)}` : ""}`, { token: session.accessToken });
  return { events: sync.body.to_device?.events ?? [], next: sync.body.next_batch };
}

test("a participant's device is added, commits through the hub, and races a hub commit", async () => {
  const alice = await hub.register("alice");
  const bob = await participant.register("bob");
  const aliceKeys = await publish(hub, alice);
  const bobKeys = await publish(participant, bob);
  const created = await hub.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: { preset: "public_chat", creation_content: { encryption: { algorithm: ROOM_ALGORITHM } } } });
  const roomId = created.body.room_id as string;
  expect((await participant.request("POST", `/_matrix/client/v3/join/${q(roomId)}`, { token: bob.accessToken, body: {} })).status).toBe(200);
  await waitFor("the hub to see bob joined", async () => ((await hub.request("GET", `/_matrix/client/v3/rooms/${q(roomId)}/joined_members`, { token: alice.accessToken })).body.joined?.[bob.userId] ? true : undefined));
  const bobSince = (await syncToDevice(participant, bob)).next;

  // Alice claims Bob's KeyPackage through her server (federation user/keys/claim) and adds him.
  const claimed = await hub.request("POST", "/_matrix/client/v3/keys/claim", { token: alice.accessToken, body: { one_time_keys: { [bob.userId]: { [bob.deviceId]: KEY_PACKAGE_ALGORITHM } } } });
  const [keyId, encoded] = Object.entries(claimed.body.one_time_keys[bob.userId][bob.deviceId] as Record<string, string>)[0]!;
  let aliceMember: Member = await createRoomGroup(cs, roomId, aliceKeys.device);
  const first = await commit(cs, aliceMember, [{ proposalType: "add", add: { keyPackage: decodeKeyPackage(decodeBase64(encoded)!, 0)![0] } }]);
  const welcome = b64({ version: "mls10", wireformat: "mls_welcome", welcome: first.welcome! });
  const sent = await hub.request("POST", `${MLS}/rooms/${q(roomId)}/commit`, { token: alice.accessToken, body: { commit: first.content.message, group_info: first.content.public_group_state, welcome } });
  expect(sent).toMatchObject({ status: 200, body: { epoch: 1 } });
  aliceMember = { ...aliceMember, state: first.newState };

  // The Welcome reaches Bob's device on the other server, naming the final event ID.
  const delivered = await waitFor("bob's Welcome", async () => {
    const { events } = await syncToDevice(participant, bob, bobSince);
    return events.length > 0 ? events : undefined;
  });
  expect(delivered).toEqual([{ type: "m.room.encrypted", sender: alice.userId, content: { algorithm: WELCOME_ALGORITHM, ciphertext: welcome, commit_event_id: sent.body.event_id } }]);
  const welcomeMessage = decodeMlsMessage(decodeBase64(welcome)!, 0)![0];
  if (welcomeMessage.wireformat !== "mls_welcome") throw new Error("not a Welcome");
  let bobMember = await join(cs, welcomeMessage.welcome, bobKeys.packages.get(keyId)!, bobKeys.device);

  // The participant's replica took the same record from the hub's event.
  const groupInfoAt = async (server: TestServer, session: Session): Promise<JsonObject | undefined> => {
    const answer = await server.request("GET", `${MLS}/rooms/${q(roomId)}/group_info`, { token: session.accessToken });
    return answer.status === 200 ? answer.body : undefined;
  };
  expect(await waitFor("the participant's group record", () => groupInfoAt(participant, bob))).toEqual(await groupInfoAt(hub, alice));

  // Bob commits through his server; the hub validates the LPDU.
  const bobCommit = await commit(cs, bobMember, []);
  const bobSent = await participant.request("POST", `${MLS}/rooms/${q(roomId)}/commit`, { token: bob.accessToken, body: { commit: bobCommit.content.message, group_info: bobCommit.content.public_group_state } });
  expect(bobSent).toMatchObject({ status: 200, body: { epoch: 2 } });
  bobMember = { ...bobMember, state: bobCommit.newState };

  // Alice catches up (her client would process Bob's commit from the timeline).
  const bobMessage = decodeMlsMessage(decodeBase64(bobCommit.content.message as string)!, 0)![0];
  if (bobMessage.wireformat !== "mls_public_message") throw new Error("not a PublicMessage");
  const processed = await processMessage(bobMessage, aliceMember.state, emptyPskIndex, acceptAll, cs);
  aliceMember = { ...aliceMember, state: processed.newState };
  expect(await waitFor("the hub's record at epoch 2", async () => ((await groupInfoAt(hub, alice))?.epoch === 2 ? true : undefined))).toBe(true);
  expect(await waitFor("the participant's record at epoch 2", async () => ((await groupInfoAt(participant, bob))?.epoch === 2 ? true : undefined))).toBe(true);

  // Both commit at epoch 2 at once, one on each server: exactly one wins, the other gets 409.
  const [fromHub, fromParticipant] = await Promise.all([commit(cs, aliceMember, []), commit(cs, bobMember, [])]);
  const answers = await Promise.all([
    hub.request("POST", `${MLS}/rooms/${q(roomId)}/commit`, { token: alice.accessToken, body: { commit: fromHub.content.message, group_info: fromHub.content.public_group_state } }),
    participant.request("POST", `${MLS}/rooms/${q(roomId)}/commit`, { token: bob.accessToken, body: { commit: fromParticipant.content.message, group_info: fromParticipant.content.public_group_state } }),
  ]);
  expect(answers.map((a) => a.status).sort()).toEqual([200, 409]);
  const lost = answers.find((a) => a.status === 409)!;
  expect(lost.body).toMatchObject({ errcode: EPOCH_CONFLICT_ERRCODE });
  const won = answers.find((a) => a.status === 200)!;
  expect(won.body.epoch).toBe(3);
  const hubRecord = await waitFor("the hub's record at epoch 3", async () => {
    const info = await groupInfoAt(hub, alice);
    return info?.epoch === 3 ? info : undefined;
  });
  expect(hubRecord.commit_event_id).toBe(won.body.event_id);
  expect(await waitFor("the participant's record at epoch 3", async () => {
    const info = await groupInfoAt(participant, bob);
    return info?.epoch === 3 ? info : undefined;
  })).toEqual(hubRecord);

  // An application message from the participant is checked by the hub; garbage is refused.
  const winnerState = won === answers[0] ? fromHub.newState : fromParticipant.newState;
  const winner: Member = won === answers[0] ? { ...aliceMember, state: winnerState } : { ...bobMember, state: winnerState };
  const session = won === answers[0] ? { server: hub, token: alice.accessToken } : { server: participant, token: bob.accessToken };
  const { ciphertext } = await encrypt(cs, winner, "hello");
  const ok = await session.server.request("PUT", `/_matrix/client/v3/rooms/${q(roomId)}/send/m.room.encrypted/t1`, { token: session.token, body: { algorithm: ROOM_ALGORITHM, ciphertext, commit_event_id: won.body.event_id } });
  expect(ok.status).toBe(200);
  const garbage = await participant.request("PUT", `/_matrix/client/v3/rooms/${q(roomId)}/send/m.room.encrypted/t2`, { token: bob.accessToken, body: { algorithm: ROOM_ALGORITHM, ciphertext: "AAAA", commit_event_id: won.body.event_id } });
  expect(garbage.status).toBeGreaterThanOrEqual(400);
  expect(garbage.status).toBeLessThan(500);
  // Nothing the hub appended broke the participant's rules.
  expect(await participant.homeserver.storage.federation.listHubViolations(roomId)).toEqual([]);
});
