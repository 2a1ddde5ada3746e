import { writeSync } from "node:fs";
import { EXIT, TinycError } from "../errors";
import { parseFlags } from "./args";
import { commands, type Command } from "./index";

/** The flags a command's help names ("--name", "-n"), in order. */
function flagsOf(help: string): string[] {
  return [...new Set(help.match(/(?<![\w-])--?[a-zA-Z][\w-]*/g) ?? [])].filter(
    (f) => f !== "-" && !/^-\d/.test(f),
  );
}

async function table(): Promise<[string, string[]][]> {
  const verbs = Object.keys(commands).filter((v) => !v.startsWith("_") && !commands[v].hidden);
  const out: [string, string[]][] = [];
  for (const v of verbs) {
    const c: Command = await commands[v].load();
    out.push([v, flagsOf(c.help)]);
  }
  return out;
}

function bash(t: [string, string[]][]): string {
  const cases = t.map(([v, f]) => `    ${v}) flags="${f.join(" ")}" ;;`).join("\n");
  return `# bash completion for tinyc: eval "$(tinyc completion bash)"
_tinyc() {
  local cur verb i flags
  cur="\${COMP_WORDS[COMP_CWORD]}"
  verb=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in -*) ;; *) verb="\${COMP_WORDS[i]}"; break ;; esac
  done
  if [ -z "$verb" ]; then
    COMPREPLY=($(compgen -W "${t.map(([v]) => v).join(" ")} --root --log --log-format --debug --help --version" -- "$cur"))
    return
  fi
  case "$verb" in
${cases}
    *) flags="" ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -F _tinyc tinyc
`;
}

function zsh(t: [string, string[]][]): string {
  const cases = t.map(([v, f]) => `    ${v}) compadd -- ${f.join(" ")} ;;`).join("\n");
  return `#compdef tinyc
# zsh completion for tinyc: eval "$(tinyc completion zsh)" (after compinit)
_tinyc() {
  if (( CURRENT == 2 )); then
    compadd -- ${t.map(([v]) => v).join(" ")}
    return
  fi
  if [[ "$PREFIX" == -* ]]; then
    case "$words[2]" in
${cases}
    esac
  else
    _files
  fi
}
compdef _tinyc tinyc
`;
}

export const completionCommand: Command = {
  help: `usage: tinyc completion bash|zsh

Prints a shell completion script: eval "$(tinyc completion bash)" in ~/.bashrc, or
eval "$(tinyc completion zsh)" in ~/.zshrc after compinit.
`,
  async run(args) {
    const a = parseFlags("completion", args, { boolean: ["help"], alias: { h: "help" } });
    const shell = a._[0] === undefined ? undefined : String(a._[0]);
    if (a.help) {
      writeSync(1, this.help);
      return 0;
    }
    if (shell !== "bash" && shell !== "zsh") {
      throw new TinycError(`completion: ${JSON.stringify(shell ?? "")}: expected bash or zsh`, {
        exitCode: EXIT.usage,
      });
    }
    const t = await table();
    writeSync(1, shell === "bash" ? bash(t) : zsh(t));
    return 0;
  },
};
