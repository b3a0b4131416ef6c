// What a server checks of MLS data it never decrypts (LM draft "MLS Considerations", "m.mls.commit",
// "m.room.encrypted", "Device Credentials", "Key Packages"; Bobbin's MLS wire contract sections
// 2–4). Each check takes its data and returns a verdict value; nothing here fetches, stores, logs
// or reads the clock. ts-mls is reached only through the MlsLib the caller passes in.
//
// A commit for epoch N is accepted when (contract section 4):
//   1. `message` decodes exactly as an MLSMessage PublicMessage whose content is a commit, and
//      `public_group_state` exactly as an MLSMessage GroupInfo            -> malformed
//   2. its group ID is the room's                                          -> policy
//   3. its epoch is the room's current epoch                               -> epoch_conflict
//   4. the sender is a member, or a new member joining by external commit; proposals are inline,
//      only add and remove (external_init and remove for an external commit) -> policy
//   5. every Add is a valid KeyPackage of this ciphersuite whose credential names a joined user;
//      every Remove targets a leaf of the committer's user or of a user no longer joined -> policy
//   6. with the stored tree of epoch N: the signature verifies against the committer's leaf, whose
//      credential names the event's sender; the tree after the commit and the next epoch's group
//      context (tree hash, transcript hash) equal what the GroupInfo carries. Without a stored
//      tree (the first commit of a room, or a replica whose hub could not give it) the
//      GroupInfo's tree is validated on its own and the committer's leaf taken from it -> policy
//   7. the GroupInfo is for epoch N+1, signed by its signer's leaf, with the commit's confirmation
//      tag, a ratchet_tree and an external_pub extension                      -> policy
import { decodeBase64 } from "../core/base64.js";
import { nativeEd25519 } from "../core/ed25519.js";
import { isJsonObject, type JsonObject, type JsonValue } from "../core/json.js";
import { verifyJsonSignatures } from "../core/signing.js";
import type { GroupInfo, KeyPackage, LeafNode, MlsLib, NodeEncodings, RatchetTree } from "./ts-mls-adapter.js";
import { bytesEqual, CIPHERSUITE_NAME, CREDENTIAL_ALGORITHM, decodeDeviceIdentity, groupIdOf, ROOM_ALGORITHM, toHex, type DeviceIdentity } from "../core/mls-wire.js";

/** What a server keeps of a room's MLS group: the GroupInfo of its current epoch. */
export interface GroupRecord {
  roomId: string;
  /**
   * The current epoch: 0 before the first commit (the creator's fresh group). null on a replica
   * that does not know it (it joined after commits it never saw, and its hub could not give the
   * GroupInfo; mls-overlay.ts): the next commit is checked on its own and adopted.
   */
  epoch: number | null;
  /** MLSMessage(GroupInfo) of `epoch`, with its ratchet tree; absent before the first commit. */
  groupInfo?: Uint8Array;
  /** The `m.mls.commit` event that started `epoch`. */
  commitEventId?: string;
  /** `groupInfo` decoded (checkCommit fills it in its `next`; decodeGroupRecord otherwise). */
  decoded?: DecodedGroup;
}

export interface DecodedGroup {
  readonly groupInfo: GroupInfo;
  readonly tree: RatchetTree;
  /** Node encodings of `tree` (and earlier trees sharing its nodes). */
  readonly encodings: NodeEncodings;
}

/** Who may be added to the group: a user whose membership is join, or anyone when the room is world_readable (LM draft). */
export interface RoomMembershipView {
  membershipOf(userId: string): string | undefined;
  worldReadable: boolean;
}

export type FailureKind = "epoch_conflict" | "policy" | "malformed";

export interface AddedDevice {
  userId: string;
  deviceId: string;
  /** RFC 9420 section 5.2 KeyPackageRef, lowercase hex (what a Welcome's `new_member` names). */
  keyPackageRef: string;
}

export type CommitVerdict =
  | { ok: true; next: GroupRecord; adds: AddedDevice[]; epoch: number }
  | { ok: false; kind: FailureKind; reason: string; currentEpoch?: number | null };

export type Verdict = { ok: true } | { ok: false; kind: FailureKind; reason: string };

const fail = (kind: FailureKind, reason: string): { ok: false; kind: FailureKind; reason: string } => ({ ok: false, kind, reason });

function bytesOf(content: JsonObject, key: string): Uint8Array | string {
  const value = content[key];
  if (typeof value !== "string") return `content.${key} must be a base64 string`;
  const bytes = decodeBase64(value);
  return bytes === undefined ? `content.${key} is not valid base64` : bytes;
}

/** The Bobbin device identity of a leaf, when its credential is one and names the leaf's own signature key. */
export function identityOfLeaf(leaf: LeafNode): DeviceIdentity | undefined {
  if (leaf.credential.credentialType !== "basic") return undefined;
  const identity = decodeDeviceIdentity(leaf.credential.identity);
  return identity !== undefined && bytesEqual(identity.signatureKey, leaf.signaturePublicKey) ? identity : undefined;
}

/** Decodes a stored record's GroupInfo (undefined when there is none or it does not decode). */
export function decodeGroupRecord(mls: MlsLib, record: GroupRecord): DecodedGroup | undefined {
  if (record.decoded) return record.decoded;
  if (!record.groupInfo) return undefined;
  const message = mls.decodeMessage(record.groupInfo);
  if (message?.wireformat !== "mls_group_info") return undefined;
  const tree = mls.ratchetTreeOf(message.groupInfo);
  if (!tree) return undefined;
  record.decoded = { groupInfo: message.groupInfo, tree, encodings: new WeakMap() };
  return record.decoded;
}

/**
 * An uploaded KeyPackage (contract section 3): decodes exactly, ciphersuite 1, valid signatures,
 * a lifetime that covers `nowMs`, a credential naming the uploading user and device (and the
 * device object's credential when one is published), and a key version equal to its ref.
 */
export async function checkKeyPackage(
  mls: MlsLib,
  encoded: JsonValue,
  expected: { userId: string; deviceId: string; keyVersion: string; nowMs: number; deviceCredential?: Uint8Array },
): Promise<{ ok: true; keyPackage: KeyPackage; ref: string; expiresTs: number } | { ok: false; reason: string }> {
  if (typeof encoded !== "string") return { ok: false, reason: "a key package must be a base64 string" };
  const bytes = decodeBase64(encoded);
  if (!bytes) return { ok: false, reason: "not valid base64" };
  const keyPackage = mls.decodeKeyPackage(bytes);
  if (!keyPackage) return { ok: false, reason: "does not decode exactly as a KeyPackage" };
  if (keyPackage.cipherSuite !== CIPHERSUITE_NAME) return { ok: false, reason: `ciphersuite ${keyPackage.cipherSuite} is not ${CIPHERSUITE_NAME}` };
  const identity = identityOfLeaf(keyPackage.leafNode);
  if (!identity) return { ok: false, reason: "its credential is not a Bobbin device credential bound to its signature key" };
  if (identity.userId !== expected.userId || identity.deviceId !== expected.deviceId) {
    return { ok: false, reason: `its credential names ${identity.userId} ${identity.deviceId}, not the uploading device` };
  }
  if (expected.deviceCredential && !bytesEqual(expected.deviceCredential, keyPackage.leafNode.credential.credentialType === "basic" ? keyPackage.leafNode.credential.identity : new Uint8Array())) {
    return { ok: false, reason: "its credential differs from the device object's" };
  }
  if (keyPackage.leafNode.leafNodeSource !== "key_package") return { ok: false, reason: "its leaf node is not of a key package" };
  const { notBefore, notAfter } = keyPackage.leafNode.lifetime;
  const nowSeconds = BigInt(Math.floor(expected.nowMs / 1000));
  if (notBefore > nowSeconds || notAfter < nowSeconds) return { ok: false, reason: "its lifetime does not cover the current time" };
  if (!(await mls.verifyKeyPackage(keyPackage))) return { ok: false, reason: "its signature does not verify" };
  const ref = toHex(await mls.keyPackageRef(keyPackage));
  if (ref !== expected.keyVersion) return { ok: false, reason: `its key version must be its KeyPackageRef ${ref}` };
  // Seconds to milliseconds, capped where a JavaScript number stays exact (the default lifetime is 2^63 - 1 s).
  const expiresTs = notAfter >= BigInt(Math.floor(Number.MAX_SAFE_INTEGER / 1000)) ? Number.MAX_SAFE_INTEGER : Number(notAfter) * 1000;
  return { ok: true, keyPackage, ref, expiresTs };
}

/**
 * A device object with an MLS credential key (contract section 2): the credential names the
 * uploading user and device, and the object carries a valid Matrix JSON signature by the
 * credential's signature key. `undefined` identity: the object has no MLS credential (nothing to check).
 */
export function checkDeviceObject(deviceKeys: JsonObject, expected: { userId: string; deviceId: string }): { ok: true; identity?: DeviceIdentity; credential?: Uint8Array } | { ok: false; reason: string } {
  const keys = deviceKeys.keys;
  const keyId = `${CREDENTIAL_ALGORITHM}:${expected.deviceId}`;
  if (!isJsonObject(keys)) return { ok: true };
  const mlsKeyIds = Object.keys(keys).filter((id) => id.startsWith(`${CREDENTIAL_ALGORITHM}:`));
  if (mlsKeyIds.length === 0) return { ok: true };
  if (mlsKeyIds.length !== 1 || mlsKeyIds[0] !== keyId) return { ok: false, reason: `the MLS credential key must be ${keyId}` };
  const encoded = keys[keyId];
  const credential = typeof encoded === "string" ? decodeBase64(encoded) : undefined;
  if (!credential) return { ok: false, reason: `${keyId} is not valid base64` };
  const identity = decodeDeviceIdentity(credential);
  if (!identity) return { ok: false, reason: `${keyId} is not a device credential identity` };
  if (identity.userId !== expected.userId || identity.deviceId !== expected.deviceId) return { ok: false, reason: `${keyId} names ${identity.userId} ${identity.deviceId}, not the uploading device` };
  const verifier = nativeEd25519.verifierFromPublicKey(identity.signatureKey);
  if (!verifier) return { ok: false, reason: `${keyId} holds no valid Ed25519 key` };
  let signed: ReturnType<typeof verifyJsonSignatures>;
  try {
    // Only ASCII keys in a device object: both canonical key orders agree.
    signed = verifyJsonSignatures(deviceKeys, expected.userId, (entity, id) => (entity === expected.userId && id === keyId ? verifier : undefined), "codepoint");
  } catch (error) {
    return { ok: false, reason: `the device object cannot be signed: ${error instanceof Error ? error.message : String(error)}` };
  }
  if (!signed.ok) return { ok: false, reason: `the device object's signature by ${keyId}: ${signed.reason}` };
  return { ok: true, identity, credential };
}

/** A leaf's user, when it may be removed by `sender`: their own leaf, or a user no longer joined. */
function removeAllowed(leaf: LeafNode | undefined, sender: string, membership: RoomMembershipView): string | undefined {
  if (!leaf) return "it targets a blank leaf";
  const identity = identityOfLeaf(leaf);
  if (!identity) return "it targets a leaf without a device credential";
  if (identity.userId === sender) return undefined;
  return membership.membershipOf(identity.userId) === "join" ? `it removes a device of ${identity.userId}, who is still joined` : undefined;
}

function mayJoinGroup(userId: string, membership: RoomMembershipView): boolean {
  return membership.membershipOf(userId) === "join" || membership.worldReadable;
}

/** Checks an `m.mls.commit` event's content sent by `sender` against the room's group record (module comment). */
export async function checkCommit(mls: MlsLib, commitContent: JsonObject, record: GroupRecord, membership: RoomMembershipView, sender: string): Promise<CommitVerdict> {
  // Step 1: exact decoding.
  const messageBytes = bytesOf(commitContent, "message");
  if (typeof messageBytes === "string") return fail("malformed", messageBytes);
  const infoBytes = bytesOf(commitContent, "public_group_state");
  if (typeof infoBytes === "string") return fail("malformed", infoBytes);
  const prev = commitContent.prev_commit_event_id;
  if (prev !== undefined && typeof prev !== "string") return fail("malformed", "content.prev_commit_event_id must be a string");
  const message = mls.decodeMessage(messageBytes);
  if (!message) return fail("malformed", "content.message does not decode exactly as an MLSMessage");
  if (message.wireformat !== "mls_public_message") return fail("malformed", `content.message is a ${message.wireformat}, not a PublicMessage`);
  const { content, auth } = message.publicMessage;
  if (content.contentType !== "commit" || auth.contentType !== "commit") return fail("malformed", `content.message carries ${content.contentType} content, not a commit`);
  const infoMessage = mls.decodeMessage(infoBytes);
  if (!infoMessage || infoMessage.wireformat !== "mls_group_info") return fail("malformed", "content.public_group_state does not decode exactly as an MLSMessage GroupInfo");
  const groupInfo = infoMessage.groupInfo;
  const newTreeBytes = mls.ratchetTreeBytesOf(groupInfo);
  if (!newTreeBytes) return fail("malformed", "the GroupInfo has no ratchet_tree extension");

  // Step 2: the room's group.
  const groupId = groupIdOf(record.roomId);
  if (!bytesEqual(content.groupId, groupId)) return fail("policy", "the commit is for another group than this room's");

  // Step 3: one commit per epoch; the first valid one wins (DESIGN.md).
  const epoch = content.epoch;
  if (record.epoch !== null && epoch !== BigInt(record.epoch)) {
    return { ...fail("epoch_conflict", `the commit is for epoch ${epoch}, the room's group is at epoch ${record.epoch}`), currentEpoch: record.epoch };
  }

  // Step 4: sender and proposal types.
  const sender_ = content.sender;
  if (sender_.senderType !== "member" && sender_.senderType !== "new_member_commit") return fail("policy", `a commit by a ${sender_.senderType} sender is not accepted`);
  const external = sender_.senderType === "new_member_commit";
  const removes: number[] = [];
  const adds: KeyPackage[] = [];
  let externalInits = 0;
  for (const entry of content.commit.proposals) {
    if (entry.proposalOrRefType !== "proposal") return fail("policy", "proposals by reference are not accepted: send them inline");
    const proposal = entry.proposal;
    if (proposal.proposalType === "add" && !external) adds.push(proposal.add.keyPackage);
    else if (proposal.proposalType === "remove") removes.push(proposal.remove.removed);
    else if (proposal.proposalType === "external_init" && external) externalInits++;
    else return fail("policy", `a ${String(proposal.proposalType)} proposal is not accepted${external ? " in an external commit" : ""}`);
  }
  const path = content.commit.path;
  if (external && (externalInits !== 1 || !path)) return fail("policy", "an external commit needs exactly one external_init proposal and a path");

  // Step 5: Adds of joined users' devices.
  const added: AddedDevice[] = [];
  for (const keyPackage of adds) {
    if (keyPackage.cipherSuite !== CIPHERSUITE_NAME) return fail("policy", `an added KeyPackage has ciphersuite ${keyPackage.cipherSuite}`);
    const identity = identityOfLeaf(keyPackage.leafNode);
    if (!identity) return fail("policy", "an added KeyPackage has no device credential bound to its signature key");
    if (!mayJoinGroup(identity.userId, membership)) return fail("policy", `${identity.userId} is not joined to the room: their device ${identity.deviceId} cannot be added`);
    if (!(await mls.verifyKeyPackage(keyPackage))) return fail("policy", `the KeyPackage of ${identity.userId} ${identity.deviceId} has a bad signature`);
    added.push({ userId: identity.userId, deviceId: identity.deviceId, keyPackageRef: toHex(await mls.keyPackageRef(keyPackage)) });
  }
  if (path && !identityOfLeaf(path.leafNode)) return fail("policy", "the commit's path leaf has no device credential bound to its signature key");

  // Step 7 (first part): the GroupInfo belongs to this commit.
  if (!bytesEqual(groupInfo.groupContext.groupId, groupId)) return fail("policy", "the GroupInfo is for another group");
  if (groupInfo.groupContext.cipherSuite !== CIPHERSUITE_NAME) return fail("policy", `the GroupInfo's ciphersuite is ${groupInfo.groupContext.cipherSuite}`);
  if (groupInfo.groupContext.epoch !== epoch + 1n) return fail("policy", `the GroupInfo is for epoch ${groupInfo.groupContext.epoch}, not ${epoch + 1n}`);
  if (!bytesEqual(groupInfo.confirmationTag, auth.confirmationTag)) return fail("policy", "the GroupInfo's confirmation tag is not the commit's");
  if (!mls.hasExternalPub(groupInfo)) return fail("policy", "the GroupInfo has no external_pub extension");

  // Step 6: the committer and the tree.
  const previous = record.epoch === null ? undefined : decodeGroupRecord(mls, record);
  let tree: RatchetTree;
  let encodings: NodeEncodings;
  if (previous) {
    const context = previous.groupInfo.groupContext;
    let committerKey: Uint8Array;
    let committerUser: string | undefined;
    if (sender_.senderType === "member") {
      const leaf = mls.leafAt(previous.tree, sender_.leafIndex);
      if (!leaf) return fail("policy", `the committer's leaf ${sender_.leafIndex} is not in the group`);
      committerKey = leaf.signaturePublicKey;
      committerUser = identityOfLeaf(leaf)?.userId;
    } else {
      committerKey = (path as NonNullable<typeof path>).leafNode.signaturePublicKey;
      committerUser = identityOfLeaf((path as NonNullable<typeof path>).leafNode)?.userId;
    }
    if (committerUser !== sender) return fail("policy", `the committer's credential names ${committerUser ?? "nobody"}, not the sender ${sender}`);
    if (!(await mls.verifyPublicMessageSignature(committerKey, content, auth, context))) return fail("policy", "the commit's signature does not verify against the committer's leaf");
    for (const removed of removes) {
      const refused = removeAllowed(mls.leafAt(previous.tree, removed), sender, membership);
      if (refused) return fail("policy", `Remove of leaf ${removed}: ${refused}`);
    }
    const applied = await mls.applyCommit(previous.tree, { removes, adds: adds.map((kp) => kp.leafNode), path, committer: external ? "external" : (sender_ as { leafIndex: number }).leafIndex });
    if ("error" in applied) return fail("policy", `the commit does not apply to the group's tree: ${applied.error}`);
    if (path) {
      const pathIdentity = identityOfLeaf(path.leafNode);
      if (pathIdentity?.userId !== sender) return fail("policy", "the commit's path leaf names another user than the sender");
      if (!(await mls.verifyLeafNodeSignature(path.leafNode, groupId, applied.committerLeaf))) return fail("policy", "the commit's path leaf has a bad signature");
    }
    const expected = await mls.nextEpochContext(context, content, auth.signature, await mls.treeHash(applied.tree), previous.groupInfo.confirmationTag);
    if (!bytesEqual(mls.encodeGroupContext(expected), mls.encodeGroupContext(groupInfo.groupContext))) {
      return fail("policy", "the GroupInfo's group context is not the one this commit leads to (tree hash or transcript hash differ)");
    }
    // Compared as bytes: only the nodes the commit changed are encoded, the GroupInfo's copy is never decoded.
    encodings = previous.encodings;
    if (!bytesEqual(mls.encodeTree(applied.tree, encodings), newTreeBytes)) return fail("policy", "the GroupInfo's ratchet tree is not the tree this commit leads to");
    tree = applied.tree;
  } else {
    // No tree of epoch N here: the first commit of the group (its creator, leaf 0, adding the
    // first members), or a replica that missed earlier commits and could not get their state
    // from its hub. The new tree is checked whole.
    if (record.epoch === 0 && (sender_.senderType !== "member" || sender_.leafIndex !== 0)) return fail("policy", "the first commit of a group must come from its creator, leaf 0");
    if (record.epoch === 0 && removes.length > 0) return fail("policy", "the first commit of a group cannot remove anyone");
    const newTree = mls.decodeTree(newTreeBytes);
    if (!newTree) return fail("malformed", "the GroupInfo's ratchet_tree extension does not decode exactly");
    const invalid = await mls.validateRatchetTree(newTree, groupInfo.groupContext);
    if (invalid !== undefined) return fail("policy", `the GroupInfo's ratchet tree is not valid: ${invalid}`);
    if (record.epoch === 0) {
      // Without a previous tree the new one cannot be derived; it must at least hold exactly the
      // creator's leaf and the added ones, so no device enters the group without an Add.
      const leaves = mls.leaves(newTree);
      const added = new Set(adds.map((kp) => toHex(kp.leafNode.signaturePublicKey)));
      const others = leaves.filter(({ leafIndex }) => leafIndex !== 0);
      if (others.length !== adds.length || !others.every(({ leaf }) => added.has(toHex(leaf.signaturePublicKey)))) return fail("policy", "the GroupInfo's tree holds other leaves than the creator's and the added ones");
    }
    const committerLeaf = sender_.senderType === "member" ? mls.leafAt(newTree, sender_.leafIndex) : (path as NonNullable<typeof path>).leafNode;
    if (!committerLeaf || identityOfLeaf(committerLeaf)?.userId !== sender) return fail("policy", `the committer's leaf does not name the sender ${sender}`);
    tree = newTree;
    encodings = new WeakMap();
  }
  for (const { leafIndex, leaf } of previous ? [] : mls.leaves(tree)) {
    if (!identityOfLeaf(leaf)) return fail("policy", `leaf ${leafIndex} of the new tree has no device credential bound to its signature key`);
  }

  // Step 7 (second part): the GroupInfo's signature by its signer's leaf in the new tree.
  const signer = mls.leafAt(tree, groupInfo.signer);
  if (!signer || !(await mls.verifyGroupInfoSignature(groupInfo, signer.signaturePublicKey))) return fail("policy", "the GroupInfo's signature does not verify against its signer's leaf");

  const nextEpoch = Number(epoch + 1n);
  return { ok: true, epoch: nextEpoch, adds: added, next: { roomId: record.roomId, epoch: nextEpoch, groupInfo: infoBytes, decoded: { groupInfo, tree, encodings } } };
}

/**
 * `m.room.encrypted` content in an encrypted room (contract section 4): the algorithm, a
 * ciphertext that decodes exactly as a PrivateMessage of the room's group with application
 * content at a known epoch (1 ≤ epoch ≤ current), and a commit event ID.
 */
export function checkEncryptedMessage(mls: MlsLib, content: JsonObject, record: GroupRecord): Verdict {
  if (content.algorithm !== ROOM_ALGORITHM) return fail("malformed", `algorithm must be ${ROOM_ALGORITHM}`);
  if (typeof content.commit_event_id !== "string") return fail("malformed", "commit_event_id must be a string");
  const bytes = bytesOf(content, "ciphertext");
  if (typeof bytes === "string") return fail("malformed", bytes);
  const message = mls.decodeMessage(bytes);
  if (!message) return fail("malformed", "the ciphertext does not decode exactly as an MLSMessage");
  if (message.wireformat !== "mls_private_message") return fail("malformed", `the ciphertext is a ${message.wireformat}, not a PrivateMessage`);
  const { privateMessage } = message;
  if (privateMessage.contentType !== "application") return fail("malformed", `the ciphertext carries ${privateMessage.contentType} content, not application data`);
  if (!bytesEqual(privateMessage.groupId, groupIdOf(record.roomId))) return fail("policy", "the ciphertext is for another group than this room's");
  if (privateMessage.epoch < 1n) return fail("policy", "the group has no epoch 0 messages: commit first");
  if (record.epoch !== null && privateMessage.epoch > BigInt(record.epoch)) return fail("policy", `the ciphertext is for epoch ${privateMessage.epoch}; the group is at epoch ${record.epoch}`);
  return { ok: true };
}

/**
 * The new devices a Welcome is for (contract section 5): each `secrets[].new_member` must be the
 * KeyPackageRef of one of the commit's Adds. Returns the devices, or the reason it does not fit.
 */
export function welcomeTargets(mls: MlsLib, welcome: string, adds: readonly AddedDevice[]): { ok: true; devices: AddedDevice[] } | { ok: false; reason: string } {
  const bytes = decodeBase64(welcome);
  const message = bytes && mls.decodeMessage(bytes);
  if (!message || message.wireformat !== "mls_welcome") return { ok: false, reason: "welcome does not decode exactly as an MLSMessage Welcome" };
  if (message.welcome.cipherSuite !== CIPHERSUITE_NAME) return { ok: false, reason: `the Welcome's ciphersuite is ${message.welcome.cipherSuite}` };
  const byRef = new Map(adds.map((add) => [add.keyPackageRef, add]));
  const devices: AddedDevice[] = [];
  for (const secret of message.welcome.secrets) {
    const ref = toHex(secret.newMember);
    const device = byRef.get(ref);
    if (!device) return { ok: false, reason: `the Welcome is for KeyPackageRef ${ref}, which no Add of the commit carries` };
    devices.push(device);
  }
  return { ok: true, devices };
}

/**
 * Devices still in the group whose user is no longer joined (LM draft "MLS Considerations": any
 * member may remove them; /sync tells clients which they are): user ID -> device IDs.
 */
export function departedDevices(devices: ReadonlyArray<{ userId: string; deviceId: string }>, isJoined: (userId: string) => boolean): Record<string, string[]> {
  const departed: Record<string, string[]> = {};
  for (const { userId, deviceId } of devices) if (!isJoined(userId)) (departed[userId] ??= []).push(deviceId);
  return departed;
}
