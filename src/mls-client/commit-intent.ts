// What a commit is meant to do, kept apart from the MLS commit built for it: when the hub answers
// that another commit took the epoch (409), the client processes that commit and builds a new one
// from the same intent on the new epoch (contract section 5). Pure.
import type { KeyPackage, Proposal } from "ts-mls";
import type { ClaimedKeys } from "./client-server-api.js";
import { deviceKey, identityOfCredential, type DeviceIdentity } from "./identity.js";
import { parseClaimedKeyPackage } from "./key-packages.js";
import type { GroupMember } from "./room-group.js";
import { bytesEqual } from "../core/mls-wire.js";

export interface DeviceRef {
  readonly userId: string;
  readonly deviceId: string;
}

export interface ClaimedKeyPackage extends DeviceRef {
  readonly keyPackage: KeyPackage;
}

export interface CommitIntent {
  /** Devices to add, with the KeyPackages claimed for them. */
  readonly add: readonly ClaimedKeyPackage[];
  /** Devices to remove. */
  readonly remove: readonly DeviceRef[];
}

export interface ResolvedIntent {
  readonly proposals: Proposal[];
  readonly added: DeviceRef[];
  readonly removed: DeviceRef[];
  /** True when the intent asked for changes and none is left to make (another commit made them). */
  readonly nothingLeft: boolean;
}

/**
 * The inline proposals that carry out `intent` on a group whose leaves are `members`: devices
 * already in the group are not added again, removals target the devices' current leaves and
 * devices no longer there are skipped. An intent with no changes at all is a plain key update
 * (an empty commit with an update path, RFC 9420 section 12.4).
 */
export function resolveIntent(intent: CommitIntent, members: readonly GroupMember[]): ResolvedIntent {
  const present = new Map(members.map((m) => [deviceKey(m.identity.userId, m.identity.deviceId), m.leafIndex]));
  const proposals: Proposal[] = [];
  const added: DeviceRef[] = [];
  const removed: DeviceRef[] = [];
  const seen = new Set<string>();
  for (const claimed of intent.add) {
    const key = deviceKey(claimed.userId, claimed.deviceId);
    if (present.has(key) || seen.has(key)) continue;
    seen.add(key);
    proposals.push({ proposalType: "add", add: { keyPackage: claimed.keyPackage } });
    added.push({ userId: claimed.userId, deviceId: claimed.deviceId });
  }
  for (const device of intent.remove) {
    const leafIndex = present.get(deviceKey(device.userId, device.deviceId));
    if (leafIndex === undefined) continue;
    present.delete(deviceKey(device.userId, device.deviceId));
    proposals.push({ proposalType: "remove", remove: { removed: leafIndex } });
    removed.push({ userId: device.userId, deviceId: device.deviceId });
  }
  const asked = intent.add.length + intent.remove.length > 0;
  return { proposals, added, removed, nothingLeft: asked && proposals.length === 0 };
}

export interface ClaimReading {
  readonly claimed: ClaimedKeyPackage[];
  /** Devices asked for that got no usable KeyPackage, and why. */
  readonly missing: Array<DeviceRef & { reason: string }>;
}

/**
 * Reads a `keys/claim` answer for the devices asked for. A KeyPackage is used only if its
 * credential names that user and device and, when the device's verified device object is known
 * (`published`), carries the same signature key.
 */
export function readClaimedKeyPackages(asked: readonly DeviceRef[], answer: ClaimedKeys, published: ReadonlyMap<string, DeviceIdentity>): ClaimReading {
  const claimed: ClaimedKeyPackage[] = [];
  const missing: Array<DeviceRef & { reason: string }> = [];
  for (const device of asked) {
    const keyPackage = parseClaimedKeyPackage(answer[device.userId]?.[device.deviceId]);
    if (!keyPackage) {
      missing.push({ ...device, reason: "no KeyPackage was claimed" });
      continue;
    }
    const identity = identityOfCredential(keyPackage.leafNode.credential);
    if (!identity || identity.userId !== device.userId || identity.deviceId !== device.deviceId) {
      missing.push({ ...device, reason: "the KeyPackage's credential names another device" });
      continue;
    }
    if (!bytesEqual(identity.signatureKey, keyPackage.leafNode.signaturePublicKey)) {
      missing.push({ ...device, reason: "the KeyPackage's credential is not bound to its signature key" });
      continue;
    }
    const known = published.get(deviceKey(device.userId, device.deviceId));
    if (known && !bytesEqual(known.signatureKey, identity.signatureKey)) {
      missing.push({ ...device, reason: "the KeyPackage's signature key differs from the published device object" });
      continue;
    }
    claimed.push({ ...device, keyPackage });
  }
  return { claimed, missing };
}
