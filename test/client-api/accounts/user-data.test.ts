// Capabilities, push rules, filters, account data and profiles as a client sees them.
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { startTestServer, type TestServer } from "../../support/test-server.js";

const C = "/_matrix/client";

describe("accounts: per-user data", () => {
  let server: TestServer;
  let alice: { userId: string; accessToken: string; deviceId: string };
  let bob: { userId: string; accessToken: string; deviceId: string };
  beforeAll(async () => {
    server = await startTestServer();
    alice = await server.register("alice");
    bob = await server.register("bob");
  });
  afterAll(async () => {
    await server?.close();
  });

  it("advertises capabilities with the LM default room version", async () => {
    const res = await server.request("GET", `${C}/v3/capabilities`, { token: alice.accessToken });
    expect(res.status).toBe(200);
    const caps = res.body.capabilities;
    expect(caps["m.change_password"]).toEqual({ enabled: true });
    expect(caps["m.set_displayname"]).toEqual({ enabled: true });
    expect(caps["m.set_avatar_url"]).toEqual({ enabled: true });
    expect(caps["m.room_versions"].default).toBe("org.matrix.i-d.ralston-mimi-linearized-matrix.02");
    expect(caps["m.room_versions"].available).toMatchObject({ "org.matrix.i-d.ralston-mimi-linearized-matrix.02": "unstable", "I.1": "stable" });
    expect((await server.request("GET", `${C}/v3/capabilities`)).status).toBe(401);
  });

  it("serves the default push rules with the user substituted", async () => {
    const res = await server.request("GET", `${C}/v3/pushrules/`, { token: alice.accessToken });
    expect(res.status).toBe(200);
    const global = res.body.global;
    const ids = (kind: string) => global[kind].map((r: { rule_id: string }) => r.rule_id);
    expect(ids("override")).toEqual(
      expect.arrayContaining([
        ".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me", ".m.rule.member_event", ".m.rule.is_user_mention",
        ".m.rule.contains_display_name", ".m.rule.is_room_mention", ".m.rule.roomnotif", ".m.rule.tombstone", ".m.rule.reaction",
      ]),
    );
    expect(ids("override")[0]).toBe(".m.rule.master");
    expect(ids("content")).toEqual([".m.rule.contains_user_name"]);
    expect(ids("underride")).toEqual([".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one", ".m.rule.message", ".m.rule.encrypted"]);
    expect(global.room).toEqual([]);
    expect(global.sender).toEqual([]);
    expect(global.content[0].pattern).toBe("alice");
    const invite = global.override.find((r: { rule_id: string }) => r.rule_id === ".m.rule.invite_for_me");
    expect(invite.conditions).toContainEqual({ kind: "event_match", key: "state_key", pattern: "@alice:localhost" });
    const master = global.override[0];
    expect(master).toEqual({ rule_id: ".m.rule.master", default: true, enabled: false, conditions: [], actions: [] });

    const scoped = await server.request("GET", `${C}/v3/pushrules/global/`, { token: alice.accessToken });
    expect(scoped.body).toEqual(global);
  });

  it("changes push rules and keeps them in m.push_rules account data", async () => {
    const path = `${C}/v3/pushrules/global/override/.m.rule.master/enabled`;
    expect((await server.request("PUT", path, { token: bob.accessToken, body: { enabled: true } })).status).toBe(200);
    expect((await server.request("GET", path, { token: bob.accessToken })).body).toEqual({ enabled: true });
    const added = await server.request("PUT", `${C}/v3/pushrules/global/room/!room:localhost`, { token: bob.accessToken, body: { actions: [] } });
    expect(added.status).toBe(200);
    const rules = (await server.request("GET", `${C}/v3/pushrules/`, { token: bob.accessToken })).body.global;
    expect(rules.room).toEqual([{ rule_id: "!room:localhost", default: false, enabled: true, actions: [] }]);
    expect((await server.request("DELETE", `${C}/v3/pushrules/global/room/!room:localhost`, { token: bob.accessToken })).status).toBe(200);
    expect((await server.request("GET", `${C}/v3/pushrules/global/room/!room:localhost`, { token: bob.accessToken })).body.errcode).toBe("M_NOT_FOUND");
    expect((await server.request("DELETE", `${C}/v3/pushrules/global/override/.m.rule.master`, { token: bob.accessToken })).status).toBe(403);
    expect((await server.request("PUT", `${C}/v3/pushrules/global/bogus/x`, { token: bob.accessToken, body: { actions: [] } })).body.errcode).toBe("M_INVALID_PARAM");
    const stored = await server.homeserver.storage.accountData.get(bob.userId, null, "m.push_rules");
    expect((stored?.global as { override: Array<{ enabled: boolean }> }).override[0]!.enabled).toBe(true);
  });

  it("stores and returns filters of the requester only", async () => {
    const filter = { room: { timeline: { limit: 10 } }, event_fields: ["type", "content"] };
    const created = await server.request("POST", `${C}/v3/user/${alice.userId}/filter`, { token: alice.accessToken, body: filter });
    expect(created.status).toBe(200);
    expect(typeof created.body.filter_id).toBe("string");
    const got = await server.request("GET", `${C}/v3/user/${encodeURIComponent(alice.userId)}/filter/${created.body.filter_id}`, { token: alice.accessToken });
    expect(got).toEqual({ status: 200, body: filter });
    expect((await server.request("GET", `${C}/v3/user/${alice.userId}/filter/${created.body.filter_id}`, { token: bob.accessToken })).status).toBe(403);
    expect((await server.request("GET", `${C}/v3/user/${alice.userId}/filter/99999`, { token: alice.accessToken })).body.errcode).toBe("M_NOT_FOUND");
    expect((await server.request("POST", `${C}/v3/user/${bob.userId}/filter`, { token: alice.accessToken, body: {} })).body.errcode).toBe("M_FORBIDDEN");
    expect((await server.request("POST", `${C}/v3/user/${alice.userId}/filter`, { token: alice.accessToken, rawBody: "[1]" })).body.errcode).toBe("M_NOT_JSON");
    expect((await server.request("POST", `${C}/v3/user/${alice.userId}/filter`, { token: alice.accessToken, body: { room: 3 } })).body.errcode).toBe("M_BAD_JSON");
  });

  it("round-trips global and room account data, refusing server-managed types", async () => {
    const path = `${C}/v3/user/${alice.userId}/account_data/org.example.config`;
    expect((await server.request("GET", path, { token: alice.accessToken })).status).toBe(404);
    expect((await server.request("PUT", path, { token: alice.accessToken, body: { theme: "dark" } })).status).toBe(200);
    expect(await server.request("GET", path, { token: alice.accessToken })).toEqual({ status: 200, body: { theme: "dark" } });
    expect((await server.request("GET", path, { token: bob.accessToken })).body.errcode).toBe("M_FORBIDDEN");
    expect((await server.request("PUT", path, { token: bob.accessToken, body: {} })).status).toBe(403);
    expect((await server.request("PUT", path, { token: alice.accessToken, rawBody: '"text"' })).body.errcode).toBe("M_NOT_JSON");

    const roomPath = `${C}/v3/user/${alice.userId}/rooms/!abc:localhost/account_data/m.tag`;
    expect((await server.request("PUT", roomPath, { token: alice.accessToken, body: { tags: {} } })).status).toBe(200);
    expect((await server.request("GET", roomPath, { token: alice.accessToken })).body).toEqual({ tags: {} });
    expect((await server.request("PUT", `${C}/v3/user/${alice.userId}/rooms/not-a-room/account_data/m.tag`, { token: alice.accessToken, body: {} })).body.errcode).toBe("M_INVALID_PARAM");

    for (const type of ["m.fully_read", "m.push_rules"]) {
      const refused = await server.request("PUT", `${C}/v3/user/${alice.userId}/account_data/${type}`, { token: alice.accessToken, body: {} });
      expect(refused).toMatchObject({ status: 405, body: { errcode: "M_BAD_JSON" } });
    }
  });

  it("reads and writes profiles", async () => {
    expect(await server.request("GET", `${C}/v3/profile/${alice.userId}`)).toEqual({ status: 200, body: { displayname: "alice" } });
    const set = await server.request("PUT", `${C}/v3/profile/${alice.userId}/displayname`, { token: alice.accessToken, body: { displayname: "Alice A." } });
    expect(set).toEqual({ status: 200, body: {} });
    await server.request("PUT", `${C}/v3/profile/${alice.userId}/avatar_url`, { token: alice.accessToken, body: { avatar_url: "mxc://localhost/abc" } });
    expect((await server.request("GET", `${C}/v3/profile/${alice.userId}`)).body).toEqual({ displayname: "Alice A.", avatar_url: "mxc://localhost/abc" });
    expect((await server.request("GET", `${C}/v3/profile/${alice.userId}/displayname`)).body).toEqual({ displayname: "Alice A." });
    expect((await server.request("PUT", `${C}/v3/profile/${alice.userId}/displayname`, { token: bob.accessToken, body: { displayname: "x" } })).status).toBe(403);
    expect((await server.request("PUT", `${C}/v3/profile/${alice.userId}/displayname`, { token: alice.accessToken, body: { displayname: 4 } })).body.errcode).toBe("M_BAD_JSON");
    expect((await server.request("PUT", `${C}/v3/profile/${alice.userId}/displayname`, { token: alice.accessToken, body: {} })).body.errcode).toBe("M_MISSING_PARAM");
    expect((await server.request("PUT", `${C}/v3/profile/${alice.userId}/avatar_url`, { token: alice.accessToken, body: { avatar_url: "http://x" } })).body.errcode).toBe("M_INVALID_PARAM");
    expect((await server.request("GET", `${C}/v3/profile/@nobody:localhost`)).body.errcode).toBe("M_NOT_FOUND");
    expect((await server.request("GET", `${C}/v3/profile/${bob.userId}/avatar_url`)).body.errcode).toBe("M_NOT_FOUND");
    expect((await server.request("DELETE", `${C}/v3/profile/${alice.userId}/avatar_url`, { token: alice.accessToken })).status).toBe(200);
    expect((await server.request("GET", `${C}/v3/profile/${alice.userId}`)).body).toEqual({ displayname: "Alice A." });
  });

  it("keeps account data, filters and profiles across a restart", async () => {
    await server.restart();
    await server.request("GET", `${C}/versions`).catch(() => undefined);
    expect((await server.request("GET", `${C}/v3/user/${alice.userId}/account_data/org.example.config`, { token: alice.accessToken })).body).toEqual({ theme: "dark" });
    expect((await server.request("GET", `${C}/v3/profile/${alice.userId}`)).body.displayname).toBe("Alice A.");
  });
});
