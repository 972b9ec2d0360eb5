// Rows of the imagefolder `metadata.jsonl` (Hugging Face datasets) and their serialisation, shaped
// for how `datasets` reads them (packaged_modules/folder_based_builder/folder_based_builder.py).

/**
 * One `metadata.jsonl` row. Paths are relative to the folder that holds `metadata.jsonl` (the output
 * root), with `/` separators; `datasets` (>= 3.4) loads `file_name` and every `*_file_name` column as
 * an image, so only image paths may end in `_file_name`. `file_name` comes first: the builder fills
 * each image column by taking `file_name` before `<column>_file_name`, so the first image column of
 * the row must be the one `file_name` belongs to. Every row has the same columns and types: pyarrow
 * infers one type per column, so `confidence` is always written as a float and `flags` is always a
 * list.
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
  /** PerSAM's confidence in the mask, in [0, 1], rounded to 4 decimals; written with a decimal point. */
  readonly confidence: number;
  /** Diagnostics such as `doubtful`, `cuts-subject`; empty when there are none. */
  readonly flags: readonly string[];
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
    flags: [...flags],
  };
}

/** Columns written as floats even when the value is whole (`1.0`, never `1`). */
const FLOAT_COLUMNS = new Set(["confidence"]);

/**
 * Serialise rows as JSON Lines: one JSON object per row, `\n` after each. U+2028, U+2029 and U+0085
 * are escaped as well, because line-based readers (Python's `str.splitlines`) break at them. A whole
 * number in a float column (`confidence`) is written `1.0`: pyarrow's JSON reader would otherwise
 * make the column int64 when every row is whole, and double when some are not.
 */
export function toJsonl(rows: readonly object[]): string {
  let out = "";
  for (const row of rows) {
    const fields = Object.entries(row)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => {
        const value =
          FLOAT_COLUMNS.has(k) && typeof v === "number" && Number.isInteger(v)
            ? v.toFixed(1)
            : JSON.stringify(v);
        return `${JSON.stringify(k)}:${value}`;
      });
    out += `{${fields.join(",").replace(/[\u2028\u2029\x85]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)}}\n`;
  }
  return out;
}
