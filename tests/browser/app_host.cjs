// A minimal MCP Apps host in real headless Chromium (playwright-core, system chromium), driving koji-mcp's
// interview view (ui://koji/interview.html).
//
//   node tests/browser/app_host.cjs '{"scenario": "interview"|"hostile"|"demo", "mcp": "<http://…/mcp>", "out": "<dir>", ...}'
//
// The view runs in an iframe sandboxed with only allow-scripts (srcdoc, so an opaque origin, as hosts do).
// The host side is either
// - "official" (bridge: "official"): @modelcontextprotocol/ext-apps's AppBridge, run here in Node with the
//   official MCP client (@modelcontextprotocol/client, streamable HTTP), its messages carried to and from the
//   iframe through the page; or
// - hand-written: the page answers `ui/initialize` itself and relays the view's `tools/call` to koji-mcp
//   through this Node process, an MCP client on 2025-11-25 declaring the Apps extension.
// Either way the host reads the view with resources/read, sends `ui/notifications/tool-input` and
// `ui/notifications/tool-result` with start_interview's result, and gives a dark theme with CSS variables.
//
// scenario "interview": start_interview through MCP, then answer the whole interview *in the view* (typed
// text, a scale, a single choice, a multiple choice, a ranking reordered with the keyboard, yes/no), press
// Complete, wait for the summary; a screenshot per step in `out`. Prints one JSON line: what the view
// showed, which tool calls the view made, the host log, console errors.
// scenario "hostile": a tool-result whose interviewer text holds <script> and <img onerror>; prints what
// rendered and whether anything ran.
// scenario "demo": see demo() below.
const { chromium } = require("playwright-core");
const fs = require("fs");
const path = require("path");

const HOST_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>test host</title>
<style>body{margin:0;font:14px sans-serif} iframe{border:0;width:380px;height:900px}</style></head>
<body><iframe id="view" sandbox="allow-scripts" title="Koji interview"></iframe>
<script>
  window.hostLog = [];
  window.viewCalls = [];
  const frame = document.getElementById("view");
  const send = (msg) => frame.contentWindow.postMessage(msg, "*");
  window.deliverResult = (input, result) => {
    send({ jsonrpc: "2.0", method: "ui/notifications/tool-input", params: { arguments: input } });
    send({ jsonrpc: "2.0", method: "ui/notifications/tool-result", params: result });
  };
  window.toView = send;
  window.addEventListener("message", async (event) => {
    if (event.source !== frame.contentWindow) return;
    const msg = event.data;
    window.hostLog.push(msg.method || ("response " + msg.id));
    if (msg.method === "tools/call") window.viewCalls.push(msg.params);
    if (window.fromView) { window.fromView(msg); return; }  // the official AppBridge answers (in Node)
    if (msg.method === "ui/initialize") {
      send({ jsonrpc: "2.0", id: msg.id, result: {
        protocolVersion: "2026-01-26", hostInfo: { name: "koji-test-host", version: "1" },
        hostCapabilities: { serverTools: {}, updateModelContext: { text: {} } },
        hostContext: { theme: window.hostTheme, displayMode: "inline",
                       styles: { variables: window.hostVariables } } } });
    } else if (msg.method === "ui/notifications/initialized") {
      window.viewReady = true;
    } else if (msg.method === "ui/update-model-context") {
      (window.modelContext = window.modelContext || []).push(msg.params);
      send({ jsonrpc: "2.0", id: msg.id, result: {} });
    } else if (msg.method === "tools/call") {
      try {
        const result = await window.hostCallTool(msg.params.name, msg.params.arguments || {});
        send({ jsonrpc: "2.0", id: msg.id, result });
      } catch (err) {
        send({ jsonrpc: "2.0", id: msg.id, error: { code: -32603, message: String(err) } });
      }
    } else if (msg.id !== undefined && msg.method) {
      send({ jsonrpc: "2.0", id: msg.id, error: { code: -32601, message: "not supported by the test host" } });
    }
  });
</script></body></html>`;

class Mcp {
  constructor(url) { this.url = url; this.nextId = 1; this.session = null; }
  async rpc(method, params, notification = false) {
    const body = { jsonrpc: "2.0", method, params };
    if (!notification) body.id = this.nextId++;
    const headers = { "Content-Type": "application/json", Accept: "application/json, text/event-stream",
                      "MCP-Protocol-Version": "2025-11-25" };
    if (this.session) headers["Mcp-Session-Id"] = this.session;
    const response = await fetch(this.url, { method: "POST", headers, body: JSON.stringify(body) });
    if (!this.session && response.headers.get("mcp-session-id")) this.session = response.headers.get("mcp-session-id");
    const text = await response.text();
    if (notification) return null;
    if (!response.ok) throw new Error(`${method}: HTTP ${response.status} ${text}`);
    const lines = (response.headers.get("content-type") || "").startsWith("application/json")
      ? [text] : text.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5));
    for (const line of lines) {
      const msg = JSON.parse(line);
      if (msg.id === body.id) {
        if (msg.error) throw new Error(`${method}: ${msg.error.message}`);
        return msg.result;
      }
    }
    throw new Error(`${method}: no response in ${text.slice(0, 200)}`);
  }
  async connect() {
    this.initialize = await this.rpc("initialize", {
      protocolVersion: "2025-11-25", clientInfo: { name: "koji-test-host", version: "1" },
      capabilities: { extensions: { "io.modelcontextprotocol/ui": { mimeTypes: ["text/html;profile=mcp-app"] } } },
    });
    await this.rpc("notifications/initialized", {}, true);
  }
}

// The official host side: @modelcontextprotocol/ext-apps's AppBridge, running here in Node with the official
// MCP client (@modelcontextprotocol/client over streamable HTTP) and a transport that carries its
// JSON-RPC messages to and from the iframe through the page (window.toView / exposed fromView).
async function officialBridge(page, mcpUrl, theme, record) {
  const { pathToFileURL } = require("url");
  const load = (name) => import(pathToFileURL(require.resolve(name)).href);
  const { AppBridge } = await load("@modelcontextprotocol/ext-apps/app-bridge");
  const { Client, StreamableHTTPClientTransport } = await load("@modelcontextprotocol/client");
  const client = new Client({ name: "koji-test-host", version: "1" },
    { capabilities: { extensions: { "io.modelcontextprotocol/ui": { mimeTypes: ["text/html;profile=mcp-app"] } } } });
  await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl)));
  const transport = {
    async start() {},
    async send(message) { await page.evaluate((m) => window.toView(m), message); },
    async close() { if (transport.onclose) transport.onclose(); },
  };
  await page.exposeFunction("fromView", (message) => { if (transport.onmessage) transport.onmessage(message); });
  const bridge = new AppBridge(client, { name: "koji-test-host", version: "1" },
    { serverTools: {}, updateModelContext: { text: {} } },
    { hostContext: { theme: theme.name, displayMode: "inline", styles: { variables: theme.variables } } });
  bridge.onupdatemodelcontext = async (params) => { record.modelContext.push(params); return {}; };
  const ready = new Promise((resolve) => { bridge.oninitialized = resolve; });
  await bridge.connect(transport);
  return { client, bridge, ready };
}

async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--no-first-run"],
  });
}

// The hand-written host side (used when no server is involved): answers ui/initialize in the page and
// relays tools/call to `callTool`.
function handWritten(callTool) {
  return async (page) => {
    await page.exposeFunction("hostCallTool", callTool);
    return () => page.waitForFunction(() => window.viewReady === true, null, { timeout: 10000 });
  };
}

async function openHost(browser, html, theme, setup) {
  const context = await browser.newContext({ viewport: { width: 400, height: 940 } });
  const page = await context.newPage();
  const errors = [];
  const external = [];
  page.on("console", (msg) => { if (msg.type() === "error") errors.push(msg.text()); });
  page.on("pageerror", (err) => errors.push(String(err)));
  // Any network request from the page or the view is a remote asset: record it and refuse it.
  await page.route("**/*", (route) => { external.push(route.request().url()); route.abort(); });
  await page.setContent(HOST_PAGE);
  await page.evaluate(([t, vars]) => { window.hostTheme = t; window.hostVariables = vars; }, [theme.name, theme.variables]);
  const ready = await setup(page);
  await page.evaluate((doc) => { document.getElementById("view").srcdoc = doc; }, html);
  await ready();
  return { page, errors, external, view: page.frameLocator("#view") };
}

async function interview(args) {
  const theme = { name: "dark", variables: { "--color-background-primary": "rgb(20, 22, 26)",
                                             "--color-text-primary": "rgb(240, 240, 240)" } };
  const record = { modelContext: [] };
  let official = null;
  let mcp = null;
  const browser = await launch();
  const shots = [];
  try {
    let html, callStart, extensions;
    let setup;
    if (args.bridge === "official") {
      setup = async (page) => {
        official = await officialBridge(page, args.mcp, theme, record);
        return () => Promise.race([official.ready, new Promise((_, no) => setTimeout(() => no(new Error("view never initialized")), 10000))]);
      };
      // read the view and start the interview with the official client, as a host would
      const { pathToFileURL } = require("url");
      const { Client, StreamableHTTPClientTransport } = await import(pathToFileURL(require.resolve("@modelcontextprotocol/client")).href);
      const reader = new Client({ name: "koji-test-host-reader", version: "1" },
        { capabilities: { extensions: { "io.modelcontextprotocol/ui": { mimeTypes: ["text/html;profile=mcp-app"] } } } });
      await reader.connect(new StreamableHTTPClientTransport(new URL(args.mcp)));
      html = (await reader.readResource({ uri: "ui://koji/interview.html" })).contents[0].text;
      extensions = (reader.getServerCapabilities() || {}).extensions || null;
      await reader.close();
      callStart = (input) => official.client.callTool({ name: "start_interview", arguments: input });
    } else {
      mcp = new Mcp(args.mcp);
      await mcp.connect();
      html = (await mcp.rpc("resources/read", { uri: "ui://koji/interview.html" })).contents[0].text;
      extensions = (mcp.initialize.capabilities || {}).extensions || null;
      setup = handWritten((name, a) => mcp.rpc("tools/call", { name, arguments: a }));
      callStart = (input) => mcp.rpc("tools/call", { name: "start_interview", arguments: input });
    }
    const { page, errors, external, view } = await openHost(browser, html, theme, setup);
    const shot = async (name) => {
      const file = path.join(args.out, `${String(shots.length + 1).padStart(2, "0")}-${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      shots.push(path.basename(file));
    };
    const input = { respondent: { external_id: "browser-1", display_name: "Robin" } };
    const started = await callStart(input);
    if (official) {
      await official.bridge.sendToolInput({ arguments: input });
      await official.bridge.sendToolResult(started);
    } else {
      // "hand-written-content-only": a host that hands the view only the result's text content (no
      // structuredContent); the view must find the interview in the text.
      const delivered = args.bridge === "hand-written-content-only" ? { content: started.content } : started;
      await page.evaluate(([i, r]) => window.deliverResult(i, r), [input, delivered]);
    }
    const interviewer = view.locator("#log li.interviewer");
    const waitTurns = async (n) => {
      try {
        await interviewer.nth(n - 1).waitFor({ timeout: 15000 });
      } catch (err) {  // say what the view showed instead
        const shown = { status: await view.locator("#status").textContent(), error: await view.locator("#error").textContent(),
                        hostLog: await page.evaluate(() => window.hostLog), consoleErrors: errors };
        throw new Error(`turn ${n} never came: ${JSON.stringify(shown)}`);
      }
    };
    const send = async () => { await view.locator("#send").click(); };
    await waitTurns(1);
    await shot("started");

    // 1. open question: typed text, sent with Enter (keyboard)
    await view.locator("#widget textarea").fill(args.answers.text);
    await view.locator("#widget textarea").press("Enter");
    await waitTurns(2);
    await shot("typed-answer");
    // 2. scale
    const widgetType = async () => view.locator("#widget").getAttribute("data-type");
    const types = [await widgetType()];
    await view.locator(`#widget input[name=scale][value="${args.answers.scale}"]`).check();
    await send();
    await waitTurns(3);
    await shot("scale");
    // 3. single choice
    types.push(await widgetType());
    await view.getByLabel(args.answers.single, { exact: true }).check();
    await send();
    await waitTurns(4);
    await shot("single-choice");
    // 4. multiple choice
    types.push(await widgetType());
    for (const option of args.answers.multiple) await view.getByLabel(option, { exact: true }).check();
    await send();
    await waitTurns(5);
    await shot("multiple-choice");
    // 5. ranking, reordered with the keyboard only: focus a move button and press Enter
    types.push(await widgetType());
    for (const [label, direction, times] of args.answers.moves) {
      for (let i = 0; i < times; i++) {
        await view.getByRole("button", { name: `Move ${label} ${direction}` }).focus();
        await page.keyboard.press("Enter");
      }
    }
    const ranked = await view.locator("#widget .rank li").evaluateAll((lis) => lis.map((li) => li.dataset.option));
    await shot("ranking");
    await send();
    await waitTurns(6);
    // 6. yes / no
    types.push(await widgetType());
    await view.getByLabel(args.answers.yes_no, { exact: true }).check();
    await shot("yes-no");
    await send();
    await waitTurns(7);
    await view.locator("#complete").waitFor({ state: "visible", timeout: 10000 });
    await shot("ended");
    await view.locator("#complete").click();
    await view.locator("#results").waitFor({ state: "visible", timeout: 60000 });
    await shot("results");

    const texts = (selector) => view.locator(selector).evaluateAll((els) => els.map((e) => e.textContent));
    const result = {
      interviewId: started.structuredContent.interview_id,
      bridge: official ? "official" : args.bridge,
      extensions,
      types, ranked,
      interviewer: await texts("#log li.interviewer .text"),
      respondent: await texts("#log li.respondent .text"),
      summary: await view.locator("#summary").textContent(),
      themes: await texts("#themes li"),
      answers: await texts("#answers li"),
      status: await view.locator("#status").textContent(),
      theme: await view.locator("html").getAttribute("data-theme"),
      background: await view.locator("body").evaluate((b) => getComputedStyle(b).backgroundColor),
      viewCalls: await page.evaluate(() => window.viewCalls),
      hostLog: await page.evaluate(() => window.hostLog),
      modelContext: official ? record.modelContext : await page.evaluate(() => window.modelContext || []),
      consoleErrors: errors, external, shots,
    };
    process.stdout.write(JSON.stringify(result) + "\n");
  } finally {
    await browser.close();
  }
}

async function hostile(args) {
  const browser = await launch();
  try {
    const calls = [];
    const { page, errors, external, view } = await openHost(browser, fs.readFileSync(args.view, "utf-8"),
      { name: "light", variables: {} },
      handWritten(async (name) => { calls.push(name); return { content: [{ type: "text", text: "ok" }], isError: true }; }));
    await page.evaluate(() => { window.pwned = false; });
    const result = { content: [{ type: "text", text: "started" }],
                     structuredContent: { interview_id: "iv-hostile", initial_message: args.message } };
    await page.evaluate(([r]) => window.deliverResult({}, r), [result]);
    await view.locator("#log li.interviewer").first().waitFor({ timeout: 10000 });
    await page.waitForTimeout(500);  // give any injected handler the chance to run
    await page.screenshot({ path: path.join(args.out, "hostile.png"), fullPage: true });
    process.stdout.write(JSON.stringify({
      shown: await view.locator("#log li.interviewer .text").textContent(),
      imgs: await view.locator("img").count(),
      scripts: await view.locator("script").count(),
      pwned: await page.evaluate(() => window.pwned),
      hostLog: await page.evaluate(() => window.hostLog),
      calls, consoleErrors: errors, external,
    }) + "\n");
  } finally {
    await browser.close();
  }
}

// scenario "demo": `koji-mcp demo --app`'s own host page (args.url): start an interview there, answer the
// first question in the view, and report what the view showed.
async function demo(args) {
  const browser = await launch();
  try {
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    const page = await context.newPage();
    const errors = [];
    const external = [];
    page.on("console", (msg) => { if (msg.type() === "error") errors.push(msg.text()); });
    await page.route("**/*", (route) => {
      if (route.request().url().startsWith(args.url)) return route.continue();
      external.push(route.request().url());
      return route.abort();
    });
    await page.goto(args.url);
    await page.locator("#start:not([disabled])").waitFor({ timeout: 15000 });
    await page.locator("#name").fill("Robin Demo");
    await page.locator("#start").click();
    const view = page.frameLocator("#view");
    await view.locator("#log li.interviewer").first().waitFor({ timeout: 15000 });
    await view.locator("#widget textarea").fill(args.answer);
    await view.locator("#widget textarea").press("Enter");
    await view.locator("#log li.interviewer").nth(1).waitFor({ timeout: 15000 });
    await page.screenshot({ path: path.join(args.out, "demo.png"), fullPage: true });
    process.stdout.write(JSON.stringify({
      interviewer: await view.locator("#log li.interviewer .text").evaluateAll((els) => els.map((e) => e.textContent)),
      widget: await view.locator("#widget").getAttribute("data-type"),
      log: await page.locator("#log").textContent(),
      problem: await page.locator("#problem").textContent(),
      consoleErrors: errors, external,
    }) + "\n");
  } finally {
    await browser.close();
  }
}

const args = JSON.parse(process.argv[2]);
const scenarios = { interview, hostile, demo };
scenarios[args.scenario](args).then(() => process.exit(0), (err) => {
  process.stderr.write(`app_host.cjs: ${err.stack || err}\n`);
  process.exit(1);
});
