// Rows of the imagefolder `metadata.jsonl` (Hugging Face datasets) and their serialisation.

/**
 * One `metadata.jsonl` row. Paths are relative to the folder that holds `metadata.jsonl` (the output
 * root), with `/` separators; `datasets` loads `file_name` and every `*_file_name` column as an image.
 */
export interface MetadataRow {
  /** The training image, `images/<stem>.png`. */
  readonly file_name: string;
  /** The binary mask, `masks/<stem>.png`. */
  readonly mask_file_name: string;
  /** The loss-weight map, `weights/<stem>.png`. */
  readonly weight_file_name: string;
  /** The RGBA image (alpha = loss weight), `rgba/<stem>.png`. */
  readonly rgba_file_name?: string;
  /** The caption. */
  readonly text: string;
  /** PerSAM's confidence in the mask, in [0, 1], rounded to 4 decimals. */
  readonly confidence: number;
  /** Diagnostics such as `doubtful`, `cuts-subject`; omitted when there are none. */
  readonly flags?: readonly string[];
}

/** Parameters of {@link metadataRow}. */
export interface MetadataRowParams {
  readonly file_name: string;
  readonly mask_file_name: string;
  readonly weight_file_name: string;
  readonly rgba_file_name?: string;
  readonly text: string;
  readonly confidence: number;
  /** @default [] */
  readonly flags?: readonly string[];
}

function checkRelPath(name: string, value: string): string {
  const parts = value.split("/");
  if (
    value.length === 0 ||
    value.includes("\\") ||
    value.includes("\0") ||
    parts.some((p) => p === "" || p === "." || p === "..") ||
    /^[A-Za-z]:/.test(value)
  ) {
    throw new RangeError(
      `Expected a relative path with / separators inside the dataset for ${name} but received ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/**
 * Build one validated metadata row (fields in a fixed order, so files diff cleanly).
 * @throws RangeError when a path is absolute, empty, uses `\` or `..`, or confidence is not in [0, 1].
 */
export function metadataRow(params: MetadataRowParams): MetadataRow {
  const { confidence } = params;
  if (!Number.isFinite(confidence) || confidence < 0 || confidence > 1) {
    throw new RangeError(`Expected a number in [0, 1] for confidence but received ${confidence}`);
  }
  const flags = params.flags ?? [];
  return {
    file_name: checkRelPath("file_name", params.file_name),
    mask_file_name: checkRelPath("mask_file_name", params.mask_file_name),
    weight_file_name: checkRelPath("weight_file_name", params.weight_file_name),
    ...(params.rgba_file_name === undefined
      ? {}
      : { rgba_file_name: checkRelPath("rgba_file_name", params.rgba_file_name) }),
    text: params.text,
    confidence: Math.round(confidence * 1e4) / 1e4,
    ...(flags.length > 0 ? { flags: [...flags] } : {}),
  };
}

/**
 * Serialise rows as JSON Lines: one `JSON.stringify` per row, `\n` after each. U+2028, U+2029 and
 * U+0085 are escaped as well, because line-based readers (Python's `str.splitlines`) break at them.
 */
export function toJsonl(rows: readonly object[]): string {
  let out = "";
  for (const row of rows) {
    out += `${JSON.stringify(row).replace(/[\u2028\u2029\x85]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)}\n`;
  }
  return out;
}
