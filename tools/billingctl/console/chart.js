// The funnel chart: sends per 2-hour slot stacked by channel, and the deliveries by state
// as one bar, drawn as an accessible inline SVG with DOM calls (no markup strings), with
// the same figures in a table below it.

import { t, tOr, count, language } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";

/// The states in the order of a delivery's life.
export const STATES = ["READY", "HELD", "QUEUED", "SENDING", "SENT_EMAIL", "SENT_SMS", "UNCONFIRMED", "DEAD"];
const CHANNELS = ["email", "sms"];

const WIDTH = 960;
const COLUMNS_HEIGHT = 220;
const TOP = 16;
const LEFT = 56;
const RIGHT = 12;
const AXIS = 40;
const BAR_TOP = TOP + COLUMNS_HEIGHT + AXIS + 24;
const BAR_HEIGHT = 28;
const HEIGHT = BAR_TOP + BAR_HEIGHT + 8;

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

const slotFormats = new Map();
/// A slot's start in Korea time, short: "12. 15. 09시" / "12/15, 09".
export function slotLabel(iso, { withDay = true } = {}) {
  const key = `${language()}|${withDay}`;
  if (!slotFormats.has(key)) {
    slotFormats.set(
      key,
      new Intl.DateTimeFormat(language() === "ko" ? "ko-KR" : "en-US", {
        timeZone: "Asia/Seoul",
        month: withDay ? "2-digit" : undefined,
        day: withDay ? "2-digit" : undefined,
        hour: "2-digit",
        minute: "2-digit",
        hourCycle: "h23",
      }),
    );
  }
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : slotFormats.get(key).format(d);
}

/// The Korea-time day of an instant (YYYY-MM-DD), to label a day's first slot only.
function seoulDay(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return new Date(d.getTime() + 9 * 3600 * 1000).toISOString().slice(0, 10);
}

/// A round step for an axis reaching `max`: 1, 2 or 5 times a power of ten.
function niceStep(max, ticks = 4) {
  const raw = Math.max(1, max / ticks);
  const pow = 10 ** Math.floor(Math.log10(raw));
  const f = raw / pow;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * pow;
}

/// Draws the chart into `svg` (an existing `<svg>` element; its children are replaced).
/// `bySlot`: [{slot_start, email, sms}], `byState`: {STATE: n}.
export function drawFunnel(svg, bySlot, byState) {
  const slots = Array.isArray(bySlot) ? bySlot : [];
  const sent = slots.reduce((n, s) => n + (s.email || 0) + (s.sms || 0), 0);
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-labelledby", "funnel-chart-title funnel-chart-desc");
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
  const children = [
    el("title", { id: "funnel-chart-title" }, t("funnel.chartTitle")),
    el("desc", { id: "funnel-chart-desc" }, t("funnel.chartDesc", { slots: count(slots.length), sent: count(sent) })),
  ];

  // Columns: one per slot with sends, email below SMS.
  const plotWidth = WIDTH - LEFT - RIGHT;
  const max = Math.max(1, ...slots.map((s) => (s.email || 0) + (s.sms || 0)));
  const step = niceStep(max);
  const top = Math.ceil(max / step) * step;
  const y = (v) => TOP + COLUMNS_HEIGHT - (v / top) * COLUMNS_HEIGHT;
  const axis = el("g", { class: "axis", "aria-hidden": "true" });
  for (let v = 0; v <= top; v += step) {
    axis.append(el("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: y(v), y2: y(v), class: v === 0 ? "baseline" : "grid" }));
    axis.append(el("text", { x: LEFT - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, count(v)));
  }
  children.push(axis);

  if (slots.length === 0) {
    children.push(el("text", { x: LEFT + plotWidth / 2, y: TOP + COLUMNS_HEIGHT / 2, "text-anchor": "middle", class: "empty" }, t("funnel.noSends")));
  } else {
    const band = plotWidth / slots.length;
    const barWidth = Math.max(1, Math.min(40, band * 0.8));
    const columns = el("g", { class: "columns" });
    // Label every slot while they fit, else a day's first slot only.
    const labelAll = band >= 44;
    let lastDay = null;
    let lastLabelX = -Infinity;
    slots.forEach((s, i) => {
      const x = LEFT + i * band + (band - barWidth) / 2;
      let base = 0;
      const g = el("g", { class: "slot" });
      for (const ch of CHANNELS) {
        const v = s[ch] || 0;
        if (v > 0) {
          const rect = el("rect", { x, y: y(base + v), width: barWidth, height: y(base) - y(base + v), class: `c-${ch}` });
          rect.append(el("title", {}, `${slotLabel(s.slot_start)} · ${t(`funnel.${ch}`)} ${count(v)}`));
          g.append(rect);
        }
        base += v;
      }
      columns.append(g);
      const day = seoulDay(s.slot_start);
      const cx = x + barWidth / 2;
      if ((labelAll || day !== lastDay) && cx - lastLabelX >= 44) {
        columns.append(el("text", { x: cx, y: TOP + COLUMNS_HEIGHT + 16, "text-anchor": "middle", class: "tick", "aria-hidden": "true" },
          slotLabel(s.slot_start, { withDay: day !== lastDay || labelAll }).split(" ").slice(-1)[0]));
        if (day !== lastDay) {
          columns.append(el("text", { x: cx, y: TOP + COLUMNS_HEIGHT + 32, "text-anchor": "middle", class: "tick day", "aria-hidden": "true" }, day.slice(5)));
        }
        lastLabelX = cx;
      }
      lastDay = day;
    });
    children.push(columns);
  }

  // Channel legend, top right.
  const legend = el("g", { class: "legend", "aria-hidden": "true" });
  CHANNELS.forEach((ch, i) => {
    const x = WIDTH - RIGHT - 180 + i * 90;
    legend.append(el("rect", { x, y: 2, width: 12, height: 12, class: `c-${ch}` }));
    legend.append(el("text", { x: x + 16, y: 12, class: "tick" }, t(`funnel.${ch}`)));
  });
  children.push(legend);

  // Deliveries by state: one bar, each state its share.
  const states = byState || {};
  const total = STATES.reduce((n, s) => n + (states[s] || 0), 0);
  children.push(el("text", { x: LEFT, y: BAR_TOP - 8, class: "label" }, `${t("funnel.byState")} · ${t("funnel.deliveries", { n: count(total) })}`));
  const bar = el("g", { class: "states" });
  let x = LEFT;
  for (const s of STATES) {
    const v = states[s] || 0;
    if (v === 0 || total === 0) continue;
    const w = (v / total) * plotWidth;
    const rect = el("rect", { x, y: BAR_TOP, width: Math.max(w, 1), height: BAR_HEIGHT, class: `s-${s}` });
    rect.append(el("title", {}, `${tOr(`state.${s}`, s)} (${s}) ${count(v)}`));
    bar.append(rect);
    if (w > 70) {
      bar.append(el("text", { x: x + 6, y: BAR_TOP + 19, class: "on-bar", "aria-hidden": "true" }, count(v)));
    }
    x += w;
  }
  if (total === 0) {
    bar.append(el("rect", { x: LEFT, y: BAR_TOP, width: plotWidth, height: BAR_HEIGHT, class: "empty-bar" }));
  }
  children.push(bar);
  svg.replaceChildren(...children);
}

/// The table alternative: one row per slot (email, SMS, total), and a total row.
export function fillSlotTable(table, bySlot) {
  const slots = Array.isArray(bySlot) ? bySlot : [];
  const caption = document.createElement("caption");
  caption.textContent = t("funnel.tableCaption");
  const head = document.createElement("thead");
  const hr = head.insertRow();
  for (const key of ["funnel.slot", "funnel.email", "funnel.sms", "funnel.total"]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = t(key);
    hr.append(th);
  }
  const body = document.createElement("tbody");
  let email = 0;
  let sms = 0;
  for (const s of slots) {
    const row = body.insertRow();
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = slotLabel(s.slot_start);
    row.append(th);
    for (const v of [s.email || 0, s.sms || 0, (s.email || 0) + (s.sms || 0)]) {
      const td = row.insertCell();
      td.className = "num";
      td.textContent = count(v);
    }
    email += s.email || 0;
    sms += s.sms || 0;
  }
  const foot = document.createElement("tfoot");
  const fr = foot.insertRow();
  const fth = document.createElement("th");
  fth.scope = "row";
  fth.textContent = t("funnel.total");
  fr.append(fth);
  for (const v of [email, sms, email + sms]) {
    const td = fr.insertCell();
    td.className = "num";
    td.textContent = count(v);
  }
  table.replaceChildren(caption, head, body, foot);
}
