// Each device's one-time key counts and unused fallback key algorithms, which every sync reports,
// cached in memory until the keys API says they changed (upload, claim, device deletion).
import type { KeysRepo } from "../../storage/ports.js";

export interface KeyCounts {
  oneTimeKeyCounts: Record<string, number>;
  unusedFallbackAlgorithms: string[];
}

/** Devices kept; past this the cache is dropped and reloaded on demand. */
const MAX_DEVICES = 100_000;

const deviceKey = (userId: string, deviceId: string): string => `${userId}\u0000${deviceId}`;

export class KeyCountsCache {
  private readonly byDevice = new Map<string, KeyCounts>();
  /** Bumped by every invalidation, so a read that raced a change is not kept. */
  private generation = 0;

  constructor(private readonly keys: KeysRepo) {}

  async get(userId: string, deviceId: string): Promise<KeyCounts> {
    const key = deviceKey(userId, deviceId);
    const cached = this.byDevice.get(key);
    if (cached) return cached;
    const generation = this.generation;
    const [oneTimeKeyCounts, unusedFallbackAlgorithms] = await Promise.all([this.keys.countOneTimeKeys(userId, deviceId), this.keys.unusedFallbackAlgorithms(userId, deviceId)]);
    const counts = { oneTimeKeyCounts, unusedFallbackAlgorithms };
    if (generation === this.generation) {
      if (this.byDevice.size >= MAX_DEVICES) this.byDevice.clear();
      this.byDevice.set(key, counts);
    }
    return counts;
  }

  invalidateDevice(userId: string, deviceId: string): void {
    this.generation += 1;
    this.byDevice.delete(deviceKey(userId, deviceId));
  }

  /** Every device of the user (devices deleted or re-created). */
  invalidateUser(userId: string): void {
    this.generation += 1;
    const prefix = `${userId}\u0000`;
    for (const key of this.byDevice.keys()) if (key.startsWith(prefix)) this.byDevice.delete(key);
  }
}
