// Ed25519 verification of many signatures at once on two cores: a participant joining a big room
// checks two signatures on every state event of the hub's send_join answer (LM draft "Room
// Membership", "Receiving Events/PDUs" step 2) — ~20,000 verifies for a room shaped like Matrix HQ,
// 1–2 s on one core (DESIGN.md "Performance model"); a hub checks the sender's signature on each
// of up to 50 LPDUs of a `/send` before placing them.
//
// One worker thread verifies the first half of a batch with node:crypto while the calling thread
// verifies the rest with the verifiers the key ring handed out (which already refused malformed
// and small-order keys). The worker is started on the first batch big enough to be worth it and
// does not keep the process alive.
import { Worker } from "node:worker_threads";
import type { Ed25519Verifier } from "../core/ed25519.js";

/** One signature to check: the verifier of the key that made it, the message and the signature. */
export interface VerifyJob {
  readonly verifier: Ed25519Verifier;
  readonly message: Uint8Array;
  readonly signature: Uint8Array;
}

export interface VerifyPool {
  /** Whether each job's signature verifies, in order: half on the worker, half here. */
  verifyAll(jobs: readonly VerifyJob[]): Promise<boolean[]>;
  /**
   * The same, all on the worker, so a caller still producing jobs can hand over a share early
   * and keep the rest (verifyAll) for when it is done.
   */
  verifyOnWorker(jobs: readonly VerifyJob[]): Promise<boolean[]>;
  close(): Promise<void>;
}

/** Below this a worker round trip (~0.1 ms) costs more than it saves (~60 µs per verify). */
const MIN_PARALLEL_JOBS = 16;
const SIGNATURE_LENGTH = 64;

// The worker is CommonJS evaluated from this string, so it runs the same way from `dist/` and
// from the TypeScript sources under test. It takes packed arrays (no per-job objects to clone).
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { createPublicKey, verify } = require("node:crypto");
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
parentPort.on("message", ({ id, keys, messages, offsets, signatures, keyIndex }) => {
  const keyObjects = keys.map((k) => createPublicKey({ key: Buffer.concat([SPKI_PREFIX, Buffer.from(k)]), format: "der", type: "spki" }));
  const bytes = Buffer.from(messages.buffer, messages.byteOffset, messages.byteLength);
  const sigs = Buffer.from(signatures.buffer, signatures.byteOffset, signatures.byteLength);
  const results = new Uint8Array(keyIndex.length);
  for (let i = 0; i < keyIndex.length; i++) {
    try {
      results[i] = verify(null, bytes.subarray(offsets[i], offsets[i + 1]), keyObjects[keyIndex[i]], sigs.subarray(64 * i, 64 * i + 64)) ? 1 : 0;
    } catch {
      results[i] = 0;
    }
  }
  parentPort.postMessage({ id, results }, [results.buffer]);
});
`;

interface PackedJobs {
  keys: Uint8Array[];
  messages: Uint8Array<ArrayBuffer>;
  offsets: Uint32Array<ArrayBuffer>;
  signatures: Uint8Array<ArrayBuffer>;
  keyIndex: Uint32Array<ArrayBuffer>;
}

/** Jobs with a 64-byte signature, packed into a few arrays the worker receives without copying. */
function pack(jobs: readonly VerifyJob[]): PackedJobs {
  const keyIds = new Map<Ed25519Verifier, number>();
  const keys: Uint8Array[] = [];
  const offsets = new Uint32Array(jobs.length + 1);
  for (let i = 0; i < jobs.length; i++) offsets[i + 1] = (offsets[i] as number) + (jobs[i] as VerifyJob).message.length;
  const messages = new Uint8Array(offsets[jobs.length] as number);
  const signatures = new Uint8Array(jobs.length * SIGNATURE_LENGTH);
  const keyIndex = new Uint32Array(jobs.length);
  jobs.forEach((job, i) => {
    let k = keyIds.get(job.verifier);
    if (k === undefined) {
      k = keys.length;
      keyIds.set(job.verifier, k);
      keys.push(job.verifier.publicKey);
    }
    keyIndex[i] = k;
    messages.set(job.message, offsets[i]);
    signatures.set(job.signature, i * SIGNATURE_LENGTH);
  });
  return { keys, messages, offsets, signatures, keyIndex };
}

export function createVerifyPool(): VerifyPool {
  let worker: Worker | undefined;
  let nextId = 0;
  const waiting = new Map<number, { resolve: (results: Uint8Array) => void; reject: (error: Error) => void }>();

  function started(): Worker {
    if (worker) return worker;
    const w = new Worker(WORKER_SOURCE, { eval: true });
    w.unref();
    w.on("message", ({ id, results }: { id: number; results: Uint8Array }) => {
      waiting.get(id)?.resolve(results);
      waiting.delete(id);
    });
    const fail = (error: Error): void => {
      for (const { reject } of waiting.values()) reject(error);
      waiting.clear();
      worker = undefined;
    };
    w.on("error", fail);
    w.on("exit", (code) => fail(new Error(`signature worker exited with code ${code}`)));
    worker = w;
    return w;
  }

  /** 1 or 0 per job; should the worker fail (it should not), this thread verifies instead. */
  function onWorker(jobs: readonly VerifyJob[]): Promise<Uint8Array> {
    const packed = pack(jobs);
    const id = nextId++;
    const answer = new Promise<Uint8Array>((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      started().postMessage({ id, ...packed }, [packed.messages.buffer, packed.offsets.buffer, packed.signatures.buffer, packed.keyIndex.buffer]);
    });
    return answer.catch(() => Uint8Array.from(jobs, (job) => (job.verifier.verify(job.message, job.signature) ? 1 : 0)));
  }

  return {
    async verifyAll(jobs) {
      const results = new Array<boolean>(jobs.length).fill(false);
      // A signature of the wrong length verifies nowhere; the worker only takes well-formed ones.
      const wellFormed = jobs.map((job, i) => ({ job, i })).filter(({ job }) => job.signature.length === SIGNATURE_LENGTH);
      const split = wellFormed.length >= MIN_PARALLEL_JOBS ? Math.floor(wellFormed.length / 2) : 0;
      const remote = split > 0 ? onWorker(wellFormed.slice(0, split).map(({ job }) => job)) : Promise.resolve(new Uint8Array(0));
      for (const { job, i } of wellFormed.slice(split)) results[i] = job.verifier.verify(job.message, job.signature);
      const fromWorker = await remote;
      for (let j = 0; j < split; j++) results[(wellFormed[j] as { i: number }).i] = fromWorker[j] === 1;
      return results;
    },
    async verifyOnWorker(jobs) {
      const results = new Array<boolean>(jobs.length).fill(false);
      const wellFormed = jobs.map((job, i) => ({ job, i })).filter(({ job }) => job.signature.length === SIGNATURE_LENGTH);
      const fromWorker = wellFormed.length > 0 ? await onWorker(wellFormed.map(({ job }) => job)) : new Uint8Array(0);
      wellFormed.forEach(({ i }, j) => (results[i] = fromWorker[j] === 1));
      return results;
    },
    async close() {
      await worker?.terminate();
      worker = undefined;
    },
  };
}
