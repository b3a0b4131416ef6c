// Native ESM jest (run with node --experimental-vm-modules, see package.json) so that ESM-only
// dependencies such as ts-mls and matrix-js-sdk import without transformation.
/** @type {import('jest').Config} */
export default {
  // matrix-js-sdk leaves timers running for up to 110 s after stopClient (see ../shared/notes/matrix-js-sdk.md).
  forceExit: true,
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  extensionsToTreatAsEsm: [".ts"],
  moduleNameMapper: {
    // Sources import siblings as "./x.js" (NodeNext); map them back to the .ts file.
    "^(\\.{1,2}/.*)\\.js$": "$1",
  },
  transform: {
    // Type checking is done once by `npm run typecheck`; ts-jest only transpiles here.
    "^.+\\.ts$": ["ts-jest", { useESM: true, tsconfig: "tsconfig.json" }],
  },
};
