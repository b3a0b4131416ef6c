// docs/config.md is generated from the schema; this fails when someone changes one without the other.
import { readFileSync } from "node:fs";
import { renderConfigReference } from "../../src/app/config-docs.js";
import { configSchema, type SchemaNode } from "../../src/app/config-schema.js";

const docsPath = new URL("../../docs/config.md", import.meta.url);

function keyPaths(schema: SchemaNode, prefix: string): string[] {
  return Object.entries(schema.properties ?? {}).flatMap(([key, property]) => [
    `${prefix}/${key}`,
    ...keyPaths(property, `${prefix}/${key}`),
    ...(property.items ? keyPaths(property.items, `${prefix}/${key}/N`) : []),
  ]);
}

describe("docs/config.md", () => {
  it("matches the schema (rewrite it with `node --import tsx scripts/write-config-docs.ts`)", () => {
    expect(readFileSync(docsPath, "utf8")).toBe(renderConfigReference());
  });

  it("documents every key with a description", () => {
    const docs = readFileSync(docsPath, "utf8");
    for (const path of keyPaths(configSchema, "")) expect(docs).toContain(`| \`${path}\` |`);
    const undescribed = keyPaths(configSchema, "").filter((path) => {
      let node: SchemaNode | undefined = configSchema;
      for (const key of path.slice(1).split("/")) node = key === "N" ? node?.items : node?.properties?.[key];
      return !node?.description;
    });
    expect(undescribed).toEqual([]);
  });

  it("names the environment overrides", () => {
    const docs = readFileSync(docsPath, "utf8");
    expect(docs).toContain("`BOBBIN_CONFIG`");
    expect(docs).toContain("`DATABASE_URL`");
  });
});
