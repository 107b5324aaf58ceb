/** Config checks specific to detection: feature names against their window, learning limits. */
import type { AgentConfig } from '../config/schema.js';
import type { SemanticProblem } from '../config/semantic.js';

export function detectionChecks(config: AgentConfig): SemanticProblem[] {
  const problems: SemanticProblem[] = [];
  config.detectors.forEach((d, i) => {
    const win = 'window' in d && typeof d.window === 'object' ? d.window : undefined;
    if ('feature' in d && d.feature !== undefined) {
      if (!win) {
        problems.push({
          path: ['detectors', i, 'feature'],
          message: 'a feature needs a window',
          hint: 'add window: { type: tumbling, size: 10s }',
        });
      } else if (d.feature.startsWith('band.')) {
        const name = d.feature.slice(5);
        if (!win.bands?.some((b) => b.name === name)) {
          problems.push({
            path: ['detectors', i, 'feature'],
            message: `window has no FFT band "${name}"`,
            hint: `declared bands: ${win.bands?.map((b) => b.name).join(', ') || 'none'}`,
          });
        }
      }
    }
    if (win?.bands) {
      win.bands.forEach((b, j) => {
        if (b.high <= b.low)
          problems.push({ path: ['detectors', i, 'window', 'bands', j, 'high'], message: 'band high must be above low' });
      });
    }
    if (d.type === 'zscore' && (d.limit === undefined) === (d.limit_factor === undefined)) {
      problems.push({ path: ['detectors', i], message: 'zscore needs exactly one of limit or limit_factor' });
    }
    if ((d.type === 'zscore' || d.type === 'multivariate') && d.learn.readings === undefined && d.learn.duration === undefined) {
      problems.push({ path: ['detectors', i, 'learn'], message: 'learn needs readings or duration' });
    }
    if (d.type === 'out_of_range') {
      const sensor = config.assets.find((a) => a.id === d.asset)?.sensors.find((s) => s.id === d.sensor);
      if (sensor && d.min === undefined && d.max === undefined && sensor.min === undefined && sensor.max === undefined) {
        problems.push({
          path: ['detectors', i],
          message: 'out_of_range has no limits: set min/max here or on the sensor',
          hint: 'it still reports bad-quality readings, but probably a limit was meant',
        });
      }
    }
  });
  return problems;
}
