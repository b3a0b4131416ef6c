// A bridge's ghosts across federation: the bridge runs on server A, the room is hosted on server B.
// A ghost joins and talks (its events become LPDUs that B completes), and B's users' messages
// come back to A and on to the bridge, whose echo ghost answers from A.
import { jest } from "@jest/globals";
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";
import { waitFor } from "../support/wait.js";
import { EchoBridge, echoRegistration } from "./echo-bridge.js";

jest.setTimeout(60_000);

let a: TestServer;
let b: TestServer;
let bridge: EchoBridge;
const federation = { allowInsecureHttp: true, trustedKeyServers: [], outbound: { backoff: { initialMs: 100, maxMs: 1_000 } } };

beforeAll(async () => {
  const [portA, portB, bridgePort] = [await freePort(), await freePort(), await freePort()];
  const serverNameA = `localhost:${portA}`;
  const echo = echoRegistration({ port: bridgePort, serverName: serverNameA });
  a = await startTestServer({ serverName: serverNameA, port: portA, federation, appservices: [echo.loaded], appservicePusher: { backoff: { initialMs: 50, maxMs: 400, jitter: 0.2 } } });
  b = await startTestServer({ serverName: `localhost:${portB}`, port: portB, federation });
  bridge = new EchoBridge(echo.loaded, a.baseUrl, { port: bridgePort, serverName: serverNameA });
  await bridge.start();
});
afterAll(async () => {
  await bridge?.stop();
  await a?.close();
  await b?.close();
});

async function messagesOnB(roomId: string, token: string): Promise<Array<{ sender: string; content: { body?: string } }>> {
  const page = await b.request("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=30`, { token });
  return page.body.chunk.filter((e: { type: string }) => e.type === "m.room.message");
}

test("a ghost of a bridge on A joins and talks in a room hosted on B, and B's messages reach the bridge", async () => {
  const bob = await b.register("bob");
  const created = await b.request("POST", "/_matrix/client/v3/createRoom", { token: bob.accessToken, body: { preset: "public_chat", name: "Hosted on B" } });
  expect(created.status).toBe(200);
  const roomId: string = created.body.room_id;

  const ghost = `@_echo_visitor:${a.serverName}`;
  await bridge.ensureGhost(ghost);
  const joined = await bridge.call("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {}, ghost);
  expect(joined.status).toBe(200);
  const said = await bridge.call("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/g1`, { msgtype: "m.text", body: "hello from a ghost" }, ghost);
  expect(said.status).toBe(200);
  // B, the hub, completed the ghost's LPDU: bob reads it with the ghost as sender.
  const onB = await b.homeserver.storage.events.getEvent(said.body.event_id);
  expect(onB?.pdu).toMatchObject({ sender: ghost, hub_server: b.serverName, content: { body: "hello from a ghost" } });

  // Bob's message reaches A (the ghost is joined there), then the bridge; its echo ghost answers from A.
  const fromBob = await b.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/b1`, { token: bob.accessToken, body: { msgtype: "m.text", body: "echo across servers" } });
  expect(fromBob.status).toBe(200);
  await waitFor("bob's message at the bridge", async () => bridge.events.find((e) => e.event_id === fromBob.body.event_id));
  const echoGhost = `@_echo_bob:${a.serverName}`;
  const reply = await waitFor("the echo on B", async () => (await messagesOnB(roomId, bob.accessToken)).find((e) => e.sender === echoGhost));
  expect(reply.content.body).toBe("echo: across servers");
  // The bridge saw the room's events in the order B appended them.
  const seen = bridge.events.filter((e) => e.room_id === roomId).map((e) => e.event_id);
  const log = (await a.homeserver.storage.events.getRoomEvents(roomId, { direction: "forward", limit: 1000 })).map((e) => e.eventId);
  expect(seen).toEqual(log.filter((id) => seen.includes(id)));
});
