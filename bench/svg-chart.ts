/**
 * A small SVG writer for benchmark results: horizontal bars of ratios against a peer on a log scale, one panel
 * per group, whiskers from the smallest to the largest ratio seen over the rounds. Bars grow from the peer's
 * 1x line, green where the task does better than the peer and red where it does worse (for metrics where less
 * is better, such as latency or 409s, a bar left of 1x is the good one). Plain SVG 1.1 text: no browser, no
 * fonts to load, no dependency.
 */
import type { Summary } from './measure.js';

/** One bar: a task's ratio against the panel's peer for one metric. */
export interface ChartBar {
  label: string;
  /** Median and extremes of the ratio; `undefined` when no finite ratio exists (drawn as "n/a"). */
  ratio: Summary | undefined;
  better: 'higher' | 'lower';
  /** Shown after the ratio, for example the two medians compared (`0.17 → 0`). */
  detail?: string;
  /** A sub-heading (usually the task) written above the first bar of a run of bars sharing it. */
  group?: string;
}

/** One group of bars sharing a peer. */
export interface ChartPanel {
  title: string;
  bars: ChartBar[];
}

/** A whole chart. */
export interface RatioChart {
  title: string;
  /** Lines under the title (peer, machine, runs). */
  subtitle: string[];
  panels: ChartPanel[];
}

const WIDTH = 1200;
const LABEL_RIGHT = 412;
/** Where a ratio of 0 is drawn, left of the log scale (which cannot show 0), behind a break in the axis. */
const ZERO_X = 422;
const PLOT_LEFT = 452;
const PLOT_RIGHT = 850;
const VALUE_LEFT = 862;
const ROW = 22;
const PANEL_HEADER = 26;
const PANEL_GAP = 10;
const GOOD = '#2e7d32';
const BAD = '#c62828';
const EVEN = '#757575';
const FONT = 'font-family="Helvetica, Arial, sans-serif"';

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** `1.91x`, `0.052x`, `32.3x`: three significant figures at most. */
export function formatRatio(value: number): string {
  if (value === 0) return '0x';
  if (!Number.isFinite(value)) return 'n/a';
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : value >= 0.1 ? 2 : 3;
  return `${value.toFixed(digits)}x`;
}

function tickLabel(exponent: number): string {
  const value = 2 ** exponent;
  return exponent >= 0 ? `${value}x` : `1/${2 ** -exponent}x`;
}

/**
 * Renders a ratio chart as an SVG document.
 *
 * @param chart - title, subtitle lines and panels of bars
 * @returns the SVG text
 */
export function renderRatioChart(chart: RatioChart): string {
  const finite = chart.panels.flatMap((panel) =>
    panel.bars.flatMap((bar) =>
      bar.ratio === undefined ? [] : [bar.ratio.min, bar.ratio.max, bar.ratio.median],
    ),
  );
  const positive = finite.filter((v) => v > 0 && Number.isFinite(v));
  let low = Math.floor(Math.log2(Math.min(0.5, ...positive)));
  let high = Math.ceil(Math.log2(Math.max(2, ...positive)));
  low = Math.max(low, -12);
  high = Math.min(high, 12);
  const span = high - low;
  const hasZero = finite.some((v) => v === 0);
  const x = (value: number) => {
    if (value <= 0) return ZERO_X;
    const exponent = Math.min(high, Math.max(low, Math.log2(value)));
    return PLOT_LEFT + ((exponent - low) / span) * (PLOT_RIGHT - PLOT_LEFT);
  };
  const step = span <= 10 ? 1 : 2;

  const out: string[] = [];
  let y = 30;
  out.push(
    `<text x="16" y="${y}" font-size="18" font-weight="bold" ${FONT}>${escapeXml(chart.title)}</text>`,
  );
  for (const line of chart.subtitle) {
    y += 17;
    out.push(`<text x="16" y="${y}" font-size="12" fill="#444" ${FONT}>${escapeXml(line)}</text>`);
  }
  y += 22;
  const legend = [
    `<rect x="16" y="${y - 10}" width="14" height="10" fill="${GOOD}"/>`,
    `<text x="36" y="${y}" font-size="12" ${FONT}>better than the peer</text>`,
    `<rect x="176" y="${y - 10}" width="14" height="10" fill="${BAD}"/>`,
    `<text x="196" y="${y}" font-size="12" ${FONT}>worse than the peer</text>`,
    `<line x1="336" y1="${y - 5}" x2="366" y2="${y - 5}" stroke="#000" stroke-width="1.2"/>`,
    `<line x1="336" y1="${y - 9}" x2="336" y2="${y - 1}" stroke="#000"/><line x1="366" y1="${y - 9}" x2="366" y2="${y - 1}" stroke="#000"/>`,
    `<text x="374" y="${y}" font-size="12" ${FONT}>min–max over samples; bar = median; log scale, 1x = the peer in the same run</text>`,
  ];
  out.push(...legend);
  y += 24;
  const axisTop = y;
  const ticks: string[] = [];
  for (let e = low; e <= high; e += step) {
    ticks.push(
      `<text x="${x(2 ** e).toFixed(1)}" y="${axisTop}" font-size="11" text-anchor="middle" fill="#555" ${FONT}>${tickLabel(e)}</text>`,
    );
  }
  if (hasZero) {
    ticks.push(
      `<text x="${ZERO_X}" y="${axisTop}" font-size="11" text-anchor="middle" fill="#555" ${FONT}>0</text>`,
    );
  }
  out.push(...ticks);
  y += 8;
  const plotTop = y;
  const body: string[] = [];
  for (const panel of chart.panels) {
    y += PANEL_HEADER;
    body.push(
      `<text x="16" y="${y - 8}" font-size="13" font-weight="bold" ${FONT}>${escapeXml(truncate(panel.title, 140))}</text>`,
    );
    let group: string | undefined;
    for (const bar of panel.bars) {
      if (bar.group !== undefined && bar.group !== group) {
        group = bar.group;
        body.push(
          `<text x="28" y="${y + ROW / 2 + 4}" font-size="12" font-style="italic" fill="#333" ${FONT}>${escapeXml(truncate(group, 140))}</text>`,
        );
        y += ROW;
      }
      const mid = y + ROW / 2;
      body.push(
        `<text x="${LABEL_RIGHT}" y="${mid + 4}" font-size="12" text-anchor="end" ${FONT}>${escapeXml(truncate(bar.label, 62))}</text>`,
      );
      if (bar.ratio === undefined) {
        body.push(
          `<text x="${x(1) + 6}" y="${mid + 4}" font-size="12" fill="#555" ${FONT}>n/a (the peer measured 0)</text>`,
        );
        y += ROW;
        continue;
      }
      const { median, min, max } = bar.ratio;
      const even = Math.abs(Math.log2(Math.max(median, 2 ** low))) < 0.03;
      const good = bar.better === 'higher' ? median > 1 : median < 1;
      const colour = even ? EVEN : good ? GOOD : BAD;
      const from = x(1);
      const to = x(median);
      const left = Math.min(from, to);
      const width = Math.max(2, Math.abs(to - from));
      body.push(
        `<rect x="${left.toFixed(1)}" y="${(mid - 6).toFixed(1)}" width="${width.toFixed(1)}" height="12" fill="${colour}" fill-opacity="0.85"><title>${escapeXml(`${bar.label}: ${formatRatio(median)} (min ${formatRatio(min)}, max ${formatRatio(max)})`)}</title></rect>`,
      );
      const wl = x(min);
      const wr = x(max);
      body.push(
        `<line x1="${wl.toFixed(1)}" y1="${mid}" x2="${wr.toFixed(1)}" y2="${mid}" stroke="#111" stroke-width="1.2"/>`,
        `<line x1="${wl.toFixed(1)}" y1="${mid - 4}" x2="${wl.toFixed(1)}" y2="${mid + 4}" stroke="#111"/>`,
        `<line x1="${wr.toFixed(1)}" y1="${mid - 4}" x2="${wr.toFixed(1)}" y2="${mid + 4}" stroke="#111"/>`,
      );
      const clipped = median > 0 && median < 2 ** low ? ' ◂' : median > 2 ** high ? ' ▸' : '';
      const range = min === max ? '' : `<tspan dx="6">(${formatRatio(min)}–${formatRatio(max)})</tspan>`;
      const detail = bar.detail === undefined ? '' : `<tspan dx="8">${escapeXml(bar.detail)}</tspan>`;
      body.push(
        `<text x="${VALUE_LEFT}" y="${mid + 4}" font-size="12" ${FONT}><tspan font-weight="bold" fill="${colour}">${formatRatio(median)}</tspan>${clipped}<tspan fill="#555">${range}</tspan><tspan fill="#555">${detail}</tspan></text>`,
      );
      y += ROW;
    }
    y += PANEL_GAP;
  }
  const plotBottom = y;
  const grid: string[] = [];
  for (let e = low; e <= high; e += step) {
    const gx = x(2 ** e).toFixed(1);
    grid.push(
      `<line x1="${gx}" y1="${plotTop}" x2="${gx}" y2="${plotBottom}" stroke="${e === 0 ? '#000' : '#ddd'}" stroke-width="${e === 0 ? 1.5 : 1}"/>`,
    );
  }
  if (hasZero) {
    // The axis break between 0 and the log scale.
    const bx = (ZERO_X + PLOT_LEFT) / 2;
    grid.push(
      `<line x1="${ZERO_X}" y1="${plotTop}" x2="${ZERO_X}" y2="${plotBottom}" stroke="#ddd"/>`,
      `<line x1="${bx - 4}" y1="${plotTop + 4}" x2="${bx + 4}" y2="${plotTop - 4}" stroke="#999"/>`,
      `<line x1="${bx}" y1="${plotTop + 4}" x2="${bx + 8}" y2="${plotTop - 4}" stroke="#999"/>`,
    );
  }
  y += 6;
  const bottomTicks = ticks.map((tick) => tick.replace(`y="${axisTop}"`, `y="${y}"`));
  const height = y + 14;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}">`,
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    ...grid,
    ...out,
    ...body,
    ...bottomTicks,
    '</svg>',
    '',
  ].join('\n');
}
