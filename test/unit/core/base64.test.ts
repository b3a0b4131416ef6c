import fc from "fast-check";
import { decodeBase64, decodeBase64Url, encodeBase64, encodeBase64Url } from "../../../src/core/base64.js";

const bytes = (...values: number[]) => new Uint8Array(values);
const ascii = (text: string) => new TextEncoder().encode(text);

describe("encoding (RFC 4648 section 10 test vectors, unpadded)", () => {
  test.each([
    ["", ""],
    ["f", "Zg"],
    ["fo", "Zm8"],
    ["foo", "Zm9v"],
    ["foob", "Zm9vYg"],
    ["fooba", "Zm9vYmE"],
    ["foobar", "Zm9vYmFy"],
  ])("%j -> %j", (text, encoded) => {
    expect(encodeBase64(ascii(text))).toBe(encoded);
    expect(encodeBase64Url(ascii(text))).toBe(encoded);
    expect(decodeBase64(encoded)).toEqual(ascii(text));
  });

  test("standard and URL-safe alphabets differ only in the 62nd and 63rd characters", () => {
    expect(encodeBase64(bytes(0xfb, 0xff, 0xbf))).toBe("+/+/");
    expect(encodeBase64Url(bytes(0xfb, 0xff, 0xbf))).toBe("-_-_");
  });

  test("encodes a view into a larger buffer correctly", () => {
    const buffer = bytes(1, 2, 3, 4, 5, 6);
    expect(encodeBase64(buffer.subarray(2, 4))).toBe(encodeBase64(bytes(3, 4)));
  });
});

describe("decoding", () => {
  test("accepts padded and unpadded input", () => {
    expect(decodeBase64("Zg==")).toEqual(ascii("f"));
    expect(decodeBase64("Zg")).toEqual(ascii("f"));
    expect(decodeBase64("Zm8=")).toEqual(ascii("fo"));
    expect(decodeBase64Url("-_-_")).toEqual(bytes(0xfb, 0xff, 0xbf));
    expect(decodeBase64Url("-w==")).toEqual(bytes(0xfb));
    expect(decodeBase64Url("-w")).toEqual(bytes(0xfb));
  });

  test("returns a plain Uint8Array (not a view into Buffer's pool)", () => {
    const decoded = decodeBase64("Zm9v");
    expect(decoded).toBeInstanceOf(Uint8Array);
    expect(Buffer.isBuffer(decoded)).toBe(false);
    expect(decoded?.byteOffset).toBe(0);
  });

  test("accepts non-zero trailing pad bits: the spec's signing seed has them", () => {
    const spec = decodeBase64("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1");
    const canonical = decodeBase64("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA0");
    expect(spec).toHaveLength(32);
    expect(spec).toEqual(canonical);
    expect(encodeBase64(spec!)).toBe("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA0");
  });

  test.each([
    ["Z", "one character in the last group"],
    ["Zm9vY", "five characters"],
    ["Zg=", "incomplete padding"],
    ["Zm8==", "too much padding"],
    ["Zm9v=", "padding after a complete group"],
    ["=", "padding only"],
    ["Zg===", "three pad characters"],
    ["Z=g=", "padding inside"],
    ["Zm 9v", "space"],
    ["Zm9v\n", "newline"],
    ["Zm9v!", "character outside the alphabet"],
    ["Zm9v.", "dot"],
  ])("refuses %j (%s)", (text) => {
    expect(decodeBase64(text)).toBeUndefined();
    expect(decodeBase64Url(text)).toBeUndefined();
  });

  test("each decoder refuses the other alphabet", () => {
    expect(decodeBase64("-_-_")).toBeUndefined();
    expect(decodeBase64Url("+/+/")).toBeUndefined();
  });

  test("refuses a non-string without throwing", () => {
    expect(decodeBase64(undefined as unknown as string)).toBeUndefined();
    expect(decodeBase64Url(7 as unknown as string)).toBeUndefined();
  });
});

describe("properties", () => {
  test("decode(encode(x)) = x for both alphabets, and the output is unpadded", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 70 }), (data) => {
        const standard = encodeBase64(data);
        const urlSafe = encodeBase64Url(data);
        expect(standard).not.toContain("=");
        expect(urlSafe).toMatch(/^[A-Za-z0-9_-]*$/);
        expect(decodeBase64(standard)).toEqual(data);
        expect(decodeBase64Url(urlSafe)).toEqual(data);
        expect(decodeBase64(Buffer.from(data).toString("base64"))).toEqual(data);
      }),
      { numRuns: 200 },
    );
  });
});
