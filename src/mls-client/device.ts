// One device's MLS side: its identity (user, device, MLS signature key pair), the device object it
// publishes and the KeyPackages it keeps topped up on its server (contract sections 2 and 3).
import type { CiphersuiteImpl } from "ts-mls";
import { KEY_PACKAGE_ALGORITHM } from "./algorithms.js";
import type { ClientServerApi } from "./client-server-api.js";
import { signDeviceObject, type DeviceObject } from "./device-object.js";
import type { DeviceIdentity } from "./identity.js";
import { KeyPackageStore, uploadMapOf, type OwnKeyPackage, type SignatureKeyPair } from "./key-packages.js";

export interface KeyPackageTargets {
  /** How many one-time KeyPackages the server should hold. */
  oneTime: number;
  /** Upload more when the server's count falls below this. */
  refillBelow: number;
}

export const DEFAULT_KEY_PACKAGE_TARGETS: KeyPackageTargets = { oneTime: 10, refillBelow: 5 };

export class MlsDevice {
  readonly keyPackages: KeyPackageStore;

  private constructor(
    readonly identity: DeviceIdentity,
    private readonly signatureKeys: SignatureKeyPair,
    readonly cs: CiphersuiteImpl,
    readonly targets: KeyPackageTargets,
    now: () => number,
  ) {
    this.keyPackages = new KeyPackageStore(identity, signatureKeys, cs, now);
  }

  /** A device with a fresh MLS signature key pair. */
  static async generate(userId: string, deviceId: string, cs: CiphersuiteImpl, targets = DEFAULT_KEY_PACKAGE_TARGETS, now: () => number = Date.now): Promise<MlsDevice> {
    const signatureKeys = await cs.signature.keygen();
    return new MlsDevice({ userId, deviceId, signatureKey: signatureKeys.publicKey }, signatureKeys, cs, targets, now);
  }

  /** The signed device object (contract section 2). */
  deviceObject(): Promise<DeviceObject> {
    return signDeviceObject(this.identity, this.signatureKeys.signKey, this.cs);
  }

  /** Publishes the device object, a last-resort KeyPackage and the one-time ones in one upload. */
  async publish(api: ClientServerApi): Promise<Record<string, number>> {
    const fallback = await this.keyPackages.generate(true);
    const oneTime = await this.generateOneTime(this.targets.oneTime);
    return api.uploadKeys({ device_keys: await this.deviceObject(), one_time_keys: uploadMapOf(oneTime), fallback_keys: uploadMapOf([fallback]) });
  }

  /**
   * Uploads one-time KeyPackages up to the target when `counts` (from /sync or an upload) is low.
   * No counts at all (a sync answer without the field) says nothing: no upload.
   */
  async topUp(api: ClientServerApi, counts: Record<string, number> | undefined): Promise<void> {
    if (counts === undefined) return;
    // An algorithm with no keys left may be missing from the counts.
    const held = counts[KEY_PACKAGE_ALGORITHM] ?? 0;
    if (held >= this.targets.refillBelow) return;
    const oneTime = await this.generateOneTime(this.targets.oneTime - held);
    await api.uploadKeys({ one_time_keys: uploadMapOf(oneTime) });
  }

  /** A KeyPackage that is never uploaded: for creating a group, or joining one externally. */
  privateKeyPackage(): Promise<OwnKeyPackage> {
    return this.keyPackages.generate(false);
  }

  private async generateOneTime(count: number): Promise<OwnKeyPackage[]> {
    const made: OwnKeyPackage[] = [];
    for (let i = 0; i < count; i++) made.push(await this.keyPackages.generate(false));
    return made;
  }
}
