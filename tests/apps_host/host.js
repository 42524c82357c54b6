// The host side of the player's browser test, bundled for the page by drive.mjs (esbuild).
//
// The ext-apps package's own host bridge (AppBridge over a PostMessageTransport) talks to the
// view in a sandboxed iframe. Requests the view sends to the server (tools/call,
// resources/read) go to window.hostCall, which drive.mjs exposes and forwards to the real
// server over MCP. drive.mjs then calls window.deliver with the tool's input and result.
import { AppBridge, PostMessageTransport } from "@modelcontextprotocol/ext-apps/app-bridge";

const frame = document.getElementById("view");
const appCalls = [];
window.appCalls = appCalls;

const bridge = new AppBridge(
  null,
  { name: "hailuo-mcp test host", version: "0.0.0" },
  { serverTools: {}, serverResources: {}, logging: {} },
  {
    hostContext: {
      theme: "light",
      displayMode: "inline",
      availableDisplayModes: ["inline"],
      containerDimensions: { width: 640, maxHeight: 900 },
      platform: "web",
      locale: "en-US",
    },
  },
);

async function forward(method, params) {
  appCalls.push({ method, params });
  return window.hostCall(method, params);
}

bridge.oncalltool = (params) => forward("tools/call", params);
bridge.onreadresource = (params) => forward("resources/read", params);
bridge.onloggingmessage = (params) => console.log("[view log]", JSON.stringify(params));
bridge.onsizechange = ({ width, height }) => {
  if (width) frame.style.width = `${width}px`;
  if (height) frame.style.height = `${height}px`;
};

const initialized = new Promise((resolve) => bridge.addEventListener("initialized", resolve));

window.deliver = async (input, result) => {
  await initialized;
  await bridge.sendToolInput({ arguments: input });
  await bridge.sendToolResult(result);
};

// The bridge listens before the view loads, so the view's ui/initialize is never missed.
await bridge.connect(new PostMessageTransport(frame.contentWindow, frame.contentWindow));
frame.src = frame.dataset.src;
