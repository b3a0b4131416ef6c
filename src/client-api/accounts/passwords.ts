// Password hashing with scrypt (node:crypto). Hashes are stored in a PHC-like string that
// carries its own parameters, `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` (unpadded base64), so the
// cost can be raised later without invalidating stored hashes.
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";
import { decodeBase64, encodeBase64 } from "../../core/base64.js";

export interface ScryptParams {
  /** log2 of the CPU/memory cost N. */
  ln: number;
  r: number;
  p: number;
}

/** N = 2^15, r = 8, p = 1: 32 MiB per hash (the OWASP minimum for scrypt). */
export const DEFAULT_SCRYPT_PARAMS: ScryptParams = { ln: 15, r: 8, p: 1 };

const KEY_BYTES = 32;
const SALT_BYTES = 16;
/** Longest password accepted, so that hashing cost does not grow with hostile input. */
export const MAX_PASSWORD_LENGTH = 512;

function derive(password: string, salt: Uint8Array, params: ScryptParams): Promise<Buffer> {
  const N = 2 ** params.ln;
  // node refuses memory above 32 MiB by default; 128 * N * r bytes are needed, plus headroom.
  const options: ScryptOptions = { N, r: params.r, p: params.p, maxmem: 256 * N * params.r };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize("NFC"), salt, KEY_BYTES, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT_PARAMS): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, params);
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${encodeBase64(salt)}$${encodeBase64(key)}`;
}

const PHC = /^\$scrypt\$ln=([0-9]{1,2}),r=([0-9]{1,2}),p=([0-9]{1,2})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

/** Whether `password` matches `stored`; a malformed stored hash never matches. Constant-time compare. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const match = PHC.exec(stored);
  if (!match) return false;
  const params = { ln: Number(match[1]), r: Number(match[2]), p: Number(match[3]) };
  if (params.ln < 1 || params.ln > 22 || params.r < 1 || params.p < 1) return false;
  const salt = decodeBase64(match[4]!);
  const expected = decodeBase64(match[5]!);
  if (!salt || !expected || expected.length === 0) return false;
  const key = await derive(password, salt, params);
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** A hash of a random password: verifying against it costs what a real check costs, so that
 *  unknown users and wrong passwords take the same time. */
export function createDecoyHash(params: ScryptParams = DEFAULT_SCRYPT_PARAMS): Promise<string> {
  return hashPassword(randomBytes(16).toString("hex"), params);
}
