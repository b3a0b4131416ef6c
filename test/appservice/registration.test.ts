// Registration files (Application Service API "Registration"): what is accepted, and errors that
// name the file and the key, both from the loader and through the configuration file that lists them.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, parseConfig } from "../../src/app/config.js";
import { loadRegistrationFiles, RegistrationError } from "../../src/appservice/load.js";
import { checkAliasClaim, checkUserClaim, isServiceUser } from "../../src/appservice/namespaces.js";
import { backoffMs, interestIn } from "../../src/appservice/interest.js";
import { parseRegistration, type AppserviceRegistration } from "../../src/appservice/registration.js";
import type { Pdu } from "../../src/core/events.js";

const irc = `
id: "IRC Bridge"
url: "http://127.0.0.1:1234"
as_token: "30c05ae90a248a4188e620216fa72e349803310ec83e2a77b34fe90be6081f46"
hs_token: "312df522183efd404ec1cd22d2ffa4bbc76a8c1ccf541dd692eef281356bb74e"
sender_localpart: "_irc_bot"
namespaces:
  users:
    - exclusive: true
      regex: "@_irc_bridge_.*"
  aliases:
    - exclusive: false
      regex: "#_irc_bridge_.*"
  rooms: []
`;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "bobbin-registration-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function problemsOf(text: string, source = "bridge.yaml"): string[] {
  const verdict = parseRegistration(text, source);
  return verdict.ok ? [] : verdict.problems;
}

function registration(text = irc): AppserviceRegistration {
  const verdict = parseRegistration(text, "test.yaml");
  if (!verdict.ok) throw new Error(verdict.problems.join("; "));
  return verdict.registration;
}

test("the spec's example registration loads with its defaults", () => {
  const loaded = registration();
  expect(loaded).toMatchObject({ id: "IRC Bridge", url: "http://127.0.0.1:1234", senderLocalpart: "_irc_bot", rateLimited: true, protocols: [], receiveEphemeral: false, receiveToDevice: false });
  expect(loaded.namespaces.users.map((n) => [n.exclusive, n.regex])).toEqual([[true, "@_irc_bridge_.*"]]);
  expect(loaded.namespaces.rooms).toEqual([]);
});

test("optional keys: url null (send-only), rate_limited, protocols, ephemeral and to-device opt-ins", () => {
  const loaded = registration(
    irc.replace('url: "http://127.0.0.1:1234"', "url: null") + "rate_limited: false\nprotocols: [irc]\nde.sorunome.msc2409.push_ephemeral: true\norg.matrix.msc4203.receive_to_device: true\n",
  );
  expect(loaded).toMatchObject({ url: null, rateLimited: false, protocols: ["irc"], receiveEphemeral: true, receiveToDevice: true });
});

test("each invalid key is named with the file", () => {
  expect(problemsOf(irc.replace(/as_token: .*\n/, ""))).toEqual(["bridge.yaml: /as_token is required"]);
  expect(problemsOf(irc.replace(/url: .*\n/, ""))).toEqual(["bridge.yaml: /url is required (null for a service that receives no traffic)"]);
  expect(problemsOf(irc.replace('url: "http://127.0.0.1:1234"', 'url: "ftp://x"'))[0]).toMatch(/^bridge\.yaml: \/url must be an http\(s\) URL/);
  expect(problemsOf(irc.replace('regex: "@_irc_bridge_.*"', 'regex: "@_irc_(["'))[0]).toMatch(/^bridge\.yaml: \/namespaces\/users\/0\/regex is not a valid regular expression/);
  expect(problemsOf(irc.replace("exclusive: true", "exclusive: maybe"))).toEqual(["bridge.yaml: /namespaces/users/0/exclusive must be true or false"]);
  expect(problemsOf(irc.replace('sender_localpart: "_irc_bot"', 'sender_localpart: "bad:bot"'))[0]).toMatch(/^bridge\.yaml: \/sender_localpart must be a user ID localpart/);
  expect(problemsOf(irc + "rate_limited: sometimes\n")).toEqual(["bridge.yaml: /rate_limited must be true or false"]);
  expect(problemsOf(irc.replace(/namespaces:[\s\S]*$/, "namespaces:\n  users: {}\n"))).toEqual(["bridge.yaml: /namespaces/users must be a list"]);
  expect(problemsOf("id: [")[0]).toMatch(/^bridge\.yaml: not valid YAML/);
  expect(problemsOf("- a list")).toEqual(["bridge.yaml: the file must be a mapping of keys to values"]);
});

test("ids and as_tokens must be unique across files; every problem of every file is reported", () => {
  const first = write("one.yaml", irc);
  const second = write("two.yaml", irc);
  const broken = write("three.yaml", irc.replace(/hs_token: .*\n/, ""));
  let error: unknown;
  try {
    loadRegistrationFiles([first, second, broken, join(dir, "missing.yaml")]);
  } catch (caught) {
    error = caught;
  }
  expect(error).toBeInstanceOf(RegistrationError);
  expect((error as RegistrationError).problems).toEqual([
    `${broken}: /hs_token is required`,
    `${join(dir, "missing.yaml")}: cannot read the registration file: ENOENT`,
    `${second}: /id "IRC Bridge" is already used by ${first}`,
    `${second}: /as_token is already used by ${first}`,
  ]);
});

test("the configuration file's app_service_config_files are loaded relative to it, and their errors stop start-up", () => {
  write("irc.yaml", irc);
  const config = parseConfig("server_name: example.org\napp_service_config_files: [irc.yaml]\n", { source: "bobbin.yaml", baseDir: dir, env: {} });
  expect(config.appservices?.map((r) => r.id)).toEqual(["IRC Bridge"]);

  write("bad.yaml", irc.replace(/sender_localpart: .*\n/, ""));
  expect(() => parseConfig("server_name: example.org\napp_service_config_files: [bad.yaml]\n", { source: "bobbin.yaml", baseDir: dir, env: {} })).toThrow(
    new ConfigError(`bobbin.yaml: app_service_config_files: ${join(dir, "bad.yaml")}: /sender_localpart is required`),
  );
});

test("namespaces: local users only, the sender included, exclusive claims refuse others", () => {
  const loaded = registration();
  expect(isServiceUser(loaded, "@_irc_bridge_alice:example.org", "example.org")).toBe(true);
  expect(isServiceUser(loaded, "@_irc_bridge_alice:elsewhere.org", "example.org")).toBe(false);
  expect(isServiceUser(loaded, "@_irc_bot:example.org", "example.org")).toBe(true);
  // Anchored at the start, like Python's re.match.
  expect(isServiceUser(loaded, "@x_irc_bridge_a:example.org", "example.org")).toBe(false);

  expect(checkUserClaim([loaded], "@_irc_bridge_a:example.org", "example.org", undefined)).toMatchObject({ ok: false });
  expect(checkUserClaim([loaded], "@_irc_bridge_a:example.org", "example.org", loaded)).toEqual({ ok: true });
  expect(checkUserClaim([loaded], "@alice:example.org", "example.org", loaded)).toMatchObject({ ok: false });
  expect(checkUserClaim([loaded], "@alice:example.org", "example.org", undefined)).toEqual({ ok: true });
  // The alias namespace is not exclusive: anyone may create aliases in it.
  expect(checkAliasClaim([loaded], "#_irc_bridge_x:example.org", undefined)).toEqual({ ok: true });
  expect(checkAliasClaim([loaded], "#other:example.org", loaded)).toMatchObject({ ok: false });
});

test("interest: sender, membership target, joined service users, room and alias namespaces", () => {
  const loaded = registration(irc.replace("rooms: []", 'rooms:\n    - exclusive: false\n      regex: "!bridged:.*"'));
  const pdu = (fields: Partial<Pdu>): Pdu => ({ room_id: "!r:example.org", sender: "@alice:example.org", type: "m.room.message", content: {}, ...fields }) as Pdu;
  const none = { joinedServiceUsers: [], aliases: [] };
  expect(interestIn(loaded, "example.org", pdu({}), none)).toBeUndefined();
  expect(interestIn(loaded, "example.org", pdu({ sender: "@_irc_bridge_x:example.org" }), none)).toBe("sender");
  expect(interestIn(loaded, "example.org", pdu({ type: "m.room.member", state_key: "@_irc_bot:example.org", content: { membership: "invite" } }), none)).toBe("target");
  expect(interestIn(loaded, "example.org", pdu({}), { joinedServiceUsers: ["@_irc_bot:example.org"], aliases: [] })).toBe("member");
  expect(interestIn(loaded, "example.org", pdu({ room_id: "!bridged:example.org" }), none)).toBe("room");
  expect(interestIn(loaded, "example.org", pdu({}), { joinedServiceUsers: [], aliases: ["#_irc_bridge_chan:example.org"] })).toBe("alias");
});

test("backoff doubles up to the maximum, spread by the jitter", () => {
  const settings = { initialMs: 100, maxMs: 1000, jitter: 0.2 };
  expect([1, 2, 3, 4, 5].map((n) => backoffMs(n, settings, 0.5))).toEqual([100, 200, 400, 800, 1000]);
  expect(backoffMs(1, settings, 0)).toBe(80);
  expect(backoffMs(1, settings, 0.999999)).toBe(120);
});
