/**
 * Response schemas shared by several routes: the error envelope (CONTRACT §3) and the parts
 * of replies that repeat. Named with .meta({ id }) so the document lists them once under
 * components.schemas.
 */
import { z } from 'zod';
import 'zod-openapi';

export const ErrorCode = z
  .enum([
    'VALIDATION_FAILED',
    'MALFORMED_JSON',
    'UNAUTHENTICATED',
    'FORBIDDEN',
    'CSRF_FAILED',
    'STEP_UP_REQUIRED',
    'NOT_FOUND',
    'CONFLICT',
    'PAYLOAD_TOO_LARGE',
    'UNSUPPORTED_MEDIA_TYPE',
    'RATE_LIMITED',
    'INTERNAL_ERROR',
    'SERVICE_UNAVAILABLE',
    'IDEMPOTENCY_KEY_REUSED',
  ])
  .meta({
    id: 'ErrorCode',
    description: 'Machine-readable error code; the HTTP status goes with it (docs/SECURITY_API.md §13).',
  });

export const ErrorResponse = z
  .strictObject({
    success: z.literal(false),
    error: z.strictObject({
      code: ErrorCode,
      message: z.string().meta({ description: 'For people; never a stack trace, SQL or a secret.' }),
      details: z
        .array(
          z.strictObject({
            path: z.string().meta({ description: 'body.field, query.name, params.id, …' }),
            message: z.string(),
            code: z.string().optional(),
          }),
        )
        .optional()
        .meta({ description: 'One entry per problem (validation errors).' }),
    }),
    requestId: z
      .string()
      .meta({ description: 'Also in the X-Request-Id response header; quote it when reporting a problem.' }),
    timestamp: z.iso.datetime(),
  })
  .meta({
    id: 'ErrorResponse',
    description: 'Every error has this shape.',
    example: {
      success: false,
      error: {
        code: 'VALIDATION_FAILED',
        message: 'The request is invalid.',
        details: [{ path: 'body.email', message: 'must be an e-mail address', code: 'invalid_format' }],
      },
      requestId: '0b6c6f1e-2b1d-4c36-9d0a-6c1f3c0b2a11',
      timestamp: '2026-01-01T10:00:00.000Z',
    },
  });

export const Success = z.strictObject({ success: z.literal(true) }).meta({ id: 'Success' });

const Role = z.enum(['admin', 'user', 'viewer']).meta({ id: 'Role' });

export const PublicUser = z
  .strictObject({
    id: z.uuid(),
    email: z.string(),
    role: Role,
    tenantId: z.string(),
    displayName: z.string().nullable(),
    permissions: z.array(z.string()).meta({ description: "The role's permissions (docs/SECURITY_API.md §10)." }),
  })
  .meta({ id: 'User' });

/**
 * The error body of the OAuth endpoints (/oauth/introspect, /oauth/revoke): RFC 6749 §5.2,
 * not the API's envelope.
 */
export const OAuthErrorResponse = z
  .strictObject({
    error: z.enum(['invalid_request', 'invalid_client', 'unsupported_token_type']),
    error_description: z.string(),
  })
  .meta({
    id: 'OAuthErrorResponse',
    description: 'RFC 6749 §5.2 error body.',
    example: { error: 'invalid_request', error_description: 'the token parameter is missing' },
  });
