// Text that reaches a terminal or a line-based log from untrusted sources (file names, server
// messages): made unable to move the cursor, split the line or reorder it.

/**
 * Make text safe for a terminal and for line-based logs: control characters (ANSI escapes and line
 * breaks included), U+2028/U+2029 and bidirectional overrides become `?`, so a hostile file name
 * cannot move the cursor, split the line or reorder it.
 */
export function terminalSafe(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, "?");
}
