// Headless Chromium test of the operators' console (settlement/src/console), driven by
// settlement/tests/console_browser.rs, which serves the real routers (national interface,
// identity, console) on a loopback port over a database holding one settlement and one card
// sign-in, with three accounts, and passes:
//   node console.mjs BASE_URL SCREENSHOT_DIR EXPECTED_JSON
// EXPECTED_JSON: {"password", "setl_id", "certno", "name", "reason"}.
// Checks what each role sees (visible text), refusals without login and above one's role, and
// saves screenshots. Prints one "CHECK ok ..." per check and "ALL CHECKS PASSED n"; exits 1 on
// the first failure. Uses Debian's /usr/bin/chromium (never downloads a browser).
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [base, shots, expectedText] = process.argv.slice(2);
if (!base || !shots || !expectedText) {
  console.error("usage: node console.mjs BASE_URL SCREENSHOT_DIR EXPECTED_JSON");
  process.exit(2);
}
const expected = JSON.parse(expectedText);
mkdirSync(shots, { recursive: true });

const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const TIMEOUT_MS = 20_000;
let checks = 0;

function check(condition, what, detail) {
  if (!condition) {
    throw new Error(`CHECK FAILED ${what}${detail === undefined ? "" : `: ${JSON.stringify(detail)}`}`);
  }
  checks += 1;
  console.log(`CHECK ok ${what}`);
}

const text = (page) => page.locator("main").innerText();

async function logIn(page, user, password) {
  await page.goto(`${base}/console/login`, { timeout: TIMEOUT_MS });
  await page.fill("input[name=username]", user);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForLoadState("load"), page.click("#login button")]);
}

async function navLinks(page) {
  return page.locator("header nav a").allInnerTexts();
}

async function anonymous(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "zh-CN" });
  const page = await context.newPage();
  const response = await page.goto(`${base}/console/`, { timeout: TIMEOUT_MS });
  check(new URL(page.url()).pathname === "/console/login", "without login the dashboard sends to the login page", page.url());
  check(response.status() === 200 && (await page.locator("#login").isVisible()), "login form shown");
  const operations = await page.goto(`${base}/console/operations`, { timeout: TIMEOUT_MS });
  check(new URL(page.url()).pathname === "/console/login", "operations page refused without login");
  check(!(await text(page)).includes(expected.setl_id), "no settlement shown without login");
  await page.screenshot({ path: join(shots, "console-login.png"), fullPage: true });

  await logIn(page, "op1", "not the password");
  check((await page.locator("#error").innerText()).includes("wrong name or password"), "wrong password refused");
  check(new URL(page.url()).pathname === "/console/login", "still on the login page");
  await context.close();
  return operations;
}

async function viewer(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "zh-CN" });
  const page = await context.newPage();
  await logIn(page, "view1", expected.password);
  check(new URL(page.url()).pathname === "/console/", "viewer lands on the dashboard");
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "ssc_console");
  check(session && session.httpOnly && session.secure && session.sameSite === "Strict",
    "session cookie is HttpOnly, Secure, SameSite=Strict", session);
  const body = await text(page);
  check(body.includes(expected.setl_id), "viewer sees the recent settlement", expected.setl_id);
  check(await page.locator("#settlements").isVisible(), "settlements table shown");
  check(await page.locator("#payments, p#payments").count() === 1, "payments panel shown");
  check(await page.locator("#positions, p#positions").count() === 1, "inter-region positions panel shown");
  const bars = await page.locator("svg.chart rect.bar").count();
  check(bars >= 2, "charts drawn (settlements per day, uses per category)", bars);
  check(await page.locator("#trail").isVisible(), "card-use aggregates shown");
  const trail = await page.locator("#trail").innerText();
  check(trail.includes("signin") && trail.includes("settlement"), "aggregates count sign-ins and settlements", trail);
  check(!body.includes(expected.name) && !body.includes(expected.certno), "no name or ID number on the dashboard");
  const links = await navLinks(page);
  check(links.length === 1 && links[0] === "Dashboard", "viewer's navigation has only the dashboard", links);
  await page.screenshot({ path: join(shots, "console-viewer-dashboard.png"), fullPage: true });

  const refused = await page.goto(`${base}/console/holders`, { timeout: TIMEOUT_MS });
  check(refused.status() === 403 && (await text(page)).includes("needs the role operator"),
    "viewer refused the holders page", refused.status());
  await page.screenshot({ path: join(shots, "console-viewer-refused.png"), fullPage: true });
  await context.close();
}

async function operator(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "zh-CN" });
  const page = await context.newPage();
  await logIn(page, "op1", expected.password);
  const links = await navLinks(page);
  check(links.includes("Holders") && !links.includes("Accounts"), "operator's navigation: holders, no accounts", links);
  await page.goto(`${base}/console/operations`, { timeout: TIMEOUT_MS });
  check((await page.locator("#ledger-check").innerText()).includes("0 mismatches"), "reconciliation: ledger consistent");
  check(await page.locator("#reversals, p#reversals").count() === 1, "reversals waiting panel shown");
  await page.screenshot({ path: join(shots, "console-operator-operations.png"), fullPage: true });

  await page.goto(`${base}/console/holders`, { timeout: TIMEOUT_MS });
  await page.fill("#lookup input[name=certno]", expected.certno);
  await page.fill("#lookup input[name=reason]", expected.reason);
  await Promise.all([page.waitForLoadState("load"), page.click("#lookup button")]);
  check((await page.locator("#holder-name").innerText()) === expected.name, "audited lookup shows the holder's name");
  const trail = await page.locator("#holder-trail").innerText();
  check(trail.includes("signin"), "the holder's trail is shown with the reason given", trail);
  check((await text(page)).includes("logged with your reason"), "the operator is told the read is logged");
  await page.screenshot({ path: join(shots, "console-operator-holder.png"), fullPage: true });

  const admin = await page.goto(`${base}/console/admin`, { timeout: TIMEOUT_MS });
  check(admin.status() === 403, "operator refused the accounts page", admin.status());
  await context.close();
}

async function admin(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "zh-CN" });
  const page = await context.newPage();
  await logIn(page, "admin", expected.password);
  await page.goto(`${base}/console/admin`, { timeout: TIMEOUT_MS });
  const users = await page.locator("#users").innerText();
  check(["admin", "op1", "view1"].every((u) => users.includes(u)), "accounts listed", users);
  check((await page.locator("#audit").innerText()).includes("holder_lookup"), "console log shows the lookup");
  await page.fill("#new-user input[name=username]", "view2");
  await page.selectOption("#new-user select[name=role]", "viewer");
  await page.fill("#new-user input[name=password]", "another long passphrase");
  await Promise.all([page.waitForLoadState("load"), page.click("#new-user button")]);
  check((await page.locator("#users").innerText()).includes("view2"), "admin creates an account");
  await page.screenshot({ path: join(shots, "console-admin.png"), fullPage: true });

  await Promise.all([page.waitForLoadState("load"), page.click("header form button")]);
  check(new URL(page.url()).pathname === "/console/login", "log out returns to the login page");
  await page.goto(`${base}/console/`, { timeout: TIMEOUT_MS });
  check(new URL(page.url()).pathname === "/console/login", "after log out the dashboard needs a login again");
  await context.close();
}

async function phone(browser) {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
    locale: "zh-CN",
  });
  const page = await context.newPage();
  await logIn(page, "view1", expected.password);
  check(await page.locator("svg.chart").first().isVisible(), "phone: chart visible");
  const width = (await page.locator("svg.chart").first().boundingBox()).width;
  check(width <= 390, "phone: chart fits the screen", width);
  await page.screenshot({ path: join(shots, "console-phone.png"), fullPage: false });
  await context.close();
}

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: FLAGS, timeout: 30_000 });
try {
  await anonymous(browser);
  await viewer(browser);
  await operator(browser);
  await admin(browser);
  await phone(browser);
  console.log(`ALL CHECKS PASSED ${checks}`);
} catch (error) {
  console.error(String(error && error.stack ? error.stack : error));
  process.exitCode = 1;
} finally {
  await browser.close();
}
