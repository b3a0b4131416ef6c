// Welcome delivery that survives a dead request, a retry and a restart (MLS wire contract section
// 5; mls-overlay/welcome-outbox.ts), and the departed devices in /sync when the timeline does not
// show the change (a limited timeline, a filter). One real server; the crash states are what a
// crash leaves in the database: the commit event appended, its Welcome recorded, nothing delivered.
import { jest } from "@jest/globals";
import { decodeBase64 } from "../../src/core/base64.js";
import { commitHashOf } from "../../src/mls-overlay/mls-overlay.js";
import { decodeDeviceIdentity, ROOM_ALGORITHM, WELCOME_ALGORITHM } from "../../src/core/mls-wire.js";
import { decodeMlsMessage, type CiphersuiteImpl } from "ts-mls";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { waitFor } from "../support/wait.js";
import { addOf, b64, commit, createRoomGroup, join, makeDevice, makeKeyPackage, removeOf, suite, type Commit, type Member, type TestDevice, type TestKeyPackage } from "./mls-builders.js";

jest.setTimeout(60_000);

type Session = { userId: string; accessToken: string; deviceId: string };
const MLS = "/_matrix/client/unstable/org.bobbin.mls";
const q = encodeURIComponent;

let server: TestServer;
let cs: CiphersuiteImpl;

beforeAll(async () => {
  cs = await suite();
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

/** Every to-device event waiting for the device (an initial sync acknowledges none, so repeats show). */
async function inbox(session: Session): Promise<any[]> {
  const sync = await server.request("GET", "/_matrix/client/v3/sync?timeout=0", { token: session.accessToken });
  expect(sync.status).toBe(200);
  return sync.body.to_device?.events ?? [];
}

async function newcomer(localpart: string): Promise<{ session: Session; device: TestDevice; kp: TestKeyPackage }> {
  const session = await server.register(localpart);
  const device = await makeDevice(cs, session.userId, session.deviceId);
  return { session, device, kp: await makeKeyPackage(cs, device) };
}

const welcomeOf = (c: Commit): string => b64({ version: "mls10", wireformat: "mls_welcome", welcome: c.welcome! });

/** Sends the commit as a plain room event: accepted and appended, but no `/commit` request around it. */
async function sendPlain(sender: Session, c: Commit, txnId: string): Promise<string> {
  const sent = await server.request("PUT", `/_matrix/client/v3/rooms/${q(roomId)}/send/m.mls.commit/${txnId}`, { token: sender.accessToken, body: c.content });
  expect(sent.status).toBe(200);
  return sent.body.event_id as string;
}

let roomId: string;

test("a Welcome is delivered once its commit is appended, after a retried request, and after a restart; never twice", async () => {
  const alice = await server.register("alice");
  const aliceDevice = await makeDevice(cs, alice.userId, alice.deviceId);
  const [bob, carol, dave] = [await newcomer("bob"), await newcomer("carol"), await newcomer("dave")];
  const created = await server.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: { preset: "public_chat", creation_content: { encryption: { algorithm: ROOM_ALGORITHM } } } });
  roomId = created.body.room_id as string;
  for (const { session } of [bob, carol, dave]) expect((await server.request("POST", `/_matrix/client/v3/join/${q(roomId)}`, { token: session.accessToken, body: {} })).status).toBe(200);
  const stage = (c: Commit, epoch: number, target: Session, eventId: string | null, welcome = welcomeOf(c)) =>
    server.homeserver.storage.mls.addPendingWelcome({
      roomId,
      commitHash: commitHashOf(c.content.message as string),
      epoch,
      senderUser: alice.userId,
      senderDevice: alice.deviceId,
      welcome,
      targets: [{ userId: target.userId, deviceId: target.deviceId }],
      eventId,
      createdTs: Date.now(),
    });
  let alices: Member = await createRoomGroup(cs, roomId, aliceDevice);

  // 1. The request died after recording the Welcome and sending the commit: appending the commit
  //    binds and delivers it, with the final event ID.
  const addBob = await commit(cs, alices, [addOf(bob.kp)]);
  await stage(addBob, 0, bob.session, null);
  const first = await sendPlain(alice, addBob, "plain-1");
  alices = { ...alices, state: addBob.newState };
  const bobWelcome = await waitFor("bob's Welcome", async () => ((await inbox(bob.session)).length > 0 ? inbox(bob.session) : undefined));
  expect(bobWelcome).toEqual([{ type: "m.room.encrypted", sender: alice.userId, content: { algorithm: WELCOME_ALGORITHM, ciphertext: welcomeOf(addBob), commit_event_id: first } }]);

  // 2. Crash between the append (Welcome bound) and the delivery; the client retries /commit:
  //    the same event, the Welcome delivered now — and a second retry delivers nothing more.
  const addCarol = await commit(cs, alices, [addOf(carol.kp)]);
  const second = await sendPlain(alice, addCarol, "plain-2");
  alices = { ...alices, state: addCarol.newState };
  await stage(addCarol, 1, carol.session, second);
  expect(await inbox(carol.session)).toEqual([]);
  const body = { commit: addCarol.content.message, group_info: addCarol.content.public_group_state, welcome: welcomeOf(addCarol) };
  for (let attempt = 0; attempt < 2; attempt++) {
    const retried = await server.request("POST", `${MLS}/rooms/${q(roomId)}/commit`, { token: alice.accessToken, body });
    expect(retried).toMatchObject({ status: 200, body: { event_id: second, epoch: 2 } });
  }
  const carolInbox = await inbox(carol.session);
  expect(carolInbox.map((e) => e.content.commit_event_id)).toEqual([second]);

  // 3. The same crash, then a restart: the Welcome goes out at startup, once. A Welcome whose commit
  //    was never appended (the room is past its epoch) is dropped, never delivered.
  const addDave = await commit(cs, alices, [addOf(dave.kp)]);
  const third = await sendPlain(alice, addDave, "plain-3");
  alices = { ...alices, state: addDave.newState };
  await stage(addDave, 2, dave.session, third);
  const stale = await commit(cs, { ...alices, state: addCarol.newState }, []);
  await stage(stale, 2, dave.session, null, welcomeOf(addDave));
  await server.restart();
  const daveInbox = await waitFor("dave's Welcome after the restart", async () => {
    const events = await inbox(dave.session);
    return events.length > 0 ? events : undefined;
  });
  await server.restart();
  expect(await inbox(dave.session)).toEqual(daveInbox);
  expect(daveInbox.map((e) => e.content.commit_event_id)).toEqual([third]);
  expect(await server.homeserver.storage.mls.listPendingWelcomes(10)).toEqual([]);
  // The Welcome is the real one: Dave's device joins the group at epoch 3 from it.
  const welcome = decodeMlsMessage(decodeBase64(daveInbox[0].content.ciphertext)!, 0)![0];
  if (welcome.wireformat !== "mls_welcome") throw new Error("not a Welcome");
  const daves = await join(cs, welcome.welcome, dave.kp, dave.device);
  expect(daves.state.groupContext.epoch).toBe(3n);
  // A normal /commit leaves nothing pending either.
  const erin = await newcomer("erin");
  expect((await server.request("POST", `/_matrix/client/v3/join/${q(roomId)}`, { token: erin.session.accessToken, body: {} })).status).toBe(200);
  const addErin = await commit(cs, alices, [addOf(erin.kp)]);
  const viaCommit = await server.request("POST", `${MLS}/rooms/${q(roomId)}/commit`, { token: alice.accessToken, body: { commit: addErin.content.message, group_info: addErin.content.public_group_state, welcome: welcomeOf(addErin) } });
  expect(viaCommit).toMatchObject({ status: 200, body: { epoch: 4 } });
  expect((await inbox(erin.session)).map((e) => e.content.commit_event_id)).toEqual([viaCommit.body.event_id]);
  expect(await server.homeserver.storage.mls.listPendingWelcomes(10)).toEqual([]);
  aliceGroup = { ...alices, state: addErin.newState };
  aliceSession = alice;
  erinSession = erin.session;
});

let aliceGroup: Member;
let aliceSession: Session;
let erinSession: Session;

test("departed devices reach /sync when the timeline does not show the change, and in every initial sync", async () => {
  const departedIn = (sync: any): unknown => sync.body.rooms?.join?.[roomId]?.["org.bobbin.mls.departed_devices"];
  const sync = (query: string) => server.request("GET", `/_matrix/client/v3/sync?timeout=0${query}`, { token: aliceSession.accessToken });
  const before = (await sync("")).body.next_batch as string;
  expect(departedIn(await sync(""))).toBeUndefined();

  // Erin leaves; her device is still in the group. Two messages follow the leave.
  expect((await server.request("POST", `/_matrix/client/v3/rooms/${q(roomId)}/leave`, { token: erinSession.accessToken, body: {} })).status).toBe(200);
  for (const txn of ["m1", "m2"]) {
    expect((await server.request("PUT", `/_matrix/client/v3/rooms/${q(roomId)}/send/m.room.message/${txn}`, { token: aliceSession.accessToken, body: { msgtype: "m.text", body: txn } })).status).toBe(200);
  }
  const expected = { [erinSession.userId]: [erinSession.deviceId] };
  // A limited timeline: the leave is in the gap.
  const limited = await sync(`&since=${q(before)}&filter=${q(JSON.stringify({ room: { timeline: { limit: 1 } } }))}`);
  expect(limited.body.rooms.join[roomId].timeline.limited).toBe(true);
  expect(limited.body.rooms.join[roomId].timeline.events.some((e: any) => e.type === "m.room.member")).toBe(false);
  expect(departedIn(limited)).toEqual(expected);
  // A filter that hides membership events.
  const filtered = await sync(`&since=${q(before)}&filter=${q(JSON.stringify({ room: { timeline: { not_types: ["m.room.member"] } } }))}`);
  expect(filtered.body.rooms.join[roomId].timeline.events.some((e: any) => e.type === "m.room.member")).toBe(false);
  expect(departedIn(filtered)).toEqual(expected);
  // Every initial sync; not an incremental one where nothing changed.
  const initial = await sync("");
  expect(departedIn(initial)).toEqual(expected);
  expect(departedIn(await sync(`&since=${q(initial.body.next_batch)}`))).toBeUndefined();

  // Alice removes Erin's device: the next sync says nothing is left to remove.
  const erinNode = aliceGroup.state.ratchetTree.findIndex((node) => node?.nodeType === "leaf" && node.leaf.credential.credentialType === "basic" && decodeDeviceIdentity(node.leaf.credential.identity)?.deviceId === erinSession.deviceId);
  expect(erinNode).toBeGreaterThanOrEqual(0);
  // Leaf i is node 2i of the array-represented tree (RFC 9420 appendix C).
  const removal = await commit(cs, aliceGroup, [removeOf(erinNode / 2)]);
  const removed = await server.request("POST", `${MLS}/rooms/${q(roomId)}/commit`, { token: aliceSession.accessToken, body: { commit: removal.content.message, group_info: removal.content.public_group_state } });
  expect(removed.status).toBe(200);
  expect(departedIn(await sync(""))).toBeUndefined();
});
