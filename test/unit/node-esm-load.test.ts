import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);

/**
 * Vitest resolves CommonJS packages' named exports its own way; `npm start` runs Node's ESM loader
 * (through tsx), which only sees the names cjs-module-lexer finds. `import { ConfigResourceTypes }
 * from "kafkajs"` passed every test and broke `npm start` on a fresh clone. These entry points must
 * load under Node itself.
 */
describe("the local stack's modules under Node's own ESM loader", () => {
  it("load (named imports from CommonJS packages resolve)", async () => {
    const entries = ["local/stack.ts", "local/mappings.ts", "lib/adapters/kafka-topics.ts"].map((e) =>
      JSON.stringify(resolve(e)),
    );
    const script = `for (const e of [${entries.join(",")}]) await import(e);`;
    const { stderr } = await run(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: process.cwd(),
      timeout: 60_000,
    }).catch((error: { stderr?: string }) => ({ stderr: `failed: ${error.stderr ?? String(error)}` }));
    expect(stderr).not.toMatch(/failed|SyntaxError/);
  }, 90_000);
});
