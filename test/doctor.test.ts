// `persam-db doctor` against the loopback Hub: token accepted / rejected / malformed, Hub down,
// offline mode, the command's table, --json and exit code — and the token never in the output.

import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatDoctorTable } from "../src/cli/doctor-command.js";
import { type DoctorCheck, doctorPassed, runDoctor } from "../src/doctor.js";
import { runCli } from "./support/cli.js";
import { closedPortUrl, type HubServer, startHubServer } from "./support/hub-server.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..");

const GOOD = "hf_doctorGoodToken0123456789";
const BAD = "hf_doctorRevokedToken987654";
let server: HubServer;
let work: string;
let base: Record<string, string>;

beforeAll(async () => {
  server = await startHubServer();
  server.userName = "doctor-user";
  server.rejectToken(BAD);
  work = await mkdtemp(join(tmpdir(), "persam-doctor-test-"));
  await mkdir(join(work, "hub"), { recursive: true });
  base = {
    HOME: work,
    HF_HOME: join(work, "hf-home"),
    HF_HUB_CACHE: join(work, "hub"),
    PERSAM_DB_CACHE: join(work, "persam"),
    HF_ENDPOINT: server.url,
  };
});
afterAll(async () => {
  await server.stop();
  await rm(work, { recursive: true, force: true });
});

function byName(checks: readonly DoctorCheck[], name: string): DoctorCheck {
  const c = checks.find((x) => x.name === name);
  if (!c) throw new Error(`no check ${name}`);
  return c;
}

function expectNoToken(value: unknown, token: string): void {
  const text = JSON.stringify(value);
  expect(text).not.toContain(token);
  expect(text).not.toContain(token.slice(3));
}

describe("runDoctor", () => {
  it("passes the local checks and names the user of a valid token", async () => {
    const checks = await runDoctor({ env: { ...base, HF_TOKEN: GOOD }, timeoutMs: 5000 });
    expect(checks.map((c) => c.name)).toEqual([
      "persam-db",
      "Node.js",
      "onnxruntime",
      "sharp",
      "ffmpeg",
      "HF cache",
      "persam-db cache",
      "Hub",
      "token",
      "models",
    ]);
    expect(byName(checks, "ffmpeg").required).toBe(false);
    for (const name of ["Node.js", "onnxruntime", "sharp", "HF cache", "persam-db cache"]) {
      expect(byName(checks, name), name).toMatchObject({ ok: true, required: true, level: "ok" });
    }
    expect(byName(checks, "HF cache").detail).toMatch(/hub, [\d.]+ [GMk]B free$/);
    expect(byName(checks, "persam-db cache").detail).toContain("(not created yet)");
    expect(byName(checks, "Hub")).toMatchObject({ ok: true, level: "ok" });
    expect(byName(checks, "Hub").detail).toContain(server.url);
    expect(byName(checks, "token")).toMatchObject({
      ok: true,
      detail: "token OK for user doctor-user (from HF_TOKEN)",
    });
    const models = byName(checks, "models");
    expect(models).toMatchObject({ ok: false, required: false, level: "warn" });
    expect(models.detail).toContain("none cached");
    expect(models.hint).toContain("persam-db models pull slimsam-77");
    expect(doctorPassed(checks)).toBe(true);
    expectNoToken(checks, GOOD);
    expect(server.requestsTo(/whoami-v2/).some((r) => r.hasAuth)).toBe(true);
  });

  it("reports a rejected token as a warning without printing it", async () => {
    const checks = await runDoctor({ env: { ...base, HF_TOKEN: BAD }, timeoutMs: 5000 });
    expect(byName(checks, "token")).toMatchObject({
      ok: false,
      required: false,
      level: "warn",
      detail: "token rejected (401) (from HF_TOKEN)",
    });
    expect(byName(checks, "token").hint).toMatch(/settings\/tokens/);
    expect(doctorPassed(checks)).toBe(true);
    expectNoToken(checks, BAD);
  });

  it("reports a token that does not start with hf_ as malformed", async () => {
    const secret = "not-a-hub-token-secret-42";
    const checks = await runDoctor({ env: { ...base, HF_TOKEN: secret }, timeoutMs: 5000 });
    expect(byName(checks, "token")).toMatchObject({ ok: false, level: "warn" });
    expect(byName(checks, "token").detail).toContain("malformed");
    expect(JSON.stringify(checks)).not.toContain(secret);
  });

  it("says anonymous when there is no token", async () => {
    const checks = await runDoctor({ env: base, timeoutMs: 5000 });
    expect(byName(checks, "token")).toMatchObject({ ok: true, level: "ok" });
    expect(byName(checks, "token").detail).toMatch(/^no token set/);
  });

  it("reports a Hub that is down as unreachable (a warning) and skips the token", async () => {
    const down = await closedPortUrl();
    const checks = await runDoctor({ env: { ...base, HF_ENDPOINT: down, HF_TOKEN: GOOD }, timeoutMs: 2000 });
    const hub = byName(checks, "Hub");
    expect(hub).toMatchObject({ ok: false, required: false, level: "warn" });
    expect(hub.detail).toBe(`${down} unreachable (ECONNREFUSED)`);
    expect(hub.hint).toContain("HF_HUB_OFFLINE=1");
    expect(byName(checks, "token")).toMatchObject({ level: "skip", ok: true });
    expect(doctorPassed(checks)).toBe(true);
    expectNoToken(checks, GOOD);
  });

  it("reports a Hub that does not answer in time", async () => {
    const hang: typeof fetch = (_input, init) =>
      new Promise((_resolve, reject) => {
        init?.signal?.addEventListener("abort", () => reject(init.signal?.reason));
      });
    const checks = await runDoctor({ env: base, fetch: hang, timeoutMs: 200 });
    expect(byName(checks, "Hub").detail).toMatch(/unreachable \(no answer within 0\.2 s\)$/);
  });

  it("skips the network checks with HF_HUB_OFFLINE", async () => {
    server.clearRequests();
    const checks = await runDoctor({
      env: { ...base, HF_TOKEN: GOOD, HF_HUB_OFFLINE: "1" },
      timeoutMs: 5000,
    });
    expect(byName(checks, "Hub").level).toBe("skip");
    expect(byName(checks, "token").level).toBe("skip");
    expect(server.requests).toHaveLength(0);
  });

  it("fails a required check for an old Node.js", async () => {
    const checks = await runDoctor({
      env: { ...base, HF_HUB_OFFLINE: "1" },
      timeoutMs: 1000,
      nodeVersion: "18.19.0",
    });
    expect(byName(checks, "Node.js")).toMatchObject({ ok: false, required: true, level: "fail" });
    expect(byName(checks, "Node.js").hint).toMatch(/Node\.js 20/);
    expect(doctorPassed(checks)).toBe(false);
    expect(formatDoctorTable(checks).join("\n")).toMatch(/^FAIL {2}Node\.js +v18\.19\.0 is too old/m);
  });
});

/** Run `persam-db doctor ...` in-process in the work folder. */
const run = (argv: string[], env: Record<string, string>) => runCli(argv, { env, cwd: work });

describe("persam-db doctor", () => {
  it("prints a table, exits 0, and never prints the token", async () => {
    const r = await run(["doctor"], { ...base, HF_TOKEN: GOOD });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ok {4}Node\.js +v\d+/m);
    expect(r.stdout).toMatch(/^ok {4}token +token OK for user doctor-user/m);
    expect(r.stdout).toMatch(/^warn {2}models +none cached/m);
    expect(r.stdout).toMatch(/→ run 'persam-db models pull slimsam-77'/);
    expect(r.stdout).toMatch(/All required checks passed \(1 warning\)\.\n$/);
    expect(r.stdout + r.stderr).not.toContain(GOOD);
    expect(r.stdout + r.stderr).not.toContain(GOOD.slice(3));
  });

  it("--json prints one document with every check", async () => {
    const r = await run(["doctor", "--json", "--timeout", "1"], {
      ...base,
      HF_TOKEN: BAD,
      HF_ENDPOINT: await closedPortUrl(),
    });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { ok: boolean; checks: DoctorCheck[] };
    expect(doc.ok).toBe(true);
    expect(byName(doc.checks, "Hub").detail).toContain("unreachable");
    expect(r.stdout + r.stderr).not.toContain(BAD);
    expect(r.stderr).toBe("");
  });

  it("shows the versions of persam-db, Node.js, onnxruntime and sharp", async () => {
    const r = await run(["doctor"], base);
    const { version } = JSON.parse(await readFile(join(REPO, "package.json"), "utf8")) as { version: string };
    expect(r.stdout).toMatch(new RegExp(`^ok {4}persam-db +${version.replace(/\./g, "\\.")}$`, "m"));
    expect(r.stdout).toMatch(
      new RegExp(`^ok {4}Node\\.js +v${process.versions.node.replace(/\./g, "\\.")} `, "m"),
    );
    expect(r.stdout).toMatch(/^ok {4}onnxruntime +\d+\.\d+\.\d+: /m);
    expect(r.stdout).toMatch(/^ok {4}sharp +\d+\.\d+\.\d+ \(libvips \d+\.\d+\.\d+\): /m);
  });

  it("refuses --timeout without a value", async () => {
    const r = await run(["doctor", "--timeout"], base);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Not enough arguments following: timeout");
  });

  it("shows examples in --help", async () => {
    const r = await run(["doctor", "--help"], base);
    expect(r.stdout).toContain("doctor --json");
    expect(r.stdout).toContain("HF_HUB_OFFLINE=1");
  });
});
