/**
 * npm run routes:write   regenerates docs/ROUTES.md, the table of every HTTP route
 * npm run routes:check   exit 1 when docs/ROUTES.md differs from the generated table, or when a
 *                        route is mounted without a description (or described without a route)
 *
 * The table is read from the code: the routes mounted in server/src (router.get(…), app.post(…):
 * path, guards, handler, the service methods the handler calls) joined with each route's
 * describeRoute() entry (authentication schemes, platform-admin and step-up flags).
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import '../server/src/app';
import { API_MOUNT } from '../server/src/middleware/metrics';
import { describedRoutes, type RouteDoc } from '../server/src/openapi/registry';

const ROOT = path.resolve(__dirname, '..');
const FILE = path.join(ROOT, 'docs/ROUTES.md');
/** Where routes are mounted: the area routers, the app-level routes and /metrics. */
const SOURCES = ['server/src/routes', 'server/src/app.ts'];
const METHODS = new Set(['get', 'post', 'put', 'patch', 'delete']);

interface MountedRoute {
  method: string;
  /** As written in the code: relative to API_MOUNT for the security router, Express syntax (:id). */
  path: string;
  file: string;
  permissions: string[];
  stepUp: boolean;
  handler: string;
  calls: string[];
}

function sourceFiles(): string[] {
  return SOURCES.flatMap((s) => {
    const abs = path.join(ROOT, s);
    return fs.statSync(abs).isDirectory()
      ? fs
          .readdirSync(abs)
          .filter((f) => f.endsWith('.ts'))
          .sort()
          .map((f) => path.join(abs, f))
      : [abs];
  });
}

/** The initializer of a `const NAME = …` anywhere in the file (the route files use unique names). */
function constInitializers(sf: ts.SourceFile): Map<string, ts.Expression> {
  const out = new Map<string, ts.Expression>();
  const visit = (n: ts.Node): void => {
    if (ts.isVariableDeclaration(n) && ts.isIdentifier(n.name) && n.initializer) out.set(n.name.text, n.initializer);
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

/** Functions imported from the services and the database layers, named `module.function`. */
function layerImports(sf: ts.SourceFile): Map<string, string> {
  const out = new Map<string, string>();
  for (const st of sf.statements) {
    if (!ts.isImportDeclaration(st) || !ts.isStringLiteral(st.moduleSpecifier)) continue;
    const spec = st.moduleSpecifier.text;
    if (!/\/(services|db)\//.test(spec)) continue;
    const bindings = st.importClause?.namedBindings;
    if (!bindings || !ts.isNamedImports(bindings)) continue;
    for (const e of bindings.elements)
      if (!e.isTypeOnly) out.set(e.name.text, `${path.basename(spec)}.${(e.propertyName ?? e.name).text}`);
  }
  return out;
}

/**
 * Local names bound to a service: `const audit = c.services.audit`, `const { siem } =
 * c.services.monitoring`, `const { apiKeys } = deps` (the service handed to the router), a
 * service built here (`const oauth = createOAuthService(…)`), or a getter returning one.
 */
function serviceNames(sf: ts.SourceFile, imports: Map<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (n: ts.Node): void => {
    if (ts.isVariableDeclaration(n) && n.initializer) {
      const init = n.initializer;
      const text = init.getText(sf);
      const fromServices = /\.services(\.monitoring)?$/.test(text) || /^deps$/.test(text);
      if (ts.isObjectBindingPattern(n.name) && fromServices) {
        for (const e of n.name.elements) {
          const local = e.name.getText(sf);
          out.set(local, e.propertyName ? e.propertyName.getText(sf) : local);
        }
      } else if (ts.isIdentifier(n.name)) {
        const m = /\.services(?:\.monitoring)?\.(\w+)$/.exec(text);
        if (m) out.set(n.name.text, m[1] as string);
        else if (ts.isCallExpression(init) && imports.has(init.expression.getText(sf)))
          out.set(n.name.text, n.name.text);
        else if (ts.isArrowFunction(init)) {
          const r = /return (\w+);\s*\}$/.exec(text);
          const target = r ? out.get(r[1] as string) : undefined;
          if (target) out.set(`${n.name.text}()`, target);
        }
      }
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

/**
 * Service methods called anywhere inside a handler (`audit.query(…)`,
 * `c.services.checkpoints.verifyTrail(…)`), and functions of the services or database layers
 * called directly (`merkle.storedTreeSize`).
 */
function serviceCalls(node: ts.Node, sf: ts.SourceFile, names: Map<string, string>, imports: Map<string, string>) {
  const calls: string[] = [];
  const visit = (n: ts.Node): void => {
    if (ts.isCallExpression(n) && ts.isPropertyAccessExpression(n.expression)) {
      const method = n.expression.name.text;
      const target = n.expression.expression.getText(sf);
      const direct = /\.services(?:\.monitoring)?\.(\w+)$/.exec(target);
      const viaDeps = /^deps\.(\w+)$/.exec(target);
      const service = direct?.[1] ?? viaDeps?.[1] ?? names.get(target);
      if (service) calls.push(`${service}.${method}`);
    } else if (ts.isCallExpression(n) && ts.isIdentifier(n.expression)) {
      const f = imports.get(n.expression.text);
      if (f) calls.push(f);
    }
    ts.forEachChild(n, visit);
  };
  visit(node);
  return [...new Set(calls)];
}

/** requirePermission('…') and requireStepUp among the guards, following `...admin` to its array. */
function guards(args: readonly ts.Expression[], sf: ts.SourceFile, consts: Map<string, ts.Expression>) {
  const permissions: string[] = [];
  let stepUp = false;
  const seen = new Set<string>();
  const visit = (n: ts.Node): void => {
    if (ts.isCallExpression(n) && n.expression.getText(sf).endsWith('requirePermission')) {
      const a = n.arguments[0];
      if (a && ts.isStringLiteral(a)) permissions.push(a.text);
    }
    if (ts.isIdentifier(n) || ts.isPropertyAccessExpression(n)) {
      const text = n.getText(sf);
      if (/(^|\.)requireStepUp$/.test(text)) stepUp = true;
      const init = ts.isIdentifier(n) ? consts.get(text) : undefined;
      if (init && !seen.has(text)) {
        seen.add(text);
        visit(init);
      }
    }
    ts.forEachChild(n, visit);
  };
  for (const a of args) visit(a);
  return { permissions, stepUp };
}

function handlerName(h: ts.Expression, sf: ts.SourceFile): string {
  if ((ts.isFunctionExpression(h) || ts.isFunctionDeclaration(h)) && h.name) return h.name.text;
  if (ts.isArrowFunction(h) || ts.isFunctionExpression(h)) return '(anonymous)';
  return h.getText(sf);
}

export function mountedRoutes(): MountedRoute[] {
  const routes: MountedRoute[] = [];
  for (const file of sourceFiles()) {
    const text = fs.readFileSync(file, 'utf8');
    const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
    const consts = constInitializers(sf);
    const imports = layerImports(sf);
    const names = serviceNames(sf, imports);
    const visit = (n: ts.Node): void => {
      if (
        ts.isCallExpression(n) &&
        ts.isPropertyAccessExpression(n.expression) &&
        METHODS.has(n.expression.name.text) &&
        /^(router|app)$/.test(n.expression.expression.getText(sf)) &&
        n.arguments.length >= 2
      ) {
        const first = n.arguments[0] as ts.Expression;
        let p: string | null = null;
        if (ts.isStringLiteral(first) || ts.isNoSubstitutionTemplateLiteral(first)) p = first.text;
        else if (ts.isIdentifier(first)) {
          const init = consts.get(first.text);
          if (init && ts.isStringLiteral(init)) p = init.text;
        }
        if (p === null) throw new Error(`${path.relative(ROOT, file)}: a route whose path is not a constant string`);
        const handler = n.arguments[n.arguments.length - 1] as ts.Expression;
        const g = guards(n.arguments.slice(1, -1), sf, consts);
        routes.push({
          method: n.expression.name.text,
          path: p,
          file: path.relative(ROOT, file),
          permissions: g.permissions,
          stepUp: g.stepUp,
          handler: handlerName(handler, sf),
          calls: serviceCalls(handler, sf, names, imports),
        });
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  return routes;
}

const AUTH: Record<RouteDoc['security'][number], string> = {
  bearerAuth: 'Bearer',
  apiKey: 'API key',
  refreshCookie: 'refresh cookie + CSRF',
  metricsToken: 'metrics token (or loopback)',
  none: 'none',
};

const openApiPath = (p: string) => p.replace(/:(\w+)/g, '{$1}');

/** The table, or the list of routes and descriptions that do not match up. */
export function routeTable(): { text: string; problems: string[] } {
  const docs = new Map(describedRoutes().map((d) => [`${d.method} ${d.path}`, d]));
  const problems: string[] = [];
  const rows: { key: string; cells: string[] }[] = [];
  const used = new Set<string>();
  for (const r of mountedRoutes()) {
    const candidates = [r.path, `${API_MOUNT}${r.path}`].map((p) => `${r.method} ${openApiPath(p)}`);
    const key = candidates.find((k) => docs.has(k));
    if (!key) {
      problems.push(`${r.method.toUpperCase()} ${r.path} (${r.file}) has no describeRoute() entry`);
      continue;
    }
    used.add(key);
    const d = docs.get(key) as RouteDoc;
    const auth = d.security.length === 0 ? 'none' : d.security.map((s) => AUTH[s]).join(' or ');
    const permission = [
      ...(d.platformAdmin ? ['platform admin'] : []),
      ...(r.permissions.length > 0 ? r.permissions : d.permission ? [d.permission] : []),
    ];
    const cells = [
      d.method.toUpperCase(),
      `\`${d.path}\``,
      auth,
      permission.length > 0 ? permission.map((p) => `\`${p}\``).join(', ') : '—',
      r.stepUp || d.stepUp ? 'yes' : '—',
      `\`${r.handler}\` (${path.basename(r.file)})`,
      r.calls.length > 0 ? r.calls.map((c) => `\`${c}\``).join(', ') : '—',
    ];
    rows.push({ key, cells });
  }
  for (const k of docs.keys()) if (!used.has(k)) problems.push(`${k} is described but no route mounts it`);
  rows.sort((a, b) => {
    const [ma, pa] = a.key.split(' ') as [string, string];
    const [mb, pb] = b.key.split(' ') as [string, string];
    return pa === pb ? ma.localeCompare(mb) : pa.localeCompare(pb);
  });
  const header = ['Method', 'Path', 'Authentication', 'Permission', 'Step-up', 'Handler', 'Service calls'];
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const text = [
    '# Routes',
    '',
    'Generated by `npm run routes:write` from the routers in `server/src/routes` (and `/metrics` in',
    '`server/src/app.ts`) joined with their `describeRoute()` entries; `npm run routes:check` (CI) fails',
    'when this file is out of date or a route has no description. Do not edit by hand.',
    '',
    '- **Authentication**: the schemes the route accepts (`docs/openapi.json` `securitySchemes`).',
    '- **Permission**: the `requirePermission` guard (API keys hold it through their scopes,',
    '  `server/src/services/auth/rbac.ts`); "platform admin": admins of `PLATFORM_TENANT` only.',
    '- **Step-up**: needs a recent TOTP step-up (CONTRACT §11).',
    '- **Service calls**: the service methods the handler calls; `module.function` for a function of',
    '  the services or database layers called directly.',
    '',
    line(header),
    line(header.map(() => '---')),
    ...rows.map((r) => line(r.cells)),
    '',
  ].join('\n');
  return { text, problems };
}

if (require.main === module) {
  const mode = process.argv[2];
  const { text, problems } = routeTable();
  if (problems.length > 0) {
    process.stderr.write(`routes: ${problems.length} route(s) and description(s) do not match:\n`);
    for (const p of problems) process.stderr.write(`  ${p}\n`);
    process.exit(1);
  }
  if (mode === 'write') {
    fs.writeFileSync(FILE, text);
    process.stdout.write(`routes: wrote ${path.relative(process.cwd(), FILE)}\n`);
  } else if (mode === 'check') {
    const committed = fs.existsSync(FILE) ? fs.readFileSync(FILE, 'utf8') : '';
    if (committed !== text) {
      process.stderr.write(
        'routes:check: docs/ROUTES.md differs from the table the routers give: run `npm run routes:write` and commit it.\n',
      );
      process.exit(1);
    }
    process.stdout.write('routes:check: docs/ROUTES.md is up to date\n');
  } else {
    process.stderr.write('usage: tsx scripts/routes.ts write|check\n');
    process.exit(2);
  }
}
