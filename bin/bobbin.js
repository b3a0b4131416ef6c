#!/usr/bin/env node
// The `bobbin` command: runs the compiled CLI in dist/ (`npm run build` writes it).
import { existsSync } from "node:fs";

const entry = new URL("../dist/main.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write("bobbin: dist/main.js is missing; run `npm run build` in the Bobbin directory first\n");
  process.exit(1);
}
const { main } = await import(entry.href);
await main(process.argv.slice(2));
