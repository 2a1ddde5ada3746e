// The command line itself: help, version, completion scripts, usage errors.

import { afterAll, describe, expect, test } from "bun:test";
import { cleanup, run, tinycSkipReason } from "./harness";

afterAll(cleanup);

describe.skipIf(tinycSkipReason() !== null)("the command line", () => {
  test("--version names the version and the commit", async () => {
    const r = await run(["--version"], { as: "root" });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^tinyc version \S+\ncommit: [0-9a-f]{12}/);
  });

  test("--help lists every verb, and no helper verb", async () => {
    const r = await run(["--help"], { as: "root" });
    for (const verb of ["run", "create", "start", "delete", "exec", "pull", "images", "rm"]) {
      expect(r.stdout).toMatch(new RegExp(`^  ${verb} `, "m"));
    }
    expect(r.stdout).not.toContain("_unpack");
  });

  test("COMMAND --help prints that command's flags", async () => {
    const r = await run(["create", "--help"], { as: "root" });
    expect({ code: r.code, console: r.stdout.includes("--console-socket") }).toEqual({
      code: 0,
      console: true,
    });
  });

  test("an unknown verb is a usage error on one line", async () => {
    const r = await run(["frobnicate"], { as: "root" });
    expect({ code: r.code, lines: r.stderr.trim().split("\n").length }).toEqual({ code: 2, lines: 1 });
    expect(r.stderr).toContain('"frobnicate"');
  });

  test("completion bash completes verbs and a verb's flags", async () => {
    const script = await run(["completion", "bash"], { as: "root" });
    const probe =
      `${script.stdout}\n` +
      "COMP_WORDS=(tinyc cre); COMP_CWORD=1; _tinyc; echo \"${COMPREPLY[*]}\"\n" +
      "COMP_WORDS=(tinyc run --pla); COMP_CWORD=2; _tinyc; echo \"${COMPREPLY[*]}\"\n";
    const r = Bun.spawnSync(["bash", "-c", probe], { stdout: "pipe", stderr: "pipe" });
    expect(r.stdout.toString().trim().split("\n")).toEqual(["create", "--platform --plan"]);
  });

  test("completion zsh prints a compdef script, and another shell is refused", async () => {
    const zsh = await run(["completion", "zsh"], { as: "root" });
    const fish = await run(["completion", "fish"], { as: "root" });
    expect({ zsh: zsh.stdout.startsWith("#compdef tinyc"), fish: fish.code }).toEqual({
      zsh: true,
      fish: 2,
    });
  });
});
