// docker's image verbs: pull, images, rmi, load, save, import, tag, login, logout; and
// `_unpack SRC DEST`, which unpacks one layer blob so a caller can run it in a user namespace
// that maps the layer's owners.

import { flagProbe } from "./args";
import * as fs from "node:fs";
import minimist from "minimist";
import { TinycError, fromSystem } from "../errors";
import { logError } from "../log";
import { importRootfs, loadArchive, saveArchive } from "../image/archive";
import { removeCredentials, saveCredentials, type Credentials } from "../image/auth";
import { fileStream, type ByteStream } from "../image/bytes";
import { pull, type Progress } from "../image/pull";
import {
  familiarReference,
  formatReference,
  normalizeRegistry,
  parseReference,
} from "../image/reference";
import { RegistryClient } from "../image/registry";
import { allMetas } from "../image/containers";
import { ImageStore, type Image } from "../image/store";
import { parsePlatform } from "../image/types";
import { unpackLayer } from "../image/unpack";
import { openStore } from "../image/open";
import type { Command } from "./index";

function out(text: string): void {
  fs.writeSync(1, text);
}

function usageError(text: string): TinycError {
  return new TinycError(text, { exitCode: 1 });
}

function parse(args: string[], help: string, opts: minimist.Opts): minimist.ParsedArgs | null {
  flagProbe.see?.("images", opts);
  const a = minimist(args, {
    ...opts,
    string: [...[opts.string ?? []].flat(), "_"],
    boolean: [...((opts.boolean as string[]) ?? []), "help"],
    alias: { ...opts.alias, h: "help" },
    unknown: (arg) => {
      if (arg.startsWith("-") && arg !== "-")
        throw usageError(`unknown flag ${JSON.stringify(arg)}`);
      return true;
    },
  });
  if (a.help) {
    out(help);
    return null;
  }
  return a;
}

function positional(a: minimist.ParsedArgs): string[] {
  return a._.map(String);
}

function stdinStream(): ByteStream {
  return Bun.stdin.stream() as unknown as ByteStream;
}

/** SI units, as docker prints sizes: 4.26MB. */
function humanSize(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toPrecision(3).replace(/\.?0+$/, "")}${units[i]}`;
}

function since(iso: string | undefined): string {
  const t = iso ? Date.parse(iso) : NaN;
  if (Number.isNaN(t)) return "N/A";
  const s = Math.max(0, (Date.now() - t) / 1000);
  const steps: [number, string][] = [
    [60, "second"],
    [60, "minute"],
    [24, "hour"],
    [7, "day"],
    [4.35, "week"],
    [12, "month"],
  ];
  let v = s;
  for (const [n, unit] of steps) {
    if (v < n) return v < 2 && unit === "second" ? "Less than a second ago" : plural(v, unit);
    v /= n;
  }
  return plural(v, "year");
}

function plural(v: number, unit: string): string {
  const n = Math.floor(v);
  return `${n === 1 ? "About a" : n} ${unit}${n === 1 ? "" : "s"} ago`.replace(
    "About a hour",
    "About an hour",
  );
}

/** Per-layer progress: redrawn lines on a terminal, plain lines elsewhere. */
class LayerProgress implements Progress {
  private lines = new Map<string, string>();
  private totals = new Map<string, { total: number; got: number }>();
  private drawn = 0;
  private last = 0;
  constructor(private tty: boolean) {}

  start(id: string, total: number): void {
    this.totals.set(id, { total, got: 0 });
    this.set(id, `downloading ${humanSize(total)}`, true);
  }

  advance(id: string, bytes: number): void {
    const t = this.totals.get(id);
    if (!t) return;
    t.got += bytes;
    if (!this.tty) return;
    this.lines.set(id, `downloading ${humanSize(t.got)}/${humanSize(t.total)}`);
    if (Date.now() - this.last > 100) this.draw();
  }

  step(id: string, status: string): void {
    this.set(id, status, false);
  }

  end(id: string, status: string): void {
    this.set(id, status, true);
  }

  note(text: string): void {
    if (this.tty) this.draw();
    process.stderr.write(`${text}\n`);
    this.drawn = 0;
  }

  private set(id: string, text: string, always: boolean): void {
    this.lines.set(id, text);
    if (!this.tty) {
      if (always) process.stderr.write(`${id}: ${text}\n`);
      return;
    }
    this.draw();
  }

  private draw(): void {
    this.last = Date.now();
    let s = this.drawn ? `\x1b[${this.drawn}A` : "";
    for (const [id, text] of this.lines) s += `\r\x1b[2K${id}: ${text}\n`;
    this.drawn = this.lines.size;
    process.stderr.write(s);
  }
}

export const pullCommand: Command = {
  help: `usage: tinyc pull [--platform OS/ARCH[/VARIANT]] [-q] REFERENCE

Downloads the image into the image store ($TINYC_DATA, else ~/.local/share/tinyc, or
/var/lib/tinyc as root). Registries on loopback addresses and those in
$TINYC_INSECURE_REGISTRIES (host:port,...) are reached over http, others over https.

flags:
  --platform P   the platform to choose from a multi-platform image (default: the host's)
  --quiet, -q    print only the image's name
`,
  async run(args) {
    const a = parse(args, this.help, {
      string: ["platform"],
      boolean: ["quiet"],
      alias: { q: "quiet" },
    });
    if (!a) return 0;
    const [text, extra] = positional(a);
    if (!text || extra) throw usageError("pull: exactly one image reference is needed");
    const platform = a.platform ? parsePlatform(a.platform) : undefined;
    const ref = parseReference(text);
    const tty = !!process.stderr.isTTY;
    const progress = new LayerProgress(tty);
    if (!a.quiet)
      process.stderr.write(`${ref.tag ?? ref.digest}: pulling from ${ref.repository}\n`);
    await pull(openStore(), text, {
      platform,
      progress: a.quiet ? undefined : progress,
    });
    out(`${formatReference(ref)}\n`);
    return 0;
  },
};

function rowsOf(img: Image): { repo: string; tag: string; digest: string }[] {
  const digestOf = (repo: string) =>
    img.digests.find((d) => d.startsWith(`${repo}@`))?.split("@")[1] ?? "<none>";
  const rows = img.names.map((n) => {
    const ref = parseReference(n);
    const repo = n.slice(0, n.length - ref.tag!.length - 1);
    return { repo: familiarName(repo), tag: ref.tag!, digest: digestOf(repo) };
  });
  if (rows.length) return rows;
  const d = img.digests[0];
  if (d) return [{ repo: familiarName(d.split("@")[0]), tag: "<none>", digest: d.split("@")[1] }];
  return [{ repo: "<none>", tag: "<none>", digest: "<none>" }];
}

function familiarName(repo: string): string {
  return familiarReference({ ...parseReference(repo), tag: undefined });
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return (
    rows
      .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] + 3))).join(""))
      .join("\n") + "\n"
  );
}

export const imagesCommand: Command = {
  help: `usage: tinyc images [-q] [--format table|json] [--no-trunc] [--digests] [REPOSITORY[:TAG]]

flags:
  --quiet, -q    only the image ids
  --format F     table (default) or json (one object per line, as docker writes it)
  --no-trunc     full image ids
  --digests      a DIGEST column
  --all, -a      accepted, as docker's (there are no intermediate images)
`,
  run(args) {
    const a = parse(args, this.help, {
      // minimist reads --no-trunc as trunc=false
      boolean: ["quiet", "trunc", "digests", "all"],
      string: ["format"],
      alias: { q: "quiet", a: "all" },
      default: { trunc: true },
    });
    if (!a) return 0;
    const filter = positional(a)[0];
    const images = openStore().listImages();
    const rows = images.flatMap((img) => rowsOf(img).map((r) => ({ img, ...r })));
    const shown = filter ? rows.filter((r) => matches(r, filter)) : rows;
    shown.sort((x, y) => (y.img.config.created ?? "").localeCompare(x.img.config.created ?? ""));
    const id = (img: Image) => (a.trunc ? img.id.slice(7, 19) : img.id);
    if (a.quiet) {
      out([...new Set(shown.map((r) => id(r.img)))].map((s) => s + "\n").join(""));
      return 0;
    }
    if (a.format === "json") {
      for (const r of shown) out(JSON.stringify(jsonRow(r, id(r.img))) + "\n");
      return 0;
    }
    if (a.format && a.format !== "table")
      throw usageError(`unknown format ${JSON.stringify(a.format)}`);
    const head = [
      "REPOSITORY",
      "TAG",
      ...(a.digests ? ["DIGEST"] : []),
      "IMAGE ID",
      "CREATED",
      "SIZE",
    ];
    const body = shown.map((r) => [
      r.repo,
      r.tag,
      ...(a.digests ? [r.digest] : []),
      id(r.img),
      since(r.img.config.created),
      humanSize(r.img.size),
    ]);
    out(table([head, ...body]));
    return 0;
  },
};

function matches(r: { repo: string; tag: string }, filter: string): boolean {
  const colon = filter.lastIndexOf(":");
  const hasTag = colon > filter.lastIndexOf("/");
  const repo = hasTag ? filter.slice(0, colon) : filter;
  return familiarName(repo) === r.repo && (!hasTag || filter.slice(colon + 1) === r.tag);
}

function jsonRow(r: { img: Image; repo: string; tag: string; digest: string }, id: string) {
  return {
    Containers: "N/A",
    CreatedAt: r.img.config.created ?? "",
    CreatedSince: since(r.img.config.created),
    Digest: r.digest,
    ID: id,
    Repository: r.repo,
    SharedSize: "N/A",
    Size: humanSize(r.img.size),
    Tag: r.tag,
    UniqueSize: "N/A",
    VirtualSize: humanSize(r.img.size),
  };
}

export const rmiCommand: Command = {
  help: `usage: tinyc rmi [-f] IMAGE...

Untags each name; an image whose last name goes (or that is named by id) is deleted, with the
blobs and layers no other image uses. An id with more than one name needs --force.

flags:
  --force, -f   delete the image by id even when several names point at it; an image a
                container uses only loses its names (its layers stay for the container)
`,
  async run(args) {
    const a = parse(args, this.help, { boolean: ["force"], alias: { f: "force" } });
    if (!a) return 0;
    const refs = positional(a);
    if (!refs.length) throw usageError("rmi: at least one image is needed");
    const store = openStore();
    let failed = 0;
    for (const r of refs) {
      try {
        const userOf = (id: string) => allMetas().find((m) => m.imageId === id);
        const img = a.force ? store.findImage(r) : undefined;
        const user = img && userOf(img.id);
        // Forced, an image a container runs from loses its names and stays for its layers.
        const { untagged, deleted } = user
          ? { untagged: await store.untagAll(r), deleted: [] as string[] }
          : await store.removeImage(r, !!a.force, (rec) => {
            const u = userOf(rec.id);
            return u && `container ${JSON.stringify(u.name)}`;
          });
        for (const u of untagged) out(`Untagged: ${u}\n`);
        for (const d of deleted) out(`Deleted: ${d}\n`);
      } catch (e) {
        if (!(e instanceof TinycError)) throw e;
        failed++;
        if (refs.length === 1) throw e;
        logError(e.text());
      }
    }
    return failed ? 1 : 0;
  },
};

export const loadCommand: Command = {
  help: `usage: tinyc load [-i FILE] [-q]

Reads a tarball written by \`docker save\` (or \`tinyc save\`) or an OCI image layout archive,
plain or compressed with gzip or zstd, from FILE or standard input.

flags:
  --input, -i FILE  read FILE instead of standard input ("-": standard input)
  --quiet, -q       print nothing but errors
`,
  async run(args) {
    const a = parse(args, this.help, {
      string: ["input"],
      boolean: ["quiet"],
      alias: { i: "input", q: "quiet" },
    });
    if (!a) return 0;
    if (positional(a).length) throw usageError("load: takes no arguments; use -i FILE");
    if (!a.input && process.stdin.isTTY) {
      throw usageError("load: no archive on standard input; use -i FILE or a pipe");
    }
    // "-i -" is standard input, as for import.
    const source = a.input && a.input !== "-" ? openFile(a.input) : stdinStream();
    const images = await loadArchive(openStore(), source);
    if (a.quiet) return 0;
    for (const img of images) {
      if (!img.names.length) out(`Loaded image ID: ${img.id}\n`);
      for (const n of img.names) out(`Loaded image: ${familiarReference(parseReference(n))}\n`);
    }
    return 0;
  },
};

function openFile(file: string): ByteStream {
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch (e) {
    throw fromSystem(e, "open", file);
  }
  return fileStream(file);
}

export const saveCommand: Command = {
  help: `usage: tinyc save [-o FILE] IMAGE...

Writes the images to FILE (made through a temporary file, so a failure leaves none) or to
standard output: the form docker 25 writes, which \`docker load\`, podman and skopeo read.

flags:
  --output, -o FILE  write FILE instead of standard output
`,
  async run(args) {
    const a = parse(args, this.help, { string: ["output"], alias: { o: "output" } });
    if (!a) return 0;
    const refs = positional(a);
    if (!refs.length) throw usageError("save: at least one image is needed");
    const store = openStore();
    for (const r of refs) store.resolveImage(r);
    if (!a.output) {
      if (process.stdout.isTTY)
        throw usageError("save: refusing to write to a terminal; use -o FILE");
      await saveArchive(store, refs, 1);
      return 0;
    }
    await saveToFile(store, refs, a.output);
    return 0;
  },
};

async function saveToFile(store: ImageStore, refs: string[], file: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  let fd: number;
  try {
    fd = fs.openSync(tmp, "wx", 0o644);
  } catch (e) {
    throw fromSystem(e, "create", tmp);
  }
  try {
    await saveArchive(store, refs, fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.closeSync(fd);
    } catch {
      // closed already
    }
    fs.rmSync(tmp, { force: true });
    throw e instanceof TinycError ? e : fromSystem(e, "write", file);
  }
}

export const importCommand: Command = {
  help: `usage: tinyc import [-c CHANGE]... [-m MESSAGE] FILE|- [REFERENCE]

The tarball (plain, gzip or zstd; "-" reads standard input) becomes the one layer of a new
image. CHANGE is a Dockerfile instruction: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER,
VOLUME, WORKDIR or STOPSIGNAL. Prints the new image's id.

flags:
  --change, -c CHANGE  apply a Dockerfile instruction to the image's config
  --message, -m TEXT   the comment of the history entry
`,
  async run(args) {
    const a = parse(args, this.help, {
      string: ["change", "message"],
      alias: { c: "change", m: "message" },
    });
    if (!a) return 0;
    const [src, name, extra] = positional(a);
    if (!src || extra)
      throw usageError("import: a file (or -) and at most one reference are needed");
    if (/^[a-z]+:\/\//.test(src)) throw new TinycError("import from a URL is not supported");
    const changes = ([] as string[]).concat(a.change ?? []).map(String);
    const source = src === "-" ? stdinStream() : openFile(src);
    const img = await importRootfs(openStore(), source, name, {
      changes,
      message: a.message,
      source: src,
    });
    out(`${img.id}\n`);
    return 0;
  },
};

export const tagCommand: Command = {
  help: `usage: tinyc tag SOURCE TARGET

TARGET names the image SOURCE names (a name or an id).
`,
  async run(args) {
    const a = parse(args, this.help, {});
    if (!a) return 0;
    const [src, dst, extra] = positional(a);
    if (!src || !dst || extra) throw usageError("tag: a source and a target are needed");
    await openStore().tag(src, dst);
    return 0;
  },
};

async function readLine(prompt: string, hidden: boolean): Promise<string> {
  process.stderr.write(prompt);
  const stty = (mode: string) =>
    Bun.spawnSync(["stty", mode], { stdin: "inherit", stderr: "ignore" });
  if (hidden) stty("-echo");
  try {
    const reader = Bun.stdin.stream().getReader();
    let text = "";
    while (!text.includes("\n")) {
      const r = await reader.read();
      if (r.done) break;
      text += Buffer.from(r.value).toString();
    }
    reader.releaseLock();
    return text.split("\n")[0].replace(/\r$/, "");
  } finally {
    if (hidden) {
      stty("echo");
      process.stderr.write("\n");
    }
  }
}

async function passwordFromStdin(): Promise<string> {
  const text = await Bun.stdin.text();
  return text.replace(/\r?\n$/, "");
}

export const loginCommand: Command = {
  help: `usage: tinyc login [-u USER] [--password-stdin | -p PASSWORD] [REGISTRY]

Checks the credentials against REGISTRY (default docker.io) and stores them in
$XDG_CONFIG_HOME/tinyc/auth.json (mode 0600). Asks on the terminal for what is not given.

flags:
  --username, -u USER  the user name
  --password, -p PASS  the password (visible to other processes: prefer --password-stdin)
  --password-stdin     read the password from standard input
`,
  async run(args) {
    const a = parse(args, this.help, {
      string: ["username", "password"],
      boolean: ["password-stdin"],
      alias: { u: "username", p: "password" },
    });
    if (!a) return 0;
    const [host, extra] = positional(a);
    if (extra) throw usageError("login: at most one registry");
    const registry = normalizeRegistry(host ?? "docker.io");
    const creds = await askCredentials(a);
    await new RegistryClient(registry, creds).ping();
    saveCredentials(registry, creds);
    out("Login Succeeded\n");
    return 0;
  },
};

async function askCredentials(a: minimist.ParsedArgs): Promise<Credentials> {
  if (a["password-stdin"] && a.password)
    throw usageError("login: --password and --password-stdin conflict");
  const tty = !!process.stdin.isTTY;
  let username = a.username as string | undefined;
  if (!username) {
    if (!tty || a["password-stdin"]) throw usageError("login: a user name is needed (-u USER)");
    username = await readLine("Username: ", false);
  }
  let password = a.password as string | undefined;
  if (a["password-stdin"]) password = await passwordFromStdin();
  else if (password === undefined) {
    if (!tty) throw usageError("login: a password is needed (--password-stdin)");
    password = await readLine("Password: ", true);
  }
  if (!username || !password) throw usageError("login: user name and password must not be empty");
  return { username, password };
}

export const logoutCommand: Command = {
  help: `usage: tinyc logout [REGISTRY]

Removes REGISTRY's (default docker.io) entry from tinyc's auth.json.
`,
  run(args) {
    const a = parse(args, this.help, {});
    if (!a) return 0;
    const registry = normalizeRegistry(positional(a)[0] ?? "docker.io");
    if (!removeCredentials(registry)) {
      out(`Not logged in to ${registry}\n`);
      return 0;
    }
    out(`Removing login credentials for ${registry}\n`);
    return 0;
  },
};

export const unpackCommand: Command = {
  help: `usage: tinyc _unpack SRC DEST

Unpacks the layer at SRC ("-": standard input) into the empty folder DEST and prints what it
noted as JSON. tinyc runs it inside a user namespace that maps the layer's owners.
`,
  async run(args) {
    const a = parse(args, this.help, {});
    if (!a) return 0;
    const [src, dest, extra] = positional(a);
    if (!src || !dest || extra) throw usageError("_unpack: SRC and DEST are needed");
    const entries = fs.readdirSync(dest);
    if (entries.length) throw new TinycError(`_unpack: ${JSON.stringify(dest)} is not empty`);
    const notes = await unpackLayer(src === "-" ? stdinStream() : openFile(src), dest);
    out(JSON.stringify(notes) + "\n");
    return 0;
  },
};
