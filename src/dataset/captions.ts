// Instance captions ("a photo of sks cat") from a rare token, a class noun and a template, and the
// class noun a photo folder's name gives (or why it gives none).

import { basename, resolve } from "node:path";
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

/**
 * Words of a folder name that say nothing about its subject: what cameras, phones and operating
 * systems call photo folders (and files: IMG_1234, DSC01234, PXL_…), month names, and small words.
 * Digits never make a word, so dates and numbers ("2024-05-01", "100") say nothing either.
 */
export const GENERIC_FOLDER_WORDS: ReadonlySet<string> = new Set([
  // what the folder holds, in general
  "photo",
  "photos",
  "image",
  "images",
  "img",
  "imgs",
  "picture",
  "pictures",
  "pic",
  "pics",
  "pix",
  "foto",
  "fotos",
  "shot",
  "shots",
  "snapshot",
  "snapshots",
  "screenshot",
  "screenshots",
  "jpg",
  "jpeg",
  "png",
  "heic",
  "raw",
  "edited",
  "edit",
  "edits",
  "selects",
  "selected",
  "best",
  "dataset",
  "data",
  "input",
  "inputs",
  "train",
  "training",
  "instance",
  "instances",
  "subject",
  "object",
  // cameras, phones and operating systems
  "camera",
  "roll",
  "uploads",
  "upload",
  "dcim",
  "dsc",
  "dscn",
  "dscf",
  "pxl",
  "mvimg",
  "vid",
  "wa",
  "iphone",
  "android",
  "download",
  "downloads",
  "desktop",
  "documents",
  "export",
  "exports",
  "exported",
  "import",
  "imported",
  "untitled",
  "new",
  "folder",
  "copy",
  "backup",
  "temp",
  "tmp",
  "misc",
  "stuff",
  "test",
  // dates
  "january",
  "february",
  "march",
  "april",
  "may",
  "june",
  "july",
  "august",
  "september",
  "october",
  "november",
  "december",
  "jan",
  "feb",
  "mar",
  "apr",
  "jun",
  "jul",
  "aug",
  "sep",
  "sept",
  "oct",
  "nov",
  "dec",
  // small words
  "my",
  "our",
  "the",
  "of",
  "and",
  "for",
  "with",
  "from",
  "to",
  "at",
  "in",
  "on",
]);

/** The class noun a folder name gives, or the folder name that gives none. */
export type FolderClass = { readonly className: string } | { readonly generic: string };

/**
 * The class noun of a photo folder, from its name: the last word of two or more letters that is
 * not in {@link GENERIC_FOLDER_WORDS} (`my-cat` → `cat`, `toy_robot` → `robot`, `cat photos 2024` →
 * `cat`), lower-cased. A name with no such word (`Photos 2024`, `DCIM_100`, `2024-05-01`,
 * `IMG_1234`, `New Folder`) or named like a camera's DCF folder (`100APPLE`, `101MSDCF`) gives
 * `{ generic: name }`: the caller asks for the class instead of putting "sks photos" into every
 * caption.
 */
export function classFromFolder(dir: string): FolderClass {
  const name = basename(resolve(dir));
  const lower = name.normalize("NFC").toLowerCase();
  // DCF (camera) folders: three digits, then five characters (100APPLE, 100CANON, 100_FUJI).
  if (/^\d{3}[\p{L}\d_]{5}$/u.test(lower)) return { generic: name };
  const words = (lower.match(/\p{L}{2,}/gu) ?? []).filter((w) => !GENERIC_FOLDER_WORDS.has(w));
  const last = words[words.length - 1];
  return last === undefined ? { generic: name } : { className: last };
}

/**
 * The class noun of a photo folder or, for a generic name, the one line asking for `--class`.
 * @throws UserError when the folder's name gives no class noun (see {@link classFromFolder}).
 */
export function requireClassFromFolder(dir: string): string {
  const found = classFromFolder(dir);
  if ("className" in found) return found.className;
  throw new UserError(`The folder name ${JSON.stringify(found.generic)} does not say what the subject is`, {
    hint: "pass its class noun with --class (for example --class cat or --class backpack)",
  });
}

/** The one line that says which class noun was taken from the folder name and how to change it. */
export function classFromFolderNotice(className: string, dir: string): string {
  return `class: ${JSON.stringify(className)}, taken from the folder name ${JSON.stringify(basename(resolve(dir)))} (pass --class to change it)`;
}
