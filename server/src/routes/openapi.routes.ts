/**
 * GET /api/openapi.json (no authentication): the OpenAPI 3.1 document of every route
 * (CONTRACT §12), built from the route descriptions (server/src/openapi).
 */
import type { Request, Response, Router } from 'express';
import { z } from 'zod';
import { openApiJson } from '../openapi/document';
import { describeRoute } from '../openapi/registry';

describeRoute({
  method: 'get',
  path: '/api/openapi.json',
  operationId: 'getOpenApiDocument',
  summary: 'This API description (OpenAPI 3.1)',
  tags: ['health'],
  security: [],
  responses: {
    200: {
      description: 'The document (also committed as docs/openapi.json).',
      schema: z.looseObject({ openapi: z.literal('3.1.0') }),
    },
  },
});

export function mountOpenApi(app: Router): void {
  app.get('/api/openapi.json', function openApiDocument(_req: Request, res: Response) {
    res.type('application/json').set('Cache-Control', 'no-cache').send(openApiJson());
  });
}
