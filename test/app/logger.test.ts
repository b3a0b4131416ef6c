import { Writable } from "node:stream";
import { createLogger } from "../../src/app/logger.js";

function capture(): { stream: Writable; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { stream, lines: () => chunks.join("").split("\n").filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>) };
}

describe("createLogger", () => {
  it("writes JSON lines at the configured level; child loggers carry their context", () => {
    const { stream, lines } = capture();
    const logger = createLogger("info", stream);
    logger.debug("hidden");
    logger.child({ room_id: "!r:example.org" }).info({ event_id: "$e" }, "appended");
    logger.warn("careful");
    const [appended, careful, ...rest] = lines();
    expect(rest).toEqual([]);
    expect(appended).toMatchObject({ level: "info", service: "bobbin", room_id: "!r:example.org", event_id: "$e", msg: "appended" });
    expect(typeof appended?.time).toBe("string");
    expect(careful).toMatchObject({ level: "warn", msg: "careful" });
    expect(careful).not.toHaveProperty("room_id");
  });

  it("silent writes nothing", () => {
    const { stream, lines } = capture();
    createLogger("silent", stream).fatal("nothing");
    expect(lines()).toEqual([]);
  });
});
