import { describe, expect, it } from "vitest";
import { caption } from "../src/dataset/captions.js";
import { metadataRow, toJsonl } from "../src/dataset/metadata.js";
import { UserError } from "../src/errors.js";

describe("caption", () => {
  it("fills the default template with the token and class", () => {
    expect(caption({ className: "cat" })).toBe("a photo of sks cat");
    expect(
      caption({ token: "ohwx", className: "teddy bear", template: "{token} {class}, studio photo" }),
    ).toBe("ohwx teddy bear, studio photo");
  });

  it("keeps quotes, $-patterns and unicode literally", () => {
    expect(caption({ token: "z$&z", className: 'chat "noir" — 猫 🐈', template: "{class} of {token}" })).toBe(
      'chat "noir" — 猫 🐈 of z$&z',
    );
  });

  it("rejects empty values, line breaks, unknown placeholders and a template without {token}", () => {
    expect(() => caption({ className: "  " })).toThrow(UserError);
    expect(() => caption({ className: "  " })).toThrow('Expected a non-empty class but received "  "');
    expect(() => caption({ className: "cat\ndog" })).toThrow(
      'Expected a single line for class but received "cat\\ndog"',
    );
    expect(() => caption({ className: "cat\u2028dog" })).toThrow("Expected a single line for class");
    expect(() => caption({ className: "cat", token: "s k s" })).toThrow(
      'Expected a single word for token but received "s k s"',
    );
    expect(() => caption({ className: "cat", template: "a {thing} of {token}" })).toThrow(
      'Unknown placeholder {thing} in caption template "a {thing} of {token}"',
    );
    expect(() => caption({ className: "cat", template: "a photo of a cat" })).toThrow(
      'Expected {token} in caption template but received "a photo of a cat"',
    );
    expect(() => caption({ className: "cat\u001b[31m" })).toThrow("Expected printable text for class");
  });
});

describe("metadataRow / toJsonl", () => {
  const hostile = 'a "quoted" \\ back\nslash\r\u2028line\u2029sep\u0085 </script> 猫 🐈 \u0000';

  it("round-trips quotes, newlines, separators and unicode through JSON.parse, one row per line", () => {
    const rows = [
      metadataRow({
        file_name: "images/a.png",
        mask_file_name: "masks/a.png",
        weight_file_name: "weights/a.png",
        rgba_file_name: "rgba/a.png",
        text: hostile,
        confidence: 0.912345,
        flags: ["doubtful"],
      }),
      metadataRow({
        file_name: "images/b.png",
        mask_file_name: "masks/b.png",
        weight_file_name: "weights/b.png",
        text: "a photo of sks cat",
        confidence: 1,
      }),
    ];
    const jsonl = toJsonl(rows);
    expect(jsonl.endsWith("\n")).toBe(true);
    // No reader may see more than two lines, even Python's str.splitlines().
    expect(jsonl.slice(0, -1).split(/[\n\r\u2028\u2029\u0085]/)).toHaveLength(2);
    const parsed = jsonl
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(parsed[0].text).toBe(hostile);
    expect(parsed[0].confidence).toBe(0.9123);
    expect(parsed[0].flags).toEqual(["doubtful"]);
    expect(Object.keys(parsed[0])).toEqual([
      "file_name",
      "mask_file_name",
      "weight_file_name",
      "rgba_file_name",
      "text",
      "confidence",
      "flags",
    ]);
    expect(parsed[1]).toEqual({
      file_name: "images/b.png",
      mask_file_name: "masks/b.png",
      weight_file_name: "weights/b.png",
      text: "a photo of sks cat",
      confidence: 1,
      flags: [],
    });
    // One type per column for pyarrow: a whole confidence is still a float, flags always a list.
    expect(jsonl.split("\n")[1]).toContain('"confidence":1.0,"flags":[]}');
    expect(toJsonl([])).toBe("");
  });

  it("refuses paths that leave the dataset and confidences outside [0, 1]", () => {
    const base = {
      mask_file_name: "masks/a.png",
      weight_file_name: "weights/a.png",
      text: "t",
      confidence: 0.5,
    };
    for (const bad of ["../a.png", "/etc/passwd", "images\\a.png", "C:/a.png", "images//a.png", ""]) {
      expect(() => metadataRow({ ...base, file_name: bad })).toThrow(
        `Expected a relative path with / separators inside the dataset for file_name but received ${JSON.stringify(bad)}`,
      );
    }
    expect(() => metadataRow({ ...base, file_name: "images/a.png", confidence: Number.NaN })).toThrow(
      "Expected a number in [0, 1] for confidence but received NaN",
    );
  });
});
