// A real terminal for the tests: a tmux server of the test's own (its own socket, no config),
// run as the test user, whose panes run a command under a pseudo-terminal as a person would.
import * as fs from "node:fs";
import * as path from "node:path";
import { type As, runCommand, spawnAs } from "./harness";

export function tmuxSkipReason(): string | null {
  return Bun.which("tmux") ? null : "no tmux";
}

export class Tmux {
  readonly sock: string;

  constructor(
    private as: As,
    private dir: string,
    private env: Record<string, string>,
  ) {
    this.sock = path.join(dir, "tmux.sock");
  }

  private async tmux(args: string[]): Promise<string> {
    const r = await runCommand(["tmux", "-f", "/dev/null", "-S", this.sock, ...args], {
      as: this.as,
      // tmux runs a pane's command with $SHELL: the test user's login shell may be nologin.
      env: { SHELL: "/bin/sh", ...this.env },
      cwd: this.dir,
      timeoutMs: 10_000,
    });
    if (r.code !== 0) throw new Error(`tmux ${args[0]}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /**
   * A new pane (the first makes the server) of WIDTH x HEIGHT that runs SCRIPT with sh in
   * CWD, then waits, so that what it printed can still be read.
   */
  async start(script: string, opts: { cwd?: string; width?: number; height?: number } = {}) {
    const file = path.join(this.dir, `pane-${Date.now()}-${Math.random().toString(36).slice(2)}.sh`);
    fs.writeFileSync(file, `cd ${JSON.stringify(opts.cwd ?? this.dir)}\n${script}\nexec sleep 600\n`, { mode: 0o644 });
    const size = ["-x", String(opts.width ?? 100), "-y", String(opts.height ?? 30)];
    // The window's id ("@N") names it for good, whatever windows come and go.
    const made = fs.existsSync(this.sock)
      ? await this.tmux(["new-window", "-d", "-P", "-F", "#{window_id}", `sh ${file}`])
      : await this.tmux(["new-session", "-d", ...size, "-P", "-F", "#{window_id}", `sh ${file}`,
        ";", "set", "-g", "remain-on-exit", "on"]);
    return made.trim();
  }

  async keys(pane: string, ...keys: string[]): Promise<void> {
    await this.tmux(["send-keys", "-t", pane, ...keys]);
  }

  /** Types TEXT and Enter. */
  async line(pane: string, text: string): Promise<void> {
    await this.tmux(["send-keys", "-t", pane, "-l", text]);
    await this.tmux(["send-keys", "-t", pane, "Enter"]);
  }

  async screen(pane: string): Promise<string> {
    return this.tmux(["capture-pane", "-p", "-t", pane, "-S", "-200"]);
  }

  /** True once the pane shows WANT (a string or a pattern); false after MS. */
  async waitFor(pane: string, want: string | RegExp, ms = 10_000): Promise<boolean> {
    const deadline = Date.now() + ms;
    for (;;) {
      const text = await this.screen(pane);
      if (typeof want === "string" ? text.includes(want) : want.test(text)) return true;
      if (Date.now() > deadline) {
        console.error(`pane ${pane} did not show ${want}; it shows:\n${text.trimEnd()}`);
        return false;
      }
      await Bun.sleep(50);
    }
  }

  async resize(pane: string, width: number, height: number): Promise<void> {
    await this.tmux(["resize-window", "-t", pane, "-x", String(width), "-y", String(height)]);
  }

  /** The pid of the window's pane's first process (the sh running the script). */
  async panePid(pane: string): Promise<number> {
    return Number((await this.tmux(["display-message", "-p", "-t", pane, "#{pane_pid}"])).trim());
  }

  /** Ends the server this test started (and so every pane's processes get SIGHUP). */
  async stop(): Promise<void> {
    if (!fs.existsSync(this.sock)) return;
    const p = spawnAs(["tmux", "-S", this.sock, "kill-server"], { as: this.as, env: this.env });
    await p.exited;
  }
}

/** The children of PID, by /proc. */
export function childrenOf(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
