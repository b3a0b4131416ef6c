// A real admin tool against the admin API (issue 7: "Debian's `synadm` drives an end-to-end test of
// user list, user details, room list and deactivation"). A real server on 127.0.0.1 with SQLite;
// synadm runs as a child process with its own configuration in a temporary HOME, prints JSON, and
// the tests check both what it prints and what the server holds afterwards.
// Without `synadm` on PATH (a newcomer's machine) the suite skips itself and says so.
import { spawn } from "node:child_process";
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { LINEARIZED_02, LINEARIZED_I1 } from "../../src/core/room-versions.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const C = "/_matrix/client/v3";
const ADMIN = "/_synapse/admin";
const PASSWORD = "correct horse battery staple";
/** One synadm run: a Python start-up and a few requests, well under a second here. */
const RUN_TIMEOUT_MS = 15_000;
const TEST_TIMEOUT_MS = 25_000;

/** The executable `program` in a directory of PATH, or undefined. */
function findOnPath(program: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

const SYNADM = findOnPath("synadm");
const SKIPPED = "synadm end-to-end tests SKIPPED: the program `synadm` is not on PATH (Debian/Ubuntu: apt-get install synadm)";
if (SYNADM === undefined) console.warn(SKIPPED);
const suite = SYNADM === undefined ? describe.skip : describe;

type Session = { userId: string; accessToken: string; deviceId: string };
type Run = { code: number | null; stdout: string; stderr: string };

/** Runs synadm with `home` as HOME (its config and debug log live there), JSON output, `stdin` as its input. */
function runSynadm(home: string, args: string[], stdin = ""): Promise<Run> {
  return new Promise((resolve, reject) => {
    // python-requests would send even 127.0.0.1 through an HTTP(S)_PROXY of the environment.
    const env = { ...process.env, HOME: home, NO_PROXY: "127.0.0.1,localhost", no_proxy: "127.0.0.1,localhost" };
    const child = spawn(SYNADM!, ["--output", "json", ...args], { env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), RUN_TIMEOUT_MS);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(stdin);
  });
}

/**
 * The JSON documents synadm printed, in order. It prints one per line, after any prompt on that
 * line ("Are you sure ...? (y/N): {...}") and between lines of prose. (`any`: the tests assert on
 * whatever JSON the server answered.)
 */
function jsonDocumentsOf(stdout: string): any[] {
  return stdout.split("\n").flatMap((line) => {
    const start = line.indexOf("{");
    return start < 0 ? [] : [JSON.parse(line.slice(start))];
  });
}

/**
 * The only JSON document of a run that exited 0. synadm prints the server's answer whatever its
 * status and warns on stderr when it is not a success; `status` is the one expected.
 */
function onlyDocument(run: Run, status = 200): any {
  const warning = status >= 200 && status < 300 ? "" : `WARNING Synapse returned status code ${status}\n`;
  expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: warning });
  const documents = jsonDocumentsOf(run.stdout);
  expect(documents).toHaveLength(1);
  return documents[0];
}

/**
 * synadm's configuration (`~/.config/synadm.yaml`). Written as JSON, which is YAML too: a user ID
 * begins with "@", which cannot start a plain YAML scalar. `homeserver` is the server name, so
 * synadm turns a bare localpart into a user ID without discovering it.
 */
function writeConfig(home: string, baseUrl: string, session: Session, serverName: string): void {
  mkdirSync(join(home, ".config"), { recursive: true });
  const config = {
    user: session.userId,
    token: session.accessToken,
    base_url: baseUrl,
    admin_path: "/_synapse/admin",
    matrix_path: "/_matrix",
    format: "json",
    timeout: 10,
    server_discovery: "well-known",
    homeserver: serverName,
  };
  writeFileSync(join(home, ".config", "synadm.yaml"), JSON.stringify(config), { mode: 0o600 });
}

const names = (list: { name: string }[]) => list.map((u) => u.name);
const roomIds = (list: { room_id: string }[]) => list.map((r) => r.room_id);

suite(SYNADM === undefined ? SKIPPED : "synadm (Debian's Synapse admin CLI) against a real server", () => {
  let server: TestServer;
  let home: string;
  let root: Session;
  let bob: Session;
  let carol: Session;
  let guestId: string;
  const rooms = { lobby: "", attic: "", backroom: "" };
  const startedAt = Date.now();

  const synadm = (...args: string[]) => runSynadm(home, ["--batch", ...args]);

  async function createRoom(session: Session, body: unknown): Promise<string> {
    const created = await server.request("POST", `${C}/createRoom`, { token: session.accessToken, body });
    expect(created.status).toBe(200);
    return created.body.room_id as string;
  }

  async function login(user: string, password: string) {
    return server.request("POST", `${C}/login`, { body: { type: "m.login.password", identifier: { type: "m.id.user", user }, password } });
  }

  async function adminGet(path: string) {
    return server.request("GET", ADMIN + path, { token: root.accessToken });
  }

  beforeAll(async () => {
    server = await startTestServer();
    home = mkdtempSync(join(tmpdir(), "bobbin-synadm-"));
    // The first admin registers like anyone, then is promoted as `bobbin register-user --admin` does.
    root = await server.register("root");
    await server.homeserver.storage.accounts.updateUser(root.userId, { isAdmin: true });
    writeConfig(home, server.baseUrl, root, server.serverName);

    bob = await server.register("bob");
    carol = await server.register("carol");
    // Dave is created by the admin over the admin API, with a display name to search for.
    const dave = await server.request("PUT", `${ADMIN}/v2/users/${encodeURIComponent("@dave:localhost")}`, {
      token: root.accessToken,
      body: { password: PASSWORD, displayname: "Dave Davies" },
    });
    expect(dave.status).toBe(201);
    const guest = await server.request("POST", `${C}/register?kind=guest`, { body: {} });
    expect(guest.status).toBe(200);
    guestId = guest.body.user_id;

    // Lobby: public, in the directory, two members. Attic: invite-only. Backroom: another room
    // version and not federatable, so the version and flag orders have something to sort.
    rooms.lobby = await createRoom(bob, { name: "Lobby", room_alias_name: "lobby", preset: "public_chat", visibility: "public" });
    const joined = await server.request("POST", `${C}/join/${encodeURIComponent(rooms.lobby)}`, { token: carol.accessToken, body: {} });
    expect(joined.status).toBe(200);
    rooms.attic = await createRoom(bob, { name: "Attic", topic: "dusty" });
    rooms.backroom = await createRoom(carol, { name: "Backroom", room_version: LINEARIZED_I1, creation_content: { "m.federate": false } });
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    await server?.close();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  // Each synadm run costs a Python start-up (about 0.6 s of CPU): the tests make few runs, two or
  // four at a time, and check the rest through the server's own API.

  it("reads its configuration from HOME, and shows M_FORBIDDEN when the token is not a server admin's", async () => {
    const otherHome = mkdtempSync(join(tmpdir(), "bobbin-synadm-"));
    try {
      writeConfig(otherHome, server.baseUrl, bob, server.serverName);
      const refused = onlyDocument(await runSynadm(otherHome, ["--batch", "user", "list"]), 403);
      expect(refused).toEqual({ errcode: "M_FORBIDDEN", error: "You are not a server admin" });
    } finally {
      rmSync(otherHome, { recursive: true, force: true });
    }
  }, TEST_TIMEOUT_MS);

  describe("user list", () => {
    it("lists every account, guests included, ordered by user ID; pages with --limit/--from; --no-guests leaves guests out", async () => {
      const [all, first, rest] = await Promise.all([
        synadm("user", "list"),
        synadm("user", "list", "--no-guests", "--limit", "3"),
        synadm("user", "list", "--no-guests", "--from", "3", "--limit", "3"),
      ]).then((runs) => runs.map((run) => onlyDocument(run)));
      expect(all.total).toBe(5);
      expect(all.next_token).toBeUndefined();
      expect(names(all.users).sort()).toEqual(["@bob:localhost", "@carol:localhost", "@dave:localhost", "@root:localhost", guestId].sort());
      expect(names(all.users)).toEqual([...names(all.users)].sort());
      expect(all.users.find((u: { name: string }) => u.name === guestId).is_guest).toBe(true);
      expect(all.users.find((u: { name: string }) => u.name === "@root:localhost").admin).toBe(true);

      // Pages of three without the guest: next_token is the next page's --from; the last page has none.
      expect(first).toMatchObject({ total: 4, next_token: "3" });
      expect(rest.total).toBe(4);
      expect(rest.next_token).toBeUndefined();
      expect([...names(first.users), ...names(rest.users)]).toEqual(names(all.users).filter((name) => name !== guestId));
    }, TEST_TIMEOUT_MS);

    it("filters by --name (user ID or display name) and by --user-id given a bare localpart", async () => {
      const [byDisplayName, byUserId] = await Promise.all([
        synadm("user", "list", "--name", "Davies"),
        // synadm makes "@carol:localhost" of "carol" with the configured homeserver name.
        synadm("user", "list", "--user-id", "carol"),
      ]).then((runs) => runs.map((run) => onlyDocument(run)));
      expect(byDisplayName).toMatchObject({ total: 1 });
      expect(names(byDisplayName.users)).toEqual(["@dave:localhost"]);
      expect(names(byUserId.users)).toEqual(["@carol:localhost"]);
    }, TEST_TIMEOUT_MS);
  });

  describe("user details", () => {
    it("shows an account given its localpart, and the server's 404 for an unknown one", async () => {
      const [dave, unknown] = await Promise.all([
        synadm("user", "details", "dave").then((run) => onlyDocument(run)),
        synadm("user", "details", "@nobody:localhost").then((run) => onlyDocument(run, 404)),
      ]);
      expect(dave).toMatchObject({ name: "@dave:localhost", displayname: "Dave Davies", avatar_url: null, admin: false, deactivated: false, is_guest: false });
      expect(dave.creation_ts).toBeGreaterThanOrEqual(startedAt);
      expect(dave.creation_ts).toBeLessThanOrEqual(Date.now());
      expect(unknown.errcode).toBe("M_NOT_FOUND");
    }, TEST_TIMEOUT_MS);
  });

  describe("room list and room details", () => {
    let listed: { rooms: Record<string, unknown>[] } | undefined;

    it("lists rooms by name with their details, and pages with --from/--limit", async () => {
      const [all, middle] = await Promise.all([synadm("room", "list"), synadm("room", "list", "--from", "1", "--limit", "1")]).then((runs) =>
        runs.map((run) => onlyDocument(run)),
      );
      listed = all;
      expect(all).toMatchObject({ offset: 0, total_rooms: 3 });
      expect(all.next_batch).toBeUndefined();
      expect(roomIds(all.rooms)).toEqual([rooms.attic, rooms.backroom, rooms.lobby]);
      expect(all.rooms[2]).toMatchObject({
        room_id: rooms.lobby,
        name: "Lobby",
        canonical_alias: "#lobby:localhost",
        joined_members: 2,
        joined_local_members: 2,
        creator: "@bob:localhost",
        version: LINEARIZED_02,
        public: true,
        federatable: true,
        join_rules: "public",
      });
      expect(all.rooms[0]).toMatchObject({ name: "Attic", topic: "dusty", public: false, joined_members: 1 });
      expect(all.rooms[1]).toMatchObject({ name: "Backroom", version: LINEARIZED_I1, federatable: false, creator: "@carol:localhost" });
      expect(middle).toMatchObject({ offset: 1, total_rooms: 3, next_batch: 2, prev_batch: 0 });
      expect(roomIds(middle.rooms)).toEqual([rooms.backroom]);
    }, TEST_TIMEOUT_MS);

    it("sorts as Synapse does (members and version largest first, flags false first), reverses, and searches", async () => {
      const [bySizeReversed, byVersion, byFederatable, byAlias] = await Promise.all([
        synadm("room", "list", "--sort", "joined_members", "--reverse"),
        synadm("room", "list", "--sort", "version"),
        synadm("room", "list", "--sort", "federatable"),
        synadm("room", "list", "--name", "#LOBBY"),
      ]).then((runs) => runs.map((run) => onlyDocument(run)));
      // Most members first, ties by room ID descending too (Synapse's one direction); --reverse flips both.
      expect(roomIds(bySizeReversed.rooms)).toEqual([...[rooms.attic, rooms.backroom].sort(), rooms.lobby]);
      // Room versions descending: the LM draft's "org.matrix..." before "I.1".
      expect(roomIds(byVersion.rooms)[2]).toBe(rooms.backroom);
      expect(roomIds(byFederatable.rooms)[0]).toBe(rooms.backroom);
      // --name searches names, aliases and IDs, any case.
      expect(roomIds(byAlias.rooms)).toEqual([rooms.lobby]);
      expect(byAlias.total_rooms).toBe(1);
    }, TEST_TIMEOUT_MS);

    it("shows one room's details, the same as its list entry", async () => {
      const details = onlyDocument(await synadm("room", "details", rooms.lobby));
      expect(details).toMatchObject({ room_id: rooms.lobby, name: "Lobby", joined_members: 2, creator: "@bob:localhost" });
      expect(details).toEqual(listed?.rooms.find((room) => room.room_id === rooms.lobby));
    }, TEST_TIMEOUT_MS);
  });

  describe("deactivation", () => {
    it("user deactivate asks first: 'n' changes nothing, 'y' deactivates, logs out and locks the account", async () => {
      const created = await server.request("PUT", `${ADMIN}/v2/users/${encodeURIComponent("@frank:localhost")}`, { token: root.accessToken, body: { password: PASSWORD } });
      expect(created.status).toBe(201);
      const frank = await login("frank", PASSWORD);
      expect(frank.status).toBe(200);
      const whoami = () => server.request("GET", `${C}/account/whoami`, { token: frank.body.access_token });
      const frankOnServer = async () => (await adminGet(`/v2/users/${encodeURIComponent("@frank:localhost")}`)).body;

      // Without --batch synadm prompts; "n" on stdin aborts.
      const declined = await runSynadm(home, ["user", "deactivate", "frank"], "n\n");
      expect(declined.code).toBe(0);
      expect(declined.stdout).toContain("Abort.");
      expect(jsonDocumentsOf(declined.stdout).map((document) => Object.keys(document)[0])).toEqual(["name", "joined_rooms"]);
      expect((await frankOnServer()).deactivated).toBe(false);
      expect((await whoami()).status).toBe(200);

      // "y": it shows the account and its rooms, then the server's answer.
      const confirmed = await runSynadm(home, ["user", "deactivate", "frank"], "y\n");
      expect({ code: confirmed.code, stderr: confirmed.stderr }).toEqual({ code: 0, stderr: "" });
      const [details, membership, answer] = jsonDocumentsOf(confirmed.stdout);
      expect(details).toMatchObject({ name: "@frank:localhost", deactivated: false });
      expect(membership).toEqual({ joined_rooms: [], total: 0 });
      expect(answer).toEqual({ id_server_unbind_result: "success" });

      // The server: deactivated, logged out everywhere, no password, listed only with --deactivated.
      expect((await frankOnServer()).deactivated).toBe(true);
      const revoked = await whoami();
      expect(revoked.status).toBe(401);
      expect(revoked.body.errcode).toBe("M_UNKNOWN_TOKEN");
      expect((await login("frank", PASSWORD)).status).toBe(403);
      expect(names((await adminGet("/v2/users")).body.users)).not.toContain("@frank:localhost");
      const withDeactivated = onlyDocument(await synadm("user", "list", "--deactivated"));
      expect(withDeactivated.users.find((u: { name: string }) => u.name === "@frank:localhost")).toMatchObject({ deactivated: true });
    }, TEST_TIMEOUT_MS);

    it("user modify --deactivate takes a room member out of her rooms and logs her out", async () => {
      const run = await synadm("user", "modify", "carol", "--deactivate");
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
      const [before, after] = jsonDocumentsOf(run.stdout);
      expect(before).toMatchObject({ name: "@carol:localhost", deactivated: false });
      expect(after).toMatchObject({ name: "@carol:localhost", deactivated: true });

      expect(onlyDocument(await synadm("room", "members", rooms.lobby))).toEqual({ members: ["@bob:localhost"], total: 1 });
      expect((await adminGet(`/v1/users/${encodeURIComponent(carol.userId)}/joined_rooms`)).body).toEqual({ joined_rooms: [], total: 0 });
      expect((await server.request("GET", `${C}/account/whoami`, { token: carol.accessToken })).status).toBe(401);
      expect((await login("carol", PASSWORD)).status).toBe(403);
    }, TEST_TIMEOUT_MS);

    // Before deactivating, synadm 0.38 lists the user's rooms and looks up each room's aliases with
    // the admin's token at `GET /_matrix/client/r0/rooms/{roomId}/aliases`: the client API answers
    // the r0 paths as v3 and lets server admins read any room's aliases, as Synapse does.
    it("user deactivate works for a user who is in rooms", async () => {
      const run = await synadm("user", "deactivate", "bob");
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
      expect(jsonDocumentsOf(run.stdout).at(-1)).toEqual({ id_server_unbind_result: "success" });
      expect((await adminGet(`/v2/users/${encodeURIComponent(bob.userId)}`)).body.deactivated).toBe(true);
      expect((await adminGet(`/v1/rooms/${encodeURIComponent(rooms.lobby)}/members`)).body.members).not.toContain(bob.userId);
    }, TEST_TIMEOUT_MS);
  });
});
