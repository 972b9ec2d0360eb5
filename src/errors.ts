// The two kinds of failure persam-db knows: a UserError is the user's to fix and is printed as one
// line (what, which file, what to do); anything else is a bug and keeps its stack (--verbose).

/** Exit codes used by the CLI. */
export const ExitCode = {
  ok: 0,
  /** A user error: bad option, missing file, no network, bad token. */
  userError: 1,
  /** The run finished but skipped something (a bad photo, a doubtful mask). */
  partial: 2,
  /** A bug: an unexpected exception. */
  bug: 70,
  /** Interrupted by the user (Ctrl-C). */
  interrupted: 130,
} as const;

/**
 * A failure caused by input, environment or network, not by a bug. The message is one line that
 * says what happened and which file or value; `hint` says what to do.
 */
export class UserError extends Error {
  override readonly name = "UserError";
  readonly hint: string | undefined;
  readonly exitCode: number;

  constructor(message: string, options: { hint?: string; cause?: unknown; exitCode?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? ExitCode.userError;
  }

  /** The single line printed to the user. */
  toLine(): string {
    return this.hint ? `${this.message} — ${this.hint}` : this.message;
  }
}

/** True for errors that should be printed as one line without a stack. */
export function isUserError(error: unknown): error is UserError {
  return error instanceof UserError;
}

/** The first line of an error's message (native errors can carry several). */
export function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return (text.split("\n")[0] ?? text).trim();
}

/**
 * The `code` strings of an error and of everything behind it: its `cause` chain and, for an
 * AggregateError (undici's failed connection to every address of a host), each inner error. Node's
 * fetch hides the useful code (ECONNREFUSED, UND_ERR_SOCKET, …) one or two causes deep.
 */
export function errorCodes(error: unknown, depth = 0): string[] {
  if (depth > 6 || typeof error !== "object" || error === null) return [];
  const out: string[] = [];
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") out.push(code);
  const cause = (error as { cause?: unknown }).cause;
  if (cause !== undefined) out.push(...errorCodes(cause, depth + 1));
  if (error instanceof AggregateError) for (const e of error.errors) out.push(...errorCodes(e, depth + 1));
  return out;
}

/** What an operating-system error code means for a path, and what the user can do about it. */
const SYSTEM_ERRORS: Readonly<Record<string, { readonly what: string; readonly hint: string }>> = {
  EACCES: {
    what: "permission denied",
    hint: "choose a folder you may write to (for example -o ~/my-set), or change its permissions",
  },
  EPERM: {
    what: "operation not permitted",
    hint: "choose a folder you may write to (for example -o ~/my-set), or change its permissions",
  },
  ENOTDIR: {
    what: "a part of this path is a file, not a folder",
    hint: "choose another output folder, or move that file out of the way",
  },
  EISDIR: {
    what: "this is a folder where a file is expected",
    hint: "give a file name, or move the folder out of the way",
  },
  ENOSPC: {
    what: "no space left on the disk",
    hint: "free some space or write to another disk, then run again: finished files are kept",
  },
  EDQUOT: {
    what: "disk quota exceeded",
    hint: "free some space within your quota or write elsewhere, then run again: finished files are kept",
  },
  EROFS: {
    what: "the file system is read-only",
    hint: "choose an output folder on a writable disk",
  },
  EMFILE: {
    what: "too many open files",
    hint: "run with fewer --jobs, or raise the limit (ulimit -n 4096)",
  },
  ENFILE: {
    what: "too many open files on this system",
    hint: "run with fewer --jobs, or close other programs",
  },
};

/** The operating-system error codes {@link systemUserError} turns into user errors. */
export const SYSTEM_ERROR_CODES: readonly string[] = Object.keys(SYSTEM_ERRORS);

/**
 * An operating-system error that is the user's to fix (no permission, a file where a folder should
 * be, a full disk, a read-only disk, too many open files) as one UserError line that names the path
 * and says what to do; undefined for any other error. `path` names the file when the error itself
 * does not (a write on an open file has no path) or names a temporary one.
 */
export function systemUserError(error: unknown, path?: string): UserError | undefined {
  if (isUserError(error)) return undefined;
  const code =
    errorCodes(error).find((c) => c in SYSTEM_ERRORS) ?? (isMkdirEnoent(error) ? "ENOENT" : undefined);
  if (code === undefined) return undefined;
  const { what, hint } = SYSTEM_ERRORS[code] ?? MKDIR_ENOENT;
  const own = errorPath(error);
  const where = path ?? own;
  return new UserError(where === undefined ? `${what} (${code})` : `${where}: ${what} (${code})`, {
    hint,
    cause: error,
  });
}

/**
 * A folder that could not be created: Node's recursive mkdir says ENOENT also when the disk is
 * read-only or a part of the path cannot be made, and it only ever runs for an output.
 */
const MKDIR_ENOENT = {
  what: "cannot create this folder",
  hint: "check that the disk is writable and that no part of the path is a file",
};

function isMkdirEnoent(error: unknown): boolean {
  const e = error as { code?: unknown; syscall?: unknown } | null;
  return typeof e === "object" && e !== null && e.code === "ENOENT" && e.syscall === "mkdir";
}

/** The `path` (or `dest`) of an error or of the first error behind it that has one. */
function errorPath(error: unknown, depth = 0): string | undefined {
  if (depth > 6 || typeof error !== "object" || error === null) return undefined;
  const e = error as { path?: unknown; dest?: unknown; cause?: unknown };
  if (typeof e.path === "string") return e.path;
  if (typeof e.dest === "string") return e.dest;
  return errorPath(e.cause, depth + 1);
}
