// Lazily created ghosts and rooms beyond the client directory and profile lookups (Application
// Service API "Querying"): joining an unknown alias of the bridge's namespace, and another server
// asking this one for a ghost's profile or for an alias over federation, all ask the bridge first.
// Server A runs the bridge; server B is another homeserver.
import { jest } from "@jest/globals";
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";
import { EchoBridge, echoRegistration } from "./echo-bridge.js";

jest.setTimeout(60_000);

let a: TestServer;
let b: TestServer;
let bridge: EchoBridge;
const federation = { allowInsecureHttp: true, trustedKeyServers: [], outbound: { backoff: { initialMs: 100, maxMs: 1_000 } } };

beforeAll(async () => {
  const [portA, portB, bridgePort] = [await freePort(), await freePort(), await freePort()];
  const echo = echoRegistration({ port: bridgePort, serverName: `localhost:${portA}` });
  a = await startTestServer({ serverName: `localhost:${portA}`, port: portA, federation, appservices: [echo.loaded] });
  b = await startTestServer({ serverName: `localhost:${portB}`, port: portB, federation });
  bridge = new EchoBridge(echo.loaded, a.baseUrl, { port: bridgePort, serverName: `localhost:${portA}` });
  await bridge.start();
});

afterAll(async () => {
  await bridge?.stop();
  await a?.close();
  await b?.close();
});

test("joining an unknown alias in the bridge's namespace asks the bridge, which creates the room; other unknown aliases stay 404", async () => {
  const alice = await a.register("alice");
  const alias = `#_echo_joinme:${a.serverName}`;
  expect(await a.homeserver.storage.aliases.get(alias)).toBeUndefined();

  const joined = await a.request("POST", `/_matrix/client/v3/join/${encodeURIComponent(alias)}`, { token: alice.accessToken, body: {} });
  expect(joined.status).toBe(200);
  const entry = await a.homeserver.storage.aliases.get(alias);
  expect(joined.body.room_id).toBe(entry?.roomId);
  expect(await a.homeserver.storage.events.getMembers(joined.body.room_id, "join")).toEqual(expect.arrayContaining([alice.userId, bridge.botUserId]));

  const unknown = await a.request("POST", `/_matrix/client/v3/join/${encodeURIComponent(`#nothing:${a.serverName}`)}`, { token: alice.accessToken, body: {} });
  expect(unknown.status).toBe(404);
  expect(unknown.body.errcode).toBe("M_NOT_FOUND");
});

test("another server asking for a ghost's profile over federation makes the bridge create the ghost", async () => {
  const bob = await b.register("bob");
  const ghost = `@_echo_farfetched:${a.serverName}`;
  expect(await a.homeserver.storage.accounts.getUser(ghost)).toBeUndefined();

  const profile = await b.request("GET", `/_matrix/client/v3/profile/${encodeURIComponent(ghost)}`, { token: bob.accessToken });
  expect(profile.status).toBe(200);
  expect(profile.body).toEqual({ displayname: "Echo of farfetched" });
  expect((await a.homeserver.storage.accounts.getUser(ghost))?.appserviceId).toBe("echo");

  // Outside the namespaces nobody is asked: still 404 across servers.
  const stranger = await b.request("GET", `/_matrix/client/v3/profile/${encodeURIComponent(`@nobody:${a.serverName}`)}`, { token: bob.accessToken });
  expect(stranger.status).toBe(404);
});

test("another server resolving an unknown alias of the bridge's namespace over federation gets the room the bridge creates", async () => {
  const bob = await b.register("carol");
  const alias = `#_echo_remote:${a.serverName}`;
  const resolved = await b.request("GET", `/_matrix/client/v3/directory/room/${encodeURIComponent(alias)}`, { token: bob.accessToken });
  expect(resolved.status).toBe(200);
  expect(resolved.body.room_id).toBe((await a.homeserver.storage.aliases.get(alias))?.roomId);
  expect(resolved.body.servers).toContain(a.serverName);
});
