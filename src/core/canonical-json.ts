// Canonical JSON (LM draft "Canonical JSON" = RFC 8785; Matrix spec appendix "Canonical JSON").
//
// LM room versions sort object keys by UTF-16 code units (RFC 8785 section 3.2.3, which is what
// JavaScript's default sort does); classic Matrix versions sort by Unicode code point. The two
// orders differ only when a key holds an astral character (a surrogate pair, U+D800–U+DFFF as
// code units) at the same position where another key holds U+E000–U+FFFF.
//
// Numbers: RFC 8785 would serialise any IEEE double, but Matrix and LM only allow integers in
// ±(2^53−1) (I-JSON range), so anything else is refused rather than written.
import { Errcode, MatrixError } from "./errors.js";
import type { JsonValue } from "./json.js";
import type { KeyOrder } from "./room-versions.js";

export type ParseResult = { ok: true; value: JsonValue } | { ok: false; reason: string };

/**
 * Deepest nesting of arrays and objects accepted by the encoder, the parser and the number check.
 * Far beyond anything an event needs (events are at most 65536 bytes); it keeps a hostile
 * `[[[[...]]]]` from exhausting the stack of the recursive encoder.
 */
export const MAX_JSON_DEPTH = 512;

/** A UTF-16 code unit that is half of a surrogate pair not completed by its neighbour. */
const LONE_SURROGATE = /\p{Cs}/u;
/** Any surrogate code unit; a cheap pre-test before the code-point comparison is needed. */
const ANY_SURROGATE = /[\uD800-\uDFFF]/;

/**
 * Encodes `value` as canonical JSON: no insignificant whitespace, object keys sorted (`order`:
 * "utf16" = RFC 8785 UTF-16 code-unit order, "codepoint" = classic Matrix), strings with minimal
 * escaping (only `"` `\\` and U+0000–U+001F, using \b \f \n \r \t or lowercase \u00XX), integers only
 * within ±(2^53−1) and -0 written as 0.
 * Throws MatrixError(M_BAD_JSON) for values that cannot be canonical (non-integers, out-of-range
 * integers, NaN/Infinity, undefined, functions, non-plain values), for strings holding a lone
 * surrogate (not valid Unicode, so not I-JSON, which RFC 8785 requires; Synapse fails on them
 * too), and for nesting deeper than MAX_JSON_DEPTH.
 */
export function encodeCanonicalJson(value: JsonValue, order: KeyOrder): string {
  return encodeValue(value, order === "codepoint", 0);
}

function badJson(message: string): MatrixError {
  return new MatrixError(Errcode.BAD_JSON, 400, `Cannot encode as canonical JSON: ${message}`);
}

// `unknown` because callers' static types do not stop a Date, a Map or undefined at run time.
function encodeValue(value: unknown, codepoint: boolean, depth: number): string {
  switch (typeof value) {
    case "string":
      return encodeString(value);
    case "number":
      if (!Number.isSafeInteger(value)) throw badJson(`number ${String(value)} is not an integer within ±(2^53−1)`);
      // String(-0) is "0", as canonical JSON wants.
      return String(value);
    case "boolean":
      return value ? "true" : "false";
    case "object": {
      if (value === null) return "null";
      if (depth >= MAX_JSON_DEPTH) throw badJson(`nesting deeper than ${MAX_JSON_DEPTH}`);
      if (Array.isArray(value)) {
        let out = "[";
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ",";
          // Holes in sparse arrays read as undefined and are refused below.
          out += encodeValue(value[i], codepoint, depth + 1);
        }
        return out + "]";
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) throw badJson("value is not a plain object");
      const object = value as Record<string, unknown>;
      const keys = sortKeys(Object.keys(object), codepoint);
      let out = "{";
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i] as string;
        if (i > 0) out += ",";
        out += encodeString(key);
        out += ":";
        out += encodeValue(object[key], codepoint, depth + 1);
      }
      return out + "}";
    }
    default:
      throw badJson(`${typeof value} is not a JSON value`);
  }
}

/** Characters that need an escape, or a second look (surrogates may be lone). */
const NEEDS_ATTENTION = /["\\\u0000-\u001f\ud800-\udfff]/;

function encodeString(text: string): string {
  // Most protocol strings need no escape at all: skip the serialiser for them.
  if (!NEEDS_ATTENTION.test(text)) return `"${text}"`;
  // JSON.stringify escapes exactly `"`, `\` and U+0000–U+001F (short forms where JSON has them,
  // otherwise lowercase \u00XX), which is RFC 8785's minimal escaping.
  if (LONE_SURROGATE.test(text)) throw badJson("string holds a lone surrogate");
  return JSON.stringify(text);
}

function sortKeys(keys: string[], codepoint: boolean): string[] {
  // Default sort = UTF-16 code units (RFC 8785). Code-point order agrees unless a key holds a
  // surrogate, so only then pay for the comparator.
  keys.sort();
  if (codepoint && keys.length > 1 && ANY_SURROGATE.test(keys.join(""))) keys.sort(compareCodePoints);
  return keys;
}

/** Compares two strings by Unicode code point (classic Matrix canonical JSON). */
export function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (U+D800–U+DFFF) stand for code points above U+FFFF, so they must sort after
    // U+E000–U+FFFF: move them above it. Lower differences compare as they are.
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/**
 * Parses JSON text received from the network, refusing what LM canonical JSON forbids, checked
 * lexically on the raw text (JSON.parse cannot see `56.0`, `1e2` or `-0`): numbers with a fraction
 * or exponent, `-0`, integers outside ±(2^53−1), and duplicate object keys. Also refuses lone
 * surrogates and nesting deeper than MAX_JSON_DEPTH, so what it returns always encodes. Never throws.
 */
export function parseStrictJson(text: string): ParseResult {
  if (typeof text !== "string") return { ok: false, reason: "input is not a string" };
  let value: JsonValue;
  try {
    value = JSON.parse(text) as JsonValue;
  } catch (error) {
    return { ok: false, reason: `not valid JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
  if (LONE_SURROGATE.test(text)) return { ok: false, reason: "text holds a lone surrogate" };
  // The text is now known to be well-formed JSON, which keeps the scan below simple.
  const lexical = scanTokens(text);
  if (!lexical.ok) return lexical;
  return { ok: true, value };
}

/** One open container while scanning: the keys seen so far for an object, null for an array. */
type OpenContainer = Set<string> | null;

function scanTokens(text: string): { ok: true } | { ok: false; reason: string } {
  const stack: OpenContainer[] = [];
  let expectKey = false;
  const n = text.length;
  // Position of the next backslash at or after the scan position (n if none): found with indexOf
  // and only searched again once passed, so the scan stays linear.
  let nextBackslash = -1;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      if (nextBackslash < i) nextBackslash = indexOrEnd(text, "\\", i);
      // The closing quote: the first `"` after the opening one that no backslash escapes.
      let j = text.indexOf('"', i + 1);
      const escaped = nextBackslash < j;
      if (escaped) {
        j = i + 1;
        for (let d = text.charCodeAt(j); d !== 0x22; d = text.charCodeAt(j)) j += d === 0x5c ? 2 : 1;
      }
      const top = stack[stack.length - 1];
      const isKey = expectKey && top != null;
      // Raw lone surrogates were refused before the scan; escaped ones (`\udead`) show up
      // only once decoded. Keys are decoded so that `"a"` and `"\u0061"` count as the same key.
      const hasUnicodeEscape = escaped && text.slice(i, j).includes("\\u");
      if (isKey || hasUnicodeEscape) {
        const decoded = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        if (hasUnicodeEscape && LONE_SURROGATE.test(decoded)) return { ok: false, reason: "string holds a lone surrogate" };
        if (isKey) {
          if (top.has(decoded)) return { ok: false, reason: `duplicate object key ${JSON.stringify(decoded)}` };
          top.add(decoded);
          expectKey = false;
        }
      }
      i = j + 1;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (stack.length >= MAX_JSON_DEPTH) return { ok: false, reason: `nesting deeper than ${MAX_JSON_DEPTH}` };
      stack.push(c === 0x7b ? new Set<string>() : null);
      expectKey = c === 0x7b;
      i++;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
      i++;
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] != null;
      i++;
    } else if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1;
      while (j < n && isNumberChar(text.charCodeAt(j))) j++;
      const reason = checkNumberToken(text.slice(i, j));
      if (reason !== undefined) return { ok: false, reason };
      i = j;
    } else {
      i++;
    }
  }
  return { ok: true };
}

function indexOrEnd(text: string, search: string, from: number): number {
  const index = text.indexOf(search, from);
  return index < 0 ? text.length : index;
}

function isNumberChar(c: number): boolean {
  // digits . e E + -
  return (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d;
}

function checkNumberToken(token: string): string | undefined {
  if (/[.eE]/.test(token)) return `number ${token} has a fraction or exponent`;
  if (token === "-0") return "number -0 is not allowed";
  // Any integer text beyond 2^53−1 parses to a double ≥ 2^53, which is not a safe integer.
  if (!Number.isSafeInteger(Number(token))) return `number ${token} is outside ±(2^53−1)`;
  return undefined;
}

/** Checks an already-parsed value for numbers LM forbids (non-integers, out-of-range, -0). */
export function checkCanonicalNumbers(value: unknown): { ok: true } | { ok: false; reason: string } {
  // Iterative, with a depth bound so that even a cyclic value ends (with a failure).
  const pending: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  for (let item = pending.pop(); item !== undefined; item = pending.pop()) {
    const current = item.value;
    if (typeof current === "number") {
      if (!Number.isSafeInteger(current)) return { ok: false, reason: `number ${String(current)} is not an integer within ±(2^53−1)` };
      if (Object.is(current, -0)) return { ok: false, reason: "number -0 is not allowed" };
    } else if (typeof current === "object" && current !== null) {
      if (item.depth >= MAX_JSON_DEPTH) return { ok: false, reason: `nesting deeper than ${MAX_JSON_DEPTH}` };
      const children: unknown[] = Array.isArray(current) ? current : Object.values(current);
      for (const child of children) pending.push({ value: child, depth: item.depth + 1 });
    }
  }
  return { ok: true };
}
