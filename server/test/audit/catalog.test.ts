import {
  AUDIT_ACTIONS,
  AUDIT_CATALOG,
  RESERVED_PREFIXES,
  clientActionProblem,
  defaultSeverity,
  isCatalogAction,
  isWellFormedAction,
} from '../../src/services/audit/catalog';

/** The canonical names and severities every part of the service uses (HELPER_RULES.md). */
const CANONICAL: Record<string, string> = {
  'auth.login.success': 'low',
  'auth.login.failure': 'medium',
  'auth.lockout': 'high',
  'auth.logout': 'low',
  'auth.refresh': 'low',
  'auth.refresh.reuse': 'critical',
  'auth.token.rejected': 'medium',
  'session.revoked': 'medium',
  'session.revoked.bulk': 'high',
  'session.expired': 'low',
  'user.created': 'medium',
  'user.role_changed': 'high',
  'user.deactivated': 'high',
  'user.reactivated': 'medium',
  'access.denied': 'medium',
  'key.master.read': 'high',
  'key.master.rotated': 'critical',
  'key.master.fallback': 'high',
  'key.master.refresh_failed': 'high',
  'key.rewrap': 'high',
  'audit.export': 'medium',
  'audit.export.failed': 'high',
  'audit.verify': 'low',
  'audit.verify.failed': 'critical',
  'audit.siem.submitted': 'low',
  'audit.siem.dead_letter': 'high',
  'audit.purge': 'critical',
  'security.alert.brute_force': 'critical',
  'security.alert.refresh_reuse': 'critical',
  'security.alert.key_event': 'high',
  'security.alert.admin_escalation': 'high',
  'security.alert.denied_burst': 'high',
  'system.startup': 'low',
  'system.shutdown': 'low',
  'system.backup': 'medium',
  'system.restore': 'high',
  'system.evidence_collected': 'medium',
  'system.config_warning': 'medium',
};

describe('audit action catalog', () => {
  it('when the catalog is listed, then it holds at least 30 actions including every canonical one with its severity', () => {
    expect(AUDIT_ACTIONS.length).toBeGreaterThanOrEqual(30);
    for (const [action, severity] of Object.entries(CANONICAL)) {
      expect([action, isCatalogAction(action) ? AUDIT_CATALOG[action].severity : 'missing']).toEqual([
        action,
        severity,
      ]);
    }
  });

  it('when catalog actions are checked, then every one is well formed, described and categorised', () => {
    for (const a of AUDIT_ACTIONS) {
      expect(isWellFormedAction(a)).toBe(true);
      expect(AUDIT_CATALOG[a].description.length).toBeGreaterThan(10);
      expect(AUDIT_CATALOG[a].category).toMatch(/^[a-z]+$/);
    }
  });

  it('when a default severity is asked for, then catalog actions get theirs and anything else gets low', () => {
    expect(defaultSeverity('auth.refresh.reuse')).toBe('critical');
    expect(defaultSeverity('access.denied')).toBe('medium');
    expect(defaultSeverity('vehicle.updated')).toBe('low');
  });
});

describe('client-recorded actions', () => {
  it.each([
    'vehicle.updated',
    'fleet.route.planned',
    'doc-store.file_uploaded',
    'a.b',
    'report2.v2-export',
    'audit.note',
  ])('when a client records %s, then it is accepted', (a) => {
    expect(clientActionProblem(a)).toBeNull();
  });

  it.each(RESERVED_PREFIXES.map((p) => `${p}custom`))(
    'when a client records %s (a reserved prefix), then it is refused',
    (a) => {
      expect(clientActionProblem(a)).toMatch(/reserved/);
    },
  );

  it.each(['access.denied', 'audit.verify.failed', 'audit.export', 'audit.purge'])(
    'when a client records the server-side action %s, then it is refused',
    (a) => {
      expect(clientActionProblem(a)).toMatch(/server-side/);
    },
  );

  it.each([
    'nodot',
    'Upper.case',
    '.leading',
    'trailing.',
    'a..b',
    '1abc.x',
    'with space.x',
    'ünï.code',
    'semi;colon.x',
    "quote'.x",
    'a.b\n',
    `a.${'b'.repeat(127)}`,
  ])('when a client records the malformed name %j, then it is refused', (a) => {
    expect(clientActionProblem(a)).not.toBeNull();
  });
});
