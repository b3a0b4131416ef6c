// End-to-end keys across two Bobbin servers on loopback (Server-Server API "End-to-End
// Encryption", "Device Management"; LM draft "One Time Key Claiming"). A user of A who shares no
// room with B's user downloads B's device keys and claims B's one-time keys through A's Client-Server
// API; A asks B over federation. Servers that cannot answer are `failures`; B's federation
// endpoints answer signed requests about B's own users only; a logout on B reaches A's users.
import { CREDENTIAL_ALGORITHM, encodeDeviceIdentity } from "../../src/core/mls-wire.js";
import { jest } from "@jest/globals";
import { createServer, type Server, type Socket } from "node:net";
import { randomBytes } from "node:crypto";
import { decodeBase64, encodeBase64 } from "../../src/core/base64.js";
import { nativeEd25519 } from "../../src/core/ed25519.js";
import type { JsonObject } from "../../src/core/json.js";
import { signJson, verifyJsonSignatures, type SigningKey } from "../../src/core/signing.js";
import { signRequest } from "../../src/federation/transport/x-matrix.js";
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";
import { waitFor } from "../support/wait.js";

jest.setTimeout(60_000);

type Session = { userId: string; accessToken: string; deviceId: string };

let a: TestServer;
let b: TestServer;
let alice: Session;
let bob: Session;
/** Bob's device signing key: the signatures A hands out must verify with it. */
let bobDeviceKey: SigningKey;
let bobDeviceKeys: JsonObject;
const uploadedOneTimeKeys = new Map<string, JsonObject>();
let fallbackKey: { keyId: string; key: JsonObject };
const federation = { allowInsecureHttp: true, trustedKeyServers: [], outbound: { backoff: { initialMs: 100, maxMs: 1_000 } } };
const q = encodeURIComponent;
const ALGORITHM = "signed_curve25519";

/** A key object signed by the device, as clients upload them (Client-Server API "Key algorithms"). */
function signedKey(extra: JsonObject = {}): JsonObject {
  return signJson({ key: encodeBase64(randomBytes(32)), ...extra }, bob.userId, bobDeviceKey, "codepoint");
}

/** A federation request from `from` to `to`, signed as `from` would sign it (or unsigned). */
async function federationRequest(from: TestServer, to: TestServer, method: string, uri: string, content?: JsonObject, signed = true): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (signed) headers.authorization = signRequest({ method, uri, origin: from.serverName, destination: to.serverName, content }, [from.signingKey])[0]!;
  const response = await fetch(to.baseUrl + uri, { method, headers, ...(content !== undefined ? { body: JSON.stringify(content) } : {}) });
  return { status: response.status, body: await response.json() };
}

async function claimThroughA(body: JsonObject): Promise<{ status: number; body: any }> {
  return a.request("POST", "/_matrix/client/v3/keys/claim", { token: alice.accessToken, body });
}

beforeAll(async () => {
  const [portA, portB] = [await freePort(), await freePort()];
  a = await startTestServer({ serverName: `localhost:${portA}`, port: portA, federation });
  b = await startTestServer({ serverName: `localhost:${portB}`, port: portB, federation });
  alice = await a.register("alice");
  bob = await b.register("bob");

  const signer = nativeEd25519.signerFromSeed(randomBytes(32));
  bobDeviceKey = { keyId: `ed25519:${bob.deviceId}`, signer };
  bobDeviceKeys = signJson(
    {
      user_id: bob.userId,
      device_id: bob.deviceId,
      algorithms: ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
      keys: { [`curve25519:${bob.deviceId}`]: encodeBase64(randomBytes(32)), [`ed25519:${bob.deviceId}`]: encodeBase64(signer.publicKey) },
    },
    bob.userId,
    bobDeviceKey,
    "codepoint",
  );
  for (const id of ["AAAAAQ", "AAAAAg"]) uploadedOneTimeKeys.set(`${ALGORITHM}:${id}`, signedKey());
  fallbackKey = { keyId: `${ALGORITHM}:FALLBACK`, key: signedKey({ fallback: true }) };
  const upload = await b.request("POST", "/_matrix/client/v3/keys/upload", {
    token: bob.accessToken,
    body: { device_keys: bobDeviceKeys, one_time_keys: Object.fromEntries(uploadedOneTimeKeys), fallback_keys: { [fallbackKey.keyId]: fallbackKey.key } },
  });
  expect(upload.status).toBe(200);
  expect(upload.body.one_time_key_counts[ALGORITHM]).toBe(2);
  const renamed = await b.request("PUT", `/_matrix/client/v3/devices/${q(bob.deviceId)}`, { token: bob.accessToken, body: { display_name: "Bob's laptop" } });
  expect(renamed.status).toBe(200);
});
afterAll(async () => {
  await a?.close();
  await b?.close();
});

test("A's user gets B's user's device keys through A's /keys/query, with the device's signatures intact", async () => {
  const query = await a.request("POST", "/_matrix/client/v3/keys/query", { token: alice.accessToken, body: { device_keys: { [bob.userId]: [], [alice.userId]: [] } } });
  expect(query.status).toBe(200);
  expect(query.body.failures).toEqual({});
  // Local and remote answers are merged: alice (no keys uploaded) is there, empty.
  expect(query.body.device_keys[alice.userId]).toEqual({});
  const got = query.body.device_keys[bob.userId][bob.deviceId];
  const { unsigned, ...signed } = got;
  expect(signed).toEqual(bobDeviceKeys);
  expect(unsigned).toEqual({ device_display_name: "Bob's laptop" });
  const verifier = nativeEd25519.verifierFromPublicKey(decodeBase64(got.keys[`ed25519:${bob.deviceId}`])!)!;
  expect(verifyJsonSignatures(got, bob.userId, (_entity, keyId) => (keyId === bobDeviceKey.keyId ? verifier : undefined), "codepoint")).toEqual({ ok: true });

  // Naming devices narrows the answer; a user B does not know has no devices.
  const narrowed = await a.request("POST", "/_matrix/client/v3/keys/query", {
    token: alice.accessToken,
    body: { device_keys: { [bob.userId]: ["NOSUCHDEVICE"], [`@nobody:${b.serverName}`]: [] } },
  });
  expect(narrowed.status).toBe(200);
  expect(narrowed.body.device_keys[bob.userId]).toEqual({});
  expect(narrowed.body.device_keys[`@nobody:${b.serverName}`] ?? {}).toEqual({});
  expect(narrowed.body.failures).toEqual({});
});

test("A's user claims B's one-time keys through A: two different keys, then the fallback key", async () => {
  const wanted = { one_time_keys: { [bob.userId]: { [bob.deviceId]: ALGORITHM } } };
  const claimed: string[] = [];
  for (let i = 0; i < 2; i++) {
    const claim = await claimThroughA(wanted);
    expect(claim.status).toBe(200);
    expect(claim.body.failures).toEqual({});
    const keys = claim.body.one_time_keys[bob.userId][bob.deviceId];
    expect(Object.keys(keys)).toHaveLength(1);
    const [keyId, key] = Object.entries(keys)[0]!;
    expect(key).toEqual(uploadedOneTimeKeys.get(keyId));
    claimed.push(keyId);
  }
  expect(new Set(claimed)).toEqual(new Set(uploadedOneTimeKeys.keys()));

  // B's own count went down: federation claims use B's storage claim, as local claims do.
  const counts = await b.request("POST", "/_matrix/client/v3/keys/upload", { token: bob.accessToken, body: {} });
  expect(counts.body.one_time_key_counts[ALGORITHM]).toBe(0);

  // None left: the fallback key, again and again (Client-Server API "Fallback keys").
  for (let i = 0; i < 2; i++) {
    const claim = await claimThroughA(wanted);
    expect(claim.status).toBe(200);
    expect(claim.body.one_time_keys[bob.userId][bob.deviceId]).toEqual({ [fallbackKey.keyId]: fallbackKey.key });
  }
});

describe("servers without an answer are failures", () => {
  let silent: Server;
  let silentPort: number;
  const held: Socket[] = [];
  beforeAll(async () => {
    // Accepts connections and never answers.
    silent = createServer((socket) => void held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", () => resolve()));
    silentPort = (silent.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });

  test("an unreachable server is in failures; the other server's keys still come", async () => {
    const closedPort = await freePort();
    const unreachable = `localhost:${closedPort}`;
    const query = await a.request("POST", "/_matrix/client/v3/keys/query", {
      token: alice.accessToken,
      body: { device_keys: { [bob.userId]: [], [`@someone:${unreachable}`]: [] } },
    });
    expect(query.status).toBe(200);
    expect(Object.keys(query.body.failures)).toEqual([unreachable]);
    expect(query.body.failures[unreachable].errcode).toEqual(expect.any(String));
    expect(Object.keys(query.body.device_keys[bob.userId])).toEqual([bob.deviceId]);

    const claim = await claimThroughA({ one_time_keys: { [`@someone:${unreachable}`]: { DEVICE: ALGORITHM } } });
    expect(claim.status).toBe(200);
    expect(claim.body).toEqual({ one_time_keys: {}, failures: { [unreachable]: expect.objectContaining({ errcode: expect.any(String) }) } });
  });

  test("a server that does not answer within the request's timeout is a failure, and the answer does not wait for it", async () => {
    const hanging = `localhost:${silentPort}`;
    const started = Date.now();
    const query = await a.request("POST", "/_matrix/client/v3/keys/query", {
      token: alice.accessToken,
      body: { timeout: 500, device_keys: { [bob.userId]: [], [`@someone:${hanging}`]: [] } },
    });
    const elapsed = Date.now() - started;
    expect(query.status).toBe(200);
    expect(Object.keys(query.body.failures)).toEqual([hanging]);
    expect(Object.keys(query.body.device_keys[bob.userId])).toEqual([bob.deviceId]);
    expect(elapsed).toBeGreaterThanOrEqual(450);
    expect(elapsed).toBeLessThan(5_000);
    expect(held.length).toBeGreaterThan(0);
  });
});

test("A asks each server once for all its users, and keeps only what it asked that server about", async () => {
  // A peer that answers with more than it was asked: a device listed under the wrong user, keys
  // for B's user (not its own), a device and an algorithm nobody asked for.
  const received: Array<{ url: string; body: any }> = [];
  const port = await freePort();
  const peer = `localhost:${port}`;
  const [carol, dave] = [`@carol:${peer}`, `@dave:${peer}`];
  const deviceKeys = (userId: string, deviceId: string) => ({ user_id: userId, device_id: deviceId, algorithms: [], keys: {}, signatures: {} });
  const answers: Record<string, unknown> = {
    "/_matrix/federation/v1/user/keys/query": {
      device_keys: {
        // C3's MLS credential names another device (and carries no valid signature): dropped.
        [carol]: { C1: deviceKeys(carol, "C1"), C2: deviceKeys(dave, "C2"), C3: { ...deviceKeys(carol, "C3"), keys: { [`${CREDENTIAL_ALGORITHM}:C3`]: encodeBase64(encodeDeviceIdentity({ userId: carol, deviceId: "C4", signatureKey: new Uint8Array(32).fill(7) })) } } },
        [dave]: {},
        [bob.userId]: { FORGED: deviceKeys(bob.userId, "FORGED") },
      },
    },
    "/_matrix/federation/v1/user/keys/claim": {
      one_time_keys: { [carol]: { C1: { [`${ALGORITHM}:k1`]: "key1", "other_algorithm:k2": "key2" }, C9: { [`${ALGORITHM}:k3`]: "key3" } }, [bob.userId]: { X: { [`${ALGORITHM}:k4`]: "key4" } } },
    },
  };
  const { createServer: createHttpServer } = await import("node:http");
  const liar = createHttpServer((req, res) => {
    let text = "";
    req.on("data", (chunk) => (text += chunk));
    req.on("end", () => {
      received.push({ url: req.url!, body: JSON.parse(text) });
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(answers[req.url!] ?? {}));
    });
  });
  await new Promise<void>((resolve) => liar.listen(port, "127.0.0.1", () => resolve()));
  try {
    const query = await a.request("POST", "/_matrix/client/v3/keys/query", { token: alice.accessToken, body: { device_keys: { [carol]: [], [dave]: [], [bob.userId]: [] } } });
    expect(query.status).toBe(200);
    expect(query.body.failures).toEqual({});
    expect(query.body.device_keys[carol]).toEqual({ C1: deviceKeys(carol, "C1") });
    expect(query.body.device_keys[dave]).toEqual({});
    expect(Object.keys(query.body.device_keys[bob.userId])).toEqual([bob.deviceId]);
    expect(received).toEqual([{ url: "/_matrix/federation/v1/user/keys/query", body: { device_keys: { [carol]: [], [dave]: [] } } }]);

    const claim = await claimThroughA({ one_time_keys: { [carol]: { C1: ALGORITHM } } });
    expect(claim.status).toBe(200);
    expect(claim.body).toEqual({ one_time_keys: { [carol]: { C1: { [`${ALGORITHM}:k1`]: "key1" } } }, failures: {} });
    expect(received[1]).toEqual({ url: "/_matrix/federation/v1/user/keys/claim", body: { one_time_keys: { [carol]: { C1: ALGORITHM } } } });
  } finally {
    await new Promise((resolve) => liar.close(resolve));
  }
});

describe("B's federation endpoints", () => {
  test("refuse unsigned requests", async () => {
    const query = await federationRequest(a, b, "POST", "/_matrix/federation/v1/user/keys/query", { device_keys: { [bob.userId]: [] } }, false);
    expect(query.status).toBe(401);
    expect(query.body.errcode).toBe("M_FORBIDDEN");
    const claim = await federationRequest(a, b, "POST", "/_matrix/federation/v1/user/keys/claim", { one_time_keys: { [bob.userId]: { [bob.deviceId]: ALGORITHM } } }, false);
    expect(claim.status).toBe(401);
    const devices = await federationRequest(a, b, "GET", `/_matrix/federation/v1/user/devices/${q(bob.userId)}`, undefined, false);
    expect(devices.status).toBe(401);
  });

  test("refuse key and device queries about users of other servers", async () => {
    const query = await federationRequest(a, b, "POST", "/_matrix/federation/v1/user/keys/query", { device_keys: { [alice.userId]: [], [bob.userId]: [] } });
    expect(query.status).toBe(400);
    expect(query.body.errcode).toBe("M_INVALID_PARAM");
    const devices = await federationRequest(a, b, "GET", `/_matrix/federation/v1/user/devices/${q(alice.userId)}`);
    expect(devices.status).toBe(400);
    expect(devices.body.errcode).toBe("M_INVALID_PARAM");
    const malformed = await federationRequest(a, b, "POST", "/_matrix/federation/v1/user/keys/query", { device_keys: { [bob.userId]: "all" } });
    expect(malformed.status).toBe(400);
    expect(malformed.body.errcode).toBe("M_BAD_JSON");
  });

  test("claims ignore users of other servers (LM draft) and unknown devices; nothing is claimed for them", async () => {
    const claim = await federationRequest(a, b, "POST", "/_matrix/federation/v1/user/keys/claim", { one_time_keys: { [alice.userId]: { [alice.deviceId]: ALGORITHM }, [bob.userId]: { NOSUCHDEVICE: ALGORITHM } } });
    expect(claim.status).toBe(200);
    expect(claim.body).toEqual({ one_time_keys: {} });
  });

  test("GET user/devices lists the user's devices with keys; an unknown user has none", async () => {
    const before = Date.now();
    const devices = await federationRequest(a, b, "GET", `/_matrix/federation/v1/user/devices/${q(bob.userId)}`);
    expect(devices.status).toBe(200);
    expect(devices.body).toEqual({ user_id: bob.userId, stream_id: expect.any(Number), devices: [{ device_id: bob.deviceId, keys: bobDeviceKeys, device_display_name: "Bob's laptop" }] });
    expect(devices.body.stream_id).toBeGreaterThanOrEqual(before);
    const unknown = await federationRequest(a, b, "GET", `/_matrix/federation/v1/user/devices/${q(`@nobody:${b.serverName}`)}`);
    expect(unknown.status).toBe(200);
    expect(unknown.body).toEqual({ user_id: `@nobody:${b.serverName}`, stream_id: expect.any(Number), devices: [] });
  });
});

test("a logout on B is announced to A, whose user shares a room with B's user", async () => {
  const created = await a.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: { preset: "public_chat" } });
  expect(created.status).toBe(200);
  const roomId: string = created.body.room_id;
  expect((await b.request("POST", `/_matrix/client/v3/join/${q(roomId)}`, { token: bob.accessToken, body: {} })).status).toBe(200);
  await waitFor("bob joined on A", async () => ((await a.homeserver.storage.events.getMembers(roomId, "join")).includes(bob.userId) ? true : undefined));

  // A second session of bob's, created without keys (no device-list update of its own) ...
  const login = await b.request("POST", "/_matrix/client/v3/login", {
    body: { type: "m.login.password", identifier: { type: "m.id.user", user: "bob" }, password: "correct horse battery staple" },
  });
  expect(login.status).toBe(200);
  const since = (await a.request("GET", "/_matrix/client/v3/sync?timeout=0", { token: alice.accessToken })).body.next_batch as string;
  // ... logs out: its deletion goes to A as an m.device_list_update.
  expect((await b.request("POST", "/_matrix/client/v3/logout", { token: login.body.access_token, body: {} })).status).toBe(200);
  await waitFor("bob in alice's device_lists.changed", async () => {
    const sync = await a.request("GET", `/_matrix/client/v3/sync?timeout=0&since=${q(since)}`, { token: alice.accessToken });
    return (sync.body.device_lists?.changed ?? []).includes(bob.userId) ? true : undefined;
  });
});
