// An encrypted conversation between two users with Bobbin's reference MLS client
// (docs/encrypted-rooms.md). Starts from two access tokens of the same server or of two
// federating servers:
//
//   BOBBIN_URL=http://127.0.0.1:8008 ALICE_TOKEN=... BOB_TOKEN=... node --import tsx examples/mls-quickstart.ts
//
// (BOB_URL if Bob's server is another one.) Each token's device publishes a new MLS identity and
// KeyPackages, Alice creates an encrypted room and invites Bob, Bob joins, Alice adds Bob's device
// (claim + commit + Welcome in one request), and they exchange a message each way.
import { MlsClient, type SyncResult } from "../src/mls-client/index.js";

const aliceUrl = process.env.BOBBIN_URL ?? "http://127.0.0.1:8008";
const bobUrl = process.env.BOB_URL ?? aliceUrl;
const aliceToken = process.env.ALICE_TOKEN;
const bobToken = process.env.BOB_TOKEN;
if (!aliceToken || !bobToken) {
  console.error("Set ALICE_TOKEN and BOB_TOKEN (access tokens of two users) and BOBBIN_URL.");
  process.exit(2);
}

/** Syncs until `found` returns something (at most 20 s). */
async function syncUntil<T>(client: MlsClient, found: (result: SyncResult) => T | undefined): Promise<T> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const result = await client.sync(1_000);
    for (const problem of result.problems) console.warn(`${client.userId}: ${problem}`);
    const value = found(result);
    if (value !== undefined) return value;
  }
  throw new Error(`${client.userId}: nothing arrived in 20 s`);
}

const alice = await MlsClient.fromAccessToken(aliceUrl, aliceToken);
const bob = await MlsClient.fromAccessToken(bobUrl, bobToken);
console.log(`alice: ${alice.userId} device ${alice.deviceId}; bob: ${bob.userId} device ${bob.deviceId}`);

// 1. An encrypted room (m.room.create carries the MLS algorithm); the first commit makes epoch 1.
const { roomId, commit } = await alice.createEncryptedRoom({ name: "MLS quickstart", invite: [bob.userId] });
console.log(`room ${roomId}, epoch ${commit.epoch}`);

// 2. Bob joins the room; only joined users' devices may be added to the group.
for (let attempt = 1; ; attempt++) {
  // Over federation the invite may take a moment to reach Bob's server.
  const joined = await bob.api.join(roomId).then(() => true, (error: unknown) => (attempt < 20 ? false : Promise.reject(error)));
  if (joined) break;
  await new Promise((resolve) => setTimeout(resolve, 500));
}

// 3. Alice claims KeyPackages for Bob's devices and adds them in one commit; the server hands the
//    Welcome to Bob's device once the hub has accepted the commit.
const added = await alice.addUsers(roomId, [bob.userId]);
console.log(`added ${added.commit?.added.map((d) => `${d.userId}/${d.deviceId}`).join(", ")} at epoch ${added.commit?.epoch}`);
await syncUntil(bob, (r) => (r.joined.some((j) => j.roomId === roomId) ? true : undefined));
console.log(`bob joined the group at epoch ${bob.group(roomId)?.epoch}`);

// 4. Messages: m.room.encrypted events whose ciphertext only the group's devices can read.
await alice.sendMessage(roomId, { msgtype: "m.text", body: "Hello Bob, this is MLS." });
const toBob = await syncUntil(bob, (r) => r.messages.find((m) => m.roomId === roomId && !m.own && m.event));
console.log(`bob read: ${String(toBob.event?.content.body)}`);

await bob.sendMessage(roomId, { msgtype: "m.text", body: "Hi Alice, received." });
const toAlice = await syncUntil(alice, (r) => r.messages.find((m) => m.roomId === roomId && !m.own && m.event));
console.log(`alice read: ${String(toAlice.event?.content.body)}`);
