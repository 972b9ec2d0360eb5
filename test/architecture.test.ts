// The architecture's rules as a test (design §2): every import between src/ files points to the same
// floor or a lower one, and no set of modules imports itself in a circle.

import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "./support/built-cli.js";

const SRC = join(REPO_ROOT, "src");

/** Floors from the ground up; a path is matched by its longest prefix. */
const FLOORS: readonly (readonly [prefix: string, floor: number])[] = [
  ["util/", 1],
  ["errors.ts", 1],
  ["config.ts", 1],
  ["image/", 1],
  ["video/", 1],
  ["hub/", 2],
  ["segment/onnx/", 3.0],
  ["segment/sam/", 3.1],
  ["segment/persam/", 3.2],
  ["segment/models/", 3.2],
  ["export/", 4.0],
  ["dataset/", 4.1],
  ["eval/", 4.1],
  ["doctor.ts", 4.1],
  ["review/", 4.5],
  ["index.ts", 5],
  ["cli/", 6],
];

function floorOf(file: string): number {
  const match = FLOORS.filter(([prefix]) => file.startsWith(prefix)).sort(
    (a, b) => b[0].length - a[0].length,
  )[0];
  if (!match) throw new Error(`src/${file} is on no floor: add its folder to FLOORS (design §2)`);
  return match[1];
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith(".ts") ? [relative(SRC, path).split("\\").join("/")] : [];
  });
}

/** Relative imports of a module (static, type-only and dynamic), as src-relative .ts paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(SRC, file), "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
    const target = relative(SRC, resolve(SRC, dirname(file), m[1]!))
      .split("\\")
      .join("/");
    out.push(target.replace(/\.js$/, ".ts"));
  }
  return out;
}

const files = sourceFiles(SRC);
const graph = new Map(files.map((f) => [f, importsOf(f).filter((t) => files.includes(t))]));

describe("architecture (design §2)", () => {
  it("finds the modules and their imports", () => {
    expect(files.length).toBeGreaterThan(80);
    expect(graph.get("dataset/prepare.ts")).toContain("dataset/prepare/run.ts");
  });

  it("every import points to the same floor or a lower one", () => {
    const upward: string[] = [];
    for (const [file, targets] of graph) {
      for (const t of targets) {
        if (floorOf(t) > floorOf(file)) upward.push(`src/${file} → src/${t}`);
      }
    }
    expect(upward).toEqual([]);
  });

  it("segment never imports dataset, export or the CLI; nothing imports the CLI", () => {
    const wrong: string[] = [];
    for (const [file, targets] of graph) {
      for (const t of targets) {
        if (file.startsWith("segment/") && /^(dataset|export|eval|cli)\//.test(t))
          wrong.push(`${file} → ${t}`);
        if (!file.startsWith("cli/") && t.startsWith("cli/")) wrong.push(`${file} → ${t}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("nothing but the CLI and the library face imports the review server", () => {
    const wrong: string[] = [];
    for (const [file, targets] of graph) {
      if (file.startsWith("review/") || file.startsWith("cli/") || file === "index.ts") continue;
      for (const t of targets) if (t.startsWith("review/")) wrong.push(`${file} → ${t}`);
    }
    expect(wrong).toEqual([]);
  });

  it("has no import circles", () => {
    // Tarjan's strongly connected components: a component of more than one module is a circle.
    const index = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const onStack = new Set<string>();
    const circles: string[][] = [];
    let next = 0;
    const visit = (v: string): void => {
      index.set(v, next);
      low.set(v, next);
      next++;
      stack.push(v);
      onStack.add(v);
      for (const w of graph.get(v) ?? []) {
        if (!index.has(w)) {
          visit(w);
          low.set(v, Math.min(low.get(v)!, low.get(w)!));
        } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
      if (low.get(v) === index.get(v)) {
        const component: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          component.push(w);
        } while (w !== v);
        if (component.length > 1 || (graph.get(v) ?? []).includes(v)) circles.push(component.sort());
      }
    };
    for (const f of files) if (!index.has(f)) visit(f);
    expect(circles).toEqual([]);
  });

  it("has one owner per outside dependency", () => {
    const owners = (pkg: string): string[] =>
      files.filter((f) => new RegExp(`from "${pkg}"`).test(readFileSync(join(SRC, f), "utf8")));
    expect(owners("sharp")).toEqual(["image/image-io.ts"]);
    expect(owners("onnxruntime-node")).toEqual(["segment/sam/ort.ts"]);
    expect(owners("@huggingface/hub")).toEqual(["hub/hub-api.ts"]);
  });
});
