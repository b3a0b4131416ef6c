// Real MLS data for the overlay's tests, made with ts-mls the way a Bobbin client makes it:
// devices with Bobbin credentials, key packages, groups, commits as PublicMessages, GroupInfos
// with ratchet_tree and external_pub, Welcomes and application messages.
import {
  createApplicationMessage,
  createCommit,
  createGroup,
  createGroupInfoWithExternalPubAndRatchetTree,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  joinGroup,
  joinGroupExternal,
  processPrivateMessage,
  type CiphersuiteImpl,
  type ClientState,
  type KeyPackage,
  type Lifetime,
  type MLSMessage,
  type PrivateKeyPackage,
  type Proposal,
  type Welcome,
} from "ts-mls";
import { encodeKeyPackage } from "ts-mls/keyPackage.js";
import { encodeBase64 } from "../../src/core/base64.js";
import { signedBytesOf } from "../../src/core/signing.js";
import type { JsonObject } from "../../src/core/json.js";
import { CIPHERSUITE_NAME, CREDENTIAL_ALGORITHM, encodeDeviceIdentity, groupIdOf, KEY_PACKAGE_ALGORITHM, ROOM_ALGORITHM, toHex } from "../../src/core/mls-wire.js";
import { makeKeyPackageRef } from "ts-mls/keyPackage.js";

export async function suite(): Promise<CiphersuiteImpl> {
  return getCiphersuiteImpl(getCiphersuiteFromName(CIPHERSUITE_NAME));
}

export interface TestDevice {
  userId: string;
  deviceId: string;
  signKey: Uint8Array;
  publicKey: Uint8Array;
  identity: Uint8Array;
}

export interface TestKeyPackage {
  publicPackage: KeyPackage;
  privatePackage: PrivateKeyPackage;
  /** b64 of the bare KeyPackage encoding (the keys/upload value). */
  encoded: string;
  /** lowercase hex KeyPackageRef (the key version). */
  ref: string;
  keyId: string;
}

export async function makeDevice(cs: CiphersuiteImpl, userId: string, deviceId: string, identityOverride?: { userId?: string; deviceId?: string }): Promise<TestDevice> {
  const { signKey, publicKey } = await cs.signature.keygen();
  const identity = encodeDeviceIdentity({ userId: identityOverride?.userId ?? userId, deviceId: identityOverride?.deviceId ?? deviceId, signatureKey: publicKey });
  return { userId, deviceId, signKey, publicKey, identity };
}

export async function makeKeyPackage(cs: CiphersuiteImpl, device: TestDevice, options: { lifetime?: Lifetime; cs?: CiphersuiteImpl } = {}): Promise<TestKeyPackage> {
  const { publicPackage, privatePackage } = await generateKeyPackageWithKey(
    { credentialType: "basic", identity: device.identity },
    defaultCapabilities(),
    options.lifetime ?? defaultLifetime,
    [],
    { signKey: device.signKey, publicKey: device.publicKey },
    options.cs ?? cs,
  );
  const ref = toHex(await makeKeyPackageRef(publicPackage, cs.hash));
  return { publicPackage, privatePackage, encoded: encodeBase64(encodeKeyPackage(publicPackage)), ref, keyId: `${KEY_PACKAGE_ALGORITHM}:${ref}` };
}

/** The device object of contract section 2, signed with the MLS signature key (ts-mls keeps it as PKCS#8). */
export async function deviceObject(cs: CiphersuiteImpl, device: TestDevice, signWith?: Uint8Array): Promise<JsonObject> {
  const keyId = `${CREDENTIAL_ALGORITHM}:${device.deviceId}`;
  const object: JsonObject = { user_id: device.userId, device_id: device.deviceId, algorithms: [ROOM_ALGORITHM], keys: { [keyId]: encodeBase64(device.identity) } };
  const signature = await cs.signature.sign(signWith ?? device.signKey, signedBytesOf(object, "codepoint"));
  return { ...object, signatures: { [device.userId]: { [keyId]: encodeBase64(signature) } } };
}

export const b64 = (message: MLSMessage): string => encodeBase64(encodeMlsMessage(message));

export interface Member {
  device: TestDevice;
  state: ClientState;
}

/** A group of `roomId` created by `creator` at epoch 0. */
export async function createRoomGroup(cs: CiphersuiteImpl, roomId: string, creator: TestDevice): Promise<Member> {
  const own = await makeKeyPackage(cs, creator);
  const state = await createGroup(groupIdOf(roomId), own.publicPackage, own.privatePackage, [], cs);
  return { device: creator, state };
}

export interface Commit {
  /** `m.mls.commit` content. */
  content: JsonObject;
  welcome: Welcome | undefined;
  newState: ClientState;
  message: MLSMessage;
}

/** A commit as PublicMessage with inline `proposals`, and the GroupInfo of the next epoch. */
export async function commit(cs: CiphersuiteImpl, member: Member, proposals: Proposal[], options: { wireAsPublicMessage?: boolean } = {}): Promise<Commit> {
  const result = await createCommit({ state: member.state, cipherSuite: cs }, { extraProposals: proposals, wireAsPublicMessage: options.wireAsPublicMessage ?? true, ratchetTreeExtension: true });
  const groupInfo = await createGroupInfoWithExternalPubAndRatchetTree(result.newState, [], cs);
  const content: JsonObject = {
    message: b64(result.commit),
    public_group_state: b64({ version: "mls10", wireformat: "mls_group_info", groupInfo }),
  };
  return { content, welcome: result.welcome, newState: result.newState, message: result.commit };
}

export const addOf = (kp: TestKeyPackage): Proposal => ({ proposalType: "add", add: { keyPackage: kp.publicPackage } });
export const removeOf = (leafIndex: number): Proposal => ({ proposalType: "remove", remove: { removed: leafIndex } });

export async function join(cs: CiphersuiteImpl, welcome: Welcome, kp: TestKeyPackage, device: TestDevice): Promise<Member> {
  const state = await joinGroup(welcome, kp.publicPackage, kp.privatePackage, emptyPskIndex, cs);
  return { device, state };
}

/** An external commit by `device` from the group's GroupInfo (`public_group_state` of the last commit). */
export async function externalJoin(cs: CiphersuiteImpl, groupInfoMessage: MLSMessage, device: TestDevice): Promise<{ content: JsonObject; state: ClientState }> {
  if (groupInfoMessage.wireformat !== "mls_group_info") throw new Error("not a GroupInfo");
  const kp = await makeKeyPackage(cs, device);
  const { publicMessage, newState } = await joinGroupExternal(groupInfoMessage.groupInfo, kp.publicPackage, kp.privatePackage, false, cs);
  const groupInfo = await createGroupInfoWithExternalPubAndRatchetTree(newState, [], cs);
  return {
    content: {
      message: b64({ version: "mls10", wireformat: "mls_public_message", publicMessage }),
      public_group_state: b64({ version: "mls10", wireformat: "mls_group_info", groupInfo }),
    },
    state: newState,
  };
}

export async function encrypt(cs: CiphersuiteImpl, member: Member, text: string): Promise<{ ciphertext: string; state: ClientState }> {
  const { newState, privateMessage } = await createApplicationMessage(member.state, new TextEncoder().encode(text), cs);
  return { ciphertext: b64({ version: "mls10", wireformat: "mls_private_message", privateMessage }), state: newState };
}

export { processPrivateMessage };
