// Rate limiting with token buckets (Client-Server API "Rate limiting"): one bucket per action
// name and key (a client IP for login and registration, a user ID for messages). A bucket holds
// up to `burst` tokens and refills at `perSecond`; a request takes one token or is refused with
// 429 M_LIMIT_EXCEEDED and the time until a token is back. Actions absent from the settings are
// not limited.
import { Errcode, MatrixError } from "../../core/errors.js";
import type { RateLimiter } from "../http.js";

export interface RateLimitSettings {
  /** Per bucket name (e.g. "login", "register", "message"): sustained rate and burst. */
  [bucket: string]: { perSecond: number; burst: number };
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

/** Above this many tracked keys, buckets that have refilled completely are forgotten. */
const PRUNE_ABOVE = 10_000;

export function createRateLimiter(settings: RateLimitSettings, now: () => number): RateLimiter {
  const buckets = new Map<string, Bucket>();

  function refill(bucket: Bucket, limit: { perSecond: number; burst: number }, at: number): void {
    const elapsed = Math.max(0, at - bucket.updatedMs);
    bucket.tokens = Math.min(limit.burst, bucket.tokens + (elapsed * limit.perSecond) / 1000);
    bucket.updatedMs = at;
  }

  function prune(at: number): void {
    for (const [id, bucket] of buckets) {
      const limit = settings[id.slice(0, id.indexOf("\u0000"))];
      if (!limit) continue;
      refill(bucket, limit, at);
      if (bucket.tokens >= limit.burst) buckets.delete(id);
    }
  }

  return {
    take(name: string, key: string): void {
      const limit = Object.hasOwn(settings, name) ? settings[name] : undefined;
      if (!limit) return;
      const at = now();
      const id = `${name}\u0000${key}`;
      let bucket = buckets.get(id);
      if (!bucket) {
        if (buckets.size >= PRUNE_ABOVE) prune(at);
        bucket = { tokens: limit.burst, updatedMs: at };
        buckets.set(id, bucket);
      }
      refill(bucket, limit, at);
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return;
      }
      const retryAfterMs = limit.perSecond > 0 ? Math.ceil(((1 - bucket.tokens) * 1000) / limit.perSecond) : 3_600_000;
      throw new MatrixError(Errcode.LIMIT_EXCEEDED, 429, "Too many requests", { retry_after_ms: retryAfterMs });
    },
  };
}
