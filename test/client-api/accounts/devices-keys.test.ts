// Devices, end-to-end keys and to-device messages as a client sees them.
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { startTestServer, type TestServer } from "../../support/test-server.js";

const C = "/_matrix/client";
const PASSWORD = "correct horse battery staple";
type Session = { userId: string; accessToken: string; deviceId: string };

function deviceKeys(session: Session) {
  return {
    user_id: session.userId,
    device_id: session.deviceId,
    algorithms: ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
    keys: { [`curve25519:${session.deviceId}`]: "curvekey", [`ed25519:${session.deviceId}`]: "edkey" },
    signatures: { [session.userId]: { [`ed25519:${session.deviceId}`]: "sig" } },
  };
}

describe("accounts: devices", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("lists, reads and renames devices", async () => {
    const alice = await server.register("alice");
    const list = await server.request("GET", `${C}/v3/devices`, { token: alice.accessToken });
    expect(list.status).toBe(200);
    expect(list.body.devices).toHaveLength(1);
    expect(list.body.devices[0]).toMatchObject({ device_id: alice.deviceId });
    expect(typeof list.body.devices[0].last_seen_ts).toBe("number");
    expect((await server.request("PUT", `${C}/v3/devices/${alice.deviceId}`, { token: alice.accessToken, body: { display_name: "Desk" } })).status).toBe(200);
    expect((await server.request("GET", `${C}/v3/devices/${alice.deviceId}`, { token: alice.accessToken })).body).toMatchObject({ device_id: alice.deviceId, display_name: "Desk" });
    expect((await server.request("GET", `${C}/v3/devices/NOPE`, { token: alice.accessToken })).body.errcode).toBe("M_NOT_FOUND");
    expect((await server.request("PUT", `${C}/v3/devices/NOPE`, { token: alice.accessToken, body: { display_name: "x" } })).status).toBe(404);
  });

  it("deletes devices only after UIA with the password; deleting the own device logs it out", async () => {
    const bob = await server.register("bob");
    const other = (await server.request("POST", `${C}/v3/login`, { body: { type: "m.login.password", user: "bob", password: PASSWORD } })).body;
    const first = await server.request("DELETE", `${C}/v3/devices/${other.device_id}`, { token: bob.accessToken });
    expect(first.status).toBe(401);
    expect(first.body.flows).toEqual([{ stages: ["m.login.password"] }]);
    const auth = { type: "m.login.password", identifier: { type: "m.id.user", user: bob.userId }, password: PASSWORD, session: first.body.session };
    // Someone else's password does not do.
    const wrong = await server.request("DELETE", `${C}/v3/devices/${other.device_id}`, { token: bob.accessToken, body: { auth: { ...auth, password: "bad" } } });
    expect(wrong).toMatchObject({ status: 401, body: { errcode: "M_FORBIDDEN" } });
    const done = await server.request("DELETE", `${C}/v3/devices/${other.device_id}`, { token: bob.accessToken, body: { auth } });
    expect(done).toEqual({ status: 200, body: {} });
    expect((await server.request("GET", `${C}/v3/account/whoami`, { token: other.access_token })).status).toBe(401);

    const third = (await server.request("POST", `${C}/v3/login`, { body: { type: "m.login.password", user: "bob", password: PASSWORD } })).body;
    const start = await server.request("POST", `${C}/v3/delete_devices`, { token: bob.accessToken, body: { devices: [third.device_id, bob.deviceId] } });
    expect(start.status).toBe(401);
    const all = await server.request("POST", `${C}/v3/delete_devices`, {
      token: bob.accessToken,
      body: { devices: [third.device_id, bob.deviceId], auth: { type: "m.login.password", user: "bob", password: PASSWORD, session: start.body.session } },
    });
    expect(all.status).toBe(200);
    expect((await server.request("GET", `${C}/v3/account/whoami`, { token: bob.accessToken })).status).toBe(401);
    expect((await server.request("POST", `${C}/v3/delete_devices`, { token: third.access_token, body: {} })).status).toBe(401);
  });

  it("validates delete_devices input", async () => {
    const carol = await server.register("carol");
    expect((await server.request("POST", `${C}/v3/delete_devices`, { token: carol.accessToken, body: {} })).body.errcode).toBe("M_MISSING_PARAM");
    expect((await server.request("POST", `${C}/v3/delete_devices`, { token: carol.accessToken, body: { devices: [1] } })).body.errcode).toBe("M_INVALID_PARAM");
  });
});

describe("accounts: end-to-end keys and to-device messages", () => {
  let server: TestServer;
  let alice: Session;
  let bob: Session;
  beforeAll(async () => {
    server = await startTestServer();
    alice = await server.register("alice");
    bob = await server.register("bob");
  });
  afterAll(async () => {
    await server?.close();
  });

  it("uploads device keys and one-time keys, and reports counts", async () => {
    const upload = await server.request("POST", `${C}/v3/keys/upload`, {
      token: alice.accessToken,
      body: {
        device_keys: deviceKeys(alice),
        one_time_keys: { "signed_curve25519:AAAA": { key: "otk1" }, "signed_curve25519:AAAB": { key: "otk2" } },
        fallback_keys: { "signed_curve25519:FFFF": { key: "fb", fallback: true } },
      },
    });
    expect(upload.status).toBe(200);
    expect(upload.body.one_time_key_counts.signed_curve25519).toBe(2);
    const empty = await server.request("POST", `${C}/v3/keys/upload`, { token: bob.accessToken, body: {} });
    expect(empty.body).toEqual({ one_time_key_counts: { signed_curve25519: 0 } });
  });

  it("refuses device keys for another user or device", async () => {
    const forged = await server.request("POST", `${C}/v3/keys/upload`, { token: bob.accessToken, body: { device_keys: deviceKeys(alice) } });
    expect(forged).toMatchObject({ status: 400, body: { errcode: "M_BAD_JSON" } });
    const badId = await server.request("POST", `${C}/v3/keys/upload`, { token: bob.accessToken, body: { one_time_keys: { nocolon: "x" } } });
    expect(badId.body.errcode).toBe("M_BAD_JSON");
  });

  it("answers key queries for local users and lists remote servers as failures", async () => {
    const query = await server.request("POST", `${C}/v3/keys/query`, { token: bob.accessToken, body: { device_keys: { [alice.userId]: [], "@x:remote.example": [] } } });
    expect(query.status).toBe(200);
    expect(query.body.device_keys[alice.userId][alice.deviceId]).toMatchObject({ user_id: alice.userId, device_id: alice.deviceId, keys: deviceKeys(alice).keys });
    expect(Object.keys(query.body.failures)).toEqual(["remote.example"]);
    const filtered = await server.request("POST", `${C}/v3/keys/query`, { token: bob.accessToken, body: { device_keys: { [alice.userId]: ["OTHER"] } } });
    expect(filtered.body.device_keys[alice.userId]).toEqual({});
    expect((await server.request("POST", `${C}/v3/keys/query`, { token: bob.accessToken, body: { device_keys: { [alice.userId]: "x" } } })).body.errcode).toBe("M_BAD_JSON");
  });

  it("hands out each one-time key once, then reuses the fallback key", async () => {
    const claim = () =>
      server.request("POST", `${C}/v3/keys/claim`, { token: bob.accessToken, body: { one_time_keys: { [alice.userId]: { [alice.deviceId]: "signed_curve25519" } } } });
    const claimed: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await claim();
      expect(res.status).toBe(200);
      claimed.push(...Object.keys(res.body.one_time_keys[alice.userId][alice.deviceId]));
    }
    expect(claimed.slice(0, 2).sort()).toEqual(["signed_curve25519:AAAA", "signed_curve25519:AAAB"]);
    expect(claimed.slice(2)).toEqual(["signed_curve25519:FFFF", "signed_curve25519:FFFF"]);
    const counts = await server.request("POST", `${C}/v3/keys/upload`, { token: alice.accessToken, body: {} });
    expect(counts.body.one_time_key_counts.signed_curve25519).toBe(0);
  });

  it("reports key changes between sync tokens", async () => {
    const changes = await server.request("GET", `${C}/v3/keys/changes?from=s0&to=s999999_0`, { token: alice.accessToken });
    expect(changes.status).toBe(200);
    expect(changes.body.changed).toContain(alice.userId);
    expect(changes.body.left).toEqual([]);
    expect((await server.request("GET", `${C}/v3/keys/changes?from=s0`, { token: alice.accessToken })).body.errcode).toBe("M_MISSING_PARAM");
    expect((await server.request("GET", `${C}/v3/keys/changes?from=zz&to=s1`, { token: alice.accessToken })).body.errcode).toBe("M_INVALID_PARAM");
  });

  it("delivers to-device messages once per transaction ID, to one device or all of them", async () => {
    const storage = server.homeserver.storage;
    const send = (txnId: string, device: string) =>
      server.request("PUT", `${C}/v3/sendToDevice/m.room_key_request/${txnId}`, { token: alice.accessToken, body: { messages: { [bob.userId]: { [device]: { n: txnId } } } } });
    expect(await send("t1", bob.deviceId)).toEqual({ status: 200, body: {} });
    expect(await send("t1", bob.deviceId)).toEqual({ status: 200, body: {} });
    let inbox = await storage.toDevice.getPending(bob.userId, bob.deviceId, Number.MAX_SAFE_INTEGER, 100);
    expect(inbox).toHaveLength(1);
    expect(inbox[0]).toMatchObject({ sender: alice.userId, type: "m.room_key_request", content: { n: "t1" } });

    const second = (await server.request("POST", `${C}/v3/login`, { body: { type: "m.login.password", user: "bob", password: PASSWORD } })).body;
    await send("t2", "*");
    inbox = await storage.toDevice.getPending(bob.userId, bob.deviceId, Number.MAX_SAFE_INTEGER, 100);
    expect(inbox.map((m) => m.content.n)).toEqual(["t1", "t2"]);
    const other = await storage.toDevice.getPending(bob.userId, second.device_id, Number.MAX_SAFE_INTEGER, 100);
    expect(other.map((m) => m.content.n)).toEqual(["t2"]);
    // Remote recipients are skipped, not an error.
    const remote = await server.request("PUT", `${C}/v3/sendToDevice/m.test/t3`, { token: alice.accessToken, body: { messages: { "@x:remote.example": { "*": {} } } } });
    expect(remote.status).toBe(200);
    expect((await server.request("PUT", `${C}/v3/sendToDevice/m.test/t4`, { token: alice.accessToken, body: {} })).body.errcode).toBe("M_MISSING_PARAM");
    expect((await server.request("PUT", `${C}/v3/sendToDevice/m.test/t5`, { token: alice.accessToken, body: { messages: { [bob.userId]: { X: 1 } } } })).body.errcode).toBe("M_BAD_JSON");
  });

  it("keeps device keys across a restart", async () => {
    await server.restart();
    await server.request("GET", `${C}/versions`).catch(() => undefined);
    const query = await server.request("POST", `${C}/v3/keys/query`, { token: bob.accessToken, body: { device_keys: { [alice.userId]: [] } } });
    expect(Object.keys(query.body.device_keys[alice.userId])).toEqual([alice.deviceId]);
  });
});
