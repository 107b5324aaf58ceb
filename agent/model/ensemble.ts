/**
 * Ensemble policies: per asset, how the model's verdict and named rule detectors combine, and
 * whether the combination may trip the asset.
 *
 * Input: the latest state of each member (a detector id, or `model` for the model's verdict on the
 * asset) as it changes. Output: a raised/cleared `Anomaly` whenever a policy's combined state
 * flips, with `trip` from the policy. Pure and synchronous: no I/O, no clock.
 *
 * Combinations over the members' active flags:
 *  - any: at least one is active;  all: every one is active;
 *  - k_of_n: at least `k` are active;
 *  - weighted: sum of `weights[m]` (default 1) over active members >= `threshold`.
 * A member that has never reported counts as inactive.
 */
import type { Anomaly, Severity } from '../types.js';

export const MODEL_MEMBER = 'model';

export interface EnsemblePolicy {
  readonly id: string;
  readonly asset: string;
  readonly members: readonly string[];
  readonly combine: 'any' | 'all' | 'k_of_n' | 'weighted';
  readonly k?: number | undefined;
  readonly weights?: Readonly<Record<string, number>> | undefined;
  readonly threshold?: number | undefined;
  readonly severity: Severity;
  readonly trip: boolean;
}

export function combine(p: EnsemblePolicy, active: (member: string) => boolean): boolean {
  switch (p.combine) {
    case 'any':
      return p.members.some(active);
    case 'all':
      return p.members.every(active);
    case 'k_of_n':
      return p.members.filter(active).length >= (p.k ?? 1);
    case 'weighted': {
      let sum = 0;
      for (const m of p.members) if (active(m)) sum += p.weights?.[m] ?? 1;
      return sum >= (p.threshold ?? 1);
    }
  }
}

/** Checks a policy's own consistency; returns problems as [field, message]. */
export function policyProblems(p: EnsemblePolicy): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (new Set(p.members).size !== p.members.length) out.push(['members', 'lists a member twice']);
  if (p.combine === 'k_of_n' && (p.k === undefined || p.k < 1 || p.k > p.members.length))
    out.push(['k', `k_of_n needs k between 1 and ${p.members.length} (the number of members)`]);
  if (p.combine === 'weighted' && p.threshold === undefined) out.push(['threshold', 'weighted needs a threshold']);
  for (const m of Object.keys(p.weights ?? {}))
    if (!p.members.includes(m)) out.push(['weights', `weight for "${m}", which is not a member`]);
  return out;
}

interface PolicyState {
  readonly policy: EnsemblePolicy;
  raised: boolean;
}

export class Ensembles {
  private readonly byAssetMember = new Map<string, PolicyState[]>();
  private readonly active = new Map<string, Set<string>>();
  private readonly evidence = new Map<string, Record<string, unknown>>();

  constructor(policies: readonly EnsemblePolicy[]) {
    for (const policy of policies) {
      const st: PolicyState = { policy, raised: false };
      for (const m of policy.members) {
        const key = `${policy.asset}\u0000${m}`;
        const list = this.byAssetMember.get(key) ?? [];
        list.push(st);
        this.byAssetMember.set(key, list);
      }
    }
  }

  /** Whether any policy listens to this member of this asset (cheap pre-check for the hot path). */
  watches(asset: string, member: string): boolean {
    return this.byAssetMember.has(`${asset}\u0000${member}`);
  }

  /**
   * Records a member's new state and returns the anomalies of the policies whose combined state
   * flipped. `evidence` (e.g. the model score and version) is attached to those anomalies.
   */
  update(asset: string, member: string, isActive: boolean, eventTime: number, evidence?: Record<string, unknown>): Anomaly[] {
    const policies = this.byAssetMember.get(`${asset}\u0000${member}`);
    if (!policies) return [];
    let set = this.active.get(asset);
    if (!set) {
      set = new Set();
      this.active.set(asset, set);
    }
    if (isActive) set.add(member);
    else set.delete(member);
    if (evidence) this.evidence.set(`${asset}\u0000${member}`, evidence);
    const s = set;
    const out: Anomaly[] = [];
    for (const st of policies) {
      const now = combine(st.policy, (m) => s.has(m));
      if (now === st.raised) continue;
      st.raised = now;
      const p = st.policy;
      const members: Record<string, unknown> = {};
      for (const m of p.members) {
        const ev = this.evidence.get(`${asset}\u0000${m}`);
        members[m] = ev ? { active: s.has(m), ...ev } : { active: s.has(m) };
      }
      out.push({
        detector: p.id,
        detectorType: 'ensemble',
        asset,
        sensor: member === MODEL_MEMBER ? MODEL_MEMBER : member,
        severity: p.severity,
        state: now ? 'raised' : 'cleared',
        eventTime,
        value: p.members.filter((m) => s.has(m)).length,
        evidence: { combine: p.combine, changed: member, members, ...(p.k !== undefined ? { k: p.k } : {}) },
        trip: p.trip,
      });
    }
    return out;
  }
}
