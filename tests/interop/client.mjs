// A TypeScript-SDK MCP client for the interop tests: one tool call, reported as one JSON line.
//
// Usage: node client.mjs '<json>'   (or: node client.mjs - < request.json)
//
// The request:
//   transport        {type: "stdio", command, args?, env?, cwd?}
//                    | {type: "http", url, token?}          (streamable HTTP, optional bearer)
//   tool, arguments  the tools/call to make (tool may be omitted: only list and read)
//   timeoutMs        request timeout of the call (the SDK's default is 60000)
//   resetTimeoutOnProgress, maxTotalTimeoutMs   passed to the SDK as they are
//   progress         false: send no progress token (default true)
//   listResources    true: also call resources/list
//   readResource     a URI to resources/read, or "link": the first resource_link of the result
//   hold             true: after printing, keep the connection open until stdin closes
//                    (the request must then come on argv)
//
// The answer (stdout, one line): {protocolVersion, serverInfo, tools, result | error, progress,
// elapsedMs, resources?: {list?, read? | readError?}, stderr?}. `error` is {code, message, name}
// for anything callTool threw: an MCP error (e.g. -32602 when structuredContent breaks the
// output schema, -32001 when the request timed out) or a transport failure.
//
// listTools runs first on purpose: it is what makes the SDK cache each tool's outputSchema and
// validate structuredContent against it, as Claude Desktop, Cursor and VS Code do.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const STDERR_TAIL = 4000;

function readRequest() {
  const arg = process.argv[2];
  const text = arg === undefined || arg === "-" ? readFileSync(0, "utf8") : arg;
  return JSON.parse(text);
}

function describe(error) {
  return {
    code: typeof error?.code === "number" ? error.code : null,
    message: String(error?.message ?? error),
    name: error?.name ?? null,
  };
}

function makeTransport(spec, stderrChunks) {
  if (spec.type === "stdio") {
    const transport = new StdioClientTransport({
      command: spec.command,
      args: spec.args ?? [],
      env: spec.env,
      cwd: spec.cwd,
      stderr: "pipe",
    });
    transport.stderr?.on("data", (chunk) => stderrChunks.push(chunk.toString()));
    return transport;
  }
  if (spec.type === "http") {
    const headers = spec.token ? { Authorization: `Bearer ${spec.token}` } : {};
    return new StreamableHTTPClientTransport(new URL(spec.url), { requestInit: { headers } });
  }
  throw new Error(`unknown transport type ${spec.type}`);
}

function firstLink(result) {
  const link = (result?.content ?? []).find((block) => block.type === "resource_link");
  return link?.uri ?? null;
}

// A video is megabytes of base64: report its size and digest instead of the blob itself.
function summarize(read) {
  const contents = (read.contents ?? []).map((item) => {
    if (typeof item.blob !== "string") return item;
    const bytes = Buffer.from(item.blob, "base64");
    const { blob, ...rest } = item;
    return {
      ...rest,
      blobBytes: bytes.length,
      blobSha256: createHash("sha256").update(bytes).digest("hex"),
      blobHead: bytes.subarray(0, 16).toString("base64"),
    };
  });
  return { ...read, contents };
}

function write(line) {
  return new Promise((resolve) => process.stdout.write(line + "\n", resolve));
}

function stdinClosed() {
  return new Promise((resolve) => {
    process.stdin.on("end", resolve);
    process.stdin.on("close", resolve);
    process.stdin.resume();
  });
}

const stderrChunks = [];

async function main() {
  const request = readRequest();
  const transport = makeTransport(request.transport, stderrChunks);
  const client = new Client({ name: "hailuo-interop-ts", version: "1.0.0" });
  const out = { progress: [] };
  // The SDK hands the negotiated version to transports that take it (HTTP headers); record it.
  const setVersion = transport.setProtocolVersion?.bind(transport);
  transport.setProtocolVersion = (version) => {
    out.protocolVersion = version;
    setVersion?.(version);
  };
  await client.connect(transport);
  out.serverInfo = client.getServerVersion() ?? null;
  out.tools = (await client.listTools()).tools;

  const started = performance.now();
  if (request.tool) {
    const options = {};
    if (request.timeoutMs !== undefined) options.timeout = request.timeoutMs;
    if (request.resetTimeoutOnProgress !== undefined) {
      options.resetTimeoutOnProgress = request.resetTimeoutOnProgress;
    }
    if (request.maxTotalTimeoutMs !== undefined) {
      options.maxTotalTimeout = request.maxTotalTimeoutMs;
    }
    if (request.progress !== false) {
      options.onprogress = (p) =>
        out.progress.push({
          progress: p.progress,
          total: p.total ?? null,
          message: p.message ?? null,
          t: (performance.now() - started) / 1000,
        });
    }
    try {
      out.result = await client.callTool(
        { name: request.tool, arguments: request.arguments ?? {} },
        undefined,
        options,
      );
    } catch (error) {
      out.error = describe(error);
    }
  }
  out.elapsedMs = performance.now() - started;

  if (request.listResources || request.readResource) {
    out.resources = {};
    try {
      if (request.listResources) out.resources.list = (await client.listResources()).resources;
      const uri = request.readResource === "link" ? firstLink(out.result) : request.readResource;
      if (uri) out.resources.read = summarize(await client.readResource({ uri }));
      else out.resources.readError = { code: null, message: "no resource_link in the result" };
    } catch (error) {
      out.resources.readError = describe(error);
    }
  }

  if (stderrChunks.length) out.stderr = stderrChunks.join("").slice(-STDERR_TAIL);
  await write(JSON.stringify(out));
  if (request.hold) await stdinClosed();
  await client.close();
}

main().then(
  () => process.exit(0),
  async (error) => {
    const stderr = stderrChunks.join("").slice(-STDERR_TAIL);
    await write(JSON.stringify({ fatal: describe(error), stderr }));
    process.exit(1);
  },
);
