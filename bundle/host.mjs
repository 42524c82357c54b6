// What a desktop host does when it installs the bundle, with the code Claude Desktop uses for
// it (@anthropic-ai/mcpb): unpack the .mcpb, read its manifest and turn it, with the user's
// settings, into the command that starts the server. Prints that command as JSON.
//
//   node bundle/host.mjs <file.mcpb> <install dir> '<user settings as JSON>'
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, sep } from "node:path";

import { getMcpConfigForManifest, unpackExtension } from "@anthropic-ai/mcpb";

const [mcpbPath, installDir, userConfigJson] = process.argv.slice(2);
if (!mcpbPath || !installDir) {
  console.error("usage: node host.mjs <file.mcpb> <install dir> [user settings JSON]");
  process.exit(2);
}
if (!(await unpackExtension({ mcpbPath, outputDir: installDir, silent: true }))) {
  console.error(`could not unpack ${mcpbPath}`);
  process.exit(1);
}
const manifest = JSON.parse(readFileSync(join(installDir, "manifest.json"), "utf8"));
const home = homedir();
const config = await getMcpConfigForManifest({
  manifest,
  extensionPath: installDir,
  systemDirs: {
    HOME: home,
    DESKTOP: join(home, "Desktop"),
    DOCUMENTS: join(home, "Documents"),
    DOWNLOADS: join(home, "Downloads"),
  },
  userConfig: JSON.parse(userConfigJson || "{}"),
  pathSeparator: sep,
  logger: console,
});
if (!config) {
  console.error("the host would not start this server (required settings missing?)");
  process.exit(1);
}
process.stdout.write(JSON.stringify(config) + "\n");
