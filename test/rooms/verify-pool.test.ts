// The two-core signature verifier (src/rooms/verify-pool.ts): every answer must match a plain
// verify, whichever thread gave it, for batches below and above the size that uses the worker.
import { afterAll, describe, expect, it } from "@jest/globals";
import { randomBytes } from "node:crypto";
import { nativeEd25519, nobleEd25519 } from "../../src/core/ed25519.js";
import { createVerifyPool, type VerifyJob } from "../../src/rooms/verify-pool.js";

const pool = createVerifyPool();
afterAll(() => pool.close());

const alice = nativeEd25519.signerFromSeed(randomBytes(32));
const bob = nativeEd25519.signerFromSeed(randomBytes(32));
const aliceKey = nativeEd25519.verifierFromPublicKey(alice.publicKey)!;
const bobKey = nobleEd25519.verifierFromPublicKey(bob.publicKey)!;

/** `count` jobs, alternating keys; every seventh is broken in one of four ways. */
function jobsOf(count: number): { jobs: VerifyJob[]; expected: boolean[] } {
  const jobs: VerifyJob[] = [];
  const expected: boolean[] = [];
  for (let i = 0; i < count; i++) {
    const message = new TextEncoder().encode(`{"n":${i},"pad":"${"x".repeat(i % 300)}"}`);
    const signer = i % 2 === 0 ? alice : bob;
    const verifier = i % 2 === 0 ? aliceKey : bobKey;
    let signature = signer.sign(message);
    let signed = message;
    const broken = i % 7 === 3;
    if (broken) {
      switch ((i / 7) % 4 | 0) {
        case 0: // another message
          signed = new TextEncoder().encode(`{"n":${i + 1}}`);
          break;
        case 1: // a flipped bit
          signature = Uint8Array.from(signature, (byte, k) => (k === 10 ? byte ^ 1 : byte));
          break;
        case 2: // the other key's signature
          signature = (signer === alice ? bob : alice).sign(message);
          break;
        default: // too short
          signature = signature.subarray(0, 63);
      }
    }
    jobs.push({ verifier, message: signed, signature });
    expected.push(!broken);
  }
  return { jobs, expected };
}

describe("verify pool", () => {
  for (const size of [0, 1, 15, 16, 50, 1_500]) {
    it(`answers a batch of ${size} as verifying each one here would`, async () => {
      const { jobs, expected } = jobsOf(size);
      expect(jobs.map((job) => job.verifier.verify(job.message, job.signature))).toEqual(expected);
      expect(await pool.verifyAll(jobs)).toEqual(expected);
      expect(await pool.verifyOnWorker(jobs)).toEqual(expected);
    });
  }

  it("still answers, on the calling thread, when the worker goes away mid-batch", async () => {
    const own = createVerifyPool();
    const { jobs, expected } = jobsOf(300);
    const answer = own.verifyOnWorker(jobs);
    await own.close();
    expect(await answer).toEqual(expected);
    // A later batch starts a new worker.
    expect(await own.verifyAll(jobs)).toEqual(expected);
    await own.close();
  });

  it("keeps batches apart when several are in flight at once", async () => {
    const batches = [jobsOf(40), jobsOf(200), jobsOf(17)];
    const answers = await Promise.all(batches.map(({ jobs }, i) => (i === 1 ? pool.verifyAll(jobs) : pool.verifyOnWorker(jobs))));
    expect(answers).toEqual(batches.map(({ expected }) => expected));
  });
});
