// A throwaway certificate authority and server certificates made with the openssl CLI, for tests
// that federate over real TLS on loopback.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestCertificate {
  cert: string;
  key: string;
}

export interface TestPki {
  readonly dir: string;
  /** The CA certificate (PEM), to pass as the extra CA. */
  readonly caPem: string;
  readonly caPath: string;
  /** A server certificate signed by the CA for these subject alternative names (`DNS:…` / `IP:…`). */
  issue(altNames: string[]): TestCertificate;
  /** A self-signed certificate, not from the CA. */
  selfSigned(altNames: string[]): TestCertificate;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

const KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

export function createTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "bobbin-pki-"));
  openssl(
    ["req", "-x509", ...KEY, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Bobbin Test CA",
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    dir,
  );
  let serial = 0;
  const extensions = (altNames: string[]) =>
    [`subjectAltName=${altNames.join(",")}`, "basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature", "extendedKeyUsage=serverAuth"].join("\n");
  return {
    dir,
    caPem: readFileSync(join(dir, "ca.pem"), "utf8"),
    caPath: join(dir, "ca.pem"),
    issue(altNames) {
      const name = `server${++serial}`;
      writeFileSync(join(dir, `${name}.ext`), extensions(altNames));
      openssl(["req", ...KEY, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`], dir);
      openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", String(1000 + serial),
        "-out", `${name}.pem`, "-days", "2", "-extfile", `${name}.ext`], dir);
      return { cert: readFileSync(join(dir, `${name}.pem`), "utf8"), key: readFileSync(join(dir, `${name}.key`), "utf8") };
    },
    selfSigned(altNames) {
      const name = `self${++serial}`;
      openssl(["req", "-x509", ...KEY, "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "2", "-subj", `/CN=${name}`,
        "-addext", `subjectAltName=${altNames.join(",")}`], dir);
      return { cert: readFileSync(join(dir, `${name}.pem`), "utf8"), key: readFileSync(join(dir, `${name}.key`), "utf8") };
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
