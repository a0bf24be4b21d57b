// Headless Chromium test of the application directory page (settlement/web/directory), driven by
// settlement/tests/directory_browser.rs, which serves the real router on a loopback port with the
// fixture catalogue plus one illustrative row, and passes:
//   node directory.mjs PAGE_URL SCREENSHOT_DIR EXPECTED_TOTAL
// Checks what a person sees (visible text), on a desktop and a phone-sized viewport, and saves
// screenshots. Prints one "CHECK ok ..." line per check and "ALL CHECKS PASSED n" at the end;
// exits 1 on the first failure. Uses Debian's /usr/bin/chromium (never downloads a browser).
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [url, shots, expectedTotalText] = process.argv.slice(2);
const expectedTotal = Number(expectedTotalText);
if (!url || !shots || !Number.isInteger(expectedTotal)) {
  console.error("usage: node directory.mjs PAGE_URL SCREENSHOT_DIR EXPECTED_TOTAL");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

// The flags the machine notes give for a root, offline machine (rust-svc.md "Known to work").
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const TIMEOUT_MS = 15_000;
let checks = 0;

function check(condition, what, detail) {
  if (!condition) {
    throw new Error(`CHECK FAILED ${what}${detail === undefined ? "" : `: ${JSON.stringify(detail)}`}`);
  }
  checks += 1;
  console.log(`CHECK ok ${what}`);
}

const statusText = (page) => page.locator("#status").innerText();
const names = (page) => page.locator("#results li.use h2").allInnerTexts();

async function waitStatus(page, pattern) {
  await page.waitForFunction(
    (source) => new RegExp(source).test(document.getElementById("status").textContent),
    pattern.source,
    { timeout: TIMEOUT_MS },
  );
  return statusText(page);
}

async function desktop(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "zh-CN" });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(url, { timeout: TIMEOUT_MS });
  check((await page.title()) === "社会保障卡应用目录", "title");

  const first = await waitStatus(page, /^共 \d+ 项/);
  check(first.startsWith(`共 ${expectedTotal} 项，已显示 20 项`), "first page: total and 20 shown", first);
  check((await page.locator("#results li.use").count()) === 20, "20 cards on the first page");
  check(await page.locator("#more").isVisible(), "load-more button visible");
  check(/第 \d+ 版/.test(await page.locator("#version").innerText()), "version shown in footer");

  await page.click("#more");
  await waitStatus(page, new RegExp(`已显示 ${Math.min(40, expectedTotal)} 项`));
  check((await page.locator("#results li.use").count()) === Math.min(40, expectedTotal), "second page appended");

  // A multi-character Chinese word that is part of longer names.
  await page.fill("#q", "失业登记");
  await page.press("#q", "Enter");
  const searched = await waitStatus(page, /^共 2 项/);
  check(searched.startsWith("共 2 项"), "search 失业登记 finds 2", searched);
  const found = await names(page);
  check(found.some((n) => n.includes("就业失业登记")) && found.some((n) => n.includes("网上失业登记")),
    "search shows 就业失业登记 and 网上失业登记", found);
  check(!(await page.locator("#more").isVisible()), "no load-more on a one-page result");
  check(new URL(page.url()).searchParams.get("q") === "失业登记", "query kept in the address bar");
  await page.screenshot({ path: join(shots, "directory-desktop-search.png"), fullPage: true });

  // Filters: category 公共服务 and region 天津; counts come from the option labels (the facets).
  await page.fill("#q", "");
  await page.selectOption("#category", "公共服务");
  const optionText = await page.locator('#category option[value="公共服务"]').innerText();
  const facetCount = Number(/（(\d+)）/.exec(optionText)[1]);
  const filtered = await waitStatus(page, new RegExp(`^共 ${facetCount} 项`));
  check(filtered.startsWith(`共 ${facetCount} 项`), "category filter total equals its facet count", filtered);
  const categories = await page.locator("#results li.use dl dd:nth-of-type(1)").allInnerTexts();
  check(categories.length === facetCount && categories.every((c) => c.trim() === "公共服务"),
    "every card shown is 公共服务", categories);
  const badges = await page.locator("#results li.use .badge").allInnerTexts();
  check(badges.length === 1 && badges[0] === "示例", "the illustrative row carries the 示例 label", badges);

  await page.selectOption("#region", "120000");
  await page.selectOption("#mode", "金融支付");
  const narrowed = await waitStatus(page, /^共 \d+ 项|^没有找到/);
  const narrowedNames = await names(page);
  check(narrowed.startsWith("共 1 项") && narrowedNames[0].includes("交通出行"),
    "公共服务 + 天津 + 金融支付 → 交通出行", { narrowed, narrowedNames });
  await page.screenshot({ path: join(shots, "directory-desktop-filters.png"), fullPage: true });

  await page.click("#reset");
  await waitStatus(page, new RegExp(`^共 ${expectedTotal} 项`));
  check(await page.locator("#category").inputValue() === "", "reset clears the filters");

  await page.fill("#q", "不存在的用途名称");
  await page.press("#q", "Enter");
  await waitStatus(page, /^没有找到/);
  check((await page.locator("#results li.use").count()) === 0, "no result for an absent word");
  check(errors.length === 0, "no script errors", errors);
  await context.close();
}

async function phone(browser) {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
    locale: "zh-CN",
  });
  const page = await context.newPage();
  await page.goto(`${url}?q=${encodeURIComponent("就医")}`, { timeout: TIMEOUT_MS });
  const status = await waitStatus(page, /^共 \d+ 项/);
  check((await page.locator("#q").inputValue()) === "就医", "phone: query restored from the address");
  const found = await names(page);
  check(found.length >= 2 && found.some((n) => n.includes("持卡就医结算")), "phone: search 就医", { status, found });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, "phone: no horizontal scrolling", overflow);
  const box = await page.locator("#results li.use").first().boundingBox();
  check(box !== null && box.width <= 390 && box.width >= 300, "phone: cards span the screen", box);
  const searchBox = await page.locator("#q").boundingBox();
  check(searchBox !== null && searchBox.height >= 36, "phone: search box is finger-sized", searchBox);
  await page.screenshot({ path: join(shots, "directory-phone.png"), fullPage: false });
  await context.close();
}

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: FLAGS, timeout: 30_000 });
try {
  await desktop(browser);
  await phone(browser);
  console.log(`ALL CHECKS PASSED ${checks}`);
} catch (error) {
  console.error(String(error && error.stack ? error.stack : error));
  process.exitCode = 1;
} finally {
  await browser.close();
}
