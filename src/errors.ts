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
