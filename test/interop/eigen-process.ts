// Runs a built eigen-server checkout (matrix-org/eigen-server, the LM reference demo) as a child
// process for interop tests. eigen is configured only through environment variables
// (src/server/index.ts, SelfSigningKey.ts, FederationConnectionCache.ts):
//   ES_PORT              port it listens on; also the port part of its server name
//   ES_HOSTNAME          host part of its server name (default "localhost")
//   ES_INSECURE_HTTP     "true": federation requests go to http:// instead of https://
//   ES_SIGNING_KEY_PATH  its ed25519 key file, created when missing
// Its code never enters this repository: EIGEN_DIR points at a checkout built outside it
// (docs/interop-eigen.md says how).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The built eigen checkout named by EIGEN_DIR, or why the interop tests cannot run. */
export function eigenCheckout(): { dir: string } | { missing: string } {
  const dir = process.env.EIGEN_DIR;
  if (!dir) return { missing: "EIGEN_DIR is not set" };
  if (!existsSync(join(dir, "build", "server", "index.js"))) return { missing: `${dir}/build/server/index.js does not exist (build eigen first)` };
  if (!existsSync(join(dir, "node_modules", "ws"))) return { missing: `${dir}/node_modules/ws does not exist (install eigen's dependencies first)` };
  return { dir };
}

export interface EigenServer {
  /** `localhost:<publicPort>`: what eigen calls itself and signs with. */
  readonly serverName: string;
  /** Where eigen really listens (its HTTP API, the `/client` websocket and `/dump`). */
  readonly baseUrl: string;
  readonly dir: string;
  /** Everything eigen printed, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

// eigen calls `app.listen(port)`, which binds every interface. This preload, loaded with
// `node --require`, pins a port-only listen to 127.0.0.1 and, when EIGEN_LISTEN_PORT is set, to
// that port instead of ES_PORT, so that a recording proxy can sit on the port its name advertises.
const LOOPBACK_PRELOAD = `
const net = require("node:net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number" && typeof args[1] !== "string") {
    if (process.env.EIGEN_LISTEN_PORT) args[0] = Number(process.env.EIGEN_LISTEN_PORT);
    args.splice(1, 0, "127.0.0.1");
  }
  return listen.apply(this, args);
};
`;

export interface StartEigenOptions {
  dir: string;
  /** The port in eigen's server name. */
  publicPort: number;
  /** Where it listens; defaults to publicPort (no proxy in between). */
  listenPort?: number;
}

/** Starts eigen and resolves once it listens; rejects with its output if it exits or hangs. */
export async function startEigen(options: StartEigenOptions): Promise<EigenServer> {
  const { dir, publicPort } = options;
  const listenPort = options.listenPort ?? publicPort;
  const workDir = mkdtempSync(join(tmpdir(), "eigen-run-"));
  const preload = join(workDir, "loopback.cjs");
  writeFileSync(preload, LOOPBACK_PRELOAD);
  const child: ChildProcess = spawn(process.execPath, ["--require", preload, join(dir, "build", "server", "index.js")], {
    cwd: workDir,
    env: {
      PATH: process.env.PATH ?? "",
      ES_PORT: String(publicPort),
      ES_HOSTNAME: "localhost",
      ES_INSECURE_HTTP: "true",
      ES_SIGNING_KEY_PATH: join(workDir, "signing.key"),
      EIGEN_LISTEN_PORT: String(listenPort),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));

  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`eigen did not start within 15 s:\n${output}`)), 15_000);
    const onData = (): void => {
      if (output.includes(`Listening on ${publicPort}`)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`eigen exited with ${code} before listening:\n${output}`));
    });
  });

  return {
    serverName: `localhost:${publicPort}`,
    baseUrl: `http://127.0.0.1:${listenPort}`,
    dir,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.pid !== undefined) child.kill("SIGTERM");
      await exited;
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}

/**
 * Asks eigen's own KeyStore (its build, in a child process with eigen's settings) for a server's
 * keys: it fetches `/_matrix/key/v2/server` over plain HTTP, requires `server_name` to match and
 * every listed key's signature to verify, exactly as it does before trusting a signed event.
 * Resolves to the key ID → base64 key map it accepted; rejects with eigen's error.
 */
export async function eigenFetchServerKeys(dir: string, serverName: string): Promise<Record<string, string>> {
  const script = `
    const { Runtime } = require(${JSON.stringify(join(dir, "build", "server", "Runtime.js"))});
    const { KeyStore } = require(${JSON.stringify(join(dir, "build", "server", "KeyStore.js"))});
    Runtime.signingKey = { serverName: "eigen-probe.invalid" };
    new KeyStore().getServerKeys(process.argv[1]).then(
      (keys) => { process.stdout.write(JSON.stringify(keys.verifyKeys)); },
      (error) => { process.stderr.write(String(error && error.message || error)); process.exitCode = 1; },
    );
  `;
  const child = spawn(process.execPath, ["-e", script, serverName], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", ES_INSECURE_HTTP: "true" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0) throw new Error(`eigen's KeyStore refused ${serverName}'s keys: ${stderr}`);
  return JSON.parse(stdout) as Record<string, string>;
}

/** What eigen's room-version code made of one event (see eigenCheckEvents). */
export interface EigenVerdict {
  /** `$` + eigen's reference hash of the event. */
  eventId: string;
  /** eigen's checkValidity (schema, signatures, content and LPDU hashes), then checkAuth; absent when both passed. */
  error?: string;
}

/**
 * Runs eigen's own checks (its build's room version `org.matrix.i-d.ralston-mimi-linearized-matrix.02`:
 * `checkValidity` — schema, the sender's and the hub's signatures with keys its KeyStore fetches
 * over plain HTTP, the content and LPDU hashes — then `checkAuth` against the events before) on a
 * room's PDUs in order, as a participant receiving them would. An event that fails is not added to
 * the history the next ones are authorized against.
 */
export async function eigenCheckEvents(dir: string, pdus: readonly object[]): Promise<EigenVerdict[]> {
  const server = (file: string): string => JSON.stringify(join(dir, "build", "server", file));
  const script = `
    const { Runtime } = require(${server("Runtime.js")});
    const { KeyStore } = require(${server("KeyStore.js")});
    const { getRoomVersionImpl } = require(${server("room_versions/map.js")});
    const { calculateReferenceHash } = require(${server("util/hashing.js")});
    Runtime.signingKey = { serverName: "eigen-probe.invalid" };
    const version = getRoomVersionImpl(${JSON.stringify("org.matrix.i-d.ralston-mimi-linearized-matrix.02")});
    const keyStore = new KeyStore();
    (async () => {
      let input = "";
      for await (const chunk of process.stdin) input += chunk;
      const accepted = [];
      const verdicts = [];
      for (const pdu of JSON.parse(input)) {
        const eventId = "$" + calculateReferenceHash(version.redact(pdu));
        try {
          await version.checkValidity(pdu, keyStore);
          const event = { ...pdu, event_id: eventId };
          version.checkAuth(event, accepted);
          accepted.push(event);
          verdicts.push({ eventId });
        } catch (error) {
          verdicts.push({ eventId, error: String(error && error.message || error) });
        }
      }
      process.stdout.write(JSON.stringify(verdicts));
    })();
  `;
  const child = spawn(process.execPath, ["-e", script], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", ES_INSECURE_HTTP: "true" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  child.stdin.end(JSON.stringify(pdus));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0) throw new Error(`eigen's event checks crashed: ${stderr}`);
  return JSON.parse(stdout) as EigenVerdict[];
}
