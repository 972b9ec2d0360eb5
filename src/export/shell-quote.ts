// POSIX shell quoting for the generated launch scripts: any string becomes one single-quoted word.

/**
 * Quotes `value` as one POSIX shell word in single quotes. Inside single quotes nothing is special
 * (`$(…)`, backticks, `$VAR`, `"`, `\`, `!`, `*`, newlines), so the only character that needs care
 * is `'` itself, written as `'\''` (close, escaped quote, reopen). Always quotes, even plain words,
 * so a reader of the script never has to judge which values are safe.
 * @throws {TypeError} if `value` contains a NUL character, which no process argument can carry
 */
export function shellQuote(value: string): string {
  if (value.includes("\u0000")) {
    throw new TypeError(
      `Expected a string without NUL characters for a shell argument but received ${JSON.stringify(value)}`,
    );
  }
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * One `--name=value` word for an argparse option: the name is checked and left bare, the value is
 * quoted. The `=` form keeps argparse from reading a value that starts with `-` as an option.
 * @param params.value `true` writes a bare flag (`--name`)
 * @throws {TypeError} if the name is not `[a-z0-9_]+` or the value contains NUL
 */
export function shellOption(params: { name: string; value: string | true }): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(params.name)) {
    throw new TypeError(
      `Expected an option name of letters, digits, '_' or '-' but received ${JSON.stringify(params.name)}`,
    );
  }
  return params.value === true ? `--${params.name}` : `--${params.name}=${shellQuote(params.value)}`;
}

/** Parameters of {@link launchScript}. */
export interface LaunchScriptParams {
  /** Comment lines under the shebang (line breaks inside are flattened). */
  readonly comments: readonly string[];
  /** Environment variable naming the folder that holds the trainer's script, e.g. `SD_SCRIPTS_DIR`. */
  readonly dirVariable: string;
  /** What to tell the user when `dirVariable` is unset. */
  readonly dirHint: string;
  /** The Python script inside that folder, e.g. `train_network.py`. */
  readonly script: string;
  /** Options after the script, in order; `true` is a bare flag. */
  readonly options: readonly (readonly [name: string, value: string | true])[];
}

/**
 * A bash script that changes to its own folder (so relative paths mean the output folder), checks
 * that `dirVariable` is set, and runs `accelerate launch "$DIR/script" --name=value … "$@"`, every
 * value single-quoted. Extra arguments given to the script are passed on to the trainer.
 * @throws {TypeError} for a bad variable, script or option name
 */
export function launchScript(params: LaunchScriptParams): string {
  if (!/^[A-Z_][A-Z0-9_]*$/.test(params.dirVariable)) {
    throw new TypeError(
      `Expected an upper-case variable name but received ${JSON.stringify(params.dirVariable)}`,
    );
  }
  if (!/^[A-Za-z0-9_.-]+\.py$/.test(params.script)) {
    throw new TypeError(`Expected a Python script file name but received ${JSON.stringify(params.script)}`);
  }
  const v = params.dirVariable;
  const lines = [
    "#!/usr/bin/env bash",
    ...params.comments.map((line) => `# ${line.replace(/[\r\n\u2028\u2029]+/g, " ")}`.trimEnd()),
    "set -euo pipefail",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash expansion, meant literally
    'cd -- "$(dirname -- "${BASH_SOURCE[0]}")"',
    `if [[ -z "\${${v}:-}" ]]; then`,
    `  echo ${shellQuote(`${v} is not set: ${params.dirHint}`)} >&2`,
    "  exit 2",
    "fi",
    `exec accelerate launch "\${${v}}/${params.script}" \\`,
    ...params.options.map(([name, value]) => `  ${shellOption({ name, value })} \\`),
    '  "$@"',
    "",
  ];
  return lines.join("\n");
}
