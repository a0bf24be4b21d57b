// The directory page's logic: reads the public API only (/api/directory/v1), builds the filter
// lists from /facets, lists and searches /uses page by page. Text from the API is always put in
// with textContent, never as HTML.
"use strict";

const API = "/api/directory/v1";
const PAGE_SIZE = 20;
const $ = (id) => document.getElementById(id);
const FILTERS = ["category", "mode", "channel", "region"];
let nextCursor = null;
let requestSerial = 0;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function chips(values) {
  const dd = el("dd");
  if (values.length === 0) {
    dd.appendChild(el("span", "note", "来源未说明"));
  }
  for (const value of values) dd.appendChild(el("span", "chip", value));
  return dd;
}

function renderUse(use) {
  const item = el("li", "use");
  item.dataset.number = use.number;
  const title = el("h2");
  title.appendChild(el("span", "number", use.number));
  title.appendChild(document.createTextNode(use.name));
  if (use.status === "illustrative") title.appendChild(el("span", "badge", "示例"));
  item.appendChild(title);
  const dl = el("dl");
  dl.appendChild(el("dt", "", "类别"));
  dl.appendChild(chips([use.category]));
  dl.appendChild(el("dt", "", "用卡方式"));
  dl.appendChild(chips(use.modes));
  dl.appendChild(el("dt", "", "渠道"));
  dl.appendChild(chips(use.channels.map((c) => c.label)));
  dl.appendChild(el("dt", "", "地区"));
  dl.appendChild(chips(use.regions.map((r) => r.label)));
  item.appendChild(dl);
  if (use.source_url) {
    const source = el("p", "source", "来源：");
    const link = el("a", "", use.source_url);
    link.href = use.source_url;
    link.rel = "noopener noreferrer nofollow";
    link.target = "_blank";
    source.appendChild(link);
    item.appendChild(source);
  }
  if (use.note) item.appendChild(el("p", "note", use.note));
  return item;
}

function query(cursor) {
  const params = new URLSearchParams();
  const q = $("q").value.trim();
  if (q) params.set("q", q);
  for (const name of FILTERS) {
    const value = $(name).value;
    if (value) params.set(name, value);
  }
  params.set("limit", String(PAGE_SIZE));
  if (cursor) params.set("cursor", cursor);
  return params;
}

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) {
    const error = new Error(body.message || response.statusText);
    error.code = body.code;
    throw error;
  }
  return body;
}

async function load(append) {
  const serial = ++requestSerial;
  const params = query(append ? nextCursor : null);
  $("status").textContent = "正在查询…";
  try {
    const page = await getJson(`${API}/uses?${params}`);
    if (serial !== requestSerial) return;
    const list = $("results");
    if (!append) list.replaceChildren();
    for (const use of page.items) list.appendChild(renderUse(use));
    nextCursor = page.next_cursor || null;
    $("more").hidden = !nextCursor;
    $("status").textContent = page.total === 0
      ? "没有找到符合条件的应用。"
      : `共 ${page.total} 项，已显示 ${list.children.length} 项`;
    if (!append) {
      const shown = new URLSearchParams(params);
      shown.delete("limit");
      history.replaceState(null, "", shown.toString() ? `?${shown}` : location.pathname);
    }
  } catch (error) {
    if (serial !== requestSerial) return;
    if (error.code === "cursor_stale") return load(false);
    $("status").textContent = `查询失败：${error.message}`;
  }
}

function fillSelect(id, values) {
  const select = $(id);
  for (const value of values) {
    const option = el("option", "", `${value.label}（${value.count}）`);
    option.value = value.code;
    select.appendChild(option);
  }
}

async function start() {
  const wanted = new URLSearchParams(location.search);
  try {
    const facets = await getJson(`${API}/facets`);
    fillSelect("category", facets.categories);
    fillSelect("mode", facets.modes);
    fillSelect("channel", facets.channels);
    fillSelect("region", facets.regions);
    $("version").textContent = facets.version
      ? `目录版本：第 ${facets.version} 版，更新于 ${facets.updated_at.replace("T", " ").slice(0, 19)} (UTC)，共 ${facets.total} 项`
      : "目录版本：尚未导入";
  } catch (error) {
    $("status").textContent = `加载失败：${error.message}`;
    return;
  }
  $("q").value = wanted.get("q") || "";
  for (const name of FILTERS) $(name).value = wanted.get(name) || "";
  $("search").addEventListener("submit", (event) => { event.preventDefault(); load(false); });
  let timer = null;
  $("q").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => load(false), 300); });
  for (const name of FILTERS) $(name).addEventListener("change", () => load(false));
  $("reset").addEventListener("click", () => {
    for (const name of FILTERS) $(name).value = "";
    $("q").value = "";
    load(false);
  });
  $("more").addEventListener("click", () => load(true));
  await load(false);
}

start();
