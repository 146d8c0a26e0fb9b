// Drives Debian's Chromium through the zbca portal as a clerk would, for
// integration/portal_test.go, which checks everything this script brings
// back. Usage:
//
//   node portal.mjs CONFIG.json
//
// CONFIG: {base, username, password, phase, shots, downloads, profile,
// csr}. Every page is saved as a screenshot SHOTS/<lang>-<name>.png; the
// visible text of each is printed with the results as one JSON object on
// stdout: {pages: {name: text}, files: {...}, password, errors: [...]}.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
const out = { pages: {}, files: {}, console: [] };

const context = await chromium.launchPersistentContext(cfg.profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync"],
  acceptDownloads: true,
  viewport: cfg.mobile ? { width: 390, height: 844 } : { width: 1280, height: 900 },
  locale: "zh-CN",
});
context.setDefaultTimeout(60_000);
const page = context.pages()[0] ?? (await context.newPage());
page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") out.console.push(m.text()); });
page.on("pageerror", (e) => out.console.push("pageerror: " + e.message));

// shot saves a screenshot and the page's visible text under name.
async function shot(name) {
  await page.screenshot({ path: join(cfg.shots, `${name}.png`), fullPage: true });
  out.pages[name] = await page.locator("body").innerText();
}

async function visit(path, lang) {
  await page.goto(cfg.base + path + (lang ? (path.includes("?") ? "&" : "?") + "lang=" + lang : ""));
}

async function login(password) {
  await page.fill("#username", cfg.username);
  await page.fill("#password", password);
  await Promise.all([page.waitForLoadState("load"), page.click("#login-submit")]);
}

async function save(selector, name) {
  const [dl] = await Promise.all([page.waitForEvent("download"), page.click(selector)]);
  const path = join(cfg.downloads, name);
  await dl.saveAs(path);
  out.files[name] = path;
}

// generate runs the browser key generation on the apply or reissue page.
async function generate(prefix, { keytype, ownPassword }) {
  if (keytype) await page.check(`input[name="keytype"][value="${keytype}"]`);
  if (ownPassword) {
    await page.check('input[name="pwmode"][value="own"]');
    await page.fill("#p12-password", ownPassword);
    await page.fill("#p12-password2", ownPassword);
  }
  await page.click("#gen-button");
  await page.waitForSelector("#gen-result:not([hidden])", { timeout: 120_000 }).catch(async (e) => {
    out.genStatus = await page.locator("#gen-status").innerText();
    throw e;
  });
  await shot(`${prefix}-done`);
  const shown = (await page.locator("#p12-password-shown").innerText()).trim();
  await save("#p12-link", `${prefix}.p12`);
  await save("#chain-link", `${prefix}-chain.pem`);
  return ownPassword || shown;
}

async function revoke(lang, choice, reason) {
  await visit("/revoke", lang);
  await shot(`${lang}-revoke`);
  await page.check(`input[name="serial"][value="${choice}"]`);
  await page.selectOption("#reason", reason);
  await Promise.all([page.waitForLoadState("load"), page.click("#revoke-next")]);
  await shot(`${lang}-revoke-confirm`);
  await Promise.all([page.waitForLoadState("load"), page.click("#revoke-confirm")]);
  await shot(`${lang}-revoke-done`);
}

try {
  if (cfg.phase === "main") {
    // The public pages and the login form, in both languages.
    for (const lang of ["zh", "en"]) {
      for (const [name, path] of [["home", "/"], ["download", "/download"], ["help", "/help"], ["notfound", "/no-such-page"]]) {
        await visit(path, lang);
        await shot(`${lang}-${name}`);
      }
      await page.context().clearCookies();
      await visit("/apply", lang);
      await shot(`${lang}-login`);
      await login("not-the-password");
      await shot(`${lang}-login-failed`);
    }
    // Apply in Chinese: ECDSA P-256, random password.
    await visit("/apply", "zh");
    await login(cfg.password);
    await shot("zh-apply");
    out.applyPassword = await generate("zh-apply", {});
    await visit("/certificates", "zh");
    await shot("zh-certificates");
    // Reissue in English: RSA-2048, a password of one's own.
    await visit("/reissue", "en");
    await shot("en-reissue");
    out.reissuePassword = await generate("en-reissue", { keytype: "RSA-2048", ownPassword: "My-own-Passw0rd!" });
    await visit("/certificates", "en");
    await shot("en-certificates");
    await visit("/apply", "en");
    await shot("en-apply");
    await visit("/reissue", "zh");
    await shot("zh-reissue");
    for (const lang of ["zh", "en"]) {
      await visit("/keygen", lang);
      await shot(`${lang}-keygen`);
    }
    // A pasted CSR, in Chinese.
    await visit("/apply", "zh");
    await page.click("#paste-csr summary");
    await page.fill("#csr", cfg.csr);
    await Promise.all([page.waitForLoadState("load"), page.click("#csr-submit")]);
    await shot("zh-issued");
    out.issuedSerial = (await page.locator("#issued-serial").innerText()).trim();
    await save("#pem-link", "zh-issued.pem");
    // Revoke it, in Chinese.
    await revoke("zh", out.issuedSerial, "keyCompromise");
  } else if (cfg.phase === "revoke-en") {
    await visit("/revoke", "en");
    await login(cfg.password);
    await revoke("en", "all", "cessationOfOperation");
    await visit("/certificates", "en");
    await shot("en-certificates-after");
    await visit("/apply", "en");
    await page.click("#paste-csr summary");
    await page.fill("#csr", cfg.csr);
    await Promise.all([page.waitForLoadState("load"), page.click("#csr-submit")]);
    await shot("en-issued");
  } else if (cfg.phase === "mobile") {
    for (const lang of ["zh", "en"]) {
      await visit("/", lang);
      await shot(`${lang}-mobile-home`);
    }
    await visit("/apply", "zh");
    await login(cfg.password);
    await shot("zh-mobile-apply");
    await visit("/certificates", "zh");
    await shot("zh-mobile-certificates");
  }
} catch (e) {
  out.error = String(e?.stack ?? e);
  await page.screenshot({ path: join(cfg.shots, `failure-${cfg.phase}.png`), fullPage: true }).catch(() => {});
}
await context.close();
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(out.error ? 1 : 0);
