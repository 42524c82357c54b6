// The player's browser test, driven from tests/test_player_browser.py (see docs/APPS.md).
//
// Reads one JSON request on stdin:
//   {server: {command, args, env, cwd}, chromium, screenshot, call: {name, arguments},
//    play_seconds, timeout_s}
// and prints one JSON line: what the server listed, what the browser showed, console errors,
// the requests the page made and the calls the view sent through the host.
//
// 1. Starts the real server over stdio with the TypeScript SDK client, advertising MCP Apps.
// 2. Reads the tool's ui:// resource; serves it to a sandboxed iframe with the CSP a host
//    builds from its _meta.ui.csp (the spec's construction), inside a host page running the
//    ext-apps AppBridge. Pages are served by request interception: no port, no network.
// 3. Calls the tool on the server and delivers its input and result through the bridge; the
//    view's own requests (resources/read, tools/call) are forwarded to the server.
// 4. Waits until the <video> plays, samples it, takes a screenshot. Every status the view
//    showed on the way (the loading progress of each part too) is in shown.statusLog.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { Client } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { build } from "esbuild";
import { chromium } from "playwright-core";

const HERE = dirname(fileURLToPath(import.meta.url));
const HOST_ORIGIN = "http://127.0.0.1:8765";
const VIEW_ORIGIN = "http://localhost:8766";
const APPS = "io.modelcontextprotocol/ui";
const APP_MIME = "text/html;profile=mcp-app";
// The flags the test always runs Chromium with: no sandbox (root in CI), no GPU, nothing
// phoning home, a fresh profile (playwright-core adds --user-data-dir and --headless).
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

// The host's policy for a view, from its declared domains (spec 2026-01-26, "CSP
// Enforcement"): nothing beyond the page itself, data: media and images, unless declared.
export function viewCsp(csp = {}) {
  const clean = (list) => (list || []).filter((d) => typeof d === "string" && !/[;\s'"]/.test(d));
  const resources = clean(csp.resourceDomains).join(" ");
  const connect = clean(csp.connectDomains).join(" ");
  const frames = clean(csp.frameDomains).join(" ");
  const bases = clean(csp.baseUriDomains).join(" ");
  return [
    "default-src 'none'",
    `script-src 'self' 'unsafe-inline' ${resources}`,
    `style-src 'self' 'unsafe-inline' ${resources}`,
    `connect-src 'self' ${connect}`,
    `img-src 'self' data: ${resources}`,
    `font-src 'self' ${resources}`,
    `media-src 'self' data: ${resources}`,
    `frame-src ${frames || "'none'"}`,
    "object-src 'none'",
    `base-uri ${bases || "'self'"}`,
  ].map((d) => d.trim()).join("; ");
}

async function hostPage() {
  const bundle = await build({
    entryPoints: [join(HERE, "host.js")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "chrome120",
    write: false,
    logLevel: "silent",
  });
  const script = bundle.outputFiles[0].text.replaceAll("</script", "<\\/script");
  return `<!doctype html><html><head><meta charset="utf-8"><title>test host</title></head>
<body style="margin:0;background:#eee">
<iframe id="view" data-src="${VIEW_ORIGIN}/view.html" sandbox="allow-scripts"
  style="width:640px;height:600px;border:0;background:#fff"></iframe>
<script type="module">${script}</script></body></html>`;
}

function readStdin() {
  return JSON.parse(readFileSync(0, "utf8"));
}

async function main() {
  const request = readStdin();
  const timeoutMs = (request.timeout_s || 60) * 1000;
  const out = { console: [], requests: [], states: [] };

  const transport = new StdioClientTransport({ ...request.server, stderr: "pipe" });
  let serverLog = "";
  transport.stderr?.on("data", (chunk) => { serverLog += chunk.toString(); });
  const client = new Client(
    { name: "hailuo-mcp apps test host", version: "0.0.0" },
    { capabilities: { extensions: { [APPS]: { mimeTypes: [APP_MIME] } } } },
  );
  await client.connect(transport);
  const browser = await chromium.launch({
    executablePath: request.chromium,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  try {
    const tools = (await client.listTools()).tools;
    const tool = tools.find((t) => t.name === request.call.name);
    out.tools = tools.map((t) => ({ name: t.name, ui: t._meta?.ui ?? null }));
    const uri = tool?._meta?.ui?.resourceUri;
    if (!uri) throw new Error(`${request.call.name} names no ui:// resource`);
    const [view] = (await client.readResource({ uri })).contents;
    out.view = { uri, mimeType: view.mimeType, meta: view._meta ?? null };
    const csp = viewCsp(view._meta?.ui?.csp);
    out.view.hostCsp = csp;

    const context = await browser.newContext({ viewport: { width: 700, height: 760 } });
    const page = await context.newPage();
    page.on("console", (m) => {
      if (m.type() === "error") out.console.push(m.text());
    });
    page.on("pageerror", (e) => out.console.push(`pageerror: ${e.message}`));
    page.on("request", (r) => {
      if (!r.url().startsWith("data:")) out.requests.push(r.url());
    });
    const host = await hostPage();
    await page.route("**/*", (route) => {
      const url = route.request().url();
      if (url === `${HOST_ORIGIN}/host.html`) {
        return route.fulfill({ contentType: "text/html", body: host });
      }
      if (url === `${VIEW_ORIGIN}/view.html`) {
        return route.fulfill({
          contentType: "text/html",
          headers: { "Content-Security-Policy": csp },
          body: view.text,
        });
      }
      return route.fulfill({ status: 404, body: "" });
    });
    await page.exposeFunction("hostCall", async (method, params) => {
      if (method === "tools/call") return client.callTool(params, { timeout: timeoutMs });
      if (method === "resources/read") return client.readResource(params, { timeout: timeoutMs });
      throw new Error(`the test host does not forward ${method}`);
    });
    await page.goto(`${HOST_ORIGIN}/host.html`);
    const frame = await waitForFrame(page, `${VIEW_ORIGIN}/view.html`, timeoutMs);
    // Every status text the view shows, however briefly (the loading progress among them).
    await frame.waitForSelector("#status");
    await frame.evaluate(() => {
      const status = document.getElementById("status");
      window.statusLog = [status.textContent];
      new MutationObserver(() => window.statusLog.push(status.textContent))
        .observe(status, { childList: true, characterData: true, subtree: true });
    });

    const result = await client.callTool(request.call, { timeout: timeoutMs });
    out.result = result;
    await page.evaluate(([input, res]) => window.deliver(input, res), [request.call.arguments, result]);

    const deadline = Date.now() + timeoutMs;
    // Follow the view until its <video> plays, noting each status it shows on the way.
    for (;;) {
      const seen = await frame.evaluate(() => ({
        state: document.getElementById("state").textContent,
        status: document.getElementById("status").textContent,
        time: document.getElementById("video").currentTime,
      }));
      const last = out.states[out.states.length - 1];
      if (!last || last.state !== seen.state || last.status !== seen.status) out.states.push(seen);
      if (seen.time > 0) break;
      if (Date.now() > deadline) throw new Error(`the video did not play; the view shows ${JSON.stringify(seen)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const first = await frame.evaluate(() => document.getElementById("video").currentTime);
    await new Promise((r) => setTimeout(r, (request.play_seconds || 1) * 1000));
    out.shown = await frame.evaluate(() => {
      const v = document.getElementById("video");
      const text = (id) => document.getElementById(id).textContent;
      return {
        times: [v.currentTime],
        paused: v.paused,
        videoWidth: v.videoWidth,
        videoHeight: v.videoHeight,
        srcScheme: v.currentSrc.split(":")[0],
        posterScheme: v.poster ? v.poster.slice(0, 22) : "",
        sha256: document.body.dataset.sha256 || null,
        parts: document.body.dataset.parts || null,
        progressHidden: document.getElementById("progress")?.classList.contains("hidden") ?? null,
        statusLog: window.statusLog,
        prompt: text("prompt"),
        model: text("model"),
        duration: text("duration"),
        resolution: text("resolution"),
        cost: text("cost"),
        state: text("state"),
        task: text("task"),
        file: text("file"),
        status: text("status"),
      };
    });
    out.shown.times.unshift(first);
    out.appCalls = await page.evaluate(() => window.appCalls.map((c) => ({
      method: c.method, params: c.params,
    })));
    await page.screenshot({ path: request.screenshot, fullPage: true });
  } finally {
    await browser.close();
    await client.close();
    out.serverLog = serverLog.slice(-4000);
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

async function waitForFrame(page, url, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const frame = page.frames().find((f) => f.url() === url);
    if (frame) return frame;
    if (Date.now() > deadline) throw new Error(`no frame at ${url}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

main().catch((error) => {
  process.stdout.write(`${JSON.stringify({ fatal: String(error?.stack || error) })}\n`);
  process.exit(1);
});
