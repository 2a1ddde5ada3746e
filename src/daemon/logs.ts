// docker logs and docker export: a container's output as its shim logged it (json-file lines,
// rotated files oldest first), and its file system as a tar stream.

import { closeSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Context, Route } from "./api";
import { HttpError, type Request, type Response } from "./http";
import { frame } from "./shim";

interface Line {
  log: string;
  stream: string;
  time: string;
}

function parseLines(text: string): Line[] {
  const out: Line[] = [];
  for (const l of text.split("\n")) {
    if (!l) continue;
    try {
      const j = JSON.parse(l);
      if (typeof j.log === "string") out.push(j);
    } catch {}
  }
  return out;
}

/** Seconds since the epoch, as a number or an RFC 3339 time; undefined when absent. */
function timeParam(v: string | null): number | undefined {
  if (v === null || v === "" || v === "0") return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new HttpError(400, `invalid time: ${JSON.stringify(v)}`);
  return t / 1000;
}

function seconds(time: string): number {
  return Date.parse(time) / 1000;
}

export function containerRoutes(x: Context): Route[] {
  const logs = async (req: Request, res: Response, m: string[]) => {
    const c = x.engine.find(decodeURIComponent(m[1]));
    const q = req.query;
    const on = (n: string) => ["1", "true"].includes(q.get(n) ?? "");
    const want = new Set([...(on("stdout") ? ["stdout"] : []), ...(on("stderr") ? ["stderr"] : [])]);
    if (want.size === 0) throw new HttpError(400, "Bad parameters: you must choose at least one stream");
    const tailText = q.get("tail") ?? "all";
    if (tailText !== "all" && !/^-?\d+$/.test(tailText)) throw new HttpError(400, `invalid tail: ${JSON.stringify(tailText)}`);
    // As docker has it, a negative count is all of it.
    const tail = tailText === "all" || Number(tailText) < 0 ? Infinity : Number(tailText);
    const since = timeParam(q.get("since"));
    const until = timeParam(q.get("until"));
    const stamps = on("timestamps");
    const tty = !!c.rec.Config.Tty;
    const logPath = c.rec.LogPath;

    const send = async (lines: Line[]) => {
      for (const l of lines) {
        if (!want.has(l.stream)) continue;
        const t = seconds(l.time);
        if (since !== undefined && t < since) continue;
        if (until !== undefined && t > until) continue;
        const text = Buffer.from((stamps ? `${l.time} ` : "") + l.log);
        await res.write(tty ? text : frame(l.stream === "stderr" ? 2 : 1, text));
      }
    };

    const files: string[] = [];
    for (let i = 9; i >= 1; i--) {
      try {
        statSync(`${logPath}.${i}`);
        files.push(`${logPath}.${i}`);
      } catch {}
    }
    let all: Line[] = [];
    for (const f of files) all.push(...parseLines(readFileSync(f, "utf8")));
    let offset = 0;
    let ino = 0;
    try {
      const st = statSync(logPath);
      ino = st.ino;
      const text = readFileSync(logPath);
      const end = text.lastIndexOf(10) + 1;
      all.push(...parseLines(text.subarray(0, end).toString("utf8")));
      offset = end;
    } catch {}
    all = all.filter((l) => want.has(l.stream));
    if (tail !== Infinity) all = tail === 0 ? [] : all.slice(-tail);
    await res.begin(200, {});
    await send(all);
    if (!on("follow")) return;

    // Follow: read what the shim appends until the container has stopped and all is read.
    let closed = false;
    res.onClose(() => (closed = true));
    let partial = Buffer.alloc(0);
    for (;;) {
      if (closed) return;
      let st;
      try {
        st = statSync(logPath);
      } catch {
        st = undefined;
      }
      if (st && st.ino !== ino) {
        // Rotated: the rest of the old file was renamed away; start on the new one.
        ino = st.ino;
        offset = 0;
        partial = Buffer.alloc(0);
      }
      if (st && st.size > offset) {
        const fd = openSync(logPath, "r");
        const buf = Buffer.alloc(Math.min(st.size - offset, 1 << 20));
        const n = readSync(fd, buf, 0, buf.length, offset);
        closeSync(fd);
        offset += n;
        const data = Buffer.concat([partial, buf.subarray(0, n)]);
        const end = data.lastIndexOf(10) + 1;
        partial = data.subarray(end);
        await send(parseLines(data.subarray(0, end).toString("utf8")));
        continue;
      }
      const live = x.engine.containers.get(c.rec.Id);
      if (!live || (!live.rec.State.Running && !live.rec.State.Restarting && !live.starting)) return;
      if (until !== undefined && Date.now() / 1000 > until) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  const exportFs = async (_req: Request, res: Response, m: string[]) => {
    const c = x.engine.find(decodeURIComponent(m[1]));
    const { containerLayers, exportContainer } = await import("../commands/container");
    const tarFile = join(c.dir, `.export-${Date.now()}.tar`);
    try {
      await exportContainer(c.dir, containerLayers(c.dir), tarFile);
    } catch (e) {
      Bun.spawnSync(["rm", "-f", tarFile]);
      throw new HttpError(500, (e as Error).message);
    }
    try {
      await res.begin(200, { "Content-Type": "application/octet-stream" });
      const fd = openSync(tarFile, "r");
      try {
        const buf = Buffer.alloc(1 << 20);
        for (;;) {
          const n = readSync(fd, buf, 0, buf.length, null);
          if (n <= 0) break;
          await res.write(Buffer.from(buf.subarray(0, n)));
          if (res.closed) break;
        }
      } finally {
        closeSync(fd);
      }
    } finally {
      Bun.spawnSync(["rm", "-f", tarFile]);
    }
  };

  return [
    { method: "GET", path: /^\/containers\/([^/]+)\/logs$/, handle: logs },
    { method: "GET", path: /^\/containers\/([^/]+)\/export$/, handle: exportFs },
  ];
}
