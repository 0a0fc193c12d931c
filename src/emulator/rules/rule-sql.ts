/**
 * Parser of the AWS IoT SQL subset the local service's rules run:
 * `SELECT *, <expr> AS <name>, ... FROM '<topic filter>' WHERE <predicate>` with field paths (`state.reported.x`),
 * `topic()` / `topic(n)`, `clientid()`, `timestamp()`, comparisons (`=`, `<>`, `!=`, `<`, `<=`, `>`, `>=`),
 * `AND` / `OR` / `NOT`, parentheses and literals (numbers, single-quoted strings, booleans in any case, `NULL`).
 *
 * Anything else (arithmetic, `IN`, `CASE`, `SELECT VALUE`, other functions, array indexing, comments, ...) is refused
 * with a {@link RuleSqlError} that names the unsupported part and its offset, so a rule that would behave differently
 * in AWS fails when the service starts instead of silently never firing.
 */
import type { JsonPrimitive } from '../../core/document.js';
import { ShadowError } from '../../errors.js';
import { topicFilterProblem } from '../topic-filter.js';

/** The comparison operators of the subset (`!=` is read as `<>`). */
export type RuleComparisonOperator = '=' | '<>' | '<' | '<=' | '>' | '>=';

/** An expression of the subset, as parsed. */
export type RuleExpression =
  | { kind: 'literal'; value: JsonPrimitive }
  | { kind: 'field'; path: readonly string[] }
  /** `topic()` (whole topic, `level` undefined) or `topic(n)` (1-based level). */
  | { kind: 'topic'; level: number | undefined }
  | { kind: 'clientid' }
  | { kind: 'timestamp' }
  | { kind: 'compare'; operator: RuleComparisonOperator; left: RuleExpression; right: RuleExpression }
  | { kind: 'and' | 'or'; left: RuleExpression; right: RuleExpression }
  | { kind: 'not'; operand: RuleExpression };

/** One item of the SELECT list: `*`, or an expression with the key it gets in the result. */
export type RuleSelectItem =
  | { kind: 'all' }
  | { kind: 'expression'; expression: RuleExpression; name: string };

/** A parsed rule statement. */
export interface RuleSqlAst {
  /** The statement as given. */
  readonly sql: string;
  readonly select: readonly RuleSelectItem[];
  /** The MQTT topic filter of the FROM clause. */
  readonly from: string;
  /** The WHERE predicate; undefined when the statement has none (every message matches). */
  readonly where: RuleExpression | undefined;
}

/**
 * A rule's SQL (or a substitution template's expression) is outside the supported subset or malformed.
 * Its `code` is `'OPTIONS'`, so `isShadowOptionsError`-style checks treat it as bad configuration.
 */
export class RuleSqlError extends ShadowError {
  override readonly name = 'RuleSqlError' as const;
  readonly code = 'OPTIONS' as const;
  /** The text that was parsed. */
  readonly sql: string;
  /** 0-based offset of the offending part in `sql`. */
  readonly position: number;
  /** The offending part itself (a token, a keyword, a function name), or `'end of statement'`. */
  readonly unsupported: string;
  constructor(message: string, context: { sql: string; position: number; unsupported: string }) {
    super(message);
    this.sql = context.sql;
    this.position = context.position;
    this.unsupported = context.unsupported;
  }
}

type TokenKind = 'word' | 'number' | 'string' | 'symbol' | 'end';

interface Token {
  kind: TokenKind;
  /** The source text (for strings: the decoded value). */
  text: string;
  position: number;
  /** The raw source of the token, for messages. */
  raw: string;
}

const SYMBOLS = ['<=', '>=', '<>', '!=', '=', '<', '>', '*', ',', '.', '(', ')'];

/** Characters AWS IoT SQL gives a meaning this subset does not support, with what they are. */
const UNSUPPORTED_CHARACTERS: Record<string, string> = {
  '+': 'arithmetic operator',
  '-': 'arithmetic operator (or a comment)',
  '/': 'arithmetic operator',
  '%': 'arithmetic operator',
  '|': 'operator',
  '[': 'array indexing',
  ']': 'array indexing',
  '"': 'double-quoted string or identifier',
  '`': 'quoted identifier',
  $: 'substitution or variable',
  '{': 'object literal',
  '}': 'object literal',
  ';': 'statement separator',
};

/** Keywords that start a construct of AWS IoT SQL outside the subset. */
const UNSUPPORTED_KEYWORDS = new Set([
  'IN',
  'IS',
  'LIKE',
  'BETWEEN',
  'CASE',
  'WHEN',
  'THEN',
  'ELSE',
  'END',
  'SET',
  'VALUE',
  'EXISTS',
  'DISTINCT',
  'GROUP',
  'ORDER',
  'LIMIT',
  'JOIN',
  'UNION',
]);

/** Keywords of the subset: they cannot be field names without quoting (which the subset does not support). */
const RESERVED = new Set(['SELECT', 'FROM', 'WHERE', 'AS', 'AND', 'OR', 'NOT', 'TRUE', 'FALSE', 'NULL']);

function fail(sql: string, position: number, unsupported: string, message: string): never {
  throw new RuleSqlError(`${message} at offset ${position} of ${JSON.stringify(sql)}`, {
    sql,
    position,
    unsupported,
  });
}

/**
 * Reads tokens on demand, so that a statement is refused at its first problem in reading order (`FROM a/b` is a
 * missing quote, not an arithmetic operator).
 */
class Tokenizer {
  readonly tokens: Token[] = [];
  private i = 0;
  private done = false;
  constructor(private readonly sql: string) {}

  /** The token at `index`, reading further as needed. */
  at(index: number): Token {
    while (this.tokens.length <= index && !this.done) this.read();
    return (this.tokens[index] ?? this.tokens[this.tokens.length - 1]) as Token;
  }

  private read(): void {
    const { sql, tokens } = this;
    let i = this.i;
    while (i < sql.length && /\s/.test(sql[i] as string)) i++;
    this.i = i;
    if (i >= sql.length) {
      tokens.push({ kind: 'end', text: '', position: sql.length, raw: 'end of statement' });
      this.done = true;
      return;
    }
    this.i = readToken(sql, i, tokens);
  }
}

/** Reads the token starting at `i` (not whitespace) into `tokens`; returns the offset after it. */
function readToken(sql: string, i: number, tokens: Token[]): number {
  const c = sql[i] as string;
  const start = i;
  if (/[A-Za-z_]/.test(c)) {
    while (i < sql.length && /[A-Za-z0-9_]/.test(sql[i] as string)) i++;
    const text = sql.slice(start, i);
    tokens.push({ kind: 'word', text, position: start, raw: text });
    return i;
  }
  const next = sql[i + 1] ?? '';
  const signed = c === '-' && (/[0-9]/.test(next) || (next === '.' && /[0-9]/.test(sql[i + 2] ?? '')));
  if (/[0-9]/.test(c) || ((signed || (c === '.' && /[0-9]/.test(next))) && negativeAllowed(tokens))) {
    const match = /^-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/.exec(sql.slice(start)) as RegExpExecArray;
    i = start + match[0].length;
    if (/[A-Za-z_]/.test(sql[i] ?? ''))
      fail(sql, start, sql.slice(start, i + 1), `Malformed number '${sql.slice(start, i + 1)}'`);
    tokens.push({ kind: 'number', text: match[0], position: start, raw: match[0] });
    return i;
  }
  if (c === "'") {
    let value = '';
    i++;
    for (;;) {
      if (i >= sql.length) fail(sql, start, sql.slice(start), 'Unterminated string literal');
      const d = sql[i] as string;
      if (d === "'") {
        // A doubled quote is a quote inside the string, as in ANSI SQL.
        if (sql[i + 1] === "'") {
          value += "'";
          i += 2;
          continue;
        }
        i++;
        break;
      }
      value += d;
      i++;
    }
    tokens.push({ kind: 'string', text: value, position: start, raw: sql.slice(start, i) });
    return i;
  }
  const symbol = SYMBOLS.find((s) => sql.startsWith(s, i));
  if (symbol !== undefined) {
    tokens.push({ kind: 'symbol', text: symbol, position: start, raw: symbol });
    return i + symbol.length;
  }
  const what = UNSUPPORTED_CHARACTERS[c];
  return fail(
    sql,
    start,
    c,
    what === undefined ? `Unexpected character '${c}'` : `Unsupported ${what} '${c}'`,
  );
}

/**
 * A `-` (or `.`) directly before digits starts a number only where an operand is expected: `x > -1`, `x = .5`, but
 * not `a -1` (arithmetic, refused) or `a.b` (a field path).
 */
function negativeAllowed(tokens: readonly Token[]): boolean {
  const previous = tokens[tokens.length - 1];
  if (previous === undefined) return true;
  if (previous.kind === 'symbol') return previous.text !== ')' && previous.text !== '*';
  if (previous.kind === 'word') return RESERVED.has(previous.text.toUpperCase());
  return false;
}

class Parser {
  private index = 0;
  private readonly tokens: Tokenizer;
  constructor(private readonly sql: string) {
    this.tokens = new Tokenizer(sql);
  }

  peek(): Token {
    return this.tokens.at(this.index);
  }

  next(): Token {
    const token = this.peek();
    if (token.kind !== 'end') this.index++;
    return token;
  }

  isKeyword(token: Token, keyword: string): boolean {
    return token.kind === 'word' && token.text.toUpperCase() === keyword;
  }

  isSymbol(token: Token, symbol: string): boolean {
    return token.kind === 'symbol' && token.text === symbol;
  }

  unexpected(token: Token, expected: string): never {
    if (token.kind === 'word' && UNSUPPORTED_KEYWORDS.has(token.text.toUpperCase()))
      fail(this.sql, token.position, token.text, `Unsupported keyword ${token.text.toUpperCase()}`);
    fail(this.sql, token.position, token.raw, `Expected ${expected} but found '${token.raw}'`);
  }

  expectKeyword(keyword: string): Token {
    const token = this.next();
    if (!this.isKeyword(token, keyword)) this.unexpected(token, keyword);
    return token;
  }

  expectSymbol(symbol: string): Token {
    const token = this.next();
    if (!this.isSymbol(token, symbol)) this.unexpected(token, `'${symbol}'`);
    return token;
  }

  expectEnd(): void {
    const token = this.peek();
    if (token.kind !== 'end') this.unexpected(token, 'the end of the statement');
  }

  statement(): RuleSqlAst {
    this.expectKeyword('SELECT');
    const select = this.selectList();
    this.expectKeyword('FROM');
    const topicToken = this.next();
    if (topicToken.kind !== 'string') this.unexpected(topicToken, "a quoted topic filter like 'a/+/b'");
    const problem = topicFilterProblem(topicToken.text);
    if (problem !== undefined)
      fail(
        this.sql,
        topicToken.position,
        topicToken.raw,
        `Invalid topic filter ${topicToken.raw}: ${problem}`,
      );
    let where: RuleExpression | undefined;
    if (this.isKeyword(this.peek(), 'WHERE')) {
      this.next();
      where = this.expression();
    }
    this.expectEnd();
    return { sql: this.sql, select, from: topicToken.text, where };
  }

  selectList(): RuleSelectItem[] {
    const items: RuleSelectItem[] = [];
    const first = this.peek();
    if (this.isKeyword(first, 'VALUE'))
      fail(this.sql, first.position, first.text, 'Unsupported keyword VALUE (SELECT VALUE)');
    for (;;) {
      const start = this.peek();
      if (this.isSymbol(start, '*')) {
        this.next();
        if (items.some((item) => item.kind === 'all'))
          fail(this.sql, start.position, '*', "'*' appears twice in the SELECT list");
        items.push({ kind: 'all' });
      } else {
        const expression = this.expression();
        let name: string;
        if (this.isKeyword(this.peek(), 'AS')) {
          this.next();
          const alias = this.next();
          if (alias.kind !== 'word' || RESERVED.has(alias.text.toUpperCase()))
            this.unexpected(alias, 'a name after AS');
          name = alias.text;
        } else if (expression.kind === 'field') {
          // AWS names an unaliased field after its last segment: `SELECT a.b` gives {"b": ...}.
          name = expression.path[expression.path.length - 1] as string;
        } else {
          fail(
            this.sql,
            start.position,
            this.sql.slice(start.position, this.peek().position).trim(),
            'A SELECT expression other than a field needs AS <name>',
          );
        }
        items.push({ kind: 'expression', expression, name });
      }
      if (!this.isSymbol(this.peek(), ',')) return items;
      this.next();
    }
  }

  expression(): RuleExpression {
    let left = this.conjunction();
    while (this.isKeyword(this.peek(), 'OR')) {
      this.next();
      left = { kind: 'or', left, right: this.conjunction() };
    }
    return left;
  }

  conjunction(): RuleExpression {
    let left = this.negation();
    while (this.isKeyword(this.peek(), 'AND')) {
      this.next();
      left = { kind: 'and', left, right: this.negation() };
    }
    return left;
  }

  negation(): RuleExpression {
    if (this.isKeyword(this.peek(), 'NOT')) {
      this.next();
      return { kind: 'not', operand: this.negation() };
    }
    return this.comparison();
  }

  comparison(): RuleExpression {
    const left = this.primary();
    const token = this.peek();
    if (token.kind !== 'symbol' || !['=', '<>', '!=', '<', '<=', '>', '>='].includes(token.text)) return left;
    this.next();
    const operator = (token.text === '!=' ? '<>' : token.text) as RuleComparisonOperator;
    const right = this.primary();
    const after = this.peek();
    if (after.kind === 'symbol' && ['=', '<>', '!=', '<', '<=', '>', '>='].includes(after.text))
      fail(this.sql, after.position, after.text, `Chained comparison '${after.text}' (use AND)`);
    return { kind: 'compare', operator, left, right };
  }

  primary(): RuleExpression {
    const token = this.next();
    switch (token.kind) {
      case 'number':
        return { kind: 'literal', value: Number(token.text) };
      case 'string':
        return { kind: 'literal', value: token.text };
      case 'symbol':
        if (token.text === '(') {
          const inner = this.expression();
          this.expectSymbol(')');
          return inner;
        }
        return this.unexpected(token, 'a value');
      case 'word':
        return this.word(token);
      default:
        return this.unexpected(token, 'a value');
    }
  }

  word(token: Token): RuleExpression {
    const upper = token.text.toUpperCase();
    if (upper === 'TRUE' || upper === 'FALSE') return { kind: 'literal', value: upper === 'TRUE' };
    if (upper === 'NULL') return { kind: 'literal', value: null };
    if (RESERVED.has(upper) || UNSUPPORTED_KEYWORDS.has(upper)) this.unexpected(token, 'a value');
    if (this.isSymbol(this.peek(), '(')) return this.call(token);
    const path = [token.text];
    while (this.isSymbol(this.peek(), '.')) {
      this.next();
      const segment = this.next();
      if (segment.kind === 'symbol' && segment.text === '*')
        fail(this.sql, token.position, `${path.join('.')}.*`, `Unsupported wildcard '${path.join('.')}.*'`);
      if (segment.kind !== 'word') this.unexpected(segment, 'a field name after .');
      path.push(segment.text);
    }
    return { kind: 'field', path };
  }

  call(name: Token): RuleExpression {
    const fn = name.text.toLowerCase();
    if (fn !== 'topic' && fn !== 'clientid' && fn !== 'timestamp')
      fail(this.sql, name.position, name.text, `Unsupported function ${name.text}()`);
    this.expectSymbol('(');
    if (fn === 'topic') {
      const argument = this.peek();
      if (this.isSymbol(argument, ')')) {
        this.next();
        return { kind: 'topic', level: undefined };
      }
      this.next();
      const level = Number(argument.text);
      if (argument.kind !== 'number' || !Number.isInteger(level) || level < 1)
        fail(
          this.sql,
          argument.position,
          argument.raw,
          `topic() takes a level number 1, 2, ... but got '${argument.raw}'`,
        );
      this.expectSymbol(')');
      return { kind: 'topic', level };
    }
    const close = this.next();
    if (!this.isSymbol(close, ')'))
      fail(this.sql, close.position, close.raw, `${fn}() takes no arguments but got '${close.raw}'`);
    return fn === 'clientid' ? { kind: 'clientid' } : { kind: 'timestamp' };
  }
}

/**
 * Parses a rule statement of the supported AWS IoT SQL subset.
 *
 * @param sql - the rule's SQL, for example the seed's
 *   `SELECT *, topic(3) as device_id FROM '$aws/things/+/shadow/update' WHERE state.reported.someIllegalState = True`
 * @returns the statement's AST
 * @throws {@link RuleSqlError} naming the unsupported or malformed part and its offset
 * @example
 * const ast = parseRuleSql("SELECT *, topic(3) AS device_id FROM '$aws/things/+/shadow/update' WHERE state.reported.x = True");
 * ast.from; // '$aws/things/+/shadow/update'
 */
export function parseRuleSql(sql: string): RuleSqlAst {
  if (typeof sql !== 'string')
    throw new RuleSqlError('Rule SQL must be a string', {
      sql: String(sql),
      position: 0,
      unsupported: String(sql),
    });
  return new Parser(sql).statement();
}

/**
 * Parses one expression of the subset, as used inside a substitution template `${...}` of an action.
 *
 * @param text - the expression, for example `topic(3)` or `state.reported.mode`
 * @throws {@link RuleSqlError} naming the unsupported or malformed part and its offset
 */
export function parseRuleExpression(text: string): RuleExpression {
  const parser = new Parser(text);
  const expression = parser.expression();
  parser.expectEnd();
  return expression;
}
