// Text generated from the configuration schema: the commented YAML file `bobbin generate-config`
// prints, and docs/config.md (test/app/config-docs.test.ts fails when that file is stale; rewrite
// it with `node --import tsx scripts/write-config-docs.ts`).
import YAML from "yaml";
import { configSchema, RATE_LIMIT_BUCKETS, type SchemaNode } from "./config-schema.js";
import { DEFAULT_CONFIG_FILE, EMBEDDED_DEFAULT_CONFIG } from "./config.js";

export interface ConfigFileOptions {
  serverName: string;
  dataDir?: string;
  port?: number;
}

const WIDTH = 100;

/** A configuration file that loads as is: every key written out with its default, each explained. */
export function renderConfigFile(options: ConfigFileOptions): string {
  const values = {
    server_name: options.serverName,
    listeners: [{ host: "127.0.0.1", port: options.port ?? 8008 }],
    data_dir: options.dataDir ?? "./data",
    database: { engine: "sqlite" },
    signing_key_backend: "native",
    registration: { enabled: false, allow_guests: false },
    rate_limits: Object.fromEntries(RATE_LIMIT_BUCKETS.map((bucket) => [bucket, defaultsOf(objectProperty(configSchema, "rate_limits", bucket))])),
    log_level: "info",
    limits: defaultsOf(objectProperty(configSchema, "limits")),
  };
  const header = [
    `# Bobbin configuration for ${options.serverName}, written by \`bobbin generate-config\`.`,
    "# Every key is described in docs/config.md. Relative paths are relative to this file's directory.",
    "# Keys shown commented out are optional; remove the # to set them.",
    "",
  ];
  return [...header, ...renderMapping(configSchema, values, "")].join("\n") + "\n";
}

function renderMapping(schema: SchemaNode, values: Record<string, unknown>, indent: string): string[] {
  const lines: string[] = [];
  for (const [key, property] of Object.entries(schema.properties ?? {})) {
    if (lines.length > 0 && indent === "") lines.push("");
    for (const line of wrap(property.description ?? "", WIDTH - indent.length - 2)) lines.push(`${indent}# ${line}`);
    const value = values[key];
    if (value === undefined) {
      if (property.defaultText !== undefined) lines.push(`${indent}# Default: ${property.defaultText.replaceAll("`", "")}`);
      const example = property.examples?.[0];
      if (example !== undefined) lines.push(...yamlLines({ [key]: example }, indent).map((line) => line.replace(indent, `${indent}# `)));
    } else if (property.properties !== undefined && isRecord(value)) {
      lines.push(`${indent}${key}:`);
      lines.push(...renderMapping(property, value, `${indent}  `));
    } else {
      lines.push(...yamlLines({ [key]: value }, indent));
    }
  }
  return lines;
}

function yamlLines(value: Record<string, unknown>, indent: string): string[] {
  return YAML.stringify(value, { lineWidth: 0 })
    .trimEnd()
    .split("\n")
    .map((line) => indent + line);
}

function defaultsOf(schema: SchemaNode): Record<string, unknown> {
  return Object.fromEntries(Object.entries(schema.properties ?? {}).map(([key, property]) => [key, property.default]));
}

function objectProperty(schema: SchemaNode, ...path: string[]): SchemaNode {
  let node = schema;
  for (const key of path) {
    const next = node.properties?.[key];
    if (next === undefined) throw new Error(`config schema has no ${path.join("/")}`);
    node = next;
  }
  return node;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  if (line !== "") lines.push(line);
  return lines;
}

/** docs/config.md: where the configuration comes from, the environment, every key, an example. */
export function renderConfigReference(): string {
  const rows = keyRows(configSchema, "");
  return [
    "# Configuration reference",
    "",
    "<!-- Generated from src/app/config-schema.ts by `node --import tsx scripts/write-config-docs.ts`. Do not edit by hand:",
    "     test/app/config-docs.test.ts fails when this file and the schema disagree. -->",
    "",
    "Bobbin reads one YAML file. `bobbin generate-config --server-name example.org > bobbin.yaml` writes one",
    "with every key set to its default and explained. Keys are checked against a schema when the server",
    "starts: a wrong type or an unknown key stops it with a line naming the key, e.g.",
    "`config error: bobbin.yaml: /registration/enabled must be boolean`.",
    "",
    "## Which file is read",
    "",
    "1. the file given with `--config FILE`;",
    "2. else the file named by the `BOBBIN_CONFIG` environment variable;",
    `3. else \`./${DEFAULT_CONFIG_FILE}\` in the working directory, if it exists;`,
    `4. else the embedded default: \`server_name: ${EMBEDDED_DEFAULT_CONFIG.server_name}\` and every other key at its default,`,
    "   that is one listener on 127.0.0.1:8008 serving the client and federation APIs, SQLite at",
    "   `./data/homeserver.db`, a signing key generated on first start in `./data` and reused afterwards,",
    "   and registration closed. Paths are relative to the working directory.",
    "",
    "A file named explicitly (1 or 2) that does not exist is an error. Relative paths inside a file are",
    "relative to that file's directory.",
    "",
    "## Environment variables",
    "",
    "| variable | meaning |",
    "| --- | --- |",
    "| `BOBBIN_CONFIG` | Path of the configuration file when `--config` is not given. |",
    "| `DATABASE_URL` | A PostgreSQL URL. Sets `/database/engine` to `postgres` and `/database/url` to this URL, whatever the file says; `/database/path` is ignored. |",
    "",
    "## Keys",
    "",
    "Keys are written as the JSON Pointer paths error messages use: `/database/engine` is `engine` inside",
    "`database`, and `/listeners/N/port` is `port` in each item of the `listeners` list.",
    "",
    "| key | type | default | meaning |",
    "| --- | --- | --- | --- |",
    ...rows.map((row) => `| \`${row.path}\` | ${row.type} | ${row.default} | ${cell(row.description)} |`),
    "",
    "## Example",
    "",
    "The output of `bobbin generate-config --server-name example.org`:",
    "",
    "```yaml",
    renderConfigFile({ serverName: "example.org" }).trimEnd(),
    "```",
    "",
  ].join("\n");
}

interface KeyRow {
  path: string;
  type: string;
  default: string;
  description: string;
}

function keyRows(schema: SchemaNode, prefix: string): KeyRow[] {
  const rows: KeyRow[] = [];
  const required = new Set(schema.required ?? []);
  for (const [key, property] of Object.entries(schema.properties ?? {})) {
    const path = `${prefix}/${key}`;
    rows.push({ path, type: typeOf(property), default: defaultOf(property, required.has(key)), description: property.description ?? "" });
    if (property.properties !== undefined) rows.push(...keyRows(property, path));
    if (property.items?.properties !== undefined) rows.push(...keyRows(property.items, `${path}/N`));
  }
  return rows;
}

function typeOf(property: SchemaNode): string {
  if (property.enum !== undefined) return property.enum.map((value) => `\`${value}\``).join(" or ");
  if (property.type === "array") return property.items?.type === "object" ? "list of mappings" : `list of ${property.items?.type ?? "values"}`;
  if (property.type === "object") return "mapping";
  const bounds: string[] = [];
  if (property.minimum !== undefined) bounds.push(`≥ ${property.minimum}`);
  if (property.exclusiveMinimum !== undefined) bounds.push(`> ${property.exclusiveMinimum}`);
  if (property.maximum !== undefined) bounds.push(`≤ ${property.maximum}`);
  return bounds.length > 0 ? `${property.type} (${bounds.join(", ")})` : (property.type ?? "any");
}

function defaultOf(property: SchemaNode, required: boolean): string {
  if (required) return "required";
  if (property.defaultText !== undefined) return property.defaultText;
  if (property.default === undefined) return "—";
  // Mappings' defaults are made of their keys' defaults, listed on their own rows.
  if (property.type === "object") return "see below";
  return `\`${JSON.stringify(property.default)}\``;
}

/** Markdown table cells cannot hold `|` or line breaks. */
function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
