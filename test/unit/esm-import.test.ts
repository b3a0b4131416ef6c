// Proves the jest setup can load ESM-only packages that later layers depend on (ts-mls).
import { getCiphersuiteFromName, getCiphersuiteImpl, generateKeyPackage, defaultCapabilities, defaultLifetime } from "ts-mls";

test("ts-mls (ESM-only) imports and generates a key package", async () => {
  const cipherSuite = await getCiphersuiteImpl(getCiphersuiteFromName("MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"));
  const credential = { credentialType: "basic" as const, identity: new TextEncoder().encode("@alice:example.org|DEV") };
  const kp = await generateKeyPackage(credential, defaultCapabilities(), defaultLifetime, [], cipherSuite);
  expect(kp.publicPackage.leafNode.credential).toEqual(credential);
  expect(kp.privatePackage.signaturePrivateKey.length).toBeGreaterThan(0);
});
