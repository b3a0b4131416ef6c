// Unpadded base64 (LM draft "Unpadded Base64"; RFC 4648 sections 4 and 5).
//
// Emitted without padding; accepted with or without it (the draft's SHOULD). Buffer.from(…,
// "base64") silently skips characters outside the alphabet, so input is validated first.
// Non-zero trailing pad bits are accepted (RFC 4648 section 3.5 lets decoders do so): the spec's
// own signing-key test vector `…XA1` has them.

const STANDARD = /^[A-Za-z0-9+/]*={0,2}$/;
const URL_SAFE = /^[A-Za-z0-9_-]*={0,2}$/;

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Standard alphabet, no padding. */
export function encodeBase64(bytes: Uint8Array): string {
  const padded = toBuffer(bytes).toString("base64");
  let end = padded.length;
  while (end > 0 && padded.charCodeAt(end - 1) === 0x3d /* = */) end--;
  return padded.slice(0, end);
}

/** URL-safe alphabet (`-` `_`), no padding: event IDs. */
export function encodeBase64Url(bytes: Uint8Array): string {
  // Node's "base64url" never pads.
  return toBuffer(bytes).toString("base64url");
}

/** Decodes standard-alphabet base64, padded or unpadded. Returns undefined for anything invalid. */
export function decodeBase64(text: string): Uint8Array | undefined {
  return decode(text, STANDARD, "base64");
}

/** Decodes URL-safe base64, padded or unpadded. Returns undefined for anything invalid. */
export function decodeBase64Url(text: string): Uint8Array | undefined {
  return decode(text, URL_SAFE, "base64url");
}

function decode(text: string, alphabet: RegExp, encoding: "base64" | "base64url"): Uint8Array | undefined {
  if (typeof text !== "string" || !alphabet.test(text)) return undefined;
  const padding = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  const dataLength = text.length - padding;
  const remainder = dataLength % 4;
  // A final group of 1 character cannot encode a byte. Padding, when present, must complete the
  // final group exactly: 2 data characters + "==", or 3 + "=".
  if (remainder === 1) return undefined;
  if (padding > 0 && remainder + padding !== 4) return undefined;
  // A copy, so that callers never hold a view into Buffer's shared allocation pool.
  return new Uint8Array(Buffer.from(text.slice(0, dataLength), encoding));
}
