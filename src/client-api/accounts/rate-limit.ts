// Rate limiting (token buckets per action and key). STUB: being implemented (issue 3).
import type { RateLimiter } from "../http.js";

export interface RateLimitSettings {
  /** Per bucket name (e.g. "login", "register", "message"): sustained rate and burst. */
  [bucket: string]: { perSecond: number; burst: number };
}

export function createRateLimiter(_settings: RateLimitSettings, _now: () => number): RateLimiter {
  return { take: () => undefined };
}
