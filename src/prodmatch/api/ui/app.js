// prodmatch UI: one page over the /v1 API. No framework, no external assets (it must work offline).
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = { photo: null, facetKeys: [], queryId: null };
const KEY_STORAGE = "prodmatch-api-key";  // this tab only: closed tab, forgotten key

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(path, options = {}) {
  const key = sessionStorage.getItem(KEY_STORAGE);
  const headers = { ...(options.headers || {}), ...(key ? { Authorization: `Bearer ${key}` } : {}) };
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401 || response.status === 403) $("#key-form").hidden = false;
  if (!response.ok) {
    const message = body.error ? body.error.message : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return body;
}

function saveKey(event) {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, $("#key").value.trim());
  $("#key").value = "";
  $("#key-form").hidden = true;
  showStatus("", "");
  loadCatalog();
}

function showStatus(kind, message) {
  const status = $("#status");
  status.hidden = !message;
  status.className = `status ${kind}`;
  status.textContent = message || "";
}

async function loadCatalog() {
  try {
    const ready = await api("/ready");
    $("#catalog-info").textContent =
      `${ready.parts.metadata.products} products · model ${ready.parts.model.name}`;
    const { facets } = await api("/v1/facets");
    state.facetKeys = facets.map((facet) => facet.key);
    const fieldset = $("#filters");
    for (const facet of facets) {
      const select = element("select", { name: facet.key, "data-facet": facet.key },
        element("option", { value: "" }, "any"));
      for (const { value, count } of facet.values) {
        select.append(element("option", { value }, `${value} (${count})`));
      }
      fieldset.append(element("label", {}, facet.key, select));
    }
  } catch (error) {
    showStatus("error", `Cannot reach the catalog: ${error.message}`);
  }
}

function setPhoto(file) {
  if (!file || !file.type.startsWith("image/")) {
    showStatus("error", "That is not an image file.");
    return;
  }
  state.photo = file;
  const preview = $("#preview");
  preview.onerror = () => { preview.hidden = true; };  // the browser cannot show it either: no broken icon
  preview.src = URL.createObjectURL(file);
  preview.alt = `Query photo: ${file.name || "pasted image"}`;
  preview.hidden = false;
  $("#drop-hint").textContent = `${file.name || "pasted image"} · drop or paste another to replace`;
  search();
}

function filters() {
  return [...document.querySelectorAll("[data-facet]")]
    .filter((select) => select.value)
    .map((select) => `${select.dataset.facet}=${select.value}`);
}

async function search(event) {
  if (event) event.preventDefault();
  const text = $("#text").value.trim();
  if (!state.photo && !text) {
    showStatus("error", "Add a photo or type a description first.");
    return;
  }
  const chosen = filters();
  const query = new URLSearchParams({ top_k: "12" });
  chosen.forEach((filter) => query.append("filter", filter));
  let request;
  if (state.photo) {
    const form = new FormData();
    form.append("image", state.photo);
    if (text) form.append("text", text);
    request = api(`/v1/match${text ? "" : "/image"}?${query}`, { method: "POST", body: form });
  } else {
    request = api("/v1/match/text", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text, top_k: 12, filters: chosen }),
    });
  }
  showStatus("loading", "Searching…");
  $("#go").disabled = true;
  try {
    render(await request);
    showStatus("", "");
  } catch (error) {
    render(null);
    showStatus("error", error.message);
  } finally {
    $("#go").disabled = false;
  }
}

// The evidence the decision rests on, in words: keypoints of the photo that the top product's photo shares.
function why(decision) {
  const inliers = decision.evidence && decision.evidence.inliers;
  return inliers ? `, ${inliers} matching keypoints` : "";
}

// Frame the region of the query photo that matched (body.box, relative 0..1), or hide the frame.
// CSSOM properties, not a style attribute: the page's CSP allows no inline style.
function drawRegion(box) {
  const region = $("#region");
  region.hidden = !box || $("#preview").hidden;
  if (region.hidden) return;
  const [x0, y0, x1, y1] = box;
  region.style.left = `${x0 * 100}%`;
  region.style.top = `${y0 * 100}%`;
  region.style.width = `${(x1 - x0) * 100}%`;
  region.style.height = `${(y1 - y0) * 100}%`;
}

function render(body) {
  drawRegion(body && body.box);
  const results = $("#results");
  results.replaceChildren();
  const decision = $("#decision");
  const keywords = $("#keywords");
  decision.hidden = keywords.hidden = !body;
  if (!body) return;
  state.queryId = body.query_id;
  if (body.decision) {
    const { is_match: isMatch, confidence } = body.decision;
    decision.className = `decision ${isMatch ? "yes" : "no"}`;
    decision.textContent = isMatch
      ? `Match: “${body.matches[0].product.name}” (confidence ${(confidence * 100).toFixed(0)}%${why(body.decision)})`
      : `No confident match in the catalog (best confidence ${(confidence * 100).toFixed(0)}%${why(body.decision)}); closest products:`;
  } else {
    decision.className = "decision no";
    decision.textContent = "Closest products (no match threshold calibrated for this catalog yet)";
  }
  keywords.replaceChildren(...body.keywords.map((k) =>
    element("li", { title: `${Math.round(k.share * 100)}% of results` }, `${k.key}: ${k.value}`)));
  keywords.hidden = body.keywords.length === 0;
  if (body.matches.length === 0) showStatus("", "No product passes these filters.");
  body.matches.forEach((match, rank) => results.append(card(match, rank, body)));
  $("#catalog-info").dataset.took = `${body.took_ms.toFixed(0)} ms`;
}

function card(match, rank, body) {
  const name = match.product.name || match.id;
  const facts = state.facetKeys.map((key) => match.product[key]).filter(Boolean).slice(0, 3).join(" · ");
  const percent = Math.max(0, Math.min(100, match.score * 100));
  const isTop = rank === 0 && body.decision && body.decision.is_match;
  const open = () => showDetail(match);
  return element("li", {},
    element("article", {
      class: `card${isTop ? " top" : ""}`, tabindex: "0", "aria-label": `${rank + 1}. ${name}, score ${match.score.toFixed(3)}`,
      onclick: open, onkeydown: (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); open(); } },
    },
      element("img", { src: `/v1/products/${encodeURIComponent(match.id)}/thumbnail`, alt: name, loading: "lazy" }),
      element("div", { class: "body" },
        element("div", { class: "name" }, name),
        element("div", { class: "meta" }, facts || `id ${match.id}`),
        element("div", { class: "score" },
          element("div", { class: "track", role: "meter", "aria-valuenow": match.score.toFixed(3),
                           "aria-valuemin": "0", "aria-valuemax": "1", "aria-label": "score" },
            fill(percent)),
          element("span", {}, match.score.toFixed(3))),
        verdictButtons(match, name))));
}

function fill(percent) {
  const bar = element("div", { class: "fill" });
  bar.style.width = `${percent}%`;  // set through the DOM: the page's CSP allows no inline style attributes
  return bar;
}

function verdictButtons(match, name) {
  const row = element("div", { class: "verdict", role: "group", "aria-label": `Is this ${name}?` });
  const send = (isMatch) => async (event) => {
    event.stopPropagation();  // the card itself opens the detail view
    try {
      const outcome = await api("/v1/feedback", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ query_id: state.queryId, product_id: match.id, is_match: isMatch }),
      });
      row.replaceChildren(element("span", { class: "muted" }, isMatch
        ? `Thanks: confirmed${outcome.learned_photo ? ", photo learned" : ""}` : "Thanks: noted as not this one"));
    } catch (error) {
      showStatus("error", `Feedback not recorded: ${error.message}`);
    }
  };
  row.append(
    element("button", { type: "button", class: "yes", onclick: send(true), onkeydown: (e) => e.stopPropagation() },
      "This is it"),
    element("button", { type: "button", class: "no", onclick: send(false), onkeydown: (e) => e.stopPropagation() },
      "Not this one"));
  return row;
}

function showDetail(match) {
  const dialog = $("#detail");
  $("#detail-title").textContent = match.product.name || match.id;
  $("#detail-score").textContent = `id ${match.id} · score ${match.score.toFixed(4)}`;
  const image = $("#detail-image");
  image.src = `/v1/products/${encodeURIComponent(match.id)}/image`;
  image.alt = match.product.name || match.id;
  const fields = $("#detail-fields");
  fields.replaceChildren();
  for (const [key, value] of Object.entries(match.product)) {
    if (key === "images" || key === "name" || key === "sources" || value === null) continue;
    fields.append(element("dt", {}, key), element("dd", {}, String(value)));
  }
  const source = sourceLink((match.product.sources || [])[0]);
  if (source) fields.append(element("dt", {}, "photo from"), element("dd", {}, source));
  dialog.showModal();
}

// Source attribution: where the catalog's feed said the shown photo came from (its domain, linked). Only http(s)
// links are made; the stored URL has its query values and credentials redacted already.
function sourceLink(url) {
  if (!url) return null;
  let parsed;
  try { parsed = new URL(url); } catch { return null; }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return null;
  return element("a", { href: parsed.href, rel: "noopener noreferrer nofollow", target: "_blank",
    class: "source", title: parsed.href }, parsed.hostname);
}

function clear() {
  state.photo = null;
  $("#preview").hidden = true;
  $("#region").hidden = true;
  $("#drop-hint").innerHTML = "Drop a product photo, paste one, or <u>choose a file</u>";
  $("#text").value = "";
  document.querySelectorAll("[data-facet]").forEach((select) => { select.value = ""; });
  render(null);
  showStatus("", "");
  $("#results").replaceChildren();
}

function wire() {
  const drop = $("#drop");
  const file = $("#file");
  drop.addEventListener("click", () => file.click());
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); file.click(); }
  });
  file.addEventListener("change", () => setPhoto(file.files[0]));
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    setPhoto(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    const item = [...event.clipboardData.items].find((entry) => entry.type.startsWith("image/"));
    if (item) setPhoto(item.getAsFile());
  });
  $("#search").addEventListener("submit", search);
  $("#key-form").addEventListener("submit", saveKey);
  $("#clear").addEventListener("click", clear);
  $("#filters").addEventListener("change", () => { if (state.photo || $("#text").value.trim()) search(); });
}

wire();
loadCatalog();
