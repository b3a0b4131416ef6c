// Two Bobbin servers on loopback federating for real: a client on one asks for the profile of a
// user on the other, which takes server-name resolution (explicit port), X-Matrix request signing,
// the key ring fetching the requester's keys from it, and signature verification.
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";

let a: TestServer;
let b: TestServer;
const federation = { allowInsecureHttp: true, trustedKeyServers: [] };

beforeAll(async () => {
  const [portA, portB] = [await freePort(), await freePort()];
  a = await startTestServer({ serverName: `localhost:${portA}`, port: portA, federation });
  b = await startTestServer({ serverName: `localhost:${portB}`, port: portB, federation });
});
afterAll(async () => {
  await a?.close();
  await b?.close();
});

test("a client on one server reads the profile of a user on the other", async () => {
  const alice = await a.register("alice");
  const bob = await b.register("bob");
  await b.request("PUT", `/_matrix/client/v3/profile/${encodeURIComponent(bob.userId)}/displayname`, { token: bob.accessToken, body: { displayname: "Bob on B" } });
  const profile = await a.request("GET", `/_matrix/client/v3/profile/${encodeURIComponent(bob.userId)}`, { token: alice.accessToken });
  expect(profile.status).toBe(200);
  expect(profile.body).toEqual({ displayname: "Bob on B" });
  // B verified A's request with A's key, which it fetched and stored.
  const stored = await b.homeserver.storage.serverKeys.getServerKeys(a.serverName);
  expect(stored.map((row) => row.keyId)).toEqual(["ed25519:test"]);

  const unknown = await a.request("GET", `/_matrix/client/v3/profile/${encodeURIComponent(`@nobody:${b.serverName}`)}`, { token: alice.accessToken });
  expect(unknown.status).toBe(404);
  expect(unknown.body.errcode).toBe("M_NOT_FOUND");
});

test("a client on one server resolves a room alias of the other", async () => {
  const carol = await a.register("carol");
  const dave = await b.register("dave");
  const roomId: string = (await b.request("POST", "/_matrix/client/v3/createRoom", { token: dave.accessToken, body: { room_alias_name: "lobby" } })).body.room_id;
  const alias = `#lobby:${b.serverName}`;
  const resolved = await a.request("GET", `/_matrix/client/v3/directory/room/${encodeURIComponent(alias)}`, { token: carol.accessToken });
  expect(resolved.status).toBe(200);
  expect(resolved.body).toEqual({ room_id: roomId, servers: [b.serverName] });
  const missing = await a.request("GET", `/_matrix/client/v3/directory/room/${encodeURIComponent(`#nope:${b.serverName}`)}`, { token: carol.accessToken });
  expect(missing.status).toBe(404);
  expect(missing.body.errcode).toBe("M_NOT_FOUND");
});

test("federation endpoints refuse unsigned requests and unknown paths", async () => {
  const unsigned = await b.request("GET", `/_matrix/federation/v1/query/profile?user_id=${encodeURIComponent(`@bob:${b.serverName}`)}`);
  expect(unsigned.status).toBe(401);
  expect(unsigned.body.errcode).toBe("M_FORBIDDEN");
  const forged = await fetch(`${b.baseUrl}/_matrix/federation/v1/query/profile?user_id=x`, {
    headers: { authorization: `X-Matrix origin="${a.serverName}",destination="${b.serverName}",key="ed25519:test",sig="AAAA"` },
  });
  expect(forged.status).toBe(401);
  const unknownPath = await b.request("GET", "/_matrix/federation/v1/no_such_thing");
  expect(unknownPath.status).toBe(404);
  expect(unknownPath.body.errcode).toBe("M_UNRECOGNIZED");
  const version = await b.request("GET", "/_matrix/federation/v1/version");
  expect(version.body.server.name).toBe("Bobbin");
});
