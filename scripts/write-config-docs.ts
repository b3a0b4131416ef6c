// Rewrites docs/config.md from the configuration schema (src/app/config-docs.ts).
import { writeFileSync } from "node:fs";
import { renderConfigReference } from "../src/app/config-docs.js";

const target = new URL("../docs/config.md", import.meta.url);
writeFileSync(target, renderConfigReference());
console.log(`wrote ${target.pathname}`);
