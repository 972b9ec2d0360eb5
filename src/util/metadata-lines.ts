// The file references of an imagefolder `metadata.jsonl`: every `file_name` / `*_file_name` column
// of every row, with its line, as the Hugging Face `datasets` loader reads them. Checks built on it
// (a set's consistency, a push's completeness) apply their own rules.

/** One `file_name` or `*_file_name` value as written, or a line that is not JSON (`key` undefined). */
export interface FileNameEntry {
  /** 1-based line of the row. */
  readonly line: number;
  readonly key?: string;
  readonly value?: unknown;
}

/** The file-name columns of every row and the lines that are not JSON, in line order. */
export function metadataFileNames(text: string): FileNameEntry[] {
  const entries: FileNameEntry[] = [];
  text.split("\n").forEach((raw, i) => {
    if (raw.trim() === "") return;
    let row: unknown;
    try {
      row = JSON.parse(raw);
    } catch {
      entries.push({ line: i + 1 });
      return;
    }
    if (typeof row !== "object" || row === null || Array.isArray(row)) return;
    for (const [key, value] of Object.entries(row)) {
      if (key === "file_name" || key.endsWith("_file_name")) entries.push({ line: i + 1, key, value });
    }
  });
  return entries;
}
