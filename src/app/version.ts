// The version Bobbin reports (federation `version`, logs); test/app/version.test.ts keeps it equal
// to package.json's.
export const BOBBIN_VERSION = "0.1.0";
