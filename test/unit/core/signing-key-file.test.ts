import { readFileSync } from "node:fs";
import fc from "fast-check";
import { encodeBase64 } from "../../../src/core/base64.js";
import { nativeEd25519 } from "../../../src/core/ed25519.js";
import { formatSigningKeyFile, parseSigningKeyFile } from "../../../src/core/signing-key-file.js";

const specSeed = (
  JSON.parse(readFileSync(new URL("../../fixtures/signing-vectors.json", import.meta.url), "utf8")) as {
    signing_key_seed_unpadded_base64: string;
  }
).signing_key_seed_unpadded_base64;

const seed = (fill: number) => new Uint8Array(32).fill(fill);

describe("parseSigningKeyFile (Synapse's format)", () => {
  test("reads a Synapse key file line, including the spec's seed with non-zero pad bits", () => {
    const result = parseSigningKeyFile(`ed25519 a_Abc1 ${specSeed}\n`);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.keys).toHaveLength(1);
    expect(result.keys[0]!.version).toBe("a_Abc1");
    expect(encodeBase64(nativeEd25519.signerFromSeed(result.keys[0]!.seed).publicKey)).toBe("XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI");
  });

  test("several keys, blank lines, CRLF, extra spaces and padded seeds", () => {
    const text = `\n  ed25519 1 ${encodeBase64(seed(1))}  \r\n\r\n\ted25519\t2\t${encodeBase64(seed(2))}=\n\n`;
    expect(parseSigningKeyFile(text)).toEqual({
      ok: true,
      keys: [
        { version: "1", seed: seed(1) },
        { version: "2", seed: seed(2) },
      ],
    });
  });

  test.each([
    ["", "no key"],
    ["\n\n  \n", "no key"],
    [`ed25519 1`, "line 1"],
    [`ed25519 1 ${encodeBase64(seed(1))} extra`, "line 1"],
    [`\ncurve25519 1 ${encodeBase64(seed(1))}`, "line 2"],
    [`ED25519 1 ${encodeBase64(seed(1))}`, "line 1"],
    [`ed25519 a-b ${encodeBase64(seed(1))}`, "line 1"],
    [`ed25519 1 ${encodeBase64(seed(1))}\ned25519 2 not*base64`, "line 2"],
    [`ed25519 1 ${encodeBase64(new Uint8Array(31))}`, "line 1"],
    [`ed25519 1 ${encodeBase64(new Uint8Array(64))}`, "line 1"],
    [`ed25519 1 ${encodeBase64(seed(1))}\n\ned25519 1 ${encodeBase64(seed(2))}`, "line 3"],
    ["# a comment", "line 1"],
  ])("refuses %j, naming %s", (text, where) => {
    const result = parseSigningKeyFile(text);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toContain(where);
  });

  test("error messages say why", () => {
    const reason = (text: string) => {
      const result = parseSigningKeyFile(text);
      return result.ok ? "" : result.reason;
    };
    expect(reason(`ed25519 1 ${encodeBase64(new Uint8Array(31))}`)).toMatch(/31 bytes/);
    expect(reason(`rsa 1 ${encodeBase64(seed(1))}`)).toMatch(/algorithm/);
    expect(reason(`ed25519 1 ${encodeBase64(seed(1))}\ned25519 1 ${encodeBase64(seed(1))}`)).toMatch(/twice/);
    expect(reason("ed25519 1 !!!!")).toMatch(/base64/);
  });

  test("never throws on a non-string", () => {
    expect(parseSigningKeyFile(undefined as unknown as string).ok).toBe(false);
  });
});

describe("formatSigningKeyFile", () => {
  test("writes one unpadded line per key", () => {
    expect(formatSigningKeyFile([{ version: "a_1", seed: seed(0) }])).toBe(`ed25519 a_1 ${"A".repeat(43)}\n`);
    expect(formatSigningKeyFile([])).toBe("");
  });

  test("round-trips", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.record({ version: fc.stringMatching(/^[A-Za-z0-9_]{1,12}$/), seed: fc.uint8Array({ minLength: 32, maxLength: 32 }) }),
          { minLength: 1, maxLength: 4, selector: (key) => key.version },
        ),
        (keys) => {
          expect(parseSigningKeyFile(formatSigningKeyFile(keys))).toEqual({ ok: true, keys });
        },
      ),
      { numRuns: 100 },
    );
  });
});
