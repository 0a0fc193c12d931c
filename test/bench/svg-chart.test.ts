import { describe, expect, it } from 'vitest';
import { formatRatio, renderRatioChart } from '../../bench/svg-chart.js';

const chart = (bars: Parameters<typeof renderRatioChart>[0]['panels'][number]['bars']) =>
  renderRatioChart({ title: 'T <&>', subtitle: ['line'], panels: [{ title: 'panel', bars }] });

describe('renderRatioChart', () => {
  it('writes one SVG document with escaped text', () => {
    const svg = chart([{ label: 'a "b"', ratio: { median: 2, min: 1.5, max: 3 }, better: 'higher' }]);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('T &#60;&#38;&#62;');
    expect(svg).toContain('a &#34;b&#34;');
    expect(svg).not.toMatch(/NaN|undefined/);
  });

  it('colours a bar by whether the metric wants more or less', () => {
    const faster = chart([{ label: 'x', ratio: { median: 2, min: 2, max: 2 }, better: 'higher' }]);
    const costlier = chart([{ label: 'x', ratio: { median: 2, min: 2, max: 2 }, better: 'lower' }]);
    expect(faster).toContain('fill="#2e7d32"');
    expect(faster).not.toContain('fill="#c62828" fill-opacity');
    expect(costlier).toContain('fill="#c62828" fill-opacity');
  });

  it('draws a ratio of 0 left of the log scale and a missing ratio as n/a', () => {
    const svg = chart([
      { label: 'none', ratio: { median: 0, min: 0, max: 0 }, better: 'lower' },
      { label: 'unknown', ratio: undefined, better: 'lower' },
    ]);
    expect(svg).toContain('>0</text>');
    expect(svg).toContain('n/a (the peer measured 0)');
    expect(svg).not.toMatch(/NaN|Infinity/);
  });
});

describe('formatRatio', () => {
  it('keeps about three significant figures', () => {
    expect(formatRatio(1174.2)).toBe('1174x');
    expect(formatRatio(32.26)).toBe('32.3x');
    expect(formatRatio(1.914)).toBe('1.91x');
    expect(formatRatio(0.0521)).toBe('0.052x');
    expect(formatRatio(0)).toBe('0x');
    expect(formatRatio(Number.NaN)).toBe('n/a');
  });
});
