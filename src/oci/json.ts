// JSON parsing that names the line and column of a syntax error. JSON.parse in Bun reports
// what went wrong but not where, and a config.json edited by hand needs the where. The
// scanner below runs only after JSON.parse has failed, so it costs nothing on good input.

import { TinycError } from "../errors";

/** Where and why a text is not JSON (RFC 8259). */
export interface JsonFault {
  offset: number;
  line: number;
  column: number;
  reason: string;
}

/** Parses JSON; a syntax error becomes "FILE: invalid JSON at line L, column C: REASON". */
export function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    if (text.trim() === "") throw new TinycError(`${file}: file is empty`);
    const fault = findJsonFault(text);
    if (!fault) throw new TinycError(`${file}: invalid JSON: ${describeNative(err)}`);
    const where = `line ${fault.line}, column ${fault.column}`;
    throw new TinycError(`${file}: invalid JSON at ${where}: ${fault.reason}`);
  }
}

function describeNative(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/^JSON Parse error: /, "").toLowerCase();
}

/** The first syntax error in text, or undefined when the text is valid JSON. */
export function findJsonFault(text: string): JsonFault | undefined {
  const scanner = new Scanner(text);
  try {
    scanner.document();
    return undefined;
  } catch (err) {
    if (!(err instanceof Fault)) throw err;
    return { offset: err.offset, ...lineAndColumn(text, err.offset), reason: err.reason };
  }
}

/** 1-based line and column of a UTF-16 offset; columns count code points, as editors do. */
export function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf("\n"); i !== -1 && i < offset; i = text.indexOf("\n", i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, column: [...text.slice(start, offset)].length + 1 };
}

class Fault {
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {}
}

// Deeper input than this is refused rather than risking the stack; Go's encoding/json, which
// runc uses, has the same limit.
const MAX_DEPTH = 10000;

const ESCAPES = new Set(['"', "\\", "/", "b", "f", "n", "r", "t"]);

class Scanner {
  private pos = 0;
  private depth = 0;

  constructor(private readonly text: string) {}

  document(): void {
    this.space();
    this.value();
    this.space();
    if (this.pos < this.text.length) this.unexpected();
  }

  private value(): void {
    const c = this.text[this.pos];
    if (c === "{") return this.nested(() => this.object());
    if (c === "[") return this.nested(() => this.array());
    if (c === '"') return this.string();
    if (c === "-" || isDigit(c)) return this.number();
    for (const word of ["true", "false", "null"]) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return;
      }
    }
    this.unexpected();
  }

  private nested(body: () => void): void {
    if (++this.depth > MAX_DEPTH) this.fault(`nesting deeper than ${MAX_DEPTH} levels`);
    body();
    this.depth--;
  }

  private object(): void {
    this.pos++;
    this.space();
    if (this.eat("}")) return;
    for (;;) {
      if (this.text[this.pos] !== '"') this.unexpected("expected a property name in quotes");
      this.string();
      this.space();
      if (!this.eat(":")) this.unexpected('expected ":" after a property name');
      this.space();
      this.value();
      this.space();
      if (this.eat("}")) return;
      if (!this.eat(",")) this.unexpected('expected "," or "}"');
      this.space();
    }
  }

  private array(): void {
    this.pos++;
    this.space();
    if (this.eat("]")) return;
    for (;;) {
      this.value();
      this.space();
      if (this.eat("]")) return;
      if (!this.eat(",")) this.unexpected('expected "," or "]"');
      this.space();
    }
  }

  private string(): void {
    const open = this.pos++;
    for (;;) {
      if (this.pos >= this.text.length) this.fault("unterminated string", open);
      const code = this.text.charCodeAt(this.pos);
      if (code === 0x22) break;
      // A line break inside a string almost always means its closing quote is missing.
      if (code === 0x0a || code === 0x0d) this.fault("unterminated string", open);
      if (code < 0x20) this.fault(`unescaped control character ${codePoint(code)} in string`);
      if (code === 0x5c) this.escape();
      else this.pos++;
    }
    this.pos++;
  }

  private escape(): void {
    const c = this.text[this.pos + 1];
    if (c === "u") {
      const hex = this.text.slice(this.pos + 2, this.pos + 6);
      if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fault("invalid \\u escape in string");
      this.pos += 6;
    } else {
      if (c === undefined) this.fault("unterminated string");
      if (!ESCAPES.has(c)) this.fault(`invalid escape ${JSON.stringify("\\" + c)} in string`);
      this.pos += 2;
    }
  }

  private number(): void {
    const match = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.text.slice(this.pos));
    if (!match) {
      // Only "-" not followed by a digit gets here: point past it, at what should be a digit.
      this.pos++;
      this.unexpected("expected a digit");
    }
    this.pos += match[0].length;
    const next = this.text[this.pos];
    if (next !== undefined && /[0-9.eE+-]/.test(next)) this.unexpected("malformed number");
  }

  private space(): void {
    while (" \t\n\r".includes(this.text[this.pos] ?? "x")) this.pos++;
  }

  private eat(c: string): boolean {
    if (this.text[this.pos] !== c) return false;
    this.pos++;
    return true;
  }

  private unexpected(expected?: string): never {
    const what = this.describeHere();
    this.fault(expected ? `${what}, ${expected}` : what);
  }

  private describeHere(): string {
    if (this.pos >= this.text.length) return "unexpected end of input";
    const c = String.fromCodePoint(this.text.codePointAt(this.pos)!);
    const code = c.codePointAt(0)!;
    // Invisible characters (a byte order mark, a NUL) are named by code point, not quoted.
    if (code < 0x20 || code === 0x7f || code === 0xfeff || code === 0xfffd) {
      return `unexpected character ${codePoint(code)}`;
    }
    return `unexpected token ${JSON.stringify(c)}`;
  }

  private fault(reason: string, offset = this.pos): never {
    throw new Fault(offset, reason);
  }
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}

function codePoint(code: number): string {
  return "U+" + code.toString(16).toUpperCase().padStart(4, "0");
}
