// `bobbin start` with a broken registration file: the real CLI (src/main.ts through tsx) refuses to
// start, with one line naming the configuration file, the registration file and the key.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const tsx = pathToFileURL(createRequire(join(root, "package.json")).resolve("tsx")).href;

test("a registration with an invalid regex stops start-up with the file and key named", async () => {
  const dir = mkdtempSync(join(tmpdir(), "bobbin-as-cli-"));
  try {
    writeFileSync(
      join(dir, "bridge.yaml"),
      'id: broken\nurl: null\nas_token: a\nhs_token: h\nsender_localpart: _b_bot\nnamespaces:\n  users:\n    - exclusive: true\n      regex: "@_b_(["\n',
    );
    writeFileSync(join(dir, "bobbin.yaml"), `server_name: example.org\nlisteners: [{ port: 0 }]\ndata_dir: ${dir}\napp_service_config_files: [bridge.yaml]\n`);
    const child = spawn(process.execPath, ["--import", tsx, join(root, "src", "main.ts"), "start", "--config", join(dir, "bobbin.yaml")], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? "", HOME: dir },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += String(chunk)));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(code).toBe(1);
    expect(stderr).toContain(`${join(dir, "bobbin.yaml")}: app_service_config_files: ${join(dir, "bridge.yaml")}: /namespaces/users/0/regex is not a valid regular expression`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 30_000);
