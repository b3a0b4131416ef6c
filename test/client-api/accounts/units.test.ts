// The accounts area's pure pieces: token buckets, password hashes, usernames, default push rules.
import { describe, expect, it } from "@jest/globals";
import { MatrixError } from "../../../src/core/errors.js";
import { hashPassword, verifyPassword } from "../../../src/client-api/accounts/passwords.js";
import { defaultPushRules } from "../../../src/client-api/accounts/push-rules.js";
import { createRateLimiter } from "../../../src/client-api/accounts/rate-limit.js";
import { localpartOfUsername, localUserIdOf } from "../../../src/client-api/accounts/usernames.js";

describe("rate limiter", () => {
  it("allows a burst, then refills at the configured rate, per key", () => {
    let now = 0;
    const limiter = createRateLimiter({ message: { perSecond: 2, burst: 3 } }, () => now);
    for (let i = 0; i < 3; i++) limiter.take("message", "@a:x");
    let refused: unknown;
    try {
      limiter.take("message", "@a:x");
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(MatrixError);
    expect((refused as MatrixError).toJSON()).toMatchObject({ errcode: "M_LIMIT_EXCEEDED", retry_after_ms: 500 });
    expect((refused as MatrixError).httpStatus).toBe(429);
    limiter.take("message", "@b:x");
    now += 500;
    limiter.take("message", "@a:x");
    expect(() => limiter.take("message", "@a:x")).toThrow(MatrixError);
    // Unconfigured buckets are unlimited.
    for (let i = 0; i < 100; i++) limiter.take("login", "1.2.3.4");
  });
});

describe("passwords", () => {
  it("verifies the right password only, and never a malformed hash", async () => {
    const fast = { ln: 4, r: 8, p: 1 };
    const hash = await hashPassword("hunter2", fast);
    expect(hash).toMatch(/^\$scrypt\$ln=4,r=8,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    expect(await verifyPassword("hunter2", hash)).toBe(true);
    expect(await verifyPassword("hunter3", hash)).toBe(false);
    expect(await verifyPassword("hunter2", "plain")).toBe(false);
    expect(await verifyPassword("hunter2", hash.replace("ln=4", "ln=40"))).toBe(false);
    expect(await hashPassword("hunter2", fast)).not.toBe(hash);
  });
});

describe("usernames", () => {
  it("folds upper case and refuses characters outside the grammar", () => {
    expect(localpartOfUsername("Alice.B-2", "example.org")).toBe("alice.b-2");
    expect(() => localpartOfUsername("a b", "example.org")).toThrow(MatrixError);
    expect(() => localpartOfUsername("", "example.org")).toThrow(MatrixError);
    expect(localUserIdOf("@Alice:example.org", "example.org")).toBe("@alice:example.org");
    expect(localUserIdOf("alice", "example.org")).toBe("@alice:example.org");
    expect(localUserIdOf("@alice:other.org", "example.org")).toBeUndefined();
  });
});

describe("default push rules", () => {
  it("name the user in the rules that match on them", () => {
    const rules = defaultPushRules("@carol:example.org");
    expect(rules.content[0]).toMatchObject({ rule_id: ".m.rule.contains_user_name", pattern: "carol" });
    const mention = rules.override.find((r) => r.rule_id === ".m.rule.is_user_mention");
    expect(mention?.conditions).toEqual([{ kind: "event_property_contains", key: "content.m\\.mentions.user_ids", value: "@carol:example.org" }]);
    const ids = Object.values(rules).flat().map((r) => r.rule_id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
