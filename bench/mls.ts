// npm run bench:mls — the cost of Bobbin's MLS overlay (issue 5 "Benchmark").
//
//   validate_commit_ms_N:  the hub's full check of one commit (decode, policy, signature, tree and
//                          GroupInfo checks: src/mls-overlay/validate.ts checkCommit) in a group
//                          of N devices, for a commit adding one device; mean of several runs
//   client_commit_ms_100:  the reference client's cost to build that commit (commit, Welcome,
//                          GroupInfo with ratchet tree) in a group of 100
//   commits_per_s:         accepted commits per second through a started server over HTTP
//                          (POST .../commit; ROOMS rooms in parallel, key-update commits back to back)
//   claims_per_s:          KeyPackages claimed per second over HTTP (keys/claim for CLAIM_DEVICES
//                          devices per request, 4 requests in flight)
//
// The server runs as its own process (the built `bobbin start`, SQLite); the clients run here, so
// on a 2-core machine client and server share the CPU. Prints a table, then one JSON line last.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { JsonObject } from "../src/core/json.js";
import { createMlsLoader } from "../src/mls-overlay/ts-mls-adapter.js";
import { checkCommit, type GroupRecord } from "../src/mls-overlay/validate.js";
import { loadCiphersuite, KEY_PACKAGE_ALGORITHM } from "../src/mls-client/algorithms.js";
import { ClientServerApi, type Session } from "../src/mls-client/client-server-api.js";
import { encodeMlsBase64 } from "../src/mls-client/event-content.js";
import { KeyPackageStore, type OwnKeyPackage } from "../src/mls-client/key-packages.js";
import { MlsClient } from "../src/mls-client/mls-client.js";
import { RoomGroup, type PendingCommit } from "../src/mls-client/room-group.js";
import { freePort, startServer } from "./client.js";

const DURATION_S = Number(process.env.BENCH_MLS_S ?? 10);
const ROOMS = Number(process.env.BENCH_MLS_ROOMS ?? 8);
const CLAIM_DEVICES = 20;
const CLAIM_PACKAGES_EACH = 100;

const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

async function mean(runs: number, run: () => Promise<void>): Promise<number> {
  await run(); // warm-up
  const started = performance.now();
  for (let i = 0; i < runs; i++) await run();
  return (performance.now() - started) / runs;
}

/** A group of `size` devices (one per user) and the hub's record of its epoch 1. */
async function groupOf(size: number) {
  const cs = await loadCiphersuite();
  const mls = await createMlsLoader().load();
  const roomId = `!bench${size}:bench`;
  const packageOf = async (i: number): Promise<OwnKeyPackage> => {
    const keys = await cs.signature.keygen();
    return new KeyPackageStore({ userId: `@u${i}:bench`, deviceId: "DEV", signatureKey: keys.publicKey }, keys, cs).generate(false);
  };
  const creator = await packageOf(0);
  const others: OwnKeyPackage[] = [];
  for (let i = 1; i < size; i++) others.push(await packageOf(i));
  const membership = { membershipOf: () => "join", worldReadable: false };
  const group = await RoomGroup.create(roomId, creator, cs);
  const first = await group.prepareCommit(others.map((o) => ({ proposalType: "add" as const, add: { keyPackage: o.publicPackage } })));
  const firstVerdict = await checkCommit(mls, contentOf(first), { roomId, epoch: 0 }, membership, "@u0:bench");
  if (!firstVerdict.ok) throw new Error(`the first commit was refused: ${firstVerdict.reason}`);
  group.applyOwnCommit(first, "$first");
  return { cs, mls, group, record: firstVerdict.next, membership, newcomer: await packageOf(size) };
}

function contentOf(pending: PendingCommit): JsonObject {
  return { message: encodeMlsBase64(pending.commit), public_group_state: encodeMlsBase64(pending.groupInfo) };
}

/** validate and client cost, in ms, for a commit adding one device to a group of `size`. */
async function commitCosts(size: number, runs: number): Promise<{ validateMs: number; clientMs: number }> {
  const { mls, group, record, membership, newcomer } = await groupOf(size);
  const add = [{ proposalType: "add" as const, add: { keyPackage: newcomer.publicPackage } }];
  let pending: PendingCommit | undefined;
  const clientMs = await mean(runs, async () => {
    pending = await group.prepareCommit(add);
  });
  const content = contentOf(pending!);
  const validateMs = await mean(runs, async () => {
    const verdict = await checkCommit(mls, content, record as GroupRecord, membership, "@u0:bench");
    if (!verdict.ok) throw new Error(`the commit was refused: ${verdict.reason}`);
  });
  return { validateMs, clientMs };
}

async function register(baseUrl: string, username: string, password: string): Promise<Session> {
  const url = `${baseUrl}/_matrix/client/v3/register`;
  const first = await fetch(url, { method: "POST", body: JSON.stringify({ username, password }) });
  const session = ((await first.json()) as { session?: string }).session;
  const done = await fetch(url, { method: "POST", body: JSON.stringify({ username, password, auth: { type: "m.login.dummy", session } }) });
  const body = (await done.json()) as { user_id: string; device_id: string; access_token: string };
  if (!done.ok) throw new Error(`register ${username}: ${done.status} ${JSON.stringify(body)}`);
  return { userId: body.user_id, deviceId: body.device_id, accessToken: body.access_token };
}

/** Accepted key-update commits per second, ROOMS rooms of two devices each committing back to back. */
async function commitsPerSecond(baseUrl: string): Promise<number> {
  const creators: Array<{ client: MlsClient; roomId: string }> = [];
  for (let r = 0; r < ROOMS; r++) {
    const session = await register(baseUrl, `committer${r}`, "bench password");
    const first = await MlsClient.fromSession(baseUrl, session, { keyPackageTargets: { oneTime: 1, refillBelow: 0 } });
    await MlsClient.login(baseUrl, `committer${r}`, "bench password", { keyPackageTargets: { oneTime: 1, refillBelow: 0 } });
    const { roomId } = await first.createEncryptedRoom();
    creators.push({ client: first, roomId });
  }
  let accepted = 0;
  const end = performance.now() + DURATION_S * 1000;
  const started = performance.now();
  await Promise.all(
    creators.map(async ({ client, roomId }) => {
      while (performance.now() < end) {
        await client.commit(roomId);
        accepted++;
      }
    }),
  );
  return accepted / ((performance.now() - started) / 1000);
}

/** KeyPackages claimed per second: CLAIM_DEVICES devices per keys/claim request, 4 in flight. */
async function claimsPerSecond(baseUrl: string): Promise<number> {
  const devices: Session[] = [];
  for (let i = 0; i < CLAIM_DEVICES; i++) {
    const session = await register(baseUrl, `holder${i}`, "bench password");
    await MlsClient.fromSession(baseUrl, session, { keyPackageTargets: { oneTime: CLAIM_PACKAGES_EACH, refillBelow: 0 } });
    devices.push(session);
  }
  const claimer = new ClientServerApi(baseUrl, await register(baseUrl, "claimer", "bench password"));
  const request: Record<string, Record<string, string>> = {};
  for (const d of devices) request[d.userId] = { [d.deviceId]: KEY_PACKAGE_ALGORITHM };
  let rounds = 0;
  let claimed = 0;
  const end = performance.now() + DURATION_S * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      // Stop before the one-time packages run out: after that only last-resort ones are served.
      while (rounds < CLAIM_PACKAGES_EACH && performance.now() < end) {
        rounds++;
        const answer = await claimer.claimKeys(request);
        claimed += Object.values(answer).reduce((n, byDevice) => n + Object.keys(byDevice).length, 0);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  if (claimed !== rounds * CLAIM_DEVICES) throw new Error(`claimed ${claimed} KeyPackages in ${rounds} requests of ${CLAIM_DEVICES}`);
  return claimed / elapsed;
}

async function main(): Promise<void> {
  const costs100 = await commitCosts(100, 20);
  const costs1000 = await commitCosts(1000, 5);

  const dir = mkdtempSync(join(tmpdir(), "bobbin-bench-mls-"));
  const port = await freePort();
  const child = await startServer(dir, port, "database: { engine: sqlite }");
  const baseUrl = `http://127.0.0.1:${port}`;
  let commitsPerS: number;
  let claimsPerS: number;
  try {
    commitsPerS = await commitsPerSecond(baseUrl);
    claimsPerS = await claimsPerSecond(baseUrl);
  } finally {
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
    rmSync(dir, { recursive: true, force: true });
  }

  console.log(`commit adding one device; HTTP: ${ROOMS} rooms x ${DURATION_S}s of key updates, claims of ${CLAIM_DEVICES} devices per request; node ${process.version}`);
  console.table({
    "group of 100": { hub_validate_ms: round(costs100.validateMs), client_commit_ms: round(costs100.clientMs) },
    "group of 1000": { hub_validate_ms: round(costs1000.validateMs), client_commit_ms: round(costs1000.clientMs) },
  });
  console.log(
    JSON.stringify({
      validate_commit_ms_100: round(costs100.validateMs),
      validate_commit_ms_1000: round(costs1000.validateMs),
      client_commit_ms_100: round(costs100.clientMs),
      commits_per_s: round(commitsPerS, 1),
      claims_per_s: round(claimsPerS, 1),
    }),
  );
}

await main();
