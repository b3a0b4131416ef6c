// A participant that joins an encrypted room after earlier commits, and device objects announced
// across servers (issue 5; MLS wire contract sections 2 and 4; docs/encrypted-rooms.md). Two real
// servers on loopback: the participant learns the group's state from its hub (Bobbin's federation
// `group_info` endpoint, for servers with a joined user only), serves it to its user for an
// external join, and checks the next commit against it; device-list updates carry the MLS device
// object, and one with an invalid signature is refused by the receiving server.
import { jest } from "@jest/globals";
import { decodeBase64 } from "../../src/core/base64.js";
import type { JsonObject } from "../../src/core/json.js";
import { signRequest } from "../../src/federation/transport/x-matrix.js";
import { checkDeviceObject } from "../../src/mls-overlay/validate.js";
import { CREDENTIAL_ALGORITHM, ROOM_ALGORITHM } from "../../src/core/mls-wire.js";
import { decodeMlsMessage, type CiphersuiteImpl } from "ts-mls";
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";
import { waitFor } from "../support/wait.js";
import { commit, createRoomGroup, deviceObject, externalJoin, makeDevice, suite, type Member } from "../mls-overlay/mls-builders.js";

jest.setTimeout(60_000);

type Session = { userId: string; accessToken: string; deviceId: string };
const MLS = "/_matrix/client/unstable/org.bobbin.mls";
const GROUP_INFO_FEDERATION = "/_matrix/federation/unstable/org.bobbin.mls/rooms";
const q = encodeURIComponent;
const federation = { allowInsecureHttp: true, trustedKeyServers: [], outbound: { backoff: { initialMs: 100, maxMs: 1_000 } } };

let hub: TestServer;
let participant: TestServer;
let cs: CiphersuiteImpl;
let alice: Session;
let roomId: string;

beforeAll(async () => {
  cs = await suite();
  const [hubPort, participantPort] = [await freePort(), await freePort()];
  hub = await startTestServer({ serverName: `localhost:${hubPort}`, port: hubPort, federation });
  participant = await startTestServer({ serverName: `localhost:${participantPort}`, port: participantPort, federation });
  alice = await hub.register("alice");
});
afterAll(async () => {
  await hub?.close();
  await participant?.close();
});

/** A federation GET signed by `from`, as its federation client would send it. */
async function federationGet(from: TestServer, to: TestServer, uri: string): Promise<{ status: number; body: any }> {
  const [authorization] = signRequest({ method: "GET", uri, origin: from.serverName, destination: to.serverName }, [from.signingKey]);
  const response = await fetch(to.baseUrl + uri, { headers: { authorization: authorization! } });
  return { status: response.status, body: await response.json() };
}

let txnCounter = 0;
/** A `PUT /send` of `edus` signed by `from`, as `from`'s outbound queue would send it. */
async function sendEdus(from: TestServer, to: TestServer, edus: JsonObject[]): Promise<void> {
  const uri = `/_matrix/federation/v1/send/mls-edu-${++txnCounter}`;
  const content = { origin: from.serverName, origin_server_ts: Date.now(), pdus: [], edus };
  const [authorization] = signRequest({ method: "PUT", uri, origin: from.serverName, destination: to.serverName, content }, [from.signingKey]);
  const response = await fetch(to.baseUrl + uri, { method: "PUT", headers: { authorization: authorization!, "content-type": "application/json" }, body: JSON.stringify(content) });
  expect(response.status).toBe(200);
}

const submit = (server: TestServer, session: Session, content: JsonObject) =>
  server.request("POST", `${MLS}/rooms/${q(roomId)}/commit`, { token: session.accessToken, body: { commit: content.message, group_info: content.public_group_state } });

test("a participant that joins after two commits gets the group's state from its hub and checks the next commit against it", async () => {
  const created = await hub.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: { preset: "public_chat", creation_content: { encryption: { algorithm: ROOM_ALGORITHM } } } });
  roomId = created.body.room_id as string;
  let alices: Member = await createRoomGroup(cs, roomId, await makeDevice(cs, alice.userId, alice.deviceId));
  const commits: JsonObject[] = [];
  for (const epoch of [1, 2]) {
    const next = await commit(cs, alices, []);
    expect(await submit(hub, alice, next.content)).toMatchObject({ status: 200, body: { epoch } });
    alices = { ...alices, state: next.newState };
    commits.push(next.content);
  }

  // The hub serves the GroupInfo only to a server with a joined user.
  const current = `${GROUP_INFO_FEDERATION}/${q(roomId)}/group_info`;
  expect(await federationGet(participant, hub, current)).toMatchObject({ status: 403, body: { errcode: "M_FORBIDDEN" } });

  const carol = await participant.register("carol");
  expect((await participant.request("POST", `/_matrix/client/v3/join/${q(roomId)}`, { token: carol.accessToken, body: {} })).status).toBe(200);
  await waitFor("the hub to see carol joined", async () => ((await hub.homeserver.storage.events.getMembers(roomId, "join")).includes(carol.userId) ? true : undefined));
  // Current and earlier epochs: each is the public_group_state of the commit that started it.
  const hubAnswer = await federationGet(participant, hub, current);
  expect(hubAnswer).toMatchObject({ status: 200, body: { epoch: 2, group_info: commits[1]!.public_group_state } });
  expect(await federationGet(participant, hub, `${current}?epoch=1`)).toMatchObject({ status: 200, body: { epoch: 1, group_info: commits[0]!.public_group_state } });
  expect((await federationGet(participant, hub, `${current}?epoch=7`)).status).toBe(404);

  // The participant never saw a commit, yet its user reads the GroupInfo (its hub's) and joins from it.
  expect(await participant.homeserver.storage.mls.getGroup(roomId)).toBeUndefined();
  const read = await participant.request("GET", `${MLS}/rooms/${q(roomId)}/group_info`, { token: carol.accessToken });
  expect(read).toMatchObject({ status: 200, body: hubAnswer.body });
  const groupInfo = decodeMlsMessage(decodeBase64(read.body.group_info)!, 0)![0];
  const joined = await externalJoin(cs, groupInfo, await makeDevice(cs, carol.userId, carol.deviceId));
  const sent = await submit(participant, carol, joined.content);
  expect(sent).toMatchObject({ status: 200, body: { epoch: 3 } });

  // Checked against the hub's epoch-2 state (not adopted on trust): both servers hold the same
  // record, the participant knows every epoch from now on, and nothing broke its rules.
  const record = await waitFor("the participant's record at epoch 3", async () => {
    const row = await participant.homeserver.storage.mls.getGroup(roomId);
    return row?.epoch === 3 ? row : undefined;
  });
  expect(record).toEqual(await hub.homeserver.storage.mls.getGroup(roomId));
  expect(await participant.homeserver.storage.mls.getEpochCommit(roomId, 3)).toBe(sent.body.event_id);
  expect(await participant.homeserver.storage.federation.listHubViolations(roomId)).toEqual([]);
  expect(record.devices.map((d) => d.userId).sort()).toEqual([alice.userId, carol.userId].sort());
});

test("device-list updates carry the MLS device object; one with an invalid signature is refused", async () => {
  const bob = await participant.register("bob");
  expect((await participant.request("POST", `/_matrix/client/v3/join/${q(roomId)}`, { token: bob.accessToken, body: {} })).status).toBe(200);
  await waitFor("the hub to see bob joined", async () => ((await hub.homeserver.storage.events.getMembers(roomId, "join")).includes(bob.userId) ? true : undefined));
  const changedSince = async (since: string): Promise<string[]> => {
    const sync = await hub.request("GET", `/_matrix/client/v3/sync?timeout=0&since=${q(since)}`, { token: alice.accessToken });
    return sync.body.device_lists?.changed ?? [];
  };
  const now = async (): Promise<string> => (await hub.request("GET", "/_matrix/client/v3/sync?timeout=0", { token: alice.accessToken })).body.next_batch;

  // Bob publishes his device object on his server: the hub hears of it and serves it, signature intact.
  let since = await now();
  const bobDevice = await makeDevice(cs, bob.userId, bob.deviceId);
  const published = await deviceObject(cs, bobDevice);
  expect((await participant.request("POST", "/_matrix/client/v3/keys/upload", { token: bob.accessToken, body: { device_keys: published } })).status).toBe(200);
  await waitFor("bob's device list change at the hub", async () => ((await changedSince(since)).includes(bob.userId) ? true : undefined));
  const queried = await hub.request("POST", "/_matrix/client/v3/keys/query", { token: alice.accessToken, body: { device_keys: { [bob.userId]: [] } } });
  const served = queried.body.device_keys[bob.userId][bob.deviceId] as JsonObject;
  expect(served).toMatchObject({ keys: { [`${CREDENTIAL_ALGORITHM}:${bob.deviceId}`]: (published.keys as JsonObject)[`${CREDENTIAL_ALGORITHM}:${bob.deviceId}`] } });
  expect(checkDeviceObject(served, { userId: bob.userId, deviceId: bob.deviceId })).toMatchObject({ ok: true });

  // A device-list update whose device object is signed by another key (Matrix shape and the LM
  // draft's `changed` list) changes nothing at the hub; the same update correctly signed does.
  const impostor = await makeDevice(cs, bob.userId, "NEWDEVICE");
  const forged = await deviceObject(cs, impostor, bobDevice.signKey);
  since = await now();
  await sendEdus(participant, hub, [
    { edu_type: "m.device_list_update", content: { user_id: bob.userId, device_id: "NEWDEVICE", stream_id: Date.now(), prev_id: [], deleted: false, keys: forged } },
    { type: "m.device_list_update", sender_id: bob.userId, content: { changed: [forged], removed: [] } },
  ]);
  await new Promise((resolve) => setTimeout(resolve, 200));
  expect(await changedSince(since)).not.toContain(bob.userId);
  await sendEdus(participant, hub, [{ type: "m.device_list_update", sender_id: bob.userId, content: { changed: [await deviceObject(cs, impostor)], removed: [] } }]);
  await waitFor("the valid update at the hub", async () => ((await changedSince(since)).includes(bob.userId) ? true : undefined));
});
