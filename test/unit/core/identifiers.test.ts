import {
  isValidDeviceId,
  isValidEventId,
  isValidKeyId,
  isValidKeyVersion,
  isValidRoomId,
  isValidRoomVersionId,
  isValidServerName,
  isValidUserId,
  serverNameOf,
} from "../../../src/core/identifiers.js";

const long = (n: number) => "a".repeat(n);

describe("server names (LM draft \"Server Names\")", () => {
  test.each([
    "example.org",
    "example.org:5678",
    "eXaMpLe.OrG",
    "localhost",
    "my-server.example",
    "a",
    "host:1",
    "host:65535",
    "host:08448",
    "1.example.org",
    "123abc",
    long(255),
    `${long(255)}:443`,
  ])("accepts %s", (name) => expect(isValidServerName(name)).toBe(true));

  test.each([
    ["", "empty"],
    [":8448", "no hostname"],
    ["example.org:", "empty port"],
    ["example.org:65536", "port above 65535"],
    ["example.org:123456", "six-digit port"],
    ["example.org:80a", "non-digit port"],
    ["example.org:1:2", "two ports"],
    ["exa_mple.org", "underscore"],
    ["exämple.org", "non-ASCII"],
    ["example.org/path", "slash"],
    ["example org", "space"],
    [long(256), "hostname over 255"],
    ["1.2.3.4", "IPv4 literal"],
    ["127.0.0.1:8448", "IPv4 literal with port"],
    ["127.1", "shorthand IPv4"],
    ["2130706433", "integer IPv4"],
    ["[::1]", "IPv6 literal"],
    ["[2001:db8::1]:8448", "IPv6 literal with port"],
    ["::1", "bare IPv6"],
  ])("refuses %j (%s)", (name) => expect(isValidServerName(name)).toBe(false));
});

describe("user IDs (LM draft \"Users\")", () => {
  test.each(["@alice:example.org", "@watch/for/slashes:example.org", "@a-b.c=d_e/f+g0:example.org:8448", "@x:y"])(
    "accepts %s",
    (id) => expect(isValidUserId(id)).toBe(true),
  );
  test("accepts exactly 255 characters", () => {
    const id = `@${long(255 - ":example.org".length - 1)}:example.org`;
    expect(id).toHaveLength(255);
    expect(isValidUserId(id)).toBe(true);
    expect(isValidUserId(`@a${id.slice(1)}`)).toBe(false);
  });
  test.each([
    ["@Alice:example.org", "uppercase localpart"],
    ["@:example.org", "empty localpart"],
    ["alice:example.org", "no sigil"],
    ["@alice", "no server"],
    ["@alice:", "empty server"],
    ["@al ice:example.org", "space"],
    ["@alice:1.2.3.4", "IP literal server"],
    ["@al!ce:example.org", "bad character"],
    ["!alice:example.org", "wrong sigil"],
  ])("refuses %j (%s)", (id) => expect(isValidUserId(id)).toBe(false));
});

describe("room IDs (LM draft \"Rooms\")", () => {
  test.each(["!abc:example.org", "!A-b.C~d_E9:example.org:8448"])("accepts %s", (id) => expect(isValidRoomId(id)).toBe(true));
  test.each([
    ["!:example.org", "empty localpart"],
    ["!abc", "no server"],
    ["!a/b:example.org", "slash"],
    ["!a+b:example.org", "plus"],
    ["#abc:example.org", "alias sigil"],
    [`!${long(250)}:example.org`, "over 255"],
  ])("refuses %j (%s)", (id) => expect(isValidRoomId(id)).toBe(false));
});

describe("event IDs (LM draft \"Events\")", () => {
  test.each(["$nKHVqt3iyLA_HEE8lT1yUaaVjjBRR-fAqpN4t7opadc", "$a", `$${long(254)}`])("accepts %s", (id) =>
    expect(isValidEventId(id)).toBe(true),
  );
  test.each([
    ["$", "empty hash"],
    ["$abc+def", "standard-alphabet character"],
    ["$abc/def", "slash"],
    ["$abc=", "padding"],
    ["$0:domain", "classic v1 event ID"],
    ["abc", "no sigil"],
    [`$${long(255)}`, "over 255"],
  ])("refuses %j (%s)", (id) => expect(isValidEventId(id)).toBe(false));
});

describe("room versions (LM draft \"Room Versions\")", () => {
  test.each(["1", "10", "I.1", "I.2", "org.matrix.i-d.ralston-mimi-linearized-matrix.02", "org.example.my-room-version", long(128)])(
    "accepts %s",
    (id) => expect(isValidRoomVersionId(id)).toBe(true),
  );
  test.each([
    ["", "empty"],
    [long(129), "over 128"],
    [`I.${long(127)}`, "I. version over 128"],
    ["I.", "I. alone"],
    ["I", "I alone"],
    ["J.1", "other uppercase"],
    ["Org.example", "uppercase"],
    ["v_1", "underscore"],
    ["1 ", "space"],
  ])("refuses %j (%s)", (id) => expect(isValidRoomVersionId(id)).toBe(false));
});

describe("key IDs and versions, device IDs (LM draft \"Signing\", \"Devices\")", () => {
  test.each(["ed25519:1", "ed25519:a_bcD9", "ed25519:auto"])("key ID %s is valid", (id) => expect(isValidKeyId(id)).toBe(true));
  test.each(["ed25519:", "ed25519", "curve25519:1", "ED25519:1", "ed25519:a-b", "ed25519:a:b", "ed25519:a b"])(
    "key ID %j is invalid",
    (id) => expect(isValidKeyId(id)).toBe(false),
  );
  test.each(["1", "a_b", "ABCDEFGH", "Zz_09"])("key version and device ID %s are valid", (v) => {
    expect(isValidKeyVersion(v)).toBe(true);
    expect(isValidDeviceId(v)).toBe(true);
  });
  test.each(["", "a-b", "a.b", "a:b", "é"])("key version and device ID %j are invalid", (v) => {
    expect(isValidKeyVersion(v)).toBe(false);
    expect(isValidDeviceId(v)).toBe(false);
  });
});

describe("serverNameOf", () => {
  test.each([
    ["@alice:example.org", "example.org"],
    ["!abc:example.org:8448", "example.org:8448"],
    ["#room:example.org", "example.org"],
    ["$0:domain", "domain"],
  ])("%s -> %s", (id, server) => expect(serverNameOf(id)).toBe(server));
  test.each(["$nKHVqt3iyLA_HEE8lT1yUaaVjjBRR-fAqpN4t7opadc", "alice:example.org", "@:example.org", "@alice:", "@alice:bad_server", "@a:1.2.3.4", ""])(
    "%j has none",
    (id) => expect(serverNameOf(id)).toBeUndefined(),
  );
});

test("predicates return false for non-strings instead of throwing", () => {
  const notAString = 42 as unknown as string;
  for (const predicate of [isValidServerName, isValidUserId, isValidRoomId, isValidEventId, isValidRoomVersionId, isValidKeyId, isValidKeyVersion, isValidDeviceId]) {
    expect(predicate(notAString)).toBe(false);
  }
  expect(serverNameOf(notAString)).toBeUndefined();
});
