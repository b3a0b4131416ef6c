// Room aliases, room directory visibility, public rooms and the user directory.
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { startTestServer, type TestServer } from "../../support/test-server.js";

const C = "/_matrix/client";
type Session = { userId: string; accessToken: string; deviceId: string };

describe("accounts: directories", () => {
  let server: TestServer;
  let alice: Session;
  let bob: Session;
  const roomId = "!room1:localhost";
  const alias = "#lobby:localhost";
  const aliasPath = `${C}/v3/directory/room/${encodeURIComponent(alias)}`;

  beforeAll(async () => {
    server = await startTestServer();
    alice = await server.register("alice");
    bob = await server.register("bob");
    // Rooms come from the rooms service; a bare row is enough for the directory.
    await server.homeserver.storage.transaction((tx) =>
      tx.events.createRoom({ roomId, roomVersion: "org.matrix.i-d.ralston-mimi-linearized-matrix.02", creator: alice.userId, hubServer: "localhost", isPublic: false, createdTs: 1 }),
    );
  });
  afterAll(async () => {
    await server?.close();
  });

  it("creates, resolves and deletes room aliases", async () => {
    expect(await server.request("PUT", aliasPath, { token: alice.accessToken, body: { room_id: roomId } })).toEqual({ status: 200, body: {} });
    expect(await server.request("GET", aliasPath)).toEqual({ status: 200, body: { room_id: roomId, servers: ["localhost"] } });
    expect(await server.request("PUT", aliasPath, { token: bob.accessToken, body: { room_id: roomId } })).toMatchObject({ status: 409, body: { errcode: "M_UNKNOWN" } });
    expect((await server.request("DELETE", aliasPath, { token: bob.accessToken })).body.errcode).toBe("M_FORBIDDEN");
    expect((await server.request("DELETE", aliasPath, { token: alice.accessToken })).status).toBe(200);
    expect(await server.request("GET", aliasPath)).toMatchObject({ status: 404, body: { errcode: "M_NOT_FOUND" } });
    expect((await server.request("DELETE", aliasPath, { token: alice.accessToken })).body.errcode).toBe("M_NOT_FOUND");
  });

  it("validates aliases and room IDs", async () => {
    const put = (a: string, body: unknown) => server.request("PUT", `${C}/v3/directory/room/${encodeURIComponent(a)}`, { token: alice.accessToken, body });
    expect((await put("#other:remote.example", { room_id: roomId })).body.errcode).toBe("M_INVALID_PARAM");
    expect((await put("lobby:localhost", { room_id: roomId })).body.errcode).toBe("M_INVALID_PARAM");
    expect((await put("#nocolon", { room_id: roomId })).body.errcode).toBe("M_INVALID_PARAM");
    expect((await put("#x:localhost", { room_id: "bad" })).body.errcode).toBe("M_INVALID_PARAM");
    expect((await put("#x:localhost", {})).body.errcode).toBe("M_MISSING_PARAM");
    expect((await put("#x:localhost", { room_id: "!missing:localhost" })).body.errcode).toBe("M_NOT_FOUND");
    expect((await server.request("GET", `${C}/v3/directory/room/${encodeURIComponent("#x:remote.example")}`)).status).toBe(404);
  });

  it("publishes rooms in the public room list", async () => {
    expect(await server.request("GET", `${C}/v3/directory/list/room/${roomId}`)).toEqual({ status: 200, body: { visibility: "private" } });
    // Only members (or admins) may publish a room.
    expect((await server.request("PUT", `${C}/v3/directory/list/room/${roomId}`, { token: bob.accessToken, body: { visibility: "public" } })).status).toBe(403);
    await server.homeserver.storage.transaction((tx) => tx.accounts.updateUser(alice.userId, { isAdmin: true }));
    expect((await server.request("PUT", `${C}/v3/directory/list/room/${roomId}`, { token: alice.accessToken, body: { visibility: "public" } })).status).toBe(200);
    expect((await server.request("GET", `${C}/v3/directory/list/room/${roomId}`)).body).toEqual({ visibility: "public" });
    expect((await server.request("PUT", `${C}/v3/directory/list/room/${roomId}`, { token: alice.accessToken, body: { visibility: "open" } })).body.errcode).toBe("M_INVALID_PARAM");
    expect((await server.request("GET", `${C}/v3/directory/list/room/!missing:localhost`)).body.errcode).toBe("M_NOT_FOUND");

    const list = await server.request("GET", `${C}/v3/publicRooms?limit=10`);
    expect(list.status).toBe(200);
    expect(list.body.chunk).toEqual([{ room_id: roomId, num_joined_members: 0, world_readable: false, guest_can_join: false }]);
    expect(list.body.next_batch).toBeUndefined();
    const searched = await server.request("POST", `${C}/v3/publicRooms`, { token: bob.accessToken, body: { limit: 5, filter: { generic_search_term: "nothing matches" } } });
    expect(searched.body.chunk).toEqual([]);
  });

  it("pages through public rooms", async () => {
    for (const id of ["!room2:localhost", "!room3:localhost"]) {
      await server.homeserver.storage.transaction(async (tx) => {
        await tx.events.createRoom({ roomId: id, roomVersion: "org.matrix.i-d.ralston-mimi-linearized-matrix.02", creator: alice.userId, hubServer: "localhost", isPublic: true, createdTs: 1 });
      });
    }
    const first = await server.request("GET", `${C}/v3/publicRooms?limit=2`);
    expect(first.body.chunk.map((r: { room_id: string }) => r.room_id)).toEqual(["!room1:localhost", "!room2:localhost"]);
    const second = await server.request("GET", `${C}/v3/publicRooms?limit=2&since=${encodeURIComponent(first.body.next_batch)}`);
    expect(second.body.chunk.map((r: { room_id: string }) => r.room_id)).toEqual(["!room3:localhost"]);
    expect(second.body.next_batch).toBeUndefined();
  });

  it("searches local users in the user directory", async () => {
    await server.request("PUT", `${C}/v3/profile/${bob.userId}/displayname`, { token: bob.accessToken, body: { displayname: "Bobby Tables" } });
    const res = await server.request("POST", `${C}/v3/user_directory/search`, { token: alice.accessToken, body: { search_term: "tables", limit: 5 } });
    expect(res).toEqual({ status: 200, body: { results: [{ user_id: bob.userId, display_name: "Bobby Tables" }], limited: false } });
    const many = await server.request("POST", `${C}/v3/user_directory/search`, { token: alice.accessToken, body: { search_term: "localhost", limit: 1 } });
    expect(many.body.results).toHaveLength(1);
    expect(many.body.limited).toBe(true);
    expect((await server.request("POST", `${C}/v3/user_directory/search`, { token: alice.accessToken, body: {} })).body.errcode).toBe("M_MISSING_PARAM");
    expect((await server.request("POST", `${C}/v3/user_directory/search`, { body: { search_term: "x" } })).status).toBe(401);
  });
});
