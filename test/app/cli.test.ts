// The real `bobbin` command line in child processes: src/main.ts run through tsx, so the suite
// needs no build. Every child gets a clean environment (no inherited DATABASE_URL/BOBBIN_CONFIG).
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { jest } from "@jest/globals";
import { loadConfig } from "../../src/app/config.js";

// Every test starts `bobbin` in child processes through tsx: a few seconds each on a loaded 2-core
// machine, over jest's 5 s default (CI saw register-user's two runs take longer).
jest.setTimeout(30_000);

const root = fileURLToPath(new URL("../..", import.meta.url));
const mainTs = join(root, "src", "main.ts");
const tsx = pathToFileURL(createRequire(join(root, "package.json")).resolve("tsx")).href;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function spawnBobbin(args: string[], options: { cwd: string; env?: Record<string, string> }): ChildProcess {
  return spawn(process.execPath, ["--import", tsx, mainTs, ...args], {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? "", HOME: options.cwd, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

function collect(child: ChildProcess): Promise<Run> {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk) => (stdout += String(chunk)));
  child.stderr?.on("data", (chunk) => (stderr += String(chunk)));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

function bobbin(args: string[], options: { cwd: string; env?: Record<string, string> }): Promise<Run> {
  return collect(spawnBobbin(args, options));
}

/** An expected failure: exactly one line on stderr, no stack trace. */
function expectOneLineError(run: Run, text: string): void {
  expect(run.code).toBe(1);
  expect(run.stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(run.stderr).toContain(text);
  expect(run.stderr).not.toMatch(/\n\s+at /);
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "bobbin-cli-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function writeConfig(lines: string[]): string {
  const path = join(dir, "bobbin.yaml");
  writeFileSync(path, lines.join("\n") + "\n");
  return path;
}

describe("usage", () => {
  it("--help prints the usage and exits 0", async () => {
    const run = await bobbin(["--help"], { cwd: dir });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("Usage: bobbin <command>");
    for (const command of ["generate-config", "start", "register-user", "migrate", "rotate-key"]) expect(run.stdout).toContain(command);
  });

  it.each([
    [["frobnicate"], 'unknown command "frobnicate"'],
    [["start", "--bogus"], "Unknown option '--bogus'"],
    [["generate-config"], "--server-name is required"],
    [["generate-config", "--server-name", "example.org", "--port", "http"], '--port "http" is not a port number'],
    [["migrate", "extra"], "Unexpected argument 'extra'"],
    [[], "Usage: bobbin"],
  ])("%j exits 2 with the usage", async (args, message) => {
    const run = await bobbin(args, { cwd: dir });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
    expect(run.stderr).toContain("Usage: bobbin <command>");
  });
});

describe("generate-config", () => {
  it("prints a commented configuration that loads with no edits", async () => {
    const run = await bobbin(["generate-config", "--server-name", "chat.example.org:8448", "--port", "8448", "--data-dir", "state"], { cwd: dir });
    expect(run.code).toBe(0);
    expect(run.stderr).toBe("");
    expect(run.stdout).toMatch(/^# Bobbin configuration for chat\.example\.org:8448/);
    const path = join(dir, "generated.yaml");
    writeFileSync(path, run.stdout);
    const config = loadConfig(path, { cwd: "/", env: {} });
    expect(config.serverName).toBe("chat.example.org:8448");
    expect(config.listeners).toEqual([{ host: "127.0.0.1", port: 8448 }]);
    expect(config.dataDir).toBe(join(dir, "state"));
  });
});

describe("expected failures print one line and exit 1", () => {
  it("a bad configuration names the key", async () => {
    const path = writeConfig(["server_name: example.org", "registration:", "  enabled: maybe"]);
    expectOneLineError(await bobbin(["start", "--config", path], { cwd: dir }), `bobbin: config error: ${path}: /registration/enabled must be boolean`);
  });

  it("a missing configuration file named by BOBBIN_CONFIG", async () => {
    const missing = join(dir, "nowhere.yaml");
    expectOneLineError(await bobbin(["migrate"], { cwd: dir, env: { BOBBIN_CONFIG: missing } }), `cannot read ${missing}: no such file`);
  });

  it("an unreadable signing key file", async () => {
    writeFileSync(join(dir, "bad.key"), "ed25519 a_abcd AAAA\n");
    const path = writeConfig(["server_name: example.org", "signing_key_path: bad.key", "listeners: [{port: 0}]"]);
    expectOneLineError(await bobbin(["start", "--config", path], { cwd: dir }), `signing key file ${join(dir, "bad.key")} is not valid: line 1: seed is 3 bytes`);
  });

  it("an unreachable database", async () => {
    const path = writeConfig(["server_name: example.org"]);
    const run = await bobbin(["migrate", "--config", path], { cwd: dir, env: { DATABASE_URL: "postgres://bobbin:hunter2@127.0.0.1:1/bobbin" } });
    expectOneLineError(run, "cannot open the database (PostgreSQL postgres://bobbin:***@127.0.0.1:1/bobbin)");
    expect(run.stderr).not.toContain("hunter2");
  }, 20_000);
});

describe("migrate and register-user on SQLite", () => {
  it("migrate applies the migrations once", async () => {
    const path = writeConfig(["server_name: example.org", "data_dir: state"]);
    const first = await bobbin(["migrate", "--config", path], { cwd: dir });
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^applied \d+ migration\(s\): /);
    expect(existsSync(join(dir, "state", "homeserver.db"))).toBe(true);
    const second = await bobbin(["migrate", "--config", path], { cwd: dir });
    expect(second.code).toBe(0);
    expect(second.stdout).toBe("database is up to date\n");
  });

  it("register-user creates an account with registration closed, and refuses a taken name", async () => {
    const path = writeConfig(["server_name: example.org", "registration: {enabled: false}"]);
    const run = await bobbin(["register-user", "--config", path, "--user", "alice", "--password", "correct horse", "--admin"], { cwd: dir });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("@alice:example.org\n");
    const again = await bobbin(["register-user", "--config", path, "--user", "alice", "--password", "other"], { cwd: dir });
    expectOneLineError(again, "bobbin: cannot register alice:");
    expect(again.stderr).toContain("M_USER_IN_USE");
  });
});

describe("start", () => {
  it("serves HTTP, generates and keeps the signing key, and exits 0 on SIGTERM", async () => {
    const path = writeConfig(["server_name: example.org", "listeners: [{host: 127.0.0.1, port: 0}]", "log_level: debug"]);
    const child = spawnBobbin(["start", "--config", path], { cwd: dir });
    const done = collect(child);
    const url = await listeningUrl(child);

    const response = await fetch(`${url}/_matrix/client/versions`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    expect(((await response.json()) as { versions: string[] }).versions).toContain("v1.11");

    const keyPath = join(dir, "data", "example.org.signing.key");
    const key = readFileSync(keyPath, "utf8");
    expect(key).toMatch(/^ed25519 a_\w{4} /);

    const started = Date.now();
    child.kill("SIGTERM");
    const run = await done;
    expect(run.code).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
    const messages = run.stdout.split("\n").filter(Boolean).map((line) => (JSON.parse(line) as { msg: string }).msg);
    expect(messages).toEqual(expect.arrayContaining(["starting", "generated a new signing key", "listening", "shutting down", "stopped"]));
    expect(run.stderr).toBe("");
    expect(readFileSync(keyPath, "utf8")).toBe(key);
  }, 30_000);
});

describe("graceful shutdown", () => {
  it("on SIGTERM ends a long-poll, answers it, logs each step and exits 0; metrics were served from the config", async () => {
    const path = writeConfig(["server_name: example.org", "listeners: [{host: 127.0.0.1, port: 0}]", "registration: {enabled: true}", "metrics: {enabled: true, port: 0}"]);
    const child = spawnBobbin(["start", "--config", path], { cwd: dir });
    const done = collect(child);
    const ready = (await loggedLine(child, "ready")) as { urls: string[]; metrics_url: string };
    const url = ready.urls[0]!;
    const metricsUrl = `${ready.metrics_url}/metrics`;
    const post = (body: unknown) => fetch(`${url}/_matrix/client/v3/register`, { method: "POST", body: JSON.stringify(body) });
    const { session } = (await (await post({ username: "alice", password: "pw" })).json()) as { session: string };
    const { access_token: token } = (await (await post({ username: "alice", password: "pw", auth: { type: "m.login.dummy", session } })).json()) as { access_token: string };
    const headers = { authorization: `Bearer ${token}` };
    const { next_batch: since } = (await (await fetch(`${url}/_matrix/client/v3/sync`, { headers })).json()) as { next_batch: string };
    expect(await (await fetch(`${url}/health`)).json()).toEqual({ status: "ok" });
    expect(await (await fetch(metricsUrl)).text()).toContain('bobbin_http_requests_total{method="GET",route="/health",status_class="2xx"} 1');

    // A long-poll in flight when the signal comes: it is answered, not cut.
    const polling = fetch(`${url}/_matrix/client/v3/sync?timeout=30000&since=${encodeURIComponent(since)}`, { headers });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = Date.now();
    child.kill("SIGTERM");
    const answered = await polling;
    expect(answered.status).toBe(200);
    const run = await done;
    expect(run.code).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(run.stderr).toBe("");
    const messages = run.stdout.split("\n").filter(Boolean).map((line) => (JSON.parse(line) as { msg: string }).msg);
    const steps = ["shutting down", "stopped accepting connections; finishing requests in flight", "flushing outbound federation queues", "closing the database", "stopped", "exiting"];
    expect(messages.filter((message) => steps.includes(message))).toEqual(steps);
    // Nothing listens any more.
    await expect(fetch(`${url}/health`)).rejects.toThrow();
  }, 30_000);

  it("a second signal exits 1 at once", async () => {
    const path = writeConfig(["server_name: example.org", "listeners: [{host: 127.0.0.1, port: 0}]"]);
    const child = spawnBobbin(["start", "--config", path], { cwd: dir });
    const done = collect(child);
    const ready = (await loggedLine(child, "ready")) as { urls: string[] };
    // A request in flight that never completes (its body never finishes): the first signal's
    // shutdown waits for it, up to its grace period.
    const { hostname, port } = new URL(ready.urls[0]!);
    const socket = connect(Number(port), hostname);
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.write("POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{");
    await new Promise((resolve) => setTimeout(resolve, 100));
    const draining = loggedLine(child, "stopped accepting connections; finishing requests in flight");
    child.kill("SIGTERM");
    await draining;
    const started = Date.now();
    child.kill("SIGINT");
    const run = await done;
    socket.destroy();
    expect(run.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(2000);
    const messages = run.stdout.split("\n").filter(Boolean).map((line) => (JSON.parse(line) as { msg: string }).msg);
    expect(messages).toEqual(expect.arrayContaining(["shutting down", "second signal: exiting without waiting"]));
    expect(messages).not.toContain("stopped");
  }, 30_000);
});

describe("rotate-key", () => {
  it("replaces the signing key and keeps the old one published under old_verify_keys", async () => {
    const path = writeConfig(["server_name: example.org", "listeners: [{host: 127.0.0.1, port: 0}]"]);
    expect((await bobbin(["migrate", "--config", path], { cwd: dir })).code).toBe(0);
    // The first start generates the key; rotate it afterwards.
    const keyPath = join(dir, "data", "example.org.signing.key");
    const first = spawnBobbin(["start", "--config", path], { cwd: dir });
    const firstDone = collect(first);
    await listeningUrl(first);
    first.kill("SIGTERM");
    await firstDone;
    const oldVersion = readFileSync(keyPath, "utf8").split(" ")[1]!;

    const rotated = await bobbin(["rotate-key", "--config", path], { cwd: dir });
    expect(rotated.stderr).toBe("");
    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toContain(`retired ed25519:${oldVersion}`);
    const newVersion = readFileSync(keyPath, "utf8").split(" ")[1]!;
    expect(newVersion).not.toBe(oldVersion);
    expect(readFileSync(`${keyPath}.old`, "utf8")).toContain(`ed25519 ${oldVersion} `);

    const child = spawnBobbin(["start", "--config", path], { cwd: dir });
    const done = collect(child);
    const url = await listeningUrl(child);
    const keys = (await (await fetch(`${url}/_matrix/key/v2/server`)).json()) as {
      verify_keys: Record<string, unknown>;
      old_verify_keys: Record<string, { expired_ts: number }>;
      "m.linearized": boolean;
    };
    child.kill("SIGTERM");
    await done;
    expect(Object.keys(keys.verify_keys)).toEqual([`ed25519:${newVersion}`]);
    expect(keys.old_verify_keys[`ed25519:${oldVersion}`]?.expired_ts).toBeGreaterThan(0);
    expect(keys["m.linearized"]).toBe(true);
  }, 60_000);
});

/** The first log line with message `msg`. */
function loggedLine(child: ChildProcess, msg: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buffered = "";
    child.stdout?.on("data", (chunk) => {
      buffered += String(chunk);
      for (const line of buffered.split("\n").slice(0, -1)) {
        const entry = JSON.parse(line) as Record<string, unknown>;
        if (entry.msg === msg) resolve(entry);
      }
    });
    child.on("exit", (code) => reject(new Error(`bobbin exited with ${code}`)));
  });
}

/** The URL the server logs once it listens. */
function listeningUrl(child: ChildProcess): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let buffered = "";
    child.stdout?.on("data", (chunk) => {
      buffered += String(chunk);
      for (const line of buffered.split("\n").slice(0, -1)) {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === "listening" && entry.url) resolve(entry.url);
      }
    });
    child.on("exit", (code) => reject(new Error(`bobbin exited with ${code}`)));
  });
}

describe("bin/bobbin.js", () => {
  it("explains that dist/ must be built when it is missing", async () => {
    mkdirSync(join(dir, "bin"));
    copyFileSync(join(root, "bin", "bobbin.js"), join(dir, "bin", "bobbin.js"));
    writeFileSync(join(dir, "package.json"), '{"type": "module"}');
    const run = await collect(spawn(process.execPath, [join(dir, "bin", "bobbin.js"), "--help"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] }));
    expectOneLineError(run, "dist/main.js is missing; run `npm run build`");
  });
});
