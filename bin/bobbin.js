#!/usr/bin/env -S node --max-semi-space-size=8
// The `bobbin` command: runs the compiled CLI in dist/ (`npm run build` writes it).
//
// The line above is the one definition of the flags node runs Bobbin with (`npm start` runs this
// file; bench/client.ts reads the flags from it). --max-semi-space-size=8: V8 lets its young
// generation grow to 16 MB semi-spaces, which a server at rest keeps in its RSS. Measured with 50
// idle long-polling syncs (bench/client.ts): 16 MB ~124 MB RSS, 8 MB ~109 MB, 4 MB ~102 MB; under
// load 4 MB cost a quarter of the sends per second in scavenges, 8 MB a few per cent. It can only
// be set when node starts (v8.setFlagsFromString is too late for the heap's layout).
import { existsSync } from "node:fs";

const entry = new URL("../dist/main.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write("bobbin: dist/main.js is missing; run `npm run build` in the Bobbin directory first\n");
  process.exit(1);
}
const { main } = await import(entry.href);
await main(process.argv.slice(2));
