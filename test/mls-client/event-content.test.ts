// Event content building and parsing (contract sections 4 and 5), on real MLS messages from a
// two-device group; and the sync reading.
import type { CiphersuiteImpl } from "ts-mls";
import { encodeBase64 } from "../../src/core/base64.js";
import { loadCiphersuite, ROOM_ALGORITHM, WELCOME_ALGORITHM } from "../../src/mls-client/algorithms.js";
import {
  buildCommitRequest,
  buildEncryptedContent,
  decodeMlsBase64,
  decodePlaintext,
  encodeMlsBase64,
  encodePlaintext,
  parseCommitContent,
  parseEncryptedContent,
  parseWelcomeContent,
} from "../../src/mls-client/event-content.js";
import { KeyPackageStore } from "../../src/mls-client/key-packages.js";
import { RoomGroup, type PendingCommit } from "../../src/mls-client/room-group.js";
import { classifyRoomEvent, readSync } from "../../src/mls-client/sync-reading.js";
import { decodeBase64 } from "../../src/core/base64.js";

const roomId = "!room:a";
let cs: CiphersuiteImpl;
let creator: RoomGroup;
let joiner: RoomGroup;
let firstCommit: PendingCommit;

async function storeFor(userId: string, deviceId: string): Promise<KeyPackageStore> {
  const keys = await cs.signature.keygen();
  return new KeyPackageStore({ userId, deviceId, signatureKey: keys.publicKey }, keys, cs);
}

beforeAll(async () => {
  cs = await loadCiphersuite();
  const alice = await storeFor("@alice:a", "A1");
  const bob = await storeFor("@bob:b", "B1");
  creator = await RoomGroup.create(roomId, await alice.generate(false), cs);
  const bobPackage = await bob.generate(false);
  firstCommit = await creator.prepareCommit([{ proposalType: "add", add: { keyPackage: bobPackage.publicPackage } }]);
  creator.applyOwnCommit(firstCommit, "$commit1");
  joiner = await RoomGroup.joinFromWelcome(firstCommit.welcome!, bobPackage, "$commit1", cs);
});

test("a commit is a PublicMessage with the new epoch's GroupInfo carrying the tree; the request staples the Welcome", () => {
  const body = buildCommitRequest(firstCommit.commit, firstCommit.groupInfo, firstCommit.welcome, "$prev");
  expect(Object.keys(body).sort()).toEqual(["commit", "group_info", "prev_commit_event_id", "welcome"]);
  expect(body.commit).not.toMatch(/=/);
  const parsed = parseCommitContent({ message: body.commit, public_group_state: body.group_info });
  expect(parsed?.epoch).toBe(0n);
  expect(parsed?.commit.publicMessage.content.contentType).toBe("commit");
  expect(parsed?.groupInfo.groupInfo.groupContext.epoch).toBe(1n);
  // ratchet_tree (type 2) and external_pub (type 4) extensions (RFC 9420 sections 12.4.3.3, 12.4.3.2).
  expect(parsed?.groupInfo.groupInfo.extensions.map((e) => e.extensionType).sort()).toEqual(expect.arrayContaining(["ratchet_tree", "external_pub"]));
  expect(decodeMlsBase64(body.welcome, "mls_welcome")).toBeDefined();
  expect(buildCommitRequest(firstCommit.commit, firstCommit.groupInfo, undefined, undefined)).toEqual({ commit: body.commit, group_info: body.group_info });
});

test("commit parsing refuses swapped fields, trailing bytes, truncation and non-commits", async () => {
  const message = encodeMlsBase64(firstCommit.commit);
  const groupInfo = encodeMlsBase64(firstCommit.groupInfo);
  const bytes = decodeBase64(message)!;
  expect(parseCommitContent({ message: groupInfo, public_group_state: message })).toBeUndefined();
  expect(parseCommitContent({ message: encodeBase64(Uint8Array.from([...bytes, 0])), public_group_state: groupInfo })).toBeUndefined();
  expect(parseCommitContent({ message: encodeBase64(bytes.subarray(0, bytes.length - 1)), public_group_state: groupInfo })).toBeUndefined();
  expect(parseCommitContent({ message, public_group_state: 5 })).toBeUndefined();
  expect(parseCommitContent("nope")).toBeUndefined();
  const application = await creator.encrypt({ type: "m.room.message", content: { body: "x" } });
  expect(parseCommitContent({ message: encodeMlsBase64(application), public_group_state: groupInfo })).toBeUndefined();
});

test("m.room.encrypted content round-trips and is decrypted by the other member", async () => {
  const sent = await creator.encrypt({ type: "m.room.message", content: { body: "hello", msgtype: "m.text" } });
  const content = buildEncryptedContent(sent, "$commit1");
  expect(content.algorithm).toBe(ROOM_ALGORITHM);
  const parsed = parseEncryptedContent(content);
  expect(parsed?.commitEventId).toBe("$commit1");
  expect(parsed?.epoch).toBe(1n);
  expect(await joiner.decrypt(parsed!.message)).toEqual({ type: "m.room.message", content: { body: "hello", msgtype: "m.text" } });
  expect(parseEncryptedContent({ ...content, algorithm: "m.megolm.v1.aes-sha2" })).toBeUndefined();
  expect(parseEncryptedContent({ ...content, commit_event_id: undefined })).toBeUndefined();
  expect(parseEncryptedContent({ ...content, ciphertext: encodeMlsBase64(firstCommit.commit) })).toBeUndefined();
});

test("Welcome to-device content is read only with the welcome algorithm", () => {
  const content = { algorithm: WELCOME_ALGORITHM, ciphertext: encodeMlsBase64(firstCommit.welcome!), commit_event_id: "$commit1" };
  expect(parseWelcomeContent(content)?.commitEventId).toBe("$commit1");
  expect(parseWelcomeContent({ ...content, algorithm: ROOM_ALGORITHM })).toBeUndefined();
  expect(parseWelcomeContent({ ...content, ciphertext: encodeMlsBase64(firstCommit.groupInfo) })).toBeUndefined();
});

test("plaintexts are {type, content} JSON; anything else is refused", () => {
  expect(decodePlaintext(encodePlaintext({ type: "m.room.message", content: { body: "é" } }))).toEqual({ type: "m.room.message", content: { body: "é" } });
  expect(decodePlaintext(new TextEncoder().encode('{"type":1,"content":{}}'))).toBeUndefined();
  expect(decodePlaintext(new TextEncoder().encode('{"type":"x","content":[]}'))).toBeUndefined();
  expect(decodePlaintext(Uint8Array.of(0xff))).toBeUndefined();
});

test("sync reading: Welcomes from to-device, MLS events classified in order, departed devices", () => {
  const commitContent = { message: encodeMlsBase64(firstCommit.commit), public_group_state: encodeMlsBase64(firstCommit.groupInfo) };
  const reading = readSync({
    next_batch: "s2",
    to_device: {
      events: [
        { type: "m.room.encrypted", sender: "@alice:a", content: { algorithm: WELCOME_ALGORITHM, ciphertext: encodeMlsBase64(firstCommit.welcome!), commit_event_id: "$commit1" } },
        { type: "m.room.encrypted", sender: "@alice:a", content: { algorithm: "m.olm.v1.curve25519-aes-sha2", ciphertext: {} } },
      ],
    },
    rooms: {
      join: {
        [roomId]: {
          timeline: {
            limited: true,
            prev_batch: "p1",
            events: [
              { type: "m.mls.commit", sender: "@alice:a", event_id: "$c", content: commitContent },
              { type: "m.room.encrypted", sender: "@alice:a", event_id: "$e", content: { algorithm: ROOM_ALGORITHM, ciphertext: "AAAA", commit_event_id: "$c" } },
              { type: "m.room.member", sender: "@alice:a", event_id: "$m", state_key: "@alice:a", content: { membership: "join" } },
            ],
          },
          "org.bobbin.mls.departed_devices": { "@bob:b": ["B1", 5] },
        },
      },
    },
    device_one_time_keys_count: { x: 1 },
  });
  expect(reading.nextBatch).toBe("s2");
  expect(reading.welcomes.map((w) => w.commitEventId)).toEqual(["$commit1"]);
  const [room] = reading.rooms;
  expect(room).toMatchObject({ roomId, limited: true, prevBatch: "p1", departedDevices: { "@bob:b": ["B1"] } });
  expect(room!.events.map((e) => classifyRoomEvent(e).kind)).toEqual(["commit", "malformed", "other"]);
  expect(reading.keyCounts).toEqual({ x: 1 });
});
