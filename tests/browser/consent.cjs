// Drives the built-in OAuth consent page in real headless Chromium (playwright-core, system chromium).
//
//   node tests/browser/consent.cjs '{"url": "<authorize URL>", "code": "...", "decision": "approve"}'
//
// Opens the /authorize URL like a person's browser would (following its 302 to the consent page), types
// `code` into the access-code field when given, clicks the `decision` button, and prints one JSON line:
// the consent page's title/heading text and client name, then where the browser ended up and with
// what status. Run by tests/browser/test_consent_chromium.py (make browser); exits 1 on any error.
const { chromium } = require("playwright-core");

async function main() {
  const args = JSON.parse(process.argv[2]);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--no-first-run"],
  });
  try {
    const context = await browser.newContext();  // a fresh profile per run
    const page = await context.newPage();
    const errors = [];
    page.on("console", (msg) => { if (msg.type() === "error") errors.push(msg.text()); });
    const first = await page.goto(args.url);
    const consent = {
      url: page.url(),
      status: first.status(),
      heading: (await page.locator("h1").innerText()).trim(),
      forms: await page.locator("form[method=post]").count(),
      passwordFields: await page.locator("input[type=password][name=access_code]").count(),
    };
    if (args.code !== undefined) await page.fill("input[name=access_code]", args.code);
    const [response] = await Promise.all([
      page.waitForNavigation({ waitUntil: "commit" }),
      page.click(`button[name=decision][value=${args.decision}]`),
    ]);
    const after = { url: page.url(), status: response ? response.status() : null };
    if (after.url.startsWith(args.base)) {
      after.error = (await page.locator(".error").count()) ? await page.locator(".error").innerText() : null;
    }
    process.stdout.write(JSON.stringify({ consent, after, consoleErrors: errors }) + "\n");
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  process.stderr.write(`consent.cjs: ${err.stack || err}\n`);
  process.exit(1);
});
