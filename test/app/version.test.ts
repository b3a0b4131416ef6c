import { readFileSync } from "node:fs";
import { BOBBIN_VERSION } from "../../src/app/version.js";

test("the reported version is package.json's", () => {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  expect(BOBBIN_VERSION).toBe(pkg.version);
});
