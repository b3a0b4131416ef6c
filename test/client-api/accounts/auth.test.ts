// Registration, login, tokens, logout and account management as a client sees them.
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { startTestServer, type TestServer } from "../../support/test-server.js";

const C = "/_matrix/client";

/** fetch may reuse a pooled keep-alive socket of the stopped server once; absorb that failure. */
async function settleAfterRestart(server: TestServer): Promise<void> {
  await server.request("GET", `${C}/versions`).catch(() => undefined);
}
const PASSWORD = "correct horse battery staple";

describe("accounts: registration and login", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("serves /versions and the login flows", async () => {
    const versions = await server.request("GET", `${C}/versions`);
    expect(versions.status).toBe(200);
    expect(versions.body.versions).toEqual(expect.arrayContaining(["v1.1", "v1.11"]));
    expect(versions.body.unstable_features).toEqual({});
    const flows = await server.request("GET", `${C}/v3/login`);
    expect(flows.body.flows).toContainEqual({ type: "m.login.password" });
  });

  it("registers through the m.login.dummy UIA flow", async () => {
    const first = await server.request("POST", `${C}/v3/register`, { body: { username: "alice", password: PASSWORD } });
    expect(first.status).toBe(401);
    expect(first.body.flows).toEqual([{ stages: ["m.login.dummy"] }]);
    expect(first.body.params).toEqual({});
    expect(typeof first.body.session).toBe("string");
    expect(first.body.errcode).toBeUndefined();

    const done = await server.request("POST", `${C}/v3/register`, {
      body: { username: "alice", password: PASSWORD, initial_device_display_name: "phone", refresh_token: true, auth: { type: "m.login.dummy", session: first.body.session } },
    });
    expect(done.status).toBe(200);
    expect(done.body.user_id).toBe("@alice:localhost");
    expect(done.body.access_token).toMatch(/^syt_[A-Za-z0-9_-]{43}$/);
    expect(typeof done.body.device_id).toBe("string");
    expect(done.body.home_server).toBe("localhost");
    expect(done.body.refresh_token).toBeUndefined();

    const whoami = await server.request("GET", `${C}/v3/account/whoami`, { token: done.body.access_token });
    expect(whoami.body).toEqual({ user_id: "@alice:localhost", device_id: done.body.device_id, is_guest: false });
    // The session is spent once the flow completed.
    const again = await server.request("POST", `${C}/v3/register`, { body: { username: "alice2", auth: { type: "m.login.dummy", session: first.body.session } } });
    expect(again.status).toBe(401);
    expect(again.body.errcode).toBe("M_UNKNOWN");
  });

  it("refuses taken and invalid usernames before UIA, and folds upper case", async () => {
    await server.register("bob");
    const taken = await server.request("POST", `${C}/v3/register`, { body: { username: "bob", password: PASSWORD } });
    expect(taken).toMatchObject({ status: 400, body: { errcode: "M_USER_IN_USE" } });
    const upper = await server.request("POST", `${C}/v3/register`, { body: { username: "BOB", password: PASSWORD } });
    expect(upper).toMatchObject({ status: 400, body: { errcode: "M_USER_IN_USE" } });
    for (const username of ["has space", "ünïcode", "colon:here", "", "x".repeat(250)]) {
      const invalid = await server.request("POST", `${C}/v3/register`, { body: { username, password: PASSWORD } });
      expect(invalid).toMatchObject({ status: 400, body: { errcode: "M_INVALID_USERNAME" } });
    }
    const mixed = await server.register("Carol");
    expect(mixed.userId).toBe("@carol:localhost");
  });

  it("answers /register/available", async () => {
    await server.register("dave");
    expect(await server.request("GET", `${C}/v3/register/available?username=nobody`)).toEqual({ status: 200, body: { available: true } });
    expect((await server.request("GET", `${C}/v3/register/available?username=dave`)).body.errcode).toBe("M_USER_IN_USE");
    expect((await server.request("GET", `${C}/v3/register/available?username=a%20b`)).body.errcode).toBe("M_INVALID_USERNAME");
    expect((await server.request("GET", `${C}/v3/register/available`)).body.errcode).toBe("M_MISSING_PARAM");
  });

  it("honours inhibit_login and generates a localpart when none is given", async () => {
    const first = await server.request("POST", `${C}/v3/register`, { body: { password: PASSWORD } });
    const done = await server.request("POST", `${C}/v3/register`, { body: { password: PASSWORD, inhibit_login: true, auth: { type: "m.login.dummy", session: first.body.session } } });
    expect(done.status).toBe(200);
    expect(done.body.user_id).toMatch(/^@[0-9]{12}:localhost$/);
    expect(done.body.access_token).toBeUndefined();
    expect(done.body.device_id).toBeUndefined();
  });

  it("rejects a wrong UIA stage and malformed bodies", async () => {
    const wrongStage = await server.request("POST", `${C}/v3/register`, { body: { username: "erin", auth: { type: "m.login.password" } } });
    expect(wrongStage.status).toBe(401);
    expect(wrongStage.body.errcode).toBe("M_UNRECOGNIZED");
    expect(wrongStage.body.flows).toEqual([{ stages: ["m.login.dummy"] }]);
    const notJson = await server.request("POST", `${C}/v3/register`, { rawBody: "{not json" });
    expect(notJson).toMatchObject({ status: 400, body: { errcode: "M_NOT_JSON" } });
    const badType = await server.request("POST", `${C}/v3/register`, { body: { username: 5 } });
    expect(badType).toMatchObject({ status: 400, body: { errcode: "M_INVALID_PARAM" } });
    const badKind = await server.request("POST", `${C}/v3/register?kind=admin`, { body: {} });
    expect(badKind).toMatchObject({ status: 400, body: { errcode: "M_INVALID_PARAM" } });
  });

  it("registers guests without a password", async () => {
    const guest = await server.request("POST", `${C}/v3/register?kind=guest`, { body: { username: "ignored", initial_device_display_name: "guest device" } });
    expect(guest.status).toBe(200);
    expect(guest.body.user_id).toMatch(/^@[0-9]{12}:localhost$/);
    const whoami = await server.request("GET", `${C}/v3/account/whoami`, { token: guest.body.access_token });
    expect(whoami.body.is_guest).toBe(true);
    const stored = await server.homeserver.storage.accounts.getUser(guest.body.user_id);
    expect(stored).toMatchObject({ isGuest: true, passwordHash: null });
  });

  it("logs in by identifier and by the deprecated user field", async () => {
    await server.register("frank");
    const byIdentifier = await server.request("POST", `${C}/v3/login`, {
      body: { type: "m.login.password", identifier: { type: "m.id.user", user: "@frank:localhost" }, password: PASSWORD, device_id: "LAPTOP", initial_device_display_name: "Laptop" },
    });
    expect(byIdentifier.status).toBe(200);
    expect(byIdentifier.body).toMatchObject({ user_id: "@frank:localhost", device_id: "LAPTOP", home_server: "localhost" });
    const byLocalpart = await server.request("POST", `${C}/v3/login`, { body: { type: "m.login.password", identifier: { type: "m.id.user", user: "FRANK" }, password: PASSWORD } });
    expect(byLocalpart.body.user_id).toBe("@frank:localhost");
    const deprecated = await server.request("POST", `${C}/v3/login`, { body: { type: "m.login.password", user: "frank", password: PASSWORD } });
    expect(deprecated.status).toBe(200);
    expect(deprecated.body.access_token).not.toBe(byIdentifier.body.access_token);

    const devices = await server.request("GET", `${C}/v3/devices`, { token: deprecated.body.access_token });
    expect(devices.body.devices).toContainEqual(expect.objectContaining({ device_id: "LAPTOP", display_name: "Laptop" }));
  });

  it("refuses wrong passwords, unknown users, other servers and unknown login types", async () => {
    await server.register("grace");
    const login = (body: object) => server.request("POST", `${C}/v3/login`, { body });
    expect(await login({ type: "m.login.password", user: "grace", password: "nope" })).toMatchObject({ status: 403, body: { errcode: "M_FORBIDDEN" } });
    expect(await login({ type: "m.login.password", user: "nobody", password: PASSWORD })).toMatchObject({ status: 403, body: { errcode: "M_FORBIDDEN" } });
    expect(await login({ type: "m.login.password", user: "@grace:elsewhere", password: PASSWORD })).toMatchObject({ status: 403, body: { errcode: "M_FORBIDDEN" } });
    expect(await login({ type: "m.login.token", token: "x" })).toMatchObject({ status: 400, body: { errcode: "M_UNKNOWN" } });
    expect(await login({ type: "m.login.password", identifier: { type: "m.id.phone", country: "GB", phone: "1" }, password: PASSWORD })).toMatchObject({ status: 400, body: { errcode: "M_UNKNOWN" } });
    expect(await login({ type: "m.login.password", password: PASSWORD })).toMatchObject({ status: 400, body: { errcode: "M_MISSING_PARAM" } });
    expect(await login({ type: "m.login.password", user: "grace" })).toMatchObject({ status: 400, body: { errcode: "M_MISSING_PARAM" } });
    expect(await login({ user: "grace", password: PASSWORD })).toMatchObject({ status: 400, body: { errcode: "M_MISSING_PARAM" } });
  });

  it("accepts the token in the header and the access_token query parameter, and refuses bad tokens", async () => {
    const henry = await server.register("henry");
    expect((await server.request("GET", `${C}/v3/account/whoami?access_token=${henry.accessToken}`)).body.user_id).toBe("@henry:localhost");
    expect(await server.request("GET", `${C}/v3/account/whoami`)).toMatchObject({ status: 401, body: { errcode: "M_MISSING_TOKEN" } });
    expect(await server.request("GET", `${C}/v3/account/whoami`, { token: "syt_bogus" })).toMatchObject({ status: 401, body: { errcode: "M_UNKNOWN_TOKEN" } });
  });

  it("logout invalidates the token and deletes the device; logout/all ends every session", async () => {
    const ivy = await server.register("ivy");
    const second = await server.request("POST", `${C}/v3/login`, { body: { type: "m.login.password", user: "ivy", password: PASSWORD } });
    expect((await server.request("POST", `${C}/v3/logout`, { token: ivy.accessToken, body: {} })).status).toBe(200);
    expect((await server.request("GET", `${C}/v3/account/whoami`, { token: ivy.accessToken })).body.errcode).toBe("M_UNKNOWN_TOKEN");
    const devices = await server.request("GET", `${C}/v3/devices`, { token: second.body.access_token });
    expect(devices.body.devices.map((d: { device_id: string }) => d.device_id)).toEqual([second.body.device_id]);

    const third = await server.request("POST", `${C}/v3/login`, { body: { type: "m.login.password", user: "ivy", password: PASSWORD } });
    expect((await server.request("POST", `${C}/v3/logout/all`, { token: third.body.access_token, body: {} })).status).toBe(200);
    for (const token of [second.body.access_token, third.body.access_token]) {
      expect((await server.request("GET", `${C}/v3/account/whoami`, { token })).status).toBe(401);
    }
  });

  it("changes the password with UIA and logs out other devices", async () => {
    const jack = await server.register("jack");
    const other = await server.request("POST", `${C}/v3/login`, { body: { type: "m.login.password", user: "jack", password: PASSWORD } });
    const first = await server.request("POST", `${C}/v3/account/password`, { token: jack.accessToken, body: { new_password: "new secret" } });
    expect(first.status).toBe(401);
    expect(first.body.flows).toEqual([{ stages: ["m.login.password"] }]);
    const auth = (password: string) => ({ type: "m.login.password", identifier: { type: "m.id.user", user: "@jack:localhost" }, password, session: first.body.session });
    const wrong = await server.request("POST", `${C}/v3/account/password`, { token: jack.accessToken, body: { new_password: "new secret", auth: auth("bad") } });
    expect(wrong).toMatchObject({ status: 401, body: { errcode: "M_FORBIDDEN", session: first.body.session } });
    const done = await server.request("POST", `${C}/v3/account/password`, { token: jack.accessToken, body: { new_password: "new secret", auth: auth(PASSWORD) } });
    expect(done).toEqual({ status: 200, body: {} });
    expect((await server.request("GET", `${C}/v3/account/whoami`, { token: other.body.access_token })).status).toBe(401);
    expect((await server.request("GET", `${C}/v3/account/whoami`, { token: jack.accessToken })).status).toBe(200);
    expect((await server.request("POST", `${C}/v3/login`, { body: { type: "m.login.password", user: "jack", password: "new secret" } })).status).toBe(200);
    expect((await server.request("POST", `${C}/v3/login`, { body: { type: "m.login.password", user: "jack", password: PASSWORD } })).status).toBe(403);
  });

  it("deactivates an account", async () => {
    const kim = await server.register("kim");
    const owner = await server.register("kimsfriend");
    const roomId = (await server.request("POST", `${C}/v3/createRoom`, { token: owner.accessToken, body: { preset: "public_chat", invite: [kim.userId] } })).body.room_id;
    const other = (await server.request("POST", `${C}/v3/createRoom`, { token: owner.accessToken, body: { preset: "public_chat" } })).body.room_id;
    expect((await server.request("POST", `${C}/v3/join/${encodeURIComponent(other)}`, { token: kim.accessToken, body: {} })).status).toBe(200);
    const first = await server.request("POST", `${C}/v3/account/deactivate`, { token: kim.accessToken, body: {} });
    const done = await server.request("POST", `${C}/v3/account/deactivate`, {
      token: kim.accessToken,
      body: { auth: { type: "m.login.password", user: "kim", password: PASSWORD, session: first.body.session } },
    });
    expect(done).toEqual({ status: 200, body: { id_server_unbind_result: "no-support" } });
    expect((await server.request("GET", `${C}/v3/account/whoami`, { token: kim.accessToken })).status).toBe(401);
    const login = await server.request("POST", `${C}/v3/login`, { body: { type: "m.login.password", user: "kim", password: PASSWORD } });
    expect(login).toMatchObject({ status: 403, body: { errcode: "M_USER_DEACTIVATED" } });
    // Deactivation left the joined room and rejected the pending invite.
    for (const room of [roomId, other]) {
      const member = await server.homeserver.storage.events.getCurrentStateEvent(room, "m.room.member", kim.userId);
      expect(member?.pdu.content.membership).toBe("leave");
    }
  });

  // The auth service keeps token lookups in memory: every way of taking access away must reach
  // it before the request that took it away is answered.
  it("refuses a token at once after its access was taken away, though it was just used", async () => {
    const whoami = async (token: string) => (await server.request("GET", `${C}/v3/account/whoami`, { token })).status;
    const login = async (user: string) => (await server.request("POST", `${C}/v3/login`, { body: { type: "m.login.password", user, password: PASSWORD } })).body;
    const nora = await server.register("nora");
    const [phone, laptop, tablet] = [await login("nora"), await login("nora"), await login("nora")];
    for (const token of [nora.accessToken, phone.access_token, laptop.access_token, tablet.access_token]) expect(await whoami(token)).toBe(200);

    // Deleting a device, from another one (UIA: a first 401 hands out the session).
    const path = `${C}/v3/devices/${phone.device_id}`;
    const started = await server.request("DELETE", path, { token: nora.accessToken, body: {} });
    const auth = { type: "m.login.password", identifier: { type: "m.id.user", user: "nora" }, password: PASSWORD, session: started.body.session };
    expect((await server.request("DELETE", path, { token: nora.accessToken, body: { auth } })).status).toBe(200);
    expect(await whoami(phone.access_token)).toBe(401);

    // Logging out.
    expect((await server.request("POST", `${C}/v3/logout`, { token: laptop.access_token, body: {} })).status).toBe(200);
    expect(await whoami(laptop.access_token)).toBe(401);

    // A write straight to storage, inside a transaction (admin tooling, future routes).
    expect(await whoami(tablet.access_token)).toBe(200);
    await server.homeserver.storage.transaction((tx) => tx.accounts.updateUser("@nora:localhost", { deactivated: true }));
    expect(await whoami(tablet.access_token)).toBe(401);
    expect(await whoami(nora.accessToken)).toBe(401);
    // Reactivated: the tokens that were not deleted work again (nothing negative is cached).
    await server.homeserver.storage.accounts.updateUser("@nora:localhost", { deactivated: false });
    expect(await whoami(tablet.access_token)).toBe(200);
    await server.homeserver.storage.accounts.deleteAccessToken(createHash("sha256").update(tablet.access_token).digest("hex"));
    expect(await whoami(tablet.access_token)).toBe(401);
    expect(await whoami(nora.accessToken)).toBe(200);
  });

  it("stores neither passwords nor tokens in clear", async () => {
    const liz = await server.register("liz");
    const user = await server.homeserver.storage.accounts.getUser("@liz:localhost");
    expect(user?.passwordHash).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$/);
    expect(user?.passwordHash).not.toContain(PASSWORD);
    expect(await server.homeserver.storage.accounts.getAccessToken(liz.accessToken)).toBeUndefined();
    const { createHash } = await import("node:crypto");
    const row = await server.homeserver.storage.accounts.getAccessToken(createHash("sha256").update(liz.accessToken).digest("hex"));
    expect(row).toMatchObject({ userId: "@liz:localhost", deviceId: liz.deviceId });
  });

  it("answers unknown endpoints 404 and wrong methods 405, both M_UNRECOGNIZED", async () => {
    expect(await server.request("GET", `${C}/v3/no/such/thing`)).toMatchObject({ status: 404, body: { errcode: "M_UNRECOGNIZED" } });
    expect(await server.request("DELETE", `${C}/v3/login`)).toMatchObject({ status: 405, body: { errcode: "M_UNRECOGNIZED" } });
  });

  it("keeps accounts and sessions across a restart", async () => {
    const mona = await server.register("mona");
    await server.restart();
    await settleAfterRestart(server);
    expect((await server.request("GET", `${C}/v3/account/whoami`, { token: mona.accessToken })).body.user_id).toBe("@mona:localhost");
    expect((await server.request("POST", `${C}/v3/login`, { body: { type: "m.login.password", user: "mona", password: PASSWORD } })).status).toBe(200);
  });
});

describe("accounts: registration policy and rate limits", () => {
  it("refuses registration when closed and guests when not allowed", async () => {
    const server = await startTestServer({ registration: { enabled: false, allowGuests: false } });
    try {
      expect(await server.request("POST", `${C}/v3/register`, { body: { username: "x", password: PASSWORD } })).toMatchObject({ status: 403, body: { errcode: "M_FORBIDDEN" } });
      expect(await server.request("POST", `${C}/v3/register?kind=guest`, { body: {} })).toMatchObject({ status: 403, body: { errcode: "M_FORBIDDEN" } });
    } finally {
      await server.close();
    }
  });

  it("limits login attempts with 429 M_LIMIT_EXCEEDED and retry_after_ms", async () => {
    let now = 1_000_000;
    const server = await startTestServer({ rateLimits: { login: { perSecond: 0.5, burst: 2 } }, now: () => now });
    try {
      await server.register("nina");
      const attempt = () => server.request("POST", `${C}/v3/login`, { body: { type: "m.login.password", user: "nina", password: "wrong" } });
      expect((await attempt()).status).toBe(403);
      expect((await attempt()).status).toBe(403);
      const limited = await attempt();
      expect(limited.status).toBe(429);
      expect(limited.body.errcode).toBe("M_LIMIT_EXCEEDED");
      expect(limited.body.retry_after_ms).toBe(2000);
      now += 2000;
      expect((await attempt()).status).toBe(403);
    } finally {
      await server.close();
    }
  });

  it("limits registrations per client address", async () => {
    const server = await startTestServer({ rateLimits: { register: { perSecond: 0.001, burst: 1 } }, now: () => 5_000 });
    try {
      expect((await server.request("POST", `${C}/v3/register`, { body: { username: "olga" } })).status).toBe(401);
      expect(await server.request("POST", `${C}/v3/register`, { body: { username: "olga" } })).toMatchObject({ status: 429, body: { errcode: "M_LIMIT_EXCEEDED" } });
    } finally {
      await server.close();
    }
  });
});
