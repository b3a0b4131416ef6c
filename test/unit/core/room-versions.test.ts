// The room-version table: every version spells out its rules; unknown versions are clear rejections.
import { DEFAULT_ROOM_VERSION, getRoomVersion, knownRoomVersions, resolveRoomVersion } from "../../../src/core/room-versions.js";

test("the default is the LM .02 version, and I.1 names the same algorithms", () => {
  const lm = getRoomVersion(DEFAULT_ROOM_VERSION)!;
  const i1 = getRoomVersion("I.1")!;
  expect(lm.id).toBe("org.matrix.i-d.ralston-mimi-linearized-matrix.02");
  expect({ ...i1, id: lm.id, stability: lm.stability }).toEqual(lm);
  expect(lm).toMatchObject({ linearized: true, authRules: "linearized", canonicalJsonKeyOrder: "utf16", eventFormat: "linearized", maxEventBytes: 65536 });
});

test("classic versions 10 and 11 use code-point order and no LPDUs", () => {
  for (const id of ["10", "11"]) {
    expect(getRoomVersion(id)).toMatchObject({ linearized: false, canonicalJsonKeyOrder: "codepoint", eventFormat: "matrix-v4" });
  }
  expect(getRoomVersion("10")!.redaction.name).toBe("v10");
  expect(getRoomVersion("11")!.redaction.name).toBe("v11");
});

test("every version is listed once", () => {
  expect(knownRoomVersions().map((v) => v.id).sort()).toEqual(["10", "11", "I.1", "org.matrix.i-d.ralston-mimi-linearized-matrix.02"]);
});

test.each([["9"], ["org.matrix.i-d.ralston-mimi-linearized-matrix.00"], [""], [7], [null], [undefined]])("resolveRoomVersion(%p) is M_UNSUPPORTED_ROOM_VERSION", (id) => {
  expect(resolveRoomVersion(id)).toMatchObject({ ok: false, errcode: "M_UNSUPPORTED_ROOM_VERSION" });
});

test("resolveRoomVersion finds known versions", () => {
  expect(resolveRoomVersion("I.1")).toMatchObject({ ok: true, rules: { id: "I.1" } });
});
