// The dashboard's charts: a workflow's (or every workflow's) requests and refusals, executions by
// status, and p50/p99 duration over the last hour or day, from `GET /api/stats`, drawn with uPlot
// (vendored: `vendor/uPlot.iife.min.js`, loaded by index.html as the global `uPlot`), and
// refreshed while they are shown.

import { api } from './api.js';
import { h, section } from './ui.js';

const STATUS_COLORS = {
  resolved: '#2e7d32', failed: '#ef6c00', error: '#c62828', aborted: '#6a1b9a', canceled: '#757575',
};
const REFRESH_MS = 10_000;
const CHART = { width: 380, height: 170 };

/** A panel of charts for `workflow` (every workflow's when null). */
export function activityPanel(workflow, { title = 'Activity', testid = 'activity' } = {}) {
  const range = h('select', { 'data-testid': `${testid}-range`, onchange: () => load() },
    h('option', { value: 'hour' }, 'last hour'), h('option', { value: 'day' }, 'last day'));
  const summary = h('p', { 'data-testid': `${testid}-summary`, class: 'summary' }, 'Loading…');
  const charts = h('div', { class: 'charts', 'data-testid': `${testid}-charts` });
  const panel = section(title, h('div', { class: 'inline' }, 'Over the ', range), summary, charts);

  async function load() {
    const query = new URLSearchParams({ range: range.value });
    if (workflow) query.set('workflow', workflow);
    try {
      draw(await api('GET', `/api/stats?${query}`));
    } catch (error) {
      summary.textContent = `${error.code ?? 'error'}: ${error.message}`;
    }
  }

  function draw(stats) {
    const times = stats.points.map((point) => Date.parse(point.time) / 1000);
    const sum = (pick) => stats.points.reduce((total, point) => total + pick(point), 0);
    const statuses = [...new Set(stats.points.flatMap((point) => Object.keys(point.executions)))].sort();
    const ended = Object.fromEntries(statuses.map((status) => [status, sum((point) => point.executions[status] ?? 0)]));
    const executions = Object.values(ended).reduce((a, b) => a + b, 0);
    const durations = stats.points.filter((point) => point.p50Ms !== null);
    const worstP99 = durations.length ? Math.max(...durations.map((point) => point.p99Ms)) : null;
    summary.textContent = `${sum((p) => p.requests)} requests, ${sum((p) => p.refusals)} refused; ${executions} executions`
      + (executions ? ` (${statuses.map((status) => `${ended[status]} ${status}`).join(', ')})` : '')
      + (worstP99 !== null ? `; p99 up to ${Math.round(worstP99)} ms` : '');
    const step = stats.stepSeconds === 60 ? 'a minute' : `${stats.stepSeconds / 60} minutes`;
    charts.replaceChildren(
      chart(`Requests per ${step}`, times, [
        { label: 'requests', stroke: '#1565c0', values: stats.points.map((point) => point.requests) },
        { label: 'refused', stroke: '#c62828', values: stats.points.map((point) => point.refusals) },
      ], `${testid}-requests`),
      chart(`Executions per ${step}`, times, (statuses.length ? statuses : ['resolved']).map((status) => ({
        label: status, stroke: STATUS_COLORS[status] ?? '#455a64', values: stats.points.map((point) => point.executions[status] ?? 0),
      })), `${testid}-executions`),
      chart('Duration (ms)', times, [
        { label: 'p50', stroke: '#00838f', values: stats.points.map((point) => point.p50Ms) },
        { label: 'p99', stroke: '#ad1457', values: stats.points.map((point) => point.p99Ms) },
      ], `${testid}-durations`));
  }

  load();
  const timer = setInterval(() => {
    if (!panel.isConnected) clearInterval(timer);
    else if (document.visibilityState === 'visible') load();
  }, REFRESH_MS);
  return panel;
}

/** One uPlot line chart: `series` `[{label, stroke, values}]` over `times` (Unix seconds). */
function chart(title, times, series, testid) {
  const box = h('figure', { class: 'chart', 'data-testid': testid }, h('figcaption', {}, title));
  const options = {
    ...CHART,
    scales: { x: { time: true } },
    series: [{}, ...series.map(({ label, stroke }) => ({ label, stroke, width: 2, spanGaps: false }))],
    axes: [{}, { size: 50 }],
    legend: { live: false },
  };
  // eslint-disable-next-line no-new -- uPlot draws into `box`.
  new globalThis.uPlot(options, [times, ...series.map((line) => line.values)], box);
  return box;
}
