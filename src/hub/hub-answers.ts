// The Hub answers persam-db and @huggingface/hub depend on, as zod schemas keyed by route: the Hub
// fetch checks every 2xx API reply against them before anyone reads it, so a proxy, a captive portal
// or a look-alike server is one clear line instead of a crash deep in a library.

import { z } from "zod";

const commitSha = z.string().regex(/^[0-9a-f]{40}$/, { message: "expected a 40-hex commit id" });
const size = z.number().int().nonnegative();

/** One file or folder of `paths-info` and `tree` (hub.md §4.1); a file always has its size. */
export const treeEntrySchema = z
  .looseObject({
    type: z.string(),
    path: z.string(),
    size: size.optional(),
    oid: z.string().optional(),
    lfs: z.looseObject({ oid: z.string(), size }).optional(),
  })
  .refine((e) => e.type !== "file" || e.size !== undefined, { message: "a file entry without its size" });

/** `GET /api/{t}s/{R}/revision/{rev}`: the commit the revision points at. */
export const revisionInfoSchema = z.looseObject({ sha: commitSha });

/** `POST /api/{t}s/{R}/preupload/{rev}` (hub.md §4.3 step 1). */
export const preuploadSchema = z.looseObject({
  files: z.array(z.looseObject({ path: z.string(), uploadMode: z.enum(["lfs", "regular"]) })),
});

/** `POST /{P}{R}.git/info/lfs/objects/batch` (hub.md §4.3 step 2). */
export const lfsBatchSchema = z.looseObject({
  transfer: z.string().optional(),
  objects: z.array(
    z.looseObject({
      oid: z.string(),
      size,
      actions: z
        .looseObject({
          upload: z
            .looseObject({ href: z.string(), header: z.record(z.string(), z.string()).optional() })
            .optional(),
        })
        .optional(),
      error: z.looseObject({ code: z.number().optional(), message: z.string().optional() }).optional(),
    }),
  ),
});

/** `POST /api/{t}s/{R}/commit/{rev}` (hub.md §4.3 step 4). */
export const commitSchema = z.looseObject({ commitOid: commitSha, commitUrl: z.string() });

/** `POST /api/repos/create` (hub.md §4.2). */
export const createRepoSchema = z.looseObject({ url: z.string() });

/** `GET /api/whoami-v2`. */
export const whoAmISchema = z.looseObject({ name: z.string(), type: z.string() });

/** Any other API route: some JSON object or array. */
const anyJson = z.union([z.looseObject({}), z.array(z.unknown())]);

interface Route {
  readonly method: string;
  readonly path: RegExp;
  readonly name: string;
  readonly schema: z.ZodType;
  /** An empty body is a valid answer. */
  readonly emptyOk?: boolean;
}

const REPO = "/api/(?:models|datasets|spaces)/[^/]+/[^/]+";

/** Routes checked, first match wins. */
const ROUTES: readonly Route[] = [
  { method: "GET", path: new RegExp(`^${REPO}/revision/`), name: "revision", schema: revisionInfoSchema },
  {
    method: "POST",
    path: new RegExp(`^${REPO}/paths-info/`),
    name: "paths-info",
    schema: z.array(treeEntrySchema),
  },
  { method: "GET", path: new RegExp(`^${REPO}/tree/`), name: "tree", schema: z.array(treeEntrySchema) },
  { method: "POST", path: new RegExp(`^${REPO}/preupload/`), name: "preupload", schema: preuploadSchema },
  { method: "POST", path: new RegExp(`^${REPO}/commit/`), name: "commit", schema: commitSchema },
  { method: "POST", path: new RegExp(`^${REPO}/branch/`), name: "branch", schema: anyJson, emptyOk: true },
  { method: "POST", path: /^\/api\/repos\/create$/, name: "repo creation", schema: createRepoSchema },
  { method: "GET", path: /^\/api\/whoami-v2$/, name: "whoami", schema: whoAmISchema },
  { method: "POST", path: /\.git\/info\/lfs\/objects\/batch$/, name: "LFS batch", schema: lfsBatchSchema },
  { method: "*", path: /^\/api\//, name: "API", schema: anyJson, emptyOk: true },
];

/**
 * Check a 2xx answer of the Hub's API (a request to the endpoint's origin under `/api/` or an LFS
 * batch call). Other requests (file downloads, LFS uploads to storage) are not checked here.
 * @param params.path the URL path below the endpoint, e.g. `/api/models/ns/name/revision/main`
 * @returns undefined when the answer is fine or not an API answer, else a short problem
 *   ("paths-info answer is not JSON", "commit answer: commitOid: expected a 40-hex commit id")
 */
export function hubAnswerProblem(params: { method: string; path: string; body: string }): string | undefined {
  const method = params.method.toUpperCase();
  const route = ROUTES.find((r) => (r.method === "*" || r.method === method) && r.path.test(params.path));
  if (route === undefined) return undefined;
  if (params.body.trim() === "") return route.emptyOk ? undefined : `${route.name} answer is empty`;
  let json: unknown;
  try {
    json = JSON.parse(params.body);
  } catch {
    return `${route.name} answer is not JSON`;
  }
  const parsed = route.schema.safeParse(json);
  if (parsed.success) return undefined;
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? `${issue.path.map(String).join(".")}: ` : "";
  return `${route.name} answer: ${where}${issue?.message ?? "unexpected shape"}`;
}
