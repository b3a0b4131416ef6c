// The membership index (rooms/membership-index.ts) over a real room: what it hands out is a
// snapshot that later changes replace rather than alter.
import { MembershipIndex } from "../../src/rooms/membership-index.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { createRoom, join, type User } from "../client-api/rooms/support.js";

let server: TestServer;
let alice: User;
let bob: User;

beforeAll(async () => {
  server = await startTestServer();
  alice = await server.register("alice");
  bob = await server.register("bob");
});
afterAll(async () => {
  await server.close();
});

const member = (stateKey: string, membership: string) => ({ type: "m.room.member", stateKey, content: { membership } });

test("a user's memberships are a snapshot: a later change gives a new map and leaves the old one as it was", async () => {
  const roomId = await createRoom(server, alice, { preset: "public_chat" });
  await join(server, bob, roomId);
  const index = new MembershipIndex(server.homeserver.storage);

  const before = await index.membershipsOf(bob.userId);
  expect(before.get(roomId)).toBe("join");
  // Nothing changed: the same snapshot again, without a copy.
  expect(await index.membershipsOf(bob.userId)).toBe(before);

  index.applyStateEvent(roomId, 100, member(bob.userId, "leave"));
  const after = await index.membershipsOf(bob.userId);
  expect(after.get(roomId)).toBe("leave");
  expect(before.get(roomId)).toBe("join");
  // Someone else's change leaves bob's snapshot alone.
  index.applyStateEvent(roomId, 101, member("@carol:localhost", "join"));
  expect(await index.membershipsOf(bob.userId)).toBe(after);
});

test("a room's joined members follow joins and leaves applied after they were first listed", async () => {
  const roomId = await createRoom(server, alice, { preset: "public_chat" });
  const index = new MembershipIndex(server.homeserver.storage);

  const first = await index.joinedMembers(roomId);
  expect(first).toEqual([alice.userId]);
  expect(await index.joinedMembers(roomId)).toBe(first);

  index.applyStateEvent(roomId, 100, member(bob.userId, "join"));
  expect([...(await index.joinedMembers(roomId))].sort()).toEqual([alice.userId, bob.userId].sort());
  index.applyStateEvent(roomId, 101, member(alice.userId, "leave"));
  expect(await index.joinedMembers(roomId)).toEqual([bob.userId]);
  // The list handed out first is unchanged.
  expect(first).toEqual([alice.userId]);
  expect((await index.room(roomId)).members.get(alice.userId)).toEqual({ membership: "leave", roomSeq: 101 });
});
