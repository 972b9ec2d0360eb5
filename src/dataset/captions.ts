// Instance captions ("a photo of sks cat") from a rare token, a class noun and a template.

import { UserError } from "../errors.js";

/** DreamBooth's customary rare token. */
export const DEFAULT_TOKEN = "sks";
/** The DreamBooth paper's instance prompt. */
export const DEFAULT_CAPTION_TEMPLATE = "a photo of {token} {class}";

/** Parameters of {@link caption}. */
export interface CaptionParams {
  /**
   * The rare identifier the model learns for this subject.
   * @default "sks"
   */
  readonly token?: string;
  /** The subject's class noun ("cat", "backpack"); also the prior-preservation class prompt. */
  readonly className: string;
  /**
   * Caption template; `{token}` (required) and `{class}` are replaced, nothing else is a placeholder.
   * @default "a photo of {token} {class}"
   */
  readonly template?: string;
}

// Every character a reader may treat as a line break: JSONL and caption files are line-based, and
// Python's str.splitlines() also breaks at \v, \f, \x1c–\x1e, \x85, U+2028 and U+2029.
const LINE_BREAK = /[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]/;
const OTHER_CONTROL = /[\x00-\x08\x0e-\x1b\x7f]/;
// Half a surrogate pair: UTF-8 cannot encode it, so the .txt caption would silently get U+FFFD while
// metadata.jsonl (JSON-escaped) kept the original.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function checkOneLine(name: string, value: string, allowEmpty = false): string {
  const v = value.trim();
  if (!allowEmpty && v.length === 0) {
    throw new UserError(`Expected a non-empty ${name} but received ${JSON.stringify(value)}`);
  }
  if (LINE_BREAK.test(v)) {
    throw new UserError(`Expected a single line for ${name} but received ${JSON.stringify(value)}`, {
      hint: `remove the line break from the ${name}`,
    });
  }
  if (LONE_SURROGATE.test(v)) {
    throw new UserError(`Expected well-formed Unicode for ${name} but received ${JSON.stringify(value)}`, {
      hint: `retype the ${name}: it holds half of a UTF-16 surrogate pair, which a UTF-8 caption file cannot store`,
    });
  }
  if (OTHER_CONTROL.test(v) || v.includes("\t")) {
    throw new UserError(`Expected printable text for ${name} but received ${JSON.stringify(value)}`, {
      hint: `remove the control character from the ${name}`,
    });
  }
  return v;
}

/**
 * The instance caption of the training set: `template` with `{token}` and `{class}` filled in, trimmed,
 * on one line. Quotes, `<`, `&` and any Unicode are kept as typed (files and JSON escape them).
 * @throws UserError when the token or class is empty, any input holds a line break, a control
 * character or a lone UTF-16 surrogate, the template lacks `{token}` or uses an unknown
 * `{placeholder}`, or `{token}` contains whitespace.
 */
export function caption(params: CaptionParams): string {
  const token = checkOneLine("token", params.token ?? DEFAULT_TOKEN);
  if (/\s/.test(token)) {
    throw new UserError(`Expected a single word for token but received ${JSON.stringify(params.token)}`, {
      hint: "a rare token such as sks or ohwx",
    });
  }
  const className = checkOneLine("class", params.className);
  const template = checkOneLine("caption template", params.template ?? DEFAULT_CAPTION_TEMPLATE);
  for (const m of template.matchAll(/\{([^{}]*)\}/g)) {
    if (m[1] !== "token" && m[1] !== "class") {
      throw new UserError(`Unknown placeholder {${m[1]}} in caption template ${JSON.stringify(template)}`, {
        hint: "use {token} and {class}",
      });
    }
  }
  if (!template.includes("{token}")) {
    throw new UserError(`Expected {token} in caption template but received ${JSON.stringify(template)}`, {
      hint: 'for example "a photo of {token} {class}"',
    });
  }
  // One pass with a replacer function: a `$&` in the token or class stays literal, and a `{class}` inside
  // the token (or `{token}` inside the class) is not replaced again.
  return template
    .replace(/\{(token|class)\}/g, (_, key: string) => (key === "token" ? token : className))
    .replace(/ {2,}/g, " ")
    .trim();
}
