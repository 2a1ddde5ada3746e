// The key sequence that detaches from a container's terminal, in docker's notation:
// "ctrl-p,ctrl-q" (the default), or any list of single characters and ctrl-KEY.

import { EXIT, TinycError } from "../errors";

export const DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q";

/** The bytes of a detach sequence; "" means the terminal cannot be detached from. */
export function parseDetachKeys(text: string = DEFAULT_DETACH_KEYS): Uint8Array {
  if (text === "") return new Uint8Array(0);
  const bytes = text.split(",").map((key) => {
    const ctrl = /^ctrl-(.)$/.exec(key);
    if (ctrl) {
      const c = ctrl[1].toLowerCase();
      if (c >= "a" && c <= "z") return c.charCodeAt(0) - 96;
      const at = "@[\\]^_".indexOf(c);
      if (at >= 0) return at === 0 ? 0 : 26 + at;
    } else if (key.length === 1 && key.charCodeAt(0) < 128) {
      return key.charCodeAt(0);
    }
    throw new TinycError(`--detach-keys ${JSON.stringify(text)}: ${JSON.stringify(key)} is not a key`, {
      exitCode: EXIT.usage,
      hint: 'a list such as "ctrl-p,ctrl-q": single characters, or ctrl- and one of a-z @ [ \\ ] ^ _',
    });
  });
  return new Uint8Array(bytes);
}
