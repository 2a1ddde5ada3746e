// Reading a bundle: its folder, its config.json, parsed and checked.

import { readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { TinycError } from "../errors";
import { parseConfig, type Spec } from "../oci/config";

export interface Bundle {
  dir: string;
  spec: Spec;
}

export function loadBundle(dir: string): Bundle {
  const abs = resolve(dir);
  let st;
  try {
    st = statSync(abs);
  } catch {
    throw new TinycError(`bundle ${JSON.stringify(dir)}: no such directory`);
  }
  if (!st.isDirectory()) throw new TinycError(`bundle ${JSON.stringify(dir)}: not a directory`);
  const file = join(abs, "config.json");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new TinycError(`bundle ${JSON.stringify(dir)}: config.json not found`, {
        hint: "tinyc spec writes one",
      });
    }
    throw new TinycError(`${file}: cannot read: ${code ?? String(e)}`);
  }
  return { dir: abs, spec: parseConfig(text, "config.json") };
}
