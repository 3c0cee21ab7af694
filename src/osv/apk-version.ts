// Alpine version ordering, as apk-tools compares versions: numbers separated by dots, an optional letter, suffixes
// (_alpha < _beta < _pre < _rc < none < _cvs < _svn < _git < _hg < _p, each with an optional number), an optional
// ~commit hash, and a -rN package revision. Versions are read as a stream of typed tokens; where two streams differ in
// kind, the one that goes on with more version is greater, unless what follows is a pre-release suffix.

const enum Token {
  Invalid = -1,
  DigitOrZero = 0,
  Digit = 1,
  Letter = 2,
  Suffix = 3,
  SuffixNo = 4,
  CommitHash = 5,
  RevisionNo = 6,
  End = 7,
}

const PRE_SUFFIXES = ["alpha", "beta", "pre", "rc"];
const POST_SUFFIXES = ["cvs", "svn", "git", "hg", "p"];

class Tokens {
  type: Token = Token.Digit;
  private at = 0;

  constructor(private readonly text: string) {}

  /** The value of the token of the current type, then moves to the next token's type. */
  next(): number {
    const { text } = this;
    let value = 0;
    if (this.at >= text.length) {
      this.type = Token.End;
      return 0;
    }
    switch (this.type) {
      case Token.DigitOrZero:
        // Leading zeros: a fraction-like part ("1.05" < "1.5"); more zeros sort lower.
        if (text[this.at] === "0") {
          const start = this.at;
          while (text[this.at] === "0") this.at++;
          value = -(this.at - start);
          this.type = Token.Digit;
          if (this.at < text.length && isDigit(text.charCodeAt(this.at))) return value;
          break;
        }
      // falls through
      case Token.Digit:
      case Token.SuffixNo:
      case Token.RevisionNo: {
        const start = this.at;
        while (this.at < text.length && isDigit(text.charCodeAt(this.at))) this.at++;
        if (this.at === start || this.at - start > 15) return this.invalid();
        value = Number(text.slice(start, this.at));
        break;
      }
      case Token.Letter:
        value = text.charCodeAt(this.at++);
        break;
      case Token.Suffix: {
        const rest = text.slice(this.at);
        const pre = PRE_SUFFIXES.findIndex((suffix) => rest.startsWith(suffix));
        const post = pre >= 0 ? -1 : POST_SUFFIXES.findIndex((suffix) => rest.startsWith(suffix));
        if (pre >= 0) {
          value = pre - PRE_SUFFIXES.length;
          this.at += PRE_SUFFIXES[pre]!.length;
        } else if (post >= 0) {
          value = post;
          this.at += POST_SUFFIXES[post]!.length;
        } else return this.invalid();
        break;
      }
      case Token.CommitHash: {
        const start = this.at;
        while (this.at < text.length && /[0-9a-f]/.test(text[this.at]!)) this.at++;
        if (this.at === start) return this.invalid();
        value = 0;
        break;
      }
      default:
        return this.invalid();
    }
    this.advance();
    return value;
  }

  private advance(): void {
    const { text } = this;
    if (this.at >= text.length) {
      this.type = Token.End;
      return;
    }
    const char = text[this.at]!;
    const code = text.charCodeAt(this.at);
    if ((this.type === Token.Digit || this.type === Token.DigitOrZero) && code >= 97 && code <= 122) this.type = Token.Letter;
    else if (this.type === Token.Letter && isDigit(code)) this.type = Token.Digit;
    else if (this.type === Token.Suffix && isDigit(code)) this.type = Token.SuffixNo;
    else {
      this.at++;
      if (char === ".") this.type = Token.DigitOrZero;
      else if (char === "_") this.type = Token.Suffix;
      else if (char === "~") this.type = Token.CommitHash;
      else if (char === "-" && text[this.at] === "r") {
        this.at++;
        this.type = Token.RevisionNo;
      } else this.type = Token.Invalid;
    }
  }

  private invalid(): number {
    this.type = Token.Invalid;
    return -1;
  }
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

/** Whether apk would accept the version: every token well formed, and the stream ends. */
export function isApkVersion(text: string): boolean {
  if (text.length === 0 || text.length > 128) return false;
  const tokens = new Tokens(text);
  while (tokens.type !== Token.End && tokens.type !== Token.Invalid) tokens.next();
  return tokens.type === Token.End;
}

export function compareApkVersions(a: string, b: string): number {
  const left = new Tokens(a);
  const right = new Tokens(b);
  let av = 0;
  let bv = 0;
  while (left.type === right.type && left.type !== Token.End && left.type !== Token.Invalid && av === bv) {
    av = left.next();
    bv = right.next();
  }
  if (av !== bv) return av < bv ? -1 : 1;
  if (left.type === right.type) return 0;
  // Equal so far: the one that goes on is greater, unless it goes on with a pre-release suffix.
  const [leftType, rightType] = [left.type, right.type];
  if (leftType === Token.Suffix && left.next() < 0) return -1;
  if (rightType === Token.Suffix && right.next() < 0) return 1;
  if (leftType > rightType) return -1;
  if (rightType > leftType) return 1;
  return 0;
}
