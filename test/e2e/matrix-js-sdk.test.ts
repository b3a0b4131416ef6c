// End to end with a real Matrix client: two matrix-js-sdk clients (37.5.0, the newest release
// that supports Node 20) talk to a real Bobbin over loopback HTTP: register and log in, reach
// PREPARED, create a room and invite, join, exchange messages, paginate back, change display name,
// send a to-device message, then kick, ban and leave.
import { jest } from "@jest/globals";
import { ClientEvent, createClient, MatrixEvent, Preset, RoomEvent, RoomMemberEvent, SyncState, type MatrixClient, type Room } from "matrix-js-sdk";
import { logger as sdkLogger } from "matrix-js-sdk/lib/logger.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

// The SDK's logger is a loglevel logger; its typings hide setLevel.
(sdkLogger as unknown as { setLevel(level: string): void }).setLevel("silent");
jest.setTimeout(60_000);

// Two SDK modules log through the console directly: its call-session manager, about state it sees
// for rooms it has not set up yet, and the timeline, when the sender's local echo meets the same
// event from sync. Both are expected; everything else still prints.
const quietPrefixes = ["[MatrixRTCSessionManager]", "EventTimelineSet.addLiveEvent: ignoring duplicate event"];
for (const method of ["error", "debug", "log", "warn"] as const) {
  const original = console[method].bind(console);
  console[method] = (...args: unknown[]) => {
    if (typeof args[0] === "string" && quietPrefixes.some((prefix) => (args[0] as string).startsWith(prefix))) return;
    original(...args);
  };
}


let server: TestServer;
const clients: MatrixClient[] = [];

beforeAll(async () => {
  server = await startTestServer();
});

afterAll(async () => {
  for (const client of clients) client.stopClient();
  await server?.close();
});

/** Resolves when `check` passes after some emitted event (or already passes). Note: the SDK updates
 *  `room.getMyMembership()` only after RoomMemberEvent.Membership; RoomEvent.MyMembership fires after. */
function eventually<T>(client: MatrixClient, events: string[], check: () => T | undefined, what: string, ms = 10_000): Promise<T> {
  // Listen by name on the SDK's typed emitter: the events differ in payload, the check reads state.
  const emitter = client as unknown as { on(event: string, listener: () => void): void; off(event: string, listener: () => void): void };
  return new Promise((resolve, reject) => {
    const done = (): boolean => {
      const value = check();
      if (value === undefined || value === false) return false;
      for (const event of events) emitter.off(event, listener);
      clearTimeout(timer);
      resolve(value as T);
      return true;
    };
    const listener = (): void => void done();
    const timer = setTimeout(() => {
      for (const event of events) emitter.off(event, listener);
      reject(new Error(`timed out waiting for ${what}`));
    }, ms);
    for (const event of events) emitter.on(event, listener);
    done();
  });
}

async function startSyncing(client: MatrixClient): Promise<void> {
  clients.push(client);
  const prepared = new Promise<void>((resolve, reject) => {
    client.on(ClientEvent.Sync, (state: SyncState) => {
      if (state === SyncState.Prepared) resolve();
      if (state === SyncState.Error) reject(new Error("sync error"));
    });
  });
  await client.startClient({ initialSyncLimit: 10 });
  await prepared;
}

const timelineBodies = (room: Room | null): string[] =>
  (room?.getLiveTimeline().getEvents() ?? []).filter((e) => e.getType() === "m.room.message").map((e) => e.getContent().body as string);

test("two matrix-js-sdk users chat through Bobbin", async () => {
  // Alice registers through the SDK (UIA with m.login.dummy).
  const anonymous = createClient({ baseUrl: server.baseUrl });
  let session: string | undefined;
  try {
    await anonymous.registerRequest({ username: "alice", password: "alice's password" });
  } catch (error) {
    session = (error as { data?: { session?: string } }).data?.session;
  }
  expect(session).toBeDefined();
  const registered = await anonymous.registerRequest({ username: "alice", password: "alice's password", auth: { type: "m.login.dummy", session } });
  const alice = createClient({ baseUrl: server.baseUrl, userId: registered.user_id, accessToken: registered.access_token!, deviceId: registered.device_id! });

  // Bob's account exists already; he logs in with his password.
  await server.register("bob", "bob's password");
  const login = await createClient({ baseUrl: server.baseUrl }).loginRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: "bob" }, password: "bob's password" });
  const bob = createClient({ baseUrl: server.baseUrl, userId: login.user_id, accessToken: login.access_token, deviceId: login.device_id });

  await startSyncing(alice);
  await startSyncing(bob);

  // Alice creates a room and invites Bob; Bob sees the invite through sync and joins.
  const { room_id: roomId } = await alice.createRoom({ preset: Preset.PrivateChat, name: "Bobbin e2e", invite: [bob.getUserId()!] });
  await eventually(bob, [RoomEvent.MyMembership, ClientEvent.Room], () => bob.getRoom(roomId)?.getMyMembership() === "invite", "bob's invite");
  await bob.joinRoom(roomId);
  await eventually(alice, [RoomMemberEvent.Membership], () => alice.getRoom(roomId)?.getMember(bob.getUserId()!)?.membership === "join", "alice seeing bob join");
  expect(bob.getRoom(roomId)?.name).toBe("Bobbin e2e");

  // They exchange messages, each seeing the other's through sync.
  await alice.sendTextMessage(roomId, "hello bob");
  await eventually(bob, [RoomEvent.Timeline], () => timelineBodies(bob.getRoom(roomId)).includes("hello bob"), "bob receiving alice's message");
  await bob.sendTextMessage(roomId, "hello alice");
  await eventually(alice, [RoomEvent.Timeline], () => timelineBodies(alice.getRoom(roomId)).includes("hello alice"), "alice receiving bob's message");

  // Enough history that a fresh client must paginate back to see the start.
  for (let i = 0; i < 30; i++) await alice.sendTextMessage(roomId, `history ${i}`);
  await eventually(bob, [RoomEvent.Timeline], () => timelineBodies(bob.getRoom(roomId)).includes("history 29"), "bob receiving the history");
  const secondLogin = await createClient({ baseUrl: server.baseUrl }).loginRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: "bob" }, password: "bob's password" });
  const bobSecondDevice = createClient({ baseUrl: server.baseUrl, userId: secondLogin.user_id, accessToken: secondLogin.access_token, deviceId: secondLogin.device_id });
  await startSyncing(bobSecondDevice);
  const fresh = bobSecondDevice.getRoom(roomId)!;
  expect(timelineBodies(fresh)).not.toContain("hello bob");
  for (let i = 0; i < 10 && !timelineBodies(fresh).includes("hello bob"); i++) await bobSecondDevice.scrollback(fresh, 20);
  expect(timelineBodies(fresh)).toEqual(expect.arrayContaining(["hello bob", "hello alice", "history 0", "history 29"]));
  const bodies = timelineBodies(fresh);
  expect(bodies.indexOf("hello bob")).toBeLessThan(bodies.indexOf("history 0"));

  // Display name changes reach the other side as a membership update.
  await bob.setDisplayName("Bob the Builder");
  await eventually(alice, [RoomMemberEvent.Name, RoomMemberEvent.Membership], () => alice.getRoom(roomId)?.getMember(bob.getUserId()!)?.name === "Bob the Builder", "alice seeing bob's new name");

  // A to-device message from Alice to Bob's first device.
  const toDevice = new Promise<MatrixEvent>((resolve) => bob.on(ClientEvent.ToDeviceEvent, (event: MatrixEvent) => event.getType() === "org.bobbin.test" && resolve(event)));
  await alice.sendToDevice("org.bobbin.test", new Map([[bob.getUserId()!, new Map([[bob.getDeviceId()!, { secret: 42 }]])]]));
  const received = await toDevice;
  expect(received.getContent()).toEqual({ secret: 42 });
  expect(received.getSender()).toBe(alice.getUserId());

  // Alice kicks Bob; Bob rejoins (private chat: he needs an invite again), is banned, cannot rejoin.
  await alice.kick(roomId, bob.getUserId()!, "testing kicks");
  await eventually(bob, [RoomEvent.MyMembership, ClientEvent.Room], () => bob.getRoom(roomId)?.getMyMembership() === "leave", "bob seeing the kick");
  await expect(bob.joinRoom(roomId)).rejects.toMatchObject({ errcode: "M_FORBIDDEN" });
  await alice.invite(roomId, bob.getUserId()!);
  await eventually(bob, [RoomEvent.MyMembership], () => bob.getRoom(roomId)?.getMyMembership() === "invite", "bob's second invite");
  await bob.joinRoom(roomId);
  await alice.ban(roomId, bob.getUserId()!, "testing bans");
  await eventually(bob, [RoomEvent.MyMembership, ClientEvent.Room], () => bob.getRoom(roomId)?.getMyMembership() === "ban", "bob seeing the ban");
  await expect(bob.joinRoom(roomId)).rejects.toMatchObject({ errcode: "M_FORBIDDEN" });

  // Finally Alice leaves her own room.
  await alice.leave(roomId);
  await eventually(alice, [RoomEvent.MyMembership, ClientEvent.Room], () => alice.getRoom(roomId)?.getMyMembership() === "leave", "alice seeing her leave");
});
