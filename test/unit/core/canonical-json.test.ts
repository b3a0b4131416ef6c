import { readFileSync } from "node:fs";
import fc from "fast-check";
import {
  checkCanonicalNumbers,
  compareCodePoints,
  encodeCanonicalJson,
  MAX_JSON_DEPTH,
  parseStrictJson,
} from "../../../src/core/canonical-json.js";
import { Errcode, MatrixError } from "../../../src/core/errors.js";
import type { JsonObject, JsonValue } from "../../../src/core/json.js";

interface CanonicalVectors {
  cases: Array<{ input_text: string; expected_canonical: string; source_lines: string }>;
  supplementary_gomatrixserverlib: {
    conversion: Array<{ name: string; input_text: string; expected_canonical: string }>;
    strict_validity_v11: Array<{ name: string; input_text: string; valid: boolean }>;
    compact: Array<{ input_text: string; expected: string }>;
  };
}

const vectors = JSON.parse(
  readFileSync(new URL("../../fixtures/canonical-json-vectors.json", import.meta.url), "utf8"),
) as CanonicalVectors;

/** Encoding throws MatrixError(M_BAD_JSON). */
function expectBadJson(encode: () => unknown): void {
  let caught: unknown;
  try {
    encode();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(MatrixError);
  expect((caught as MatrixError).errcode).toBe(Errcode.BAD_JSON);
  expect((caught as MatrixError).httpStatus).toBe(400);
}

describe("spec examples (Matrix appendix, Canonical JSON)", () => {
  // The last spec example holds `-0` and `1e10`: JSON.parse turns them into the integers 0 and
  // 10000000000, which encode as the spec expects. LM forbids both in received JSON, so the same
  // text is refused by parseStrictJson (tested separately below).
  test.each(vectors.cases.map((c) => [c.source_lines, c] as const))("%s", (_lines, c) => {
    const value = JSON.parse(c.input_text) as JsonValue;
    expect(encodeCanonicalJson(value, "utf16")).toBe(c.expected_canonical);
    expect(encodeCanonicalJson(value, "codepoint")).toBe(c.expected_canonical);
  });

  test("the -0 / 1e10 example is refused by the strict parser, because LM forbids both lexically", () => {
    const last = vectors.cases.find((c) => c.input_text.includes("1e10"));
    expect(last).toBeDefined();
    const parsed = parseStrictJson(last!.input_text);
    expect(parsed.ok).toBe(false);
    // The other spec examples all pass the strict parser and encode to the expected text.
    for (const c of vectors.cases.filter((x) => x !== last)) {
      const result = parseStrictJson(c.input_text);
      expect(result).toEqual({ ok: true, value: JSON.parse(c.input_text) });
      if (result.ok) expect(encodeCanonicalJson(result.value, "utf16")).toBe(c.expected_canonical);
    }
  });
});

describe("gomatrixserverlib supplementary vectors", () => {
  const { conversion, strict_validity_v11: strict, compact } = vectors.supplementary_gomatrixserverlib;

  test.each(conversion.map((c) => [c.name, c] as const))("conversion: %s", (_name, c) => {
    expect(encodeCanonicalJson(JSON.parse(c.input_text) as JsonValue, "codepoint")).toBe(c.expected_canonical);
    expect(encodeCanonicalJson(JSON.parse(c.input_text) as JsonValue, "utf16")).toBe(c.expected_canonical);
  });

  test.each(strict.map((c) => [c.name, c] as const))("strict validity: %s", (_name, c) => {
    expect(parseStrictJson(c.input_text).ok).toBe(c.valid);
  });

  // gmsl's CompactJSON only normalises escapes; canonical JSON must produce the same string
  // escapes. Skipped: the lone surrogate (gmsl drops it; we refuse it, see below) and the lone
  // `"` (not JSON; a robustness test of gmsl's compactor).
  const comparable = compact.filter((c) => c.input_text !== '"' && !c.input_text.includes("\\uDEAD"));
  test.each(comparable.map((c) => [c.input_text, c] as const))("string escapes: %s", (_input, c) => {
    const parsed = parseStrictJson(c.input_text);
    expect(parsed.ok).toBe(true);
    if (parsed.ok) expect(encodeCanonicalJson(parsed.value, "utf16")).toBe(c.expected);
  });

  test("a lone surrogate is refused by the parser and the encoder (not valid Unicode, not I-JSON)", () => {
    expect(parseStrictJson('["\\uDEAD"]').ok).toBe(false);
    expectBadJson(() => encodeCanonicalJson(["\uDEAD"], "utf16"));
    expectBadJson(() => encodeCanonicalJson({ "\uD83D": 1 }, "codepoint"));
    // A proper pair, escaped or raw, is fine.
    expect(parseStrictJson('["\\uD83D\\uDE00"]')).toEqual({ ok: true, value: ["\u{1F600}"] });
    expect(encodeCanonicalJson(["\u{1F600}"], "utf16")).toBe('["\u{1F600}"]');
  });
});

describe("key order", () => {
  // U+1F600 is the surrogate pair D83D DE00; U+FB33 and U+E000 are single code units above D83D.
  const object = { "\u{1F600}": 1, "\uFB33": 2, "\uE000": 3, a: 4 };

  test("RFC 8785 (utf16) sorts by UTF-16 code units: surrogates before U+E000–U+FFFF", () => {
    expect(encodeCanonicalJson(object, "utf16")).toBe('{"a":4,"\u{1F600}":1,"\uE000":3,"\uFB33":2}');
  });

  test("classic Matrix (codepoint) sorts by code point: astral characters last", () => {
    expect(encodeCanonicalJson(object, "codepoint")).toBe('{"a":4,"\uE000":3,"\uFB33":2,"\u{1F600}":1}');
  });

  test("orders agree when no astral character meets U+E000–U+FFFF", () => {
    const plain = { "\u{1F600}": 1, "\u00F1": 2, "\u65E5": 3, z: 4, "": 5 };
    expect(encodeCanonicalJson(plain, "utf16")).toBe(encodeCanonicalJson(plain, "codepoint"));
    expect(encodeCanonicalJson(plain, "utf16")).toBe('{"":5,"z":4,"ñ":2,"日":3,"\u{1F600}":1}');
  });

  test("RFC 8785 section 3.2.3 sorting example", () => {
    // Keys from the RFC's example: sorted by UTF-16 code units.
    const rfc = {
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis",
    };
    // Object.keys would put the integer-like key "1" first, so check positions in the text.
    const encoded = encodeCanonicalJson(rfc, "utf16");
    const order = ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\ud83d\ude00", "\ufb33"].map((k) => encoded.indexOf(JSON.stringify(k)));
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });

  test("compareCodePoints agrees with comparing code point arrays", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), fc.string({ unit: "binary" }), (a, b) => {
        const pa = [...a].map((ch) => ch.codePointAt(0) as number);
        const pb = [...b].map((ch) => ch.codePointAt(0) as number);
        let expected = 0;
        for (let i = 0; i < Math.min(pa.length, pb.length) && expected === 0; i++) expected = (pa[i] as number) - (pb[i] as number);
        if (expected === 0) expected = pa.length - pb.length;
        expect(Math.sign(compareCodePoints(a, b))).toBe(Math.sign(expected));
      }),
      { numRuns: 200 },
    );
  });
});

describe("numbers and refused values", () => {
  test("integers at the ±(2^53−1) limits encode; -0 encodes as 0", () => {
    expect(encodeCanonicalJson([9007199254740991, -9007199254740991, -0, 0], "utf16")).toBe(
      "[9007199254740991,-9007199254740991,0,0]",
    );
  });

  test.each([
    ["fraction", 1.5],
    ["above 2^53−1", 9007199254740992],
    ["below −(2^53−1)", -9007199254740992],
    ["NaN", Number.NaN],
    ["Infinity", Number.POSITIVE_INFINITY],
  ])("refuses %s", (_name, n) => {
    expectBadJson(() => encodeCanonicalJson({ a: n }, "utf16"));
  });

  test("refuses undefined, functions, bigints, symbols and non-plain objects", () => {
    // Deliberately ill-typed values, as a careless caller could pass at run time.
    const bad: unknown[] = [undefined, () => 1, 1n, Symbol("x"), new Date(0), new Map(), new Uint8Array(1), [undefined], { a: undefined }];
    for (const value of bad) expectBadJson(() => encodeCanonicalJson(value as JsonValue, "utf16"));
    // A sparse array's hole is undefined.
    expectBadJson(() => encodeCanonicalJson(new Array(2) as JsonValue, "utf16"));
  });

  test("a \"__proto__\" key from parsed JSON is an ordinary key", () => {
    const parsed = parseStrictJson('{"b":1,"__proto__":{"x":1}}');
    expect(parsed.ok).toBe(true);
    if (parsed.ok) expect(encodeCanonicalJson(parsed.value, "utf16")).toBe('{"__proto__":{"x":1},"b":1}');
    expect(parseStrictJson('{"__proto__":1,"__proto__":2}').ok).toBe(false);
  });

  test("accepts objects with a null prototype", () => {
    const object = Object.create(null) as JsonObject;
    object.b = 1;
    object.a = 2;
    expect(encodeCanonicalJson(object, "utf16")).toBe('{"a":2,"b":1}');
  });

  test("refuses nesting beyond MAX_JSON_DEPTH without overflowing the stack", () => {
    let deep: JsonValue = 1;
    for (let i = 0; i < MAX_JSON_DEPTH + 1; i++) deep = [deep];
    expectBadJson(() => encodeCanonicalJson(deep, "utf16"));
    const text = "[".repeat(100_000) + "]".repeat(100_000);
    expect(parseStrictJson(text).ok).toBe(false);
    expect(checkCanonicalNumbers(deep).ok).toBe(false);
    let fits: JsonValue = 1;
    for (let i = 0; i < MAX_JSON_DEPTH; i++) fits = [fits];
    expect(encodeCanonicalJson(fits, "utf16")).toBe("[".repeat(MAX_JSON_DEPTH) + "1" + "]".repeat(MAX_JSON_DEPTH));
  });

  test("checkCanonicalNumbers", () => {
    expect(checkCanonicalNumbers({ a: [1, -2, { b: 9007199254740991 }], s: "1.5" })).toEqual({ ok: true });
    expect(checkCanonicalNumbers({ a: [1, { b: 1.5 }] }).ok).toBe(false);
    expect(checkCanonicalNumbers({ a: -0 }).ok).toBe(false);
    expect(checkCanonicalNumbers(9007199254740992).ok).toBe(false);
    expect(checkCanonicalNumbers(Number.NaN).ok).toBe(false);
    expect(checkCanonicalNumbers(null)).toEqual({ ok: true });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(checkCanonicalNumbers(cyclic).ok).toBe(false);
  });
});

describe("parseStrictJson", () => {
  test.each([
    ['{"a":1.0}', "fraction"],
    ['{"a":1e2}', "exponent"],
    ['{"a":1E+2}', "exponent"],
    ['[-0]', "-0"],
    ['{"a":{"b":[12345678901234567890]}}', "out of range"],
    ['{"a":1,"a":2}', "duplicate key"],
    ['{"a":1,"\\u0061":2}', "duplicate key spelled with an escape"],
    ['{"x":{"a":1,"b":{},"a":3}}', "nested duplicate key"],
    ["{", "not JSON"],
    ["", "empty"],
    ["{'a':1}", "not JSON"],
    ["[1,]", "trailing comma"],
    ['{"a\\"":1,"a\\"":2}', "duplicate key holding an escaped quote"],
    ['{"a\\\\":1,"b":"x\\\\","a\\\\":2}', "duplicate key ending in an escaped backslash"],
    ['{"a":"\\\\\\"1.5","n":1.5}', "fraction after a string with escapes"],
  ])("refuses %s (%s)", (text) => {
    const result = parseStrictJson(text);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(typeof result.reason).toBe("string");
  });

  test.each([
    ['{"a":"1.5e3","b":"-0"}', { a: "1.5e3", b: "-0" }],
    ['{"a":{"k":1},"b":{"k":2}}', { a: { k: 1 }, b: { k: 2 } }],
    ['[{"a":1},{"a":1}]', [{ a: 1 }, { a: 1 }]],
    ['{"a":["a","a"],"b":"a"}', { a: ["a", "a"], b: "a" }],
    ['{"k\\"ey":0,"v":"\\\\"}', { 'k"ey': 0, v: "\\" }],
    [" 0 ", 0],
    ["-9007199254740991", -9007199254740991],
    ['"\\u002d0"', "-0"],
    ['{"a\\\\":1,"b":"x\\\\\\"","c":"1.5"}', { "a\\": 1, b: 'x\\"', c: "1.5" }],
  ])("accepts %s", (text, expected) => {
    expect(parseStrictJson(text)).toEqual({ ok: true, value: expected });
  });

  test("finds duplicate keys exactly, however the keys are escaped", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: "binary", maxLength: 4 }), { maxLength: 6 }), fc.boolean(), (keys, escapeAll) => {
        // Either JSON.stringify's minimal escapes or every character as \uXXXX.
        const quote = (key: string) =>
          escapeAll ? `"${[...key].map((ch) => ch.split("").map((u) => `\\u${u.charCodeAt(0).toString(16).padStart(4, "0")}`).join("")).join("")}"` : JSON.stringify(key);
        const text = `[{"pad":"\\\\"},{${keys.map((k, i) => `${quote(k)}:${i}`).join(",")}}]`;
        expect(parseStrictJson(text).ok).toBe(new Set(keys).size === keys.length);
      }),
      { numRuns: 200 },
    );
  });

  test("never throws on arbitrary text", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
        const result = parseStrictJson(text);
        expect(typeof result.ok).toBe("boolean");
      }),
      { numRuns: 200 },
    );
    expect(parseStrictJson(42 as unknown as string).ok).toBe(false);
  });
});

/** JSON values within canonical JSON's domain: safe integers, no -0, well-formed strings. */
const canonicalValue: fc.Arbitrary<JsonValue> = fc.letrec<{ value: JsonValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.string({ unit: "binary" }),
    fc.maxSafeInteger().map((n) => (n === 0 ? 0 : n)),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(fc.string({ unit: "binary" }), tie("value"), { maxKeys: 5 }),
  ),
})).value;

/** The same value with every object's keys inserted in reverse. */
function reorderKeys(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(reorderKeys);
  if (value !== null && typeof value === "object") {
    // fromEntries defines own properties, so a "__proto__" key stays a key (assignment would not).
    return Object.fromEntries(Object.keys(value).reverse().map((key) => [key, reorderKeys(value[key] as JsonValue)])) as JsonObject;
  }
  return value;
}

describe("properties", () => {
  test.each(["utf16", "codepoint"] as const)("%s: stable under key reordering, and parse(encode(x)) round-trips", (order) => {
    fc.assert(
      fc.property(canonicalValue, (value) => {
        const encoded = encodeCanonicalJson(value, order);
        expect(encodeCanonicalJson(reorderKeys(value), order)).toBe(encoded);
        const parsed = parseStrictJson(encoded);
        expect(parsed).toEqual({ ok: true, value });
        if (parsed.ok) expect(encodeCanonicalJson(parsed.value, order)).toBe(encoded);
        // Same length as the standard serialiser's compact output: no whitespace added.
        expect(encoded.length).toBe(JSON.stringify(value).length);
      }),
      { numRuns: 200 },
    );
  });
});
